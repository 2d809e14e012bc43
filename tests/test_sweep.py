"""Sweeps: the grid, the aggregate's statistics, bad input, and two worker processes sharing
one sweep on a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from rliable import metrics as rly_metrics

from agents.evaluation.stats import aggregate_matrix as aggregate_scores
from agents.experiments.queue import (
    SLOT_ATTR,
    WORKER_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TuneError,
    create_or_join,
    open_storage,
)
from agents.experiments.study import RUN_ATTR, default_storage_url, study_dir
from agents.experiments.sweep import (
    AGGREGATE_JSON,
    EVAL_ATTR,
    SUMMARY_CSV,
    make_grid,
    report_seeds,
)
from agents.run_folder import read_run_json
from envs.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SWEEP = [sys.executable, str(ROOT / "scripts" / "sweep.py")]
TINY_SETS = ["env.n_envs=4", "ppo.n_steps=32", "ppo.batch_size=64", "ppo.n_epochs=2",
             "policy.net_arch=16", "training.total_timesteps=512", "training.eval_freq=256",
             "training.checkpoint_freq=512", "training.eval_episodes=4",
             "training.progress_bar=false"]


def test_grid_cells_and_configs():
    grid = make_grid(["default"], ["3c", "beauty"], [0, 1, 2], TINY_SETS, eval_episodes=4)
    cells = grid.cells()
    assert len(cells) == 6 and len({json.dumps(c, sort_keys=True) for c in cells}) == 6
    config = grid.cell_config(cells[4])
    assert (config.env.scenario, config.seed, config.ppo.n_steps) == ("beauty", 1, 32)
    assert len({c["config_hash"] for c in grid.identity()["cells"]}) == 6
    assert list(report_seeds(3)) == [10000, 10001, 10002]  # contracts: report seeds


@pytest.mark.parametrize("args,error,words", [
    ((["default"], ["atlantis"], [0]), ConfigError, "atlantis"),
    ((["nope"], ["3c"], [0]), ConfigError, "nope"),
    ((["default"], ["3c"], [0, 0]), TuneError, "repeated"),
    ((["default"], ["3c"], []), TuneError, "--seeds"),
    ((["default"], ["3c"], [-1]), TuneError, "--seeds"),
])
def test_bad_grids_raise_naming_what_is_wrong(args, error, words):
    with pytest.raises(error, match=words):
        make_grid(*args)


def test_aggregate_is_rliable_iqm_with_a_stratified_bootstrap_interval():
    rng = np.random.default_rng(0)
    # 2 tasks on very different scales: resampling runs within each task keeps the IQM of a
    # resample near the point estimate; pooling the tasks would not
    scores = np.stack([rng.normal(0.0, 0.01, 8), rng.normal(1.0, 0.01, 8)], axis=1)
    agg = aggregate_scores(scores, seed=1, reps=500)
    assert agg["iqm"] == pytest.approx(rly_metrics.aggregate_iqm(scores))
    assert agg["mean"] == pytest.approx(scores.mean())
    for name in ("iqm", "mean"):
        assert agg[f"{name}_ci_low"] <= agg[name] <= agg[f"{name}_ci_high"]
        assert agg[f"{name}_ci_high"] - agg[f"{name}_ci_low"] < 0.05
    state = np.random.get_state()[1].copy()
    assert aggregate_scores(scores, seed=1, reps=500) == agg  # seeded
    assert (np.random.get_state()[1] == state).all()  # the global generator is left alone


def sweep_main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    import sweep as sweep_script

    return sweep_script.main(argv)


def test_bad_sweep_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    common = ["--runs-dir", str(tmp_path)]
    # a sweep that exists with another grid
    folder = study_dir(tmp_path, "sweep", "taken")
    folder.mkdir(parents=True)
    grid = make_grid(["default"], ["3c"], [0, 1], TINY_SETS, eval_episodes=4)
    create_or_join(open_storage(default_storage_url(folder), HeartbeatSettings(1, 3)),
                   "taken", QueueSpec("sweep", grid.identity(), grid.cells()))
    taken = ["--study-name", "taken", "--eval-episodes", "4", *common,
             *[x for item in TINY_SETS for x in ("--set", item)]]
    for argv, words in [
        ([*taken, "--seeds", "0", "1", "2"], "another search space or grid"),
        ([*taken, "--seeds", "0", "1", "--set", "ppo.n_epochs=3"], "cells"),
        (["--study-name", "a", "--scenarios", "atlantis", *common], "atlantis"),
        (["--study-name", "a", "--seeds", "1", "1", *common], "repeated"),
        (["--study-name", "a", "--eval-episodes", "1", *common], "--eval-episodes"),
        (["--study-name", "a", "--storage", "mysql+nodriver://x@127.0.0.1:1/x", *common],
         "cannot open storage"),
        (["--study-name", "never-ran", "--aggregate-only", *common], "no study"),
    ]:
        assert sweep_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert words in err, (words, err)


@pytest.mark.slow
def test_two_workers_share_one_sweep_on_postgresql(tmp_path, postgres_url):
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    runs = tmp_path / "runs"
    argv = ["--study-name", name, "--storage", postgres_url, "--runs-dir", str(runs),
            "--configs", "default", "--scenarios", "3c", "beauty", "--seeds", "0", "1",
            "--eval-episodes", "4", "--heartbeat", "1", "--grace", "3"]
    for item in TINY_SETS:
        argv += ["--set", item]
    workers = [subprocess.Popen([*SWEEP, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=ROOT)
               for _ in range(2)]
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs

    storage = open_storage(postgres_url, HeartbeatSettings(1, 3))
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4  # each cell exactly once
    assert sorted(t.user_attrs[SLOT_ATTR] for t in trials) == [0, 1, 2, 3]
    assert len({t.user_attrs[WORKER_ATTR] for t in trials}) == 2  # both workers took cells
    cells = {(t.params["scenario"], t.params["seed"]) for t in trials}
    assert cells == {("3c", 0), ("3c", 1), ("beauty", 0), ("beauty", 1)}
    for t in trials:
        info = read_run_json(Path(t.user_attrs[RUN_ATTR]))
        assert info["status"] == "finished" and info["seed"] == t.params["seed"]
        assert info["scenario"] == t.params["scenario"]
        evaluation = t.user_attrs[EVAL_ATTR]
        assert evaluation["seeds"] == [10000, 10003]  # report seeds, not validation seeds
        assert t.value == pytest.approx(evaluation["ppo_profit"]
                                        - evaluation["baseline_profit"])

    folder = study_dir(runs, "sweep", name)
    aggregate = json.loads((folder / AGGREGATE_JSON).read_text())
    agg = aggregate["aggregate"]["default"]
    scores = np.array(agg["scores"])
    assert scores.shape == (2, 2)  # seeds x scenarios
    expected = {(t.params["seed"], t.params["scenario"]): t.value
                / t.user_attrs[EVAL_ATTR]["baseline_settled_gmv"] for t in trials}
    for (seed, scenario), value in expected.items():
        # stored to 6 decimals (agents/experiments/sweep.py): an anchored PPO's scores sit near 0
        assert scores[[0, 1].index(seed), ["3c", "beauty"].index(scenario)] == pytest.approx(
            value, rel=1e-5, abs=5e-7)
    assert agg["iqm_ci_low"] <= agg["iqm"] <= agg["iqm_ci_high"]
    assert (folder / SUMMARY_CSV).read_text().startswith("config,scenario,n_seeds")
    assert any("IQM" in log for log in logs)

    # --aggregate-only rewrites the same aggregate (in this process: same code, no start-up)
    (folder / AGGREGATE_JSON).unlink()
    assert sweep_main([*argv, "--aggregate-only"]) == 0
    assert json.loads((folder / AGGREGATE_JSON).read_text())["aggregate"] == \
        aggregate["aggregate"]
