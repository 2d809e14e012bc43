"""History -> features: the one place that turns a daily dashboard history into an observation.

The environment and ``scripts/recommend.py`` both call :func:`build_features`, so a policy
sees the same numbers in simulation and on a real account's report. Only what the
advertiser's dashboard shows enters: no hidden market state. This module imports neither
torch nor stable-baselines3.

A history is a :class:`HistoryTable` of ``HISTORY_DAYS_REQUIRED`` days (oldest first, the
last row is yesterday) for ``n`` accounts, plus a :class:`DecisionContext` for the day being
decided. :func:`decode_features` maps an observation back to named values, which is how the
rule-based policies read it.

The feature list depends on the scenario only through ``whole_site_enabled``
(:func:`feature_names`): the whole-site plan's share, ``share_whole_site``, is appended as the
last feature when the plan exists, so with the switch off the observation is the first
version's, and a policy trained on it (the shipped model) is served unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from envs.actions import plan_share_row
from envs.compiled import helper

if TYPE_CHECKING:
    from envs.config import ScenarioConfig

HISTORY_DAYS_REQUIRED = 14
OBS_BOUND = 100.0  # every feature is clipped to [-OBS_BOUND, OBS_BOUND] (ROIs above 100 are noise)
LAG_DAYS = 7
SETTLED_NEWEST = -8  # row of the newest settled day: refunds land over 7 days after an order
BALANCE_DAYS_CAP = 60.0  # days of spend the balance_days feature saturates at

# Columns of a history table, in storage order. Money in CNY, ROI in GMV/spend.
COLUMNS = ("spend", "gmv", "orders", "refunds", "settled_gmv", "target_roi", "budget",
           "balance", "learning", "learn_failed", "interrupted")
COL = {name: i for i, name in enumerate(COLUMNS)}

FEATURE_NAMES: tuple[str, ...] = (
    *(f"roi_d{k}" for k in range(1, LAG_DAYS + 1)),
    *(f"spend_to_budget_d{k}" for k in range(1, LAG_DAYS + 1)),
    "roi_7d", "roi_prev_7d", "log_gmv_trend", "log_spend_trend",
    "target_roi", "breakeven_roi", "log_target_to_roi_7d", "log_target_to_breakeven",
    "log_budget_to_spend_7d", "log_budget_to_spend_d1",
    "refund_rate_7d", "settlement_roi_d7", "settlement_roi_7d",
    "learning", "learn_failed", "interrupted_d1", "orders_3d",
    "plan_age_days", "days_since_target_change", "creative_age_days",
    "days_to_promo", "in_promo", "days_after_promo", "balance_days",
    "share_payment_roi", "share_settlement_roi", "share_volume",
    "weekday_sin", "weekday_cos",
)
# appended when the scenario has the whole-site plan (whole_site_enabled): feature_names()
WHOLE_SITE_FEATURES: tuple[str, ...] = ("share_whole_site",)
ALL_FEATURE_NAMES = FEATURE_NAMES + WHOLE_SITE_FEATURES
FEATURE_INDEX = {name: i for i, name in enumerate(ALL_FEATURE_NAMES)}


def feature_names(cfg: ScenarioConfig) -> tuple[str, ...]:
    """The observation's features for the scenario ``cfg``, in order: :data:`FEATURE_NAMES`,
    then ``share_whole_site`` with ``whole_site_enabled``."""
    return feature_names_of(cfg.whole_site_enabled)


def feature_names_of(whole_site: bool) -> tuple[str, ...]:
    """:func:`feature_names` from the switch ``whole_site`` alone."""
    return ALL_FEATURE_NAMES if whole_site else FEATURE_NAMES

# Scales of the time features (so an observation stays O(1) without normalisation).
_SCALES = {"plan_age_days": 28.0, "days_since_target_change": 7.0, "creative_age_days": 28.0,
           "days_to_promo": 7.0, "days_after_promo": 7.0, "balance_days": 10.0,
           "orders_3d": 20.0}
# Each feature's multiplier (1 / its scale) and clip bound (log ratios +-5, the rest +-OBS_BOUND).
_INV_SCALES = np.array([1.0 / _SCALES.get(name, 1.0) for name in ALL_FEATURE_NAMES])
_BOUNDS = np.array([5.0 if name.startswith("log_") else OBS_BOUND
                    for name in ALL_FEATURE_NAMES])


@dataclass
class HistoryTable:
    """Daily dashboard rows, oldest first; ``values`` has shape (n, days, len(COLUMNS)).

    ``settled_gmv`` is NaN for days not yet settled (less than 7 days old), as on the
    dashboard; ``target_roi`` and ``budget`` are the settings in force that day.
    """

    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, :, COL[name]]


@dataclass
class DecisionContext:
    """What the advertiser knows about the day being decided. Arrays of shape (n,)."""

    plan_age_days: np.ndarray  # days since launch (0 on launch day)
    creative_age_days: np.ndarray
    days_to_promo: np.ndarray  # 0 on a peak day; 30 if none ahead
    days_after_promo: np.ndarray  # 30 if none behind
    in_promo: np.ndarray  # bool
    weekday: np.ndarray  # 0 = Monday
    breakeven_roi: np.ndarray
    shares: np.ndarray  # (n, 4) plan shares, columns envs.actions.PLANS ((n, 3): whole_site 0)


# The decision context as compiled code takes it (a named tuple, not a dataclass): the fields
# of DecisionContext, in its order, as float64 arrays.
ContextArrays = NamedTuple("ContextArrays", [
    (f.name, np.ndarray) for f in dataclasses.fields(DecisionContext)])
ContextArrays.__module__ = __name__


# Column and feature positions as plain ints (compiled code cannot look names up in dicts).
(_SPEND, _GMV, _ORDERS, _REFUNDS, _SETTLED, _TARGET, _BUDGET, _BALANCE, _LEARNING,
 _LEARN_FAILED, _INTERRUPTED) = (COL[name] for name in COLUMNS)
_F = FEATURE_INDEX
(_ROI_7D, _ROI_PREV_7D, _LOG_GMV_TREND, _LOG_SPEND_TREND, _TARGET_ROI, _BREAKEVEN_ROI,
 _LOG_TARGET_TO_ROI_7D, _LOG_TARGET_TO_BREAKEVEN, _LOG_BUDGET_TO_SPEND_7D,
 _LOG_BUDGET_TO_SPEND_D1, _REFUND_RATE_7D, _SETTLEMENT_ROI_D7, _SETTLEMENT_ROI_7D, _LEARNING_F,
 _LEARN_FAILED_F, _INTERRUPTED_D1, _ORDERS_3D, _PLAN_AGE_DAYS, _DAYS_SINCE_TARGET_CHANGE,
 _CREATIVE_AGE_DAYS, _DAYS_TO_PROMO, _IN_PROMO, _DAYS_AFTER_PROMO, _BALANCE_DAYS,
 _SHARE_PAYMENT_ROI, _SHARE_SETTLEMENT_ROI, _SHARE_VOLUME, _WEEKDAY_SIN, _WEEKDAY_COS) = (
    _F[name] for name in FEATURE_NAMES[2 * LAG_DAYS:])
_SHARE_WHOLE_SITE = _F["share_whole_site"]


@helper
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den`` is 0 (no spend: no ROI)."""
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


@helper
def _sum_days(rows: np.ndarray) -> np.ndarray:
    """Sum over the first (day) axis, row by row: the order NumPy's ``sum(axis=0)`` adds in,
    and a loop Numba compiles well."""
    total = rows[0].copy()
    for day in range(1, rows.shape[0]):
        total += rows[day]
    return total


@helper
def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``ln(num / den)`` with a 1-CNY floor (clipped to [-5, 5] by the caller)."""
    return np.log((num + 1.0) / (den + 1.0))


@helper
def feature_rows(days: np.ndarray, ctx: ContextArrays, whole_site: bool = False) -> np.ndarray:
    """The features of a day-major history: the kernel of :func:`build_features`.

    Written in the NumPy subset Numba compiles (:mod:`envs.compiled`): the simulator runs it
    compiled, ``recommend`` as plain NumPy.

    :param days: (days, len(COLUMNS), n) float64, oldest first, the last row yesterday, at
        least :data:`HISTORY_DAYS_REQUIRED` days.
    :param ctx: the decision day's context (:func:`context_arrays`).
    :param whole_site: the scenario has the whole-site plan: ``share_whole_site`` is appended.
    :return: float32 (n, len(feature_names_of(whole_site))), scaled and clipped.
    """
    v = days[days.shape[0] - HISTORY_DAYS_REQUIRED:]
    n = v.shape[2]
    spend, gmv = v[:, _SPEND], v[:, _GMV]
    budget, target = v[:, _BUDGET], v[:, _TARGET]
    spend7, gmv7 = _sum_days(spend[-7:]), _sum_days(gmv[-7:])
    spend_prev7, gmv_prev7 = _sum_days(spend[-14:-7]), _sum_days(gmv[-14:-7])
    roi_7d = _ratio(gmv7, spend7)
    mean_spend7 = spend7 * (1.0 / 7.0)
    target_now, budget_now = target[-1], budget[-1]
    settled = v[:, _SETTLED]
    settled_ok = ~np.isnan(settled)
    newest = SETTLED_NEWEST  # the 7 newest settled days are rows newest-6 .. newest
    settled_win = np.where(settled_ok[newest - 6:newest + 1], settled[newest - 6:newest + 1],
                           0.0)
    settled_spend = np.where(settled_ok[newest - 6:newest + 1], spend[newest - 6:newest + 1],
                             0.0)
    # days back from yesterday with today's target, up to the whole window
    unchanged = np.zeros(n)
    running = np.ones(n, dtype=np.bool_)
    for back in range(1, HISTORY_DAYS_REQUIRED + 1):
        running &= target[-back] == target_now
        unchanged += running

    width = len(FEATURE_NAMES) + (len(WHOLE_SITE_FEATURES) if whole_site else 0)
    out = np.empty((n, width))
    out[:, 0:LAG_DAYS] = _ratio(gmv[-1:-LAG_DAYS - 1:-1], spend[-1:-LAG_DAYS - 1:-1]).T
    out[:, LAG_DAYS:2 * LAG_DAYS] = _ratio(spend[-1:-LAG_DAYS - 1:-1],
                                           budget[-1:-LAG_DAYS - 1:-1]).T
    out[:, _ROI_7D] = roi_7d
    out[:, _ROI_PREV_7D] = _ratio(gmv_prev7, spend_prev7)
    out[:, _LOG_GMV_TREND] = _log_ratio(_sum_days(gmv[-3:]) * (1.0 / 3.0), gmv7 * (1.0 / 7.0))
    out[:, _LOG_SPEND_TREND] = _log_ratio(_sum_days(spend[-3:]) * (1.0 / 3.0), mean_spend7)
    out[:, _TARGET_ROI] = target_now
    out[:, _BREAKEVEN_ROI] = ctx.breakeven_roi
    out[:, _LOG_TARGET_TO_ROI_7D] = np.log(target_now / np.maximum(roi_7d, 0.01))
    out[:, _LOG_TARGET_TO_BREAKEVEN] = np.log(target_now / ctx.breakeven_roi)
    out[:, _LOG_BUDGET_TO_SPEND_7D] = _log_ratio(budget_now, mean_spend7)
    out[:, _LOG_BUDGET_TO_SPEND_D1] = _log_ratio(budget_now, spend[-1])
    out[:, _REFUND_RATE_7D] = np.minimum(_ratio(_sum_days(v[-7:, _REFUNDS]),
                                             _sum_days(gmv[-8:-1])), 1.0)
    out[:, _SETTLEMENT_ROI_D7] = _ratio(np.where(settled_ok[newest], settled[newest], 0.0),
                                     spend[newest])
    out[:, _SETTLEMENT_ROI_7D] = _ratio(_sum_days(settled_win), _sum_days(settled_spend))
    out[:, _LEARNING_F] = v[-1, _LEARNING]
    out[:, _LEARN_FAILED_F] = v[-1, _LEARN_FAILED]
    out[:, _INTERRUPTED_D1] = v[-1, _INTERRUPTED]
    out[:, _ORDERS_3D] = _sum_days(v[-3:, _ORDERS])
    out[:, _PLAN_AGE_DAYS] = ctx.plan_age_days
    out[:, _DAYS_SINCE_TARGET_CHANGE] = unchanged
    out[:, _CREATIVE_AGE_DAYS] = np.minimum(ctx.creative_age_days, 120.0)
    out[:, _DAYS_TO_PROMO] = ctx.days_to_promo
    out[:, _IN_PROMO] = ctx.in_promo
    out[:, _DAYS_AFTER_PROMO] = ctx.days_after_promo
    out[:, _BALANCE_DAYS] = np.minimum(np.maximum(_ratio(v[-1, _BALANCE], mean_spend7), 0.0),
                                    BALANCE_DAYS_CAP)
    out[:, _SHARE_PAYMENT_ROI] = ctx.shares[:, 0]
    out[:, _SHARE_SETTLEMENT_ROI] = ctx.shares[:, 1]
    out[:, _SHARE_VOLUME] = ctx.shares[:, 2]
    out[:, _WEEKDAY_SIN] = np.sin((2.0 * np.pi / 7.0) * ctx.weekday)
    out[:, _WEEKDAY_COS] = np.cos((2.0 * np.pi / 7.0) * ctx.weekday)
    if whole_site:
        out[:, _SHARE_WHOLE_SITE] = ctx.shares[:, 3]
    out *= _INV_SCALES[:width]
    bounds = _BOUNDS[:width]
    return np.minimum(np.maximum(out, -bounds), bounds).astype(np.float32)


def context_arrays(ctx: DecisionContext) -> ContextArrays:
    """The context as :func:`feature_rows` takes it: its fields as float64 arrays (shares
    (n, 4), :func:`envs.actions.plan_share_row`)."""
    return ContextArrays(*(plan_share_row(ctx.shares) if name == "shares"
                           else np.asarray(getattr(ctx, name), dtype=np.float64)
                           for name in ContextArrays._fields))


def build_features(table: HistoryTable, ctx: DecisionContext,
                   whole_site: bool = False) -> np.ndarray:
    """The observation for the day being decided (plain NumPy; the simulator runs the same
    :func:`feature_rows` compiled).

    :param table: at least :data:`HISTORY_DAYS_REQUIRED` days, the last row yesterday.
    :param ctx: the decision day's context.
    :param whole_site: the features of a scenario with the whole-site plan
        (:func:`feature_names`).
    :return: float32 array (n, len(feature_names_of(whole_site))).
    """
    if table.values.shape[1] < HISTORY_DAYS_REQUIRED:
        raise ValueError(f"history has {table.values.shape[1]} days, needs "
                         f"{HISTORY_DAYS_REQUIRED}")
    days = np.ascontiguousarray(table.values[:, -HISTORY_DAYS_REQUIRED:, :].transpose(1, 2, 0),
                                dtype=np.float64)
    return feature_rows(days, context_arrays(ctx), whole_site)


def decode_features(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Named values of an observation (n, F) or (F,), in the units of the env's observation
    table (:class:`envs.qianchuan_env.QianchuanBiddingEnv`) with the time scales undone (days
    in days, orders in orders). Either feature list of :func:`feature_names` is accepted;
    without the whole-site plan, ``share_whole_site`` reads 0 (the plan has no budget).
    """
    obs = np.asarray(obs, dtype=np.float64)
    widths = (len(FEATURE_NAMES), len(ALL_FEATURE_NAMES))
    if obs.shape[-1] not in widths:
        raise ValueError(f"observation has {obs.shape[-1]} features, expected "
                         f"{' or '.join(map(str, widths))}")
    out = {name: obs[..., i] * _SCALES.get(name, 1.0)
           for i, name in enumerate(ALL_FEATURE_NAMES[:obs.shape[-1]])}
    for name in WHOLE_SITE_FEATURES:
        out.setdefault(name, np.zeros(obs.shape[:-1]))
    return out
