"""Anchored actions: a policy's output as a bounded residual on fixed settings.

A learned policy that changes raw settings day by day has to discover, from noisy profit, both
where good settings lie and that small daily edits add up to re-learning (the cumulative rule
of :func:`envs.actions.edit_size`). Anchored actions give it the first for free and protect it
from the second: the policy outputs levels relative to an **anchor** (fixed settings: a target
as a multiple of break-even, a budget as a multiple of the launch budget, plan shares, a
refresh interval; ``static``'s tuned settings for a named scenario), and this module turns
them into the env's ``full`` action with the operator's step rules:

- the target moves towards ``anchor target x TARGET_SPAN ** r`` in steps just under the
  change that restarts learning (:func:`target_move`);
- the budget moves towards ``anchor budget x BUDGET_SPAN ** r``: rises just under the jump
  that restarts learning, cuts within the action's bound;
- plan shares are the anchor's with each plan's log-weight moved by ``SHARE_LOG_SPAN x r``;
- creatives are refreshed on the anchor's schedule;
- out of learning and past the launch week, a day's edit is scaled down so that the edits of
  the re-learning window (:func:`edit_load`, read off the dashboard) stay at or under
  ``EDIT_CAP`` of the amount that restarts learning.

The zero residual is the anchor, reached as ``static`` reaches it. Everything here reads
what the advertiser sees (the observation, the dashboard history, its own launch budget), so
training, evaluation and ``recommend`` map residuals the same way. Plain NumPy: no simulator,
no Numba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.actions import edit_size, encode_action, plan_names, plan_share_row
from envs.history import COL, decode_features, feature_names

if TYPE_CHECKING:
    from envs.config import ScenarioConfig

STEP_MARGIN = 0.95  # steps are this share of the change that restarts learning
# Residual spans (assumptions, not fitted): r = +-1 moves the wanted target by x1.5^+-1 (the
# tuned static targets span 1.2-2.2 x break-even across scenarios and objectives), the wanted
# budget by x2^+-1 (static budgets span 0.5-1.3 x launch), a plan's weight by e^+-3 (x20).
TARGET_SPAN = 1.5
BUDGET_SPAN = 2.0
SHARE_LOG_SPAN = 3.0
SHARE_FLOOR = 1e-3  # anchor shares below this count as this (a residual can bring them in)
EDIT_CAP = 0.9  # share of the re-learning threshold the window's edits may use
ANCHOR_FEATURES = ("anchor_target_over_breakeven", "anchor_log_budget_over_launch",
                   "anchor_share_whole_site", "log_target_to_anchor", "log_budget_to_anchor",
                   "edit_load")


@dataclass(frozen=True)
class StaticSettings:
    """Fixed settings, scale-free so they carry across accounts of a scenario: ``static``'s
    and ``static_rule``'s, and the anchor of anchored actions."""

    target_over_breakeven: float  # payment-ROI target / the break-even ROI
    shares: tuple[float, ...]  # budget shares: payment_roi, settlement_roi, volume and, as a
    # fourth value, whole_site (3 values: whole_site 0; envs.actions.plan_share_row)
    budget_over_launch: float  # daily budget / the launch budget
    refresh_days: int  # refresh creatives when they are this old (0: never)

    def __post_init__(self) -> None:
        if not (self.target_over_breakeven > 0 and self.budget_over_launch > 0):
            raise ValueError("target_over_breakeven and budget_over_launch must be > 0")
        if len(self.shares) not in (3, 4) or min(self.shares) < 0 or sum(self.shares) <= 0:
            raise ValueError(f"shares must be three or four non-negative weights, got "
                             f"{self.shares}")
        if self.refresh_days < 0:
            raise ValueError(f"refresh_days must be >= 0, got {self.refresh_days}")


STATIC_FIELDS = tuple(f.name for f in fields(StaticSettings))  # their order in plain data


def settings_as_data(settings: StaticSettings, digits: int | None = None) -> dict[str, Any]:
    """Settings as plain data (JSON, YAML), keyed by :data:`STATIC_FIELDS` in order: numbers
    as ``float``, ``shares`` a list, ``refresh_days`` an ``int``.

    :param digits: round the numbers to this many decimals (None: exact, as a manifest's
        anchors hold them).
    """

    def number(value: float) -> float:
        value = float(value)
        return value if digits is None else round(value, digits)

    return {"target_over_breakeven": number(settings.target_over_breakeven),
            "shares": [number(x) for x in settings.shares],
            "budget_over_launch": number(settings.budget_over_launch),
            "refresh_days": int(settings.refresh_days)}


# --------------------------------------------------------------------- the operator's steps
def target_step(config: ScenarioConfig) -> float:
    """The largest daily relative target change used: under the one that restarts
    learning, within the action's bound."""
    if config.relearn_target_change > 0:
        return min(config.target_max_step, STEP_MARGIN * config.relearn_target_change)
    return config.target_max_step


def budget_rise_step(config: ScenarioConfig) -> float:
    """The largest daily relative budget rise used: under the jump that restarts learning,
    within the action's bound."""
    if config.relearn_budget_jump > 0:
        return min(config.budget_max_step, STEP_MARGIN * config.relearn_budget_jump)
    return config.budget_max_step


def budget_steps(config: ScenarioConfig, multiple: float) -> tuple[int, float]:
    """(days, daily ratio) of the ramp from the launch budget to ``multiple`` x it: raises
    within :func:`budget_rise_step`, cuts within the action's bound."""
    if abs(math.log(multiple)) < 1e-9:
        return 0, 1.0
    step = budget_rise_step(config) if multiple > 1 else config.budget_max_step
    days = math.ceil(abs(math.log(multiple)) / math.log1p(step) - 1e-9)
    return days, multiple ** (1.0 / days)


def target_move(config: ScenarioConfig, current: np.ndarray, wanted: np.ndarray
                ) -> np.ndarray:
    """Today's target ratio from ``current`` towards ``wanted`` (GMV/spend), within
    :func:`target_step`."""
    step = target_step(config)
    return np.clip(wanted / np.maximum(current, 1e-2), 1.0 / (1.0 + step), 1.0 + step)


def budget_move(config: ScenarioConfig, current: np.ndarray, wanted: np.ndarray
                ) -> np.ndarray:
    """Today's budget ratio from ``current`` towards ``wanted`` (CNY): rises within
    :func:`budget_rise_step`, cuts within the action's bound."""
    return np.clip(wanted / np.maximum(current, 1.0), 1.0 / (1.0 + config.budget_max_step),
                   1.0 + budget_rise_step(config))


def refresh_due(creative_age_days: np.ndarray, plan_age_days: np.ndarray,
                every_days: int) -> np.ndarray:
    """Bool (n,): refresh the creatives today, on a schedule of ``every_days`` (0: never),
    never on launch day."""
    if every_days <= 0:
        return np.zeros(creative_age_days.shape[0], dtype=bool)
    return (creative_age_days >= every_days - 0.5) & (plan_age_days > 0)


# --------------------------------------------------------------------- what the dashboard says
def edit_load(config: ScenarioConfig, history: np.ndarray) -> np.ndarray:
    """The edits of the re-learning window before today, in units of the threshold that
    restarts learning (:func:`envs.actions.edit_size`), read off the dashboard's daily target
    and budget (n,). A restart clears the model's count; the dashboard does not show it, so
    this is an upper bound (it slows edits after a restart, never speeds them).

    :param history: (n, days, columns) of :data:`envs.history.COLUMNS`, oldest first, the last
        row yesterday; at least ``relearn_window_days`` days.
    """
    if not config.relearn_cumulative_enabled:
        return np.zeros(history.shape[0])
    rows = history[:, -config.relearn_window_days:, :]
    target = np.maximum(rows[:, :, COL["target_roi"]], 1e-2)
    budget = np.maximum(rows[:, :, COL["budget"]], 1.0)
    sizes = edit_size(config, target[:, :-1], target[:, 1:], budget[:, :-1], budget[:, 1:])
    return sizes.sum(axis=1)


def launch_week(config: ScenarioConfig, features: dict[str, np.ndarray]) -> np.ndarray:
    """Bool (n,): edits are not capped today (the plan is learning, or in its launch week,
    when the anchor's own ramp restarts learning anyway)."""
    return (features["learning"] > 0.5) | (features["plan_age_days"]
                                           < config.relearn_window_days - 0.5)


# --------------------------------------------------------------------- residual -> action
def anchor_levels(anchor: StaticSettings, features: dict[str, np.ndarray],
                  launch_budget_cny: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The anchor's target (GMV/spend) and budget (CNY) for each account (n,)."""
    return (anchor.target_over_breakeven * features["breakeven_roi"],
            anchor.budget_over_launch * np.asarray(launch_budget_cny, dtype=np.float64))


def anchor_features(config: ScenarioConfig, anchor: StaticSettings, observation: np.ndarray,
                    history: np.ndarray, launch_budget_cny: np.ndarray) -> np.ndarray:
    """The features appended to the env's observation for an anchored policy, (n, 6), in the
    order of :data:`ANCHOR_FEATURES`: the anchor itself (target / break-even, ln budget /
    launch, whole-site share), where today's settings stand against it (ln ratios) and
    :func:`edit_load`."""
    f = decode_features(observation)
    target, budget = anchor_levels(anchor, f, launch_budget_cny)
    n = target.shape[0]
    now_budget = history[:, -1, COL["budget"]]
    return np.stack([
        np.full(n, anchor.target_over_breakeven),
        np.full(n, math.log(anchor.budget_over_launch)),
        np.full(n, plan_share_row(anchor.shares)[3] / sum(anchor.shares)),
        np.log(np.maximum(f["target_roi"], 1e-2) / target),
        np.log(np.maximum(now_budget, 1.0) / budget),
        edit_load(config, history)], axis=1)


def anchored_features(config: ScenarioConfig, anchor: StaticSettings, observation: np.ndarray,
                      history: np.ndarray, launch_budget_cny: np.ndarray) -> np.ndarray:
    """What an anchored policy's network sees: the env's observation (n, F) and
    :func:`anchor_features`, float32 (n, F + 6)."""
    extra = anchor_features(config, anchor, observation, history, launch_budget_cny)
    return np.concatenate([observation, extra], axis=1).astype(np.float32)


def anchored_feature_names(config: ScenarioConfig) -> tuple[str, ...]:
    """The names of :func:`anchored_features`' columns."""
    return (*feature_names(config), *ANCHOR_FEATURES)


def residual_names(config: ScenarioConfig) -> tuple[str, ...]:
    """The components of an anchored action: target and budget levels, a weight per plan."""
    return ("target_level", "budget_level", *(f"weight_{p}" for p in plan_names(config)))


def anchored_action(config: ScenarioConfig, anchor: StaticSettings, residual: np.ndarray,
                    observation: np.ndarray, history: np.ndarray,
                    launch_budget_cny: np.ndarray) -> np.ndarray:
    """The env's ``full`` action (float32 (n, dim)) for a residual (n, len(residual_names))
    in [-1, 1] (clipped) on ``anchor``.

    :param observation: the env's raw observation (n, F) for today.
    :param history: the dashboard (n, days, columns), the last row yesterday.
    :param launch_budget_cny: (n,) the plan's launch budget.
    """
    r = np.clip(np.asarray(residual, dtype=np.float64), -1.0, 1.0)
    f = decode_features(observation)
    target, budget = anchor_levels(anchor, f, launch_budget_cny)
    now_budget = np.maximum(history[:, -1, COL["budget"]], 1.0)
    log_t = np.log(target_move(config, f["target_roi"], target * TARGET_SPAN ** r[:, 0]))
    log_b = np.log(budget_move(config, now_budget, budget * BUDGET_SPAN ** r[:, 1]))
    # out of learning, keep the window's edits under the cap (cuts of budget are free)
    used = (edit_size(config, np.ones_like(log_t), np.exp(log_t), np.ones_like(log_b),
                      np.exp(log_b)))
    room = np.where(launch_week(config, f), np.inf,
                    np.maximum(EDIT_CAP - edit_load(config, history), 0.0))
    scale = np.where(used > room, room / np.maximum(used, 1e-12), 1.0)
    log_t = log_t * scale
    log_b = np.where(log_b > 0.0, log_b * scale, log_b)
    plans = len(plan_names(config))
    logits = (np.log(np.maximum(plan_share_row(anchor.shares)[:plans], SHARE_FLOOR))
              + SHARE_LOG_SPAN * r[:, 2:2 + plans])
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    refresh = refresh_due(f["creative_age_days"], np.rint(f["plan_age_days"]),
                          anchor.refresh_days)
    return encode_action(config, np.exp(log_t), np.exp(log_b),
                         shares=weights / weights.sum(axis=1, keepdims=True), refresh=refresh)
