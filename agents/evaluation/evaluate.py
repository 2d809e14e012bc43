"""Paired benchmark of policies on scenarios and objectives: every policy on the same seeds.

:func:`evaluate` runs heuristics (by registered name) and trained runs (by run folder) on
each *case*, a scenario scored on one objective (``profit``, ``gmv_floor``; both by default),
with one episode per seed from ``seed`` on. A case's ``value`` is the episode's value under
its objective (:func:`agents.evaluation.rollout.objective_values`, CNY per launch); tuned
baselines and the oracle use that objective's settings and plans. It writes to ``out_dir``:

- ``summary.csv``: one row per case and policy; the value and every episode metric
  (contracts) with its mean and 95% interval, the paired difference against the playbook
  with its interval, the normalised score ``(value - constant) / (oracle - constant)`` and
  the probability that an episode of the policy beats the playbook's; its GMV, spend and
  last-28-day spend as shares of the reference policy's (:mod:`agents.evaluation.behaviour`); where
  ``static`` is played, the paired difference against it, the case's value of control
  (oracle - static) and the control share; and the paired difference against the best
  heuristic, chosen per case on validation seeds (:func:`best_heuristic`, always played);
- ``episodes.csv`` (every episode's value and metrics), ``report.md``, ``eval.json``;
- PNG plots per case: bars, every policy's daily target, budget, spend, GMV and learning
  share (median and quartiles over seeds, ``behaviour_<scenario>_<objective>.png``), one
  episode's trajectory per policy; performance profiles per objective;
- TensorBoard scalars ``eval/<policy>/<metric>`` under ``tb/<scenario>/<objective>/``.

The references ``constant``, ``oracle`` (for the normalised score) and ``playbook`` (for the
paired differences) are always run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.evaluation import stats as eval_stats
from agents.evaluation.report import (
    csv_text,
    episode_rows,
    report_markdown,
    write_plots,
    write_tensorboard,
)
from agents.evaluation.rollout import episode_value, rollout
from agents.evaluation.scores import ScenarioResult, case_key, episode_scores, summarise
from agents.policies import POLICIES, make_policy
from agents.policies.baseline_store import BaselineError, baseline_scenario
from agents.run_folder import (
    RunError,
    command_line,
    machine_context,
    package_versions,
    write_json_atomic,
    write_text_atomic,
)
from envs.config import OBJECTIVES, ConfigError, ScenarioConfig, is_unseen, load_scenario
from envs.seeds import REPORT_SEED

# configs/baselines/: the policies whose numbers a search on training seeds made
TUNED_BASELINES = ("static", "static_rule", "step_tuned", "pid_tuned", "playbook_tuned")
NOT_HEURISTICS = ("constant", "oracle", "static")  # references, and static reported apart
REFERENCES = ("constant", "oracle", "playbook")


class EvaluationError(ValueError):
    """A policy, scenario or run folder cannot be evaluated (a message for the user)."""


@dataclass
class PolicySource:
    """Where a policy comes from: a registered name, or a trained run folder (whose model is
    loaded once, on first use, and played on every scenario asked of it)."""

    label: str
    name: str | None = None  # registered policy
    run_dir: Path | None = None  # trained run
    checkpoint: str = "best"  # of the trained run: best (by validation), final, latest, step_<N>
    _trained: Any = field(default=None, init=False, repr=False, compare=False)

    def trained(self):
        """The run's :class:`agents.policies.ppo.TrainedPolicy`, loaded on the first call.

        :raises EvaluationError: not a run, or a model that does not load.
        """
        if self._trained is None:
            self._trained = _load_run(self.run_dir, self.checkpoint)
        return self._trained

    def build(self, scenario: ScenarioConfig):
        """The policy and the config to run it on, for one scenario."""
        if self.name is not None:
            policy = make_policy(self.name, scenario)
            return policy, policy.config
        # Paired comparisons need every policy on the same market: the benchmark's scenario,
        # in the run's own action space (not its training config, which may randomise
        # parameters or mix scenarios).
        return self.trained().playing(scenario)


def resolve_policies(names: list[str]) -> list[PolicySource]:
    """Registered names and run folders -> sources, references first; errors name what exists.

    Trained runs are loaded once here, so a missing or damaged model fails before any work.
    """
    sources: list[PolicySource] = []
    runs = [n for n in names if n not in POLICIES]
    for name in runs:
        path = Path(name)
        if not path.exists() and "/" not in name and "\\" not in name:
            raise EvaluationError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}"
                                  " (or give a trained run folder)")
    for ref in REFERENCES:
        if ref not in names:
            sources.append(PolicySource(ref, name=ref))
    for name in names:
        if name in POLICIES:
            sources.append(PolicySource(name, name=name))
        else:
            label = "ppo" if len(runs) == 1 else f"ppo_{Path(name).name}"
            sources.append(PolicySource(label, run_dir=Path(name)))
    seen: set[str] = set()
    unique = [s for s in sources if not (s.label in seen or seen.add(s.label))]
    for source in unique:
        if source.run_dir is not None:
            source.trained()
    return unique


def check_tuned_baselines(names: list[str], configs: list[ScenarioConfig]) -> None:
    """Tuned baselines among ``names`` load for every scenario (a file of this env version,
    with the scenario's objective), before any work; else an :class:`EvaluationError`."""
    for config in configs:
        for name in names:
            if name in TUNED_BASELINES:
                try:
                    make_policy(name, config)
                except BaselineError as exc:
                    raise EvaluationError(f"{name} on {config.name}: {exc}") from None


def _load_run(path: Path, checkpoint: str):
    """A run's model; any failure becomes an :class:`EvaluationError`."""
    from agents.policies.ppo import load_trained_policy

    try:
        return load_trained_policy(path, checkpoint)
    except RunError as exc:
        raise EvaluationError(f"{exc}{_runs_hint(path)}") from None
    except Exception as exc:  # a damaged zip or pickle raises many kinds of errors
        raise EvaluationError(f"cannot load the model of run {str(path)!r}: "
                              f"{type(exc).__name__}: {exc}") from None


def _runs_hint(path: Path) -> str:
    parent = path.parent if path.parent.is_dir() else Path("runs")
    found = sorted(p.name for p in parent.glob("*") if (p / "run.json").is_file())
    return f"; runs in {parent}: {', '.join(found) if found else 'none'}"


def resolve_scenarios(names: list[str], objectives: tuple[str, ...] | None = None
                      ) -> list[ScenarioConfig]:
    """Scenario configs by name or YAML path, one per objective in ``objectives`` (None: each
    scenario's own); an unknown scenario lists the known ones."""
    try:
        if objectives is None:
            return [load_scenario(n) for n in names]
        return [load_scenario(n, objective=o) for o in objectives for n in names]
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None


def run_all(sources: list[PolicySource], scenarios: list[ScenarioConfig], episodes: int,
            seed: int, progress: bool = True) -> list[ScenarioResult]:
    """Roll out every policy on every scenario over seeds ``seed .. seed + episodes - 1``."""
    seeds = np.arange(seed, seed + episodes)
    out = [ScenarioResult(sc, seeds) for sc in scenarios]
    bar = tqdm(total=len(sources) * len(scenarios), disable=not progress, unit="run",
               desc="evaluate")
    for res in out:
        for src in sources:
            bar.set_postfix_str(f"{res.scenario.name}/{src.label}")
            policy, config = src.build(res.scenario)
            res.results[src.label] = rollout(policy, config, seeds, record_daily=True)
            bar.update()
    bar.close()
    return out


def best_heuristic(config: ScenarioConfig, episodes: int) -> str:
    """The registered heuristic, tuned or not, with the highest mean value (the config's
    objective) on the first ``episodes`` validation seeds (from 20000, never the report
    seeds). Not a reference (constant, oracle) and not ``static``, which is reported apart;
    a tuned heuristic without a file for the scenario is passed over. An unseen market is
    never used to choose: its base scenario's choice stands."""
    from agents.training.validation import validation_seeds

    if is_unseen(config):
        config = load_scenario(baseline_scenario(config), objective=config.objective)
    seeds = validation_seeds(episodes)
    values = {}
    for name in sorted(POLICIES):
        if name in NOT_HEURISTICS:
            continue
        try:
            policy = make_policy(name, config)
        except BaselineError:
            continue
        values[name] = float(episode_value(config, policy, seeds).mean())
    return max(values, key=values.get)


def evaluate(policies: list[str], scenarios: list[str], episodes: int = 32,
             seed: int = REPORT_SEED, out_dir: Path | None = None, progress: bool = True,
             tensorboard: bool = True, plots: bool = True,
             bootstrap_reps: int = eval_stats.BOOTSTRAP_REPS,
             objectives: tuple[str, ...] | None = OBJECTIVES) -> Path:
    """Benchmark ``policies`` on ``scenarios`` under ``objectives`` and write the outputs;
    return the folder.

    :param policies: registered names and/or trained run folders.
    :param scenarios: scenario names or YAML paths.
    :param objectives: each scenario is scored once per objective (None: its own).
    :param bootstrap_reps: bootstrap resamples of every interval and aggregate (the
        performance profiles' bands use a quarter of them).
    :param out_dir: default: ``<run>/eval/`` for a single trained run, else
        ``runs/eval__<time>/``.
    :raises EvaluationError: unknown policy or scenario, missing run, damaged model.
    """
    if episodes < 2:
        raise EvaluationError("--episodes must be at least 2 (intervals need a spread)")
    if seed < 0:
        raise EvaluationError(f"--seed must be >= 0, got {seed}")
    if bootstrap_reps < 100:
        raise EvaluationError(f"--bootstrap-reps must be at least 100, got {bootstrap_reps}")
    unknown = sorted(set(objectives or ()) - set(OBJECTIVES))
    if unknown:
        raise EvaluationError(f"unknown objective(s) {', '.join(unknown)}; known: "
                              f"{', '.join(OBJECTIVES)}")
    sources = resolve_policies(policies)
    configs = resolve_scenarios(scenarios, objectives)
    check_tuned_baselines([s.name for s in sources if s.name], configs)
    best = {case_key(c): best_heuristic(c, episodes) for c in configs}
    played = {s.label for s in sources}
    sources += [PolicySource(name, name=name) for name in dict.fromkeys(best.values())
                if name not in played]
    if out_dir is None:
        trained = [s.run_dir for s in sources if s.run_dir is not None]
        out_dir = (trained[0] / "eval" if len(trained) == 1
                   else Path("runs") / f"eval__{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = run_all(sources, configs, episodes, seed, progress)
    rows = summarise(runs, seed, bootstrap_reps, best)
    scores = episode_scores(runs)
    aggregates = {obj: eval_stats.aggregate_scores(per, seed, bootstrap_reps)
                  for obj, per in scores.items()}
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command_line(),
        "seed": seed, "episodes": episodes, "seeds": [int(s) for s in runs[0].seeds],
        "bootstrap_reps": bootstrap_reps,
        "objectives": list(dict.fromkeys(c.objective for c in configs)),
        "policies": [{"label": s.label, "name": s.name,
                      "run_dir": str(s.run_dir) if s.run_dir else None} for s in sources],
        "best_heuristic": best,
        "scenarios": {case_key(c): {"hash": c.hash(), "config": c.to_dict()}
                      for c in configs},
        "packages": package_versions(), "machine": machine_context(),
        "aggregates": aggregates,
    }
    write_text_atomic(out_dir / "summary.csv", csv_text(rows))
    write_text_atomic(out_dir / "episodes.csv", csv_text(episode_rows(runs)))
    if plots:
        write_plots(runs, rows, scores, seed, bootstrap_reps // 4, out_dir)
    if tensorboard:
        write_tensorboard(rows, out_dir / "tb")
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_text_atomic(out_dir / "report.md", report_markdown(rows, aggregates, record, plots))
    write_json_atomic(out_dir / "eval.json", record)
    return out_dir


