"""Export: one ONNX graph that acts exactly like the trained model, with a checked manifest."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.export.checkpoint import load_checkpoint
from agents.export.errors import ExportError
from agents.export.exporter import export_run
from agents.export.parity import ACTION_ATOL, REAL_RTOL
from agents.serving.manifest import REQUIRED_KEYS, file_sha256
from agents.serving.onnx_policy import OnnxPolicy
from envs.history import FEATURE_NAMES, HISTORY_DAYS_REQUIRED
from envs.simulator import Simulator
from envs.version import ENV_VERSION

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # needs the session's tiny trained run


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    """The tiny run's best checkpoint exported into a private folder."""
    return export_run(tiny_run, "best", out_dir=tmp_path_factory.mktemp("export"))


def fresh_observations(cfg, seeds=(31000, 31001, 31002), days=40) -> np.ndarray:
    """Observations the parity check never saw: other seeds, random actions."""
    sim = Simulator(cfg, n=len(seeds))
    obs = sim.reset(seeds=list(seeds))
    rng = np.random.default_rng(5)
    out = [obs]
    for _ in range(days):
        obs, _, _, _ = sim.step(rng.uniform(-1, 1, (len(seeds), sim.action_dim)))
        out.append(obs)
    return np.concatenate(out)


def test_manifest_holds_the_contract_fields(exported, tiny_run):
    manifest = json.loads((exported / "policy.json").read_text())
    assert set(REQUIRED_KEYS) <= set(manifest)
    assert manifest["onnx_sha256"] == file_sha256(exported / "policy.onnx")
    # the default scenario's features: the first version's, then whole-site's share
    assert manifest["feature_names"] == [*FEATURE_NAMES, "share_whole_site"]
    assert manifest["history_days_required"] == HISTORY_DAYS_REQUIRED
    assert manifest["env_version"] == ENV_VERSION
    # the tiny run uses the default config: the full action space (7 with whole-site)
    assert manifest["action_space"]["shape"] == [7] and manifest["action_space"]["low"] == -1.0
    assert manifest["source"]["checkpoint"] == "best"
    assert manifest["source"]["run_dir"] == str(tiny_run)
    norm = manifest["normalisation"]
    assert len(norm["obs_mean"]) == len(FEATURE_NAMES) + 1 and norm["clip_obs"] > 0
    assert {"torch", "onnxruntime", "stable_baselines3"} <= set(manifest["package_versions"])
    parity = manifest["parity"]
    assert parity["observations"] >= 500
    assert parity["max_abs_action_diff"] <= ACTION_ATOL
    assert parity["max_rel_real_diff"] <= REAL_RTOL


def test_graph_matches_model_predict_on_unseen_observations_any_batch(exported, tiny_run):
    ck = load_checkpoint(tiny_run, "best")
    policy = OnnxPolicy(exported / "policy.onnx")
    obs = fresh_observations(ck.scenario)
    reference = ck.predict(obs)
    for batch in (1, 7, len(obs)):  # dynamic batch axis
        got = np.concatenate([policy.predict(obs[i:i + batch])[0]
                              for i in range(0, len(obs), batch)])
        assert np.abs(got - reference).max() <= ACTION_ATOL
    assert policy.predict(obs[0])[0].shape == (7,)  # a single observation, full actions
    # the normalisation is inside the graph: the raw observation is the input
    assert not np.allclose(reference, ck.policy.model.predict(obs, deterministic=True)[0])


def test_every_checkpoint_exports_to_the_run_folder(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    step = sorted((run / "checkpoints").iterdir())[0].name
    for checkpoint in ("final", step):
        out = export_run(run, checkpoint)
        assert out == run / "export"
        manifest = json.loads((out / "policy.json").read_text())
        assert manifest["source"]["checkpoint"] == checkpoint


def assert_spoilt_graph_fails_and_replaces_nothing(monkeypatch, run: Path, out: Path,
                                                   message: str) -> None:
    """With every graph exported from now on off its model beyond the tolerance, exporting
    ``run`` into ``out`` raises :class:`ExportError` (matching ``message``) and leaves the
    folder's files as they were."""
    from agents.export.graph import FrozenPolicy

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    forward = FrozenPolicy.forward
    monkeypatch.setattr(FrozenPolicy, "forward",
                        lambda self, obs: forward(self, obs) * 0.99 + 1e-4)
    with pytest.raises(ExportError, match=message):
        export_run(run, "best", out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_parity_failure_fails_loudly_and_replaces_nothing(exported, tiny_run, monkeypatch,
                                                          capsys):
    assert_spoilt_graph_fails_and_replaces_nothing(monkeypatch, tiny_run, exported,
                                                   "parity check failed")

    assert load_export_cli().main(["--run", str(tiny_run), "--out", str(exported)]) == 2
    assert "parity check failed" in capsys.readouterr().err


def load_export_cli():
    spec = importlib.util.spec_from_file_location("export_cli", ROOT / "scripts" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "step_999999"], "no complete 'step_999999' model"),
    (["--checkpoint", "worst"], "use 'best', 'final'"),
])
def test_bad_checkpoint_exits_2(tiny_run, args, message, capsys):
    assert load_export_cli().main(["--run", str(tiny_run), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_run_exits_2_without_traceback():
    done = subprocess.run([sys.executable, "scripts/export.py", "--run", "no/such/run"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert "no run folder" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------ anchored
@pytest.fixture(scope="module")
def exported_anchored(tiny_anchored_run, tmp_path_factory) -> Path:
    """The tiny anchored run's best checkpoint exported into a private folder."""
    return export_run(tiny_anchored_run, "best", out_dir=tmp_path_factory.mktemp("anchored"))


def test_anchored_run_exports_residuals_with_its_anchors(exported_anchored, exported):
    from agents.policies.baseline_store import BaselineError, load_static
    from agents.serving.manifest import mapping_constants
    from envs.anchored import anchored_feature_names, residual_names, settings_as_data
    from envs.config import list_scenarios, load_scenario

    manifest = json.loads((exported_anchored / "policy.json").read_text())
    cfg = load_scenario("3c", action_space="full")
    assert manifest["anchor"] == "static"
    assert manifest["feature_names"] == list(anchored_feature_names(cfg))
    assert manifest["input"]["shape"] == ["batch", len(FEATURE_NAMES) + 1 + 6]
    assert manifest["residual_names"] == list(residual_names(cfg))
    assert manifest["output"]["shape"] == ["batch", len(residual_names(cfg))]
    assert manifest["action_space"]["shape"] == [7]  # what the mapping yields: the env's
    assert manifest["anchored_mapping"] == mapping_constants()
    assert len(manifest["normalisation"]["obs_mean"]) == len(manifest["feature_names"])
    expected = {}
    for name in list_scenarios():  # every named scenario with tuned static settings
        try:
            static = load_static(load_scenario(name, objective="profit"))
            expected[name] = settings_as_data(static)
        except BaselineError:
            continue
    assert manifest["anchors"] == expected and "3c" in expected
    parity = manifest["parity"]
    assert parity["observations"] >= 500 and parity["anchor_scenario"] == "3c"
    assert parity["max_abs_action_diff"] <= ACTION_ATOL
    assert parity["max_rel_real_diff"] <= REAL_RTOL
    policy = OnnxPolicy(exported_anchored / "policy.onnx")
    assert policy.anchored and policy.anchor_name == "3c" and policy.output_dim == 6
    # a raw export says nothing of anchors
    raw = json.loads((exported / "policy.json").read_text())
    assert not {"anchor", "anchors", "residual_names", "anchored_mapping"} & set(raw)


def test_anchored_graph_matches_the_model_on_unseen_inputs(exported_anchored,
                                                           tiny_anchored_run):
    from agents.policies.anchored import AnchoredPolicy
    from envs.anchored import anchored_action

    ck = load_checkpoint(tiny_anchored_run, "best")
    played, cfg = ck.policy.playing(ck.scenario)
    assert isinstance(played, AnchoredPolicy)
    policy = OnnxPolicy(exported_anchored / "policy.onnx")
    sim = Simulator(cfg, n=3)
    obs = sim.reset(seeds=[31000, 31001, 31002])
    launch = sim.params.launch_budget_cny
    rng = np.random.default_rng(5)
    for _ in range(30):
        history = sim.history.copy()
        played.see_dashboard(history, launch)
        policy.see_dashboard(history, launch)
        mine = policy.predict(obs)[0]
        assert np.abs(policy.residual - played.residuals(obs)).max() <= ACTION_ATOL
        np.testing.assert_allclose(mine, played.predict(obs)[0], atol=1e-5)
        noise = rng.uniform(-1, 1, (3, 6))  # move away from the policy's own states
        obs, _, _, _ = sim.step(anchored_action(cfg, played.anchor, noise, obs, history,
                                                launch))


def test_anchored_parity_failure_fails_loudly(exported_anchored, tiny_anchored_run,
                                              monkeypatch):
    assert_spoilt_graph_fails_and_replaces_nothing(
        monkeypatch, tiny_anchored_run, exported_anchored,
        "parity check failed on .* anchored inputs")
