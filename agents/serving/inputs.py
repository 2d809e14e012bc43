"""A report -> the env's history table and decision context (then :func:`build_features`).

The features themselves come from :func:`envs.history.build_features`, the code the env
uses. This module only fills the table's columns and the day's context from what a report
holds, and says which values it had to assume because the report does not show them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.serving.errors import ServingError
from agents.serving.report import AccountReport
from envs.actions import PLANS, STANDARD_PLANS, WHOLE_SITE, plan_share_row
from envs.calendar import promo_phase
from envs.history import (
    BALANCE_DAYS_CAP,
    COLUMNS,
    HISTORY_DAYS_REQUIRED,
    DecisionContext,
    HistoryTable,
    build_features,
)

AMPLE_BALANCE_DAYS = BALANCE_DAYS_CAP  # a balance assumed ample: the feature's cap
PLAN_SHARE_COLUMNS = ("share_payment_roi", "share_settlement_roi", "share_volume")
WHOLE_SITE_SHARE_COLUMN = "share_whole_site"  # optional: 0 when the report has no such column


@dataclass(frozen=True)
class Promotion:
    """A promotion peak: ``start`` to ``end`` inclusive."""

    start: dt.date
    end: dt.date


def parse_promotions(spec: str | None, peak_length_days: int) -> list[Promotion]:
    """Promotion peaks from ``--promo-dates``.

    :param spec: comma-separated ``YYYY-MM-DD`` (a peak of ``peak_length_days`` from that
        day, as the scenario's calendar has it) or ``YYYY-MM-DD..YYYY-MM-DD`` (inclusive).
    """
    peaks = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ".." in part:
                first, last = (dt.date.fromisoformat(p.strip()) for p in part.split(".."))
            else:
                first = dt.date.fromisoformat(part)
                last = first + dt.timedelta(days=peak_length_days - 1)
        except ValueError:
            raise ServingError(f"--promo-dates: {part!r} is not YYYY-MM-DD or "
                               "YYYY-MM-DD..YYYY-MM-DD") from None
        if last < first:
            raise ServingError(f"--promo-dates: {part!r} ends before it starts")
        peaks.append(Promotion(first, last))
    return peaks


def promotion_phase(day: dt.date, peaks: Sequence[Promotion]) -> tuple[float, float, float]:
    """``(days_to_promo, in_promo, days_after_promo)`` of ``day`` by the env's calendar
    (:func:`envs.calendar.promo_phase`, days counted from ``day``): 0 days to a peak on a
    peak day, days after counted from the first day after a peak (1), both capped at
    :data:`envs.calendar.FAR_DAYS`."""
    to_peak, in_peak, after = promo_phase(np.zeros(1, dtype=np.int64), [
        ((p.start - day).days, (p.end - day).days + 1) for p in peaks])
    return float(to_peak[0]), float(in_peak[0]), float(after[0])


@dataclass(frozen=True)
class AccountDefaults:
    """What to assume for values a report does not show.

    :param breakeven_roi: the account's break-even payment ROI, ``1 / (margin (1 - refund
        rate))`` (default: the scenario's).
    :param shares: budget shares of the payment_roi, settlement_roi and volume plans, and
        of whole_site as a fourth value (3 values: whole_site 0).
    """

    breakeven_roi: float
    shares: tuple[float, ...]
    breakeven_given: bool = False


def history_inputs(report: AccountReport, defaults: AccountDefaults,
                   peaks: Sequence[Promotion]) -> tuple[np.ndarray, DecisionContext, list[str]]:
    """The history rows (days, len(COLUMNS)) and context (arrays of shape (1,)) of one report,
    plus notes on every assumed value."""
    v, days = report.values, len(report.dates)
    notes: list[str] = []
    rows = np.zeros((days, len(COLUMNS)))
    for i, name in enumerate(COLUMNS):
        if name in v:
            rows[:, i] = v[name]
    col = {name: i for i, name in enumerate(COLUMNS)}
    if "refunds" not in v:
        notes.append("no refunds column: refunds taken as 0")
    if "settled_gmv" not in v:
        # The dashboard settles a day's orders 7 days later; without that column, estimate the
        # settled GMV of days a week old or more from the refunds landed over the report.
        refund_share = (rows[:, col["refunds"]].sum() / rows[:, col["gmv"]].sum()
                        if rows[:, col["gmv"]].sum() > 0 else 0.0)
        rows[:, col["settled_gmv"]] = rows[:, col["gmv"]] * (1.0 - min(refund_share, 1.0))
        notes.append(f"no settled_gmv column: settled GMV estimated as GMV x (1 - "
                     f"{refund_share:.3f}), the refunds/GMV of the report")
    if "balance" not in v:
        mean_spend = rows[-7:, col["spend"]].mean()
        rows[:, col["balance"]] = AMPLE_BALANCE_DAYS * mean_spend
        notes.append(f"no balance column: balance assumed ample ({AMPLE_BALANCE_DAYS:.0f} "
                     "days of spend)")
    for flag in ("learning", "learn_failed", "interrupted"):
        if flag not in v:
            notes.append(f"no {flag} column: taken as 0 (no)")
    decision = report.decision_date
    launch = report.plan_launch_date
    if launch is None:
        launch = report.dates[0]
        notes.append(f"no plan_launch_date: plan assumed launched on the report's first day "
                     f"{launch}")
    plan_age = (decision - launch).days
    if plan_age < 0:
        raise ServingError(f"plan_launch_date {launch} is after the day being decided "
                           f"{decision}", report.path, column=report.mapping.get(
                               "plan_launch_date"))
    creative = report.creative_date
    if creative is None:
        creative = launch
        notes.append("no creative_date: creatives assumed as old as the plan")
    to_peak, in_peak, after = promotion_phase(decision, peaks)
    if "breakeven_roi" in v:
        breakeven = float(v["breakeven_roi"][-1])
        if breakeven <= 0:
            raise ServingError("breakeven_roi must be > 0", report.path,
                               column=report.mapping["breakeven_roi"])
    else:
        breakeven = defaults.breakeven_roi
        if not defaults.breakeven_given:
            notes.append(f"break-even ROI {breakeven:.3f} from the scenario (pass "
                         "--breakeven-roi or a breakeven_roi column)")
    if all(name in v for name in PLAN_SHARE_COLUMNS):
        columns = PLAN_SHARE_COLUMNS + ((WHOLE_SITE_SHARE_COLUMN,)
                                        if WHOLE_SITE_SHARE_COLUMN in v else ())
        shares = plan_share_row([v[name][-1] for name in columns])
        if abs(float(shares.sum()) - 1.0) > 0.02:
            raise ServingError(f"plan shares on the last row sum to {shares.sum():.3f}, "
                               "not 1", report.path, column=report.mapping["share_volume"])
    else:
        shares = plan_share_row(defaults.shares)
        shown = len(PLANS) if shares[WHOLE_SITE] > 0 else len(STANDARD_PLANS)
        notes.append("no plan share columns: shares " + "/".join(
            f"{s:.2f}" for s in shares[:shown]) + f" ({'/'.join(PLANS[:shown])}) from the "
            "scenario")
    ctx = DecisionContext(
        plan_age_days=np.array([float(plan_age)]),
        creative_age_days=np.array([float(max((decision - creative).days, 0))]),
        days_to_promo=np.array([to_peak]),
        days_after_promo=np.array([after]),
        in_promo=np.array([in_peak]),
        weekday=np.array([float(decision.weekday())]),
        breakeven_roi=np.array([breakeven]),
        shares=shares[None, :],
    )
    return rows, ctx, notes


@dataclass(frozen=True)
class LaunchBudget:
    """The plan's launch budget, as an anchored policy reads it (its anchor's budget is a
    multiple of it), and where it came from.

    :param note: said in the output when the value is assumed or an option was overridden.
    """

    cny: float
    source: str
    note: str | None = None


def launch_budget(report: AccountReport, given: float | None = None) -> LaunchBudget:
    """The plan's launch budget: the budget the plan launched from, the report's budget on
    the day before ``plan_launch_date`` when the report covers that day (the row of the
    launch day itself holds the launch day's decision, which already moves the budget, as
    the env's dashboard does); else ``given`` (``--launch-budget``); else the report's
    earliest budget, with a note saying so."""
    budget = report.values["budget"]
    launch = report.plan_launch_date
    if launch is not None:
        before = launch - dt.timedelta(days=1)
        if report.dates[0] <= before <= report.dates[-1]:
            value = float(budget[(before - report.dates[0]).days])  # consecutive days
            note = None
            if given is not None and abs(given - value) > 1e-9 * max(value, 1.0):
                note = (f"--launch-budget {given:,.2f} not used: the report shows the launch "
                        f"budget, {value:,.2f} on {before} (the day before plan_launch_date "
                        f"{launch})")
            return LaunchBudget(value, f"report: budget on {before}, the day before "
                                f"plan_launch_date {launch}", note)
    if given is not None:
        return LaunchBudget(float(given), "--launch-budget")
    first = report.dates[0]
    why = ("no plan_launch_date" if launch is None
           else f"the report does not show {launch - dt.timedelta(days=1)}, the day before "
                f"plan_launch_date {launch}")
    return LaunchBudget(float(budget[0]), f"assumed: the report's earliest budget, on {first}",
                        f"launch budget {float(budget[0]):,.2f}: the report's earliest budget "
                        f"({first}); {why} (pass --launch-budget)")


def stack_contexts(contexts: Sequence[DecisionContext]) -> DecisionContext:
    """One context for a batch of accounts."""
    return DecisionContext(**{name: np.concatenate([getattr(c, name) for c in contexts])
                              for name in DecisionContext.__dataclass_fields__})


def observations(histories: Sequence[np.ndarray], contexts: Sequence[DecisionContext],
                 whole_site: bool = False) -> np.ndarray:
    """Observations (n, F) of a batch of accounts by the env's :func:`build_features`
    (``whole_site``: the policy's scenario has the whole-site plan,
    :func:`envs.history.feature_names`)."""
    table = np.stack([h[-HISTORY_DAYS_REQUIRED:] for h in histories])
    return build_features(HistoryTable(table), stack_contexts(contexts), whole_site)
