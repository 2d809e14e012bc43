"""From an action to the settings to enter tomorrow, within the platform's rules.

:func:`raw_settings` maps an action in [-1, 1] to the settings it asks for by the env's own
mapping (:func:`envs.actions.requested_arrays`, before any limit). :func:`apply_guards`
then applies, in order, the guards that are serving's (1, 2) and the platform's limits as
the env applies them (3-5: :func:`envs.actions.target_in_range`,
:func:`envs.actions.platform_target`, :func:`envs.actions.platform_budget`), noting each
change:

1. ``learning_hold``: while the plan is learning, hold the target, budget and plan shares
   (an edit restarts or prolongs learning), unless the policy's rule acts during learning
   (``acts_while_learning``) or the user allows it. A plan that failed learning is throttled
   until changed, so it is not held.
2. ``edit_limit``: at most :data:`MAX_TARGET_EDITS_PER_DAY` target edits a day (more forfeit
   cost protection); once they are used, the target holds.
3. ``target_range``: the platform accepts targets 0.01-100.
4. ``target_two_decimals``: the platform stores targets with two decimals.
5. ``budget_minimum``: the platform's minimum daily budget is 300 CNY.

Each guard that changed the raw answer leaves a :class:`GuardNote` saying what and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.actions import (
    BUDGET_MIN_CNY,
    PLANS,
    TARGET_MAX,
    TARGET_MIN,
    action_settings,
    plan_share_row,
    platform_budget,
    platform_target,
    requested_arrays,
    target_in_range,
)
from envs.config import ScenarioConfig

MAX_TARGET_EDITS_PER_DAY = 2


@dataclass
class Settings:
    """A batch of accounts' settings. Arrays of shape (n,); ``shares`` (n, 4).

    :param target_roi: payment-ROI target (GMV/spend).
    :param budget_cny: daily budget (CNY).
    :param shares: budget shares of the plans, columns :data:`envs.actions.PLANS` (given
        (n, 3), whole_site is 0).
    :param refresh: refresh the creatives today (``full`` action space only).
    """

    target_roi: np.ndarray
    budget_cny: np.ndarray
    shares: np.ndarray
    refresh: np.ndarray

    def __post_init__(self) -> None:
        self.shares = plan_share_row(self.shares)

    def copy(self) -> Settings:
        return Settings(self.target_roi.copy(), self.budget_cny.copy(), self.shares.copy(),
                        self.refresh.copy())


@dataclass(frozen=True)
class GuardNote:
    """One guard that changed one setting of the raw answer."""

    guard: str
    setting: str
    raw: float
    value: float
    reason: str

    def describe(self) -> str:
        fmt = "{:,.2f}" if self.setting == "budget_cny" else "{:.6g}"
        return (f"{self.guard}: {self.setting} {fmt.format(self.raw)} -> "
                f"{fmt.format(self.value)} ({self.reason})")


def raw_settings(cfg: ScenarioConfig, action: np.ndarray, current: Settings) -> Settings:
    """The settings an action (n, action_dim) asks for, by the env's mapping
    (:func:`envs.actions.requested_arrays`): ``new = old (1 + max_step) ** a`` for target
    and budget; in ``full``, the plan shares of the weights and a creative refresh when its
    component is > 0. No platform limit yet. In ``basic`` the env refreshes creatives on the
    scenario's schedule, not on the policy's answer: nothing to recommend, so no refresh."""
    n = len(current.target_roi)
    a = np.asarray(action, dtype=np.float64).reshape(n, -1)
    unscheduled = action_settings(cfg)._replace(scheduled_refresh_days=0)
    never = np.zeros(n)  # the day and creative age, read only by the schedule
    target, budget, shares, refresh = requested_arrays(
        a, current.target_roi, current.budget_cny, current.shares, never, never, unscheduled)
    return Settings(target, budget, shares, refresh)


def apply_guards(raw: Settings, current: Settings, learning: np.ndarray,
                 learn_failed: np.ndarray, edits_today: np.ndarray | int = 0,
                 acts_while_learning: bool = False) -> tuple[Settings, list[list[GuardNote]]]:
    """The settings to enter, and per account the guards that changed the raw answer.

    :param raw: what the policy asked for (:func:`raw_settings`).
    :param current: the settings in force (the report's last row).
    :param learning: (n,) the plan is in its learning period now.
    :param learn_failed: (n,) the plan failed to leave learning.
    :param edits_today: target edits already made today (the day being decided).
    :param acts_while_learning: the policy's rule decides during learning: no hold.
    """
    n = len(raw.target_roi)
    out = raw.copy()
    notes: list[list[GuardNote]] = [[] for _ in range(n)]
    edits = np.broadcast_to(np.asarray(edits_today), (n,))

    def note(i: int, guard: str, setting: str, before: float, after: float, why: str):
        notes[i].append(GuardNote(guard, setting, float(before), float(after), why))

    hold = np.asarray(learning, bool) & ~np.asarray(learn_failed, bool)
    for i in np.flatnonzero(hold) if not acts_while_learning else ():
        why = ("the plan is learning: an edit restarts or prolongs it; hold until it exits "
               "(--act-while-learning overrides)")
        for setting, new, old in (("target_roi", out.target_roi, current.target_roi),
                                  ("budget_cny", out.budget_cny, current.budget_cny)):
            if new[i] != old[i]:
                note(i, "learning_hold", setting, new[i], old[i], why)
                new[i] = old[i]
        for k, plan in enumerate(PLANS):
            if out.shares[i, k] != current.shares[i, k]:
                note(i, "learning_hold", f"share_{plan}", out.shares[i, k],
                     current.shares[i, k], why)
        out.shares[i] = current.shares[i]
        if out.refresh[i]:
            note(i, "learning_hold", "creative_refresh", 1.0, 0.0, why)
            out.refresh[i] = False

    stored = platform_target(out.target_roi)
    for i in np.flatnonzero((edits >= MAX_TARGET_EDITS_PER_DAY)
                            & (stored != current.target_roi)):
        note(i, "edit_limit", "target_roi", out.target_roi[i], current.target_roi[i],
             f"{int(edits[i])} target edits already today; the platform allows "
             f"{MAX_TARGET_EDITS_PER_DAY} (more forfeit cost protection)")
        out.target_roi[i] = current.target_roi[i]

    clipped = target_in_range(out.target_roi)
    for i in np.flatnonzero(clipped != out.target_roi):
        note(i, "target_range", "target_roi", out.target_roi[i], clipped[i],
             f"the platform accepts targets {TARGET_MIN}-{TARGET_MAX:g}")
    rounded = platform_target(out.target_roi)
    for i in np.flatnonzero(np.abs(rounded - clipped) > 1e-12):
        note(i, "target_two_decimals", "target_roi", clipped[i], rounded[i],
             "the platform stores targets with two decimals")
    out.target_roi = rounded

    floored = platform_budget(out.budget_cny)
    for i in np.flatnonzero(floored != out.budget_cny):
        note(i, "budget_minimum", "budget_cny", out.budget_cny[i], floored[i],
             f"the platform's minimum daily budget is {BUDGET_MIN_CNY:.0f} CNY")
    out.budget_cny = floored
    return out, notes
