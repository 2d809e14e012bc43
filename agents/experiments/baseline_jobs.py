"""Baseline searches as jobs of the shared trial queue: one queue slot per Optuna study.

A search (:class:`BaselineSearch`) is every study ``scripts/search_baselines.py`` runs, in
two stages, each a queue study (:mod:`agents.experiments.queue`) in one storage:

1. ``<name>.static``: the best fixed settings (``static``) per scenario x objective
   (:func:`agents.experiments.baseline_search.search_static`) and the static rule's k per objective
   (:func:`agents.experiments.baseline_search.search_static_rule`);
2. ``<name>.controllers``: each tuned controller of :data:`agents.policies.tuned.SPACES`
   per scenario x objective (:func:`agents.experiments.baseline_search.search_controller`),
   on the static settings stage 1 found, read from stage 1's trials in the storage (not from
   local files).

A worker claims a slot and runs the whole in-memory TPE study (a trial takes well under a
second); the entry it found goes into the trial's user attrs (``entry``), with the study's
wall time (``seconds``), and the trial's value is the entry's training value (CNY per
launch; the static rule's: the mean over its scenarios). A worker moves to stage 2 only
when every slot of stage 1 is finished. Workers join with the same storage URL and study
name from any machine; a dead worker's job is retried through heartbeats, as the queue does
for any trial. Only the command that starts or resumes the search writes the YAML files
(:func:`write_results`), once every job is finished; ``--join`` workers never do.

::

    runs/baselines__<name>/
      study.db     the default storage (SQLite, both stages); --storage points elsewhere
      study.json   the search's record: settings, storage, the workers' commands
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from agents.experiments.baseline_search import (
    RULE_GRID,
    SEARCH_SEEDS,
    SEARCH_TRIALS,
    search_controller,
    search_static,
    search_static_rule,
)
from agents.experiments.queue import (
    CREATOR_WAIT_S,
    ERROR_ATTR,
    IDENTITY_ATTR,
    KIND_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TrialQueue,
    TuneError,
    create_or_join,
    describe_url,
    open_storage,
    queue_size,
    slot_trials,
    unfinished_slots,
)
from agents.experiments.study import STUDY_DB, default_storage_url, study_dir, write_study_record
from agents.policies.baseline_store import (
    RULE_FILE,
    BaselineError,
    settings_from_entry,
    write_entry,
)
from envs.config import OBJECTIVES, ConfigError, list_scenarios, load_scenario
from envs.version import ENV_VERSION

KIND = "baselines"  # the queue studies' kind, and the study folder's prefix
STAGES = ("static", "controllers")
STATIC, RULE = "static", RULE_FILE  # job names besides the controllers'
JOB_ATTR, SCENARIO_ATTR, OBJECTIVE_ATTR = "job", "scenario", "objective"  # slot user attrs
ENTRY_ATTR = "entry"  # trial user attr: the entry the study found (what a YAML file stores)
SECONDS_ATTR = "seconds"  # trial user attr: the study's wall time (s)
HEADER = ("# Tuned baseline, written by scripts/search_baselines.py (data: read with "
          "yaml.safe_load by agents/policies/baseline_store.py).\n"
          "# Re-make: the command in each entry. "
          "Refused when env_version differs from envs/version.py.\n")

Job = Mapping[str, str]  # {job, objective[, scenario]}: one slot, one Optuna study


@dataclass(frozen=True)
class BaselineSearch:
    """Every study of one search: what the slots are and what each study runs."""

    scenarios: tuple[str, ...]  # named scenarios (static and the controllers)
    objectives: tuple[str, ...]
    trials: int  # Optuna trials per study
    seeds: int  # training seeds 0..seeds-1
    rule_scenarios: tuple[str, ...]  # the static rule's scenarios (empty: no rule searched)
    controllers: tuple[str, ...]  # keys of agents.policies.tuned.SPACES

    def identity(self) -> dict[str, Any]:
        """What every worker must share: the settings, the env version and the controllers'
        search spaces of this checkout (a worker with other code is refused)."""
        from agents.policies.tuned import SPACES

        return {"env_version": ENV_VERSION, "scenarios": list(self.scenarios),
                "objectives": list(self.objectives), "trials": self.trials,
                "seeds": self.seeds, "rule_scenarios": list(self.rule_scenarios),
                "controllers": list(self.controllers),
                "spaces": {name: SPACES[name] for name in self.controllers}}

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any]) -> BaselineSearch:
        """The search a stored identity describes (what a ``--join`` worker runs).

        :raises TuneError: a controller this checkout does not have.
        """
        from agents.policies.tuned import SPACES

        missing = [c for c in identity.get("controllers", []) if c not in SPACES]
        if missing:
            raise TuneError(f"the search tunes {', '.join(missing)}, which this checkout does "
                            "not have (agents/policies/tuned.py): update it to join")
        return cls(tuple(identity["scenarios"]), tuple(identity["objectives"]),
                   int(identity["trials"]), int(identity["seeds"]),
                   tuple(identity["rule_scenarios"]), tuple(identity["controllers"]))

    def evaluations(self, job: Job) -> int:
        """A job's cost: the number of settings it plays on every seed."""
        if job[JOB_ATTR] == RULE:
            return len(RULE_GRID) * len(self.rule_scenarios)
        return self.trials

    def jobs(self, stage: str) -> list[dict[str, str]]:
        """The slots of a stage; stage 1's longest first (the last jobs to finish are short).
        """
        if stage == STAGES[0]:
            jobs = [{JOB_ATTR: STATIC, SCENARIO_ATTR: s, OBJECTIVE_ATTR: o}
                    for o in self.objectives for s in self.scenarios]
            if self.rule_scenarios:
                jobs += [{JOB_ATTR: RULE, OBJECTIVE_ATTR: o} for o in self.objectives]
            return sorted(jobs, key=lambda job: -self.evaluations(job))
        return [{JOB_ATTR: c, SCENARIO_ATTR: s, OBJECTIVE_ATTR: o}
                for o in self.objectives for s in self.scenarios for c in self.controllers]

    def spec(self, stage: str) -> QueueSpec:
        """A stage's queue: one slot per job, the job in the slot's user attrs."""
        jobs = self.jobs(stage)
        return QueueSpec(KIND, {**self.identity(), "stage": stage}, [{}] * len(jobs), jobs)


def make_search(scenarios: Sequence[str] | None = None,
                objectives: Sequence[str] | None = None, trials: int | None = None,
                seeds: int | None = None, rule: bool = True) -> BaselineSearch:
    """A validated search (defaults: every named scenario, both objectives,
    :data:`~agents.experiments.baseline_search.SEARCH_TRIALS` trials on
    :data:`~agents.experiments.baseline_search.SEARCH_SEEDS` seeds, the rule).

    :raises ConfigError: a scenario that is not a named one (the message lists them).
    :raises TuneError: an empty or repeated list, an unknown objective, too few trials or
        seeds.
    """
    named = list_scenarios()
    scenarios = list(named if scenarios is None else scenarios)
    objectives = list(OBJECTIVES if objectives is None else objectives)
    trials = SEARCH_TRIALS if trials is None else trials
    seeds = SEARCH_SEEDS if seeds is None else seeds
    for option, values in (("--scenarios", scenarios), ("--objectives", objectives)):
        if not values:
            raise TuneError(f"{option}: needs at least one value")
        if len(set(values)) != len(values):
            raise TuneError(f"{option}: repeated values in {values}")
    for name in scenarios:
        if name not in named:
            load_scenario(name)  # an unknown name: the loader's message lists the known
            raise ConfigError(f"{name!r}: tuned baselines are for the named scenarios "
                              f"({', '.join(named)})")
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise TuneError(f"--objectives: unknown {unknown} (use {', '.join(OBJECTIVES)})")
    if trials < 1 or seeds < 2:
        raise TuneError(f"--trials must be >= 1 and --seeds >= 2 (got {trials}, {seeds})")
    from agents.policies.tuned import SPACES

    return BaselineSearch(tuple(scenarios), tuple(objectives), trials, seeds,
                          tuple(named) if rule else (), tuple(SPACES))


def stage_name(name: str, stage: str) -> str:
    """The queue study of a search's stage in the storage: ``<name>.<stage>``."""
    return f"{name}.{stage}"


def default_search_name() -> str:
    """A fresh name for a search started without ``--study-name``: the local time."""
    return time.strftime("%Y%m%d-%H%M%S")


def describe_job(job: Job) -> str:
    """``static food/profit``, ``pid_tuned 3c/gmv_floor``, ``static_rule gmv_floor``."""
    where = "/".join(job[k] for k in (SCENARIO_ATTR, OBJECTIVE_ATTR) if k in job)
    return f"{job[JOB_ATTR]} {where}"


def job_of(trial: FrozenTrial | optuna.Trial) -> dict[str, str]:
    """The job a queue trial (or its retry) runs, from its user attrs."""
    attrs = trial.user_attrs
    return {k: attrs[k] for k in (JOB_ATTR, SCENARIO_ATTR, OBJECTIVE_ATTR) if k in attrs}


def job_value(entry: Mapping[str, Any]) -> float:
    """A job's trial value: its training value (CNY per launch), the static rule's mean over
    its scenarios."""
    value = entry["training_value_cny"]
    if isinstance(value, Mapping):
        return float(sum(value.values()) / len(value))
    return float(value)


# ---------------------------------------------------------------------------------------------
def run_job(search: BaselineSearch, job: Job,
            static_entry: Callable[[str, str], Mapping[str, Any]]) -> dict[str, Any]:
    """Run one job's whole study and return the entry it found.

    :param static_entry: ``(scenario, objective) -> static's entry`` (the controllers run on
        those settings).
    """
    name, objective = job[JOB_ATTR], job[OBJECTIVE_ATTR]
    if name == RULE:
        return search_static_rule(objective, list(search.rule_scenarios), search.seeds)
    scenario = job[SCENARIO_ATTR]
    if name == STATIC:
        return search_static(scenario, objective, search.trials, search.seeds)
    fixed = settings_from_entry(static_entry(scenario, objective))
    return search_controller(scenario, objective, name, search.trials, search.seeds,
                             fixed=fixed)


class JobObjective:
    """The queue's trial function: run the trial's job, store its entry in the trial."""

    def __init__(self, search: BaselineSearch, storage: RDBStorage, name: str):
        self.search = search
        self.storage = storage
        self.name = name

    def __call__(self, trial: optuna.Trial) -> float:
        began = time.perf_counter()
        entry = run_job(self.search, job_of(trial), self.static_entry)
        trial.set_user_attr(ENTRY_ATTR, entry)
        trial.set_user_attr(SECONDS_ATTR, round(time.perf_counter() - began, 1))
        return job_value(entry)

    def static_entry(self, scenario: str, objective: str) -> Mapping[str, Any]:
        """Static's entry for ``scenario`` and ``objective``, from stage 1 in the storage.

        :raises BaselineError: that job did not complete (the controller's trial fails).
        """
        study = optuna.load_study(study_name=stage_name(self.name, STAGES[0]),
                                  storage=self.storage)
        wanted = {JOB_ATTR: STATIC, SCENARIO_ATTR: scenario, OBJECTIVE_ATTR: objective}
        for trial in slot_trials(study).values():
            if job_of(trial) == wanted:
                if trial.state == TrialState.COMPLETE:
                    return trial.user_attrs[ENTRY_ATTR]
                raise BaselineError(f"{describe_job(wanted)} did not complete (trial "
                                    f"{trial.number}: {trial.state.name} "
                                    f"{trial.user_attrs.get(ERROR_ATTR, '')})".rstrip())
        raise BaselineError(f"{describe_job(wanted)} is not a job of this search")


def work(storage: RDBStorage, name: str, search: BaselineSearch, heartbeat: HeartbeatSettings,
         max_jobs: int | None = None, log: Callable[[str], None] = print) -> int:
    """One worker: take jobs of stage 1 until every one is finished, then of stage 2.

    :param max_jobs: stop after that many jobs (None: until both stages are done).
    :return: the number of jobs this worker ran.
    """
    done = 0
    objective = JobObjective(search, storage, name)
    for stage in STAGES:
        study_name = stage_name(name, stage)

        def make_study(slot: int, study_name: str = study_name) -> optuna.Study:
            return optuna.load_study(study_name=study_name, storage=storage)

        queue = TrialQueue(storage, study_name, make_study, heartbeat, log)
        while True:
            left = None if max_jobs is None else max_jobs - done
            if left == 0:
                return done
            done += len(queue.work(objective, max_trials=left).ran)
            if not unfinished_slots(queue.study):
                break
            time.sleep(1.0)  # a dead worker's job is being put back in the queue
    return done


# ---------------------------------------------------------------------------------------------
def stored_search(storage: RDBStorage, name: str, url: str) -> BaselineSearch:
    """The search ``name`` in the storage, as its creator recorded it.

    :raises TuneError: no such search, or one this checkout cannot run.
    """
    try:
        study = optuna.load_study(study_name=stage_name(name, STAGES[0]), storage=storage)
    except KeyError:
        raise TuneError(f"no baseline search {name!r} in {describe_url(url)}: start it with "
                        "the same command without --join") from None
    deadline = time.monotonic() + CREATOR_WAIT_S
    while IDENTITY_ATTR not in study.user_attrs:  # its creator is filling the queue
        if study.trials or time.monotonic() > deadline:
            raise TuneError(f"study {study.study_name!r} exists but was not made by this "
                            "toolkit; choose another --study-name")
        time.sleep(0.5)
    if study.user_attrs.get(KIND_ATTR) != KIND:
        raise TuneError(f"study {study.study_name!r} exists as a "
                        f"{study.user_attrs.get(KIND_ATTR)} study, not a baseline search; "
                        "choose another --study-name")
    return BaselineSearch.from_identity(study.user_attrs[IDENTITY_ATTR])


def _log(line: str) -> None:
    print(line, flush=True)


def _worker_process(url: str, name: str, heartbeat: HeartbeatSettings,
                    max_jobs: int | None) -> None:
    """A local worker process (spawned): its own connection, the search from the storage."""
    try:
        storage = open_storage(url, heartbeat)
        work(storage, name, stored_search(storage, name, url), heartbeat, max_jobs, _log)
    except KeyboardInterrupt:
        sys.exit(130)  # the interrupted job went back to the queue
    except (ConfigError, TuneError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


@dataclass
class SearchRun:
    """What one command leaves: the search, its storage, and how many jobs are unfinished."""

    name: str
    search: BaselineSearch
    storage: RDBStorage
    url: str  # password hidden
    folder: Path
    ran: int  # jobs this command's own process ran
    unfinished: int  # jobs of both stages not finished yet


def run_search(search: BaselineSearch | None, name: str, storage_url: str | None = None,
               runs_dir: str | Path = "runs", heartbeat: HeartbeatSettings | None = None,
               workers: int = 2, join: bool = False, max_jobs: int | None = None,
               record: Mapping[str, Any] | None = None,
               log: Callable[[str], None] = _log) -> SearchRun:
    """Create (or join) the search ``name`` and work on it with ``workers`` local processes
    (this one and ``workers - 1`` spawned ones) until both stages are done.

    :param search: the search; None with ``join``: the one in the storage.
    :param join: only join an existing search (its settings, when given, must match).
    :param max_jobs: each local worker stops after that many jobs.
    :raises TuneError: bad storage or name; no search to join; one with other settings.
    """
    heartbeat = heartbeat or HeartbeatSettings()
    if workers < 1:
        raise TuneError(f"--workers must be >= 1, got {workers}")
    folder = study_dir(runs_dir, KIND, name)
    url = storage_url or default_storage_url(folder)
    if join and storage_url is None and not (folder / STUDY_DB).is_file():
        raise TuneError(f"no baseline search {name!r} in {folder} (pass its --storage URL)")
    if storage_url is None:
        folder.mkdir(parents=True, exist_ok=True)  # for the SQLite file
    storage = open_storage(url, heartbeat)
    folder.mkdir(parents=True, exist_ok=True)  # for the record
    if join:
        stored = stored_search(storage, name, url)
        search = search or stored
    if search is None:
        raise TuneError("run_search: no search given")
    made = [create_or_join(storage, stage_name(name, stage), search.spec(stage))[1]
            for stage in STAGES]
    sizes = [len(search.jobs(stage)) for stage in STAGES]
    log(f"{'created' if made[0] else 'joined'} baseline search {name!r} ({sizes[0]} static "
        f"and rule studies, then {sizes[1]} controller studies; {search.trials} trials on "
        f"seeds 0..{search.seeds - 1} each) in {describe_url(url)}")
    log(f"add workers (here, or on other machines with a shared --storage): python "
        f"scripts/search_baselines.py --study-name {name} --storage {describe_url(url)} "
        "--join")
    write_study_record(folder, {"study_name": name, "kind": KIND, "stages": [
        stage_name(name, s) for s in STAGES], "storage": describe_url(url),
        "n_jobs": sum(sizes), **(record or {}), "identity": search.identity()})
    context = multiprocessing.get_context("spawn")  # no database connection is inherited
    children = [context.Process(target=_worker_process, args=(url, name, heartbeat, max_jobs),
                                name=f"baseline-worker-{i}") for i in range(1, workers)]
    for child in children:
        child.start()
    try:  # Ctrl-C reaches the spawned workers too: each gives its job back to the queue
        ran = work(storage, name, search, heartbeat, max_jobs, log)
    finally:
        for child in children:
            child.join()
    for child in children:
        if child.exitcode not in (0, None):
            log(f"worker {child.name} exited with code {child.exitcode} (a job it left is "
                "retried once its heartbeat is stale)")
    unfinished = sum(len(unfinished_slots(optuna.load_study(
        study_name=stage_name(name, s), storage=storage))) for s in STAGES)
    return SearchRun(name, search, storage, describe_url(url), folder, ran, unfinished)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobResult:
    """A finished job: what it ran, the entry it found, its wall time (s)."""

    job: dict[str, str]
    entry: dict[str, Any]
    seconds: float


def collect(storage: RDBStorage, name: str) -> list[JobResult]:
    """Every job's result from the storage, stage by stage, in slot order.

    :raises TuneError: a job is unfinished or failed (its error named).
    """
    results, bad = [], []
    for stage in STAGES:
        study = optuna.load_study(study_name=stage_name(name, stage), storage=storage)
        slots = slot_trials(study)
        for slot in range(queue_size(study)):
            trial = slots.get(slot)
            if trial is None or trial.state != TrialState.COMPLETE:
                state = "missing" if trial is None else trial.state.name
                error = "" if trial is None else trial.user_attrs.get(ERROR_ATTR, "")
                what = describe_job(job_of(trial)) if trial is not None else f"slot {slot}"
                bad.append(f"{what} ({state}{': ' + error if error else ''})")
                continue
            results.append(JobResult(job_of(trial), dict(trial.user_attrs[ENTRY_ATTR]),
                                     float(trial.user_attrs.get(SECONDS_ATTR, 0.0))))
    if bad:
        raise TuneError(f"baseline search {name!r}: {len(bad)} job(s) did not complete, "
                        f"nothing written: {'; '.join(bad[:4])}")
    return results


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer at a time in ``folder`` (an exclusive lock on the directory itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_results(results: Sequence[JobResult], command: str, out_dir: Path) -> list[Path]:
    """Store every result in ``out_dir/<scenario>.yaml`` and ``static_rule.yaml`` with
    :func:`agents.policies.baseline_store.write_entry` (atomically; writers on one machine
    take turns)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with _locked(out_dir):
        for result in results:
            job, objective = result.job, result.job[OBJECTIVE_ATTR]
            if job[JOB_ATTR] == RULE:
                path = write_entry(RULE_FILE, objective, result.entry, command, HEADER,
                                   baseline_dir=out_dir)
            else:
                controller = None if job[JOB_ATTR] == STATIC else job[JOB_ATTR]
                path = write_entry(job[SCENARIO_ATTR], objective, result.entry, command,
                                   HEADER, controller=controller, baseline_dir=out_dir)
            if path not in paths:
                paths.append(path)
    return paths


def describe_result(result: JobResult) -> str:
    """One line per study, for the command's output."""
    entry, head = result.entry, f"{describe_job(result.job)}: "
    tail = f" ({result.seconds:.0f} s)"
    if result.job[JOB_ATTR] == RULE:
        return f"{head}k = {entry['target_over_breakeven']}{tail}"
    if result.job[JOB_ATTR] == STATIC:
        return (f"{head}target {entry['target_over_breakeven']:.2f} x break-even, shares "
                f"{entry['shares']}, budget {entry['budget_over_launch']:.2f} x launch, "
                f"refresh every {entry['refresh_days']} days: "
                f"{entry['training_value_cny']:,.0f} CNY ({entry['trials']} trials){tail}")
    return f"{head}{entry['params']}: {entry['training_value_cny']:,.0f} CNY{tail}"
