"""Selection on noisy ROI estimates (issue #14 item 1): the closed form of
:func:`envs.pool.select_on_estimates` against a Monte-Carlo pool ranked on noisy estimates,
its direction and size, and the bidding stage with the switch on."""

import numpy as np
import pytest

from envs.config import load_scenario
from envs.inputs import day_constants
from envs.pool import gmv_share, noisy_selection, qualifying_share, share_table
from envs.stages import Morning, Traffic, place_bids

M, SIGMA, NOISE_SD = 2.0, 0.7, 0.35  # pool mean ROI, its log-sd, the estimates' error log-sd


@pytest.fixture(scope="module")
def noisy_pool():
    """2 million opportunities of 1 CNY each: true ROI ~ LogNormal(mean M, log-sd SIGMA), and
    the bidder's estimate, its log off by N(0, NOISE_SD^2) less NOISE_SD^2/2 (right on average
    over the pool). Sorted best estimate first."""
    rng = np.random.default_rng(1)
    n = 2_000_000
    log_true = rng.normal(np.log(M) - SIGMA**2 / 2, SIGMA, n)
    log_est = log_true + rng.normal(-NOISE_SD**2 / 2, NOISE_SD, n)
    order = np.argsort(-log_est)
    return np.exp(log_true[order]), np.exp(log_est[order])


@pytest.mark.parametrize("target", [1.5 * M, 2.0 * M, 3.0 * M, 4.0 * M])
def test_selection_on_estimates_matches_monte_carlo(noisy_pool, target):
    """The bidder buys the best estimates until their estimated average falls to the target:
    the share it buys and the true average ROI of what it bought match the closed form."""
    true_roi, est_roi = noisy_pool
    est_avg = np.cumsum(est_roi) / np.arange(1, est_roi.size + 1)
    k = np.searchsorted(-est_avg, -target)  # first k where the estimated average < target
    share, realised = noisy_selection(target, M, SIGMA, NOISE_SD)
    assert float(share[0]) == pytest.approx(k / est_roi.size, abs=0.004)
    assert float(realised[0]) == pytest.approx(true_roi[:k].mean(), rel=0.01)
    assert true_roi[:k].mean() < 0.97 * target  # Monte Carlo itself: the target is missed


def test_volume_band_by_estimate_matches_monte_carlo(noisy_pool):
    """A band ``[q1, q2]`` of the pool by estimate (what the volume plan buys below the
    threshold) earns the true GMV share ``H_r(q2) - H_r(q1)``, ``H_r`` with
    ``sigma_r = sigma^2 / sqrt(sigma^2 + sigma_e^2)``."""
    true_roi, _ = noisy_pool
    cum = np.cumsum(true_roi) / true_roi.sum()
    sigma_r = SIGMA**2 / np.hypot(SIGMA, NOISE_SD)
    for q1, q2 in ((0.05, 0.2), (0.2, 0.5), (0.5, 0.9)):
        mc = cum[int(q2 * cum.size)] - cum[int(q1 * cum.size)]
        closed = float(gmv_share(np.array(q2), sigma_r) - gmv_share(np.array(q1), sigma_r))
        assert closed == pytest.approx(mc, abs=2e-3)


def test_shortfall_grows_with_the_target_and_the_noise():
    """Direction and size: met at or below the pool mean, short above it, more so the higher
    the target and the noisier the estimates; at 1.5x and 4x the pool mean with sigma_e =
    sigma / 2 the realised ROI is 0.945 and 0.789 of the target (bivariate-normal truncation,
    checked by Monte Carlo above)."""
    ratios = np.array([0.8, 1.0, 1.5, 2.0, 3.0, 4.0])
    met = {}
    for noise_sd in (0.2, 0.35, 0.5):
        _, realised = noisy_selection(ratios * M, M, SIGMA, noise_sd)
        met[noise_sd] = realised / np.maximum(ratios * M, M)
        np.testing.assert_allclose(met[noise_sd][:2], 1.0, rtol=1e-12)  # buys all: mean ROI
        assert np.all(np.diff(met[noise_sd][1:]) < 0)
    assert np.all(met[0.2][2:] > met[0.35][2:]) and np.all(met[0.35][2:] > met[0.5][2:])
    assert met[0.35][2] == pytest.approx(0.945, abs=0.003)
    assert met[0.35][5] == pytest.approx(0.789, abs=0.003)
    # vanishing noise: today's bidder (the target met, the closed-form share)
    share, realised = noisy_selection(ratios * M, M, SIGMA, 1e-6)
    np.testing.assert_allclose(realised / np.maximum(ratios * M, M), 1.0, rtol=3e-3)
    np.testing.assert_allclose(share, qualifying_share(ratios * M, M, SIGMA), rtol=1e-5)


def test_volume_at_a_given_true_roi_falls_below_the_closed_form(noisy_pool):
    """The noisy bidder buys more than the closed form at a given *target*, but less at the
    ROI it truly achieves: selecting on estimates finds fewer truly good opportunities, and
    the gap widens the harder it selects (Monte Carlo: the best true opportunities)."""
    true_roi, _ = noisy_pool
    targets = np.array([1.5, 2.0, 3.0, 4.0]) * M
    share, realised = noisy_selection(targets, M, SIGMA, NOISE_SD)
    assert np.all(share > qualifying_share(targets, M, SIGMA))
    clean_share = qualifying_share(realised, M, SIGMA)
    assert np.all(share < clean_share)
    assert np.all(np.diff(share / clean_share) < 0)
    best_first = np.sort(true_roi)[::-1]
    true_avg = np.cumsum(best_first) / np.arange(1, best_first.size + 1)
    for q, roi in zip(share, realised, strict=True):
        # a bidder that saw the truth would reach this ROI over a larger share of the pool
        assert np.searchsorted(-true_avg, -roi) / best_first.size > q + 0.02


def test_bidding_stage_with_the_switch_on():
    """``place_bids``: with the switch off the ROI plans earn the target; on, the closed form's
    true average ROI over the larger share; the volume plan's deep band at ``sigma_r``."""
    n = 4
    target = np.array([2.0, 3.0, 5.0, 8.0])
    morning = Morning(target_roi=target, budget_cny=np.full(n, 1e9),
                      shares=np.tile([0.5, 0.0, 0.5, 0.0], (n, 1)), refresh=np.zeros(n, bool),
                      creative_age_days=np.zeros(n), in_protection=np.zeros(n, bool),
                      protection_edits=np.zeros(n, np.int64), balance_cny=np.full(n, 1e12))
    traffic = Traffic(traffic_shock=np.zeros(n), pool_cost=np.full(n, 20000.0),
                      pool_roi=np.full(n, M))
    sigma, launched = np.full(n, SIGMA), np.ones(n, bool)
    off = place_bids(day_constants(load_scenario("3c", estimation_noise_enabled=False)),
                     share_table(), sigma, morning,
                     traffic, launched)
    cfg = load_scenario("3c", estimation_noise_enabled=True, estimation_noise_sd=NOISE_SD)
    on = place_bids(day_constants(cfg), share_table(), sigma, morning, traffic, launched)
    share, realised = noisy_selection(target, M, SIGMA, NOISE_SD)
    np.testing.assert_array_equal(off.avg_roi, np.maximum(target, M))
    np.testing.assert_allclose(on.avg_roi, realised, rtol=1e-12)
    np.testing.assert_allclose(on.roi_spend, 20000.0 * share, rtol=1e-12)
    assert np.all(on.roi_spend[1:] > off.roi_spend[1:]) and np.all(on.avg_roi[1:] < target[1:])
    # the volume plan buys the whole rest of the pool: all the pool's GMV, whatever the noise
    for bids in (off, on):
        total = bids.avg_roi * (bids.roi_spend + bids.vol_top) + bids.deep_gmv
        np.testing.assert_allclose(total, 20000.0 * M, rtol=3e-3)


def test_typical_depth_follows_the_bidder():
    """The refund rate's reference depth is what the typical target buys, noisy or not."""
    clean = load_scenario("3c", estimation_noise_enabled=False)
    noisy = clean.replace(estimation_noise_enabled=True)
    share, _ = noisy_selection(noisy.typical_target_roi, noisy.pool_mean_roi,
                               noisy.pool_sigma, noisy.estimation_noise_sd)
    assert noisy.typical_pool_share == pytest.approx(float(share[0]), rel=1e-12)
    assert noisy.typical_pool_share > clean.typical_pool_share
