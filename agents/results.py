"""``make results``: train PPO on every scenario over several training seeds, plus one policy
across all scenarios, then benchmark everything on the report seeds and write the results.

The pipeline, each step resumable:

1. :func:`plan_runs`: one run per scenario and training seed with the scenario's own preset
   (``configs/ppo/<scenario>.yaml`` if there is one, else ``default``), and one cross-scenario
   run per seed (``configs/ppo/all_scenarios.yaml`` over the same scenarios). A run's folder
   name carries a short hash of its config, so a changed preset trains new runs instead of
   reusing stale ones.
2. :func:`train_runs`: trains what is not finished yet (continuing an interrupted run from its
   last checkpoint), ``workers`` runs at a time in separate processes, one torch thread each.
3. :func:`evaluate_runs`: every registered policy (heuristics, the oracle) and every trained
   run's best model (by validation) on each scenario over the same report seeds (paired).
4. :mod:`agents.results_report` turns the episodes into the tables and the learning curves.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from agents import results_report as report
from agents.eval_stats import aggregate_scores
from agents.evaluation import (
    REFERENCES,
    REPORT_SEED,
    PolicySource,
    ScenarioResult,
    _csv_text,
    run_all,
    summarise,
)
from agents.policies import POLICIES
from agents.ppo_config import TrainConfig, load_train_config
from agents.run_folder import (
    RUN_JSON,
    RunError,
    code_version,
    package_versions,
    read_run_json,
    write_json_atomic,
    write_text_atomic,
)
from envs.config import ScenarioConfig, list_scenarios, load_scenario

MIX_PRESET = "all_scenarios"  # configs/ppo/: the cross-scenario policy
TRAINING_SEEDS = (0, 1, 2)
EPISODES = 32  # report seeds per scenario
CHECKPOINT = "best"  # the model each run is benchmarked with (selected on validation seeds)


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the results: what it trains on, with which config and seed."""

    family: str  # "ppo" (one scenario) or "mix" (across scenarios)
    scenarios: tuple[str, ...]  # the scenario(s) it trains on
    seed: int
    config: TrainConfig
    name: str  # the run folder's name

    @property
    def label(self) -> str:
        """The policy's label in the benchmark (``ppo_s0``, ``mix_s1``)."""
        return f"{self.family}_s{self.seed}"


def run_name(config: TrainConfig) -> str:
    """``<scenario|mix>__<experiment>-<config hash without the seed>__<seed>``."""
    key = config.with_values(seed=0).hash()[:8]
    return f"{config.run_label()}__{config.experiment}-{key}__{config.seed}"


def plan_runs(scenarios: list[str] | None = None, seeds: tuple[int, ...] = TRAINING_SEEDS,
              mix: bool = True, values: Mapping[str, Any] | None = None,
              mix_values: Mapping[str, Any] | None = None,
              sets: tuple[str, ...] = ()) -> list[PlannedRun]:
    """The runs of the results, per-scenario ones first.

    :param scenarios: scenario names (default: every named scenario).
    :param values: dotted-key values for every per-scenario run (``training.total_timesteps``).
    :param mix_values: the same for the cross-scenario runs.
    :param sets: ``key=value`` strings for every run (as ``scripts/train.py --set``).
    :raises envs.config.ConfigError: an unknown scenario or a bad setting.
    """
    scenarios = list(scenarios or list_scenarios())
    fixed = {"training.progress_bar": False}
    plans = []
    for scenario in scenarios:
        for seed in seeds:
            config = load_train_config(scenario=scenario, sets=sets,
                                       values={**fixed, **(values or {}), "seed": seed})
            plans.append(PlannedRun("ppo", (scenario,), seed, config, run_name(config)))
    if mix and len(scenarios) > 1:
        for seed in seeds:
            config = load_train_config(MIX_PRESET, sets=sets, values={
                **fixed, **(mix_values or {}), "env.scenario": scenarios, "seed": seed})
            plans.append(PlannedRun("mix", tuple(scenarios), seed, config, run_name(config)))
    return plans


def is_finished(run_dir: Path, config: TrainConfig) -> bool:
    """Whether the run folder holds a finished run of ``config``'s length."""
    if not (run_dir / RUN_JSON).is_file():
        return False
    try:
        info = read_run_json(run_dir)
    except RunError:
        return False
    return (info.get("status") == "finished"
            and info.get("num_timesteps", 0) >= config.training.total_timesteps)


def train_one(name: str, config_data: dict[str, Any], runs_dir: Path) -> dict[str, Any]:
    """Train (or continue) one planned run; return its name, status and seconds.

    The config comes as plain data (:meth:`TrainConfig.to_dict`), so it crosses process
    boundaries. A folder without ``run.json`` is not a run (contracts): one left by a process
    killed while creating it is removed and trained again.
    """
    from agents.ppo_config import from_dict
    from agents.training import resume, train

    config = from_dict(config_data)
    run_dir = Path(runs_dir) / name
    began = time.perf_counter()
    if is_finished(run_dir, config):
        return {"name": name, "status": "skipped (finished earlier)", "seconds": 0.0}
    if (run_dir / RUN_JSON).is_file():
        resume(run_dir, runs_dir, command=["scripts/results.py", "resume", name])
        status = "resumed"
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        train(config, runs_dir, name, command=["scripts/results.py", name])
        status = "trained"
    return {"name": name, "status": status, "seconds": round(time.perf_counter() - began, 1)}


def _cost(plan: PlannedRun) -> float:
    """Rough relative cost, for starting the longest runs first."""
    t = plan.config.training
    validations = t.total_timesteps / t.eval_freq * t.eval_episodes * len(plan.scenarios)
    return t.total_timesteps + 84 * 2 * validations


def train_runs(plans: list[PlannedRun], runs_dir: Path, workers: int = 1,
               log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train every planned run that is not finished, ``workers`` at a time (one process
    each, started with ``spawn``), longest first. Returns one record per run."""
    runs_dir = Path(runs_dir)
    done = [{"name": p.name, "status": "skipped (finished earlier)", "seconds": 0.0}
            for p in plans if is_finished(runs_dir / p.name, p.config)]
    todo = sorted((p for p in plans if not is_finished(runs_dir / p.name, p.config)),
                  key=_cost, reverse=True)
    if done:
        log(f"{len(done)} run(s) already finished in {runs_dir}: skipped")
    if not todo:
        return done
    log(f"training {len(todo)} run(s), {workers} at a time")
    if workers <= 1:
        for i, plan in enumerate(todo, 1):
            log(f"[{i}/{len(todo)}] {plan.name}")
            done.append(train_one(plan.name, plan.config.to_dict(), runs_dir))
            log(f"[{i}/{len(todo)}] {plan.name}: {done[-1]['status']} in "
                f"{done[-1]['seconds']:.0f} s")
        return done
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(train_one, plan.name, plan.config.to_dict(), runs_dir): plan
                   for plan in todo}
        finished = 0
        while pending:
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                plan = pending.pop(future)
                record = future.result()  # a failed run stops the pipeline (rerun resumes)
                finished += 1
                done.append(record)
                log(f"[{finished}/{len(todo)}] {plan.name}: {record['status']} in "
                    f"{record['seconds']:.0f} s")
    return done


# ---------------------------------------------------------------------------------------------
class TrainedSource:
    """A trained run as a benchmark entry, run on the *named* scenario (with the run's action
    space): a cross-scenario run trained on randomised variants is judged on the scenarios
    themselves."""

    def __init__(self, label: str, run_dir: Path, checkpoint: str = CHECKPOINT):
        from agents.ppo_policy import load_trained_policy

        self.label = label
        self.run_dir = Path(run_dir)
        self.policy = load_trained_policy(run_dir, checkpoint)

    def build(self, scenario: ScenarioConfig):
        return self.policy, scenario.replace(action_space=self.policy.scenario.action_space)


def heuristic_names() -> list[str]:
    """Every registered policy, the references (constant, oracle, playbook) first."""
    return list(REFERENCES) + sorted(set(POLICIES) - set(REFERENCES))


def evaluate_scenario(scenario: str, runs: list[tuple[str, Path]], episodes: int = EPISODES,
                      seed: int = REPORT_SEED) -> ScenarioResult:
    """Every registered policy and the given ``(label, run folder)`` runs on one scenario,
    one episode per report seed from ``seed`` (paired)."""
    sources: list[Any] = [PolicySource(name, name=name) for name in heuristic_names()]
    sources += [TrainedSource(label, path) for label, path in runs]
    (result,) = run_all(sources, [load_scenario(scenario)], episodes, seed, progress=False)
    return result


def runs_by_scenario(plans: list[PlannedRun], runs_dir: Path) -> dict[str, list[tuple[str, Path]]]:
    """Scenario -> the ``(label, folder)`` of every run that plays it (its own and the mix's)."""
    out: dict[str, list[tuple[str, Path]]] = {}
    for plan in plans:
        for scenario in plan.scenarios:
            out.setdefault(scenario, []).append((plan.label, Path(runs_dir) / plan.name))
    return out


def evaluate_runs(plans: list[PlannedRun], runs_dir: Path, episodes: int = EPISODES,
                  seed: int = REPORT_SEED, workers: int = 1,
                  log: Callable[[str], None] = print) -> list[ScenarioResult]:
    """:func:`evaluate_scenario` for every scenario of the plan, ``workers`` at a time."""
    jobs = runs_by_scenario(plans, runs_dir)
    if workers <= 1:
        results = []
        for scenario, runs in jobs.items():
            results.append(evaluate_scenario(scenario, runs, episodes, seed))
            log(f"evaluated {scenario}")
        return results
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(evaluate_scenario, sc, runs, episodes, seed)
                   for sc, runs in jobs.items()]
        results = []
        for scenario, future in zip(jobs, futures, strict=True):
            results.append(future.result())
            log(f"evaluated {scenario}")
    return results


# ---------------------------------------------------------------------------------------------
RUNS_DIR = Path("runs/results")
RESULTS_MD = Path("docs/results.md")
CURVES_PNG = "img/learning_curves.png"  # relative to the markdown file


def machine_description() -> str:
    """``<n> cores (<cpu model>)`` of this machine."""
    from agents.speed import machine_description as describe

    machine = describe()
    return f"{machine['cores']} cores ({machine['cpu']})"


def _describe_presets(plans: list[PlannedRun]) -> tuple[str, str]:
    """How the plans were configured: presets and timesteps, in words."""
    from agents.ppo_config import preset_for_scenario

    presets = sorted({preset_for_scenario(p.scenarios[0]) for p in plans})
    steps = sorted({p.config.training.total_timesteps for p in plans})
    return (", ".join(f"`configs/ppo/{name}.yaml`" for name in presets),
            " or ".join(f"{s:,}" for s in steps) + " steps")


def make_results(scenarios: list[str] | None = None, seeds: tuple[int, ...] = TRAINING_SEEDS,
                 workers: int = 2, episodes: int = EPISODES, seed: int = REPORT_SEED,
                 runs_dir: Path = RUNS_DIR, out: Path = RESULTS_MD, mix: bool = True,
                 values: Mapping[str, Any] | None = None,
                 mix_values: Mapping[str, Any] | None = None, sets: tuple[str, ...] = (),
                 bootstrap_reps: int = 2000, command: str = "make results",
                 log: Callable[[str], None] = print) -> Path:
    """Train, benchmark and write ``out`` (markdown), its learning-curve PNG (``img/`` next to
    it) and ``results.json`` + ``summary.csv`` in ``runs_dir``. Returns ``out``.

    Finished runs are reused, so an interrupted call continues where it stopped.
    """
    started = time.perf_counter()
    runs_dir, out = Path(runs_dir), Path(out)
    plans = plan_runs(scenarios, seeds, mix, values, mix_values, sets)
    trained = train_runs(plans, runs_dir, workers, log)
    train_wall = time.perf_counter() - started
    results = evaluate_runs(plans, runs_dir, episodes, seed, workers, log)
    eval_wall = time.perf_counter() - started - train_wall

    rows = summarise(results, seed, bootstrap_reps)
    fam = {res.scenario.name: {family: report.family_stats(res, family, seed, bootstrap_reps)
                               for family in report.FAMILIES} for res in results}
    cross = {res.scenario.name: report.family_vs_family(res, "mix", "ppo", seed, bootstrap_reps)
             for res in results}
    aggregates = aggregate_scores(report.family_scores(results), seed, bootstrap_reps)
    curves = {res.scenario.name: {family: [] for family in report.FAMILIES} for res in results}
    for plan in plans:
        for scenario in plan.scenarios:
            prefix = "eval" if plan.family == "ppo" else f"eval_{scenario}"
            curves[scenario][plan.family].append(report.read_curves(runs_dir / plan.name,
                                                                    prefix))
    img = out.parent / CURVES_PNG
    img.parent.mkdir(parents=True, exist_ok=True)
    report.plot_learning_curves(curves, img)

    skipped = [r["name"] for r in trained if r["status"].startswith("skipped")]
    records = [report.run_record(runs_dir / p.name) for p in plans]
    reused_s = sum(r["seconds"] for r in records if r["name"] in skipped)
    code = code_version()
    ppo_plans = [p for p in plans if p.family == "ppo"]
    mix_plans = [p for p in plans if p.family == "mix"]
    presets, timesteps = _describe_presets(ppo_plans)
    meta = {
        "command": command, "created": time.strftime("%Y-%m-%d %H:%M %Z"),
        "git_commit": (code.get("git_commit") or "unknown")[:10],
        "git_dirty": bool(code.get("git_dirty")), "machine": machine_description(),
        "workers": workers, "train_wall_s": train_wall, "eval_wall_s": eval_wall,
        "resumed_note": (f"; {len(skipped)} of {len(plans)} runs were finished by an earlier "
                         f"call and reused (their {reused_s / 60:.1f} min of training, summed "
                         "over runs, are not in this wall time)" if skipped else ""),
        "episodes": episodes, "report_seeds": [seed, seed + episodes - 1],
        "training_seeds": list(seeds), "ppo_presets": presets, "ppo_timesteps": timesteps,
        "mix_preset": f"`configs/ppo/{MIX_PRESET}.yaml`",
        "mix_timesteps": (f"{mix_plans[0].config.training.total_timesteps:,} steps"
                          if mix_plans else ""),
    }
    meta["wall_time_s"] = time.perf_counter() - started
    text = report.document(meta, rows, fam, cross, aggregates, records, CURVES_PNG)
    write_text_atomic(out, text)
    write_text_atomic(runs_dir / "summary.csv", _csv_text(rows))
    write_json_atomic(runs_dir / "results.json", {
        **meta, "package_versions": package_versions(), "families": fam, "cross": cross,
        "aggregates": aggregates, "runs": records, "trained": trained,
        "plans": [{"name": p.name, "family": p.family, "scenarios": list(p.scenarios),
                   "seed": p.seed, "config_hash": p.config.hash()} for p in plans]})
    return out
