"""One account's report as the arrays a fit reads (days on the first axis).

The report is read by :func:`agents.serving.report.read_report` (Chinese headers, GBK,
xlsx, the same errors as ``recommend``). What a fit needs beyond the reader's checks is
checked here and refused with a :class:`CalibrationError` naming the column: enough days,
orders on enough of them, spend that is not zero throughout.

Days are counted from an *origin*: the plan's launch date when the report gives one (days
before it are the pre-launch history, as in the simulator), else a mature plan is assumed
(:data:`MATURE_PLAN_DAYS` before the first row). Promotions come from ``--promo-dates``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from agents.serving.errors import ServingError
from agents.serving.inputs import PLAN_SHARE_COLUMNS, WHOLE_SITE_SHARE_COLUMN, Promotion
from agents.serving.report import AccountReport
from envs.actions import plan_share_row
from envs.config import ScenarioConfig

MIN_FIT_DAYS = 28  # fewest days calibrate accepts: 14 to fit on and 14 held out to check
HOLDOUT_DAYS = 14  # days held out by the validation (issue #18)
MAX_FIT_DAYS = 180  # older days are dropped: the market drifts (half-lives of weeks)
MIN_ORDER_DAYS = 7  # days with at least one order needed to read the AOV
# a day's deposit (balance rise plus spend) counts as a top-up from this many typical days'
# spend (a smaller one is taken for a cost-protection credit; assumption)
MIN_DEPOSIT_DAYS_OF_SPEND = 1.0
MATURE_PLAN_DAYS = 60  # a report without a launch date: the plan is this old on day one
CAPPED_SHARE = 0.99  # spend at or above this share of the budget: the budget bound


class CalibrationError(ServingError):
    """A report cannot be fitted; the message names what is missing (exit 2)."""


@dataclass
class AccountHistory:
    """A report's days, oldest first. Money in CNY, ROI in GMV/spend.

    :param day: days since the origin (the plan's launch), int (T,).
    :param shares: (T, 4) budget shares of :data:`envs.actions.PLANS`.
    :param refunds: refunds landed (CNY) per day, or ``None`` without that column.
    :param creative_age: days since the creatives were last refreshed, (T,).
    :param capped: the day's spend reached the budget (or the balance ran out): spend says
        only that the traffic would have bought at least that much.
    :param peaks: promotion peaks as ``(first day, length)`` in days from the origin.
    :param notes: every assumption made for a value the report does not show.
    """

    account: str
    dates: list[dt.date]
    day: np.ndarray
    spend: np.ndarray
    gmv: np.ndarray
    orders: np.ndarray
    target: np.ndarray
    budget: np.ndarray
    shares: np.ndarray
    refunds: np.ndarray | None
    learning: np.ndarray
    learn_failed: np.ndarray
    interrupted: np.ndarray
    creative_age: np.ndarray
    capped: np.ndarray
    balance: np.ndarray | None
    origin: dt.date
    peaks: list[tuple[int, int]]
    shown: frozenset[str]
    notes: list[str] = field(default_factory=list)

    @property
    def days(self) -> int:
        return len(self.dates)

    @property
    def start_weekday(self) -> int:
        """Weekday of day 0 (the origin), 0 = Monday: the simulator's ``start_weekday``."""
        return self.origin.weekday()

    @property
    def weekday(self) -> np.ndarray:
        """0 = Monday, (T,)."""
        return np.array([d.weekday() for d in self.dates], dtype=np.int64)

    def topups(self) -> tuple[float, int] | None:
        """The money the advertiser puts into the account, read off the balance column: the
        mean deposit (CNY) and the mean days between deposits, or ``None`` without a balance
        column (or fewer than 2 days of it). A day's deposit is its balance's rise plus its
        spend (the market's balance falls by the spend and rises by top-ups and
        cost-protection credits, :func:`envs.stages.settle_money`); days whose deposit is
        below one typical day's spend (:data:`MIN_DEPOSIT_DAYS_OF_SPEND`) are taken as
        credits, not top-ups. One deposit: its amount, and ``0`` days between (the caller's
        schedule); none: ``(0.0, 0)``, the report shows no top-up."""
        if self.balance is None or self.days < 2:
            return None
        deposit = np.diff(self.balance) + self.spend[1:]
        floor = MIN_DEPOSIT_DAYS_OF_SPEND * float(np.median(self.spend))
        days = np.flatnonzero(deposit > max(floor, 1.0)) + 1
        if days.size == 0:
            return 0.0, 0
        gap = round(float(days[-1] - days[0]) / (days.size - 1)) if days.size > 1 else 0
        return float(deposit[days - 1].mean()), int(gap)

    def head(self, days: int) -> AccountHistory:
        """The first ``days`` days (the fit's part when the last ones are held out)."""
        return self._days_in(slice(0, days))

    def tail(self, days: int) -> AccountHistory:
        """The last ``days`` days."""
        return self._days_in(slice(self.days - days, None))

    def _days_in(self, days: slice) -> AccountHistory:
        """The same account over ``days`` (every per-day field cut alike)."""
        per_day = {f.name for f in dataclasses.fields(self)} - _PER_ACCOUNT
        return dataclasses.replace(self, notes=list(self.notes), **{
            name: None if getattr(self, name) is None else getattr(self, name)[days]
            for name in per_day})


_PER_ACCOUNT = frozenset({"account", "origin", "peaks", "shown", "notes"})


def account_history(report: AccountReport, base: ScenarioConfig,
                    promotions: list[Promotion] | None = None,
                    min_days: int = MIN_FIT_DAYS) -> AccountHistory:
    """The arrays of ``report``, checked for what a fit needs.

    :param base: the scenario whose values stand in for what the report does not show
        (plan shares, the creative refresh schedule).
    :param promotions: peaks from ``--promo-dates``.
    :raises CalibrationError: fewer than ``min_days`` days, no spend, orders on fewer than
        :data:`MIN_ORDER_DAYS` days.
    """
    v = report.values
    notes: list[str] = []
    if len(report.dates) < min_days:
        raise CalibrationError(
            f"{len(report.dates)} days of history: a fit needs at least {min_days} "
            f"consecutive days ({min_days - HOLDOUT_DAYS} to fit and the last {HOLDOUT_DAYS} "
            "held out to check the forecast)", report.path)
    keep = slice(max(0, len(report.dates) - MAX_FIT_DAYS), None)
    if len(report.dates) > MAX_FIT_DAYS:
        notes.append(f"only the last {MAX_FIT_DAYS} days are fitted (the market drifts)")
    dates = report.dates[keep]
    spend, gmv, orders = v["spend"][keep], v["gmv"][keep], v["orders"][keep]
    if not np.any(spend > 0):
        raise CalibrationError("spend is 0 on every day: nothing was bought, so the report "
                               "says nothing of the traffic", report.path,
                               column=report.mapping["spend"])
    if int(np.sum(orders > 0)) < MIN_ORDER_DAYS:
        raise CalibrationError(
            f"orders on only {int(np.sum(orders > 0))} day(s): the order value (AOV) needs "
            f"orders on at least {MIN_ORDER_DAYS} days", report.path,
            column=report.mapping["orders"])
    bad = np.flatnonzero((orders > 0) & (gmv <= 0))
    if bad.size:
        raise CalibrationError(f"{dates[bad[0]]}: {orders[bad[0]]:.0f} orders but no GMV",
                               report.path, column=report.mapping["gmv"])

    if report.plan_launch_date is not None and report.plan_launch_date > dates[0] - dt.timedelta(
            days=MATURE_PLAN_DAYS):
        origin = report.plan_launch_date
    else:
        origin = dates[0] - dt.timedelta(days=MATURE_PLAN_DAYS)
        if report.plan_launch_date is None:
            notes.append(f"no plan_launch_date: the plan is taken as mature ({MATURE_PLAN_DAYS}"
                         " days old on the first day)")
    day = np.array([(d - origin).days for d in dates], dtype=np.int64)

    if all(name in v for name in PLAN_SHARE_COLUMNS):
        columns = PLAN_SHARE_COLUMNS + ((WHOLE_SITE_SHARE_COLUMN,)
                                        if WHOLE_SITE_SHARE_COLUMN in v else ())
        shares = plan_share_row(np.stack([v[c][keep] for c in columns], axis=1))
        total = shares.sum(axis=1)
        if np.any(np.abs(total - 1.0) > 0.02):
            i = int(np.argmax(np.abs(total - 1.0)))
            raise CalibrationError(f"{dates[i]}: plan shares sum to {total[i]:.3f}, not 1",
                                   report.path, column=report.mapping["share_volume"])
        shares = shares / total[:, None]
    else:
        shares = np.tile(plan_share_row(base.launch_shares), (len(dates), 1))
        notes.append("no plan share columns: the base scenario's launch shares are assumed")

    def flag(name: str) -> np.ndarray:
        if name in v:
            return v[name][keep] > 0.5
        notes.append(f"no {name} column: taken as 0 on every day")
        return np.zeros(len(dates), dtype=bool)

    learning, learn_failed, interrupted = flag("learning"), flag("learn_failed"), flag(
        "interrupted")
    refunds = v["refunds"][keep] if "refunds" in v else None
    if refunds is None:
        notes.append("no refunds column: the refund rate and its timing are the prior's")
    balance = v["balance"][keep] if "balance" in v else None
    per_row = report.row_dates.get("creative_date", [])[keep]
    creative_age = _creative_age(dates, per_row, report.creative_date, origin,
                                 base.scheduled_refresh_days, notes)
    budget = v["budget"][keep]
    capped = (spend >= CAPPED_SHARE * budget) | interrupted
    peaks = [((p.start - origin).days, (p.end - p.start).days + 1) for p in promotions or []]
    shown = frozenset(name for name in v if name not in ("settled_gmv",))
    return AccountHistory(
        account=report.account, dates=list(dates), day=day, spend=spend, gmv=gmv,
        orders=orders, target=v["target_roi"][keep], budget=budget, shares=shares,
        refunds=refunds, learning=learning, learn_failed=learn_failed, interrupted=interrupted,
        creative_age=creative_age, capped=capped, balance=balance, origin=origin, peaks=peaks,
        shown=shown, notes=notes)


def _creative_age(dates: list[dt.date], per_row: list[dt.date | None],
                  latest: dt.date | None, origin: dt.date, schedule_days: int,
                  notes: list[str]) -> np.ndarray:
    """Days since the creatives' last refresh, per day. A row's own ``creative_date`` (the
    latest refresh as of that day) is used where the report gives one; otherwise earlier
    refreshes are assumed on the base scenario's schedule before the latest known one (none
    at all with a schedule of 0: creatives as old as the plan)."""
    if latest is None:
        latest = origin
        notes.append("no creative_date: creatives taken as refreshed at the plan's launch")
    elif not per_row or any(d is None or d > day for d, day in zip(per_row, dates, strict=True)):
        notes.append("creative_date not given as of every day: earlier refreshes assumed "
                     f"every {schedule_days} days before {latest}")
    ages = []
    for i, d in enumerate(dates):
        own = per_row[i] if i < len(per_row) else None
        if own is not None and own <= d:
            ages.append((d - own).days)
            continue
        age = (d - latest).days
        if age < 0:  # a day before the latest refresh: the one before it, on the schedule
            age = age % schedule_days if schedule_days > 0 else (d - origin).days
        ages.append(max(age, 0))
    return np.asarray(ages, dtype=np.float64)
