"""Run any policy on a scenario over given seeds: the loop evaluation and training share.

Each seed is one episode with its own generator, so results do not depend on how episodes
are batched, and every policy run on the same seeds faces the same market draws (common
random numbers: paired comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from envs.config import ScenarioConfig
from envs.simulator import INFO_KEYS, Simulator


class Predictor(Protocol):
    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]: ...


@dataclass
class RolloutResult:
    """Episode metrics (arrays over seeds) and, if recorded, daily trajectories (seeds, days)."""

    seeds: np.ndarray
    metrics: dict[str, np.ndarray]
    returns: np.ndarray  # sum of rewards (reward units)
    daily: dict[str, np.ndarray] = field(default_factory=dict)


def rollout(policy: Predictor, config: ScenarioConfig, seeds: list[int] | np.ndarray,
            record_daily: bool = False, observation_filter=None) -> RolloutResult:
    """Play one episode per seed, all in one batch.

    :param policy: anything with SB3's ``predict``.
    :param observation_filter: optional callable applied to raw observations before
        ``predict`` (e.g. a frozen ``VecNormalize.normalize_obs``).
    :param record_daily: keep the per-day info arrays and actions.
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    sim = Simulator(config, n=len(seeds))
    obs = sim.reset(seeds=seeds)
    if getattr(policy, "needs_simulator", False):
        policy.attach(sim)  # reference policies only (the oracle): hidden state
    # anchored policies read the dashboard and the launch budget (what the advertiser sees)
    dashboard = getattr(policy, "needs_dashboard", False)
    returns = np.zeros(len(seeds))
    daily: dict[str, list[np.ndarray]] = {}
    episode_start = np.ones(len(seeds), dtype=bool)
    state = None
    while True:
        x = observation_filter(obs) if observation_filter is not None else obs
        if dashboard:
            policy.see_dashboard(sim.history, sim.params.launch_budget_cny)
        actions, state = policy.predict(x, state=state, episode_start=episode_start,
                                        deterministic=True)
        episode_start[:] = False
        obs, reward, done, info = sim.step(actions)
        returns += reward
        if record_daily:
            for key in INFO_KEYS:
                daily.setdefault(key, []).append(np.asarray(info[key], dtype=float))
            daily.setdefault("action", []).append(np.asarray(actions, dtype=float))
        if done:
            return RolloutResult(seeds, info["episode_metrics"], returns,
                                 {k: np.stack(v, axis=1) for k, v in daily.items()})


def objective_values(config: ScenarioConfig, result: RolloutResult) -> np.ndarray:
    """Per-seed value (CNY per episode) of ``result`` under ``config``'s objective: the
    episode's profit, or its summed ``gmv_floor`` reward in CNY (settled GMV less the floor's
    penalty), plus the value of its final state where the scenario charges it
    (``terminal_value_days > 0``: the ``terminal_value`` reward term, :mod:`envs.terminal`).
    The one definition of "value" that searches, evaluation and validation share."""
    if config.objective == "profit":
        return (np.asarray(result.metrics["profit"], dtype=float)
                + np.asarray(result.metrics.get("terminal_value", 0.0), dtype=float))
    return np.asarray(result.returns, dtype=float) * config.reward_scale_cny


def episode_value(config: ScenarioConfig, policy: Predictor, seeds: list[int] | np.ndarray
                  ) -> np.ndarray:
    """Per-seed value (CNY) of ``policy`` under the scenario's objective
    (:func:`objective_values`). The policy plays in its own action space (``policy.config``
    where it has one, as evaluation does)."""
    return objective_values(config, rollout(policy, getattr(policy, "config", config), seeds))
