"""Export a run's checkpoint as one frozen ONNX graph plus its manifest, with a parity check.

``runs/<run>/export/policy.onnx`` maps the env's raw observation (float32, dynamic batch
axis) to the deterministic action in [-1, 1], as ``model.predict`` computes it on a
``VecNormalize``-d observation:

1. normalise with the checkpoint's statistics, in float64 as ``VecNormalize`` does:
   ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, then float32;
2. the policy network's mean action (the deterministic action of a Gaussian policy);
3. clip to [-1, 1], as SB3's ``predict`` does for a Box action space.

``policy.json`` is the manifest of the contracts (:mod:`agents.serving.manifest`). Every
export checks parity against ``model.predict`` on recorded observations (the policy's own
episodes and random-action episodes on report seeds): the [-1, 1] action within
:data:`ACTION_ATOL` absolute, the settings in real units (target, budget, plan shares)
within :data:`REAL_RTOL` relative. A failure raises :class:`ExportError` and replaces
nothing in ``export/``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution

from agents.ppo_policy import TrainedPolicy, load_trained_policy
from agents.run_folder import (
    MODEL_FILE,
    VECNORMALIZE_FILE,
    RunError,
    package_versions,
    read_run_json,
    write_json_atomic,
)
from agents.serving.errors import ServingError
from agents.serving.guards import Settings, raw_settings
from agents.serving.manifest import (
    INPUT_NAME,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    ONNX_NAME,
    OUTPUT_NAME,
    file_sha256,
)
from agents.serving.onnx_policy import OnnxPolicy, ort_session
from envs import ENV_ID
from envs.actions import PLANS, action_dim, action_names
from envs.config import ScenarioConfig
from envs.history import HISTORY_DAYS_REQUIRED, decode_features, feature_names
from envs.simulator import Simulator
from envs.version import ENV_VERSION

ACTION_ATOL = 1e-5  # contracts: the [-1, 1] action, absolute
REAL_RTOL = 1e-6  # contracts: target, budget (and plan shares), relative
PARITY_SEEDS = tuple(range(10000, 10008))  # report seeds (contracts): the policy's episodes
RANDOM_SEEDS = tuple(range(10008, 10012))  # report seeds: random-action episodes
EXPORT_DIR = "export"
EXTRA_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


class ExportError(RuntimeError):
    """The run cannot be exported, or the exported graph does not act like the model."""


@dataclass
class LoadedCheckpoint:
    """A run's checkpoint (model + its own normalisation statistics) and the run's record."""

    policy: TrainedPolicy
    run_info: dict[str, Any]

    @property
    def scenario(self) -> ScenarioConfig:
        return self.policy.scenario

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The reference: ``model.predict`` on the normalised observation (deterministic)."""
        return self.policy.predict(obs, deterministic=True)[0]


def load_checkpoint(run: str | Path, checkpoint: str = "best") -> LoadedCheckpoint:
    """Load ``model.zip`` + ``vecnormalize.pkl`` of a run's ``best``/``final``/``step_N``."""
    try:
        policy = load_trained_policy(run, checkpoint)
        info = read_run_json(policy.run_dir)
    except RunError as exc:
        raise ExportError(str(exc)) from None
    if policy.anchor != "none":
        raise ExportError(f"{policy.run_dir} outputs residuals on static's settings "
                          "(env.anchor: static); exporting and serving anchored policies is "
                          "not built yet")
    if info.get("env_version", ENV_VERSION) != ENV_VERSION:
        raise ExportError(f"{policy.run_dir} was trained on env version {info['env_version']}, "
                          f"this code is version {ENV_VERSION}")
    loaded = LoadedCheckpoint(policy, info)
    _check_spaces(loaded)
    return loaded


def _check_spaces(ck: LoadedCheckpoint) -> None:
    model = ck.policy.model
    obs_shape = model.observation_space.shape
    dim = action_dim(ck.scenario)
    features = feature_names(ck.scenario)
    if obs_shape != (len(features),):
        raise ExportError(f"model observes {obs_shape}, the env has {len(features)} "
                          "features")
    space = model.action_space
    if space.shape != (dim,) or not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        raise ExportError(f"model acts in {space}, the scenario's action space is "
                          f"Box(-1, 1, ({dim},))")
    if not isinstance(model.policy.action_dist, DiagGaussianDistribution):
        raise ExportError(f"{type(model.policy.action_dist).__name__} policies are not "
                          "supported (a diagonal Gaussian MlpPolicy is); a recurrent policy "
                          "would need its state as an explicit graph input and output")
    if model.policy.squash_output:
        raise ExportError("squashed-output policies are not supported")


class FrozenPolicy(torch.nn.Module):
    """Raw observation -> deterministic action in [-1, 1] (what gets exported)."""

    def __init__(self, trained: TrainedPolicy):
        super().__init__()
        self.policy = trained.model.policy
        self.register_buffer("obs_mean", torch.as_tensor(trained.obs_mean, dtype=torch.float64))
        self.register_buffer("obs_std", torch.as_tensor(
            np.sqrt(trained.obs_var + trained.epsilon), dtype=torch.float64))
        self.clip_obs = trained.clip_obs

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        x = (observation.to(torch.float64) - self.obs_mean) / self.obs_std
        x = torch.clamp(x, -self.clip_obs, self.clip_obs).to(torch.float32)
        features = self.policy.extract_features(x, self.policy.pi_features_extractor)
        latent = self.policy.mlp_extractor.forward_actor(features)
        return torch.clamp(self.policy.action_net(latent), -1.0, 1.0)


def write_onnx(ck: LoadedCheckpoint, path: Path) -> None:
    """Export :class:`FrozenPolicy` with a dynamic batch axis to one self-contained file."""
    module = FrozenPolicy(ck.policy).eval()
    example = torch.zeros((2, len(ck.policy.feature_names)), dtype=torch.float32)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations
        torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_shapes=({0: torch.export.Dim("batch")},),
                          dynamo=True, external_data=False, verbose=False)


# ------------------------------------------------------------------------------- parity
def record_observations(ck: LoadedCheckpoint) -> np.ndarray:
    """Observations of whole episodes on report seeds: the policy's own, then random
    actions (so parity is checked beyond the policy's own states). Shape (n, F)."""
    out = []
    rng = np.random.default_rng(0)
    for seeds, own in ((PARITY_SEEDS, True), (RANDOM_SEEDS, False)):
        sim = Simulator(ck.scenario, n=len(seeds))
        obs = sim.reset(seeds=list(seeds))
        while True:
            out.append(obs)
            action = (ck.predict(obs) if own
                      else rng.uniform(-1.0, 1.0, (len(seeds), sim.action_dim)))
            obs, _, done, _ = sim.step(action)
            if done:
                break
    return np.concatenate(out).astype(np.float32)


def real_units(cfg: ScenarioConfig, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The settings an action asks for, in real units: target, budget (from a 10,000-CNY
    budget) and, in ``full``, the plan shares. Shape (n, k)."""
    n = obs.shape[0]
    named = decode_features(obs)
    target = np.maximum(named["target_roi"], 0.01)
    shares = np.stack([named[f"share_{p}"] for p in PLANS], axis=1)
    s = raw_settings(cfg, action, Settings(target, np.full(n, 1e4), shares,
                                           np.zeros(n, dtype=bool)))
    cols = [s.target_roi, s.budget_cny]
    if cfg.action_space == "full":
        cols += list(s.shares.T)
    return np.stack(cols, axis=1)


def check_parity(ck: LoadedCheckpoint, onnx_path: Path, obs: np.ndarray) -> dict[str, Any]:
    """Compare the graph with ``model.predict``; :class:`ExportError` beyond tolerance."""
    reference = np.asarray(ck.predict(obs), dtype=np.float64)
    session = ort_session(onnx_path)
    exported = session.run([OUTPUT_NAME], {INPUT_NAME: obs})[0].astype(np.float64)
    if exported.shape != reference.shape:
        raise ExportError(f"parity: graph returns {exported.shape}, model {reference.shape}")
    action_diff = np.abs(exported - reference)
    ref_real = real_units(ck.scenario, obs, reference)
    exp_real = real_units(ck.scenario, obs, exported)
    real_diff = np.abs(exp_real - ref_real) / np.maximum(np.abs(ref_real), 1e-12)
    result = {
        "observations": int(obs.shape[0]), "policy_seeds": list(PARITY_SEEDS),
        "random_action_seeds": list(RANDOM_SEEDS),
        "max_abs_action_diff": float(action_diff.max()),
        "max_rel_real_diff": float(real_diff.max()),
        "tolerances": {"action_abs": ACTION_ATOL, "real_rel": REAL_RTOL},
    }
    if result["max_abs_action_diff"] > ACTION_ATOL or result["max_rel_real_diff"] > REAL_RTOL:
        i = int(np.unravel_index(np.argmax(action_diff), action_diff.shape)[0])
        raise ExportError(
            f"parity check failed on {obs.shape[0]} observations: max |action diff| "
            f"{result['max_abs_action_diff']:.3g} (tolerance {ACTION_ATOL}), max relative "
            f"real-unit diff {result['max_rel_real_diff']:.3g} (tolerance {REAL_RTOL}); "
            f"worst row {i}: graph {exported[i].tolist()} vs model {reference[i].tolist()}")
    return result


# ------------------------------------------------------------------------------ manifest
def build_manifest(ck: LoadedCheckpoint, onnx_path: Path, parity: dict[str, Any],
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
        "onnx_file": ONNX_NAME, "onnx_sha256": file_sha256(onnx_path),
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
        "acts_while_learning": False,
        "source": {"run_dir": str(trained.run_dir),
                   "run_name": info.get("run_name", trained.run_dir.name),
                   "checkpoint": trained.checkpoint, "seed": info.get("seed"),
                   "config_hash": info.get("config_hash"),
                   "model_sha256": file_sha256(trained.source / MODEL_FILE),
                   "vecnormalize_sha256": file_sha256(trained.source / VECNORMALIZE_FILE)},
        "package_versions": versions,
        "parity": parity,
    }


def export_run(run: str | Path, checkpoint: str = "best", out_dir: str | Path | None = None,
               command: str | None = None) -> Path:
    """Export a run's checkpoint to ``<run>/export/`` (or ``out_dir``) and return the folder.

    :raises ExportError: no such run/checkpoint, an unsupported policy, or parity failed
        (then nothing in the export folder is replaced).
    """
    ck = load_checkpoint(run, checkpoint)
    out = Path(out_dir) if out_dir is not None else ck.policy.run_dir / EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ONNX_NAME}.tmp-{os.getpid()}"
    try:
        write_onnx(ck, tmp)
        parity = check_parity(ck, tmp, record_observations(ck))
        manifest = build_manifest(ck, tmp, parity, command)
        os.replace(tmp, out / ONNX_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomic(out / MANIFEST_NAME, manifest)
    try:
        OnnxPolicy(out / ONNX_NAME)  # what recommend will load: verify it end to end
    except ServingError as exc:
        raise ExportError(f"the exported policy does not load: {exc}") from None
    return out


def describe_export(out: Path) -> str:
    """A short summary of an export (for the command line)."""
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    p, src = manifest["parity"], manifest["source"]
    return (f"exported {src['run_name']}:{src['checkpoint']} -> {out / ONNX_NAME} "
            f"(+ {MANIFEST_NAME})\nparity on {p['observations']} observations: max |action "
            f"diff| {p['max_abs_action_diff']:.2e} (<= {ACTION_ATOL:g}), max relative "
            f"real-unit diff {p['max_rel_real_diff']:.2e} (<= {REAL_RTOL:g})")
