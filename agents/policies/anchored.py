"""Anchored PPO's policy: a network whose outputs are residuals on ``static``'s settings.

The network's output is a bounded residual on the anchor, the scenario's tuned ``static``
settings (:func:`anchor_for`), mapped to the env's ``full`` action with the operator's step
rules and the re-learning edit cap (:mod:`envs.anchored`). The zero output plays ``static``.
The network also sees the anchor and where today's settings stand against it
(:data:`envs.anchored.ANCHOR_FEATURES`, after the env's features).

:class:`AnchoredPolicy` plays a trained network through that mapping wherever a policy is
played (validation, evaluation), reading what the advertiser sees: the observation, the
dashboard (:attr:`envs.simulator.Simulator.history`) and its launch budget. Training's side,
the paired reward, is :class:`agents.training.paired_env.PairedVecEnv`; both are measured in
``docs/training.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.anchored import StaticSettings, anchored_action, anchored_features
from envs.config import ScenarioConfig


def anchor_for(config: ScenarioConfig) -> StaticSettings:
    """The anchor of ``config``: its scenario's tuned ``static`` settings for its objective
    (an unseen market's: its base scenario's).

    :raises agents.policies.baseline_store.BaselineError: no tuned settings for this env version.
    """
    from agents.policies.baseline_store import load_static

    return load_static(config)


class AnchoredPolicy:
    """A trained network played through anchored actions (SB3's ``predict`` on the env's raw
    observations; :func:`agents.evaluation.rollout.rollout` hands it the dashboard first).

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
