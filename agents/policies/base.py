"""The one interface every policy answers, and the registry of rule-based policies.

Every policy answers SB3's ``predict(observation, state=None, episode_start=None,
deterministic=True) -> (actions, state)`` on a batch of observations (n, F), so one
evaluation loop runs heuristics, controllers, the oracle and PPO on the same seeds.
Rule-based policies are stateless functions of the decoded daily history
(:func:`envs.history.decode_features`), so ``recommend`` can apply them to a real report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from envs.actions import encode_action
from envs.config import ScenarioConfig
from envs.history import decode_features

POLICIES: dict[str, Callable[[ScenarioConfig], Policy]] = {}


def register_policy(name: str):
    """Class decorator: make a policy available by ``name`` to :func:`make_policy`."""

    def wrap(cls):
        POLICIES[name] = cls
        cls.name = name
        return cls

    return wrap


def make_policy(name: str, config: ScenarioConfig) -> Policy:
    """A registered policy by name; an unknown name lists the known ones."""
    if name not in POLICIES:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[name](config)


class Policy:
    """Base class: subclasses implement :meth:`decide` on decoded observations.

    ``action_space`` names the space a policy acts through when it needs one ('full' for
    plan shares or a creative refresh); the policy's :attr:`config` is the scenario with
    that space, and evaluation runs the policy on ``policy.config``. ``None`` keeps the
    scenario's space. A policy with ``needs_simulator = True`` (the oracle) is handed the
    :class:`envs.simulator.Simulator` by :func:`agents.evaluation.rollout.rollout` through
    :meth:`attach` after each reset: only a reference policy may read the hidden state.
    """

    name = "policy"
    action_space: str | None = None
    needs_simulator = False

    def __init__(self, config: ScenarioConfig):
        if self.action_space is not None and config.action_space != self.action_space:
            config = config.replace(action_space=self.action_space)
        self.config = config

    def attach(self, simulator: Any) -> None:
        """Receive the simulator after a reset (only called when ``needs_simulator``)."""

    def decide(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Actions (n, action_dim) from decoded observations (arrays of shape (n,))."""
        raise NotImplementedError

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation)
        single = obs.ndim == 1
        actions = self.decide(decode_features(obs.reshape(-1, obs.shape[-1])))
        return (actions[0] if single else actions), state


@register_policy("constant")
class ConstantPolicy(Policy):
    """Reference: hold the launch target, budget and plan shares for the whole episode."""

    def decide(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = obs["target_roi"].shape[0]
        shares = np.tile(np.asarray(self.config.launch_shares), (n, 1))
        return encode_action(self.config, np.ones(n), np.ones(n), shares=shares)
