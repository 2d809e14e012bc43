"""Baseline searches through the tuning queue: one queue job per Optuna study, two stages
(static and the rule, then the controllers on static's stored result), the YAML files
written once by the command, a dead worker's study retried, bad input; on SQLite and on a
real PostgreSQL server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from agents.experiments import baseline_search
from agents.experiments.baseline_jobs import (
    ENTRY_ATTR,
    JOB_ATTR,
    KIND,
    RULE,
    STAGES,
    STATIC,
    BaselineSearch,
    make_search,
    stage_name,
)
from agents.experiments.baseline_search import search_controller
from agents.experiments.queue import (
    QUEUE_SIZE_ATTR,
    SLOT_ATTR,
    WORKER_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TrialQueue,
    TuneError,
    create_or_join,
    open_storage,
)
from agents.experiments.study import STUDY_JSON, default_storage_url, study_dir
from agents.policies import baseline_store, make_policy
from agents.policies.baseline_store import (
    load_controller,
    load_static,
    load_static_rule,
    settings_from_entry,
)
from agents.policies.tuned import SPACES
from envs.config import ConfigError, list_scenarios, load_scenario
from envs.version import ENV_VERSION

ROOT = Path(__file__).resolve().parent.parent
SEARCH = [sys.executable, str(ROOT / "scripts" / "search_baselines.py")]
FAST = HeartbeatSettings(interval_s=1, grace_s=3)
TINY = ["--trials", "3", "--seeds", "2", "--heartbeat", "1", "--grace", "3"]


def search_main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    import search_baselines as script

    return script.main(argv)


def stage_trials(storage, name: str, stage: str) -> list:
    return optuna.load_study(study_name=stage_name(name, stage), storage=storage).trials


# ------------------------------------------------------------------------------ the jobs
def test_jobs_are_one_per_study_and_the_controllers_come_from_spaces():
    search = make_search(["food", "3c"], ["profit"], trials=3, seeds=2)
    assert search.controllers == tuple(SPACES) and search.rule_scenarios == tuple(
        list_scenarios())
    static, controllers = (search.jobs(stage) for stage in STAGES)
    assert static[0] == {JOB_ATTR: RULE, "objective": "profit"}  # the longest job first
    assert sorted((j["scenario"], j[JOB_ATTR]) for j in static[1:]) == [
        ("3c", STATIC), ("food", STATIC)]
    assert len(controllers) == 2 * len(SPACES)
    assert {j[JOB_ATTR] for j in controllers} == set(SPACES)
    spec = search.spec(STAGES[1])
    assert list(spec.slot_attrs) == controllers and len(spec.slots) == len(controllers)
    assert spec.identity["spaces"] == SPACES and spec.identity["env_version"] == ENV_VERSION
    assert BaselineSearch.from_identity(spec.identity) == search  # what --join runs
    full = make_search(rule=False)  # 300 trials: a static study costs more than the rule
    assert full.scenarios == tuple(list_scenarios()) and full.seeds == 128
    assert full.rule_scenarios == () and all(j[JOB_ATTR] == STATIC
                                             for j in full.jobs(STAGES[0]))
    with pytest.raises(TuneError, match="nope_tuned"):
        BaselineSearch.from_identity({**spec.identity, "controllers": ["nope_tuned"]})


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    runs, out = str(tmp_path / "runs"), str(tmp_path / "out")
    common = ["--runs-dir", runs, "--out-dir", out, *TINY]
    # a search that exists with other settings
    study_dir(runs, KIND, "taken").mkdir(parents=True)
    storage = open_storage(default_storage_url(study_dir(runs, KIND, "taken")), FAST)
    taken = make_search(["food"], ["profit"], trials=4, seeds=2, rule=False)
    for stage in STAGES:
        create_or_join(storage, stage_name("taken", stage), taken.spec(stage))
    # a tuning study whose name a search's first stage would have
    study_dir(runs, KIND, "tuned").mkdir(parents=True)
    create_or_join(open_storage(default_storage_url(study_dir(runs, KIND, "tuned")), FAST),
                   stage_name("tuned", STAGES[0]), QueueSpec("tune", {"a": 1}, [{}]))
    cases = [
        (["--scenarios", "atlantis", *common], "atlantis"),
        (["--scenarios", "food", "food", *common], "repeated"),
        (["--trials", "0", "--runs-dir", runs], "--trials"),
        (["--seeds", "1", "--runs-dir", runs], "--seeds"),
        (["--workers", "0", *common], "--workers"),
        (["--storage", "not a url", *common], "not a database URL"),
        (["--storage", "redis://localhost/0", *common], "redis"),
        (["--storage", "postgresql://u:secret@127.0.0.1:1/x", *common],
         "cannot open storage postgresql://u:\\*\\*\\*@"),
        (["--study-name", "a__b", *common], "study-name"),
        (["--heartbeat", "10", "--grace", "5", "--runs-dir", runs], "--grace"),
        (["--join", "--runs-dir", runs], "--join: give the --study-name"),
        (["--join", "--study-name", "never", "--runs-dir", runs], "no baseline search"),
        (["--study-name", "taken", "--scenarios", "food", "--objectives", "profit",
          "--no-rule", *common], "another search space or grid.*trials"),
        (["--study-name", "taken", "--join", "--trials", "5", "--runs-dir", runs],
         "another search space or grid.*trials"),
        (["--join", "--study-name", "tuned", "--runs-dir", runs], "as a tune study"),
        (["--study-name", "tuned", *common], "as a tune study"),
        (["--out-dir", "/proc/nope", "--scenarios", "food", *TINY], "--out-dir"),
    ]
    for argv, words in cases:
        assert search_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert "secret" not in err  # passwords are never printed
        assert re.search(words, err), (words, err)
    assert not list(Path(out).glob("*"))  # nothing written
    assert not study_dir(runs, KIND, "never").exists()  # --join creates nothing


# ------------------------------------------------------------------------------ the files
def check_files(out: Path, storage, name: str, scenarios: list[str], command: str,
                rule: bool, monkeypatch) -> None:
    """Every entry written, with its fields, equal to what the storage holds."""
    stored = {}
    for stage in STAGES:
        for t in stage_trials(storage, name, stage):
            if t.state == TrialState.COMPLETE:
                stored[t.user_attrs[JOB_ATTR], t.user_attrs.get("scenario"),
                       t.user_attrs["objective"]] = t.user_attrs[ENTRY_ATTR]
    for scenario in scenarios:
        data = yaml.safe_load((out / f"{scenario}.yaml").read_text())
        assert data["scenario"] == scenario and data["env_version"] == ENV_VERSION
        static = data["objectives"]["profit"]
        assert {k: v for k, v in static.items() if k != "command"} == stored[
            STATIC, scenario, "profit"]
        assert static["trials"] == 3 and static["seeds"] == "0..1"
        assert set(static) >= {"target_over_breakeven", "shares", "budget_over_launch",
                               "refresh_days", "training_value_cny", "command"}
        assert set(data["controllers"]) == set(SPACES)
        for policy, space in SPACES.items():
            entry = data["controllers"][policy]["profit"]
            assert entry["trials"] == 3 and entry["seeds"] == "0..1"
            assert set(entry["params"]) == set(space)
            assert entry["params"] == stored[policy, scenario, "profit"]["params"]
            assert entry["command"] == static["command"] == command
    if rule:
        entry = yaml.safe_load((out / "static_rule.yaml").read_text())["objectives"]["profit"]
        assert entry == {**stored[RULE, None, "profit"], "command": command}
        assert entry["target_over_breakeven"] in baseline_search.RULE_GRID
        assert set(entry["training_value_cny"]) == set(list_scenarios())
    # the files load, and the controllers ran on the static settings stage 1 stored
    monkeypatch.setattr(baseline_store, "BASELINE_DIR", out)
    config = load_scenario(scenarios[0])
    fixed = settings_from_entry(stored[STATIC, scenarios[0], "profit"])
    assert load_static(config) == fixed
    if rule:
        assert load_static_rule("profit") == entry["target_over_breakeven"]
    policy = next(iter(SPACES))
    assert make_policy(policy, config).fixed == fixed
    again = search_controller(scenarios[0], "profit", policy, trials=3, seeds=2, fixed=fixed)
    assert again["params"] == load_controller(config, policy)  # seeded: the same study


def wait_until_shared(url: str, name: str, creator: subprocess.Popen, log: Path) -> None:
    """Until the creator runs a stage-1 job while others wait (the joiner takes those)."""
    deadline = time.monotonic() + 180
    storage = None
    while True:
        assert creator.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the creator never started a job"
        time.sleep(0.2)
        try:
            storage = storage or open_storage(url, FAST)
            study = optuna.load_study(study_name=stage_name(name, STAGES[0]), storage=storage)
        except (KeyError, TuneError):
            continue
        states = [t.state for t in study.get_trials(deepcopy=False)]
        if (QUEUE_SIZE_ATTR in study.user_attrs and TrialState.RUNNING in states
                and TrialState.WAITING in states):
            return


@pytest.mark.slow
@pytest.mark.parametrize("backend,workers,rule", [("sqlite", 2, True),
                                                  ("postgresql", 1, False)])
def test_workers_share_one_search_and_the_command_writes_the_files(
        tmp_path, backend, workers, rule, request, monkeypatch):
    """The command (its local workers) and a --join worker (this process) share one search:
    every study runs once to completion, controllers after static, the files written once
    with every field. On SQLite the command spawns a second local worker and searches the
    static rule too (its long job is taken first)."""
    name = f"share-{uuid.uuid4().hex[:8]}"
    runs, out = tmp_path / "runs", tmp_path / "out"
    scenarios = ["food", "3c"]
    argv = ["--study-name", name, "--runs-dir", str(runs)]
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        argv += ["--storage", url]
    else:
        url = default_storage_url(study_dir(runs, KIND, name))
    command_args = [*argv, "--scenarios", *scenarios, "--objectives", "profit", *TINY,
                    "--workers", str(workers), "--out-dir", str(out),
                    *([] if rule else ["--no-rule"])]
    log = tmp_path / "creator.log"
    creator = subprocess.Popen([*SEARCH, *command_args], stdout=open(log, "w"),
                               stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_until_shared(url, name, creator, log)
        assert search_main([*argv, "--join", "--heartbeat", "1", "--grace", "3"]) == 0
        creator.wait(timeout=300)
    finally:
        if creator.poll() is None:
            creator.kill()
    text = log.read_text()
    assert creator.returncode == 0, text
    storage = open_storage(url, FAST)
    workers = set()
    for stage in STAGES:
        trials = stage_trials(storage, name, stage)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials)  # no retry
        assert sorted(t.user_attrs[SLOT_ATTR] for t in trials) == list(range(len(trials)))
        workers |= {t.user_attrs[WORKER_ATTR] for t in trials}
    assert len(stage_trials(storage, name, STAGES[0])) == 2 + rule  # static, the rule
    assert len(stage_trials(storage, name, STAGES[1])) == 2 * len(SPACES)
    assert len(workers) >= 2 and any(w.endswith(f":{os.getpid()}")
                                     for w in workers)  # the joiner took jobs
    started = [t.datetime_start for t in stage_trials(storage, name, STAGES[1])]
    finished = [t.datetime_complete for t in stage_trials(storage, name, STAGES[0])]
    assert min(started) >= max(finished)  # the controllers ran after every static study
    assert "wrote " in text and ("static_rule profit: k = " in text) == rule
    assert sorted(p.name for p in out.iterdir()) == ["3c.yaml", "food.yaml",
                                                     *(["static_rule.yaml"] if rule else [])]
    command = yaml.safe_load((out / "food.yaml").read_text())["objectives"]["profit"][
        "command"]
    assert command.startswith("python scripts/search_baselines.py --study-name")
    assert "--join" not in command  # the command wrote, the joiner did not
    check_files(out, storage, name, scenarios, command, rule, monkeypatch)
    record = json.loads((study_dir(runs, KIND, name) / STUDY_JSON).read_text())
    assert len(record["workers"]) == 2 and record["n_jobs"] == 2 + rule + 2 * len(SPACES)
    if backend == "postgresql":
        password = make_url(url).password
        for path in [*out.iterdir(), study_dir(runs, KIND, name) / STUDY_JSON]:
            assert password not in path.read_text(), path  # records hide the password
        assert password not in text


def test_a_dead_workers_study_is_retried_and_the_files_written(tmp_path, capsys):
    """A static study whose worker went silent is failed once its heartbeat is stale, run
    again (same slot and job) by the next worker, and the command still writes the files."""
    name, runs, out = "dead", tmp_path / "runs", tmp_path / "out"
    folder = study_dir(runs, KIND, name)
    folder.mkdir(parents=True)
    storage = open_storage(default_storage_url(folder), FAST)
    search = make_search(["food"], ["profit"], trials=3, seeds=2, rule=False)
    for stage in STAGES:
        create_or_join(storage, stage_name(name, stage), search.spec(stage))
    static = stage_name(name, STAGES[0])
    dead = TrialQueue(storage, static, lambda slot: optuna.load_study(
        study_name=static, storage=storage), FAST, log=lambda line: None)
    assert dead.claim() is not None  # claimed, heartbeat recorded once, then silence
    code = search_main(["--study-name", name, "--runs-dir", str(runs), "--out-dir", str(out),
                        "--scenarios", "food", "--objectives", "profit", "--no-rule",
                        "--workers", "1", *TINY])
    printed = capsys.readouterr().out
    assert code == 0, printed
    killed, retry = stage_trials(storage, name, STAGES[0])
    assert killed.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == killed.number
    assert retry.user_attrs[SLOT_ATTR] == killed.user_attrs[SLOT_ATTR] == 0
    assert retry.user_attrs[JOB_ATTR] == STATIC  # the same study again
    assert "retry of trial 0" in printed
    data = yaml.safe_load((out / "food.yaml").read_text())
    assert data["objectives"]["profit"] == {**retry.user_attrs[ENTRY_ATTR],
                                            "command": data["objectives"]["profit"]["command"]}
    assert set(data["controllers"]) == set(SPACES)
    assert not (out / "static_rule.yaml").exists()  # --no-rule
    # the same command again (resume): nothing left to run, the same files
    before = (out / "food.yaml").read_text()
    assert search_main(["--study-name", name, "--runs-dir", str(runs), "--out-dir", str(out),
                        "--scenarios", "food", "--objectives", "profit", "--no-rule",
                        "--workers", "1", *TINY]) == 0
    assert (out / "food.yaml").read_text() == before
    assert len(stage_trials(storage, name, STAGES[0])) == 2  # nothing ran again


def test_a_scenario_that_is_not_named_is_refused():
    with pytest.raises(ConfigError, match="named scenarios"):
        make_search(["unseen/noisy"])


def test_a_trial_taken_over_while_it_runs_is_dropped_not_fatal(tmp_path):
    """A live worker whose heartbeat went stale (a long compile on a loaded machine) finds
    its trial failed and re-queued when it finishes: it drops its result and goes on, rather
    than dying on Optuna's UpdateFinishedTrialError."""
    folder = study_dir(tmp_path / "runs", KIND, "slow")
    folder.mkdir(parents=True)
    storage = open_storage(default_storage_url(folder), FAST)
    search = make_search(["food"], ["profit"], trials=3, seeds=2, rule=False)
    static = stage_name("slow", STAGES[0])
    create_or_join(storage, static, search.spec(STAGES[0]))
    lines: list[str] = []
    queue = TrialQueue(storage, static, lambda slot: optuna.load_study(
        study_name=static, storage=storage), FAST, log=lines.append)

    def taken_over(trial) -> float:  # as the stale-heartbeat check of another worker does
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        return 1.0

    queue.work(taken_over, max_trials=1)
    assert any("finished elsewhere" in line for line in lines), lines
    states = [t.state for t in optuna.load_study(study_name=static, storage=storage).trials]
    assert states[0] == TrialState.FAIL
