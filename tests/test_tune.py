"""Tuning: the search space, the shared trial queue (heartbeats, retries), pruning, export,
bad input, and two real worker processes sharing one study while one is killed (SIGKILL)
mid-trial, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import re
import signal
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

from agents.experiments.queue import (
    ERROR_ATTR,
    SLOT_ATTR,
    WORKER_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TrialQueue,
    TuneError,
    create_or_join,
    open_storage,
)
from agents.experiments.space import list_spaces, load_space
from agents.experiments.study import RUN_ATTR, SEED_ATTR, default_storage_url, study_dir
from agents.experiments.tuning import TuneObjective, best_trial, export_best, tune
from agents.run_folder import read_run_json
from agents.training.config import load_train_config
from envs.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TUNE = [sys.executable, str(ROOT / "scripts" / "tune.py")]
FAST = HeartbeatSettings(interval_s=1, grace_s=3, max_retry=3)
N_TRIALS = 4

# A tiny space: 4 accounts x 32 days per rollout, 768 steps per trial, a validation every
# 256 steps on 4 seeds: a few seconds per trial once a worker has warmed up.
TINY_SPACE = {
    "base": "default", "seed": 11,
    "fixed": {"env.n_envs": 4, "ppo.n_steps": 32, "ppo.batch_size": 64, "ppo.n_epochs": 2,
              "training.total_timesteps": 768, "training.eval_freq": 256,
              "training.checkpoint_freq": 768, "training.eval_episodes": 4,
              "training.progress_bar": False},
    "sampler": {"name": "random"},
    "pruner": {"name": "none"},
    "params": {"ppo.learning_rate": {"low": 1.0e-4, "high": 1.0e-3, "log": True},
               "policy.net_arch": {"choices": [[16], [8, 8]]},
               "env.overrides.refund_charging": {"choices": ["on_landing", "on_order"]}},
}


def write_space(folder: Path, data: dict, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def by_state(study: optuna.Study) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in study.get_trials(deepcopy=False):
        out.setdefault(t.state.name, []).append(t)
    return out


# ------------------------------------------------------------------------------ search space
def test_default_space_loads_and_its_trials_are_valid_configs():
    space = load_space()
    assert len(space.params) >= 10
    keys = {p.key for p in space.params}
    assert {"env.normalize_reward", "env.clip_obs"} <= keys  # reward and observation options
    assert any(k.startswith("env.overrides.") for k in keys)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        config = space.trial_config(space.suggest(trial), seed=3, experiment="t")
        assert config.ppo.batch_size <= config.rollout_steps
        study.tell(trial, 0.0)


@pytest.mark.parametrize("name", list_spaces())
@pytest.mark.parametrize("objective", ["profit", "gmv_floor"])
def test_every_shipped_space_loads_on_both_objectives(name, objective):
    space = load_space(name, sets=[f"env.overrides.objective={objective}"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        config = space.trial_config(space.suggest(trial), seed=3, experiment="t")
        assert config.scenario_configs()[0].objective == objective
        assert config.ppo.batch_size <= config.rollout_steps
        study.tell(trial, 0.0)


def test_the_cross_scenario_space_trains_like_make_results():
    """Its base is the config make results trains for profit (same hash), and make results'
    gmv_floor preset is a point of the space (the base, the objective set, with tuned values):
    a trial with those values and seed is the shipped run."""
    from agents.evaluation.results import plan_runs

    def mix_run(objective):
        (mix,) = [p for p in plan_runs(seeds=(0,), objectives=(objective,))
                  if p.family == "mix"]
        return mix.config

    def values(config, space):  # the tuned keys' values in a config
        data = config.to_dict()
        return {p.key: data[p.key.split(".")[0]][p.key.split(".", 1)[1]] for p in space.params}

    assert load_space("all_scenarios").base_config.hash() == mix_run("profit").hash()
    space = load_space("all_scenarios", sets=["env.overrides.objective=gmv_floor"])
    shipped = mix_run("gmv_floor")
    tuned = values(shipped, space)
    assert tuned != values(space.base_config, space)
    assert space.trial_config(tuned, seed=0, experiment=shipped.experiment) == shipped


@pytest.mark.parametrize("change,words", [
    ({"paramz": {}}, "paramz"),
    ({"params": {}}, "params"),
    ({"params": {"ppo.learning_rat": {"low": 0.1, "high": 0.2}}}, "ppo.learning_rat"),
    ({"params": {"ppo.learning_rate": {"low": 1e-3, "high": 1e-4}}}, "low"),
    ({"params": {"ppo.ent_coef": {"low": 0.0, "high": 0.1, "log": True}}}, "log range"),
    ({"params": {"ppo.clip_range": {"low": 1, "high": 2, "type": "int", "step": 0.5}}},
     "clip_range"),
    ({"params": {"ppo.gae_lambda": {"low": 1, "high": 3, "type": "int"}}}, "gae_lambda"),
    ({"params": {"policy.log_std_init": {"low": "x", "high": 1}}}, "log_std_init.low"),
    ({"params": {"policy.activation": {"choices": ["tanh", "sigmoid"]}}}, "sigmoid"),
    ({"params": {"policy.activation": {"choices": "tanh"}}}, "choices"),
    ({"params": {"ppo.gamma": {"choices": [0.9], "low": 0.1}}}, "choices go alone"),
    ({"params": {"ppo.gamma": {"low": 0.9, "high": 0.99, "spread": 2}}}, "spread"),
    ({"params": {"env.overrides.margn": {"low": 0.1, "high": 0.2}}}, "margn"),
    ({"params": {"ppo.batch_size": {"choices": [64, 4096]}}}, "batch_size"),
    ({"fixed": {"ppo.batch_size": 128}, "params": {"env.n_envs": {"low": 2, "high": 8}}},
     "batch_size"),
    ({"fixed": {"ppo.n_stepz": 3}}, "ppo.n_stepz"),
    ({"params": {"seed": {"low": 0, "high": 9}}}, "seed"),
    ({"sampler": {"name": "grid"}}, "sampler.name"),
    ({"pruner": {"name": "median", "patience": 3}}, "patience"),
    # non-finite numbers: one check in the shared coercion (envs.presets.coerce_value)
    ({"params": {"ppo.ent_coef": {"choices": [0.0, float("inf")]}}},
     "ppo.ent_coef: must be a finite number, got inf"),
    ({"params": {"ppo.vf_coef": {"low": 0.1, "high": float("nan")}}},
     "params.ppo.vf_coef.high: must be a finite number"),
    ({"fixed": {"policy.log_std_init": float("-inf")}},
     "policy.log_std_init: must be a finite number"),
])
def test_malformed_space_raises_naming_the_key(tmp_path, change, words):
    data = {**TINY_SPACE, **change}
    fixed = {**TINY_SPACE["fixed"], **change.get("fixed", {})}
    data["fixed"] = {k: v for k, v in fixed.items() if k not in change.get("params", {})}
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_space(write_space(tmp_path, data))


def test_a_space_on_a_scenario_without_tuned_static_settings_stops_at_load(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("base: food\nname: own\n")
    path = write_space(tmp_path, TINY_SPACE)
    with pytest.raises(ConfigError, match="static cannot play scenario 'own'.*static_rule"):
        load_space(path, sets=[f"env.scenario={own}"])
    space = load_space(path, sets=[f"env.scenario={own}",
                                   "training.baselines=static_rule,playbook"])
    assert space.base_config.training.baseline == "static_rule"


def test_space_files_that_are_not_spaces(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_space(bad)
    with pytest.raises(ConfigError, match="unknown search space"):
        load_space("no_such_space")


# ------------------------------------------------------------------------------ the queue
def make_queue(tmp_path: Path, n: int, name: str = "q") -> TrialQueue:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    storage = open_storage(url, FAST)
    create_or_join(storage, name, QueueSpec("tune", {"v": 1}, [{}] * n))
    return TrialQueue(storage, name, lambda slot: optuna.load_study(study_name=name,
                                                                   storage=storage),
                      FAST, log=lambda line: None)


def test_queue_runs_each_slot_once_and_records_failures_without_retrying(tmp_path):
    queue = make_queue(tmp_path, 5)

    def objective(trial: optuna.Trial) -> float:
        slot = trial.user_attrs[SLOT_ATTR]
        if slot == 3:
            raise ValueError("diverged")
        return trial.suggest_float("x", 0, 1) + slot

    report = queue.work(objective)
    states = by_state(queue.study)
    assert len(states["COMPLETE"]) == 4 and len(states["FAIL"]) == 1
    assert set(states) == {"COMPLETE", "FAIL"}
    assert sorted(t.user_attrs[SLOT_ATTR] for t in queue.study.trials) == [0, 1, 2, 3, 4]
    assert "diverged" in states["FAIL"][0].user_attrs[ERROR_ATTR]
    assert report.ran == [0, 1, 2, 3, 4]
    assert all(t.user_attrs[WORKER_ATTR] == queue.worker for t in queue.study.trials)


def _claim_all(url: str, name: str, barrier, out) -> None:
    """A worker process: wait for the other, then claim every trial it can."""
    storage = open_storage(url, FAST)
    queue = TrialQueue(storage, name, lambda slot: None, FAST, log=lambda line: None)
    barrier.wait()
    taken = []
    while (trial_id := queue.claim()) is not None:
        taken.append(trial_id)
    out.put(taken)


def test_two_workers_claiming_at_once_never_take_the_same_trial(tmp_path):
    """Two processes released together claim from one SQLite queue of 60 waiting trials:
    every trial is taken exactly once. (With Optuna's read-then-write state change, which
    SQLite does not lock, 1-4 trials were taken by both in each of three runs.)"""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'race.db'}"
    create_or_join(open_storage(url, FAST), "race", QueueSpec("tune", {"v": 1}, [{}] * 60))
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(url, "race", barrier, out))
               for _ in range(2)]
    for w in workers:
        w.start()
    first, second = out.get(timeout=120), out.get(timeout=120)
    for w in workers:
        w.join(timeout=60)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(set(first + second)) and len(first + second) == 60


def test_an_interrupted_trial_goes_back_to_the_queue(tmp_path):
    queue = make_queue(tmp_path, 2)
    calls = []

    def objective(trial: optuna.Trial) -> float:
        calls.append(trial.number)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        queue.work(objective)
    assert by_state(queue.study)["FAIL"][0].number == 0
    assert len(by_state(queue.study)["WAITING"]) == 2  # slot 1 and the retry of slot 0
    queue.work(objective)
    states = by_state(queue.study)
    assert len(states["COMPLETE"]) == 2 and len(states["FAIL"]) == 1
    retry = [t for t in states["COMPLETE"] if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].user_attrs[SLOT_ATTR] == 0


def test_joining_checks_kind_identity_and_size(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'j.db'}", FAST)
    create_or_join(storage, "s", QueueSpec("tune", {"params": {"a": 1}}, [{}] * 3))
    study, created = create_or_join(storage, "s", QueueSpec("tune", {"params": {"a": 1}},
                                                            [{}] * 3))
    assert not created and len(study.trials) == 3  # joining enqueues nothing
    with pytest.raises(TuneError, match="another search space.*params.a"):
        create_or_join(storage, "s", QueueSpec("tune", {"params": {"a": 2}}, [{}] * 3))
    with pytest.raises(TuneError, match="created for 3 trials"):
        create_or_join(storage, "s", QueueSpec("tune", {"params": {"a": 1}}, [{}] * 4))
    create_or_join(storage, "s", QueueSpec("tune", {"params": {"a": 1}}, [{}],
                                           strict_size=False))
    with pytest.raises(TuneError, match="sweep"):
        create_or_join(storage, "s", QueueSpec("sweep", {"params": {"a": 1}}, [{}] * 3))


# ------------------------------------------------------------------------------ pruning
def test_hopeless_trial_is_pruned_at_a_periodic_validation(tmp_path):
    space = load_space(write_space(tmp_path, TINY_SPACE))
    folder = study_dir(tmp_path / "runs", "tune", "prune")
    folder.mkdir(parents=True)
    storage = open_storage(default_storage_url(folder), FAST)
    create_or_join(storage, "prune", QueueSpec("tune", space.identity(), [{}]))
    always = optuna.pruners.ThresholdPruner(lower=1e15)  # any profit difference is too low

    def make_study(slot: int) -> optuna.Study:
        return optuna.load_study(study_name="prune", storage=storage, pruner=always)

    queue = TrialQueue(storage, "prune", make_study, FAST, log=lambda line: None)
    queue.work(TuneObjective(space, folder))
    (trial,) = queue.study.trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [256]  # reported at the first validation
    run_dir = Path(trial.user_attrs[RUN_ATTR])
    info = read_run_json(run_dir)
    assert info["status"] == "pruned"
    assert info["num_timesteps"] < 768  # training stopped early
    # what it reported: that validation's value difference against static (best/ holds it)
    first = json.loads((run_dir / "best" / "eval.json").read_text())
    assert first["step"] == 256 and first["baseline"] == "static"
    assert trial.intermediate_values[256] == pytest.approx(first["value_diff"])


def test_a_trial_scores_its_final_value_difference_against_static(tmp_path):
    """A gmv_floor trial: its value is the final validation's paired gmv_floor-value
    difference PPO - static; the user attrs record it and the playbook's comparison."""
    space = load_space(write_space(tmp_path, TINY_SPACE), sets=[
        "training.total_timesteps=256", "env.overrides.objective=gmv_floor"])
    run = tune(space, "score", n_trials=1, runs_dir=tmp_path / "runs", heartbeat=FAST,
               log=lambda line: None)
    (trial,) = run.study.trials
    assert trial.state == TrialState.COMPLETE
    final = read_run_json(Path(trial.user_attrs[RUN_ATTR]))["final_eval"]
    static, playbook = final["comparisons"]["static"], final["comparisons"]["playbook"]
    assert final["objective"] == "gmv_floor" and final["baseline"] == "static"
    assert trial.value == pytest.approx(final["value_diff"]) == pytest.approx(
        static["value_diff"])
    assert trial.value != pytest.approx(final["profit_diff"])  # the objective's, not profit
    attrs = trial.user_attrs
    assert (attrs["baseline"], attrs["objective"]) == ("static", "gmv_floor")
    assert attrs["value_diff_ci"] == pytest.approx([static["value_diff_ci_low"],
                                                    static["value_diff_ci_high"]])
    assert attrs["baseline_value"] == pytest.approx(static["reference"]["value"])
    assert attrs["vs_playbook"]["value_diff"] == pytest.approx(playbook["value_diff"])
    assert attrs["vs_playbook"]["profit_diff"] == pytest.approx(playbook["profit_diff"])
    assert attrs["vs_playbook"]["verdict"] == playbook["verdict"]


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import tune as tune_script

    space = write_space(tmp_path, TINY_SPACE)
    runs = str(tmp_path / "runs")
    common = ["--runs-dir", runs, "--space", str(space)]

    bad_space = write_space(tmp_path, {**TINY_SPACE, "params": {"ppo.gamma": {"low": 2,
                                                                             "high": 3}}},
                            "bad.yaml")
    cases = [
        (["--study-name", "a", "--runs-dir", runs, "--space", str(bad_space)], "ppo.gamma"),
        (["--study-name", "a", *common, "--storage", "postgresql://u:secret@127.0.0.1:1/x"],
         "cannot open storage"),
        (["--study-name", "a", *common, "--storage", "not a url"], "not a database URL"),
        (["--study-name", "a", *common, "--storage", "redis://localhost/0"], "redis"),
        (["--study-name", "a__b", *common], "study-name"),
        (["--study-name", "a", *common, "--heartbeat", "10", "--grace", "5"], "--grace"),
    ]
    # a study that exists with another search space
    other = write_space(tmp_path, {**TINY_SPACE, "seed": 12}, "other.yaml")
    folder = study_dir(runs, "tune", "taken")
    folder.mkdir(parents=True)
    storage = open_storage(default_storage_url(folder), FAST)
    create_or_join(storage, "taken", QueueSpec("tune", load_space(other).identity(), [{}]))
    cases.append((["--study-name", "taken", *common], "another search space.*seed"))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    cases.append((["--study-name", "a", "--runs-dir", runs, "--space", str(binary)],
                  "binary.yaml: not a YAML text file"))
    cases.append((["--study-name", "a", *common, "--set", "ppo.learning_rate=inf"],
                  "ppo.learning_rate: must be a finite number"))
    for argv, words in cases:
        assert tune_script.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert "secret" not in err  # passwords are never printed
        assert re.search(words, err), (words, err)


def test_unreachable_storage_from_the_command_line(tmp_path):
    proc = subprocess.run([*TUNE, "--study-name", "x", "--runs-dir", str(tmp_path),
                           "--storage", "postgresql://qcrl:pw@127.0.0.1:1/qcrl"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot open storage postgresql://qcrl:***@")
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ dead workers
def start_worker(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*TUNE, *argv], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            cwd=ROOT)


def run_and_kill_one(tmp_path: Path, storage_url: str | None) -> dict:
    """Two workers on one study of N_TRIALS; SIGKILL one in the middle of a trial that has
    started training, after at least one trial completed. Returns what happened."""
    name = f"kill-{uuid.uuid4().hex[:8]}"
    runs = tmp_path / "runs"
    space = write_space(tmp_path, TINY_SPACE)
    argv = ["--study-name", name, "--space", str(space), "--n-trials", str(N_TRIALS),
            "--runs-dir", str(runs), "--heartbeat", "1", "--grace", "3"]
    if storage_url:
        argv += ["--storage", storage_url]
    url = storage_url or default_storage_url(study_dir(runs, "tune", name))
    storage = None  # opened once the workers have created the study (they race to create it)
    victim = start_worker(argv, tmp_path / "victim.log")
    survivor = start_worker(argv, tmp_path / "survivor.log")
    try:
        deadline = time.monotonic() + 240
        target = None
        while target is None:
            assert time.monotonic() < deadline, "no trial of the victim to kill in time"
            assert victim.poll() is None, (tmp_path / "victim.log").read_text()
            time.sleep(0.2)
            if not (study_dir(runs, "tune", name) / "study.json").exists():
                continue
            storage = storage or open_storage(url, FAST)
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                continue
            trials = study.get_trials(deepcopy=False)
            done = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
            for t in trials:
                run_json = Path(t.user_attrs.get(RUN_ATTR, "/nonexistent")) / "run.json"
                if (t.state == TrialState.RUNNING and done and run_json.exists()
                        and t.user_attrs.get(WORKER_ATTR, "").endswith(f":{victim.pid}")
                        and read_run_json(run_json.parent)["status"] == "running"):
                    target = t  # in the middle of training
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        survivor.wait(timeout=240)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
    log = (tmp_path / "survivor.log").read_text()
    assert survivor.returncode == 0, log
    return {"study": optuna.load_study(study_name=name, storage=storage), "killed": target,
            "done_before": done, "log": log, "space": load_space(space)}


def check_no_trial_lost_or_duplicated(outcome: dict) -> None:
    study, killed = outcome["study"], outcome["killed"]
    states = by_state(study)
    assert set(states) == {"COMPLETE", "FAIL"}, {k: len(v) for k, v in states.items()}
    assert len(states["COMPLETE"]) == N_TRIALS  # the COMPLETE count equals what was asked
    assert [t.number for t in states["FAIL"]] == [killed.number]
    slots = sorted(t.user_attrs[SLOT_ATTR] for t in states["COMPLETE"])
    assert slots == list(range(N_TRIALS))  # every slot once: none lost, none twice
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs[SLOT_ATTR] == killed.user_attrs[SLOT_ATTR]
    assert retry.params == killed.params  # the same trial again, with the same seed
    assert retry.user_attrs[SEED_ATTR] == killed.user_attrs[SEED_ATTR]
    assert retry.user_attrs[WORKER_ATTR] != killed.user_attrs[WORKER_ATTR]
    assert f"retry of trial {killed.number}" in outcome["log"]
    for number, value in outcome["done_before"].items():  # nothing finished is lost
        assert study.trials[number].state == TrialState.COMPLETE
        assert study.trials[number].value == value
    killed_run = read_run_json(Path(killed.user_attrs[RUN_ATTR]))
    assert f"retried as trial {retry.number}" in killed_run["note"]
    assert killed_run["status"] == "abandoned" or (  # unless it ended in the ms before the kill
        killed_run["status"] == "finished" and "before the study recorded" in killed_run["note"])
    space = outcome["space"]
    for t in states["COMPLETE"]:
        info = read_run_json(Path(t.user_attrs[RUN_ATTR]))
        assert info["status"] == "finished"
        assert info["seed"] == t.user_attrs[SEED_ATTR] == space.seed + t.user_attrs[SLOT_ATTR]
        assert t.value == pytest.approx(info["final_eval"]["value_diff"])
        assert info["final_eval"]["baseline"] == t.user_attrs["baseline"] == "static"
        assert (Path(t.user_attrs[RUN_ATTR]) / "tb").is_dir()  # under the study's folder


@pytest.mark.slow
def test_killed_worker_on_sqlite_loses_and_duplicates_nothing(tmp_path):
    outcome = run_and_kill_one(tmp_path, None)
    check_no_trial_lost_or_duplicated(outcome)
    folder = study_dir(tmp_path / "runs", "tune", outcome["study"].study_name)
    assert (folder / "study.db").is_file()
    record = json.loads((folder / "study.json").read_text())
    assert record["n_trials"] == N_TRIALS and len(record["workers"]) == 2

    # --export-best: a preset the training config loader accepts, with the best values
    study = outcome["study"]
    path = export_best(study, "tuned_test", config_dir=tmp_path / "ppo")
    config = load_train_config(path)
    best = best_trial(study)
    assert best.value == max(t.value for t in study.trials if t.state == TrialState.COMPLETE)
    assert config.ppo.learning_rate == pytest.approx(best.params["ppo.learning_rate"])
    assert list(config.policy.net_arch) == json.loads(best.params["policy.net_arch"])
    assert dict(config.env.overrides)["refund_charging"] == best.params[
        "env.overrides.refund_charging"]
    assert config.ppo.n_steps == 32  # the space's fixed choices come along ...
    assert config.training.total_timesteps == load_train_config().training.total_timesteps
    with pytest.raises(TuneError, match="exists"):  # ... and nothing is overwritten silently
        export_best(study, "tuned_test", config_dir=tmp_path / "ppo")


@pytest.mark.slow
def test_killed_worker_on_postgresql_loses_and_duplicates_nothing(tmp_path, postgres_url):
    outcome = run_and_kill_one(tmp_path, postgres_url)
    check_no_trial_lost_or_duplicated(outcome)
    password = make_url(postgres_url).password
    folder = study_dir(tmp_path / "runs", "tune", outcome["study"].study_name)
    records = [folder / "study.json", *folder.glob("trial_*/run.json")]
    assert len(records) == N_TRIALS + 2  # the study's and every attempt's
    for path in records:  # recorded command lines hide the database password
        assert password not in path.read_text(), path
