"""A native batched env behind stable-baselines3's ``VecEnv`` interface.

``n_envs`` accounts live in one :class:`envs.simulator.Simulator`, so a step is a handful of
NumPy operations over the batch instead of ``n_envs`` Python envs. It runs the same model code
as the Gymnasium env. All accounts start and end their episodes together (episodes have a
fixed length), and reset automatically, as SB3 expects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from envs.actions import action_names
from envs.config import ScenarioConfig, load_scenario
from envs.history import OBS_BOUND, feature_names
from envs.simulator import INFO_KEYS, ScenarioMix, Simulator


def _batch_rng(seed: int | None) -> np.random.Generator:
    """The batch's generator; its stream differs from ``default_rng(seed)`` (per-account)."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0xBA7C4]))


class InProcessVecEnv(VecEnv):
    """SB3's ``VecEnv`` plumbing for envs that step every account in this process, in one
    batch: attributes and methods are the one env's, nothing is wrapped, nothing to close."""

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


def fill_episode_end(infos: list[dict[str, Any]], obs: np.ndarray, returns: list[float],
                     length: int, metrics: dict[str, list], terms: dict[str, list]) -> None:
    """The infos SB3 and the training callbacks read when every account's episode ends:
    ``terminal_observation``, truncation, ``episode`` (return, length), ``episode_metrics``
    and ``episode_reward_terms`` (per-account lists of each metric and term)."""
    for i, info in enumerate(infos):
        info["terminal_observation"] = obs[i]
        info["TimeLimit.truncated"] = True
        info["episode"] = {"r": returns[i], "l": length}
        info["episode_metrics"] = {k: v[i] for k, v in metrics.items()}
        info["episode_reward_terms"] = {k: v[i] for k, v in terms.items()}


class QianchuanVecEnv(InProcessVecEnv):
    """``n_envs`` simulated accounts of one scenario as one SB3 ``VecEnv``.

    :param scenario: preset name, YAML path or config; or a list of them, for one batch of
        accounts split across scenarios (cross-scenario training; see
        :class:`envs.simulator.ScenarioMix`).
    :param n_envs: number of accounts.
    :param seed: seed of the batch's generator (derived through ``SeedSequence``, so a
        batch never replays the per-account episodes of report or validation seeds).
    :param full_info: per-day info dicts for every account (slow at large ``n_envs``); by
        default infos are empty except at episode end (``episode``, ``episode_metrics``,
        ``terminal_observation``).
    """

    def __init__(self, scenario: str | ScenarioConfig | list = "3c", n_envs: int = 8,
                 seed: int | None = None, full_info: bool = False, **overrides: Any):
        names = scenario if isinstance(scenario, (list, tuple)) else [scenario]
        self.configs = [load_scenario(name, **overrides) for name in names]
        self.config = self.configs[0]
        self.sim = (Simulator(self.config, n=n_envs) if len(self.configs) == 1
                    else ScenarioMix(self.configs, n_envs))
        self.feature_names = feature_names(self.config)
        self.action_names = action_names(self.config)
        obs_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (len(self.feature_names),), np.float32)
        act_space = spaces.Box(-1.0, 1.0, (self.sim.action_dim,), np.float32)
        self.render_mode = None
        super().__init__(n_envs, obs_space, act_space)
        self.full_info = full_info
        self._rng = _batch_rng(seed)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(n_envs)
        self._length = 0

    def seed(self, seed: int | None = None):
        self._rng = _batch_rng(seed)
        return [seed] * self.num_envs

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:  # honour VecEnv.seed() semantics of SB3 >= 2
            self._rng = _batch_rng(self._seeds[0])
        self._reset_seeds()
        self._returns[:] = 0.0
        self._length = 0
        return self.sim.reset(self._rng)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, done, raw = self.sim.step(self._actions, rng=self._rng)
        self._returns += reward
        self._length += 1
        n = self.num_envs
        if self.full_info:
            infos = [{k: raw[k][i].item() for k in INFO_KEYS} for i in range(n)]
            for i, info in enumerate(infos):
                info["reward_terms"] = {k: float(v[i]) for k, v in raw["reward_terms"].items()}
        else:
            infos = [{} for _ in range(n)]
        dones = np.full(n, done)
        if done:  # per-account Python floats, each array converted once
            fill_episode_end(infos, obs, self._returns.tolist(), self._length,
                             {k: v.tolist() for k, v in raw["episode_metrics"].items()},
                             {k: v.tolist() for k, v in raw["episode_reward_terms"].items()})
            obs = self.reset()
        return obs, reward.astype(np.float32), dones, infos
