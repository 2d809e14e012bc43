"""Statistics of a paired evaluation: bootstrap intervals, normalised scores, rliable aggregates.

Every policy runs on the same seeds, so per-scenario intervals resample *episodes* with one
shared index draw for all policies (a paired bootstrap): differences against the playbook
and the normalised score keep their pairing. Aggregates across scenarios use rliable's
stratified bootstrap (IQM and mean of normalised scores, probability of improvement,
performance profiles): rliable's metrics, with the stratified resampling done here.
"""

from __future__ import annotations

import numpy as np
from rliable import metrics as rlm

CONFIDENCE = 0.95


def bootstrap_indices(n_episodes: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Resampled episode indices (reps, n_episodes), shared by every policy of a scenario."""
    return rng.integers(0, n_episodes, size=(reps, n_episodes))


def interval(samples: np.ndarray) -> tuple[float, float]:
    """Percentile interval of bootstrap samples at :data:`CONFIDENCE`."""
    tail = 50.0 * (1.0 - CONFIDENCE)
    lo, hi = np.percentile(samples, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mean_interval(values: np.ndarray, idx: np.ndarray) -> tuple[float, float, float]:
    """Mean of per-episode ``values`` and its paired-bootstrap interval."""
    return (float(values.mean()), *interval(values[idx].mean(axis=1)))


def normalised_score(profit: np.ndarray, constant: np.ndarray, oracle: np.ndarray,
                     idx: np.ndarray) -> tuple[float, float, float]:
    """``(profit - constant) / (oracle - constant)`` of the means, with its interval.

    :param profit: per-episode profit of the policy (CNY), same seeds as the references.
    """
    def ratio(p, c, o):
        gap = o - c
        return (p - c) / np.where(np.abs(gap) > 1e-9, gap, np.nan)

    point = float(ratio(profit.mean(), constant.mean(), oracle.mean()))
    boot = ratio(profit[idx].mean(1), constant[idx].mean(1), oracle[idx].mean(1))
    finite = boot[np.isfinite(boot)]
    lo, hi = interval(finite) if finite.size else (float("nan"), float("nan"))
    return point, lo, hi


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(an episode of X beats an episode of Y) (rliable's Mann-Whitney estimate)."""
    return float(rlm.probability_of_improvement(x[:, None], y[:, None]))


def stratified_samples(scores: np.ndarray, func, reps: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``func`` on ``reps`` stratified resamples of ``scores`` (runs, tasks): runs are drawn
    with replacement within each task (rliable's ``StratifiedBootstrap``; its own class needs
    the ``arch`` package, whose pinned version does not import with pandas 3).
    """
    runs, tasks = scores.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    resampled = np.take_along_axis(np.broadcast_to(scores, (reps, runs, tasks)), idx, axis=1)
    return np.stack([func(x) for x in resampled])


def aggregate_scores(scores: dict[str, np.ndarray], seed: int,
                     reps: int = 2000) -> dict[str, dict[str, float]]:
    """IQM and mean of normalised scores across scenarios, with stratified-bootstrap CIs.

    :param scores: policy -> (episodes, scenarios) per-episode normalised scores.
    :return: policy -> {iqm, iqm_ci_low, iqm_ci_high, mean, mean_ci_low, mean_ci_high}.
    """
    def func(x):
        return np.array([rlm.aggregate_iqm(x), rlm.aggregate_mean(x)])

    out = {}
    for i, (name, x) in enumerate(scores.items()):
        boot = stratified_samples(x, func, reps, np.random.default_rng([seed, i]))
        point = func(x)
        iqm_lo, iqm_hi = interval(boot[:, 0])
        mean_lo, mean_hi = interval(boot[:, 1])
        out[name] = {"iqm": float(point[0]), "iqm_ci_low": iqm_lo, "iqm_ci_high": iqm_hi,
                     "mean": float(point[1]), "mean_ci_low": mean_lo, "mean_ci_high": mean_hi}
    return out


def performance_profiles(scores: dict[str, np.ndarray], taus: np.ndarray, seed: int,
                         reps: int = 500) -> tuple[dict, dict]:
    """Performance profiles (rliable's score distributions): the share of episodes, over all
    scenarios, whose normalised score exceeds each tau; with stratified-bootstrap bands.

    :return: (policy -> profile (taus,), policy -> (2, taus) lower and upper band).
    """
    def func(x):
        return (x.reshape(-1, 1) > taus[None, :]).mean(axis=0)

    profiles, bands = {}, {}
    for i, (name, x) in enumerate(scores.items()):
        boot = stratified_samples(x, func, reps, np.random.default_rng([seed, 100 + i]))
        profiles[name] = func(x)
        tail = 50.0 * (1.0 - CONFIDENCE)
        bands[name] = np.percentile(boot, [tail, 100.0 - tail], axis=0)
    return profiles, bands
