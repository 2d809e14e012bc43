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

An **anchored** run (``env.anchor: static``, :mod:`agents.policies.anchored`) exports the same way,
its graph mapping the network's input, the env's observation then the anchor features
(:func:`envs.anchored.anchored_features`, F + 6 wide), to the residual in [-1, 1]; serving
maps the residual with :func:`envs.anchored.anchored_action`. Its manifest says so
(``"anchor": "static"``) and holds the residuals' names, the mapping's constants and the
anchors it may be served with: every named scenario's tuned ``static`` settings for the
run's objective. Parity is checked on the anchored inputs of the policy's own episodes and
of random-residual ones: the residuals against ``model.predict``, and the settings in real
units through :func:`envs.anchored.anchored_action` against
:class:`agents.policies.anchored.AnchoredPolicy`.
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

from agents.policies.ppo import TrainedPolicy, load_trained_policy
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
    mapping_constants,
)
from agents.serving.onnx_policy import OnnxPolicy, ort_session
from envs import ENV_ID
from envs.actions import PLANS, action_dim, action_names
from envs.anchored import (
    StaticSettings,
    anchored_action,
    anchored_feature_names,
    anchored_features,
    residual_names,
    settings_as_data,
)
from envs.config import ScenarioConfig, list_scenarios, load_scenario
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
    def anchored(self) -> bool:
        """The model outputs residuals on static's settings (:mod:`agents.policies.anchored`)."""
        return self.policy.anchor != "none"

    @property
    def scenario(self) -> ScenarioConfig:
        """The run's scenario (an anchored run's in the ``full`` space it acts in)."""
        if self.anchored:
            return self.policy.scenario.replace(action_space="full")
        return self.policy.scenario

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph's input features: the env's (anchored: then the anchor features)."""
        if self.anchored:
            return anchored_feature_names(self.scenario)
        return feature_names(self.scenario)

    @property
    def output_dim(self) -> int:
        """The graph's output width: the action's (anchored: the residual's)."""
        if self.anchored:
            return len(residual_names(self.scenario))
        return action_dim(self.scenario)

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
    if policy.anchor not in ("none", "static"):
        raise ExportError(f"{policy.run_dir}: anchor {policy.anchor!r} is not exportable "
                          "(none or static)")
    if info.get("env_version", ENV_VERSION) != ENV_VERSION:
        raise ExportError(f"{policy.run_dir} was trained on env version {info['env_version']}, "
                          f"this code is version {ENV_VERSION}")
    loaded = LoadedCheckpoint(policy, info)
    _check_spaces(loaded)
    return loaded


def _check_spaces(ck: LoadedCheckpoint) -> None:
    model = ck.policy.model
    obs_shape = model.observation_space.shape
    dim = ck.output_dim
    features = ck.input_names
    if obs_shape != (len(features),):
        raise ExportError(f"model observes {obs_shape}, the env has {len(features)} "
                          "features" + (" with the anchor's" if ck.anchored else ""))
    space = model.action_space
    if space.shape != (dim,) or not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        what = "anchored residual" if ck.anchored else "scenario's action space"
        raise ExportError(f"model acts in {space}, the {what} is Box(-1, 1, ({dim},))")
    if not isinstance(model.policy.action_dist, DiagGaussianDistribution):
        raise ExportError(f"{type(model.policy.action_dist).__name__} policies are not "
                          "supported (a diagonal Gaussian MlpPolicy is); a recurrent policy "
                          "would need its state as an explicit graph input and output")
    if model.policy.squash_output:
        raise ExportError("squashed-output policies are not supported")


class FrozenPolicy(torch.nn.Module):
    """Raw observation -> deterministic action in [-1, 1] (what gets exported; anchored:
    the anchored features -> the residual)."""

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
    example = torch.zeros((2, len(ck.input_names)), dtype=torch.float32)
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


@dataclass
class AnchoredInputs:
    """An anchored policy's recorded inputs: what its network saw, what the mapping reads."""

    features: np.ndarray  # (n, F + 6) float32: envs.anchored.anchored_features
    observations: np.ndarray  # (n, F) the env's raw observations
    histories: np.ndarray  # (n, days, columns) the dashboards (envs.history.COLUMNS)
    launch_budgets: np.ndarray  # (n,) CNY


def record_anchored_inputs(ck: LoadedCheckpoint) -> tuple[AnchoredInputs, Any]:
    """Anchored inputs of whole episodes on report seeds: the policy's own (played through
    the mapping by :class:`agents.policies.anchored.AnchoredPolicy`), then random residuals. Returns
    them and the policy (the reference of the real-unit parity)."""
    cfg = ck.scenario
    policy, _ = ck.policy.playing(cfg)
    rng = np.random.default_rng(0)
    parts: dict[str, list[np.ndarray]] = {"features": [], "observations": [], "histories": [],
                                          "launch_budgets": []}
    for seeds, own in ((PARITY_SEEDS, True), (RANDOM_SEEDS, False)):
        sim = Simulator(cfg, n=len(seeds))
        obs = sim.reset(seeds=list(seeds))
        launch = sim.params.launch_budget_cny.copy()
        while True:
            history = sim.history.copy()
            parts["features"].append(anchored_features(cfg, policy.anchor, obs, history,
                                                       launch))
            parts["observations"].append(obs)
            parts["histories"].append(history)
            parts["launch_budgets"].append(launch)
            if own:
                policy.see_dashboard(history, launch)
                action = policy.predict(obs)[0]
            else:
                residual = rng.uniform(-1.0, 1.0, (len(seeds), ck.output_dim))
                action = anchored_action(cfg, policy.anchor, residual, obs, history, launch)
            obs, _, done, _ = sim.step(action)
            if done:
                break
    return AnchoredInputs(**{k: np.concatenate(v) for k, v in parts.items()}), policy


def check_anchored_parity(ck: LoadedCheckpoint, onnx_path: Path, inputs: AnchoredInputs,
                          policy: Any) -> dict[str, Any]:
    """An anchored graph against the model: its residuals against ``model.predict`` on the
    recorded inputs, and the settings they map to (:func:`envs.anchored.anchored_action`,
    what serving does) against ``policy``'s (:class:`agents.policies.anchored.AnchoredPolicy`), in
    real units; :class:`ExportError` beyond tolerance."""
    cfg = ck.scenario
    x = inputs.features
    reference = np.asarray(ck.predict(x), dtype=np.float64)
    session = ort_session(onnx_path)
    exported = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0].astype(np.float64)
    if exported.shape != reference.shape:
        raise ExportError(f"parity: graph returns {exported.shape}, model {reference.shape}")
    residual_diff = np.abs(exported - reference)
    obs, hist, launch = inputs.observations, inputs.histories, inputs.launch_budgets
    policy.see_dashboard(hist, launch)
    ref_real = real_units(cfg, obs, policy.predict(obs)[0])
    exp_real = real_units(cfg, obs, anchored_action(cfg, policy.anchor, exported, obs, hist,
                                                    launch))
    real_diff = np.abs(exp_real - ref_real) / np.maximum(np.abs(ref_real), 1e-12)
    result = {
        "observations": int(x.shape[0]), "policy_seeds": list(PARITY_SEEDS),
        "random_action_seeds": list(RANDOM_SEEDS),
        "max_abs_action_diff": float(residual_diff.max()),
        "max_rel_real_diff": float(real_diff.max()),
        "tolerances": {"action_abs": ACTION_ATOL, "real_rel": REAL_RTOL},
        "compared": "residuals (graph vs model.predict on the anchored inputs); settings "
                    "mapped by envs.anchored.anchored_action vs "
                    "agents.policies.anchored.AnchoredPolicy",
        "anchor_scenario": cfg.name,
    }
    if result["max_abs_action_diff"] > ACTION_ATOL or result["max_rel_real_diff"] > REAL_RTOL:
        i = int(np.unravel_index(np.argmax(residual_diff), residual_diff.shape)[0])
        raise ExportError(
            f"parity check failed on {x.shape[0]} anchored inputs: max |residual diff| "
            f"{result['max_abs_action_diff']:.3g} (tolerance {ACTION_ATOL}), max relative "
            f"real-unit diff {result['max_rel_real_diff']:.3g} (tolerance {REAL_RTOL}); "
            f"worst row {i}: graph {exported[i].tolist()} vs model {reference[i].tolist()}")
    return result


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
        if ck.anchored:
            parity = check_anchored_parity(ck, tmp, *record_anchored_inputs(ck))
            manifest = anchored_manifest(build_manifest(ck, tmp, parity, command), ck)
        else:
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
    anchored = manifest.get("anchor", "none") != "none"
    what = "residual" if anchored else "action"
    text = (f"exported {src['run_name']}:{src['checkpoint']} -> {out / ONNX_NAME} "
            f"(+ {MANIFEST_NAME})\nparity on {p['observations']} observations: max |{what} "
            f"diff| {p['max_abs_action_diff']:.2e} (<= {ACTION_ATOL:g}), max relative "
            f"real-unit diff {p['max_rel_real_diff']:.2e} (<= {REAL_RTOL:g})")
    if anchored:
        text += (f"\nanchored on {manifest['anchor']}'s settings; anchors for: "
                 f"{', '.join(manifest['anchors'])}")
    return text
