"""The paired training env of anchored PPO: each account beside a twin playing ``static``.

Each trained account has a twin that plays ``static`` on the same market (same account
draws, same daily noise: common random numbers), and the reward is the account's day minus
its twin's. The twin does not react to the policy, so the best policy is unchanged; what
changes is the noise. A 1-3% better policy is invisible in the spread of single episodes (a
profit's spread across markets is tens of percent) but clear in the spread of differences.
The accounts act through anchored actions (:mod:`agents.policies.anchored`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from agents.policies.anchored import anchor_for
from agents.policies.static import FixedSettingsPolicy
from envs.anchored import anchored_action, anchored_feature_names, anchored_features
from envs.anchored import residual_names as anchored_names
from envs.config import ScenarioConfig, load_scenario
from envs.history import OBS_BOUND
from envs.seeds import TWIN_SEEDS
from envs.simulator import Simulator, SimulatorGroup, split_accounts
from envs.vec_env import InProcessVecEnv, fill_episode_end


class PairedVecEnv(InProcessVecEnv):
    """Accounts that act through anchored actions, each beside a twin playing ``static`` on
    the same market, as one SB3 ``VecEnv`` (the twins are hidden from the learner).

    ``n_envs`` accounts are split across ``scenarios`` as :class:`envs.simulator.ScenarioMix`
    splits them; each scenario's simulator holds its accounts and then their twins, reset
    with the same per-account seeds (drawn from the batch's generator, from
    :data:`TWIN_SEEDS`), so an account and its twin see the same draws until their actions
    differ.

    :param paired_reward: reward = the account's day - its twin's (``False``: the account's
        own reward, the twins then only cost time).
    """

    def __init__(self, scenarios: list[str | ScenarioConfig], n_envs: int, seed: int | None,
                 paired_reward: bool = True, **overrides: Any):
        self.configs = [load_scenario(s, **{**overrides, "action_space": "full"})
                        for s in scenarios]
        first = self.configs[0]
        self.sizes = sizes = split_accounts(n_envs, len(self.configs))
        self.sims = [Simulator(cfg, 2 * k) for cfg, k in zip(self.configs, sizes, strict=True)]
        self.anchors = [anchor_for(cfg) for cfg in self.configs]
        self.twins = [FixedSettingsPolicy(cfg, anchor)  # static: its settings are the anchor
                      for cfg, anchor in zip(self.configs, self.anchors, strict=True)]
        self.paired_reward = paired_reward
        self.config = first
        self.feature_names = anchored_feature_names(first)
        self.action_names = anchored_names(first)
        obs_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (len(self.feature_names),), np.float32)
        act_space = spaces.Box(-1.0, 1.0, (len(self.action_names),), np.float32)
        self.render_mode = None
        super().__init__(n_envs, obs_space, act_space)
        self._rng = np.random.default_rng(np.random.SeedSequence([int(seed or 0), 0x7A1]))
        self._raw: list[np.ndarray] = []
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(n_envs)
        self._length = 0

    @property
    def sim(self) -> SimulatorGroup:
        """The simulators as one (what the floor-multiplier callback sets: accounts and twins
        are charged alike, so the paired reward carries only the account's own shortfall)."""
        return SimulatorGroup(self.sims)

    def _observe(self) -> np.ndarray:
        """The learner's inputs for every account (twins left out)."""
        parts = []
        for sim, cfg, anchor, k, raw in zip(self.sims, self.configs, self.anchors, self.sizes,
                                             self._raw, strict=True):
            parts.append(anchored_features(cfg, anchor, raw[:k], sim.history[:k],
                                           sim.params.launch_budget_cny[:k]))
        return np.concatenate(parts)

    def reset(self) -> np.ndarray:
        self._raw = []
        for sim, k in zip(self.sims, self.sizes, strict=True):
            seeds = self._rng.integers(*TWIN_SEEDS, size=k)
            self._raw.append(sim.reset(seeds=np.concatenate([seeds, seeds])))
        self._returns[:] = 0.0
        self._length = 0
        return self._observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64)

    def step_wait(self):
        rewards, own, metrics, terms, done = [], [], [], [], False
        start = 0
        for i, (sim, cfg, anchor, k) in enumerate(zip(self.sims, self.configs, self.anchors,
                                                      self.sizes, strict=True)):
            raw = self._raw[i]
            mine = anchored_action(cfg, anchor, self._actions[start:start + k], raw[:k],
                                   sim.history[:k], sim.params.launch_budget_cny[:k])
            twin = self.twins[i].predict(raw[k:])[0]
            obs, reward, done, info = sim.step(np.concatenate([mine, twin]))
            self._raw[i] = obs
            own.append(reward[:k])
            rewards.append(reward[:k] - reward[k:] if self.paired_reward else reward[:k])
            if done:
                metrics.append({key: v[:k] for key, v in info["episode_metrics"].items()})
                terms.append({key: v[:k] for key, v in info["episode_reward_terms"].items()})
            start += k
        reward = np.concatenate(rewards)
        self._returns += np.concatenate(own)
        self._length += 1
        n = self.num_envs
        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        obs = self._observe()
        if done:
            fill_episode_end(
                infos, obs, self._returns.tolist(), self._length,
                {key: np.concatenate([m[key] for m in metrics]).tolist() for key in metrics[0]},
                {key: np.concatenate([t[key] for t in terms]).tolist() for key in terms[0]})
            obs = self.reset()
        return obs, reward.astype(np.float32), np.full(n, done), infos

    def seed(self, seed: int | None = None):
        self._rng = np.random.default_rng(np.random.SeedSequence([int(seed or 0), 0x7A1]))
        return [seed] * self.num_envs
