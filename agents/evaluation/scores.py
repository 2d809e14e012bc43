"""The scores of a paired evaluation: every policy's episodes on a case (a scenario scored on
one objective), summarised into means, intervals and paired differences against the
playbook, ``static``, the best heuristic and the oracle (``value_of_control``,
``control_share``), and the per-episode normalised scores rliable aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.evaluation import behaviour
from agents.evaluation import stats as eval_stats
from agents.evaluation.rollout import RolloutResult, objective_values
from envs.config import ScenarioConfig
from envs.metrics import EPISODE_METRICS


def case_key(config: ScenarioConfig) -> str:
    """``<scenario>/<objective>``: one benchmark case (a scenario scored on one objective)."""
    return f"{config.name}/{config.objective}"


def case_stem(scenario: str, objective: str) -> str:
    """The file-name part of a case (``3c_gmv_floor``)."""
    return f"{scenario}_{objective}"


@dataclass
class ScenarioResult:
    """Every policy's episodes on one scenario (same seeds)."""

    scenario: ScenarioConfig
    seeds: np.ndarray
    results: dict[str, RolloutResult] = field(default_factory=dict)

    def values(self) -> dict[str, np.ndarray]:
        """Every policy's per-episode value under the scenario's objective (CNY per launch:
        :func:`agents.evaluation.rollout.objective_values`)."""
        return {label: objective_values(self.scenario, result)
                for label, result in self.results.items()}


VALUE_KEYS = ("value", *EPISODE_METRICS)  # per-episode columns of a row, "value" first


def summarise(runs: list[ScenarioResult], seed: int,
              reps: int = eval_stats.BOOTSTRAP_REPS,
              best: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of ``summary.csv``: per case (scenario and objective) and policy, means,
    intervals, paired differences.

    ``value`` is the episode's value under the case's objective (CNY: profit, or the
    ``gmv_floor`` return); the normalised score, the comparisons with ``static``, the best
    heuristic and the oracle (``value_of_control``, ``control_share``) are all on it. Every
    interval comes from one seeded rliable bootstrap per case and policy over the per-episode
    columns: value and episode metrics, their per-seed differences against the playbook and
    the per-episode normalised score (:mod:`agents.evaluation.stats`).

    :param best: case key (:func:`case_key`) -> the best heuristic's label.
    """
    rows = []
    for res in runs:
        r, case = res.results, case_key(res.scenario)
        value = res.values()
        per_episode = {label: {"value": value[label], **result.metrics}
                       for label, result in r.items()}
        base = per_episode["playbook"]
        reference = behaviour.reference_policy(list(r)) if all(v.daily for v in r.values()) \
            else None
        voc = (value_of_control(value["oracle"], value["static"], seed, case, reps)
               if "static" in r else None)
        for label, m in per_episode.items():
            columns = np.column_stack(
                [m[k] for k in VALUE_KEYS] + [m[k] - base[k] for k in VALUE_KEYS]
                + [eval_stats.normalised_scores(m["value"], value["constant"],
                                                value["oracle"])])
            mean, low, high = eval_stats.column_means(
                columns, eval_stats.stream_seed(seed, case, label), reps)
            k = len(VALUE_KEYS)
            row: dict[str, Any] = {"scenario": res.scenario.name,
                                   "objective": res.scenario.objective, "policy": label,
                                   "episodes": len(res.seeds), "normalised_score": mean[-1],
                                   "normalised_score_ci_low": low[-1],
                                   "normalised_score_ci_high": high[-1]}
            row["prob_improvement_vs_playbook"] = eval_stats.probability_of_improvement(
                m["value"], base["value"])
            if best is not None and best.get(case) in r:
                name = best[case]
                d_mean, d_low, d_high = eval_stats.column_means(
                    (m["value"] - value[name])[:, None],
                    eval_stats.stream_seed(seed, case, label, "best"), reps)
                row.update(best_heuristic=name, value_diff_vs_best_heuristic=d_mean[0],
                           value_diff_vs_best_heuristic_ci_low=d_low[0],
                           value_diff_vs_best_heuristic_ci_high=d_high[0])
            if voc is not None:
                row.update(_against_static(m["value"], value["static"], value["oracle"], seed,
                                           case, label, reps, voc))
            if reference is not None:
                row.update(behaviour.share_columns(r[label].daily, r[reference].daily,
                                                   reference))
            for i, key in enumerate(VALUE_KEYS):
                row.update({key: mean[i], f"{key}_ci_low": low[i], f"{key}_ci_high": high[i],
                            f"{key}_diff_vs_playbook": mean[k + i],
                            f"{key}_diff_ci_low": low[k + i],
                            f"{key}_diff_ci_high": high[k + i]})
            rows.append(row)
    return rows


def value_of_control(oracle: np.ndarray, static: np.ndarray, seed: int, case: str,
                      reps: int) -> dict[str, float]:
    """The case's ``value_of_control``: oracle - static value, paired, with its interval."""
    voc, low, high = eval_stats.column_means(
        (oracle - static)[:, None], eval_stats.stream_seed(seed, case, "value_of_control"),
        reps)
    return {"value_of_control": voc[0], "value_of_control_ci_low": low[0],
            "value_of_control_ci_high": high[0]}


def _against_static(value: np.ndarray, static: np.ndarray, oracle: np.ndarray, seed: int,
                    case: str, label: str, reps: int,
                    voc: dict[str, float] | None = None) -> dict[str, float]:
    """Paired value difference against ``static`` (with its interval); the case's value of
    control (``voc`` when the caller has it, from :func:`value_of_control`); and
    ``control_share`` = mean(policy - static) / mean(oracle - static) with a joint bootstrap
    interval, NaN (n/a) where the value of control's lower bound is <= 0: nothing measurable
    to learn beyond fixed settings.

    :param value: per-episode values (CNY) of the policy; ``static`` and ``oracle`` the
        references' on the same seeds.
    """
    if voc is None:
        voc = value_of_control(oracle, static, seed, case, reps)
    mean, low, high = eval_stats.column_means(
        (value - static)[:, None], eval_stats.stream_seed(seed, case, label, "static"), reps)
    share = eval_stats.ratio_of_means(value - static, oracle - static,
                                      eval_stats.stream_seed(seed, case, label, "share"), reps)
    return {"value_diff_vs_static": mean[0], "value_diff_vs_static_ci_low": low[0],
            "value_diff_vs_static_ci_high": high[0], **voc,
            **control_share_columns(share, voc)}


def control_share_columns(share: tuple[float, float, float],
                          voc: dict[str, float]) -> dict[str, float]:
    """``control_share`` and its interval, NaN (n/a) where the value of control's lower
    bound is <= 0."""
    if not voc["value_of_control_ci_low"] > 0:
        share = (float("nan"),) * 3
    return {"control_share": share[0], "control_share_ci_low": share[1],
            "control_share_ci_high": share[2]}


def episode_scores(runs: list[ScenarioResult]) -> dict[str, dict[str, np.ndarray]]:
    """Per-episode normalised scores on each case's value, for rliable: objective -> policy
    -> (episodes, scenarios)."""
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for res in runs:
        value = res.values()
        by_policy = out.setdefault(res.scenario.objective, {})
        for label in res.results:
            by_policy.setdefault(label, []).append(
                eval_stats.normalised_scores(value[label], value["constant"], value["oracle"]))
    return {obj: {k: np.stack(v, axis=1) for k, v in per.items()} for obj, per in out.items()}
