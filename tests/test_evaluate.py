"""The benchmark: reproducible bit for bit, scripts/evaluate.py end to end, clear errors.

The end-to-end test runs the script in a fresh interpreter; the other CLI tests call its
``main`` in this process (same code, no interpreter start-up). Intervals use 200 bootstrap
resamples here (2000 by default): the tests check structure and reproducibility, not widths.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.evaluate import evaluate
from envs.metrics import EPISODE_METRICS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "evaluate.py"
REPS = "200"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--no-progress", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def load_cli():
    spec = importlib.util.spec_from_file_location("evaluate_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CLI = load_cli()


def cli(capsys, *args: str) -> tuple[int, str]:
    """scripts/evaluate.py in this process: (exit code, stderr)."""
    code = CLI.main(["--no-progress", *args])
    return code, capsys.readouterr().err


def test_same_seed_same_numbers_bit_for_bit(tmp_path):
    kwargs = dict(policies=["pid"], scenarios=["food"], episodes=3, seed=10000,
                  progress=False, tensorboard=False, plots=False, bootstrap_reps=int(REPS))
    a = evaluate(out_dir=tmp_path / "a", **kwargs)
    b = evaluate(out_dir=tmp_path / "b", **kwargs)
    for name in ("summary.csv", "episodes.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    c = evaluate(out_dir=tmp_path / "c", **{**kwargs, "seed": 10003})
    assert (a / "episodes.csv").read_bytes() != (c / "episodes.csv").read_bytes()


@pytest.mark.slow
def test_script_end_to_end_on_two_scenarios(tmp_path):
    out = tmp_path / "eval"
    proc = run_script("--policies", "playbook", "pid", "--scenarios", "3c", "food",
                      "--episodes", "3", "--bootstrap-reps", REPS, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = {r["best_heuristic"] for r in rows}  # always played too, chosen on validation
    assert best and not best & {"constant", "oracle", "static"}
    cases = {(s, o) for s in ("3c", "food") for o in ("profit", "gmv_floor")}
    assert {(r["scenario"], r["objective"], r["policy"]) for r in rows} == {
        (s, o, p) for s, o in cases for p in ("constant", "oracle", "playbook", "pid", *best)}
    for key in (*EPISODE_METRICS, "value", "normalised_score", "prob_improvement_vs_playbook",
                "value_diff_vs_playbook", "profit_diff_vs_playbook", "value_ci_low",
                "value_ci_high"):
        assert key in rows[0]
    by = {(r["scenario"], r["objective"], r["policy"]): r for r in rows}
    for objective in ("profit", "gmv_floor"):
        assert float(by["3c", objective, "oracle"]["normalised_score"]) == pytest.approx(1.0)
        assert float(by["3c", objective, "constant"]["normalised_score"]) == pytest.approx(0.0)
        assert float(by["3c", objective, "playbook"]["value_diff_vs_playbook"]) == 0.0
    # the value is the case's objective: profit, or the gmv_floor return (settled GMV scale),
    # with the final state's value (on by default)
    from agents.evaluation.rollout import episode_value
    from agents.policies import make_policy
    from envs.config import load_scenario

    profit_config = load_scenario("3c")
    expected = episode_value(profit_config, make_policy("pid", profit_config),
                             np.arange(10000, 10003)).mean()
    assert float(by["3c", "profit", "pid"]["value"]) == pytest.approx(expected, rel=1e-5)

    floor_config = load_scenario("3c", objective="gmv_floor")
    expected = episode_value(floor_config, make_policy("pid", floor_config),
                             np.arange(10000, 10003)).mean()
    assert float(by["3c", "gmv_floor", "pid"]["value"]) == pytest.approx(expected, rel=1e-5)
    assert float(by["3c", "gmv_floor", "pid"]["value"]) != float(by["3c", "gmv_floor", "pid"]
                                                                 ["profit"])
    assert float(by["3c", "profit", "playbook"]["spend_share_vs_playbook"]) == 1.0
    assert float(by["3c", "profit", "constant"]["spend_last28_share_vs_playbook"]) > 0
    report = (out / "report.md").read_text()
    assert "Volume as a share of playbook's" in report
    assert "## Objective `profit`" in report and "## Objective `gmv_floor`" in report
    for name in ("report.md", "eval.json", "episodes.csv", "bars_3c_profit.png",
                 "bars_3c_gmv_floor.png", "behaviour_3c_profit.png",
                 "behaviour_food_gmv_floor.png", "trajectory_food_profit_pid.png",
                 "performance_profiles_profit.png", "performance_profiles_gmv_floor.png"):
        assert (out / name).is_file(), name
    for objective in ("profit", "gmv_floor"):
        assert list((out / "tb" / "3c" / objective).glob("events.out.tfevents.*"))


def test_unseen_markets_are_played_on_their_own_seeds(tmp_path, capsys):
    """--unseen plays every market in configs/scenarios/unseen/, on seeds from 30000."""
    from envs.config import list_unseen

    out = tmp_path / "unseen"
    code, err = cli(capsys, "--unseen", "--policies", "constant", "--episodes", "2",
                    "--no-plots", "--bootstrap-reps", REPS, "--out", str(out))
    assert code == 0, err
    with open(out / "episodes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["scenario"] for r in rows} == {m.name for m in list_unseen()}
    assert {int(r["seed"]) for r in rows} == {30000, 30001}
    code, err = cli(capsys, "--unseen", "--scenarios", "3c", "--out", str(tmp_path / "x"))
    assert code == 2 and "not both" in err


@pytest.mark.parametrize("args, expected", [
    (("--policies", "no_such_policy"), "known: constant"),
    (("--scenarios", "atlantis"), "known: 3c"),
    (("--policies", "runs/does_not_exist__x"), "no run folder"),
    (("--seed", "-1"), "--seed must be >= 0"),
    (("--bootstrap-reps", "10"), "--bootstrap-reps must be at least 100"),
])
def test_bad_input_is_a_clear_error(args, expected, tmp_path, capsys):
    code, err = cli(capsys, *args, "--episodes", "2", "--out", str(tmp_path / "out"))
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_trained_run_and_damaged_model(tiny_run, tmp_path, capsys):
    out = tmp_path / "ppo_eval"
    code, err = cli(capsys, "--policies", str(tiny_run), "--scenarios", "3c", "--episodes", "2",
                    "--no-plots", "--bootstrap-reps", REPS, "--out", str(out))
    assert code == 0, err
    with open(out / "summary.csv", newline="") as f:
        assert "ppo" in {r["policy"] for r in csv.DictReader(f)}
    assert "bars_3c_profit.png" not in (out / "report.md").read_text()  # no dead links
    assert not list(out.glob("*.png"))
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_run, damaged)
    (damaged / "best" / "model.zip").write_bytes(b"not a zip file")
    code, err = cli(capsys, "--policies", str(damaged), "--scenarios", "3c", "--episodes", "2",
                    "--out", str(tmp_path / "x"))
    assert code == 2
    # the damaged file is named (agents.run_folder checks a model's files read back)
    assert str(damaged / "best" / "model.zip") in err and "damaged" in err
    assert "Traceback" not in err


def test_rliable_bootstrap_is_seeded_per_policy_and_leaves_numpy_alone():
    from agents.evaluation import stats as eval_stats

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    alone = eval_stats.aggregate_scores({"a": x}, seed=5, reps=200)
    assert (np.random.get_state()[1] == before).all()  # the caller's global state is back
    beside = eval_stats.aggregate_scores({"b": y, "a": x}, seed=5, reps=200)
    assert beside["a"] == alone["a"]  # another policy does not move a policy's interval
    assert eval_stats.aggregate_scores({"a": x}, seed=6, reps=200) != alone
    # a paired difference is the mean of per-seed differences, with its interval around it
    mean, low, high = eval_stats.column_means(x - y, eval_stats.stream_seed(5, "s", "a"), 200)
    assert mean == pytest.approx((x - y).mean(axis=0))
    assert (low <= mean).all() and (mean <= high).all()


def test_volume_shares_against_the_reference_policy():
    """Episode and last-28-day totals as ratios of the reference's means over seeds."""
    from agents.evaluation.behaviour import reference_policy, share_columns

    days = 84
    reference = {"gmv": np.full((2, days), 30.0), "spend": np.full((2, days), 10.0)}
    winding_down = {"gmv": np.full((2, days), 30.0), "spend": np.full((2, days), 10.0)}
    winding_down["spend"][:, -28:] = 2.5  # a quarter of the spend in the last four weeks
    shares = share_columns(winding_down, reference, "static")
    assert shares["gmv_share_vs_static"] == 1.0
    assert shares["spend_share_vs_static"] == pytest.approx((56 * 10 + 28 * 2.5) / (84 * 10))
    assert shares["spend_last28_share_vs_static"] == pytest.approx(0.25)
    assert np.isnan(share_columns(reference, {k: v * 0 for k, v in reference.items()},
                                  "x")["spend_share_vs_x"])
    assert reference_policy(["oracle", "playbook", "static"]) == "static"
    assert reference_policy(["oracle", "playbook"]) == "playbook"
    assert reference_policy(["oracle"]) is None


def test_scores_against_static_and_the_value_of_control():
    from agents.evaluation.scores import _against_static

    rng = np.random.default_rng(0)
    static = rng.normal(100.0, 10.0, 32)
    oracle = static + rng.normal(5.0, 1.0, 32)  # control is worth about 5 per launch
    halfway = static + (oracle - static) / 2
    row = _against_static(halfway, static, oracle, 10000, "3c", "half", 200)
    assert row["value_diff_vs_static"] == pytest.approx(np.mean(halfway - static))
    assert row["value_of_control"] == pytest.approx(np.mean(oracle - static))
    assert row["control_share"] == pytest.approx(0.5)
    assert row["control_share_ci_low"] <= 0.5 <= row["control_share_ci_high"]
    assert _against_static(oracle, static, oracle, 10000, "3c", "o", 200)["control_share"] == \
        pytest.approx(1.0)
    # no measurable value of control: the share is n/a, the difference still reported
    flat = static + rng.normal(0.0, 1.0, 32)
    row = _against_static(halfway, static, flat, 10000, "3c", "half", 200)
    assert np.isnan(row["control_share"]) and np.isfinite(row["value_diff_vs_static"])


def test_the_best_heuristic_is_chosen_on_validation_seeds_and_scored_on_report_seeds(
        tmp_path):
    from agents.evaluation.evaluate import NOT_HEURISTICS, best_heuristic
    from agents.evaluation.rollout import episode_value
    from agents.policies import POLICIES, make_policy
    from agents.training.validation import validation_seeds
    from envs.config import load_scenario

    config = load_scenario("food")
    chosen = best_heuristic(config, 4)
    values = {n: episode_value(config, make_policy(n, config), validation_seeds(4)).mean()
              for n in POLICIES if n not in NOT_HEURISTICS}
    assert chosen == max(values, key=values.get) and chosen not in NOT_HEURISTICS
    out = evaluate(policies=["static"], scenarios=["food"], episodes=4, seed=10000,
                   out_dir=tmp_path, progress=False, tensorboard=False, plots=False,
                   bootstrap_reps=int(REPS), objectives=("profit",))
    with open(out / "summary.csv", newline="") as f:
        rows = {r["policy"]: r for r in csv.DictReader(f)}
    assert chosen in rows  # played on the report seeds even though not asked for
    assert {r["best_heuristic"] for r in rows.values()} == {chosen}
    assert float(rows[chosen]["value_diff_vs_best_heuristic"]) == 0.0
    assert float(rows["static"]["value_diff_vs_static"]) == 0.0
