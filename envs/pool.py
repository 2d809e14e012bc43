"""The traffic pool and the target-ROI bidder in closed form.

A day's pool of ad opportunities costs ``V`` CNY in total at market prices. Each CNY spent
on an opportunity returns payment GMV ``x`` (its ROI); cost-weighted across the pool
``x ~ LogNormal(ln m - sigma^2 / 2, sigma)``, so the pool's mean ROI is ``m``.

A bidder that buys the best opportunities first, down to a threshold ``theta``, buys the
cost share ``q = Phi(z)`` with ``z = (ln m - sigma^2/2 - ln theta) / sigma`` and earns the GMV
share ``H(q) = Phi(Phi^-1(q) + sigma)`` of the pool's GMV ``V * m``. Its average ROI is
``m * H(q) / q``; a target-ROI bidder picks ``q`` so that this equals the target.

``H`` is the pool's Lorenz-like curve: the first ``q`` of cost, best first, yields the share
``H(q)`` of all GMV. Buying the cost band ``[q1, q2]`` yields ``V * m * (H(q2) - H(q1))``.

Inverting ``H(q)/q = ratio`` has no closed form, so it is tabulated once over
``(sigma, ln ratio)`` and read by bilinear interpolation: a few array operations per call,
no Python loop over accounts.

**Selection on noisy estimates** (the winner's curse, :func:`select_on_estimates`). A real
bidder ranks opportunities by an *estimate* of their ROI. With the estimated log ROI
``ln x + e - sigma_e^2/2``, ``e ~ N(0, sigma_e^2)`` independent of ``x`` (the estimate is
right on average over the pool: its mean is ``m``), the estimates are lognormal with mean
``m`` and log-sd ``s = sqrt(sigma^2 + sigma_e^2)``, so the bidder that holds the *estimated*
average at the target buys the share ``q`` of the closed form above with ``s`` for
``sigma``. True and estimated log ROI are jointly normal (covariance ``sigma^2``), so the
truth of what it buys is a bivariate-normal truncation: the best ``q`` of cost by estimate
yields the GMV share ``Phi(Phi^-1(q) + rho sigma)`` with ``rho = sigma / s``, i.e. ``H`` with
``sigma_r = sigma^2 / s`` in place of ``sigma``. Its true average ROI ``m H_r(q) / q`` falls
short of the target, the more so the higher the target sits above ``m``; and the volume
bought at a given *true* ROI is that of the closed form with ``sigma_r < sigma``: smaller.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

from envs.compiled import helper

SIGMA_MIN, SIGMA_MAX, SIGMA_STEPS = 0.1, 1.6, 151
LOG_RATIO_MAX, LOG_RATIO_STEPS = 6.0, 1201
D_SIGMA = (SIGMA_MAX - SIGMA_MIN) / (SIGMA_STEPS - 1)  # table step in sigma
D_LOG_RATIO = LOG_RATIO_MAX / (LOG_RATIO_STEPS - 1)  # table step in ln(target / m)


@helper
def gmv_share(cost_share: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Share of the pool's GMV earned by its best ``cost_share`` of cost.

    :param cost_share: share of the pool's cost bought, best first, in [0, 1].
    :param sigma: log-sd of the pool's ROI distribution.
    :return: ``H(q) = Phi(Phi^-1(q) + sigma)``, in [0, 1].
    """
    return ndtr(ndtri(np.minimum(np.maximum(cost_share, 0.0), 1.0)) + sigma)


def _solve_share(sigma: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
    """Bisection for ``z`` with ``Phi(z + sigma) / Phi(z) = exp(log_ratio)``; returns ``Phi(z)``.

    Vectorised over the whole grid; only used to build the table.
    """
    lo = np.full(np.broadcast(sigma, log_ratio).shape, -40.0)
    hi = np.full_like(lo, 40.0)
    target = np.broadcast_to(log_ratio, lo.shape)
    from scipy.special import log_ndtr

    for _ in range(80):
        mid = 0.5 * (lo + hi)
        # ln(H/q) decreases in z: too high a ratio means z must move right.
        too_high = (log_ndtr(mid + sigma) - log_ndtr(mid)) > target
        lo = np.where(too_high, mid, lo)
        hi = np.where(too_high, hi, mid)
    return ndtr(0.5 * (lo + hi))


@lru_cache(maxsize=1)
def share_table() -> np.ndarray:
    """Table of the bought cost share over ``(sigma, ln ratio)``, flattened (row ``sigma``);
    built once per process (about 0.7 s on one core: 80 bisection steps over 181k grid
    points)."""
    sigmas = np.linspace(SIGMA_MIN, SIGMA_MAX, SIGMA_STEPS)[:, None]
    log_ratios = np.linspace(0.0, LOG_RATIO_MAX, LOG_RATIO_STEPS)[None, :]
    table = _solve_share(sigmas, log_ratios)
    table[:, 0] = 1.0  # ratio 1: the target equals the pool mean, everything qualifies
    return table.ravel()


def qualifying_share(target_roi: np.ndarray, pool_roi: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Cost share of the pool a target-ROI bidder buys.

    :param target_roi: the average payment ROI the bidder must hold (GMV CNY per spend CNY).
    :param pool_roi: the pool's mean ROI ``m`` (GMV CNY per spend CNY).
    :param sigma: log-sd of the pool's ROI distribution, within [0.1, 1.6].
    :return: the share ``q`` in (0, 1]; 1 where the target is at or below the pool mean.
    """
    return table_share(share_table(), np.asarray(target_roi, dtype=np.float64),
                       np.asarray(pool_roi, dtype=np.float64), np.asarray(sigma, dtype=np.float64))


@helper
def table_share(table: np.ndarray, target_roi: np.ndarray, pool_roi: np.ndarray,
                sigma: np.ndarray) -> np.ndarray:
    """:func:`qualifying_share` read from ``table`` (:func:`share_table`), by bilinear
    interpolation; the form compiled code calls (it cannot reach the cached table)."""
    log_ratio = np.log(np.maximum(target_roi, 1e-12) / pool_roi)
    x = np.minimum(np.maximum(log_ratio, 0.0), LOG_RATIO_MAX) * (1.0 / D_LOG_RATIO)
    y = (np.minimum(np.maximum(sigma, SIGMA_MIN), SIGMA_MAX) - SIGMA_MIN) * (1.0 / D_SIGMA)
    i = np.minimum(x.astype(np.intp), LOG_RATIO_STEPS - 2)
    j = np.minimum(y.astype(np.intp), SIGMA_STEPS - 2)
    fx = x - i
    fy = y - j
    corner = j * LOG_RATIO_STEPS + i  # table[j, i] in the flat table
    top = table.take(corner) * (1.0 - fx) + table.take(corner + 1) * fx
    corner += LOG_RATIO_STEPS
    bottom = table.take(corner) * (1.0 - fx) + table.take(corner + 1) * fx
    return top * (1.0 - fy) + bottom * fy


@helper
def ranking_sigma(sigma: np.ndarray, estimation_noise_sd: float) -> np.ndarray:
    """Log-sd of the bidder's ROI estimates across the pool, ``s = sqrt(sigma^2 +
    sigma_e^2)``: the bidder selects as if the pool had this spread.

    :param sigma: log-sd of the pool's true ROI; ``estimation_noise_sd`` the log-sd
        ``sigma_e`` of the estimates' error.
    """
    return np.sqrt(sigma * sigma + estimation_noise_sd * estimation_noise_sd)


@helper
def select_on_estimates(table: np.ndarray, target_roi: np.ndarray, pool_roi: np.ndarray,
                        sigma: np.ndarray, estimation_noise_sd: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a target-ROI bidder buys when it ranks the pool on noisy estimates of ROI.

    :param table: :func:`share_table`.
    :param target_roi: the *estimated* average ROI the bidder holds (GMV CNY per spend CNY).
    :param pool_roi: the pool's mean ROI ``m`` (GMV CNY per spend CNY); ``sigma`` its log-sd.
    :param estimation_noise_sd: log-sd ``sigma_e`` of the estimates' error (> 0).
    :return: the cost share ``q`` bought (best estimates first), the true average ROI of
        what it buys (GMV CNY per spend CNY; ``m`` where ``q = 1``), and ``sigma_r =
        sigma^2 / s``: :func:`gmv_share` with ``sigma_r`` gives the true GMV share of the
        best ``q'`` by estimate, for any ``q'``.
    """
    q, realised_sigma = select_depth(table, target_roi, pool_roi, sigma, estimation_noise_sd)
    return q, realised_average_roi(q, pool_roi, realised_sigma), realised_sigma


@helper
def realised_average_roi(q: np.ndarray, pool_roi: np.ndarray,
                         realised_sigma: np.ndarray) -> np.ndarray:
    """True average ROI (GMV CNY per spend CNY) of the best ``q`` of the pool by estimate
    (:func:`select_depth`'s ``q`` and ``sigma_r``); ``m`` where ``q = 1``."""
    return pool_roi * gmv_share(q, realised_sigma) / np.maximum(q, 1e-300)


@helper
def select_depth(table: np.ndarray, target_roi: np.ndarray, pool_roi: np.ndarray,
                 sigma: np.ndarray, estimation_noise_sd: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_on_estimates` without the true average ROI (which costs a
    :func:`gmv_share`): the cost share ``q`` bought and ``sigma_r = sigma^2 / s``."""
    s = ranking_sigma(sigma, estimation_noise_sd)
    return table_share(table, target_roi, pool_roi, s), sigma * sigma / s  # rho * sigma


def noisy_selection(target_roi: np.ndarray, pool_roi: np.ndarray, sigma: np.ndarray,
                    estimation_noise_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_on_estimates` with the cached table: the cost share bought and its
    true average ROI (GMV CNY per spend CNY)."""
    def as_array(x):
        return np.atleast_1d(np.asarray(x, dtype=np.float64))

    target, m, sig = np.broadcast_arrays(as_array(target_roi), as_array(pool_roi),
                                         as_array(sigma))
    q, realised_roi, _ = select_on_estimates(share_table(), target, m, sig,
                                             float(estimation_noise_sd))
    return q, realised_roi


def threshold_roi(cost_share: np.ndarray, pool_roi: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """ROI of the marginal (last) CNY bought when the best ``cost_share`` is bought.

    :return: ``theta = m * exp(-sigma^2/2 - sigma * Phi^-1(q))`` (GMV CNY per spend CNY).
    """
    return pool_roi * np.exp(-0.5 * sigma**2 - sigma * ndtri(np.clip(cost_share, 1e-12, 1.0)))
