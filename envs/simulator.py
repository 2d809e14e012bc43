"""A batch of simulated accounts: the model, each account's dashboard history, rewards.

Both the Gymnasium env (``n = 1``) and the vectorised env (``n`` accounts) drive this class,
so there is one source of truth for what an episode is: reset simulates the account's
pre-launch history (a mature plan at the typical target) and launches a new plan; each step
is one day; the episode ends (truncated) after ``episode_days`` days, charging refunds still
pending.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.actions import action_batch, action_dim, decision_arrays, validate_action
from envs.calendar import calendar_row
from envs.compiled import compiled, helper
from envs.config import ScenarioConfig
from envs.history import (
    COL,
    COLUMNS,
    HISTORY_DAYS_REQUIRED,
    SETTLED_NEWEST,
    ContextArrays,
    DecisionContext,
    feature_rows,
)
from envs.inputs import DayTables, scenario_of
from envs.market import (
    AccountParams,
    DayOutcome,
    Decision,
    MarketModel,
    MarketState,
    breakeven_roi,
    pending_refunds,
    simulate_day,
)
from envs.metrics import EpisodeTally, tally_day
from envs.reward import TERMINAL_VALUE, RewardSettings, reward_args, reward_rows, term_names
from envs.terminal import with_terminal_value

# Dashboard columns as plain ints, for compiled code.
(_SPEND, _GMV, _ORDERS, _REFUNDS, _SETTLED, _TARGET, _BUDGET, _BALANCE, _LEARNING,
 _LEARN_FAILED, _INTERRUPTED) = (COL[name] for name in COLUMNS)

# The per-day info keys (contracts), all arrays of shape (n,).
INFO_KEYS = ("gmv", "spend", "orders", "refunds", "payment_roi", "settled_gmv", "target_roi",
             "budget", "balance", "learning", "learn_failed", "interrupted", "promo")


class Simulator:
    """``n`` accounts of one scenario, stepped together one day at a time.

    :param engine: ``numba`` (compiled) or ``numpy`` for the model's day and the features
        (:mod:`envs.compiled`); default ``$QIANCHUAN_ENGINE``, else ``numba``.
    """

    def __init__(self, config: ScenarioConfig, n: int = 1, engine: str | None = None):
        self.cfg = config
        self.n = n
        self.engine = engine
        self.model = MarketModel(config, engine)
        self._features = compiled(observation, engine)
        self._day = compiled(batch_day, engine)
        self._prelaunch = compiled(prelaunch_history, engine)
        # the episode's daily draws, taken from the reset's generator at reset (the same numbers
        # as drawing day by day, as long as nothing else draws from that generator meanwhile)
        self.prefetch_draws = True
        self._prefetched: np.ndarray | None = None
        self._prefetch_rng: np.random.Generator | None = None
        self._reward_key: float | None = None  # floor multiplier the reward settings are for
        self.action_dim = action_dim(config)
        # Day-major history (days, columns, n) with room for as many days again, so a new
        # day is one row written after the window, and the window moves back only once per
        # ``history_days`` days (feature reductions over days are then contiguous rows).
        self._days = np.zeros((2 * config.history_days, len(COLUMNS), n))
        self._end = config.history_days  # the window is _days[_end - history_days:_end]
        self.params = None
        self.state = None
        self.tally = EpisodeTally(n)
        self.term_sums: dict[str, np.ndarray] = {}
        self._rngs: list[np.random.Generator] | None = None
        # Lagrange multiplier of the settlement-ROI floor (CNY per CNY of shortfall), adapted
        # by training when the floor is treated as a constraint; 0: plain objective.
        self.floor_multiplier = 0.0

    # ----------------------------------------------------------------------
    def reset(self, rng: np.random.Generator | None = None,
              seeds: list[int] | np.ndarray | None = None) -> np.ndarray:
        """Draw new accounts, simulate their pre-launch history, launch the plan.

        :param rng: one generator for the whole batch (fast; what training uses), or
        :param seeds: one seed per account: each account then draws from its own generator,
            so its episode does not depend on the batch it runs in, and two policies run on
            the same seeds face the same market draws (paired comparisons).
        :return: observations (n, F) for launch day.
        """
        cfg, n = self.cfg, self.n
        if (rng is None) == (seeds is None):
            raise ValueError("pass exactly one of rng or seeds")
        if seeds is not None:
            if len(seeds) != n:
                raise ValueError(f"{len(seeds)} seeds for {n} accounts")
            self._rngs = [np.random.default_rng(int(s)) for s in seeds]
            parts = [self.model.sample_params(r, 1) for r in self._rngs]
            self.params = AccountParams.stack(parts)
            self.state = MarketState.stack([self.model.initial_state(p, r)
                                            for p, r in zip(parts, self._rngs, strict=True)])
        else:
            self._rngs = None
            self.params = self.model.sample_params(rng, n)
            self.state = self.model.initial_state(self.params, rng)
        self._params_tuple = tuple(self.params)  # fixed for the episode
        self._days[:] = 0.0
        self._end = cfg.history_days
        draws = self._draws(rng, cfg.history_days)
        self.state = MarketState(*self._prelaunch(
            self.model.flat_inputs, tuple(self.state), self._params_tuple, draws, self._days,
            self._end))
        self._end += cfg.history_days
        self.state = self.model.launch(self.state, self.params)
        self._prefetched = (self._draws(rng, cfg.episode_days) if self.prefetch_draws
                            else None)
        self._prefetch_rng = rng
        self.tally = EpisodeTally(n)
        self.term_sums = {}
        return self.observe()

    def _draws(self, rng: np.random.Generator | None, days: int | None = None) -> np.ndarray:
        """The day's standard normals (n, D), or ``days`` days' (days, n, D), D the model's
        ``n_draws`` (:func:`envs.market.draw_count`); per account when seeded per account (the
        same numbers as drawing day by day)."""
        columns = self.model.n_draws
        shape = (columns,) if days is None else (days, columns)
        if self._rngs is not None:
            return np.stack([r.standard_normal(shape) for r in self._rngs], axis=-2)
        if rng is None:
            raise ValueError("this batch was reset with one generator: pass rng to step()")
        return rng.standard_normal(shape[:-1] + (self.n, columns))

    def _make_room(self) -> None:
        """When the history buffer is full, move the newest days to its front."""
        keep = self.cfg.history_days - 1
        if self._end == self._days.shape[0]:
            self._days[:keep] = self._days[self._end - keep:self._end]
            self._end = keep

    @property
    def history(self) -> np.ndarray:
        """The dashboard history (n, history_days, columns), oldest day first: a view that
        the next step overwrites, so copy it to keep it."""
        return self._days[self._end - self.cfg.history_days:self._end].transpose(2, 0, 1)

    def context(self) -> DecisionContext:
        """The decision day's context, as the advertiser knows it."""
        return DecisionContext(**decision_context(self.state, self.params,
                                                  self.model.inputs.tables)._asdict())

    def observe(self) -> np.ndarray:
        """Observations (n, F) for the coming day (:func:`envs.history.feature_rows`)."""
        return _feature_major(self._features(self.model.flat_inputs, self._days, self._end,
                                             tuple(self.state), self._params_tuple))

    # ----------------------------------------------------------------------
    def step(self, action: np.ndarray, rng: np.random.Generator | None = None,
             draws: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool,
                                                        dict[str, Any]]:
        """One day for every account.

        :param action: (n, action_dim) in [-1, 1] (clipped); NaN or inf raises ValueError.
        :param rng: the batch's generator when reset with one (per-account generators are
            used when reset with seeds), or pass ``draws`` (n, ``model.n_draws``) directly.
        :return: observations, rewards (n,), whether the episode ended (truncated), and a
            dict of arrays: the per-day info keys, ``reward_terms`` and, on the last day,
            ``episode_metrics`` and ``episode_reward_terms`` (the episode's terms, CNY).
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        cfg = self.cfg
        a = action_batch(action, self.n, self.action_dim)  # compiled code trusts its shapes
        if draws is None:
            day = int(self.state.day[0])
            if (self._prefetched is not None and rng is self._prefetch_rng
                    and day < self._prefetched.shape[0]):
                draws = self._prefetched[day]
            else:
                draws = self._draws(rng)
        elif np.shape(draws) != (self.n, self.model.n_draws):
            raise ValueError(f"draws have shape {np.shape(draws)}, expected "
                             f"{(self.n, self.model.n_draws)}")
        if self._reward_key != self.floor_multiplier:
            self._reward_key = self.floor_multiplier
            self._reward_settings = tuple(reward_args(cfg, self.floor_multiplier))
            self._term_names = term_names(cfg, self.floor_multiplier)
        self._make_room()
        # one call: the decision, the model's day, the dashboard row, the reward, the episode's
        # sums, the next observation
        try:
            state, out, decision, obs, rows, reward = self._day(
                self.model.flat_inputs, tuple(self.state), self._params_tuple,
                np.ascontiguousarray(a), np.ascontiguousarray(draws, dtype=np.float64),
                self._days, self._end, self._reward_settings, self.tally.table)
        except ValueError:  # a NaN or inf action: raise with the action in the message
            validate_action(action, self.action_dim, self.n)
            raise
        self.state = state
        self._end += 1
        done = bool(state.day[0] >= cfg.episode_days)
        terms = dict(zip(self._term_names, rows, strict=True))
        for key, value in terms.items():
            self.term_sums[key] = self.term_sums.get(key, 0.0) + value
        info: dict[str, Any] = {
            "gmv": out.gmv, "spend": out.spend, "orders": out.orders, "refunds": out.refunds,
            "payment_roi": out.payment_roi, "settled_gmv": out.settled_gmv,
            "target_roi": decision.target_roi, "budget": decision.budget_cny,
            "balance": out.balance, "learning": out.learning, "learn_failed": out.learn_failed,
            "interrupted": out.interrupted, "promo": out.promo, "reward_terms": terms,
            "shares": decision.shares, "refresh": decision.refresh,
        }
        if done:
            info["episode_metrics"] = self.tally.result()
            if TERMINAL_VALUE in terms:  # the final state's value (CNY), beside the profit
                info["episode_metrics"][TERMINAL_VALUE] = terms[TERMINAL_VALUE]
            info["episode_reward_terms"] = self.term_sums
        return _feature_major(obs), reward, done, info


# ---------------------------------------------------------------------------- kernels
# Written in the NumPy subset Numba compiles (envs.compiled): the simulator runs them compiled.

@helper
def write_dashboard_row(days: np.ndarray, end: int, out: DayOutcome, decision: Decision,
                        state: MarketState) -> None:
    """Write the day's dashboard row at ``days[end]`` (day-major buffer (days, columns, n)),
    and the settled GMV the day reports into the row of the order day it settles.

    :param state: the state after the day (its learning flags are the dashboard's).
    """
    row = days[end]
    row[_SPEND] = out.spend
    row[_GMV] = out.gmv
    row[_ORDERS] = out.orders
    row[_REFUNDS] = out.refunds
    row[_SETTLED] = np.nan  # not settled yet
    row[_TARGET] = decision.target_roi
    row[_BUDGET] = decision.budget_cny
    row[_BALANCE] = out.balance
    row[_LEARNING] = state.learning
    row[_LEARN_FAILED] = state.learn_failed
    row[_INTERRUPTED] = out.interrupted
    days[end + 1 + SETTLED_NEWEST, _SETTLED] = out.settled_gmv


@helper
def decision_context(state: MarketState, params: AccountParams,
                     tables: DayTables) -> ContextArrays:
    """The context of the coming day (:class:`envs.history.DecisionContext`'s fields)."""
    row = calendar_row(state.day, tables.calendar_offset, tables.in_peak.shape[0])
    return ContextArrays(
        plan_age_days=state.day.astype(np.float64),
        creative_age_days=state.creative_age_days.copy(),
        days_to_promo=tables.days_to_peak[row].astype(np.float64),
        days_after_promo=tables.days_after_peak[row].astype(np.float64),
        in_promo=tables.in_peak[row].astype(np.float64),
        weekday=((params.start_weekday + state.day) % 7).astype(np.float64),
        breakeven_roi=breakeven_roi(params.margin, params.refund_rate),
        shares=state.shares.copy())


def observation(inputs: tuple, days: np.ndarray, end: int, state: tuple,
                params: tuple) -> np.ndarray:
    """:func:`observe_window` of plain tuples (compiled entry).

    :param inputs: the scenario, :func:`envs.inputs.flat`.
    """
    scenario = scenario_of(inputs)
    return observe_window(days, end, MarketState(*state), AccountParams(*params),
                          scenario.tables, scenario.constants.whole_site_enabled)


@helper
def observe_window(days: np.ndarray, end: int, state: MarketState, params: AccountParams,
                   tables: DayTables, whole_site: bool = False) -> np.ndarray:
    """Observations (n, F) of the window ending before ``days[end]`` (``whole_site``: the
    scenario's ``whole_site_enabled``, :func:`envs.history.feature_names`)."""
    return feature_rows(days[end - HISTORY_DAYS_REQUIRED:end],
                        decision_context(state, params, tables), whole_site)


def prelaunch_history(inputs: tuple, state: tuple, params: tuple, draws: np.ndarray,
                      days: np.ndarray, end: int) -> MarketState:
    """The pre-launch history (compiled entry): ``draws.shape[0]`` days of the mature plan
    holding its settings, their dashboard rows written from ``days[end]`` on.

    :param inputs: the scenario, :func:`envs.inputs.flat`.
    :param draws: (days, n, draw_count) standard normals (:func:`envs.market.draw_count`).
    :return: the state after the last day.
    """
    scenario, accounts = scenario_of(inputs), AccountParams(*params)
    now = MarketState(*state)
    for day in range(draws.shape[0]):
        hold = Decision(now.target_roi, now.budget_cny, now.shares,
                        np.zeros(now.day.shape[0], dtype=np.bool_))
        now, out = simulate_day(scenario.constants, scenario.tables, now, accounts, hold,
                                draws[day])
        write_dashboard_row(days, end + day, out, hold, now)
    return now


def batch_day(inputs: tuple, state: tuple, params: tuple, action: np.ndarray,
              draws: np.ndarray, days: np.ndarray, end: int, reward_settings: tuple,
              tally: np.ndarray
              ) -> tuple[MarketState, DayOutcome, Decision, np.ndarray, np.ndarray, np.ndarray]:
    """One day of the batch (compiled entry): the decision from the action
    (:func:`envs.actions.decision_arrays`), the model's day (:func:`envs.market.simulate_day`),
    the dashboard row at ``days[end]``, the reward terms (:func:`envs.reward.reward_rows`;
    on the last day, refunds still pending are charged), the episode sums ``tally``
    (:func:`envs.metrics.tally_day`, updated in place) and the next day's observation; with
    ``terminal_value_days > 0`` the terms end with ``terminal_value`` (:mod:`envs.terminal`).

    :param inputs: the scenario, :func:`envs.inputs.flat`.
    :param reward_settings: :func:`envs.reward.reward_args`, as a plain tuple.
    :return: the next state, the day's outcome, the decision, the observations (n, F), the
        reward terms (terms, n) in CNY and the reward (n,) in reward units.
    """
    if not np.isfinite(action).all():  # before anything is written
        raise ValueError("action contains NaN or infinite values")
    scenario, reward = scenario_of(inputs), RewardSettings(*reward_settings)
    c, steps = scenario.constants, scenario.actions
    before, accounts = MarketState(*state), AccountParams(*params)
    target, budget, shares, refresh = decision_arrays(
        action, before.target_roi, before.budget_cny, before.shares, before.day,
        before.creative_age_days, steps)
    decision = Decision(target, budget, shares, refresh)
    after, out = simulate_day(c, scenario.tables, before, accounts, decision, draws)
    write_dashboard_row(days, end, out, decision, after)
    last_day = after.day[0] >= c.episode_days
    rows = reward_rows(reward, accounts, out, pending_refunds(after.refund_pipe), last_day)
    if c.terminal_value_days > 0:  # an end that is not free (off: the rows as they were)
        rows = with_terminal_value(c, scenario.tables, after, accounts, reward, rows, last_day)
    total = rows[0].copy()
    for term in range(1, rows.shape[0]):
        total += rows[term]
    tally_day(tally, reward, accounts, out)
    obs = observe_window(days, end + 1, after, accounts, scenario.tables, c.whole_site_enabled)
    return after, out, decision, obs, rows, total / c.reward_scale_cny


def split_accounts(n: int, parts: int) -> list[int]:
    """``n`` accounts split as evenly as possible into ``parts`` groups (the first ones get
    one more).

    :raises ValueError: fewer accounts than groups.
    """
    if n < parts:
        raise ValueError(f"{n} accounts cannot cover {parts} scenarios")
    return [n // parts + (i < n % parts) for i in range(parts)]


class SimulatorGroup:
    """Several simulators behind the one attribute training sets on them: the settlement-ROI
    floor's Lagrange multiplier."""

    def __init__(self, sims: list[Simulator]):
        self.sims = sims

    @property
    def floor_multiplier(self) -> float:
        return self.sims[0].floor_multiplier

    @floor_multiplier.setter
    def floor_multiplier(self, value: float) -> None:
        for sim in self.sims:
            sim.floor_multiplier = value


class ScenarioMix(SimulatorGroup):
    """Accounts of several scenarios side by side, stepped as one batch.

    ``n`` accounts are split as evenly as possible across ``configs`` (the first ones get one
    more). Each scenario runs its own :class:`Simulator`; observations, rewards and infos are
    concatenated in that order. The scenarios must share the episode length, action space
    and objective, so episodes stay in step and rewards are comparable.
    """

    def __init__(self, configs: list[ScenarioConfig], n: int):
        first = configs[0]
        for cfg in configs[1:]:
            for key in ("episode_days", "action_space", "objective"):
                if getattr(cfg, key) != getattr(first, key):
                    raise ValueError(f"scenarios {first.name!r} and {cfg.name!r} differ in "
                                     f"{key}: a mix needs the same value")
        sizes = split_accounts(n, len(configs))
        self.cfg = first
        self.n = n
        super().__init__([Simulator(cfg, k) for cfg, k in zip(configs, sizes, strict=True)])
        for sim in self.sims:  # they share one generator: draw day by day, in turn
            sim.prefetch_draws = False
        self.action_dim = self.sims[0].action_dim

    def reset(self, rng: np.random.Generator | None = None,
              seeds: list[int] | np.ndarray | None = None) -> np.ndarray:
        if seeds is not None:
            bounds = np.cumsum([0] + [sim.n for sim in self.sims])
            return np.concatenate([sim.reset(seeds=seeds[a:b])
                                   for sim, a, b in zip(self.sims, bounds, bounds[1:],
                                                        strict=False)])
        return np.concatenate([sim.reset(rng) for sim in self.sims])

    def step(self, action: np.ndarray, rng: np.random.Generator | None = None):
        a = action_batch(action, self.n, self.action_dim)  # checked once for the whole batch
        results, start = [], 0
        for sim in self.sims:
            results.append(sim.step(a[start:start + sim.n], rng=rng))
            start += sim.n
        obs = np.concatenate([r[0] for r in results])
        reward = np.concatenate([r[1] for r in results])
        done = results[0][2]
        info = _concat_info([r[3] for r in results])
        return obs, reward, done, info


def _concat_info(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-scenario info dicts of arrays (nested dicts key by key)."""
    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        if isinstance(first, dict):
            out[key] = _concat_info([p[key] for p in parts])
        else:
            out[key] = np.concatenate([np.asarray(p[key]) for p in parts])
    return out


def _feature_major(obs: np.ndarray) -> np.ndarray:
    """Observations (n, F) stored feature by feature (Fortran order), the layout the env has
    always returned: the values do not depend on it, but running statistics over the batch
    (``VecNormalize``) sum in memory order, so training reproduces bit for bit only with the
    same layout."""
    return np.asfortranarray(obs)


def warm_up() -> None:
    """Compile (or load from Numba's disk cache) every compiled entry of the simulator, so the
    first training or evaluation does not pay for it (``make setup`` runs this once)."""
    from envs.actions import to_decision
    from envs.config import load_scenario

    sim = Simulator(load_scenario("3c", action_space="full"), n=2)
    sim.reset(np.random.default_rng(0))
    sim.step(np.zeros((2, sim.action_dim)), rng=np.random.default_rng(1))
    sim.reset(seeds=[0, 1])
    to_decision(sim.cfg, sim.state, np.zeros((2, sim.action_dim)))
    sim.model.step(sim.state, sim.params, Decision(sim.state.target_roi, sim.state.budget_cny,
                                                   sim.state.shares, np.zeros(2, dtype=bool)),
                   np.zeros((2, sim.model.n_draws)))
