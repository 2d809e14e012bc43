"""The learning period's rules, read from the report's learning flags.

How many orders end learning (``learning_exit_orders``), how many days of learning end in
LEARN_FAILED (``learning_fail_days``) and how large a one-day target change restarts it
(``relearn_target_change``) are rules of the platform that an account meets, not things
its spend and GMV measure: the market's fit (:mod:`.likelihood`) reads each day's learning
state from the report and never asks why the plan was learning. But a report that shows
its plan's status (a ``learning`` column) shows the rules at work: a plan left learning on
the day its last days' orders reached the count, failed on the day its learning ran too
long, re-learned the morning after an edit that was too large, and did not when a count,
a day or an edit fell short.

So the rules are read by running the simulator's own learning stages
(:func:`envs.stages.apply_decision` and :func:`envs.stages.progress_learning`, the plain
NumPy engine) along the report: each morning the report's settings (target, budget, plan
shares, creative refreshes, yesterday's balance stop) take effect, each evening its orders
are counted, for every candidate rule at once (one grid, :data:`GRIDS`, a batch of
candidates), and each candidate's learning and LEARN_FAILED flags at dawn are compared with
the report's. The rules the report's flags are consistent with are those with the fewest
mismatched days (zero when the report comes from rules in the grid and the simulator's
mechanics); ``fit.json`` gives each rule's range over them as its interval (a set the data
identify, not a probability, widened to the grid's neighbours: a rule that no flag in the
report tested spans its whole grid and is the prior's), and its value is the base's where
the report is consistent with it, else the middle of the consistent values. The other
learning rules (the window orders are counted over, the extra orders settlement plans need,
budget jumps, cumulative edits, conversion starvation) stay the base's.
"""

from __future__ import annotations

import numpy as np

from agents.calibration.account import AccountHistory
from agents.calibration.orders import Estimate
from agents.calibration.replay import unit_params
from envs.actions import SETTLEMENT_ROI
from envs.config import ScenarioConfig
from envs.inputs import day_constants
from envs.market import Decision, MarketModel
from envs.stages import Learning, apply_decision, progress_learning

RULES = ("learning_exit_orders", "learning_fail_days", "relearn_target_change")
# each rule's candidates (assumption: wide around the playbook's 20 orders, 7 days and 15%;
# the unseen strict-learning market's 50 orders, 5 days and 10% inside)
GRIDS: dict[str, np.ndarray] = {
    "learning_exit_orders": np.array([5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 25, 28, 32, 36,
                                      40, 45, 50, 60, 70, 80, 100, 125, 150, 200], float),
    "learning_fail_days": np.array([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 21, 28]),
    "relearn_target_change": np.array([0.03, 0.05, 0.07, 0.08, 0.1, 0.12, 0.15, 0.18, 0.2,
                                       0.25, 0.3, 0.4, 0.5, 0.7]),
}
UNITS = {"learning_exit_orders": "orders", "learning_fail_days": "days",
         "relearn_target_change": "relative change"}
DIGITS = {"learning_exit_orders": 1, "learning_fail_days": 0, "relearn_target_change": 3}
IDENTIFIED_SPAN = 0.5  # a rule is identified when its consistent values span at most this
# share of its grid's log range


def rule_estimates(history: AccountHistory, base: ScenarioConfig
                   ) -> tuple[dict[str, Estimate], list[str]]:
    """The learning rules the report's flags are consistent with (:data:`RULES`), and notes.

    A report without a ``learning`` column, without a day of learning, or whose days are not
    consecutive leaves every rule to the base (not identified)."""
    prior = {name: _prior(base, name) for name in RULES}
    if "learning" not in history.shown or not history.learning.any():
        return prior, ["the report shows no learning period: the learning rules (exit "
                       "orders, fail days, re-learning threshold) are the base's"]
    if np.any(np.diff(history.day) != 1):
        return prior, ["the report's days are not consecutive: the learning rules are the "
                       "base's (their replay needs every day)"]
    grid = np.meshgrid(*(GRIDS[name] for name in RULES), indexing="ij")
    candidates = {name: g.ravel() for name, g in zip(RULES, grid, strict=True)}
    misses = mismatched_days(history, base, candidates)
    consistent = misses == misses.min()
    out, notes = {}, []
    for name in RULES:
        values = np.unique(candidates[name][consistent])
        out[name] = estimate = _estimate(base, name, values)
        own = getattr(base, name)
        if estimate.identified and not estimate.low < own < estimate.high:
            notes.append(f"the report's learning flags rule out the base's {name} ({own:g}): "
                         f"{estimate.low:g}-{estimate.high:g} {UNITS[name]}, "
                         f"{estimate.value:g} taken")
    if misses.min() > 0:
        notes.append(f"no learning rule in the grid reproduces every day's learning flags "
                     f"(the best miss {int(misses.min())} of {history.days - 1} days): the "
                     "rules are those that miss the fewest")
    return out, notes


def rule_values(estimates: dict[str, Estimate]) -> dict[str, float | int]:
    """The scenario keys of the fitted rules (those ``estimates`` hold: a ``fit.json`` from
    before the rules were fitted has none, and its scenario keeps the base's)."""
    return {name: (int(round(estimates[name].value)) if DIGITS[name] == 0
                   else float(estimates[name].value))
            for name in RULES if name in estimates}


def mismatched_days(history: AccountHistory, base: ScenarioConfig,
                    candidates: dict[str, np.ndarray]) -> np.ndarray:
    """For each candidate rule (arrays (K,) by name in :data:`RULES`), the number of report
    days from the second on whose learning or LEARN_FAILED flag at dawn differs from the
    simulator's learning stages run along the report under that rule. (K,) int."""
    k = candidates[RULES[0]].size
    c = day_constants(base)._replace(
        learning_exit_orders=candidates["learning_exit_orders"].astype(float),
        learning_fail_days=candidates["learning_fail_days"].astype(np.int64),
        relearn_target_change=candidates["relearn_target_change"].astype(float))
    model = MarketModel(base)
    state = model.initial_state(unit_params(base, k), np.random.default_rng(0))
    h = history
    learning = np.full(k, bool(h.learning[0]))
    # a plan learning on the report's first day is taken as having just started (the
    # orders counted so far 0); a plan out of it as having run steadily at that day's orders
    steady = 0.0 if h.learning[0] else float(h.orders[0])
    state = state._replace(
        day=np.full(k, h.day[0], dtype=np.int64), target_roi=np.full(k, h.target[0]),
        budget_cny=np.full(k, h.budget[0]), shares=np.tile(h.shares[0], (k, 1)),
        learning=learning, learn_failed=np.full(k, bool(h.learn_failed[0])),
        recent_orders=np.full((base.starvation_window_days, k), steady))
    misses = np.zeros(k, dtype=np.int64)
    for t in range(h.days):
        launched = np.full(k, h.day[t] >= 0)
        if t > 0:
            state = state._replace(interrupted=np.full(k, bool(h.interrupted[t - 1])))
            decision = Decision(target_roi=np.full(k, h.target[t]),
                                budget_cny=np.full(k, h.budget[t]),
                                shares=np.tile(h.shares[t], (k, 1)),
                                refresh=np.full(k, h.creative_age[t] == 0))
            morning, dawn = apply_decision(c, state, decision, launched)
            misses += (dawn.learning != h.learning[t]) | (dawn.learn_failed
                                                          != h.learn_failed[t])
            shares = morning.shares
        else:
            dawn = Learning(state.learning, state.learn_failed, state.learn_days,
                            state.learn_orders, state.recent_edits, state.recent_orders)
            shares = state.shares  # the first day's state at dawn, as the report shows it
        learned = progress_learning(c, dawn, shares[:, SETTLEMENT_ROI],
                                    np.full(k, float(h.orders[t])), launched)
        state = state._replace(
            day=state.day + 1, target_roi=np.full(k, h.target[t]),
            budget_cny=np.full(k, h.budget[t]), shares=np.tile(h.shares[t], (k, 1)),
            learning=learned.learning, learn_failed=learned.learn_failed,
            learn_days=learned.learn_days, learn_orders=learned.learn_orders,
            recent_edits=learned.recent_edits, recent_orders=learned.recent_orders)
    return misses


def _estimate(base: ScenarioConfig, name: str, values: np.ndarray) -> Estimate:
    """A rule's estimate from its consistent grid values: the base's where the report is
    consistent with it, else the middle of the consistent values (geometric; whole days for
    the fail days). The interval runs to the grid's neighbours of the consistent values
    (the rules between them pass the same flags; beyond the neighbours the report rules
    them out), or to the grid's ends."""
    grid = GRIDS[name]
    own = float(getattr(base, name))
    low = float(grid[max(np.searchsorted(grid, values.min()) - 1, 0)])
    high = float(grid[min(np.searchsorted(grid, values.max()) + 1, grid.size - 1)])
    if low < own < high:
        value = own
    else:
        value = float(np.sqrt(values.min() * values.max()))
        value = float(round(value, DIGITS[name]))
    span = np.log(high / low) / np.log(grid.max() / grid.min())
    identified = bool(span <= IDENTIFIED_SPAN)
    return Estimate(value, low, high, UNITS[name], identified,
                    "the report's learning flags" if identified else "prior (base scenario)")


def _prior(base: ScenarioConfig, name: str) -> Estimate:
    grid = GRIDS[name]
    own = float(getattr(base, name))
    return Estimate(own, float(min(grid.min(), own)), float(max(grid.max(), own)),
                    UNITS[name], False, "prior (base scenario)")
