"""Intervals of paired differences (the same seeds on both sides): the t-interval of a mean
difference, its stratified form across scenarios, and the normal interval the measurement
scripts use. Light: SciPy only (the bootstrap statistics are in :mod:`agents.evaluation.stats`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def paired_interval(diff: np.ndarray) -> tuple[float, float, float]:
    """Mean of paired differences (e.g. CNY per launch, same seeds) and its normal 95%
    interval: (mean, low, high)."""
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half)


def mean_interval(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of ``x`` and its t-interval ``(mean, low, high)``; the bounds are NaN with fewer
    than two values or a non-finite one."""
    x = np.asarray(x, float)
    mean = float(x.mean())
    if len(x) < 2 or not np.isfinite(x).all():
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1)
                 / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def paired_difference(a: np.ndarray, b: np.ndarray,
                      confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired episodes and its t-interval ``(mean, low, high)``."""
    return mean_interval(np.asarray(a, float) - np.asarray(b, float), confidence)


def stratified_difference(diffs: list[np.ndarray],
                          confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean over strata of the mean paired difference, and its t-interval ``(mean, low,
    high)``: variance ``sum(var_s / n_s) / S^2``, degrees of freedom ``sum(n_s - 1)``."""
    means = [float(np.mean(d)) for d in diffs]
    mean = float(np.mean(means))
    dof = sum(len(d) - 1 for d in diffs)
    if dof < 1 or any(len(d) < 2 or not np.isfinite(d).all() for d in diffs):
        return mean, math.nan, math.nan
    se = math.sqrt(sum(np.var(d, ddof=1) / len(d) for d in diffs)) / len(diffs)
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * se)
    return mean, mean - half, mean + half
