"""Statistics of a paired evaluation, with rliable: intervals, aggregates, performance profiles.

Every policy runs on the same seeds. Each statistic is the mean of a per-episode quantity, so
pairing is kept by building that quantity per seed before resampling: a difference against
the playbook is the mean of per-seed differences, and an episode's normalised score is its
profit gain over the constant policy *on the same seed* in units of the oracle's mean gain.
Intervals are rliable's percentile intervals from its stratified bootstrap
(:func:`rliable.library.get_interval_estimates`; within one scenario it is the ordinary
bootstrap over episodes). Aggregates across scenarios are rliable's IQM and mean, with
performance profiles (:func:`rliable.library.create_performance_profile`).

Reproducibility: rliable's ``StratifiedBootstrap`` draws its indices with ``np.random.choice``
(NumPy's global generator; its ``random_state`` argument only seeds arch's generator, which
that class never uses). Every bootstrap here therefore runs inside :func:`seeded_numpy`, with
a seed made of the evaluation seed and the names of the scenario and policy, so a policy's
intervals do not depend on which other policies are evaluated beside it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from rliable import library as rly
from rliable import metrics as rlm

from agents.evaluation.intervals import CONFIDENCE

BOOTSTRAP_REPS = 2000


def stream_seed(seed: int, *names: str) -> list[int]:
    """Entropy of one bootstrap: the evaluation seed and a CRC-32 of each name (uint32 words)."""
    return [seed & 0xFFFFFFFF, seed >> 32, *(zlib.crc32(n.encode()) for n in names)]


@contextmanager
def seeded_numpy(entropy: int | list[int]) -> Iterator[None]:
    """Seed NumPy's global generator for the block (``np.random.seed(entropy)``), then put the
    caller's state back."""
    saved = np.random.get_state()
    np.random.seed(entropy)
    try:
        yield
    finally:
        np.random.set_state(saved)


def bootstrap(scores: np.ndarray, func: Callable[[np.ndarray], np.ndarray],
              entropy: int | list[int], reps: int = BOOTSTRAP_REPS
              ) -> tuple[np.ndarray, np.ndarray]:
    """``func(scores)`` and its 95% interval, from rliable's stratified bootstrap (seeded).

    :param scores: (episodes, strata): episodes are resampled within each column.
    :return: (point estimate, (2, ...) lower and upper bounds).
    """
    with seeded_numpy(entropy):
        point, ci = rly.get_interval_estimates({"x": scores}, func, reps=reps,
                                               confidence_interval_size=CONFIDENCE)
    return np.asarray(point["x"]), np.asarray(ci["x"])


def column_means(values: np.ndarray, entropy: list[int],
                 reps: int = BOOTSTRAP_REPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of each column of per-episode ``values`` (episodes, k) and its 95% interval.

    Each column is its own stratum (resampled on its own), which is what a per-column interval
    needs; put per-seed differences in a column to keep a comparison paired.

    :return: (means (k,), lower bounds (k,), upper bounds (k,)).
    """
    point, ci = bootstrap(values, lambda x: x.mean(axis=0), entropy, reps)
    return point, ci[0], ci[1]


def ratio_of_means(numerator: np.ndarray, denominator: np.ndarray, entropy: list[int],
                   reps: int = BOOTSTRAP_REPS) -> tuple[float, float, float]:
    """``mean(numerator) / mean(denominator)`` over paired episodes and its 95% percentile
    interval, resampling episodes jointly (a ratio needs both sides of the same seeds; rliable
    resamples columns apart). Used for ``control_share``."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    rng = np.random.default_rng(entropy)
    idx = rng.integers(0, len(numerator), size=(reps, len(numerator)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = numerator[idx].mean(axis=1) / denominator[idx].mean(axis=1)
        point = float(numerator.mean() / denominator.mean())
    low, high = np.nanpercentile(ratios, [100 * (1 - CONFIDENCE) / 2,
                                          100 * (1 + CONFIDENCE) / 2])
    return point, float(low), float(high)


def normalised_scores(profit: np.ndarray, constant: np.ndarray,
                      oracle: np.ndarray) -> np.ndarray:
    """Per-episode normalised score ``(profit_i - constant_i) / (mean(oracle) - mean(constant))``.

    Its mean is the scenario's normalised score ``(profit - constant) / (oracle - constant)``
    of the means; per seed it is the gain over the constant policy on the same market draws.

    :param profit: per-episode profit of the policy (CNY), the references' on the same seeds.
    """
    gap = float(oracle.mean() - constant.mean())
    if abs(gap) <= 1e-9:
        return np.full(profit.shape, np.nan)
    return (profit - constant) / gap


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(an episode of X beats an episode of Y) (rliable's Mann-Whitney estimate)."""
    return float(rlm.probability_of_improvement(x[:, None], y[:, None]))


def iqm_and_mean(x: np.ndarray) -> np.ndarray:
    """rliable's IQM and mean of a (runs, tasks) score matrix."""
    return np.array([rlm.aggregate_iqm(x), rlm.aggregate_mean(x)])


def aggregate_matrix(scores: np.ndarray, seed: int | list[int] = 0,
                     reps: int = BOOTSTRAP_REPS) -> dict[str, float]:
    """IQM and mean of a (runs, tasks) score matrix with 95% percentile intervals from
    rliable's stratified bootstrap (runs resampled within each task), NumPy's global generator
    seeded with ``seed`` (a whole number, or entropy words: :func:`stream_seed`) for the call.

    :return: {iqm, iqm_ci_low, iqm_ci_high, mean, mean_ci_low, mean_ci_high}.
    """
    point, ci = bootstrap(scores, iqm_and_mean, seed, reps)
    return {"iqm": float(point[0]), "iqm_ci_low": float(ci[0, 0]),
            "iqm_ci_high": float(ci[1, 0]), "mean": float(point[1]),
            "mean_ci_low": float(ci[0, 1]), "mean_ci_high": float(ci[1, 1])}


def aggregate_scores(scores: dict[str, np.ndarray], seed: int,
                     reps: int = BOOTSTRAP_REPS) -> dict[str, dict[str, float]]:
    """IQM and mean of normalised scores across scenarios, with stratified-bootstrap CIs
    (:func:`aggregate_matrix`, each policy's bootstrap seeded by ``seed`` and its name).

    :param scores: policy -> (episodes, scenarios) per-episode normalised scores.
    :return: policy -> {iqm, iqm_ci_low, iqm_ci_high, mean, mean_ci_low, mean_ci_high}.
    """
    return {name: aggregate_matrix(x, stream_seed(seed, "aggregate", name), reps)
            for name, x in scores.items()}


def performance_profiles(scores: dict[str, np.ndarray], taus: np.ndarray, seed: int,
                         reps: int = BOOTSTRAP_REPS // 4) -> tuple[dict, dict]:
    """rliable's performance profiles (score distributions): the share of episodes, over all
    scenarios, whose normalised score exceeds each tau; with stratified-bootstrap bands.

    :return: (policy -> profile (taus,), policy -> (2, taus) lower and upper band).
    """
    profiles, bands = {}, {}
    for name, x in scores.items():
        with seeded_numpy(stream_seed(seed, "profile", name)):
            profile, band = rly.create_performance_profile(
                {name: x}, taus, reps=reps, confidence_interval_size=CONFIDENCE)
        profiles[name], bands[name] = profile[name], band[name]
    return profiles, bands
