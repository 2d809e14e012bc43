"""Multi-seed sweeps: a grid of PPO configs x scenarios x seeds run by any number of workers
through the tuning queue (:mod:`agents.experiments.queue`), then one aggregate with rliable's
interquartile mean and stratified-bootstrap intervals.

Each cell trains with :func:`agents.training.train.train` and evaluates its final model against
the config's first validation baseline (``training.baselines[0]``: ``static`` by default) on
the report seeds (from 10000, contracts): the paired difference of the value under the run's
objective (profit, or the ``gmv_floor`` return; CNY per episode) with its t-interval. Across
scenarios, a cell's score is that difference per CNY of the baseline's settled GMV on the
same seeds, ``(PPO - baseline value) / baseline settled GMV`` (0: as good as the baseline;
0.02: two more points of margin on the baseline's sales; scale-free, and defined when the
baseline's own value is near 0). Per
config, the scores form a (seeds x scenarios) matrix whose IQM and mean get 95%
stratified-bootstrap intervals (seeds resampled within each scenario, as rliable does).

::

    runs/sweep__<name>/
      study.db  study.json                   the default storage and the study's record
      <scenario>__<config>__<seed>__t<N>/    one run folder per cell (trial N)
      aggregate.json  summary.csv            written when every cell is done
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from agents.csv_safe import csv_text
from agents.evaluation.intervals import paired_difference
from agents.evaluation.rollout import objective_values, rollout
from agents.evaluation.stats import BOOTSTRAP_REPS, CONFIDENCE, aggregate_matrix
from agents.experiments.queue import (
    SLOT_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TuneError,
    slot_trials,
    unfinished_slots,
)
from agents.experiments.study import StudyRun, run_study, train_trial
from agents.policies import make_policy
from agents.policies.ppo import load_trained_policy
from agents.run_folder import write_json_atomic, write_text_atomic
from agents.training.config import TrainConfig, load_train_config, parse_sets
from envs.seeds import REPORT_SEED

EVAL_ATTR = "evaluation"  # trial user attr: the cell's report-seed evaluation
AGGREGATE_JSON = "aggregate.json"
SUMMARY_CSV = "summary.csv"


@dataclass(frozen=True)
class SweepGrid:
    """Configs x scenarios x seeds, plus what every cell shares."""

    configs: tuple[str, ...]  # PPO presets (configs/ppo/) or YAML paths
    scenarios: tuple[str, ...]  # scenario presets (configs/scenarios/) or YAML paths
    seeds: tuple[int, ...]  # training seeds
    sets: Mapping[str, Any]  # dotted config values for every cell (e.g. the budget)
    eval_episodes: int  # report seeds 10000.. per cell

    @property
    def labels(self) -> tuple[str, ...]:
        """Short config names (file stems)."""
        return tuple(Path(c).stem for c in self.configs)

    def cells(self) -> list[dict[str, Any]]:
        """One dict per cell, config-major: ``{config, scenario, seed}`` (config = label)."""
        return [{"config": label, "scenario": scenario, "seed": seed}
                for label in self.labels for scenario in self.scenarios for seed in self.seeds]

    def cell_config(self, cell: Mapping[str, Any]) -> TrainConfig:
        """The resolved training config of a cell."""
        source = self.configs[self.labels.index(cell["config"])]
        return load_train_config(source, scenario=cell["scenario"],
                                 values={**self.sets, "seed": cell["seed"]})

    def identity(self) -> dict[str, Any]:
        """What joining workers must share: every cell's resolved config (by hash)."""
        return {"cells": [{**c, "config_hash": self.cell_config(c).hash()}
                          for c in self.cells()], "eval_episodes": self.eval_episodes}


def make_grid(configs: Sequence[str], scenarios: Sequence[str], seeds: Sequence[int],
              sets: Sequence[str] = (), eval_episodes: int = 16) -> SweepGrid:
    """A validated grid: every cell's config loads (bad keys fail before any training).

    :raises ConfigError: a bad config, scenario or ``--set``.
    :raises TuneError: an empty or repeated axis, too few evaluation episodes.
    """
    for name, axis in (("--configs", configs), ("--scenarios", scenarios), ("--seeds", seeds)):
        if not axis:
            raise TuneError(f"{name}: needs at least one value")
        if len(set(axis)) != len(axis):
            raise TuneError(f"{name}: repeated values in {list(axis)}")
    if any(s < 0 for s in seeds):
        raise TuneError(f"--seeds: must be >= 0, got {list(seeds)}")
    if eval_episodes < 2:
        raise TuneError(f"--eval-episodes: needs at least 2 (for an interval), got "
                        f"{eval_episodes}")
    labels = [Path(c).stem for c in configs]
    if len(set(labels)) != len(labels):
        raise TuneError(f"--configs: two configs share a name ({labels})")
    grid = SweepGrid(tuple(configs), tuple(scenarios), tuple(int(s) for s in seeds),
                     parse_sets(list(sets)), eval_episodes)
    for cell in grid.cells()[:: len(grid.seeds)]:  # one per config x scenario
        grid.cell_config(cell)
    return grid


# ---------------------------------------------------------------------------------------------
def report_seeds(n: int) -> np.ndarray:
    """The first ``n`` report seeds (10000, 10001, ...)."""
    return np.arange(REPORT_SEED, REPORT_SEED + n)


def evaluate_run(run_dir: Path, baseline: str, n_episodes: int) -> dict[str, Any]:
    """A run's final model and ``baseline`` on the same report seeds: mean values under the
    run's objective (``ppo_profit``/``baseline_profit`` and ``profit_diff``: CNY per episode,
    named for the profit objective and holding the ``gmv_floor`` return for that one) and the
    paired difference with its 95% t-interval."""
    policy = load_trained_policy(run_dir, "final")
    seeds = report_seeds(n_episodes)
    player, played_on = policy.playing(policy.scenario)  # anchored runs: through the mapping
    ppo = objective_values(policy.scenario, rollout(player, played_on, seeds))
    reference_policy = make_policy(baseline, policy.scenario)
    result = rollout(reference_policy, getattr(reference_policy, "config", policy.scenario),
                     seeds)
    reference = objective_values(policy.scenario, result)
    diff, low, high = paired_difference(ppo, reference)
    return {"baseline": baseline, "objective": policy.scenario.objective,
            "seeds": [int(seeds[0]), int(seeds[-1])],
            "ppo_profit": float(np.mean(ppo)), "baseline_profit": float(np.mean(reference)),
            "baseline_settled_gmv": float(np.mean(result.metrics["settled_gmv"])),
            "profit_diff": diff, "profit_diff_ci": [low, high]}


class SweepObjective:
    """One cell: train, evaluate on the report seeds, return PPO - baseline value."""

    def __init__(self, grid: SweepGrid, folder: Path):
        self.grid = grid
        self.folder = folder

    def __call__(self, trial: optuna.Trial) -> float:
        cell = self.grid.cells()[int(trial.user_attrs[SLOT_ATTR])]
        trial.suggest_categorical("config", self.grid.labels)  # the enqueued values, recorded
        trial.suggest_categorical("scenario", self.grid.scenarios)
        trial.suggest_categorical("seed", self.grid.seeds)
        config = self.grid.cell_config(cell)
        run_dir = train_trial(trial, config, self.folder, f"{config.scenario_config().name}__"
                              f"{cell['config']}__{cell['seed']}__t{trial.number}")
        evaluation = evaluate_run(run_dir, config.training.baseline, self.grid.eval_episodes)
        trial.set_user_attr(EVAL_ATTR, evaluation)
        return evaluation["profit_diff"]


def sweep(grid: SweepGrid, study_name: str, storage_url: str | None = None,
          runs_dir: str | Path = "runs", heartbeat: HeartbeatSettings | None = None,
          max_trials: int | None = None,
          log: Callable[[str], None] = print) -> tuple[StudyRun, dict[str, Any] | None]:
    """Create or join a sweep and work on it; when every cell is done, write the aggregate.

    :return: the worker's run, and the aggregate (None while cells are unfinished).
    :raises TuneError: bad storage, or the name exists with another grid.
    """
    spec = QueueSpec("sweep", grid.identity(), grid.cells())
    run = run_study(spec, study_name, lambda folder: SweepObjective(grid, folder),
                    storage_url=storage_url, runs_dir=runs_dir, heartbeat=heartbeat,
                    max_trials=max_trials, log=log)
    aggregate = None
    if unfinished_slots(run.study) == []:
        aggregate = write_aggregate(run.study, grid, run.folder)
    return run, aggregate


# ---------------------------------------------------------------------------------------------
def cell_score(evaluation: Mapping[str, Any]) -> float:
    """``(PPO - baseline profit) / baseline settled GMV`` (NaN if the baseline sold nothing)."""
    sales = evaluation["baseline_settled_gmv"]
    return evaluation["profit_diff"] / sales if sales > 0 else float("nan")


def write_aggregate(study: optuna.Study, grid: SweepGrid, folder: Path) -> dict[str, Any]:
    """``aggregate.json`` and ``summary.csv`` from the finished cells (atomically).

    :raises TuneError: a cell did not complete (its trial failed by its own error).
    """
    cells = grid.cells()
    slots = slot_trials(study)
    missing = [cells[s] for s in range(len(cells))
               if s not in slots or slots[s].state != TrialState.COMPLETE]
    if missing:
        raise TuneError(f"sweep {study.study_name!r}: {len(missing)} cell(s) did not complete "
                        f"(first: {missing[0]}); see their trials' 'error' attribute")
    evaluations = {s: slots[s].user_attrs[EVAL_ATTR] for s in range(len(cells))}
    rows, per_config = [], {}
    for i, label in enumerate(grid.labels):
        matrix = np.full((len(grid.seeds), len(grid.scenarios)), np.nan)
        for slot, cell in enumerate(cells):
            if cell["config"] == label:
                matrix[grid.seeds.index(cell["seed"]),
                       grid.scenarios.index(cell["scenario"])] = cell_score(
                           evaluations[slot])
        per_config[label] = {**aggregate_matrix(matrix, seed=i),
                             "scores": matrix.round(6).tolist()}
        for scenario in grid.scenarios:
            evs = [evaluations[s] for s, c in enumerate(cells)
                   if c["config"] == label and c["scenario"] == scenario]
            rows.append({"config": label, "scenario": scenario, "n_seeds": len(evs),
                         "ppo_profit": np.mean([e["ppo_profit"] for e in evs]),
                         "baseline_profit": np.mean([e["baseline_profit"] for e in evs]),
                         "profit_diff": np.mean([e["profit_diff"] for e in evs]),
                         "score": np.mean([cell_score(e) for e in evs])})
    baseline = next(iter(evaluations.values()))["baseline"]
    result = {"study_name": study.study_name, "baseline": baseline,
              "score": f"(PPO - {baseline} value) / {baseline} settled GMV, means over the "
              "report seeds (value: the run's objective)", "eval_episodes": grid.eval_episodes,
              "report_seeds": [REPORT_SEED, REPORT_SEED + grid.eval_episodes - 1],
              "confidence": CONFIDENCE, "bootstrap_reps": BOOTSTRAP_REPS,
              "configs": list(grid.labels), "scenarios": list(grid.scenarios),
              "seeds": list(grid.seeds), "aggregate": per_config, "cells": rows}
    write_json_atomic(folder / AGGREGATE_JSON, result)
    write_text_atomic(folder / SUMMARY_CSV, csv_text(list(rows[0]), rows))
    return result


def describe_aggregate(result: Mapping[str, Any]) -> str:
    """The aggregate as a table: per config, the IQM and mean gain with intervals."""
    lines = [f"score = {result['score'].split(',')[0]}, {len(result['seeds'])} seeds x "
             f"{len(result['scenarios'])} scenarios per config (report seeds "
             f"{result['report_seeds'][0]}..{result['report_seeds'][1]}; 95% stratified "
             "bootstrap):",
             f"  {'config':24s}{'IQM':>10s}{'95% CI':>22s}{'mean':>10s}{'95% CI':>22s}"]
    def ci(agg: Mapping[str, float], name: str) -> str:
        return f"[{agg[name + '_ci_low']:+.1%}, {agg[name + '_ci_high']:+.1%}]"

    for label, agg in result["aggregate"].items():
        lines.append(f"  {label:24s}{agg['iqm']:>+10.1%}{ci(agg, 'iqm'):>22s}"
                     f"{agg['mean']:>+10.1%}{ci(agg, 'mean'):>22s}")
    if any(np.isnan(agg["iqm"]) for agg in result["aggregate"].values()):
        lines.append("  (nan: a baseline with no settled GMV in some cell)")
    lines.append("per cell group (mean over seeds, CNY per episode):")
    for row in result["cells"]:
        lines.append(f"  {row['config']:24s}{row['scenario']:16s}PPO {row['ppo_profit']:>12,.0f}"
                     f"  {result.get('baseline', 'baseline')} {row['baseline_profit']:>12,.0f}"
                     "  diff "
                     f"{row['profit_diff']:>+12,.0f}")
    return "\n".join(lines)

