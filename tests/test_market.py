"""Each mechanic of the market model: its direction and size, and its switch.

Most tests step :class:`envs.market.MarketModel` directly from a mature state with all
draws at zero (the expected day), so the effect of one change is seen without noise.
"""

import numpy as np
import pytest

from envs.config import SECOND_VERSION_OFF, load_scenario
from envs.inputs import day_constants
from envs.market import N_DRAWS, Decision, MarketModel, draw_count, poisson_from_normal
from envs.stages import Orders, draw_refunds, refund_share_moments

# the first version's market, quiet: each test switches on what it measures
QUIET = dict(SECOND_VERSION_OFF, shocks_enabled=False, bidder_noise_enabled=False,
             weekday_enabled=False,
             promotions_enabled=False, fatigue_enabled=False, organic_enabled=False)


def mature(cfg, n=1, seed=0):
    """A model and a launched account that has left learning, with a large balance."""
    model = MarketModel(cfg)
    rng = np.random.default_rng(seed)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    state.learning[:] = False
    state.day[:] = 20
    state.balance_cny[:] = 1e9
    state.budget_cny[:] = 1e7  # budget never binds unless a test lowers it
    state.shares[:] = (1.0, 0.0, 0.0, 0.0)  # payment-ROI plan only unless a test says otherwise
    return model, params, state


def decide(state, target=None, budget=None, shares=None, refresh=False):
    n = state.day.shape[0]
    return Decision(
        target_roi=np.full(n, target) if target is not None else state.target_roi.copy(),
        budget_cny=np.full(n, budget) if budget is not None else state.budget_cny.copy(),
        shares=np.tile(shares, (n, 1)) if shares is not None else state.shares.copy(),
        refresh=np.full(n, refresh))


def day(model, params, state, decision, draws=None):
    n = state.day.shape[0]
    return model.step(state, params, decision, np.zeros((n, N_DRAWS)) if draws is None
                      else draws)


def test_lower_target_buys_more_at_lower_roi():
    cfg = load_scenario("3c", learning_enabled=False, **QUIET)  # the bidder's trade-off alone
    model, params, state = mature(cfg)
    outs = [day(model, params, state, decide(state, t, 1e7, (1.0, 0.0, 0.0)))[1]
            for t in (2.4, 3.0, 3.6)]
    spend = [o.spend[0] for o in outs]
    gmv = [o.gmv[0] for o in outs]
    roi = [o.payment_roi[0] for o in outs]
    assert spend[0] > spend[1] > spend[2]
    assert gmv[0] > gmv[1] > gmv[2]
    assert roi[0] < roi[1] < roi[2]
    # an unconstrained target-ROI bidder delivers about its target (orders are whole numbers)
    assert roi[1] == pytest.approx(3.0, rel=0.03)
    # size: 3.0 -> 2.4 raises spend by more than half at sigma 0.7 (closed form ~ +57%)
    assert spend[0] / spend[1] == pytest.approx(1.57, rel=0.05)


def test_binding_budget_caps_spend_and_keeps_roi():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    free = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    capped = day(model, params, state, decide(state, 3.0, 4000.0, (1.0, 0.0, 0.0)))[1]
    assert free.spend[0] > 4000.0
    assert capped.spend[0] == pytest.approx(4000.0)
    # pacing spreads the budget over qualifying traffic: ROI stays near the target
    assert capped.payment_roi[0] == pytest.approx(3.0, rel=0.05)
    # raising the target under a binding budget buys better traffic at the same spend
    higher = day(model, params, state, decide(state, 3.3, 4000.0, (1.0, 0.0, 0.0)))[1]
    assert higher.spend[0] == pytest.approx(4000.0)
    assert higher.gmv[0] > capped.gmv[0]


def test_volume_plan_buys_best_remaining_traffic_below_target():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    roi_only = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    with_vol = day(model, params, state, decide(state, 3.0, 2e4, (0.5, 0.0, 0.5)))[1]
    assert with_vol.spend[0] > roi_only.spend[0]
    assert with_vol.payment_roi[0] < roi_only.payment_roi[0]
    assert with_vol.payment_roi[0] > params.pool_mean_roi[0] * 0.5


def test_empty_balance_interrupts_and_restarts_learning():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    baseline = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    state.balance_cny[:] = 1500.0
    s1, out = day(model, params, state, decide(state))
    assert out.interrupted[0]
    assert out.spend[0] == pytest.approx(1500.0)
    assert s1.balance_cny[0] == pytest.approx(0.0)
    s1.balance_cny[:] = 1e9  # topped up overnight
    s2, out2 = day(model, params, s1, decide(s1, 3.0, 1e7, (1.0, 0.0, 0.0)))
    assert out2.learning[0], "a balance stop sends the plan back to learning"
    assert not out2.interrupted[0]
    # learning (x0.6 traffic, worse pool) and the post-stop CTR loss (x0.75) cut spend
    assert out2.spend[0] < 0.6 * 0.75 * baseline.spend[0]
    off = load_scenario("3c", balance_enabled=False, **QUIET)
    model, params, state = mature(off)
    state.balance_cny[:] = 0.0
    assert not day(model, params, state, decide(state))[1].interrupted[0]


@pytest.mark.parametrize("factor,relearns", [(1.05, False), (1.14, False), (1.3, True),
                                             (0.7, True)])
def test_target_jump_restarts_learning(factor, relearns):
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    _, out = day(model, params, state, decide(state, target=3.0 * factor))
    assert bool(out.learning[0]) is relearns


def test_budget_jump_and_refresh_restart_learning():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    b = state.budget_cny[0]
    assert day(model, params, state, decide(state, budget=b * 1.6))[1].learning[0]
    assert not day(model, params, state, decide(state, budget=b * 1.4))[1].learning[0]
    assert day(model, params, state, decide(state, refresh=True))[1].learning[0]


def test_learning_exits_on_orders_and_fails_without():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    state.learning[:] = True
    s = state
    for _ in range(3):
        s, out = day(model, params, s, decide(s))
    assert not s.learning[0] and not s.learn_failed[0], "~30 orders a day: out within 3 days"
    # a plan too small to reach 20 orders in 3 days fails after learning_fail_days
    small = load_scenario("3c", pool_cost_cny=1500.0, **QUIET)
    model, params, state = mature(small)
    state.learning[:] = True
    s = state
    for _ in range(small.learning_fail_days):
        s, out = day(model, params, s, decide(s))
    assert s.learn_failed[0] and not s.learning[0]
    failed_spend = day(model, params, s, decide(s))[1].spend[0]
    fresh = mature(small)[2]
    assert failed_spend == pytest.approx(
        small.learn_failed_traffic_mult * day(model, params, fresh, decide(fresh))[1].spend[0],
        rel=0.02)


def test_learning_period_throttles_traffic_and_roi():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    steady = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    state.learning[:] = True
    learning = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    assert learning.spend[0] < 0.6 * steady.spend[0]  # less traffic, and a worse pool
    off = load_scenario("3c", learning_enabled=False, **QUIET)
    model, params, state = mature(off)
    _, out = day(model, params, state, decide(state, target=4.5))
    assert not out.learning[0]


def test_refunds_land_within_seven_days_and_sum_to_cohort():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    state.refund_pipe[:] = 0.0
    s, first = day(model, params, state, decide(state))
    landed = []
    settled = []
    for _ in range(9):
        s, out = day(model, params, s, decide(s, budget=0.0))
        landed.append(out.refunds[0])
        settled.append(out.settled_gmv[0])
    assert first.cohort_refunds[0] > 0
    assert sum(landed[:7]) == pytest.approx(first.cohort_refunds[0], rel=1e-12)
    assert landed[7] == landed[8] == 0.0
    # settled on the 7th day after the order day: GMV minus all its refunds
    assert settled[6] == pytest.approx(first.gmv[0] - first.cohort_refunds[0], rel=1e-12)
    assert first.cohort_refunds[0] / first.gmv[0] == pytest.approx(cfg.refund_rate, rel=0.5)


def test_refund_rate_rises_with_depth():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    shallow = day(model, params, state, decide(state, 4.0, 1e7, (1.0, 0.0, 0.0)))[1]
    deep = day(model, params, state, decide(state, 2.2, 1e7, (1.0, 0.0, 0.0)))[1]
    assert deep.cohort_refunds[0] / deep.gmv[0] > shallow.cohort_refunds[0] / shallow.gmv[0]


@pytest.mark.parametrize("rate", [0.05, 0.12, 0.4])
def test_refund_share_moments_are_those_of_the_drawn_share(rate):
    """What calibration reads refunds through are the mean and variance of what the market
    draws: the mean above the rate for cohorts of few orders (the draw is clipped at 0), the
    rate for large ones."""
    n = 400_000
    cfg = load_scenario("3c", **QUIET)
    orders_per_cohort = np.array([1.0, 2.0, 5.0, 400.0])
    orders = np.repeat(orders_per_cohort, n)
    gmv = orders * 100.0
    zero, typical = np.zeros(orders.size), np.full(orders.size, 0.5)
    drawn = draw_refunds(day_constants(cfg), np.full(orders.size, rate), np.ones(orders.size),
                         typical, typical, Orders(orders, gmv, zero, zero, zero, zero, gmv),
                         np.random.default_rng(0).standard_normal(orders.size))
    share = (drawn.cohort_refunds / gmv).reshape(orders_per_cohort.size, n)
    expected, variance = refund_share_moments(np.full(orders_per_cohort.size, rate),
                                              orders_per_cohort)
    sd = np.sqrt(rate * (1 - rate) / orders_per_cohort)
    assert np.all(np.abs(share.mean(axis=1) - expected) < 5 * sd / np.sqrt(n))
    assert np.allclose(share.var(axis=1), variance, rtol=0.02)
    assert expected[0] > rate * 1.05 and expected[-1] == pytest.approx(rate, rel=1e-3)


def test_settlement_plan_refunds_less_and_reaches_less():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    pay = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    sett = day(model, params, state, decide(state, 3.0, 1e7, (0.0, 1.0, 0.0)))[1]
    rate_pay = pay.cohort_refunds[0] / pay.gmv[0]
    rate_set = sett.cohort_refunds[0] / sett.gmv[0]
    assert rate_set == pytest.approx(rate_pay * (1 - cfg.settlement_refund_reduction), rel=0.05)
    assert sett.spend[0] == pytest.approx(pay.spend[0] * (1 - cfg.settlement_volume_penalty),
                                          rel=1e-6)


def test_promotion_peak_raises_traffic_and_refunds():
    on = load_scenario("3c", **{**QUIET, "promotions_enabled": True})
    model, params, state = mature(on)
    peak_day = on.promo_peak_days[0]
    state.day[:] = peak_day
    peak = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    state.day[:] = peak_day - 20
    normal = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    assert peak.promo[0] and not normal.promo[0]
    # x3.5 traffic, but competitors bid up (pool ROI x0.8): the target buys a smaller share
    assert peak.spend[0] > 1.8 * normal.spend[0]
    assert peak.cohort_refunds[0] / peak.gmv[0] > 1.2 * normal.cohort_refunds[0] / normal.gmv[0]
    state.day[:] = peak_day - 3  # warm-up: buyers wait
    warm = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))[1]
    assert warm.spend[0] < normal.spend[0]


def test_fatigue_lowers_traffic_and_refresh_restores_it():
    cfg = load_scenario("3c", **{**QUIET, "fatigue_enabled": True, "learning_enabled": False})
    model, params, state = mature(cfg)
    state.creative_age_days[:] = 0.0
    fresh = day(model, params, state, decide(state, 3.0, 1e7))[1]
    state.creative_age_days[:] = cfg.creative_half_life_days
    tired = day(model, params, state, decide(state, 3.0, 1e7))[1]
    expected = cfg.fatigue_floor + (1 - cfg.fatigue_floor) * 0.5
    assert tired.spend[0] / fresh.spend[0] == pytest.approx(expected, rel=1e-6)
    s, refreshed = day(model, params, state, decide(state, 3.0, 1e7, refresh=True))
    assert refreshed.spend[0] == pytest.approx(fresh.spend[0], rel=1e-9)
    assert refreshed.refresh_cost[0] == cfg.refresh_cost_cny
    assert s.creative_age_days[0] == 1.0


def test_cost_protection_credits_shortfall_and_is_forfeited_by_fiddling():
    cfg = load_scenario("3c", **{**QUIET, "bidder_noise_enabled": True})
    model, params, state = mature(cfg)
    state.day[:] = 0
    params.bidder_bias[:] = 0.6  # the bidder misses its target badly
    s, out = day(model, params, state, decide(state))
    roi_gmv = out.gmv[0]  # no volume share: all GMV is the ROI plans'
    assert out.orders[0] >= cfg.cost_protection_min_orders
    assert out.credit[0] == pytest.approx(out.spend[0] - roi_gmv / state.target_roi[0])
    assert s.balance_cny[0] == pytest.approx(1e9 - out.spend[0] + out.credit[0])
    state.protection_edits[:] = cfg.cost_protection_max_edits  # a third edit forfeits it
    _, fiddled = day(model, params, state, decide(state, target=3.05))
    assert fiddled.credit[0] == 0.0
    state.day[:] = cfg.cost_protection_days  # after the protected days: nothing
    state.protection_edits[:] = 0
    assert day(model, params, state, decide(state))[1].credit[0] == 0.0


def test_organic_carryover_and_cannibalisation():
    cfg = load_scenario("3c", **{**QUIET, "organic_enabled": True})
    model, params, state = mature(cfg)
    state.organic_stock_cny[:] = 0.0
    s, first = day(model, params, state, decide(state, 3.0, 1e7, (1.0, 0.0, 0.0)))
    assert first.incremental_gmv[0] == pytest.approx(first.gmv[0] * (1 - cfg.cannibalisation))
    for _ in range(5):
        s, _ = day(model, params, s, decide(s, 3.0, 1e7, (1.0, 0.0, 0.0)))
    s, later = day(model, params, s, decide(s, 3.0, 1e7, (1.0, 0.0, 0.0)))
    assert later.organic_gmv[0] > 0.05 * later.gmv[0], "recent ad GMV lifts organic GMV"
    # the lift outlives the ads: a day without spend still has organic GMV
    s, quiet = day(model, params, s, decide(s, 3.0, 0.0))
    assert quiet.spend[0] == 0.0 and quiet.organic_gmv[0] > 0
    off = load_scenario("3c", **QUIET)
    model, params, state = mature(off)
    out = day(model, params, state, decide(state))[1]
    assert out.incremental_gmv[0] == out.gmv[0]


def test_quiet_model_ignores_draws_but_orders_and_refunds():
    cfg = load_scenario("3c", **QUIET)
    model, params, state = mature(cfg)
    a = day(model, params, state, decide(state))[1]
    draws = np.zeros((1, N_DRAWS))
    draws[0, :3] = 2.0  # traffic, pool ROI and bidder draws: switched off
    b = day(model, params, state, decide(state), draws)[1]
    assert a.spend[0] == b.spend[0] and a.gmv[0] == b.gmv[0]


@pytest.mark.parametrize("lam", [0.5, 3.0, 8.0, 30.0, 400.0])
def test_orders_are_poisson(lam):
    z = np.random.default_rng(1).standard_normal(400_000)
    k = poisson_from_normal(np.full(z.shape, lam), z)
    assert np.all(k == np.round(k)) and k.min() >= 0
    assert k.mean() == pytest.approx(lam, rel=0.02)
    assert k.var() == pytest.approx(lam, rel=0.05)


def test_weekday_pattern_switch():
    on = load_scenario("3c", **{**QUIET, "weekday_enabled": True})
    model, params, state = mature(on)
    spends = []
    for d in range(7):
        state.day[:] = 20 + d
        spends.append(day(model, params, state, decide(state, 3.0, 1e7))[1].spend[0])
    ratio = max(spends) / min(spends)
    assert ratio == pytest.approx(max(on.weekday_traffic) / min(on.weekday_traffic), rel=1e-6)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_floored_quantities_never_round_below_zero(engine):
    """Balances, spend, credits, refunds and stocks stay >= 0 whatever rounding does, and an
    interrupted day leaves exactly 0.0 (plus any credit): the day spends the balance itself,
    not spend x (balance / spend), which can round above it (-4.5e-13 CNY was seen)."""
    cfg = load_scenario("tight_balance", action_space="full")
    n = 512
    model = MarketModel(cfg, engine)
    rng = np.random.default_rng(3)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    interrupted_days = 0
    for _ in range(40):
        # awkward balances (not round numbers) around a day's spend, targets from far below
        # the pool (q = 1: every opportunity qualifies) to far above, every plan mix
        state.balance_cny[:] = rng.uniform(0.0, 3.0, n) * state.budget_cny * np.pi / 3.0
        raw = rng.dirichlet((0.5,) * state.shares.shape[1], n)  # every plan, whole-site too
        decision = Decision(target_roi=rng.uniform(0.2, 8.0, n),
                            budget_cny=rng.uniform(100.0, 5e4, n) / 7.0,
                            shares=raw, refresh=rng.random(n) < 0.05)
        state, out = model.step(state, params, decision,
                                rng.standard_normal((n, draw_count(cfg))))
        interrupted_days += int(out.interrupted.sum())
        # spent to exactly 0.0; a cost-protection credit, if any, is all that is left
        assert (out.balance[out.interrupted] == out.credit[out.interrupted]).all()
        for name in ("spend", "gmv", "orders", "refunds", "settled_gmv", "balance", "credit",
                     "incremental_refunds_landed", "cohort_refunds", "organic_gmv"):
            value = getattr(out, name)
            assert (value >= 0.0).all(), f"{name}: min {value.min()!r}"
        for name in ("balance_cny", "organic_stock_cny", "refund_pipe", "cohort_settled",
                     "learn_orders", "recovery_days_left"):
            value = getattr(state, name)
            assert (value >= 0.0).all(), f"state.{name}: min {value.min()!r}"
    assert interrupted_days > 1000, "the sweep must exercise interrupted days"
