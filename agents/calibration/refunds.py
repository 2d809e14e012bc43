"""Refund rate and landing kernel, from refunds landed against the GMV of the days before.

In the simulator a day's order cohort has refunds ``gmv x rate_s`` (the account's
``refund_rate`` times the day's shape: deeper buying, promotions and settlement-ROI plans
move it, :func:`envs.stages.draw_refunds`), landing ``kernel_k`` of them ``k`` = 1..7 days
later (:func:`envs.stages.book_refunds`). So the refunds landed on day ``t`` are linear in
the past week's ``x_s = gmv_s x shape_s``: ``refunds_t = sum_k c_k x_(t-k)`` with ``c_k =
refund_rate x kernel_k`` (for cohorts of few orders, the share's draw clipped at 0 lifts
its mean above the rate: :func:`envs.stages.refund_share_moments`, so ``x_s`` is taken at
the fitted rate, refitted until it settles). The shapes come from the replay at the fitted
market (:meth:`.replay.Replay.predict`); ``c`` is a non-negative weighted least-squares fit, its
covariance a sandwich with the landed days' covariance (each cohort's noise shared by the 7
days it lands on), and rate and kernel follow by the delta method.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from agents.calibration.account import AccountHistory
from agents.calibration.orders import Estimate
from envs.config import ScenarioConfig, describe_parameters
from envs.stages import refund_share_moments

KERNEL_DAYS = 7
# days with a full week of cohorts before them, needed to fit: twice the kernel's 7
# coefficients (with 7 the least squares passes through every day, and the residuals that
# scale its covariance are all 0; on a 14-day report of an account that sold on 3 of its
# first 7 days it put the rate at 86)
MIN_REFUND_DAYS = 2 * KERNEL_DAYS


def refund_estimates(history: AccountHistory, base: ScenarioConfig, shapes: np.ndarray,
                     level: float = 0.9) -> tuple[dict[str, Estimate], list[str]]:
    """``refund_rate`` and ``refund_kernel_1`` .. ``_7`` (shares of a cohort's refunds landing
    1..7 days after its order day).

    :param shapes: each day's cohort refund rate at the base's ``refund_rate`` (K, T), from
        the replay at the fitted market (first row) and at draws from the fit's uncertainty
        (the others); NaN where it booked no order (the base's rate stands in). The shape
        moves with how deep the account buys into its pool, so an uncertain pool makes an
        uncertain rate: the intervals add the spread of the draws' estimates to each fit's
        own (the law of total variance); the values are the first row's.
    :return: the estimates, and notes on what the data could not decide.
    """
    notes: list[str] = []
    prior = _prior(base, level)
    if history.refunds is None:
        return prior, ["refund rate and kernel: no refunds column, the base's values"]
    rows = np.arange(KERNEL_DAYS, history.days)
    if rows.size < MIN_REFUND_DAYS or history.gmv.sum() <= 0:
        return prior, [f"refund rate and kernel: fewer than {MIN_REFUND_DAYS} days with a "
                       "week of orders before them, the base's values"]
    if not np.any(history.refunds[rows] > 0):
        notes.append("no refund landed on any day: the refund rate is fitted as (near) 0")
    shapes = np.atleast_2d(shapes)
    fits = [_landing_fit(history, base, rows, shapes[0])]
    start = float(fits[0][0].sum()) or None  # the draws' refits start from the fit's rate
    fits += [_landing_fit(history, base, rows, shape, start) for shape in shapes[1:]]
    coef, cov = fits[0]
    if float(coef.sum()) > MAX_REFUND_RATE:
        return prior, [f"refund rate and kernel: the refunds landed are more than "
                       f"{MAX_REFUND_RATE:.0%} of the week's GMV before them (refunds of "
                       "orders from before the report?), the base's values"]
    if len(fits) > 1:  # the draws' spread, on top of the mean of their own covariances
        coefs = np.array([c for c, _ in fits])
        cov = np.mean([v for _, v in fits], axis=0) + np.cov(coefs, rowvar=False)
    total = float(coef.sum())
    z = stats.norm.ppf(0.5 + level / 2.0)
    total_sd = math.sqrt(max(float(cov.sum()), 0.0))
    source = f"refunds against the week's GMV before them, {rows.size} days"
    out = {"refund_rate": Estimate(total, max(total - z * total_sd, 0.0),
                                   min(total + z * total_sd, MAX_REFUND_RATE), "share of GMV", True,
                                   source)}
    if total <= 1e-9:
        for k in range(KERNEL_DAYS):
            out[f"refund_kernel_{k + 1}"] = prior[f"refund_kernel_{k + 1}"]
        notes.append("refund kernel: no refunds to time, the base's values")
        return out, notes
    share = coef / total
    for k in range(KERNEL_DAYS):
        grad = -share[k] / total * np.ones(KERNEL_DAYS)
        grad[k] += 1.0 / total
        sd_k = math.sqrt(max(float(grad @ cov @ grad), 0.0))
        out[f"refund_kernel_{k + 1}"] = Estimate(
            float(share[k]), max(share[k] - z * sd_k, 0.0), min(share[k] + z * sd_k, 1.0),
            "share", sd_k < 0.5 * _KERNEL_PRIOR_SD, source)
    return out, notes


def _landing_fit(history: AccountHistory, base: ScenarioConfig, rows: np.ndarray,
                 shape: np.ndarray, start: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The non-negative weighted least-squares fit of ``c`` (7,) for one shape (T,), and its
    covariance (7, 7).

    A cohort's expected refunds are its GMV times the mean share
    (:func:`envs.stages.refund_share_moments`) at its rate ``R x shape`` (``R = sum c``, the
    refund rate): above the rate for cohorts of few orders, so the basis depends on ``R``
    and is refitted until ``R`` settles (:data:`BASIS_ITERATIONS`), from ``start`` when
    given (a rate, share of GMV).

    The noise is the cohorts' own: each cohort's refund share is drawn once and lands over
    the next 7 days, so the landed days' covariance is ``K V K'`` (``K`` the loadings of
    cohorts on landing days, at a kernel between the fitted and the base's,
    :data:`FITTED_KERNEL_WEIGHT`; ``V`` the drawn shares' variances at the fitted rate).
    Days are weighted by its diagonal; the covariance of ``c`` is the sandwich with the
    full ``K V K'``, scaled up by any over-dispersion of the residuals, its derivative
    including the basis's own dependence on ``R``. A fit that treats the days as
    independent counts each cohort's noise several times over (its intervals were about
    half as wide as they should be); whitening by ``K V K'`` (full generalised least
    squares) is exact at the true kernel but breaks down at a wrong one, ``K V K'`` being
    nearly singular.
    """
    rate_shape = np.where(np.isfinite(shape), shape, base.refund_rate) / max(
        base.refund_rate, 1e-6)
    y = history.refunds[rows]
    lag = rows[:, None] - np.arange(history.days)[None, :]  # landing day minus cohort day
    within = (lag >= 1) & (lag <= KERNEL_DAYS)
    lag_index = np.clip(lag, 1, KERNEL_DAYS) - 1
    nugget = (0.01 * y.mean() + 1.0) ** 2  # rounding of the report (CNY^2)

    def design(total: float | None) -> np.ndarray:
        """Each row's cohorts (T_rows, 7): GMV times the expected share per unit of rate."""
        x = history.gmv * rate_shape if total is None else history.gmv * refund_share_moments(
            total * rate_shape, history.orders)[0] / total
        return np.stack([x[rows - k] for k in range(1, KERNEL_DAYS + 1)], axis=1)

    def landed_covariance(total: float, kernel: np.ndarray, full: bool = True) -> np.ndarray:
        """The landed days' covariance (T_rows, T_rows), CNY^2; only its diagonal (T_rows,)
        unless ``full``."""
        rate = np.clip(total * rate_shape, 0.01, 0.9)
        cohort_var = history.gmv ** 2 * refund_share_moments(rate, history.orders)[1]
        loads = np.where(within, kernel[lag_index], 0.0)
        if not full:
            return (loads * loads) @ cohort_var + nugget
        cov = (loads * cohort_var) @ loads.T
        cov[np.diag_indices_from(cov)] += nugget
        return cov

    def blended(coef: np.ndarray, total: float) -> np.ndarray:
        """The kernel the covariance is built with (:data:`FITTED_KERNEL_WEIGHT`)."""
        return (FITTED_KERNEL_WEIGHT * coef / total
                + (1.0 - FITTED_KERNEL_WEIGHT) * base_kernel)

    total = start
    base_kernel = np.asarray(base.refund_kernel, dtype=np.float64)
    var_y = landed_covariance(start or base.refund_rate, base_kernel, full=False)
    for _ in range(BASIS_ITERATIONS):
        x = design(total)
        w = 1.0 / np.sqrt(var_y)
        coef, _ = optimize.nnls(x * w[:, None], y * w)
        moved = float(coef.sum())
        if moved <= 1e-9:
            break
        settled = total is not None and abs(moved - total) <= SETTLED * moved
        total = moved
        var_y = landed_covariance(total, blended(coef, total), full=False)
        if settled:
            break
    if total is not None and total > 1e-9:  # d refunds / d c_j = x_j + sum_k c_k dx_k / dR
        h = 1e-4 * total
        jac = x + (((design(total + h) - design(total - h)) / (2.0 * h)) @ coef)[:, None]
        cov_y = landed_covariance(total, blended(coef, total))
    else:  # no refunds: a linear basis at the base's rate and kernel
        jac, cov_y = x, landed_covariance(base.refund_rate, base_kernel)
    w = 1.0 / np.sqrt(np.diag(cov_y))
    resid = (y - x @ coef) * w
    dof = max(rows.size - KERNEL_DAYS, 1)
    scale = max(float(resid @ resid) / dof, 1.0)  # over-dispersion, never below the binomial
    wj = jac * (w ** 2)[:, None]
    bread = np.linalg.pinv(jac.T @ wj)
    return coef, scale * bread @ (wj.T @ cov_y @ wj) @ bread


# the simulator's largest refund rate (its range in envs.config): a fitted rate above it
# is not a measurement
MAX_REFUND_RATE = next(row["hi"] for row in describe_parameters() if row["name"] == "refund_rate")
BASIS_ITERATIONS = 6  # refits of the basis at the refund rate (it settles in 2-4)
SETTLED = 1e-4  # relative change of the rate at which it has settled
# the kernel the landed days' covariance is built with: the fitted one, half-way to the
# base's (a fitted kernel of few orders is noisy; on 300 simulated reports of 2 and 40
# orders a day, either alone gave 85-93% coverage, the blend 87-93%)
FITTED_KERNEL_WEIGHT = 0.5

_KERNEL_PRIOR_SD = 0.1  # a kernel share is known to about +-0.1 before data (assumption)
_RATE_PRIOR_LOGIT_SD = 0.5  # the refund rate within about x1.6 of the base's (assumption)


def _prior(base: ScenarioConfig, level: float) -> dict[str, Estimate]:
    """The base's values with prior intervals (assumptions above), marked not identified."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    r = min(max(base.refund_rate, 1e-3), 0.95)
    logit = math.log(r / (1 - r))

    def inv(v):
        return 1.0 / (1.0 + math.exp(-v))

    out = {"refund_rate": Estimate(r, inv(logit - z * _RATE_PRIOR_LOGIT_SD),
                                   inv(logit + z * _RATE_PRIOR_LOGIT_SD), "share of GMV",
                                   False, "prior (base scenario)")}
    for k, share in enumerate(base.refund_kernel):
        out[f"refund_kernel_{k + 1}"] = Estimate(
            float(share), max(share - z * _KERNEL_PRIOR_SD, 0.0),
            min(share + z * _KERNEL_PRIOR_SD, 1.0), "share", False, "prior (base scenario)")
    return out


def refund_prior_sd() -> tuple[float, float]:
    """Prior sds: the refund rate's logit, a kernel share (for synthetic accounts)."""
    return _RATE_PRIOR_LOGIT_SD, _KERNEL_PRIOR_SD
