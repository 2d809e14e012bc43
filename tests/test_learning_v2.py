"""Second-version learning mechanics (#14 items 2 and 3), each behind its switch.

Cumulative re-learning (``relearn_cumulative_enabled``): edits add up over
``relearn_window_days``, each in units of the one-day thresholds. Conversion starvation
(``starvation_enabled``): a plan out of learning with fewer than ``starvation_min_orders``
over ``starvation_window_days`` fails (LEARN_FAILED, throttled). Steps from a mature state
with all draws at zero (the expected day) unless a test draws orders.
"""

import math

import numpy as np
import pytest
from scipy.stats import poisson

from envs.config import SECOND_VERSION_OFF, ConfigError, load_scenario
from envs.market import DRAW_ORDERS, N_DRAWS, Decision, MarketModel

# the first version's market, quiet: each test switches on what it measures
QUIET = dict(SECOND_VERSION_OFF, shocks_enabled=False, bidder_noise_enabled=False,
             weekday_enabled=False,
             promotions_enabled=False, fatigue_enabled=False, organic_enabled=False)
CUMULATIVE = dict(relearn_cumulative_enabled=True)
STARVATION = dict(starvation_enabled=True)
BOTH = dict(CUMULATIVE, **STARVATION)
POOL_NEAR_THRESHOLD = 4000.0  # CNY/day: a mature plan at target 3.0 then takes ~8 orders/day


def mature(cfg, n=1, orders_per_day=30.0):
    """A launched account out of learning, large balance and budget, all on payment-ROI
    plans, whose starvation window holds ``orders_per_day`` on each past day."""
    model = MarketModel(cfg)
    rng = np.random.default_rng(0)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    state.learning[:] = False
    state.day[:] = 20
    state.balance_cny[:] = 1e9
    state.budget_cny[:] = 1e7
    state.shares[:] = (1.0, 0.0, 0.0, 0.0)
    state.recent_orders[:] = orders_per_day
    return model, params, state


def hold(state, target=None, budget=None):
    n = state.day.shape[0]
    return Decision(state.target_roi.copy() if target is None else np.full(n, target),
                    state.budget_cny.copy() if budget is None else np.full(n, budget),
                    state.shares.copy(), np.zeros(n, dtype=bool))


def play(model, params, state, targets):
    """Play the targets day by day; each day's (learning during the day, spend) and the days
    learning (re)started."""
    flags, spend, starts = [], [], []
    for d, target in enumerate(targets):
        state, out = model.step(state, params, hold(state, target),
                                np.zeros((1, N_DRAWS)))
        flags.append(bool(out.learning[0]))
        spend.append(out.spend[0])
        if out.learning[0] and state.learn_days[0] == 1:
            starts.append(d)
    return flags, np.array(spend), starts


# ------------------------------------------------------------------ cumulative re-learning
def test_five_daily_8pct_steps_restart_learning_twice_and_holding_costs_nothing():
    """Each +8% step is ln 1.08 / ln 1.15 = 0.55 of the threshold: the second step of a
    window sums to 1.10 and restarts learning, which clears the window, so five steps restart
    it on days 2 and 4. One-day rule alone: never. Holding: never, either way."""
    steps = [3.0 * 1.08 ** k for k in range(1, 6)] + [3.0 * 1.08 ** 5] * 9
    held = [3.0] * 14
    runs = {}
    for name, overrides in (("off", {}), ("on", CUMULATIVE)):
        cfg = load_scenario("3c", **{**QUIET, **overrides})
        model, params, state = mature(cfg)
        runs[name] = play(model, params, state, steps)
        held_flags, held_spend, _ = play(model, params, state, held)
        assert not any(held_flags), f"{name}: holding never re-learns"
        runs[name + "_held"] = held_spend
    assert not any(runs["off"][0])
    assert runs["on"][2] == [1, 3], "restarts on the 2nd and 4th step (days 1 and 3)"
    assert math.log(1.08) / math.log(1.15) == pytest.approx(0.5507, abs=1e-4)
    np.testing.assert_array_equal(runs["on_held"], runs["off_held"])
    # the cost, through the learning days alone (x0.6 traffic, x0.85 pool ROI): same spend
    # on the other days, less than 0.6 x on those; a fifth of the fortnight's spend
    learning = np.array(runs["on"][0])
    on, off = runs["on"][1], runs["off"][1]
    np.testing.assert_array_equal(on[~learning], off[~learning])
    assert (on[learning] < 0.6 * off[learning]).all() and learning.sum() >= 4
    assert 1.0 - on.sum() / off.sum() == pytest.approx(0.24, abs=0.03)


def test_edits_add_up_only_within_the_window():
    """Five +2.7% steps (0.19 of the threshold each, 0.96 in all) never restart learning; an
    8% step a week apart leaves the 7-day window before the next one."""
    cfg = load_scenario("3c", **{**QUIET, **CUMULATIVE})
    model, params, state = mature(cfg)
    small = [3.0 * 1.027 ** k for k in range(1, 6)]
    assert 5 * math.log(1.027) / math.log(1.15) < 1.0
    assert not any(play(model, params, state, small)[0])
    weekly = [3.24] * 7 + [3.24 * 1.08] * 7 + [3.24 * 1.08 ** 2] * 7
    assert not any(play(model, params, state, weekly)[0])
    # the same two steps 6 days apart share a window: the second restarts learning
    six = [3.24] * 6 + [3.24 * 1.08] * 3
    flags = play(model, params, state, six)[0]
    assert not any(flags[:6]) and flags[6]


def test_budget_rises_add_up_and_cuts_are_free():
    cfg = load_scenario("3c", **{**QUIET, **CUMULATIVE})
    model, params, state = mature(cfg)
    state.budget_cny[:] = 10000.0
    s, out = model.step(state, params, hold(state, budget=13000.0), np.zeros((1, N_DRAWS)))
    assert not out.learning[0]  # ln 1.3 / ln 1.5 = 0.65
    _, out = model.step(s, params, hold(s, budget=16900.0), np.zeros((1, N_DRAWS)))
    assert out.learning[0], "two +30% raises in a week add up to 1.29"
    s = state
    for budget in (7000.0, 5000.0, 3000.0):
        s, out = model.step(s, params, hold(s, budget=budget), np.zeros((1, N_DRAWS)))
        assert not out.learning[0]


@pytest.mark.parametrize("edited", [0, 1])
def test_a_one_day_window_is_the_one_day_rule(edited):
    """With ``relearn_window_days: 1`` the cumulative rule re-learns exactly when the one-day
    rule does, over random edits of the target or of the budget (an edit of both on one day
    adds up: stricter than the one-day rule)."""
    rng = np.random.default_rng(3)
    n, days = 64, 30
    ratios = np.ones((days, n, 2))
    ratios[..., edited] = np.exp(rng.normal(0.0, 0.12 if edited == 0 else 0.3, (days, n)))
    learning = {}
    for name, overrides in (("off", {}), ("window1", dict(CUMULATIVE, relearn_window_days=1))):
        cfg = load_scenario("3c", **{**QUIET, **overrides})
        model, params, state = mature(cfg, n)
        state.budget_cny[:] = 10000.0
        flags = []
        for d in range(days):
            decision = Decision(np.round(state.target_roi * ratios[d, :, 0], 2),
                                state.budget_cny * ratios[d, :, 1], state.shares.copy(),
                                np.zeros(n, dtype=bool))
            state, out = model.step(state, params, decision, np.zeros((n, N_DRAWS)))
            flags.append(out.learning.copy())
        learning[name] = np.array(flags)
    assert learning["off"].sum() > 50, "the edits must restart learning often"
    np.testing.assert_array_equal(learning["window1"], learning["off"])


# ------------------------------------------------------------------ conversion starvation
def test_a_starved_plan_fails_against_the_poisson_closed_form():
    """A mature plan with 2 orders on each of the last 6 days needs 8 today to keep 20 in
    the window: it fails with probability P(Poisson(lam) <= 7), lam its expected orders."""
    n = 20000
    cfg = load_scenario("3c", pool_cost_cny=POOL_NEAR_THRESHOLD, **{**QUIET, **STARVATION})
    model, params, state = mature(cfg, n, orders_per_day=2.0)
    draws = np.zeros((n, N_DRAWS))
    draws[:, DRAW_ORDERS] = np.random.default_rng(1).standard_normal(n)
    s, out = model.step(state, params, hold(state), draws)
    lam = float(np.mean(out.orders))  # orders are Poisson(lam) by quantile mapping
    assert 6.0 < lam < 10.0, "the test needs a plan near the threshold"
    assert (s.learn_failed == (out.orders + 12.0 < 20.0)).all()
    assert s.learn_failed.mean() == pytest.approx(poisson.cdf(7, lam), abs=0.015)
    off = load_scenario("3c", pool_cost_cny=POOL_NEAR_THRESHOLD, **QUIET)
    model, params, state = mature(off, n, orders_per_day=2.0)
    assert not model.step(state, params, hold(state), draws)[0].learn_failed.any()


def test_a_starved_plan_is_throttled_until_an_edit_restarts_learning():
    """A plan of about 2 orders a day (a pool of 1,000 CNY) fails once its window holds
    fewer than 20; it then buys learn_failed_traffic_mult of what it bought; a 20% target
    edit restarts learning and clears the count."""
    small = {**QUIET, "pool_cost_cny": 1000.0}
    zeros = np.zeros((1, N_DRAWS))
    model, params, fed = mature(load_scenario("3c", **{**small, **STARVATION}), orders_per_day=5.0)
    assert not model.step(fed, params, hold(fed), zeros)[0].learn_failed[0]
    model, params, state = mature(load_scenario("3c", **{**small, **STARVATION}),
                                  orders_per_day=2.0)
    s, first = model.step(state, params, hold(state), zeros)
    assert first.orders[0] <= 3.0 and s.learn_failed[0]
    s, throttled = model.step(s, params, hold(s), zeros)
    off_model, off_params, off = mature(load_scenario("3c", **small), orders_per_day=2.0)
    off_spend = off_model.step(off, off_params, hold(off), zeros)[1].spend[0]
    assert throttled.spend[0] == pytest.approx(
        load_scenario("3c").learn_failed_traffic_mult * off_spend, rel=0.02)
    s, out = model.step(s, params, hold(s, target=3.0 * 1.2), zeros)
    assert out.learning[0] and not out.learn_failed[0]
    assert s.recent_orders.sum() == out.orders[0]


def launch_failures(overrides: dict, target_over_breakeven: float, n: int = 512,
                    days: int = 28) -> float:
    """Share of launches (static-rule settings: all budget on payment-ROI plans, the launch
    budget) that are LEARN_FAILED at some point in their first ``days`` days, every
    first-version mechanic and its noise on, launched at and holding
    ``target_over_breakeven`` x break-even."""
    cfg = load_scenario("3c", launch_shares=(1.0, 0.0, 0.0), **{**SECOND_VERSION_OFF,
                                                                **overrides})
    cfg = cfg.replace(launch_target_roi=round(target_over_breakeven * cfg.breakeven_roi, 2))
    model = MarketModel(cfg)
    rng = np.random.default_rng(7)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    failed = np.zeros(n, dtype=bool)
    for _ in range(days):
        state, out = model.step(state, params, hold(state), rng.standard_normal((n, N_DRAWS)))
        failed |= out.learn_failed
    return float(failed.mean())


def test_a_high_launch_target_fails_its_cold_start_more_often():
    """Launching at 2 x break-even (6.3, about 3 x the pool's mean ROI) starves the plan of
    conversions while it learns: 95% of launches fail (seeded Monte Carlo, 512 accounts),
    against 11% at 1.5 x and none at 1.25 x. Held settings: the learning-period rule decides
    it, the starvation switch adds nothing in the first four weeks."""
    rates = {k: launch_failures(BOTH, k) for k in (1.25, 1.5, 2.0)}
    assert rates[1.25] == 0.0
    assert rates[1.5] == pytest.approx(0.11, abs=0.03)
    assert rates[2.0] == pytest.approx(0.95, abs=0.03)
    assert launch_failures({}, 2.0) == rates[2.0]


def ratchet(overrides: dict, n: int = 256, days: int = 42) -> tuple[float, float]:
    """Launch at 1.25 x break-even, hold two weeks (the plan leaves learning), then raise the
    target 14% a day (under the one-day threshold) to 2.5 x and hold it. Returns the share of
    the ratchet's days spent learning or failed, and the ratchet's orders per account-day."""
    cfg = load_scenario("3c", launch_shares=(1.0, 0.0, 0.0), **{**SECOND_VERSION_OFF,
                                                                **overrides})
    cfg = cfg.replace(launch_target_roi=round(1.25 * cfg.breakeven_roi, 2))
    model = MarketModel(cfg)
    rng = np.random.default_rng(11)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    top = 2.5 * cfg.breakeven_roi
    stuck, orders = [], []
    for day in range(days):
        target = state.target_roi if day < 14 else np.minimum(
            np.round(state.target_roi * 1.14, 2), top)
        state, out = model.step(state, params, hold(state, target),
                                rng.standard_normal((n, N_DRAWS)))
        if day >= 14:
            stuck.append(out.learning | out.learn_failed)
            orders.append(out.orders)
    return float(np.mean(stuck)), float(np.mean(orders))


def test_ratcheting_the_target_after_learning_costs_something_only_with_the_switches():
    """The first version's loophole: leave learning at a moderate target, then climb in
    sub-threshold steps. Without the switches the plan never re-learns; with them, the
    climb re-learns (cumulative edits) and the plan at 2.5 x starves or fails."""
    off_stuck, off_orders = ratchet({})
    on_stuck, on_orders = ratchet(BOTH)
    assert off_stuck == 0.0
    assert on_stuck > 0.5
    assert on_orders < 0.8 * off_orders


def test_starvation_settings_are_checked():
    with pytest.raises(ConfigError, match="starvation_min_orders"):
        load_scenario("3c", starvation_enabled=True, starvation_min_orders=30.0)
    with pytest.raises(ConfigError, match="starvation_window_days"):
        load_scenario("3c", starvation_enabled=True, starvation_window_days=2)
    load_scenario("3c", starvation_enabled=False, starvation_min_orders=30.0)  # off: unchecked
