"""The shipped default policy still matches the environment and answers on a real report."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from envs.config import from_dict
from envs.history import FEATURE_NAMES, HISTORY_DAYS_REQUIRED, feature_names
from envs.version import ENV_VERSION

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "default_3c"


def test_shipped_policy_matches_current_env():
    manifest = json.loads((SHIPPED / "policy.json").read_text(encoding="utf-8"))
    assert manifest["env_version"] == ENV_VERSION, "retrain and re-export models/default_3c"
    scenario = from_dict(manifest["scenario_config"])  # every key still a known field
    assert scenario.action_space == "full"
    # the env's features for the policy's scenario (whole-site adds its share, last)
    assert manifest["feature_names"] == list(feature_names(scenario))
    assert manifest["feature_names"][:len(FEATURE_NAMES)] == list(FEATURE_NAMES)
    assert manifest["history_days_required"] == HISTORY_DAYS_REQUIRED
    digest = hashlib.sha256((SHIPPED / "policy.onnx").read_bytes()).hexdigest()
    assert manifest["onnx_sha256"] == digest


def test_shipped_policy_acts_like_a_trained_policy_in_the_env():
    import onnxruntime as ort

    from envs.config import load_scenario
    from envs.simulator import Simulator

    session = ort.InferenceSession(str(SHIPPED / "policy.onnx"),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    cfg = load_scenario("3c", action_space="full")
    sim = Simulator(cfg, n=8)
    obs = sim.reset(seeds=list(range(10000, 10008)))
    while True:
        (action,) = session.run(None, {name: obs.astype(np.float32)})
        assert np.all(np.abs(action) <= 1.0)
        obs, _, done, info = sim.step(action)
        if done:
            break
    # A trained policy, not noise: it ends the launch at a profit on most report seeds.
    assert np.mean(info["episode_metrics"]["profit"] > 0) >= 0.5


def test_recommend_uses_the_shipped_policy_by_default():
    done = subprocess.run([sys.executable, "scripts/recommend.py", "--history",
                           "examples/report_en.csv", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    manifest = json.loads((SHIPPED / "policy.json").read_text(encoding="utf-8"))
    source = manifest["source"]
    assert answer["policy"]["name"] == f"{source['run_name']}:{source['checkpoint']}"
    names = manifest["action_space"]["action_names"]  # full, with whole-site's weight
    assert len(answer["policy"]["action"]) == len(names) and names[-2] == "weight_whole_site"
    assert set(answer["policy"]["recommended"]) >= {"target_roi", "budget_cny"}
