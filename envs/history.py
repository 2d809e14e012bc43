"""History -> features: the one place that turns a daily dashboard history into an observation.

The environment and ``scripts/recommend.py`` both call :func:`build_features`, so a policy
sees the same numbers in simulation and on a real account's report. Only what the
advertiser's dashboard shows enters: no hidden market state. This module imports neither
torch nor stable-baselines3.

A history is a :class:`HistoryTable` of ``HISTORY_DAYS_REQUIRED`` days (oldest first, the
last row is yesterday) for ``n`` accounts, plus a :class:`DecisionContext` for the day being
decided. :func:`decode_features` maps an observation back to named values, which is how the
rule-based policies read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HISTORY_DAYS_REQUIRED = 14
OBS_BOUND = 100.0  # every feature is clipped to [-OBS_BOUND, OBS_BOUND] (ROIs above 100 are noise)
LAG_DAYS = 7
SETTLED_NEWEST = -8  # row of the newest settled day: refunds land over 7 days after an order

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
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

# Documentation of each feature: (unit or scale, meaning). The env's docstring table and the
# docs are generated from this, so they cannot drift from the code.
FEATURE_DOCS: dict[str, tuple[str, str]] = {
    **{f"roi_d{k}": ("GMV/spend", f"payment ROI {k} day(s) ago (0 without spend)")
       for k in range(1, LAG_DAYS + 1)},
    **{f"spend_to_budget_d{k}": ("ratio", f"spend / budget {k} day(s) ago")
       for k in range(1, LAG_DAYS + 1)},
    "roi_7d": ("GMV/spend", "payment ROI over the last 7 days"),
    "roi_prev_7d": ("GMV/spend", "payment ROI over the 7 days before those"),
    "log_gmv_trend": ("log ratio", "ln(mean GMV last 3 days / mean GMV last 7 days)"),
    "log_spend_trend": ("log ratio", "ln(mean spend last 3 days / mean spend last 7 days)"),
    "target_roi": ("GMV/spend", "payment-ROI target in force"),
    "breakeven_roi": ("GMV/spend", "account's break-even payment ROI, 1/(margin(1-refund))"),
    "log_target_to_roi_7d": ("log ratio", "ln(target / 7-day ROI)"),
    "log_target_to_breakeven": ("log ratio", "ln(target / break-even ROI)"),
    "log_budget_to_spend_7d": ("log ratio", "ln(budget / mean daily spend, 7 days)"),
    "log_budget_to_spend_d1": ("log ratio", "ln(budget / yesterday's spend)"),
    "refund_rate_7d": ("share", "refunds landed in 7 days / GMV of days 2-8 ago"),
    "settlement_roi_d7": ("settled GMV/spend", "settlement ROI of the day a week before "
                          "yesterday, the newest settled"),
    "settlement_roi_7d": ("settled GMV/spend", "settlement ROI of the 7 newest settled days"),
    "learning": ("0/1", "plan is in its learning period"),
    "learn_failed": ("0/1", "plan failed to leave learning and is throttled"),
    "interrupted_d1": ("0/1", "delivery stopped yesterday on an empty balance"),
    "orders_3d": ("orders/20", "orders in the last 3 days over the usual exit threshold 20"),
    "plan_age_days": ("days/28", "days since the plan's launch, in 4-week units"),
    "days_since_target_change": ("days/7", "days the target has been unchanged (max 2 "
                                 "weeks)"),
    "creative_age_days": ("days/28", "age of the creative set, in 4-week units"),
    "days_to_promo": ("days/7", "days to the next promotion peak (max 30 days)"),
    "in_promo": ("0/1", "today is a promotion peak day"),
    "days_after_promo": ("days/7", "days since the last peak ended (max 30 days)"),
    "balance_days": ("days/10", "balance / mean daily spend (max 60 days)"),
    "share_payment_roi": ("share", "budget share of payment-ROI plans"),
    "share_settlement_roi": ("share", "budget share of settlement-ROI plans"),
    "share_volume": ("share", "budget share of volume plans"),
    "weekday_sin": ("-", "sin(2 pi weekday / 7) of the day being decided"),
    "weekday_cos": ("-", "cos(2 pi weekday / 7) of the day being decided"),
}
# Scales of the time features (so an observation stays O(1) without normalisation).
_SCALES = {"plan_age_days": 28.0, "days_since_target_change": 7.0, "creative_age_days": 28.0,
           "days_to_promo": 7.0, "days_after_promo": 7.0, "balance_days": 10.0,
           "orders_3d": 20.0}
# Each feature's multiplier (1 / its scale) and clip bound (log ratios +-5, the rest +-OBS_BOUND).
_INV_SCALES = np.array([1.0 / _SCALES.get(name, 1.0) for name in FEATURE_NAMES])[:, None]
_BOUNDS = np.array([5.0 if name.startswith("log_") else OBS_BOUND
                    for name in FEATURE_NAMES])[:, None]


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
    shares: np.ndarray  # (n, 3)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` for arrays of one shape, 0 where ``den`` is 0 (no spend: no ROI)."""
    return np.divide(num, den, out=np.zeros(den.shape), where=den > 0)


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``ln(num / den)`` with a 1-CNY floor (clipped to [-5, 5] by the caller)."""
    return np.log((num + 1.0) / (den + 1.0))


def build_features(table: HistoryTable, ctx: DecisionContext) -> np.ndarray:
    """The observation for the day being decided.

    :param table: at least :data:`HISTORY_DAYS_REQUIRED` days, the last row yesterday.
    :param ctx: the decision day's context.
    :return: float32 array (n, len(FEATURE_NAMES)).
    """
    if table.values.shape[1] < HISTORY_DAYS_REQUIRED:
        raise ValueError(f"history has {table.values.shape[1]} days, needs "
                         f"{HISTORY_DAYS_REQUIRED}")
    # day-major copy (days, columns, n): every reduction over days is then a sum of rows
    v = np.ascontiguousarray(table.values[:, -HISTORY_DAYS_REQUIRED:, :].transpose(1, 2, 0))
    n = v.shape[2]
    spend, gmv = v[:, COL["spend"]], v[:, COL["gmv"]]
    budget, target = v[:, COL["budget"]], v[:, COL["target_roi"]]
    lag = slice(-1, -LAG_DAYS - 1, -1)  # yesterday first
    spend7, gmv7 = spend[-7:].sum(0), gmv[-7:].sum(0)
    spend_prev7, gmv_prev7 = spend[-14:-7].sum(0), gmv[-14:-7].sum(0)
    roi_7d = _ratio(gmv7, spend7)
    mean_spend7 = spend7 * (1.0 / 7.0)
    target_now, budget_now = target[-1], budget[-1]
    settled = v[:, COL["settled_gmv"]]
    settled_ok = ~np.isnan(settled)
    settle_win = slice(SETTLED_NEWEST - 6, SETTLED_NEWEST + 1)  # the 7 newest settled days
    # days back from yesterday with today's target: the first differing day (a sentinel
    # row that differs caps the count at the whole window)
    same = np.zeros((HISTORY_DAYS_REQUIRED + 1, n), dtype=bool)
    np.equal(target[::-1], target_now, out=same[:-1])
    unchanged = np.argmin(same, axis=0)

    out = np.empty((len(FEATURE_NAMES), n), dtype=np.float64)  # feature-major, transposed last
    out[0:LAG_DAYS] = _ratio(gmv[lag], spend[lag])
    out[LAG_DAYS:2 * LAG_DAYS] = _ratio(spend[lag], budget[lag])
    cols = {
        "roi_7d": roi_7d,
        "roi_prev_7d": _ratio(gmv_prev7, spend_prev7),
        "log_gmv_trend": _log_ratio(gmv[-3:].sum(0) * (1.0 / 3.0), gmv7 * (1.0 / 7.0)),
        "log_spend_trend": _log_ratio(spend[-3:].sum(0) * (1.0 / 3.0), mean_spend7),
        "target_roi": target_now,
        "breakeven_roi": ctx.breakeven_roi,
        "log_target_to_roi_7d": np.log(target_now / np.maximum(roi_7d, 0.01)),
        "log_target_to_breakeven": np.log(target_now / ctx.breakeven_roi),
        "log_budget_to_spend_7d": _log_ratio(budget_now, mean_spend7),
        "log_budget_to_spend_d1": _log_ratio(budget_now, spend[-1]),
        "refund_rate_7d": np.minimum(_ratio(v[-7:, COL["refunds"]].sum(0), gmv[-8:-1].sum(0)),
                                     1.0),
        "settlement_roi_d7": _ratio(np.where(settled_ok[SETTLED_NEWEST],
                                             settled[SETTLED_NEWEST], 0.0),
                                    spend[SETTLED_NEWEST]),
        "settlement_roi_7d": _ratio(np.where(settled_ok[settle_win], settled[settle_win],
                                             0.0).sum(0),
                                    (spend[settle_win] * settled_ok[settle_win]).sum(0)),
        "learning": v[-1, COL["learning"]],
        "learn_failed": v[-1, COL["learn_failed"]],
        "interrupted_d1": v[-1, COL["interrupted"]],
        "orders_3d": v[-3:, COL["orders"]].sum(0),
        "plan_age_days": ctx.plan_age_days,
        "days_since_target_change": np.minimum(unchanged, HISTORY_DAYS_REQUIRED),
        "creative_age_days": np.minimum(ctx.creative_age_days, 120.0),
        "days_to_promo": ctx.days_to_promo,
        "in_promo": ctx.in_promo,
        "days_after_promo": ctx.days_after_promo,
        "balance_days": np.minimum(np.maximum(_ratio(v[-1, COL["balance"]], mean_spend7), 0.0),
                                   60.0),
        "share_payment_roi": ctx.shares[:, 0],
        "share_settlement_roi": ctx.shares[:, 1],
        "share_volume": ctx.shares[:, 2],
        "weekday_sin": np.sin((2.0 * np.pi / 7.0) * ctx.weekday),
        "weekday_cos": np.cos((2.0 * np.pi / 7.0) * ctx.weekday),
    }
    for name, values in cols.items():
        out[FEATURE_INDEX[name]] = values
    out *= _INV_SCALES
    np.minimum(out, _BOUNDS, out=out)
    np.maximum(out, -_BOUNDS, out=out)
    return out.T.astype(np.float32)


def decode_features(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Named values of an observation (n, F) or (F,), in the units of :data:`FEATURE_DOCS`
    with the time scales undone (days in days, orders in orders).
    """
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape[-1] != len(FEATURE_NAMES):
        raise ValueError(f"observation has {obs.shape[-1]} features, expected "
                         f"{len(FEATURE_NAMES)}")
    return {name: obs[..., i] * _SCALES.get(name, 1.0) for i, name in enumerate(FEATURE_NAMES)}
