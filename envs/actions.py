"""Actions in [-1, 1] <-> the day's settings, within the platform's limits.

A change ``a`` moves a setting multiplicatively: ``new = old * (1 + max_step) ** a``, so its
inverse is ``a = ln(new / old) / ln(1 + max_step)``. In the ``full`` space, three more
components set the plan weights ``share_range ** a`` (normalised to budget shares of the
payment_roi, settlement_roi and volume plans) and a sixth (> 0) refreshes the creatives.
Platform limits apply after the step: target 0.01-100 with two decimals, budget >= 300 CNY.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from envs.compiled import compiled, helper

if TYPE_CHECKING:  # keep this module light: the recommendation CLI imports it
    from envs.config import ScenarioConfig
    from envs.market import Decision, MarketState

TARGET_MIN, TARGET_MAX = 0.01, 100.0  # the platform's accepted payment-ROI targets
BUDGET_MIN_CNY = 300.0  # the platform's minimum daily budget
ACTION_NAMES = {
    "basic": ("target_change", "budget_change"),
    "full": ("target_change", "budget_change", "weight_payment_roi", "weight_settlement_roi",
             "weight_volume", "creative_refresh"),
}


class ActionSettings(NamedTuple):
    """How an action maps to the day's settings: the scenario's step sizes and action space."""

    target_max_step: float  # largest target change per day, as a fraction (0.25: x1.25)
    budget_max_step: float  # largest budget change per day, as a fraction
    full: bool  # the ``full`` action space (plan weights and a refresh trigger)
    share_range: float  # a plan weight's range, share_range ** [-1, 1]
    scheduled_refresh_days: int  # creative refresh interval of ``basic`` actions (0: none)


def action_settings(cfg: ScenarioConfig) -> ActionSettings:
    """The scenario's :class:`ActionSettings`, each field cast to its declared type."""
    return ActionSettings(float(cfg.target_max_step), float(cfg.budget_max_step),
                          cfg.action_space == "full", float(cfg.share_range),
                          int(cfg.scheduled_refresh_days))


def action_dim(space: str) -> int:
    """Length of the action vector of ``space`` ('basic' or 'full')."""
    return len(ACTION_NAMES[space])


def validate_action(action: np.ndarray, dim: int) -> np.ndarray:
    """Return ``action`` as float (n, dim), not clipped; NaN or inf is an error."""
    a = np.asarray(action, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.shape[-1] != dim:
        raise ValueError(f"action has {a.shape[-1]} components, expected {dim}")
    # one sum is finite when every value is (a sum that overflows is checked value by value)
    if not math.isfinite(a.sum()) and not np.all(np.isfinite(a)):
        raise ValueError(f"action contains NaN or infinite values: {action!r}")
    return a


@helper
def platform_target(target_roi: np.ndarray) -> np.ndarray:
    """The target as the platform stores it: 0.01-100, two decimals."""
    return np.round(np.minimum(np.maximum(target_roi, TARGET_MIN), TARGET_MAX), 2)


@helper
def platform_budget(budget_cny: np.ndarray) -> np.ndarray:
    """The budget as the platform accepts it: at least 300 CNY."""
    return np.maximum(budget_cny, BUDGET_MIN_CNY)


def to_decision(cfg: ScenarioConfig, state: MarketState, action: np.ndarray,
                engine: str | None = None) -> Decision:
    """The morning's settings from a checked action (n, dim).

    :param engine: ``numba`` or ``numpy`` (:mod:`envs.compiled`); default
        ``$QIANCHUAN_ENGINE``, else ``numba``.
    """
    from envs.market import Decision

    decide = compiled(decision_arrays, engine)
    settings = action_settings(cfg)
    return Decision(*decide(np.asarray(action, dtype=np.float64), state.target_roi,
                            state.budget_cny, state.shares, state.day, state.creative_age_days,
                            settings.target_max_step, settings.budget_max_step, settings.full,
                            settings.share_range, settings.scheduled_refresh_days))


@helper
def decision_arrays(action: np.ndarray, target_roi: np.ndarray, budget_cny: np.ndarray,
                    shares: np.ndarray, day: np.ndarray, creative_age_days: np.ndarray,
                    target_max_step: float, budget_max_step: float, full: bool,
                    share_range: float, scheduled_refresh_days: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel of :func:`to_decision`: new target, budget, shares and refresh flags.

    :param action: (n, dim) float64, clipped here to [-1, 1]; the state's arrays follow, then
        the fields of :class:`ActionSettings`.
    """
    action = np.minimum(np.maximum(action, -1.0), 1.0)
    target = platform_target(target_roi * (1.0 + target_max_step) ** action[:, 0])
    budget = platform_budget(budget_cny * (1.0 + budget_max_step) ** action[:, 1])
    if full:
        weights = share_range ** action[:, 2:5]
        total = weights[:, 0] + weights[:, 1] + weights[:, 2]
        new_shares = weights / np.expand_dims(total, 1)
        refresh = action[:, 5] > 0.0
    else:
        new_shares = shares.copy()
        every = scheduled_refresh_days
        refresh = (every > 0) & (day > 0) & (creative_age_days >= every)
    return target, budget, new_shares, refresh


def encode_action(cfg: ScenarioConfig, target_ratio: np.ndarray, budget_ratio: np.ndarray,
                  shares: np.ndarray | None = None,
                  refresh: np.ndarray | None = None) -> np.ndarray:
    """The action that moves target and budget by the given ratios (clipped to the step).

    :param target_ratio: wanted new target / current target.
    :param budget_ratio: wanted new budget / current budget.
    :param shares: (n, 3) wanted budget shares (``full`` only; positive, any scale).
    :param refresh: (n,) bool, refresh creatives (``full`` only).
    :return: float32 (n, action_dim).
    """
    tr = np.atleast_1d(np.asarray(target_ratio, dtype=np.float64))
    br = np.atleast_1d(np.asarray(budget_ratio, dtype=np.float64))
    cols = [np.log(tr) / np.log1p(cfg.target_max_step), np.log(br) / np.log1p(cfg.budget_max_step)]
    if cfg.action_space == "full":
        n = tr.shape[0]
        s = np.full((n, 3), 1.0) if shares is None else np.maximum(np.atleast_2d(shares), 1e-9)
        logs = np.log(s)
        # centre so the largest weight is at +1 where the range allows it
        logs = logs - logs.max(axis=1, keepdims=True)
        cols += list((1.0 + logs / np.log(cfg.share_range)).T)
        rf = np.zeros(n, dtype=bool) if refresh is None else np.atleast_1d(refresh)
        cols.append(np.where(rf, 1.0, -1.0))
    return np.clip(np.stack(cols, axis=1), -1.0, 1.0).astype(np.float32)
