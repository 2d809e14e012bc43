"""Refund rate and landing kernel, from refunds landed against the GMV of the days before.

In the simulator a day's order cohort has refunds ``gmv x rate_s`` (the account's
``refund_rate`` times the day's shape: deeper buying, promotions and settlement-ROI plans
move it, :func:`envs.stages.draw_refunds`), landing ``kernel_k`` of them ``k`` = 1..7 days
later (:func:`envs.stages.book_refunds`). So the refunds landed on day ``t`` are linear in
the past week's ``x_s = gmv_s x shape_s``: ``refunds_t = sum_k c_k x_(t-k)`` with ``c_k =
refund_rate x kernel_k``. The shapes come from the replay at the fitted market
(:meth:`.replay.Replay.predict`); ``c`` is a non-negative weighted least-squares fit (days
weighted by the binomial spread of their cohorts' refunds), its covariance the usual
sandwich of the weighted fit, and rate and kernel follow by the delta method.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from agents.calibration.account import AccountHistory
from agents.calibration.orders import Estimate
from envs.config import ScenarioConfig

KERNEL_DAYS = 7
MIN_REFUND_DAYS = 7  # days with a full week of cohorts before them, needed to fit


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
    fits = [_landing_fit(history, base, rows, shape) for shape in np.atleast_2d(shapes)]
    coef, cov = fits[0]
    if len(fits) > 1:  # the draws' spread, on top of the mean of their own covariances
        coefs = np.array([c for c, _ in fits])
        cov = np.mean([v for _, v in fits], axis=0) + np.cov(coefs, rowvar=False)
    total = float(coef.sum())
    z = stats.norm.ppf(0.5 + level / 2.0)
    total_sd = math.sqrt(max(float(cov.sum()), 0.0))
    source = f"refunds against the week's GMV before them, {rows.size} days"
    out = {"refund_rate": Estimate(total, max(total - z * total_sd, 0.0),
                                   min(total + z * total_sd, 0.95), "share of GMV", True,
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
                 shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-negative weighted least-squares fit of ``c`` (7,) for one shape (T,), and its
    covariance (7, 7)."""
    rate_shape = np.where(np.isfinite(shape), shape, base.refund_rate) / max(
        base.refund_rate, 1e-6)
    x = history.gmv * rate_shape  # (T,) cohort basis
    design = np.stack([x[rows - k] for k in range(1, KERNEL_DAYS + 1)], axis=1)
    y = history.refunds[rows]
    # binomial spread of each cohort's refund share, at the base's rate and kernel
    r = min(max(base.refund_rate, 0.01), 0.9)
    cohort_sd = history.gmv * math.sqrt(r * (1 - r)) / np.sqrt(np.maximum(history.orders, 1.0))
    kernel = np.asarray(base.refund_kernel)
    sd = np.sqrt(sum((kernel[k - 1] * cohort_sd[rows - k]) ** 2
                     for k in range(1, KERNEL_DAYS + 1)) + (0.01 * y.mean() + 1.0) ** 2)
    w = 1.0 / sd
    coef, _ = optimize.nnls(design * w[:, None], y * w)
    resid = (y - design @ coef) * w
    dof = max(rows.size - KERNEL_DAYS, 1)
    scale = max(float(resid @ resid) / dof, 1.0)  # over-dispersion, never below the binomial
    xtwx = (design * (w ** 2)[:, None]).T @ design
    return coef, scale * np.linalg.pinv(xtwx)


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
