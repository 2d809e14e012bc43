"""``make results``: train PPO on every scenario and objective over several training seeds,
plus one policy across all scenarios, then benchmark everything against the tuned baselines on
the report seeds, and on the unseen markets, and write the results.

The pipeline, each step resumable:

1. :func:`plan_runs`: one run per scenario, objective (``profit``, ``gmv_floor``) and
   training seed with the scenario's preset (the one its file names with
   ``training_preset:``, else ``default``: :func:`agents.training.config.preset_for_scenario`),
   and one cross-scenario run per objective and seed (``configs/ppo/all_scenarios.yaml`` over
   the same scenarios). A run's folder name carries
   its objective (when not profit) and a short hash of its config, so a changed preset trains
   new runs instead of reusing stale ones.
2. :func:`train_runs`: trains what is not finished yet (continuing an interrupted run from its
   last checkpoint), ``workers`` runs at a time in separate processes, one torch thread each.
3. :func:`evaluate_runs`: every registered policy (heuristics, the tuned baselines read from
   ``configs/baselines/``, the oracle) and every trained run's best model (by validation) on
   each case, a scenario scored on the objective the runs trained on, over the same report
   seeds (paired); then the same on every unseen market (``configs/scenarios/unseen/``, seeds
   from 30000), each played by the runs trained on its base scenario. The baseline searches
   are not part of it (``scripts/search_baselines.py``).
4. :mod:`agents.evaluation.results_report` turns the episodes into the tables and the
   learning curves.
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

from agents.evaluation import results_report as report
from agents.evaluation.evaluate import (
    REFERENCES,
    PolicySource,
    best_heuristic,
    run_all,
)
from agents.evaluation.report import csv_text
from agents.evaluation.scores import ScenarioResult, case_key, summarise
from agents.evaluation.stats import aggregate_scores
from agents.policies import POLICIES, make_policy
from agents.policies.baseline_store import BaselineError, load_static
from agents.run_folder import (
    RUN_JSON,
    RunError,
    code_version,
    package_versions,
    read_run_json,
    write_json_atomic,
    write_text_atomic,
)
from agents.run_lock import RunLock
from agents.training.config import TrainConfig, load_train_config
from envs.config import OBJECTIVES, ScenarioConfig, list_scenarios, list_unseen, load_scenario
from envs.seeds import REPORT_SEED, UNSEEN_SEED

# configs/ppo/: the cross-scenario policy of each objective (gmv_floor's values were tuned on
# it: docs/training.md); an objective not named here trains with profit's
MIX_PRESETS = {"profit": "all_scenarios", "gmv_floor": "all_scenarios_gmv_floor"}
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
    def objective(self) -> str:
        """The objective it trains on (and is scored on)."""
        return self.config.scenario_configs()[0].objective

    @property
    def label(self) -> str:
        """The policy's label in the benchmark (``ppo_s0``, ``mix_s1``)."""
        return f"{self.family}_s{self.seed}"


def run_name(config: TrainConfig) -> str:
    """``<scenario|mix>[-<objective>]__<experiment>-<config hash without the seed>__<seed>``
    (the objective named when it is not profit)."""
    key = config.with_values(seed=0).hash()[:8]
    objective = config.scenario_configs()[0].objective
    label = config.run_label() + ("" if objective == "profit" else f"-{objective}")
    return f"{label}__{config.experiment}-{key}__{config.seed}"


def plan_runs(scenarios: list[str] | None = None, seeds: tuple[int, ...] = TRAINING_SEEDS,
              mix: bool = True, values: Mapping[str, Any] | None = None,
              mix_values: Mapping[str, Any] | None = None,
              sets: tuple[str, ...] = (),
              objectives: tuple[str, ...] = OBJECTIVES) -> list[PlannedRun]:
    """The runs of the results, per objective: per-scenario ones first.

    :param scenarios: scenario names (default: every named scenario).
    :param values: dotted-key values for every per-scenario run (``training.total_timesteps``).
    :param mix_values: the same for the cross-scenario runs.
    :param sets: ``key=value`` strings for every run (as ``scripts/train.py --set``).
    :param objectives: each run trains (and is scored) on one of these.
    :raises envs.config.ConfigError: an unknown scenario or a bad setting.
    """
    scenarios = list(scenarios or list_scenarios())
    fixed = {"training.progress_bar": False}
    plans = []
    for objective in objectives:
        goal = {} if objective == "profit" else {"env.overrides.objective": objective}
        for scenario in scenarios:
            for seed in seeds:
                config = load_train_config(scenario=scenario, sets=sets, values={
                    **fixed, **goal, **(values or {}), "seed": seed})
                plans.append(PlannedRun("ppo", (scenario,), seed, config, run_name(config)))
        if mix and len(scenarios) > 1:
            for seed in seeds:
                config = load_train_config(mix_preset(objective), sets=sets, values={
                    **fixed, **goal, **(mix_values or {}), "env.scenario": scenarios,
                    "seed": seed})
                plans.append(PlannedRun("mix", tuple(scenarios), seed, config,
                                        run_name(config)))
    return plans


def mix_preset(objective: str) -> str:
    """The PPO preset (``configs/ppo/``) of the cross-scenario runs on ``objective``."""
    return MIX_PRESETS.get(objective, MIX_PRESETS["profit"])


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
    from agents.training.config import from_dict
    from agents.training.train import resume, train

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
            with RunLock(run_dir):  # refused while another process is still creating it
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
def heuristic_names(config: ScenarioConfig | None = None) -> list[str]:
    """Every registered policy, the references (constant, oracle, playbook) first; with
    ``config``, without the tuned baselines that have no stored file for its scenario and
    objective."""
    names = list(REFERENCES) + sorted(set(POLICIES) - set(REFERENCES))
    if config is None:
        return names
    out = []
    for name in names:
        try:
            make_policy(name, config)
        except BaselineError:
            continue
        out.append(name)
    return out


@dataclass(frozen=True)
class Case:
    """One benchmark case of the results: a scenario (named, or an unseen market) scored on
    one objective, with the first report seed."""

    scenario: str  # what load_scenario takes (a name, or "unseen/<stem>")
    objective: str
    seed: int = REPORT_SEED


def evaluate_case(case: Case, runs: list[tuple[str, Path]], episodes: int = EPISODES
                  ) -> tuple[ScenarioResult, str]:
    """Every registered policy and the given ``(label, run folder)`` runs on one case, one
    episode per report seed from ``case.seed`` (paired); and the case's best heuristic
    (chosen on validation seeds, :func:`agents.evaluation.evaluate.best_heuristic`)."""
    config = load_scenario(case.scenario, objective=case.objective)
    sources = [PolicySource(name, name=name) for name in heuristic_names(config)]
    sources += [PolicySource(label, run_dir=path, checkpoint=CHECKPOINT)
                for label, path in runs]
    (result,) = run_all(sources, [config], episodes, case.seed, progress=False)
    return result, best_heuristic(config, episodes)


def runs_by_case(plans: list[PlannedRun], runs_dir: Path, seed: int = REPORT_SEED,
                 unseen: bool = True) -> dict[Case, list[tuple[str, Path]]]:
    """Case -> the ``(label, folder)`` of every run that plays it: a named scenario's own runs
    and the mix's of the same objective; with ``unseen``, every unseen market whose base is
    among the plan's scenarios, played by its base's runs (seeds from 30000)."""
    out: dict[Case, list[tuple[str, Path]]] = {}
    for plan in plans:
        for scenario in plan.scenarios:
            out.setdefault(Case(scenario, plan.objective, seed), []).append(
                (plan.label, Path(runs_dir) / plan.name))
    if unseen:
        for market in list_unseen():
            for case, runs in list(out.items()):
                if case.scenario == market.base and case.seed == seed:
                    out[Case(market.preset, case.objective, UNSEEN_SEED)] = runs
    return out


def evaluate_runs(plans: list[PlannedRun], runs_dir: Path, episodes: int = EPISODES,
                  seed: int = REPORT_SEED, workers: int = 1, unseen: bool = True,
                  log: Callable[[str], None] = print
                  ) -> tuple[list[ScenarioResult], dict[str, str]]:
    """:func:`evaluate_case` for every case of the plan (:func:`runs_by_case`), ``workers``
    at a time; the results and each case's best heuristic (by :func:`case_key`)."""
    jobs = runs_by_case(plans, runs_dir, seed, unseen)
    results, best = [], {}
    if workers <= 1:
        outcomes = (evaluate_case(case, runs, episodes) for case, runs in jobs.items())
        for case, (result, name) in zip(jobs, outcomes, strict=True):
            results.append(result)
            best[case_key(result.scenario)] = name
            log(f"evaluated {case.scenario} ({case.objective})")
        return results, best
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(evaluate_case, case, runs, episodes)
                   for case, runs in jobs.items()]
        for case, future in zip(jobs, futures, strict=True):
            result, name = future.result()
            results.append(result)
            best[case_key(result.scenario)] = name
            log(f"evaluated {case.scenario} ({case.objective})")
    return results, best


# ---------------------------------------------------------------------------------------------
RUNS_DIR = Path("runs/results")
RESULTS_MD = Path("docs/results.md")
CURVES_PNG = "img/learning_curves.png"  # relative to the markdown file


def machine_description() -> str:
    """``<n> cores (<cpu model>)`` of this machine."""
    from agents.experiments.speed import machine_description as describe

    machine = describe()
    return f"{machine['cores']} cores ({machine['cpu']})"


def _describe_presets(plans: list[PlannedRun]) -> tuple[str, str]:
    """How the plans were configured: presets and timesteps, in words."""
    from agents.training.config import preset_for_scenario

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
                 objectives: tuple[str, ...] = OBJECTIVES, unseen: bool = True,
                 log: Callable[[str], None] = print) -> Path:
    """Train, benchmark and write ``out`` (markdown), its learning-curve PNG (``img/`` next to
    it) and ``results.json`` + ``summary.csv`` in ``runs_dir``. Returns ``out``.

    Finished runs are reused, so an interrupted call continues where it stopped.

    :raises agents.policies.baseline_store.BaselineError: a scenario without its stored ``static``
        settings for an objective (before any training).
    """
    started = time.perf_counter()
    runs_dir, out = Path(runs_dir), Path(out)
    plans = plan_runs(scenarios, seeds, mix, values, mix_values, sets, objectives)
    for scenario in dict.fromkeys(sc for plan in plans for sc in plan.scenarios):
        for objective in objectives:  # the tables are against static: its file must load
            load_static(load_scenario(scenario, objective=objective))
    trained = train_runs(plans, runs_dir, workers, log)
    train_wall = time.perf_counter() - started
    results, best = evaluate_runs(plans, runs_dir, episodes, seed, workers, unseen, log)
    eval_wall = time.perf_counter() - started - train_wall

    rows = summarise(results, seed, bootstrap_reps, best)
    fam = {case_key(res.scenario): {
        family: report.family_stats(res, family, seed, bootstrap_reps,
                                    best.get(case_key(res.scenario)))
        for family in report.FAMILIES} for res in results}
    cross = {case_key(res.scenario): report.family_vs_family(res, "mix", "ppo", seed,
                                                             bootstrap_reps)
             for res in results}
    named = [res for res in results if res.seeds[0] == seed]
    aggregates = {obj: aggregate_scores(per, seed, bootstrap_reps)
                  for obj, per in report.family_scores(named).items()}
    curves: dict[str, dict[str, list]] = {}
    for plan in plans:
        for scenario in plan.scenarios:
            prefix = "eval" if plan.family == "ppo" else f"eval_{scenario}"
            per = curves.setdefault(f"{scenario}/{plan.objective}",
                                    {family: [] for family in report.FAMILIES})
            per[plan.family].append(report.read_curves(runs_dir / plan.name, prefix))
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
        "unseen_seeds": [UNSEEN_SEED, UNSEEN_SEED + episodes - 1] if unseen else None,
        "objectives": list(objectives), "training_seeds": list(seeds),
        "ppo_presets": presets, "ppo_timesteps": timesteps,
        "mix_preset": ", ".join(f"`configs/ppo/{mix_preset(o)}.yaml` ({o})" for o in objectives),
        "mix_timesteps": (f"{mix_plans[0].config.training.total_timesteps:,} steps"
                          if mix_plans else ""),
        "baselines": baseline_provenance(),
    }
    meta["wall_time_s"] = time.perf_counter() - started
    text = report.document(meta, rows, fam, cross, aggregates, records, CURVES_PNG)
    write_text_atomic(out, text)
    write_text_atomic(runs_dir / "summary.csv", csv_text(rows))
    write_json_atomic(runs_dir / "results.json", {
        **meta, "package_versions": package_versions(), "families": fam, "cross": cross,
        "aggregates": aggregates, "best_heuristic": best, "runs": records, "trained": trained,
        "plans": [{"name": p.name, "family": p.family, "scenarios": list(p.scenarios),
                   "objective": p.objective, "seed": p.seed, "config_hash": p.config.hash()}
                  for p in plans]})
    return out


def baseline_provenance() -> dict[str, Any]:
    """Which stored baseline files the results read: env version and each file's hash."""
    import hashlib

    from agents.policies.baseline_store import BASELINE_DIR
    from envs.version import ENV_VERSION

    return {"env_version": ENV_VERSION,
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
                      for p in sorted(BASELINE_DIR.glob("*.yaml"))}}
