"""A run folder's durability: one writer at a time, a damaged checkpoint passed over on resume,
and an interrupted run that resumes at a rollout boundary (so it validates where an
uninterrupted run does). Each test works on a copy of the session's tiny run, or trains its
own tiny run (seconds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_RUN_SETTINGS

from agents.policies.ppo import load_trained_policy
from agents.run_folder import RunError, checkpoint_steps, damaged_file
from agents.run_lock import RunBusyError, RunLock
from agents.training.config import load_train_config
from agents.training.interrupt import InterruptedTrainingError, StopOnRequest
from tests.test_train import ROOT, TINY_N_ENVS, _train_main, events, obs_count, steps

# a process that holds a run's lock until it is killed
HOLD_LOCK = ("import sys, time\n"
             "from agents.run_lock import RunLock\n"
             "lock = RunLock(sys.argv[1]).acquire()\n"
             "print('held', flush=True)\n"
             "time.sleep(600)\n")


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def _info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


# ------------------------------------------------------------------------------ one writer
def test_a_second_writer_is_refused_until_the_holder_dies(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (run / "run.json").read_text()
        code, err = _train_main(["--resume", str(run), "--timesteps", "640"], capsys)
        assert code == 2 and "Traceback" not in err
        assert str(run) in err and f"PID {holder.pid}" in err
        assert (run / "run.json").read_text() == before  # no second session, nothing written
    finally:
        holder.kill()  # SIGKILL: the OS drops the lock with its holder
        holder.wait(timeout=30)
        holder.stdout.close()
    code, err = _train_main(["--resume", str(run), "--timesteps", "640"], capsys)
    assert code == 0, err
    info = _info(run)
    assert info["status"] == "finished" and info["num_timesteps"] == 640
    assert [s["ended"] for s in info["sessions"]] == ["finished", "finished"]


def test_a_lock_is_one_writer_even_within_a_process(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunBusyError, match=f"PID {os.getpid()}"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # free again once released


def test_results_keeps_a_folder_another_process_is_still_creating(tmp_path):
    from agents.evaluation.results import train_one

    config = load_train_config(sets=TINY_RUN_SETTINGS)
    half = tmp_path / "half"  # no run.json yet: its creator holds the lock
    half.mkdir()
    (half / "config.yaml").write_text("being written\n")
    with RunLock(half), pytest.raises(RunBusyError, match="half"):
        train_one("half", config.to_dict(), tmp_path)
    assert (half / "config.yaml").read_text() == "being written\n"


def test_a_retried_trial_leaves_a_run_its_writer_still_holds_alone(tmp_path):
    from agents.experiments.study import RUN_ATTR, mark_abandoned

    run = tmp_path / "trial_3"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    with RunLock(run):  # its worker is alive after all (a missed heartbeat)
        mark_abandoned({RUN_ATTR: str(run)}, retry_number=9)
    assert _info(run) == {"status": "running"}
    mark_abandoned({RUN_ATTR: str(run)}, retry_number=9)  # its worker is gone
    assert _info(run)["status"] == "abandoned" and "trial 9" in _info(run)["note"]


# ------------------------------------------------------------------------------ damaged files
def test_a_truncated_latest_checkpoint_falls_back_to_the_newest_intact_one(tiny_run, tmp_path,
                                                                            capsys):
    run = _copy(tiny_run, tmp_path)
    bad = run / "checkpoints" / "step_512" / "model.zip"
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])  # cut short, as by a full disk
    code, err = _train_main(["--resume", str(run), "--timesteps", "640"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    warning = [line for line in err.splitlines() if str(bad) in line]
    assert len(warning) == 1 and str(run / "checkpoints" / "step_256") in warning[0]
    info = _info(run)
    assert info["sessions"][-1]["start_step"] == 256
    assert info["status"] == "finished" and info["num_timesteps"] == 640
    assert checkpoint_steps(run) == [256, 512, 640]  # step_512 trained again, intact
    assert damaged_file(run / "checkpoints" / "step_512") is None
    aside = run / "checkpoints" / ".step_512.damaged" / "model.zip"
    assert aside.stat().st_size == len(data) // 2  # kept to inspect, out of every lookup


def test_loading_a_damaged_model_names_the_file(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    stats = run / "checkpoints" / "step_256" / "vecnormalize.pkl"
    stats.write_bytes(stats.read_bytes()[:100])
    with pytest.raises(RunError, match=r"step_256/vecnormalize\.pkl is damaged"):
        load_trained_policy(run, "step_256")
    assert load_trained_policy(run, "step_512").num_timesteps == 512


# ------------------------------------------------------------------------------ interruption
def test_an_interrupted_run_resumes_at_its_rollout_boundary(tiny_run, tmp_path, monkeypatch):
    import agents.training.train as training

    rollout_steps = 4 * 32  # TINY_RUN_SETTINGS: 4 accounts x 32 days
    stop_at = 3 * rollout_steps + 11 * TINY_N_ENVS  # 11 days into the fourth rollout

    class StopMidRollout(StopOnRequest):
        """What SIGINT does (sets ``requested``), at a known step."""

        def _on_step(self) -> bool:
            if self.model.num_timesteps >= stop_at:
                self.requested = True
            return super()._on_step()

    monkeypatch.setattr(training, "StopOnRequest", StopMidRollout)
    config = load_train_config(sets=TINY_RUN_SETTINGS)
    with pytest.raises(InterruptedTrainingError) as stopped:
        training.train(config, runs_dir=tmp_path, run_name="stopped", command=["pytest"])
    run = tmp_path / "stopped"
    boundary = 3 * rollout_steps
    assert stopped.value.step == boundary and stopped.value.recollected == stop_at - boundary
    assert f"the {stop_at - boundary} steps collected since" in str(stopped.value)
    assert checkpoint_steps(run) == [256, boundary]
    # the checkpoint's statistics are the boundary's: the reset plus every step up to it
    assert obs_count(run / "checkpoints" / f"step_{boundary}") == pytest.approx(
        TINY_N_ENVS + boundary, abs=1e-3)
    info = _info(run)
    assert info["status"] == "interrupted" and info["num_timesteps"] == boundary
    assert info["sessions"][-1]["recollected_on_resume"] == stop_at - boundary
    monkeypatch.undo()

    training.resume(run, command=["pytest", "resume"])
    # as if never interrupted: the same validation steps, rollouts and budget
    resumed, uninterrupted = events(run), events(tiny_run)
    for tag in ("eval/ppo/profit", "eval/static/profit", "time/fps"):
        assert steps(resumed, tag) == steps(uninterrupted, tag), tag
    assert _info(run)["num_timesteps"] == _info(tiny_run)["num_timesteps"] == 512
    assert load_trained_policy(run, "final").num_timesteps == 512
