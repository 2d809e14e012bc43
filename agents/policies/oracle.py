"""The clairvoyant reference: plan selection on the hidden state, valued to the episode's end.

The oracle reads every account's hidden market state and parameters (never the episode's
future draws, never the seeds being scored) and plans on the objective being scored:

1. **At launch** it simulates a grid of fixed plans (payment-ROI target, daily budget) around
   the tuned ``static`` settings of its scenario and objective, each to the end of the
   episode, on its own noise (a few replicate draws from its own generator, the same for
   every candidate), and adopts the best plan for each account. Plan shares and the refresh
   interval are those of ``static`` (the scenario's schedule and payment-ROI plans only when
   no tuned file exists); with the whole-site plan (``whole_site_enabled``) the grid also
   tries ``static``'s shares with the payment-ROI share moved to whole-site, so the oracle
   can put budget on it.
2. **Each morning** it compares holding the plan with deviations: the target and budget
   scaled for the next week, or for good, each simulated to the episode's end the same way
   (every deviation screened on a quarter of the replicates, holding and the best few then
   judged on all of them), and applies the first day of the best. Valuing every candidate
   to the end means nothing is free on the last day (refunds are charged on the order day),
   and, with ``terminal_value_days``, each candidate's final state is valued as the
   episode's ``terminal_value`` term values it (:mod:`envs.terminal`). A moving market's
   drift is part of the hidden state it reads and of the draws it simulates.

A candidate replaces the default (the anchor plan at launch, holding the plan each morning)
only when its paired gain over the replicates is clear (:func:`clear_best`, two standard
errors); an account still on the anchor plan and holding it plays ``static``'s own action.
Moves between settings follow the same steps as ``static``: just under the changes that
restart learning. It is an upper reference, not an optimum: its plans are fixed settings
with weekly deviations, and it averages a few noise replicates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agents.policies.base import Policy, register_policy
from agents.policies.static import FixedSettingsPolicy, rule_settings
from envs.actions import PAYMENT_ROI, WHOLE_SITE, encode_action, plan_share_row, to_decision
from envs.anchored import StaticSettings, refresh_due, target_move
from envs.config import ScenarioConfig

if TYPE_CHECKING:  # the model itself loads only when the oracle plans (keeps imports light)
    from envs.market import AccountParams, MarketState


@register_policy("oracle")
class OraclePolicy(Policy):
    """Plan selection to the episode's end on the hidden state (reference only).

    :param config: the scenario (the oracle acts in its ``full`` action space) and objective.
    :param seed: seed of the oracle's own noise replicates (reset at every :meth:`attach`, so
        an evaluation is reproducible).
    """

    action_space = "full"
    needs_simulator = True
    replicates = 16  # 8 chased the replicates' noise on v1's noisier market (docs/baselines.md)
    # each morning every deviation is screened on the first ``screen_replicates`` draws and
    # holding plus the ``shortlist_size`` best are judged on all ``replicates``
    screen_replicates = 4
    shortlist_size = 4
    launch_targets = (0.85, 0.92, 1.0, 1.08, 1.17)  # x the static target
    launch_budgets = (0.6, 0.8, 1.0, 1.25, 1.6)  # x the static budget
    deviation_targets = (0.8, 0.9, 1.0, 1.1, 1.25)
    deviation_budgets = (0.67, 1.0, 1.5)
    deviation_days = 7
    budget_step = 0.4  # daily budget rise bound of the oracle's moves (under a 50% jump);
    # cuts, which never restart learning, go as far as the action allows, as static's do
    # a candidate replaces the default (the anchor at launch, holding the plan each morning)
    # only when its paired gain over the replicates is this many standard errors above 0:
    # picking the largest of many noisy means would chase the replicates' noise
    min_gain_z = 2.0

    def __init__(self, config: ScenarioConfig, seed: int = 0,
                 anchor: StaticSettings | None = None):
        super().__init__(config)
        from envs.reward import reward_args

        self.seed = seed
        self.anchor = _anchor_settings(self.config) if anchor is None else anchor
        self.anchor_policy = FixedSettingsPolicy(self.config, self.anchor)
        # plan on the scored objective, each cohort's refunds charged on its order day
        self.reward = reward_args(self.config.replace(refund_charging="on_order"))
        self.sim = None

    def attach(self, simulator) -> None:
        if simulator.cfg.action_space != "full":
            raise ValueError("the oracle plans in the 'full' action space: run it on "
                             "policy.config")
        self.sim = simulator
        self.rng = np.random.default_rng(self.seed)
        self.noise: np.ndarray | None = None
        self.target: np.ndarray | None = None  # the plan, per account (GMV/spend, CNY/day)
        self.budget: np.ndarray | None = None
        self.shares: np.ndarray | None = None  # (n, 4) the plan's budget shares
        self.on_anchor: np.ndarray | None = None  # bool (n,): the plan is still the anchor's

    def decide(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.sim is None:
            raise RuntimeError("the oracle needs the simulator: run it through "
                               "agents.evaluation.rollout.rollout")
        state, params = self.sim.state, self.sim.params
        if self.target is None:
            self._choose_plan(state, params)
            return self._follow_anchor(obs, self._action(state, self.target, self.budget,
                                                         self.shares), self.on_anchor)
        dev = [(a, b, keep) for a in self.deviation_targets for b in self.deviation_budgets
               for keep in (False, True) if not (a == 1.0 and b == 1.0 and keep)]
        scale_t = np.array([d[0] for d in dev])
        scale_b = np.array([d[1] for d in dev])
        keep = np.array([d[2] for d in dev])
        t1 = self.target[:, None] * scale_t[None, :]
        b1 = self.budget[:, None] * scale_b[None, :]
        t2 = np.where(keep[None, :], t1, self.target[:, None])
        b2 = np.where(keep[None, :], b1, self.budget[:, None])
        # screen every deviation on the first replicates, then judge holding and the best
        # few on all of them (the clear-gain test reads only the full replicates)
        screened = slice(0, self.screen_replicates)
        screen = self._value(state, params, t1, b1, t2, b2, self._shares(len(dev)),
                             self.deviation_days, screened)
        pick = shortlist(screen, dev.index((1.0, 1.0, False)), self.shortlist_size)
        rows = np.arange(pick.shape[0])[:, None]  # pick: (n, k + 1), holding first
        t1, b1, t2, b2 = t1[rows, pick], b1[rows, pick], t2[rows, pick], b2[rows, pick]
        rest = self._value(state, params, t1, b1, t2, b2, self._shares(pick.shape[1]),
                           self.deviation_days, slice(self.screen_replicates, self.replicates))
        value = np.concatenate([screen[rows, pick], rest], axis=2)
        best = clear_best(value, 0, self.min_gain_z)  # a column of pick; 0 holds
        rows = np.arange(len(best))
        target, budget = t1[rows, best], b1[rows, best]
        kept = keep[pick[rows, best]]
        self.target = np.where(kept, target, self.target)
        self.budget = np.where(kept, budget, self.budget)
        self.on_anchor &= ~kept
        return self._follow_anchor(obs, self._action(state, target, budget, self.shares),
                                   self.on_anchor & (best == 0))

    def _shares(self, candidates: int) -> np.ndarray:
        """The plan's shares for ``candidates`` candidates per account: (n, candidates, 4)."""
        return np.repeat(self.shares[:, None, :], candidates, axis=1)

    def _follow_anchor(self, obs: dict[str, np.ndarray], action: np.ndarray,
                       follow: np.ndarray) -> np.ndarray:
        """``action``, with the anchor's own fixed-settings action for the accounts that
        ``follow`` it (still on the anchor plan and holding it today): where the oracle finds
        no clear gain it plays ``static`` itself, moves and ramp included."""
        if follow.any():
            action = action.copy()
            action[follow] = self.anchor_policy.decide(obs)[follow]
        return action

    def _choose_plan(self, state: MarketState, params: AccountParams) -> None:
        """The best fixed plan per account from the grid around the anchor settings."""
        from envs.market import draw_count

        self.noise = self.rng.standard_normal((self.config.episode_days, self.replicates,
                                               draw_count(self.config)))
        mixes = share_options(self.config, self.anchor)
        grid = [(a, b, k) for a in self.launch_targets for b in self.launch_budgets
                for k in range(len(mixes))]
        target = self.anchor.target_over_breakeven * self.config.breakeven_roi
        budget = self.anchor.budget_over_launch * params.launch_budget_cny
        t = np.tile(target * np.array([g[0] for g in grid]), (len(budget), 1))
        b = budget[:, None] * np.array([g[1] for g in grid])[None, :]
        shares = np.tile(mixes[[g[2] for g in grid]], (len(budget), 1, 1))
        value = self._value(state, params, t, b, t, b, shares, 0, slice(0, self.replicates))
        anchor = grid.index((1.0, 1.0, 0))
        best = clear_best(value, anchor, self.min_gain_z)  # or the anchor
        rows = np.arange(len(best))
        self.on_anchor = best == anchor
        self.target, self.budget = t[rows, best], b[rows, best]
        self.shares = shares[rows, best]

    def _action(self, state: MarketState, target: np.ndarray, budget: np.ndarray,
                shares: np.ndarray) -> np.ndarray:
        """The action moving ``state`` towards (target, budget) with the plan's ``shares``
        (n, 4) and the anchor's refresh interval, in steps under the changes that restart
        learning."""
        budget_ratio = np.clip(budget / np.maximum(state.budget_cny, 1e-9),
                               1.0 / (1.0 + self.config.budget_max_step),
                               1.0 + self.budget_step)
        # the plan's age is the state's day (0 on launch day)
        return encode_action(self.config, target_move(self.config, state.target_roi, target),
                             budget_ratio, shares=shares,
                             refresh=refresh_due(state.creative_age_days, state.day,
                                                 self.anchor.refresh_days))

    def _value(self, state: MarketState, params: AccountParams, t1: np.ndarray,
               b1: np.ndarray, t2: np.ndarray, b2: np.ndarray, shares: np.ndarray,
               switch: int, replicates: slice) -> np.ndarray:
        """Value to the episode's end, the final state's value included (CNY, the scored
        objective), of each candidate (n, c): (t1, b1) for ``switch`` days then (t2, b2),
        with budget ``shares`` (n, c, 4), on the ``replicates`` replicate draws (a slice of
        them): (n, c, r). Each (candidate, replicate) path is simulated on its own (a batch
        equals its accounts one by one), so values on different slices can be joined."""
        from envs.reward import reward_rows

        n, c = t1.shape
        r = len(range(*replicates.indices(self.replicates)))
        rep = c * r

        def expand(x: np.ndarray) -> np.ndarray:  # (n, c) -> (n * c * r,)
            return np.repeat(x, r, axis=1).reshape(-1)

        t1, b1, t2, b2 = expand(t1), expand(b1), expand(t2), expand(b2)
        shares = np.repeat(shares, r, axis=1).reshape(-1, shares.shape[-1])
        s, p = state.repeat(rep), params.repeat(rep)
        day0 = int(state.day[0])
        days = int(self.config.episode_days - day0)
        total = np.zeros(n * rep)
        zeros = np.zeros(n * rep)
        model = self.sim.model
        for d in range(days):
            draws = np.tile(self.noise[day0 + d, replicates], (n * c, 1))
            target, budget = (t1, b1) if d < switch or switch == 0 else (t2, b2)
            decision = to_decision(self.config, s, self._action(s, target, budget, shares))
            s, out = model.step(s, p, decision, draws)
            total += reward_rows(self.reward, p, out, zeros, False).sum(axis=0)
        total += self._end_value(s, p)
        return total.reshape(n, c, r)

    def _end_value(self, state: MarketState, params: AccountParams) -> np.ndarray:
        """The value of the final ``state`` as the episode's ``terminal_value`` term counts it
        (CNY; 0 when ``terminal_value_days`` is 0): the same noise-free continuation holding
        the final settings (:func:`envs.terminal.continuation_value`)."""
        if self.config.terminal_value_days <= 0:
            return np.zeros(state.day.shape[0])
        from envs.terminal import continuation_value

        inputs = self.sim.model.inputs
        return continuation_value(inputs.constants, inputs.tables, state, params, self.reward,
                                  int(self.config.terminal_value_days))


def clear_best(values: np.ndarray, default: int, z: float) -> np.ndarray:
    """Per account, the candidate with the highest mean value over the replicates if its
    paired gain over candidate ``default`` exceeds ``z`` standard errors, else ``default``.

    :param values: (n, candidates, replicates) CNY, every candidate on the same draws.
    :return: (n,) candidate indices.
    """
    best = values.mean(axis=2).argmax(axis=1)
    rows = np.arange(values.shape[0])
    gain = values[rows, best] - values[rows, default]  # (n, replicates), paired
    se = gain.std(axis=1, ddof=1) / np.sqrt(gain.shape[1])
    return np.where(gain.mean(axis=1) > z * se, best, default)


def shortlist(values: np.ndarray, default: int, size: int) -> np.ndarray:
    """Per account, candidate ``default`` followed by the ``size`` other candidates with the
    highest mean value over the replicates.

    :param values: (n, candidates, replicates) CNY.
    :return: (n, size + 1) candidate indices, ``default`` in column 0.
    """
    means = values.mean(axis=2)
    means[:, default] = -np.inf  # listed first, not twice
    order = np.argsort(-means, axis=1, kind="stable")[:, :size]
    return np.concatenate([np.full((len(means), 1), default), order], axis=1)


def share_options(config: ScenarioConfig, anchor: StaticSettings) -> np.ndarray:
    """The plan mixes the oracle tries at launch, (k, 4): the anchor's shares, and with
    ``whole_site_enabled`` the same with its payment-ROI share moved to whole-site."""
    mixes = [plan_share_row(anchor.shares)]
    if config.whole_site_enabled:
        moved = mixes[0].copy()
        moved[WHOLE_SITE] += moved[PAYMENT_ROI]
        moved[PAYMENT_ROI] = 0.0
        if moved[WHOLE_SITE] > mixes[0][WHOLE_SITE]:
            mixes.append(moved)
    return np.array(mixes)


def _anchor_settings(config: ScenarioConfig) -> StaticSettings:
    """The tuned ``static`` settings of the scenario and objective, or, without a tuned file,
    the static rule's shape at 1.5 x break-even (payment-ROI plans, launch budget, the
    scenario's refresh schedule)."""
    from agents.policies.baseline_store import BaselineError, load_static

    try:
        return load_static(config)
    except BaselineError:
        return rule_settings(config, 1.5)
