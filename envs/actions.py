"""Actions in [-1, 1] <-> the day's settings, within the platform's limits.

A change ``a`` moves a setting multiplicatively: ``new = old * (1 + max_step) ** a``, so its
inverse is ``a = ln(new / old) / ln(1 + max_step)``. In the ``full`` space, three more
components set the plan weights ``share_range ** a`` (normalised to budget shares of the
payment_roi, settlement_roi and volume plans), with ``whole_site_enabled`` a fourth,
``weight_whole_site``, sets the whole-site plan's weight ``share_range ** a - 1 /
share_range`` (0 at ``a = -1``: the plan can be off), and the last (> 0) refreshes the
creatives. The components are named by :func:`action_names`; code finds them by name.
Platform limits apply after the step: target 0.01-100 with two decimals, budget >= 300 CNY.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from envs.compiled import compiled, helper
from envs.excerpt import excerpt

if TYPE_CHECKING:  # keep this module light: the recommendation CLI imports it
    from envs.config import ScenarioConfig
    from envs.inputs import DayConstants
    from envs.market import Decision, MarketState

TARGET_MIN, TARGET_MAX = 0.01, 100.0  # the platform's accepted payment-ROI targets
BUDGET_MIN_CNY = 300.0  # the platform's minimum daily budget
# The plan types, in the order of the budget-share columns (envs.stages.PAYMENT_ROI ..
# WHOLE_SITE). Every share array has all four columns; whole_site's is 0 unless
# whole_site_enabled.
PLANS = ("payment_roi", "settlement_roi", "volume", "whole_site")
PAYMENT_ROI, SETTLEMENT_ROI, VOLUME, WHOLE_SITE = range(len(PLANS))  # their columns
STANDARD_PLANS = PLANS[:3]  # the plans of the first version (3-share settings mean these)


def plan_names(cfg: ScenarioConfig) -> tuple[str, ...]:
    """The plans the scenario has: :data:`STANDARD_PLANS`, and whole_site with
    ``whole_site_enabled``."""
    return PLANS if cfg.whole_site_enabled else STANDARD_PLANS


def action_names(cfg: ScenarioConfig) -> tuple[str, ...]:
    """The names of the action's components, in order: ``basic`` is the target and budget
    changes; ``full`` adds a weight per plan (``weight_whole_site`` only with
    ``whole_site_enabled``) and the creative refresh."""
    if cfg.action_space == "basic":
        return ("target_change", "budget_change")
    return ("target_change", "budget_change", *(f"weight_{p}" for p in plan_names(cfg)),
            "creative_refresh")


def action_dim(cfg: ScenarioConfig) -> int:
    """Length of the action vector of ``cfg`` (its action space and plans)."""
    return len(action_names(cfg))


def plan_share_row(shares: tuple[float, ...] | list[float] | np.ndarray) -> np.ndarray:
    """Budget shares as a (..., 4) array in the order of :data:`PLANS`: three values are
    the first version's plans (whole_site 0), four include whole_site."""
    s = np.asarray(shares, dtype=np.float64)
    if s.shape[-1] == len(PLANS):
        return s.copy()
    if s.shape[-1] != len(STANDARD_PLANS):
        raise ValueError(f"plan shares need 3 or 4 values, got {s.shape[-1]}")
    return np.concatenate([s, np.zeros(s.shape[:-1] + (1,))], axis=-1)


class ActionSettings(NamedTuple):
    """How an action maps to the day's settings: the scenario's step sizes and action space,
    and where the components are (found by name in :func:`action_names`)."""

    target_max_step: float  # largest target change per day, as a fraction (0.25: x1.25)
    budget_max_step: float  # largest budget change per day, as a fraction
    full: bool  # the ``full`` action space (plan weights and a refresh trigger)
    share_range: float  # a plan weight's range, share_range ** [-1, 1]
    scheduled_refresh_days: int  # creative refresh interval of ``basic`` actions (0: none)
    target_column: int  # the component 'target_change'
    budget_column: int  # the component 'budget_change'
    first_weight_column: int  # 'weight_payment_roi' (full; -1 in basic)
    weights: int  # plan weights in the action (3, or 4 with whole_site; 0 in basic)
    refresh_column: int  # 'creative_refresh' (full; -1 in basic)


def action_settings(cfg: ScenarioConfig) -> ActionSettings:
    """The scenario's :class:`ActionSettings`, each field cast to its declared type."""
    names = action_names(cfg)

    def column(name: str) -> int:
        return names.index(name) if name in names else -1

    return ActionSettings(float(cfg.target_max_step), float(cfg.budget_max_step),
                          cfg.action_space == "full", float(cfg.share_range),
                          int(cfg.scheduled_refresh_days), column("target_change"),
                          column("budget_change"), column("weight_payment_roi"),
                          sum(name.startswith("weight_") for name in names),
                          column("creative_refresh"))


_REAL_KINDS = frozenset("fiu")  # NumPy dtype kinds of an action: float, signed, unsigned int


def action_batch(action: Any, n: int, dim: int) -> np.ndarray:
    """An action for ``n`` accounts as a float64 (n, dim) array, not clipped: the one check
    of what the env, the vectorised env and the simulator take.

    An array of real numbers of the right shape passes with two attribute reads (the hot
    path: training and evaluation step here every day); anything else goes to
    :func:`validate_action`, which names what is wrong. Finiteness is checked where the
    action is used (the compiled day raises on NaN; the caller then calls
    :func:`validate_action` for the message).

    :param action: (n, dim), or (dim,) for one account.
    :raises ValueError: not real numbers, or not of that shape.
    """
    try:
        a = np.asarray(action)
    except (ValueError, TypeError):  # ragged lists
        return validate_action(action, dim, n)
    if a.dtype.kind in _REAL_KINDS:
        if a.shape == (n, dim):
            return a.astype(np.float64, copy=False)
        if n == 1 and a.shape == (dim,):  # one account's action (the Gymnasium env)
            return a.astype(np.float64)[None, :]
    return validate_action(action, dim, n)


def validate_action(action: Any, dim: int, n: int | None = None) -> np.ndarray:
    """Return ``action`` as float64 (n, dim), not clipped; a clear ``ValueError`` otherwise:
    not an array of real numbers (``None``, a string, complex numbers), not (dim,) or
    (n, dim) (a scalar, a list of lists of another length), NaN or inf.

    :param n: the accounts the action is for (``None``: any number of rows).
    """
    try:
        a = np.asarray(action)
    except (ValueError, TypeError):  # ragged lists
        a = np.empty(0, dtype=object)
    if a.dtype.kind not in _REAL_KINDS:
        what = "complex numbers" if a.dtype.kind == "c" else (
            "a ragged list" if a.size == 0 else f"{a.dtype} values")
        raise ValueError(f"action must be real numbers in [-1, 1], got {what}: "
                         f"{excerpt(action)}")
    rows = "n" if n is None else n
    if a.ndim == 1 and n in (1, None):
        a = a[None, :]
    if a.ndim != 2 or a.shape[-1] != dim or (n is not None and a.shape[0] != n):
        if a.ndim in (1, 2) and a.shape[-1] != dim:
            reason = f"has {a.shape[-1]} components"
        elif a.ndim == 2:
            reason = f"has {a.shape[0]} rows for {n} account{'s' * (n != 1)}"
        else:
            reason = f"has shape {a.shape}"
        single = f"({dim},) for one account or " if n in (1, None) else ""
        raise ValueError(f"action {reason}: expected {single}({rows}, {dim}), got "
                         f"{excerpt(action)}")
    a = a.astype(np.float64, copy=False)
    # one sum is finite when every value is (a sum that overflows is checked value by value)
    if not math.isfinite(a.sum()) and not np.all(np.isfinite(a)):
        raise ValueError(f"action contains NaN or infinite values: {excerpt(action)}")
    return a


@helper
def target_in_range(target_roi: np.ndarray) -> np.ndarray:
    """The target within the platform's accepted range 0.01-100 (not yet rounded)."""
    return np.minimum(np.maximum(target_roi, TARGET_MIN), TARGET_MAX)


@helper
def platform_target(target_roi: np.ndarray) -> np.ndarray:
    """The target as the platform stores it: 0.01-100 (:func:`target_in_range`), two
    decimals."""
    return np.round(target_in_range(target_roi), 2)


@helper
def edit_size(c: DayConstants | ScenarioConfig, target_roi: np.ndarray, new_target_roi: np.ndarray,
              budget_cny: np.ndarray, new_budget_cny: np.ndarray) -> np.ndarray:
    """How much of the learning a morning's edit consumes: ``|ln(new/old target)| /
    ln(1 + relearn_target_change)`` plus a budget rise's ``ln(new/old budget) /
    ln(1 + relearn_budget_jump)`` (cuts are free, as in the one-day rule); 1 is an edit at
    the one-day threshold. Unitless, (n,)."""
    target_part = np.abs(np.log(new_target_roi / target_roi)) / np.log1p(
        np.maximum(c.relearn_target_change, 1e-9))
    budget_part = np.maximum(np.log(new_budget_cny / budget_cny), 0.0) / np.log1p(
        np.maximum(c.relearn_budget_jump, 1e-9))
    return target_part + budget_part


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

    decide = compiled(decision_of_tuple, engine)
    return Decision(*decide(np.asarray(action, dtype=np.float64), state.target_roi,
                            state.budget_cny, state.shares, state.day, state.creative_age_days,
                            tuple(action_settings(cfg))))


def decision_of_tuple(action: np.ndarray, target_roi: np.ndarray, budget_cny: np.ndarray,
                      shares: np.ndarray, day: np.ndarray, creative_age_days: np.ndarray,
                      settings: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decision_arrays` with the :class:`ActionSettings` as a plain tuple (the compiled
    entry: a plain tuple crosses into compiled code fast, :mod:`envs.inputs`)."""
    return decision_arrays(action, target_roi, budget_cny, shares, day, creative_age_days,
                           ActionSettings(*settings))


@helper
def powers(base: float, exponents: np.ndarray) -> np.ndarray:
    """``base ** exponents`` (n,), one number at a time through the C library's ``pow``
    (``math.pow``), which compiled code calls too. NumPy's array power takes SIMD paths
    (SVML on AVX-512 CPUs) that round an ulp away from it, so the two engines, and serving
    (NumPy) against the env (compiled), would differ by an ulp on such CPUs (a plan's share
    0.2588951876952179 against 0.25889518769521797)."""
    out = np.empty(exponents.shape[0])
    for i in range(exponents.shape[0]):
        out[i] = math.pow(base, exponents[i])
    return out


@helper
def weight_shares(weight_actions: np.ndarray, share_range: float) -> np.ndarray:
    """Budget shares (n, 4), columns in the order of :data:`PLANS`, from the plan-weight
    components (n, 3 or 4) clipped to [-1, 1]: weights ``share_range ** a`` (whole_site's,
    the fourth, ``share_range ** a - 1 / share_range``, 0 at ``a = -1``), normalised."""
    weights = np.empty(weight_actions.shape)
    for plan in range(weight_actions.shape[1]):
        weights[:, plan] = powers(share_range, weight_actions[:, plan])
    if weight_actions.shape[1] > 3:  # exactly 0 at a = -1 (the plan is off)
        weights[:, 3] = np.where(weight_actions[:, 3] > -1.0,
                                 np.maximum(weights[:, 3] - 1.0 / share_range, 0.0), 0.0)
    total = weights[:, 0] + weights[:, 1] + weights[:, 2]
    for plan in range(3, weights.shape[1]):
        total = total + weights[:, plan]
    shares = np.zeros((weights.shape[0], len(PLANS)))
    shares[:, :weights.shape[1]] = weights / np.expand_dims(total, 1)
    return shares


@helper
def requested_arrays(action: np.ndarray, target_roi: np.ndarray, budget_cny: np.ndarray,
                     shares: np.ndarray, day: np.ndarray, creative_age_days: np.ndarray,
                     settings: ActionSettings
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What an action asks for, before the platform's limits: new target, budget, shares
    (n, 4) and refresh flags (:func:`decision_arrays` then applies the limits; ``recommend``
    shows this raw answer and notes each limit that changed it).

    :param action: (n, dim) float64, clipped here to [-1, 1]; the state's arrays follow, then
        the scenario's :class:`ActionSettings` (``basic``: creatives refresh every
        ``scheduled_refresh_days``, 0 never).
    """
    action = np.minimum(np.maximum(action, -1.0), 1.0)
    s = settings
    target = target_roi * powers(1.0 + s.target_max_step, action[:, s.target_column])
    budget = budget_cny * powers(1.0 + s.budget_max_step, action[:, s.budget_column])
    if s.full:
        first = s.first_weight_column
        new_shares = weight_shares(action[:, first:first + s.weights], s.share_range)
        refresh = action[:, s.refresh_column] > 0.0
    else:
        new_shares = shares.copy()
        every = s.scheduled_refresh_days
        refresh = (every > 0) & (day > 0) & (creative_age_days >= every)
    return target, budget, new_shares, refresh


@helper
def decision_arrays(action: np.ndarray, target_roi: np.ndarray, budget_cny: np.ndarray,
                    shares: np.ndarray, day: np.ndarray, creative_age_days: np.ndarray,
                    settings: ActionSettings
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel of :func:`to_decision`: new target, budget, shares (n, 4) and refresh
    flags, :func:`requested_arrays` within the platform's limits.

    :param action: (n, dim) float64, clipped here to [-1, 1]; the state's arrays follow, then
        the scenario's :class:`ActionSettings`.
    """
    target, budget, new_shares, refresh = requested_arrays(
        action, target_roi, budget_cny, shares, day, creative_age_days, settings)
    return platform_target(target), platform_budget(budget), new_shares, refresh


def encode_action(cfg: ScenarioConfig, target_ratio: np.ndarray, budget_ratio: np.ndarray,
                  shares: np.ndarray | None = None,
                  refresh: np.ndarray | None = None) -> np.ndarray:
    """The action that moves target and budget by the given ratios (clipped to the step).

    :param target_ratio: wanted new target / current target.
    :param budget_ratio: wanted new budget / current budget.
    :param shares: (n, 3) or (n, 4) wanted budget shares in the order of :data:`PLANS`
        (``full`` only; non-negative, any scale; a whole-site share above 0 needs
        ``whole_site_enabled``).
    :param refresh: (n,) bool, refresh creatives (``full`` only).
    :return: float32 (n, action_dim), components in the order of :func:`action_names`.
    """
    tr = np.atleast_1d(np.asarray(target_ratio, dtype=np.float64))
    br = np.atleast_1d(np.asarray(budget_ratio, dtype=np.float64))
    n = tr.shape[0]
    named = {"target_change": np.log(tr) / np.log1p(cfg.target_max_step),
             "budget_change": np.log(br) / np.log1p(cfg.budget_max_step)}
    if cfg.action_space == "full":
        wanted = (np.tile([1.0, 1.0, 1.0, 0.0], (n, 1)) if shares is None
                  else plan_share_row(np.atleast_2d(shares)))
        if not cfg.whole_site_enabled and np.any(wanted[:, 3] > 0):
            raise ValueError("a whole-site share above 0 needs whole_site_enabled")
        named.update(_encode_weights(wanted, cfg.share_range, cfg.whole_site_enabled))
        rf = np.zeros(n, dtype=bool) if refresh is None else np.atleast_1d(refresh)
        named["creative_refresh"] = np.where(rf, 1.0, -1.0)
    cols = [named[name] for name in action_names(cfg)]
    return np.clip(np.stack(cols, axis=1), -1.0, 1.0).astype(np.float32)


def _encode_weights(shares: np.ndarray, share_range: float,
                    whole_site: bool) -> dict[str, np.ndarray]:
    """The plan-weight components (by name, unclipped) that give ``shares`` (n, 4) under
    :func:`weight_shares`, as nearly as the range allows."""
    standard = np.maximum(shares[:, :3], 1e-9)
    logs = np.log(standard)
    if not whole_site:
        # centre so the largest weight is at +1 where the range allows it
        logs = logs - logs.max(axis=1, keepdims=True)
        return {f"weight_{p}": col for p, col in
                zip(STANDARD_PLANS, (1.0 + logs / np.log(share_range)).T, strict=True)}
    # weights k * share: k puts the largest at the top of its range (whole_site's top is
    # share_range - 1 / share_range), so whole_site's weight can reach 0 at a = -1
    top = np.maximum(standard.max(axis=1) / share_range,
                     shares[:, 3] / (share_range - 1.0 / share_range))
    out = {f"weight_{p}": np.log(col / top) / np.log(share_range)
           for p, col in zip(STANDARD_PLANS, standard.T, strict=True)}
    out["weight_whole_site"] = np.where(
        shares[:, 3] > 0.0,
        np.log(np.maximum(shares[:, 3], 0.0) / top + 1.0 / share_range) / np.log(share_range),
        -1.0)  # exactly -1: no whole-site budget
    return out
