"""The clairvoyant reference: model-predictive control with the hidden state and parameters.

Each morning the oracle copies every account's hidden market state and parameters, plans the
next 7 days on the model's *expected* dynamics (every random draw set to zero: no traffic or
ROI innovations, no bidder or basket noise, median order counts), and applies the first day
of the best plan. Planning is the cross-entropy method over action sequences in the ``full``
space, through the same action mapping and bounds as every other policy; all accounts and
all candidate sequences are stepped as one batch of ``accounts x candidates``.

It is an upper reference, not an optimum: the noise it ignores, the 7-day horizon (a short
tail credit stands in for what lies beyond) and the finite search leave room above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agents.policies.base import Policy, register_policy
from envs.actions import action_dim, encode_action, to_decision
from envs.config import ScenarioConfig

if TYPE_CHECKING:  # the model itself loads only when the oracle plans (keeps imports light)
    from envs.market import AccountParams, MarketState


@register_policy("oracle")
class OraclePolicy(Policy):
    """MPC over 7-day action sequences by the cross-entropy method (hidden-state access).

    :param config: the scenario (the oracle acts in its ``full`` action space).
    :param seed: seed of the candidate sampler (reset at every :meth:`attach`, so an
        evaluation is reproducible).
    """

    action_space = "full"
    needs_simulator = True
    horizon_days = 7
    candidates = 48
    elites = 6
    iterations = 3
    init_std = 0.6
    min_std = 0.05
    tail_days = 7  # the plan's last day counted this many more times (what lies beyond)

    def __init__(self, config: ScenarioConfig, seed: int = 0):
        super().__init__(config)
        self.seed = seed
        self.dim = action_dim(self.config.action_space)
        self.sim = None
        self.plan: np.ndarray | None = None
        self.rng = np.random.default_rng(seed)

    def attach(self, simulator) -> None:
        if simulator.cfg.action_space != "full":
            raise ValueError("the oracle plans in the 'full' action space: run it on "
                             "policy.config")
        self.sim = simulator
        self.plan = None
        self.rng = np.random.default_rng(self.seed)

    def decide(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.sim is None:
            raise RuntimeError("the oracle needs the simulator: run it through "
                               "agents.rollout.rollout")
        state, params = self.sim.state, self.sim.params
        n = state.day.shape[0]
        remaining = int(self.config.episode_days - state.day[0])
        horizon = max(1, min(self.horizon_days, remaining))
        tail = min(self.tail_days, remaining - horizon)
        hold = self._hold_action(state)
        mean = np.repeat(hold[:, None, :], horizon, axis=1)
        if self.plan is not None:  # warm start: yesterday's plan, shifted by a day
            k = min(horizon, self.plan.shape[1] - 1)
            mean[:, :k] = self.plan[:, 1:k + 1]
        std = np.full_like(mean, self.init_std)
        best = mean.copy()
        best_value = np.full(n, -np.inf)
        rep_state = state.repeat(self.candidates)
        rep_params = params.repeat(self.candidates)
        for _ in range(self.iterations):
            noise = self.rng.standard_normal((n, self.candidates, horizon, self.dim))
            seqs = np.clip(mean[:, None] + std[:, None] * noise, -1.0, 1.0)
            seqs[:, 0] = np.clip(mean, -1.0, 1.0)
            seqs[:, 1] = np.repeat(hold[:, None, :], horizon, axis=1)
            value = self._evaluate(rep_state, rep_params, seqs, tail)
            order = np.argsort(-value, axis=1)
            top = np.take_along_axis(seqs, order[:, :self.elites, None, None], axis=1)
            mean, std = top.mean(axis=1), np.maximum(top.std(axis=1), self.min_std)
            better = value[np.arange(n), order[:, 0]] > best_value
            best[better] = seqs[np.arange(n), order[:, 0]][better]
            best_value = np.maximum(best_value, value[np.arange(n), order[:, 0]])
        self.plan = best
        return best[:, 0].astype(np.float32)

    def _hold_action(self, state: MarketState) -> np.ndarray:
        """Keep target, budget and shares; no refresh (n, dim)."""
        n = state.day.shape[0]
        return encode_action(self.config, np.ones(n), np.ones(n), shares=state.shares,
                             refresh=np.zeros(n, dtype=bool)).astype(float)

    def _evaluate(self, state: MarketState, params: AccountParams, seqs: np.ndarray,
                  tail: int) -> np.ndarray:
        """Expected profit (CNY) of each candidate sequence (n, candidates)."""
        n, c, horizon, dim = seqs.shape
        model = self.sim.model
        from envs.market import N_DRAWS
        from envs.metrics import day_profit

        draws = np.zeros((n * c, N_DRAWS))
        total = np.zeros(n * c)
        profit = total
        s = state
        for h in range(horizon):
            decision = to_decision(self.config, s, seqs[:, :, h].reshape(n * c, dim))
            s, out = model.step(s, params, decision, draws)
            profit = day_profit(params, out)
            total = total + profit
        total = total + tail * profit
        return total.reshape(n, c)
