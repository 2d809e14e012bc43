"""The shipped policies (one per objective, trained across the scenarios and anchored on each
scenario's static settings) still match the environment, play like trained policies, and are
what recommend uses."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.anchored import anchored_feature_names, residual_names
from envs.config import from_dict, list_scenarios
from envs.history import HISTORY_DAYS_REQUIRED
from envs.version import ENV_VERSION

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = ("profit", "gmv_floor")


def shipped(objective: str) -> Path:
    return ROOT / "models" / objective


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_shipped_policy_matches_current_env(objective):
    folder = shipped(objective)
    manifest = json.loads((folder / "policy.json").read_text(encoding="utf-8"))
    assert manifest["env_version"] == ENV_VERSION, f"retrain and re-export models/{objective}"
    scenario = from_dict(manifest["scenario_config"])  # every key still a known field
    assert scenario.objective == objective and scenario.action_space == "full"
    assert manifest["anchor"] == "static"
    assert manifest["feature_names"] == list(anchored_feature_names(scenario))
    assert manifest["residual_names"] == list(residual_names(scenario))
    assert manifest["history_days_required"] == HISTORY_DAYS_REQUIRED
    assert sorted(manifest["anchors"]) == sorted(list_scenarios())  # one policy, every scenario
    assert manifest["source"]["run_name"].startswith("mix")  # the cross-scenario run
    digest = hashlib.sha256((folder / "policy.onnx").read_bytes()).hexdigest()
    assert manifest["onnx_sha256"] == digest


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_shipped_policy_plays_at_least_as_well_as_static(objective):
    """Played through the serving path (ONNX, the anchored mapping) in the env on report
    seeds, it earns within 2% of static or more: a trained residual, not noise (noise that
    size costs tens of percent, tests/test_anchored.py)."""
    from agents.evaluation.rollout import episode_value
    from agents.policies import make_policy
    from agents.serving.onnx_policy import OnnxPolicy
    from envs.config import load_scenario

    policy = OnnxPolicy(shipped(objective) / "policy.onnx")
    seeds = list(range(10000, 10016))
    for name in ("3c", "food"):
        policy.select_anchor(name)
        config = load_scenario(name, objective=objective, action_space="full")
        mine = episode_value(config, policy, seeds).mean()
        static = episode_value(config, make_policy("static", config), seeds).mean()
        assert mine >= static - 0.02 * abs(static), (name, mine, static)


def test_recommend_uses_the_shipped_profit_policy_by_default():
    for extra, objective in (([], "profit"), (["--objective", "gmv_floor"], "gmv_floor")):
        done = subprocess.run([sys.executable, "scripts/recommend.py", "--history",
                               "examples/report_en.csv", "--json", *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        manifest = json.loads((shipped(objective) / "policy.json").read_text(encoding="utf-8"))
        source = manifest["source"]
        assert answer["policy"]["name"] == f"{source['run_name']}:{source['checkpoint']}"
        assert len(answer["policy"]["residual"]) == len(manifest["residual_names"])
        assert set(answer["policy"]["recommended"]) >= {"target_roi", "budget_cny"}
        assert np.isfinite(answer["policy"]["recommended"]["target_roi"])


def test_objective_and_policy_are_not_given_together():
    done = subprocess.run([sys.executable, "scripts/recommend.py", "--history",
                           "examples/report_en.csv", "--objective", "profit", "--policy",
                           "playbook"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--objective" in done.stderr
    assert "Traceback" not in done.stderr
