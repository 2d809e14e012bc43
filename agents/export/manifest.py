"""The manifest written beside an exported graph (``policy.json``, the contracts' fields;
:mod:`agents.serving.manifest` reads and checks it)."""

from __future__ import annotations

import time
from importlib import metadata
from typing import Any

from agents.export.checkpoint import LoadedCheckpoint
from agents.export.errors import ExportError
from agents.run_folder import MODEL_FILE, VECNORMALIZE_FILE, package_versions
from agents.serving.manifest import (
    INPUT_NAME,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    ONNX_NAME,
    OUTPUT_NAME,
    file_sha256,
    mapping_constants,
)
from envs import ENV_ID
from envs.actions import action_dim, action_names
from envs.anchored import (
    StaticSettings,
    anchored_feature_names,
    residual_names,
    settings_as_data,
)
from envs.config import ScenarioConfig, list_scenarios, load_scenario
from envs.history import HISTORY_DAYS_REQUIRED, feature_names
from envs.version import ENV_VERSION

EXTRA_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


def build_manifest(ck: LoadedCheckpoint, parity: dict[str, Any],
                   command: str | None) -> dict[str, Any]:
    """The manifest of the contracts for an exported graph."""
    cfg, trained, info = ck.scenario, ck.policy, ck.run_info
    dim = action_dim(cfg)
    features = feature_names(cfg)
    versions = package_versions()
    for name in EXTRA_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
        "onnx_file": ONNX_NAME,
        "onnx_sha256": None,  # set once the fields are embedded in the graph (exporter.py)
        "input": {"name": INPUT_NAME, "dtype": "float32",
                  "shape": ["batch", len(features)],
                  "meaning": "the env's raw observation (envs/history.py build_features)"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", dim],
                   "meaning": "deterministic action in [-1, 1]"},
        "feature_names": list(features),
        "history_days_required": HISTORY_DAYS_REQUIRED,
        "env_id": ENV_ID, "env_version": ENV_VERSION,
        "action_space": {"type": "Box", "name": cfg.action_space,
                         "action_names": list(action_names(cfg)),
                         "low": -1.0, "high": 1.0, "shape": [dim]},
        "action_mapping": {
            "rule": "new = old * (1 + max_step) ** a; full: plan weights share_range ** a "
                    "(whole_site: share_range ** a - 1 / share_range, 0 at a = -1) "
                    "normalised to shares, refresh creatives if a > 0; then platform limits",
            "target_max_step": cfg.target_max_step, "budget_max_step": cfg.budget_max_step,
            "share_range": cfg.share_range},
        "scenario": cfg.name, "scenario_hash": cfg.hash(), "scenario_config": cfg.to_dict(),
        "normalisation": {"in_graph": True, "obs_mean": trained.obs_mean.tolist(),
                          "obs_var": trained.obs_var.tolist(), "epsilon": trained.epsilon,
                          "clip_obs": trained.clip_obs},
        "policy": {"algorithm": "PPO", "class": type(trained.model.policy).__name__,
                   "deterministic": True, "num_timesteps": trained.num_timesteps},
        # an anchored policy was trained deciding every day, learning or not (its mapping
        # keeps edits under the re-learning rule); a raw one is held while the plan learns
        "acts_while_learning": trained.anchor != "none",
        "source": {"run_dir": str(trained.run_dir),
                   "run_name": info.get("run_name", trained.run_dir.name),
                   "checkpoint": trained.checkpoint, "seed": info.get("seed"),
                   "config_hash": info.get("config_hash"),
                   "model_sha256": file_sha256(trained.source / MODEL_FILE),
                   "vecnormalize_sha256": file_sha256(trained.source / VECNORMALIZE_FILE)},
        "package_versions": versions,
        "parity": parity,
    }


def anchored_manifest(manifest: dict[str, Any], ck: LoadedCheckpoint) -> dict[str, Any]:
    """A raw manifest made an anchored policy's: input and output are the anchored features
    and the residual; the residuals' names, the mapping's constants and the anchors added."""
    cfg = ck.scenario
    features = anchored_feature_names(cfg)
    residuals = residual_names(cfg)
    manifest.update({
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", len(features)],
                  "meaning": "the env's raw observation (envs/history.py build_features), "
                             "then the anchor features (envs/anchored.py anchored_features)"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", len(residuals)],
                   "meaning": "deterministic residual in [-1, 1] on the anchor; "
                              "envs/anchored.py anchored_action maps it to the action"},
        "feature_names": list(features),
    })
    manifest.update({
        "anchor": ck.policy.anchor,
        "residual_names": list(residuals),
        "anchored_mapping": mapping_constants(),
        "anchors": export_anchors(cfg),
    })
    return manifest


def export_anchors(cfg: ScenarioConfig) -> dict[str, dict[str, Any]]:
    """The anchors an anchored policy may be served with: each named scenario's tuned
    ``static`` settings for ``cfg``'s objective (a scenario without them is left out), and
    the run's own scenario's when it is not a named one."""
    from agents.policies.baseline_store import BaselineError, load_static

    anchors: dict[str, StaticSettings] = {}
    for name in list_scenarios():
        try:
            anchors[name] = load_static(load_scenario(name, objective=cfg.objective))
        except BaselineError:
            continue
    if cfg.name not in anchors:
        try:
            anchors[cfg.name] = load_static(cfg)
        except BaselineError:
            pass
    if not anchors:
        raise ExportError(f"no scenario has tuned static settings for the objective "
                          f"{cfg.objective!r} (configs/baselines/): nothing to anchor on")
    return {name: settings_as_data(settings) for name, settings in anchors.items()}
