"""The identification test ``recommend --fit`` proposes when the report left the pool's
ROI/volume curve to the prior.

A report whose target never moved shows one point of the curve: the fit cannot tell a wide
pool (``pool_sigma``) from a narrow one, and says the prior decided it. A few days of small
target moves would show more points. This module designs such a test and says what it is
expected to teach and to cost:

- **Designs.** The payment-ROI target moves through a few levels, each ``k`` days, in steps
  of ``x``: up then down (``(1 + x)``, then ``1 / (1 + x)`` of today's), up twice, or down
  twice (:data:`SHAPES`), then back (the day after the test). Every move is
  sized under the simulator's re-learning rule, with the margins the anchored policies use
  (:mod:`envs.anchored`): a day's target change within :func:`envs.anchored.target_step` (under
  ``relearn_target_change``), a budget rise within :func:`envs.anchored.budget_rise_step`, and
  the edits of any ``relearn_window_days`` days (:func:`envs.actions.edit_size`, counted from
  the report's own last edits) at most :data:`envs.anchored.EDIT_CAP` of the amount that
  restarts learning; one target edit a day (the platform allows two). A move that does not fit
  yet waits a day (the level before it is held longer). Where the forecast says the test's
  days would mostly spend the whole budget (a capped day says nothing about the curve),
  versions with the budget raised on the first day (:func:`budget_rises`: by half the
  window's room, then all of it) are tried too, the rise going to the ROI-controlled plans
  (the volume plan's budget held in CNY). Candidates: :data:`SHAPES` x :data:`HOLD_DAYS` x
  :data:`STEP_SHARES` (x the budget).
- **Information.** The test's days are appended to the report as the model expects them
  at the fit's estimate (:func:`expected_history`: the replay's spend and GMV, no
  noise), and the expected (Fisher) information they add is the likelihood's Gauss-Newton
  matrix ``J' S^-1 J`` (:func:`information`: ``J`` the derivative of its mean spend and
  ROI, ``S`` their joint covariance, both from :class:`.likelihood.Posterior` itself; one
  batched replay, about 0.1 s) with the test's days less without them. Added to the
  precision of the fit's Laplace covariance, it gives the expected sd after the test: a
  local design criterion (at the fit's estimate, not over its uncertainty). Budget-bound
  days and days of few orders count for nothing in it (conservative). It is smooth in the
  design, unlike the finite-difference Hessian the fit's intervals come from (tried first:
  a 0.01 change of a target moved its expected ``pool_mean_roi`` sd between 0.35 and 0.89
  of the prior's). The refit route (:func:`expected_sds` with ``method="refit"``: the test
  simulated at :data:`DRAWS` posterior draws, appended, and
  :func:`agents.calibration.fit.fit_account` run again, a few seconds a draw) checks it:
  docs/calibration.md.
- **Cost.** The forecast's profit over the test's days under the test's settings against
  holding today's, :data:`COPIES` paired copies (same seed: the same parameter draws and
  daily shocks): profit forgone, median and 80% interval. Effects after the test (a week's
  edits still in the re-learning window) are not counted.
- **Choice.** The cheapest design (median cost) whose expected sd halves the prior's for
  every curve parameter the prior decided (the fit's rule for "identified"); else the
  cheapest of those that narrow them about most (the sum of their sds over the prior's
  within :data:`INFO_TOLERANCE` each of the least), and the answer says none would
  identify them; no test at all when none would narrow them by :data:`NEGLIGIBLE_GAIN`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from agents.calibration.account import CAPPED_SHARE, AccountHistory
from agents.calibration.fit import (
    IDENTIFIED_RATIO,
    LEVEL,
    Fit,
    fit_account,
    interval_sd,
)
from agents.calibration.forecast import Forecast, Settings, forecast
from agents.calibration.likelihood import Posterior
from agents.calibration.replay import Replay
from agents.calibration.scenario import fitted_config
from envs.actions import PLANS, VOLUME, edit_size, platform_budget, platform_target
from envs.anchored import EDIT_CAP, budget_rise_step, target_step
from envs.config import ScenarioConfig

CURVE = ("pool_sigma", "pool_mean_roi", "pool_cost_cny")  # the ROI/volume curve's parameters
SHAPES = ((1, -1), (1, 2), (-1, -2))  # the target's levels, in steps of (1 + x) from today's:
# up then down, up twice, down twice (each level one move from the last)
HOLD_DAYS = (4, 7)  # days each target level is held (before any wait for the window's room)
STEP_SHARES = (1.0, 0.5)  # target steps as shares (in log) of the largest the rule allows
DRAWS = 4  # posterior draws of the refit route (a check of the Laplace route; rough)
COPIES = 400  # paired copies for the cost
SEED = 0  # the test's draws: the same fit gives the same proposal
CAPPED_DAYS_OK = 0.2  # share of the test's copy-days at the budget above which a budget rise
# is tried as well
INFO_TOLERANCE = 0.005  # sd over the prior's, per parameter: designs this close to the most
# informative count as informative (the cheapest of them is chosen when none identifies)
NEGLIGIBLE_GAIN = 0.02  # sd over the prior's, summed: a test narrowing less proposes nothing
# (a budget-bound account's best test narrows the spread by about 0.01 for a median 8k CNY)
MAX_WAIT_DAYS = 21  # a design whose moves wait longer than this for the window is dropped


class IdentificationError(ValueError):
    """A schedule that breaks the re-learning rule (a bug, not bad input)."""


@dataclass(frozen=True)
class Design:
    """One candidate test: its daily settings and what it is made of.

    :param step: the relative target step ``x`` (0.065: a level ``k`` is today's target x
        1.065^k).
    :param levels: the target's levels in steps, in order (``(1, -1)``: up, then down).
    :param hold_days: ``k``, the days each level is meant to be held.
    :param budget_ratio: the test's daily budget over today's (1: held).
    :param settings: the test's days (their number is the test's length).
    :param dates: the test's days; ``end_date`` the day after, back to today's settings.
    :param edit_loads: each test day's edit and the day after's (return), in units of the
        one-day re-learning threshold (:func:`envs.actions.edit_size`).
    :param window_loads: the edits of the re-learning window ending on each of those days
        that makes an edit (0 on the others), the report's own last edits included.
    """

    step: float
    levels: tuple[int, ...]
    hold_days: int
    budget_ratio: float
    settings: Settings
    dates: list[dt.date]
    end_date: dt.date
    edit_loads: np.ndarray
    window_loads: np.ndarray

    @property
    def days(self) -> int:
        return int(self.settings.target_roi.shape[0])


# ------------------------------------------------------------------------ the schedule
def largest_step(config: ScenarioConfig) -> float:
    """The largest relative target step ``x`` of a design: a design's biggest single edit,
    two steps (from ``1 + x`` to ``1 / (1 + x)`` of today's target, or back to today's from
    two steps away), within a day's step (:func:`envs.anchored.target_step`) and, with
    cumulative re-learning, within :data:`envs.anchored.EDIT_CAP` of the window's
    threshold."""
    log_move = math.log1p(target_step(config))
    if config.relearn_cumulative_enabled and config.relearn_target_change > 0:
        log_move = min(log_move, EDIT_CAP * math.log1p(config.relearn_target_change))
    return math.expm1(log_move / 2.0)


def raised_shares(shares: np.ndarray, budget_ratio: float) -> np.ndarray:
    """Plan shares (4,) for a total budget ``budget_ratio`` x today's that leave the volume
    plan's budget in CNY as it is (it spends its budget whatever the target, so the rise goes
    to the ROI-controlled plans, which the curve governs)."""
    shares = np.asarray(shares, dtype=np.float64)
    if budget_ratio == 1.0:
        return shares.copy()
    out = shares.copy()
    out[VOLUME] = shares[VOLUME] / budget_ratio
    rest = 1.0 - shares[VOLUME]
    others = np.arange(len(PLANS)) != VOLUME
    out[others] = shares[others] * (1.0 - out[VOLUME]) / max(rest, 1e-12)
    return out


def recent_edits(config: ScenarioConfig, history: AccountHistory) -> list[float]:
    """The report's edits on its last ``relearn_window_days - 1`` days, oldest first, in
    units of the one-day threshold: what the window holds when the test starts."""
    n = min(config.relearn_window_days - 1, history.days - 1)
    if n <= 0 or not config.relearn_cumulative_enabled:
        return []
    t, b = history.target[-n - 1:], history.budget[-n - 1:]
    return [float(x) for x in edit_size(config, t[:-1], t[1:], b[:-1], b[1:])]


def toward_today(today: float, target: float) -> float:
    """``target`` as the platform stores it (:func:`envs.actions.platform_target`: two
    decimals, 0.01-100), rounded towards ``today``'s target so that rounding never makes a
    move bigger than designed."""
    stored = float(platform_target(np.array([target]))[0])
    if abs(math.log(stored / today)) > abs(math.log(target / today)) + 1e-12:
        stored = float(platform_target(np.array([stored - math.copysign(0.01, target - today)])
                                       )[0])
    return stored


def _day_edit(config: ScenarioConfig, before: tuple[float, float],
              after: tuple[float, float]) -> float:
    return float(edit_size(config, np.array([before[0]]), np.array([after[0]]),
                           np.array([before[1]]), np.array([after[1]]))[0])


def schedule(config: ScenarioConfig, history: AccountHistory, step: float, hold_days: int,
             budget_ratio: float = 1.0, levels: tuple[int, ...] = (1, -1)) -> Design | None:
    """The test's days, from the day after the report: today's target x ``(1 + step) **
    level`` for each of ``levels`` in turn, ``hold_days`` each, then back to today's
    settings. A move waits (the level before it held a day longer) until the re-learning
    window has room for it; a budget rise goes first, on a day of its own when the window
    cannot take it with the first target move. Targets and budgets within the platform's
    limits (two decimals, rounded towards today's target: :func:`toward_today`; at least 300
    CNY).

    :param budget_ratio: the test's budget over today's (the rise to the ROI-controlled
        plans, :func:`raised_shares`).
    :return: None when a move would wait more than :data:`MAX_WAIT_DAYS` days, or when the
        platform's two decimals still push a move past the rule (:func:`check`; targets
        near 0.01).
    """
    t0, b0, s0 = (float(history.target[-1]), float(history.budget[-1]),
                  np.asarray(history.shares[-1], dtype=np.float64))
    budget = float(platform_budget(np.array([b0 * budget_ratio]))[0])
    shares = raised_shares(s0, budget / b0)
    targets = [toward_today(t0, t0 * (1.0 + step) ** k) for k in levels]
    window = config.relearn_window_days if config.relearn_cumulative_enabled else 1
    loads = recent_edits(config, history)
    days: list[tuple[float, float]] = []
    day_loads: list[float] = []
    current = (t0, b0)

    def room() -> float:
        if not config.relearn_cumulative_enabled:
            return math.inf
        return EDIT_CAP - sum((loads + day_loads)[-(window - 1):] if window > 1 else [])

    def enter(level: tuple[float, float]) -> bool:
        """Move to ``level`` on the next day the window allows; hold until then."""
        nonlocal current
        waited = 0
        size = _day_edit(config, current, level)
        if size > room() + 1e-12 and level[1] > current[1] and level[0] != current[0]:
            # the budget rise alone first (the target held), then the target move
            if not enter((current[0], level[1])):
                return False
            size = _day_edit(config, current, level)
        while size > room() + 1e-12:
            waited += 1
            if waited > MAX_WAIT_DAYS:
                return False
            days.append(current)
            day_loads.append(0.0)
        days.append(level)
        day_loads.append(size)
        current = level
        return True

    for level in ((t, budget) for t in targets):
        if not enter(level):
            return None
        days.extend([level] * (hold_days - 1))
        day_loads.extend([0.0] * (hold_days - 1))
    n = len(days)
    back = (t0, b0)
    end_load = _day_edit(config, current, back)
    while end_load > room() + 1e-12:  # the return waits for room too
        days.append(current)
        day_loads.append(0.0)
        if len(days) - n > MAX_WAIT_DAYS:
            return None
    all_loads = np.array(loads + day_loads + [end_load])
    windows = np.array([all_loads[max(0, i - window + 1):i + 1].sum() if all_loads[i] > 0
                        else 0.0 for i in range(len(loads), all_loads.size)])
    settings = Settings(np.array([d[0] for d in days]), np.array([d[1] for d in days]),
                        np.array([shares if d[1] != b0 else s0 for d in days]),
                        np.zeros(len(days), dtype=bool))
    first = history.dates[-1] + dt.timedelta(days=1)
    dates = [first + dt.timedelta(days=i) for i in range(len(days))]
    design = Design(step=step, levels=tuple(levels), hold_days=hold_days, budget_ratio=budget / b0,
                    settings=settings, dates=dates,
                    end_date=dates[-1] + dt.timedelta(days=1),
                    edit_loads=np.array(day_loads + [end_load]), window_loads=windows)
    try:
        check(config, history, design)
    except IdentificationError:  # the platform's rounding pushed a move past the rule
        return None
    return design


def check(config: ScenarioConfig, history: AccountHistory, design: Design) -> None:
    """The schedule keeps the re-learning rule: each day's target change within
    :func:`target_step`, each budget rise within :func:`budget_rise_step`, every window's
    edits at most :data:`EDIT_CAP` (cumulative rule on).

    :raises IdentificationError: naming the first day that breaks it.
    """
    s = design.settings
    target = np.r_[history.target[-1], s.target_roi, history.target[-1]]
    budget = np.r_[history.budget[-1], s.budget_cny, history.budget[-1]]
    log_t = np.abs(np.diff(np.log(target)))
    rise = np.diff(np.log(budget))
    for i in range(log_t.size):
        if log_t[i] > math.log1p(target_step(config)) + 1e-9:
            raise IdentificationError(f"test day {i + 1}: target change "
                                      f"{math.expm1(log_t[i]):.1%} beyond the day's step")
        if rise[i] > math.log1p(budget_rise_step(config)) + 1e-9:
            raise IdentificationError(f"test day {i + 1}: budget rise "
                                      f"{math.expm1(rise[i]):.1%} beyond the day's step")
    if config.relearn_cumulative_enabled and design.window_loads.max() > EDIT_CAP + 1e-9:
        raise IdentificationError(f"the window's edits reach {design.window_loads.max():.3f} "
                                  f"of the re-learning threshold (cap {EDIT_CAP})")


# ------------------------------------------------------------------------ what it teaches
def extended_history(history: AccountHistory, settings: Settings, simulated: Forecast,
                     copy: int = 0) -> AccountHistory:
    """The report with one simulated copy's test days appended, as a report would show
    them: a day is capped when its spend reached :data:`CAPPED_SHARE` of the budget; the
    plan stays out of learning (the test keeps the re-learning rule), creatives age, the
    balance is the report's last (the fit's replay does not read it)."""
    n = settings.target_roi.shape[0]
    p = {m: simulated.paths[m][copy] for m in ("spend", "gmv", "orders", "refunds")}

    def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b])

    off = np.zeros(n, dtype=bool)
    return dataclasses.replace(
        history, dates=history.dates + list(simulated.dates), day=cat(
            history.day, history.day[-1] + 1 + np.arange(n)),
        spend=cat(history.spend, p["spend"]), gmv=cat(history.gmv, p["gmv"]),
        orders=cat(history.orders, np.round(p["orders"])),
        target=cat(history.target, settings.target_roi),
        budget=cat(history.budget, settings.budget_cny),
        shares=np.vstack([history.shares, settings.shares]),
        refunds=None if history.refunds is None else cat(history.refunds, p["refunds"]),
        learning=cat(history.learning, off), learn_failed=cat(history.learn_failed, off),
        interrupted=cat(history.interrupted, off),
        creative_age=cat(history.creative_age, history.creative_age[-1] + 1 + np.arange(n)),
        capped=cat(history.capped, p["spend"] >= CAPPED_SHARE * settings.budget_cny),
        balance=None if history.balance is None else cat(history.balance,
                                                         np.full(n, history.balance[-1])),
        notes=list(history.notes))


def expected_history(fit: Fit, settings: Settings, z: np.ndarray) -> AccountHistory:
    """The report with the test's days appended as the model expects them under parameters
    ``z`` (P,), with no noise: the replay's spend (within the budget) and expected GMV, orders
    of the order value. What :func:`information` reads of them is which days the budget
    binds and which have enough orders to read the ROI as normal; a day is capped when its
    spend reaches :data:`CAPPED_SHARE` of the budget."""
    n = settings.target_roi.shape[0]
    dates = [fit.history.dates[-1] + dt.timedelta(days=i + 1) for i in range(n)]
    empty = {m: np.zeros((1, n)) for m in ("spend", "gmv", "orders", "refunds")}
    longer = extended_history(fit.history, settings, Forecast(dates, empty))
    test = slice(fit.history.days, None)
    days = Replay.of(longer, fit.base).predict(z[None, :])
    spend, gmv = days.spend[0, test], days.gmv[0, test]
    longer.spend[test], longer.gmv[test] = spend, gmv
    longer.orders[test] = gmv / fit.value("aov_cny")
    longer.capped[test] = spend >= CAPPED_SHARE * settings.budget_cny
    return longer


def information(fit: Fit, history: AccountHistory, z: np.ndarray) -> np.ndarray:
    """The expected (Fisher) information (P, P) about the parameters, in the fit's space,
    that ``history``'s spend and ROI carry at ``z``
    (:meth:`agents.calibration.likelihood.Posterior.expected_information`, loadings held at
    ``z``)."""
    post = Posterior.of(history, fit.base, fit.value("aov_cny"), fit.value("basket_noise_sd"))
    return post.expected_information(z)


def expected_sds(fit: Fit, settings: Settings, method: str = "laplace",
                 now: np.ndarray | None = None, draws: int = DRAWS,
                 seed: int = SEED) -> np.ndarray:
    """The expected posterior sd (P,) in the fit's space after the test.

    :param method: ``laplace``: the fit's Laplace covariance with the information the
        test's expected days add (:func:`information` of the report with them,
        :func:`expected_history`, less that of the report alone, ``now`` when already
        computed) added to its precision; ``refit``: :func:`fit_account` on
        the report with the test simulated at each of ``draws`` posterior draws
        (:func:`agents.calibration.forecast.forecast`, one copy), the median of the refits'
        sds (from their 90% intervals), a few seconds a draw.
    """
    if method == "laplace":
        before = now if now is not None else information(fit, fit.history, fit.z)
        added = information(fit, expected_history(fit, settings, fit.z), fit.z) - before
        eigval, eigvec = np.linalg.eigh(0.5 * (added + added.T))
        added = (eigvec * np.maximum(eigval, 0.0)) @ eigvec.T  # more days add, never remove
        precision = np.linalg.inv(fit.cov) + added
        return np.sqrt(np.diag(np.linalg.inv(0.5 * (precision + precision.T))))
    if method != "refit":
        raise ValueError(f"method: 'laplace' or 'refit', not {method!r}")
    out = []
    for j, z in enumerate(fit.sample_z(np.random.default_rng(seed), draws)):
        collapsed = dataclasses.replace(fit, z=z, cov=fit.cov * 1e-12)  # every copy at z
        simulated = forecast(collapsed, settings, copies=1, seed=seed + 1 + j)
        refit = fit_account(extended_history(fit.history, settings, simulated), fit.base,
                            margin=fit.margin)
        out.append([_estimate_sd(p, refit.estimates[p.name]) for p in fit.parameters])
    return np.median(np.array(out), axis=0)


def _estimate_sd(parameter, estimate) -> float:
    """An estimate's sd in the fit's space, from its 90% interval."""
    low, high = parameter.z_of(estimate.low), parameter.z_of(estimate.high)
    return interval_sd(low, high)


# ------------------------------------------------------------------------ the proposal
def prior_decided_curve(fit: Fit) -> list[str]:
    """The curve's parameters (:data:`CURVE`) the prior decided, ``pool_sigma`` first."""
    return [n for n in CURVE if not fit.estimates[n].identified]


def why_none(fit: Fit) -> str | None:
    """Why no test is proposed (None: one is)."""
    h = fit.history
    if not prior_decided_curve(fit):
        return ("the report identified the pool's ROI/volume curve (pool_sigma, "
                "pool_mean_roi, pool_cost_cny): no test needed")
    if h.learning[-1]:
        return ("the plan is learning on the report's last day: a test needs a plan out of "
                "learning (ask again once it has left learning)")
    if h.learn_failed[-1]:
        return ("the plan's learning failed on the report's last day (its traffic is "
                "throttled until an edit restarts learning): a test needs a plan that "
                "delivers (ask again once it has learned)")
    if h.shares[-1][VOLUME] >= 1.0 - 1e-9:
        return ("all the budget is on the volume plan, which has no target: a target test "
                "needs budget on an ROI-controlled plan")
    return None


def _interval(parameter, z: float, sd: float) -> tuple[float, float]:
    q = stats.norm.ppf(0.5 + LEVEL / 2.0)
    return float(parameter.value(z - q * sd)), float(parameter.value(z + q * sd))


def _capped_share(design: Design, result: Forecast) -> float:
    """Share of the test's copy-days whose spend reached the budget."""
    return float(np.mean(result.paths["spend"] >= CAPPED_SHARE
                         * design.settings.budget_cny[None, :]))


def budget_rises(config: ScenarioConfig) -> tuple[float, ...]:
    """The test's budget ratios tried in turn while its days would mostly be capped: today's,
    a rise that uses half the window's room (the first target move fits beside it), and one
    that uses all of it (the target moves wait a window). Each within a day's rise."""
    if not config.relearn_cumulative_enabled:
        return (1.0, 1.0 + budget_rise_step(config))
    top = 1.0 + budget_rise_step(config)
    return tuple(min(top, (1.0 + config.relearn_budget_jump) ** (EDIT_CAP * share))
                 for share in (0.0, 0.5, 1.0))


def candidates(fit: Fit, config: ScenarioConfig) -> list[tuple[Design, Forecast]]:
    """The designs and their forecasts (:data:`COPIES`, seed :data:`SEED`):
    :data:`HOLD_DAYS` x :data:`STEP_SHARES` at today's budget, and at each larger budget of
    :func:`budget_rises` while the smaller one's test spends the whole budget on more than
    :data:`CAPPED_DAYS_OK` of its days (a capped day says nothing about the curve)."""
    h = fit.history
    big = largest_step(config)
    out: list[tuple[Design, Forecast]] = []
    seen: set[bytes] = set()
    for levels, hold, share in itertools.product(SHAPES, HOLD_DAYS, STEP_SHARES):
        step = math.expm1(share * math.log1p(big))
        for ratio in budget_rises(config):
            design = schedule(config, h, step, hold, ratio, levels)
            if design is None:
                break
            key = np.r_[design.settings.target_roi, design.settings.budget_cny].tobytes()
            result = forecast(fit, design.settings, copies=COPIES, seed=SEED)
            if key not in seen:
                seen.add(key)
                out.append((design, result))
            if _capped_share(design, result) <= CAPPED_DAYS_OK:
                break
    return out


def assess(fit: Fit, design: Design, test: Forecast, now: np.ndarray, hold: Forecast,
           names: list[str]) -> dict[str, Any]:
    """A design's expected cost and widths (plain data); ``test``: its forecast; ``hold``:
    today's settings held over at least the design's days, the same seed; ``now``: the
    information of the report alone (:func:`information`)."""
    days = design.days
    forgone = (hold.paths["profit"][:, :days].sum(axis=1)
               - test.paths["profit"].sum(axis=1))
    sd_after = expected_sds(fit, design.settings, now=now)
    sd_now = np.sqrt(np.diag(fit.cov))
    ix = {p.name: i for i, p in enumerate(fit.parameters)}
    widths = {}
    for name in CURVE:
        i = ix[name]
        p = fit.parameters[i]
        lo_now, hi_now = _interval(p, fit.z[i], sd_now[i])
        lo, hi = _interval(p, fit.z[i], sd_after[i])
        widths[name] = {
            "unit": p.unit, "now": [lo_now, hi_now], "after": [lo, hi],
            "width_now": hi_now - lo_now, "width_after": hi - lo,
            "sd_over_prior_now": float(sd_now[i] / p.prior_sd),
            "sd_over_prior_after": float(sd_after[i] / p.prior_sd),
            "identified_now": bool(fit.estimates[name].identified),
            "identified_after": bool(sd_after[i] < IDENTIFIED_RATIO * p.prior_sd)}
    q = np.quantile(forgone, (0.1, 0.5, 0.9))
    return {
        "design": design,
        "cost_cny": dict(zip(("p10", "p50", "p90"), map(float, q), strict=True)),
        "budget_bound_share": _capped_share(design, test),
        "widths": widths,
        "identifies": all(widths[n]["identified_after"] for n in names)}


def propose(fit: Fit) -> tuple[dict[str, Any] | None, str | None]:
    """The identification test for a fitted account: ``(test, None)`` as plain data (the
    ``identification_test`` object of ``recommend --fit --json``), or ``(None, reason)``.
    A failure of the numerics (a covariance that is not positive definite) is a reason too:
    the test is an addition to the recommendation, never a reason to withhold it."""
    try:
        return _propose(fit)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return None, f"could not design a test ({type(exc).__name__}: {exc})"


def _propose(fit: Fit) -> tuple[dict[str, Any] | None, str | None]:
    reason = why_none(fit)
    if reason is not None:
        return None, reason
    started = time.perf_counter()
    config = fitted_config(fit)
    names = prior_decided_curve(fit)
    designs = candidates(fit, config)
    if not designs:
        return None, (f"no schedule fits the re-learning rule within {MAX_WAIT_DAYS} days "
                      "of waiting")
    now = information(fit, fit.history, fit.z)
    longest = max(d.days for d, _ in designs)
    h = fit.history
    hold = forecast(fit, Settings.hold(h.target[-1], h.budget[-1], h.shares[-1], longest),
                    copies=COPIES, seed=SEED)
    scored = [assess(fit, d, result, now, hold, names) for d, result in designs]
    good = [s for s in scored if s["identifies"]]
    if good:
        chosen = min(good, key=lambda s: s["cost_cny"]["p50"])
    else:
        def spread(s: dict[str, Any]) -> float:
            return sum(s["widths"][n]["sd_over_prior_after"] for n in names)

        best = min(spread(s) for s in scored)
        now_spread = sum(scored[0]["widths"][n]["sd_over_prior_now"] for n in names)
        if best > now_spread - NEGLIGIBLE_GAIN:
            capped = min(s["budget_bound_share"] for s in scored)
            why = (f"its days would spend the whole budget on {capped:.0%} of them or more, "
                   "and a capped day hides the curve: raise the ROI-controlled plans' budget "
                   "first" if capped > CAPPED_DAYS_OK else
                   "the moves such a test can make do not show this account's curve")
            return None, (f"no test of target moves under the re-learning rule is expected to "
                          f"narrow {', '.join(names)} (the prior decided them; at best their "
                          f"sds over the prior's would go from {now_spread:.2f} to {best:.2f} "
                          f"in sum): {why}")
        near = [s for s in scored if spread(s) <= best + INFO_TOLERANCE * len(names)]
        chosen = min(near, key=lambda s: s["cost_cny"]["p50"])
    return as_data(fit, config, chosen, scored, names, time.perf_counter() - started), None


def as_data(fit: Fit, config: ScenarioConfig, chosen: dict[str, Any],
            scored: list[dict[str, Any]], names: list[str], seconds: float) -> dict[str, Any]:
    """The proposal as plain data (JSON)."""
    d: Design = chosen["design"]
    h = fit.history
    s = d.settings
    days = [{"date": day.isoformat(), "target_roi": float(s.target_roi[i]),
             "budget_cny": round(float(s.budget_cny[i]), 2),
             "shares": {p: round(float(x), 4) for p, x in zip(PLANS, s.shares[i], strict=True)}}
            for i, day in enumerate(d.dates)]
    if chosen["identifies"]:
        verdict = (f"expected to identify {', '.join(names)} (its sd at most half the "
                   "prior's): the cheapest such design")
    else:
        missed = [n for n in names if not chosen["widths"][n]["identified_after"]]
        verdict = (f"no design tried is expected to identify {', '.join(missed)} (halve the "
                   "prior's sd); this one is the cheapest of those that narrow them most")
        caught = [n for n in names if n not in missed]
        if caught:
            verdict += f" and is expected to identify {', '.join(caught)}"
    if chosen["budget_bound_share"] > CAPPED_DAYS_OK:
        verdict += (f"; {chosen['budget_bound_share']:.0%} of its days would still spend the "
                    "whole budget, which hides the curve: a higher budget for the "
                    "ROI-controlled plans first would make a test worth more")
    return {
        "parameters": names, "identifies": chosen["identifies"], "verdict": verdict,
        "first_date": d.dates[0].isoformat(), "last_date": d.dates[-1].isoformat(),
        "days": d.days, "step": d.step, "levels": list(d.levels), "hold_days": d.hold_days,
        "budget_ratio": d.budget_ratio, "schedule": days,
        "end": {"date": d.end_date.isoformat(), "target_roi": float(h.target[-1]),
                "budget_cny": round(float(h.budget[-1]), 2)},
        "rule": {"relearn_target_change": config.relearn_target_change,
                 "relearn_budget_jump": config.relearn_budget_jump,
                 "relearn_window_days": config.relearn_window_days,
                 "cumulative": config.relearn_cumulative_enabled, "edit_cap": EDIT_CAP,
                 "largest_day_edit": float(d.edit_loads.max()),
                 "largest_window_edits": float(d.window_loads.max()),
                 "target_edits_per_day": 1},
        "cost_cny": chosen["cost_cny"],
        "cost_meaning": ("profit forgone over the test's days against holding today's "
                         f"settings: {COPIES} paired simulated copies, median and 80% "
                         "interval (negative: the test is expected to earn more)"),
        "budget_bound_share": chosen["budget_bound_share"],
        "widths": chosen["widths"],
        "method": ("expected widths: the fit's Laplace covariance with the expected (Fisher, "
                   "Gauss-Newton) information of the test's days, as the model expects them "
                   "at the fit's estimate, added to its precision (local: at the estimate, "
                   "not over its uncertainty)"),
        "copies": COPIES, "seed": SEED,
        "candidates": [{"step": c["design"].step, "levels": list(c["design"].levels),
                        "hold_days": c["design"].hold_days,
                        "budget_ratio": c["design"].budget_ratio, "days": c["design"].days,
                        "cost_p50_cny": c["cost_cny"]["p50"],
                        "budget_bound_share": c["budget_bound_share"],
                        "pool_sigma_width_after": c["widths"]["pool_sigma"]["width_after"],
                        "identifies": c["identifies"]} for c in scored],
        "seconds": seconds}


# ------------------------------------------------------------------------ the table
def _phases(test: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """The schedule as runs of equal settings: (first date, last date, target, budget)."""
    out: list[tuple[str, str, float, float]] = []
    for day in test["schedule"]:
        level = (day["target_roi"], day["budget_cny"])
        if out and (out[-1][2], out[-1][3]) == level:
            out[-1] = (out[-1][0], day["date"], *level)
        else:
            out.append((day["date"], day["date"], *level))
    return out


def format_test(test: dict[str, Any] | None, reason: str | None) -> str:
    """The ``identification test`` section of ``recommend --fit``'s table."""
    if test is None:
        return f"  identification test: none ({reason})"
    rule = test["rule"]
    lines = [f"  identification test: the report left {', '.join(test['parameters'])} to the "
             f"prior; {test['days']} days of target moves would show more of the ROI/volume "
             "curve:"]
    for first, last, target, budget in _phases(test):
        when = first if first == last else f"{first}..{last}"
        lines.append(f"    {when:<22}  target {target:.2f}  budget {budget:,.2f}")
    end = test["end"]
    lines.append(f"    {end['date']:<22}  back to target {end['target_roi']:.2f}  budget "
                 f"{end['budget_cny']:,.2f}")
    window = (f", any {rule['relearn_window_days']} days' edits at most "
              f"{rule['largest_window_edits']:.3f}" if rule["cumulative"] else "")
    lines.append(f"  every move under the re-learning rule: the largest day's edit "
                 f"{rule['largest_day_edit']:.3f}{window} of what restarts learning (a "
                 f"{rule['relearn_target_change']:.0%} target change; cap {rule['edit_cap']})")
    c = test["cost_cny"]
    earns = "; negative: it is expected to earn more" if c["p50"] < 0 else ""
    lines.append(f"  expected cost: {c['p50']:,.0f} CNY [{c['p10']:,.0f} .. {c['p90']:,.0f}] of "
                 f"profit forgone over the {test['days']} days against holding today's "
                 f"settings ({test['copies']} paired copies; median [80% interval]{earns})")
    lines.append("  expected 90% intervals, now -> after the test:")
    for name in CURVE:
        w = test["widths"][name]
        fmt = "{:,.0f}" if w["unit"].startswith("CNY") else "{:.3g}"
        now = "..".join(fmt.format(x) for x in w["now"])
        after = "..".join(fmt.format(x) for x in w["after"])
        mark = ("identified" if w["identified_after"] else "prior-decided")
        lines.append(f"    {name + ' (' + w['unit'] + ')':<28} {now} -> {after} ({mark})")
    lines.append(f"  {test['verdict']}")
    return "\n".join(lines)
