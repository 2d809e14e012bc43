"""A trained PPO model behind the same ``predict()`` as every other policy, on RAW observations.

``load_trained_policy(run_dir, "best")`` pairs a run's ``model.zip`` with the
``vecnormalize.pkl`` saved next to it (never another checkpoint's statistics) and normalises
observations exactly as training did, so evaluation and export can pass the env's raw
features::

    policy = load_trained_policy("runs/3c__default__0__20250101-120000", "best")
    result = rollout(*policy.playing(policy.scenario), seeds)  # anchored runs: their mapping
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO

from agents.run_folder import (
    MODEL_FILE,
    VECNORMALIZE_FILE,
    RunError,
    damaged_file,
    model_dir,
    read_run_json,
    resolve_run,
)
from envs.config import ScenarioConfig
from envs.config import from_dict as scenario_from_dict
from envs.history import feature_names


class TrainedPolicy:
    """A PPO checkpoint with its frozen observation statistics.

    :ivar model: the SB3 ``PPO`` model (expects normalised observations).
    :ivar scenario: the exact scenario the run trained on.
    :ivar obs_mean: per-feature running mean used for normalisation, shape (F,).
    :ivar obs_var: per-feature running variance, shape (F,).
    :ivar clip_obs: normalised observations are clipped to ``+-clip_obs``.
    :ivar epsilon: added to the variance before the square root.
    """

    name = "ppo"

    def __init__(self, model: PPO, vecnormalize, scenario: ScenarioConfig, run_dir: Path,
                 checkpoint: str, source: Path, anchor: str = "none"):
        self.model = model
        self.anchor = anchor  # "static": residuals on static (agents.policies.anchored)
        self._vecnormalize = vecnormalize
        self.scenario = scenario
        self.config = scenario
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        self.source = source
        self.feature_names = feature_names(scenario)
        self.obs_mean = np.asarray(vecnormalize.obs_rms.mean, dtype=np.float64)
        self.obs_var = np.asarray(vecnormalize.obs_rms.var, dtype=np.float64)
        self.clip_obs = float(vecnormalize.clip_obs)
        self.epsilon = float(vecnormalize.epsilon)

    @property
    def num_timesteps(self) -> int:
        """Env steps the model had trained on when saved."""
        return int(self.model.num_timesteps)

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        """Raw features -> what the network sees (training's ``VecNormalize.normalize_obs``)."""
        return self._vecnormalize.normalize_obs(np.asarray(observation))

    def playing(self, scenario: ScenarioConfig) -> tuple[Any, ScenarioConfig]:
        """The policy to play on ``scenario`` and the config to run it on (the scenario in the
        run's action space): this model, or for an anchored run the model behind the
        scenario's anchor (:class:`agents.policies.anchored.AnchoredPolicy`)."""
        config = scenario.replace(action_space=self.scenario.action_space)
        if self.anchor == "none":
            return self, config
        from agents.policies.anchored import AnchoredPolicy, sb3_predictor

        policy = AnchoredPolicy(sb3_predictor(self.model), config,
                                observation_filter=self.normalize)
        return policy, policy.config

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` on raw observations (F,) or (n, F): actions in [-1, 1]."""
        return self.model.predict(self.normalize(observation), state=state,
                                  episode_start=episode_start, deterministic=deterministic)


def load_trained_policy(run_dir: str | Path, checkpoint: str = "best",
                        device: str = "cpu") -> TrainedPolicy:
    """Load a run's model and its own normalisation statistics.

    :param run_dir: a run folder (with ``run.json``).
    :param checkpoint: ``"best"`` (by validation), ``"final"``, ``"latest"`` (last
        checkpoint) or ``"step_<N>"``.
    :raises agents.run_folder.RunError: not a run, no such complete model, or a model file
        that does not read back (cut short).
    """
    run_dir = resolve_run(run_dir)
    folder = model_dir(run_dir, checkpoint)
    problem = damaged_file(folder)
    if problem is not None:
        raise RunError(f"{problem[0]} is damaged ({problem[1]}); choose another checkpoint "
                       "(best, final, latest or step_<N>)")
    info = read_run_json(run_dir)
    scenario = scenario_from_dict(info["scenario_config"])
    with open(folder / VECNORMALIZE_FILE, "rb") as f:
        vecnormalize = pickle.load(f)  # a run folder's own file (never serving input)
    vecnormalize.training = False
    model = PPO.load(folder / MODEL_FILE, device=device)
    return TrainedPolicy(model, vecnormalize, scenario, run_dir, checkpoint, folder,
                         str(info.get("anchor", "none")))
