"""Promotions, second version (issue #14, item 6) and the return-handling cost (item 8), each
behind its own switch: a warm-up's stock of engaged buyers (蓄水) that buys on the peak days,
the peak-day discount's margin squeeze ``(m - d) / (1 - d)``, and a handling cost per refunded
order. Each is checked for its direction and against its closed form; off, nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

from envs.config import SECOND_VERSION_OFF, load_scenario
from envs.market import Decision, MarketModel
from envs.reward import PROFIT_TERMS, peak_margin, reward_args, term_names
from envs.simulator import Simulator

SWITCHES = ("warmup_stock_enabled", "peak_discount_enabled", "return_handling_enabled")


def hold(state) -> Decision:
    """Keep the settings in force."""
    return Decision(state.target_roi.copy(), state.budget_cny.copy(), state.shares.copy(),
                    np.zeros(state.day.shape[0], dtype=bool))


def model_days(cfg, n: int, days: int, seed: int = 0):
    """Orders, the warm-up's peak GMV, the incremental GMV (days, n) and the stock at each
    dawn (days + 1, n) of ``n`` launched accounts holding their settings; and the params."""
    model = MarketModel(cfg)
    rng = np.random.default_rng(seed)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    draws = rng.standard_normal((days, n, model.n_draws))
    rows: dict[str, list] = {"orders": [], "engaged_gmv": [], "incremental_gmv": []}
    stock = [state.engaged_buyers.copy()]
    for d in range(days):
        state, out = model.step(state, params, hold(state), draws[d])
        for key, value in rows.items():
            value.append(getattr(out, key).copy())
        stock.append(state.engaged_buyers.copy())
    return {k: np.array(v) for k, v in rows.items()}, np.array(stock), params


def test_switches_are_on_by_default_and_off_add_nothing():
    assert all(getattr(load_scenario("3c"), s) for s in SWITCHES)
    cfg = load_scenario("3c", **SECOND_VERSION_OFF)
    assert not any(getattr(cfg, s) for s in SWITCHES)
    assert term_names(cfg) == PROFIT_TERMS
    settings = reward_args(cfg)
    assert settings.peak_discount == 0.0 and settings.return_handling_cny == 0.0
    days, stock, _ = model_days(cfg.replace(promo_peak_days=[12]), n=16, days=20)
    assert not stock.any() and not days["engaged_gmv"].any()


def test_warmup_stock_buys_on_the_peak_by_its_closed_form():
    """The stock at the peak's dawn is ``sum_j b orders(peak - j) keep^j`` over the warm-up
    days (keep = 2^(-1/h)); each peak day ``p`` of it orders at the account's AOV and the rest
    decays; nothing is bought or kept outside the warm-up and the peak."""
    peak = 20
    on = load_scenario("3c", warmup_stock_enabled=True, promo_peak_days=[peak])
    days, stock, params = model_days(on, n=64, days=30)
    off_days, _, _ = model_days(on.replace(warmup_stock_enabled=False), n=64, days=30)
    b, p = on.warmup_buyers_per_order, on.warmup_peak_conversion
    keep = 2.0 ** (-1.0 / on.warmup_half_life_days)
    warmup = range(peak - on.promo_warmup_days, peak)
    assert not stock[:warmup[0] + 1].any(), "no stock before the warm-up's first day"
    at_peak = sum(b * days["orders"][d] * keep ** (peak - d) for d in warmup)
    np.testing.assert_allclose(stock[peak], at_peak, rtol=1e-12)
    assert (at_peak > 0).all()
    s = at_peak
    for k in range(on.promo_peak_length_days):
        np.testing.assert_allclose(days["engaged_gmv"][peak + k], p * s * params.aov_cny,
                                   rtol=1e-12)
        s = keep * (1.0 - p) * s
    np.testing.assert_allclose(stock[peak + on.promo_peak_length_days], s, rtol=1e-12)
    outside = np.ones(30, bool)
    outside[peak:peak + on.promo_peak_length_days] = False
    assert not days["engaged_gmv"][outside].any()
    # direction: the ads are the same draw for draw; the peak days gain exactly that GMV
    np.testing.assert_array_equal(days["orders"], off_days["orders"])
    np.testing.assert_allclose(days["incremental_gmv"] - off_days["incremental_gmv"],
                               days["engaged_gmv"], rtol=1e-9, atol=1e-6)
    # size: extra peak orders per warm-up ad order, b keep^j p sum_k (keep (1 - p))^k
    yield_per_order = (days["engaged_gmv"].sum(axis=0) / params.aov_cny
                       / days["orders"][warmup[0]:peak].sum(axis=0))
    per_day = [b * keep ** j * p * sum((keep * (1 - p)) ** k for k in range(3))
               for j in range(1, on.promo_warmup_days + 1)]
    assert min(per_day) - 1e-12 <= yield_per_order.min() <= yield_per_order.max() <= max(
        per_day) + 1e-12


def episode(cfg, seeds, engine: str | None = None):
    """Rewards and terms of each day (days, n), the episode metrics, and the simulator."""
    sim = Simulator(cfg, n=len(seeds), engine=engine)
    sim.reset(seeds=seeds)
    actions = np.random.default_rng(3).uniform(-0.5, 0.5, (cfg.episode_days, len(seeds),
                                                           sim.action_dim))
    rewards, terms = [], []
    for day in range(cfg.episode_days):
        _, reward, done, info = sim.step(actions[day])
        rewards.append(reward * cfg.reward_scale_cny)
        terms.append(info["reward_terms"])
    assert done
    stacked = {k: np.array([t[k] for t in terms]) for k in terms[0]}
    return np.array(rewards), stacked, info["episode_metrics"], sim


SEEDS = list(range(10000, 10008))


@pytest.mark.parametrize("charging", ["on_landing", "on_order"])
def test_peak_discount_squeezes_the_peak_days_margin(charging):
    """On a peak day the margin on the cohort's refund-net incremental GMV falls from ``m``
    to ``(m - d) / (1 - d)``; other days are untouched; profit falls by exactly that."""
    assert peak_margin(np.array([0.35]), 0.15)[0] == pytest.approx(0.20 / 0.85, rel=1e-15)
    assert peak_margin(np.array([0.35]), 0.0)[0] == 0.35
    base = load_scenario("3c", promo_peak_days=[10], episode_days=16, refund_charging=charging,
                         **SECOND_VERSION_OFF)
    on = base.replace(peak_discount_enabled=True)
    r_off, t_off, m_off, _ = episode(base, SEEDS)
    r_on, t_on, m_on, sim = episode(on, SEEDS)
    squeeze = t_on["peak_discount"]
    np.testing.assert_allclose(r_on - r_off, squeeze, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(m_on["profit"] - m_off["profit"], squeeze.sum(axis=0),
                               rtol=1e-9)
    peak = np.zeros(16, bool)
    peak[10:13] = True
    assert not squeeze[~peak].any() and (squeeze[peak] < 0).all()
    if charging == "on_order":  # the refunds term is the cohort's: -m x its refunds
        m = sim.params.margin
        net = (t_on["gmv_value"] + t_on["refunds"]) / m  # refund-net incremental GMV
        np.testing.assert_allclose(squeeze[peak], -((m - peak_margin(m, on.peak_discount))
                                                    * net)[peak], rtol=1e-12)


@pytest.mark.parametrize("charging", ["on_landing", "on_order"])
def test_return_handling_costs_a_fixed_sum_per_returned_order(charging):
    """Each refunded order (refunded CNY / AOV) costs ``return_handling_cny``, charged as
    its refund is: the term is the refunds term times ``return_handling_cny / (AOV x m)``."""
    base = load_scenario("apparel_live", refund_charging=charging, episode_days=30,
                         **SECOND_VERSION_OFF)
    on = base.replace(return_handling_enabled=True)
    r_off, _, m_off, _ = episode(base, SEEDS)
    r_on, t_on, m_on, sim = episode(on, SEEDS)
    handling = t_on["return_handling"]
    per_refund_cny = on.return_handling_cny / sim.params.aov_cny
    np.testing.assert_allclose(handling, per_refund_cny * t_on["refunds"] / sim.params.margin,
                               rtol=1e-12)
    np.testing.assert_allclose(r_on - r_off, handling, rtol=1e-9, atol=1e-6)
    assert (handling.sum(axis=0) < 0).all()
    returned_orders = -t_on["refunds"].sum(axis=0) / sim.params.margin / sim.params.aov_cny
    np.testing.assert_allclose(handling.sum(axis=0), -on.return_handling_cny * returned_orders,
                               rtol=1e-12)
    # the metrics count each cohort's in full: over the episode, the same sum
    np.testing.assert_allclose(m_on["profit"] - m_off["profit"], handling.sum(axis=0),
                               rtol=1e-9)


@pytest.mark.parametrize("charging", ["on_landing", "on_order"])
def test_reward_sums_to_profit_with_every_promotion_switch(charging):
    cfg = load_scenario("3c", refund_charging=charging,
                        **{**SECOND_VERSION_OFF, **dict.fromkeys(SWITCHES, True)})
    rewards, terms, metrics, _ = episode(cfg, SEEDS[:4])
    assert set(terms) == set(PROFIT_TERMS) | {"peak_discount", "return_handling"}
    np.testing.assert_allclose(rewards.sum(axis=0), metrics["profit"], rtol=1e-9)
