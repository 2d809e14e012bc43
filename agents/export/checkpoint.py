"""The checkpoint to export: a run's model with its own normalisation statistics, checked to
be exportable (a diagonal Gaussian MLP policy acting in Box(-1, 1), on this env version)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.distributions import DiagGaussianDistribution

from agents.export.errors import ExportError
from agents.policies.ppo import TrainedPolicy, load_trained_policy
from agents.run_folder import RunError, read_run_json
from envs.actions import action_dim
from envs.anchored import anchored_feature_names, residual_names
from envs.config import ScenarioConfig
from envs.history import feature_names
from envs.version import ENV_VERSION


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
