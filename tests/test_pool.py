"""The traffic pool's closed form against a Monte-Carlo sample of the lognormal pool."""

import numpy as np
import pytest

from envs.pool import gmv_share, qualifying_share, threshold_roi


@pytest.fixture(scope="module")
def pool_sample():
    """2 million opportunities, each costing 1 CNY, ROI ~ LogNormal with mean m = 2, sigma 0.7."""
    m, sigma = 2.0, 0.7
    rng = np.random.default_rng(0)
    roi = np.exp(rng.normal(np.log(m) - sigma**2 / 2, sigma, 2_000_000))
    return m, sigma, np.sort(roi)[::-1]  # best first


@pytest.mark.parametrize("target", [2.2, 2.6, 3.0, 3.5, 4.5, 6.0])
def test_target_bidder_matches_monte_carlo(pool_sample, target):
    m, sigma, roi = pool_sample
    # Buying the best first, the average ROI of the top k equals the target at k*:
    running_avg = np.cumsum(roi) / np.arange(1, roi.size + 1)
    k = np.searchsorted(-running_avg, -target)  # first k where the average drops below target
    mc_share = k / roi.size
    share = float(qualifying_share(np.array(target), np.array(m), np.array(sigma)))
    assert share == pytest.approx(mc_share, abs=0.004)
    # and the closed-form GMV of that share gives back the target as average ROI
    assert m * gmv_share(np.array(share), sigma) / share == pytest.approx(target, rel=2e-3)
    # the marginal opportunity's ROI is the threshold
    assert float(threshold_roi(np.array(share), m, sigma)) == pytest.approx(roi[k], rel=0.01)


def test_target_at_or_below_pool_mean_buys_everything():
    share = qualifying_share(np.array([0.5, 1.99, 2.0]), np.array(2.0), np.array(0.7))
    np.testing.assert_allclose(share, 1.0)


def test_gmv_share_matches_monte_carlo(pool_sample):
    _, sigma, roi = pool_sample
    cum = np.cumsum(roi) / roi.sum()
    for q in (0.1, 0.3, 0.5, 0.8):
        assert float(gmv_share(np.array(q), sigma)) == pytest.approx(cum[int(q * roi.size)],
                                                                   abs=2e-3)


def test_volume_roi_trade_off_matches_brief():
    """Brief §2: with sigma ~0.8, +38% spend costs about -17% average ROI (half the pool)."""
    q0, sigma = 0.5, 0.8
    a0 = gmv_share(np.array(q0), sigma) / q0
    a1 = gmv_share(np.array(1.38 * q0), sigma) / (1.38 * q0)
    assert a1 / a0 - 1 == pytest.approx(-0.17, abs=0.01)


def test_share_is_monotone_and_vectorised():
    targets = np.linspace(2.0, 10.0, 500)
    share = qualifying_share(targets, np.full(500, 2.0), np.full(500, 0.7))
    assert share.shape == (500,)
    assert np.all(np.diff(share) < 0)
    assert share[-1] > 0
