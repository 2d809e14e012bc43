"""Anchored PPO: a network that outputs residuals on ``static``'s settings, trained on a
reward paired with ``static`` playing the same market.

Two devices, each measured in ``docs/training.md``:

- **Anchored actions** (:mod:`envs.anchored`): the network's output is a bounded residual on
  the anchor, the scenario's tuned ``static`` settings (:func:`anchor_for`), mapped to the
  env's ``full`` action with the operator's step rules and the re-learning edit cap. The zero
  output plays ``static``. The network also sees the anchor and where today's settings stand
  against it (:data:`envs.anchored.ANCHOR_FEATURES`, after the env's features).
- **A paired reward** (:class:`PairedVecEnv`): each trained account has a twin that plays
  ``static`` on the same market (same account draws, same daily noise: common random
  numbers), and the reward is the account's day minus its twin's. The twin does not react to
  the policy, so the best policy is unchanged; what changes is the noise. A 1-3% better
  policy is invisible in the spread of single episodes (a profit's spread across markets is
  tens of percent) but clear in the spread of differences.

:class:`AnchoredPolicy` plays a trained network through the same mapping wherever a policy is
played (validation, evaluation), reading what the advertiser sees: the observation, the
dashboard (:attr:`envs.simulator.Simulator.history`) and its launch budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.policies import make_policy
from envs.anchored import StaticSettings, anchored_action, anchored_feature_names, anchored_features
from envs.anchored import residual_names as anchored_names
from envs.config import ScenarioConfig, load_scenario
from envs.history import OBS_BOUND
from envs.simulator import Simulator
from envs.vec_env import InProcessVecEnv, fill_episode_end

TWIN_SEEDS = (10**9, 2 * 10**9)  # training accounts' seeds: far from every named seed range


def anchor_for(config: ScenarioConfig) -> StaticSettings:
    """The anchor of ``config``: its scenario's tuned ``static`` settings for its objective
    (an unseen market's: its base scenario's).

    :raises agents.baselines.BaselineError: no tuned settings for this env version.
    """
    from agents.baselines import load_static

    return load_static(config)


class AnchoredPolicy:
    """A trained network played through anchored actions (SB3's ``predict`` on the env's raw
    observations; :func:`agents.rollout.rollout` hands it the dashboard first).

    :param predict: network actions (residuals) from :func:`anchored_features` rows, already
        normalised by ``observation_filter``.
    :param config: the scenario played (``full`` action space).
    """

    needs_dashboard = True

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], config: ScenarioConfig,
                 anchor: StaticSettings | None = None,
                 observation_filter: Callable[[np.ndarray], np.ndarray] | None = None):
        self.config = config.replace(action_space="full")
        self.anchor = anchor if anchor is not None else anchor_for(self.config)
        self._predict = predict
        self._filter = observation_filter
        self._history: np.ndarray | None = None
        self._launch: np.ndarray | None = None

    def see_dashboard(self, history: np.ndarray, launch_budget_cny: np.ndarray) -> None:
        """Today's dashboard (n, days, columns; the last row yesterday) and launch budgets."""
        self._history, self._launch = history, launch_budget_cny

    def residuals(self, observation: np.ndarray) -> np.ndarray:
        """The network's residuals (n, dim) for raw observations (n, F)."""
        if self._history is None:
            raise RuntimeError("an anchored policy needs the dashboard: see_dashboard() first")
        x = anchored_features(self.config, self.anchor, observation, self._history,
                              self._launch)
        return self._predict(self._filter(x) if self._filter is not None else x)

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float64))
        action = anchored_action(self.config, self.anchor, self.residuals(obs), obs,
                                 self._history, self._launch)
        return action, state


def sb3_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """An SB3 model's deterministic actions as a function of (normalised) inputs."""
    return lambda x: model.predict(x, deterministic=True)[0]


class _Sims:
    """Several simulators behind the one attribute training sets on them."""

    def __init__(self, sims: list[Simulator]):
        self._sims = sims

    @property
    def floor_multiplier(self) -> float:
        return self._sims[0].floor_multiplier

    @floor_multiplier.setter
    def floor_multiplier(self, value: float) -> None:
        for sim in self._sims:
            sim.floor_multiplier = value


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
        sizes = [n_envs // len(self.configs) + (i < n_envs % len(self.configs))
                 for i in range(len(self.configs))]
        if min(sizes) < 1:
            raise ValueError(f"{n_envs} accounts cannot cover {len(self.configs)} scenarios")
        self.sizes = sizes
        self.sims = [Simulator(cfg, 2 * k) for cfg, k in zip(self.configs, sizes, strict=True)]
        self.anchors = [anchor_for(cfg) for cfg in self.configs]
        self.twins = [make_policy("static", cfg) for cfg in self.configs]
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
    def sim(self) -> _Sims:
        """The simulators as one (what the floor-multiplier callback sets: accounts and twins
        are charged alike, so the paired reward carries only the account's own shortfall)."""
        return _Sims(self.sims)

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
