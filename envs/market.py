"""The market model: one day of a Qianchuan advertiser's account, batched over accounts.

NumPy, in the subset Numba compiles: the day is one function, :func:`simulate_day`, that
the simulator runs compiled and that also runs as plain NumPy (:mod:`envs.compiled`). Every
array has a leading batch axis of ``n`` accounts (one account is ``n = 1``). Randomness
enters only through explicit arrays: :meth:`MarketModel.sample_params` and
:meth:`MarketModel.initial_state` take a :class:`numpy.random.Generator`, and
:meth:`MarketModel.step` takes the day's standard normal draws ``(n, draw_count(config))``.
So a batch of accounts evolves exactly as the same accounts run one by one with the same draws.

One day is eight named stages (:mod:`envs.stages`, ``docs/market-model.md`` for each
mechanic and its sources): decision, traffic, bidding, orders, refunds, organic, learning,
money. :func:`simulate_day` runs them in that order and assembles the next state and the
day's outcome; the scenario enters as :class:`envs.inputs.ScenarioInputs`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from envs.actions import plan_share_row
from envs.calendar import PromoCalendar, calendar_row
from envs.compiled import compiled, helper
from envs.config import ScenarioConfig
from envs.inputs import DayConstants, DayTables, flat, scenario_inputs, scenario_of
from envs.pool import qualifying_share, ranking_sigma
from envs.stages import (
    INCREMENTAL_REFUNDS,
    SETTLEMENT_ROI,
    add_organic,
    apply_decision,
    book_refunds,
    convert_engaged_buyers,
    draw_refunds,
    hold_engaged_buyers,
    hold_market,
    move_market,
    place_bids,
    poisson_from_normal,  # noqa: F401  (re-exported: the model's count sampler)
    price_traffic,
    progress_learning,
    settle_money,
    take_orders,
)

# Columns of the daily draws, each a standard normal.
DRAW_TRAFFIC, DRAW_POOL_ROI, DRAW_BIDDER, DRAW_ORDERS, DRAW_BASKET, DRAW_REFUNDS = range(6)
N_DRAWS = 6  # the columns every scenario draws
# Columns drawn after those only when the market moves (``market_drift_enabled``), so the
# columns above stay the same stream when it is off (:func:`draw_count`).
(DRAW_ROI_DRIFT, DRAW_COST_DRIFT, DRAW_REGIME, DRAW_REGIME_ROI,
 DRAW_REGIME_COST) = range(N_DRAWS, N_DRAWS + 5)
N_DRIFT_DRAWS = 5
REFUND_DAYS = 7


# Ring buffers keep the batch axis LAST (day-major), so shifting a day and summing over days
# are contiguous row operations rather than many tiny per-account ones.
_BATCH_LAST = frozenset({"learn_orders", "recent_edits", "recent_orders", "refund_pipe",
                         "cohort_settled"})


def _repeat(batch, times: int):
    """Each account of a named tuple of arrays repeated ``times`` times (account-major)."""
    return type(batch)(**{
        name: np.repeat(getattr(batch, name), times, axis=-1 if name in _BATCH_LAST else 0)
        for name in batch._fields})


def _stack(items: list):
    """Concatenate named tuples of arrays field by field (a batch from single accounts)."""
    first = items[0]
    return type(first)(**{
        name: np.concatenate([getattr(x, name) for x in items],
                             axis=-1 if name in _BATCH_LAST else 0)
        for name in first._fields})


# The model's records are named tuples of arrays, which compiled code takes and returns.
class AccountParams(NamedTuple):
    """Per-account economics, fixed for an episode (drawn at reset). Arrays of shape (n,)."""

    pool_cost_cny: np.ndarray
    pool_mean_roi: np.ndarray
    pool_sigma: np.ndarray
    refund_rate: np.ndarray
    aov_cny: np.ndarray
    margin: np.ndarray
    bidder_bias: np.ndarray  # multiplier on achieved ROI
    launch_budget_cny: np.ndarray
    start_weekday: np.ndarray  # weekday of launch day, 0 = Monday
    typical_share: np.ndarray  # pool share the typical target buys (refund depth reference)

    @property
    def breakeven_roi(self) -> np.ndarray:
        """Payment ROI at which ads pay for themselves: ``1 / (margin (1 - refund_rate))``."""
        return breakeven_roi(self.margin, self.refund_rate)

    stack = classmethod(lambda cls, items: _stack(items))
    repeat = _repeat  # params.repeat(k): each account k times, account-major


class MarketState(NamedTuple):
    """Everything the model carries from one day to the next. Arrays of shape (n, ...)."""

    day: np.ndarray  # days since launch (negative in the pre-launch history)
    target_roi: np.ndarray  # payment-ROI target in force (GMV/spend)
    budget_cny: np.ndarray  # daily budget in force (CNY)
    shares: np.ndarray  # (n, 4) budget shares of PLANS (whole_site 0 unless enabled)
    traffic_shock: np.ndarray  # AR(1) log shock on the pool's cost
    learning: np.ndarray  # bool
    learn_failed: np.ndarray  # bool
    learn_days: np.ndarray  # days spent in the current learning period
    learn_orders: np.ndarray  # (window, n) orders of the last days while learning
    recent_edits: np.ndarray  # (relearn_window_days, n): the last days' edit sizes, in units
    # of the one-day re-learning thresholds (envs.actions.edit_size)
    recent_orders: np.ndarray  # (starvation_window_days, n): orders of the last days since
    # learning last restarted
    creative_age_days: np.ndarray
    balance_cny: np.ndarray
    recovery_days_left: np.ndarray  # days of post-interruption penalties left
    interrupted: np.ndarray  # bool: yesterday's delivery stopped on an empty balance
    protection_edits: np.ndarray  # edits within the cost-protection window
    organic_stock_cny: np.ndarray  # smoothed recent ad GMV (CNY/day)
    refund_pipe: np.ndarray  # (2, 7, n): refunds landing in 1..7 days, rows AD_REFUNDS and
    # INCREMENTAL_REFUNDS of envs.stages
    cohort_settled: np.ndarray  # (7, n): settled GMV of the last 7 order days, oldest first
    # a moving market (all 0 when market_drift_enabled is off): log deviations of the pool
    # from the account's drawn economics, hidden from the policy (envs.stages.move_market)
    roi_drift: np.ndarray  # mean-reverting log drift of the pool's mean ROI
    cost_drift: np.ndarray  # mean-reverting log drift of the pool's cost
    roi_regime: np.ndarray  # competitor regimes' log step on the pool's mean ROI
    cost_regime: np.ndarray  # competitor regimes' log step on the pool's cost
    # a promotion's warm-up (0 when warmup_stock_enabled is off; envs.stages.
    # convert_engaged_buyers): engaged buyers (carts, follows, bookings) who may buy on a peak
    engaged_buyers: np.ndarray  # buyers

    stack = classmethod(lambda cls, items: _stack(items))
    repeat = _repeat  # state.repeat(k): each account k times, account-major

    def copy(self) -> MarketState:
        return MarketState(*(np.array(value) for value in self))

    def account(self, i: int) -> MarketState:
        """Account ``i`` alone, as a batch of one (a copy)."""
        return MarketState(**{name: (getattr(self, name)[..., i:i + 1]
                                     if name in _BATCH_LAST
                                     else getattr(self, name)[i:i + 1]).copy()
                              for name in self._fields})


class Decision(NamedTuple):
    """The morning's settings. Arrays of shape (n,) ((n, 4) for shares, columns PLANS)."""

    target_roi: np.ndarray
    budget_cny: np.ndarray
    shares: np.ndarray
    refresh: np.ndarray  # bool: refresh creatives today


class DayOutcome(NamedTuple):
    """What one day produced. Dashboard fields first, hidden quantities after."""

    spend: np.ndarray  # CNY
    gmv: np.ndarray  # payment GMV attributed to ads (CNY)
    orders: np.ndarray
    refunds: np.ndarray  # ad refunds landing today (CNY), as the dashboard shows them
    settled_gmv: np.ndarray  # refund-net GMV of the order day 7 days ago, settled today
    payment_roi: np.ndarray
    learning: np.ndarray  # bool, state during the day
    learn_failed: np.ndarray
    interrupted: np.ndarray  # bool: delivery stopped on an empty balance
    promo: np.ndarray  # bool: a promotion peak day
    balance: np.ndarray  # CNY at the end of the day
    credit: np.ndarray  # cost-protection credit (CNY)
    refresh_cost: np.ndarray  # CNY
    # hidden: for the reward and metrics only
    incremental_gmv: np.ndarray  # ad GMV net of cannibalisation, plus organic uplift (CNY)
    incremental_refunds_landed: np.ndarray  # refunds on incremental GMV landing today (CNY)
    cohort_incremental_refunds: np.ndarray  # refunds today's incremental GMV will have (CNY)
    cohort_refunds: np.ndarray  # refunds today's ad orders will have (CNY)
    pool_share: np.ndarray  # share of the pool bought (depth)
    organic_gmv: np.ndarray  # organic lift and uplift (CNY), the warm-up's peak GMV included
    engaged_gmv: np.ndarray  # GMV of the warm-up's engaged buyers on a peak day (CNY)
    expected_gmv: np.ndarray  # ad GMV expected before the day's noise and order count (CNY)


class MarketModel:
    """The day-by-day market of a scenario, for ``n`` accounts at once."""

    def __init__(self, config: ScenarioConfig, engine: str | None = None):
        """:param engine: ``numba`` or ``numpy`` for :meth:`step` (:mod:`envs.compiled`);
            default ``$QIANCHUAN_ENGINE``, else ``numba``."""
        self.cfg = config
        self.calendar = PromoCalendar.from_config(config)
        self.launch_shares = plan_share_row(config.launch_shares)  # (4,), columns PLANS
        # what compiled code reads of the scenario, and the same as compiled entries take it
        self.inputs = scenario_inputs(config, self.calendar)
        self.flat_inputs = flat(self.inputs)
        self._simulate_day = compiled(simulate_day_of_tuples, engine)
        self.n_draws = draw_count(config)  # columns of the day's draws

    # ------------------------------------------------------------------ reset
    def sample_params(self, rng: np.random.Generator, n: int) -> AccountParams:
        """Draw each account's economics (randomised around the scenario if configured)."""
        cfg = self.cfg
        s = cfg.randomize
        u = rng.uniform(-1.0, 1.0, size=(n, 6)) * s
        bias = (np.exp(cfg.bidder_bias_sd * rng.standard_normal(n))
                if cfg.bidder_noise_enabled else np.ones(n))
        cost = cfg.pool_cost_cny * np.exp(u[:, 0])
        pool_roi = cfg.pool_mean_roi * np.exp(0.5 * u[:, 1])
        sigma = np.clip(cfg.pool_sigma * np.exp(0.5 * u[:, 2]), 0.2, 1.4)
        return AccountParams(
            pool_cost_cny=cost,
            pool_mean_roi=pool_roi,
            pool_sigma=sigma,
            refund_rate=np.clip(cfg.refund_rate * np.exp(u[:, 3]), 0.0, 0.9),
            aov_cny=cfg.aov_cny * np.exp(u[:, 4]),
            margin=np.clip(cfg.margin * np.exp(0.5 * u[:, 5]), 0.01, 0.95),
            bidder_bias=bias,
            launch_budget_cny=cfg.launch_budget_cny * np.exp(u[:, 0]),
            start_weekday=rng.integers(0, 7, size=n),
            typical_share=typical_share(cfg, pool_roi, sigma),
        )

    def initial_state(self, params: AccountParams, rng: np.random.Generator) -> MarketState:
        """State at the start of the pre-launch history: a mature plan at the typical target."""
        cfg = self.cfg
        n = params.pool_cost_cny.shape[0]
        shock_sd = cfg.traffic_shock_sd if cfg.shocks_enabled else 0.0
        traffic_shock = shock_sd * rng.standard_normal(n)
        roi_drift, cost_drift = np.zeros(n), np.zeros(n)
        if cfg.market_drift_enabled:  # drawn only then: the stream is unchanged when off
            roi_drift = cfg.drift_roi_sd * rng.standard_normal(n)  # stationary start
            cost_drift = cfg.drift_cost_sd * rng.standard_normal(n)
        return MarketState(
            day=np.full(n, -cfg.history_days, dtype=np.int64),
            target_roi=np.full(n, cfg.typical_target_roi),
            budget_cny=params.launch_budget_cny.copy(),
            shares=np.tile(self.launch_shares, (n, 1)),
            traffic_shock=traffic_shock,
            learning=np.zeros(n, dtype=bool),
            learn_failed=np.zeros(n, dtype=bool),
            learn_days=np.zeros(n, dtype=np.int64),
            learn_orders=np.zeros((cfg.learning_window_days, n)),
            recent_edits=np.zeros((cfg.relearn_window_days, n)),
            recent_orders=np.zeros((cfg.starvation_window_days, n)),
            creative_age_days=np.zeros(n),
            balance_cny=np.full(n, cfg.initial_balance_cny),
            recovery_days_left=np.zeros(n, dtype=np.int64),
            interrupted=np.zeros(n, dtype=bool),
            protection_edits=np.zeros(n, dtype=np.int64),
            organic_stock_cny=np.zeros(n),
            refund_pipe=np.zeros((2, REFUND_DAYS, n)),
            cohort_settled=np.zeros((REFUND_DAYS, n)),
            roi_drift=roi_drift, cost_drift=cost_drift,
            roi_regime=np.zeros(n), cost_regime=np.zeros(n),  # regimes from the history's start
            engaged_buyers=np.zeros(n),
        )

    def launch(self, state: MarketState, params: AccountParams) -> MarketState:
        """Start the new plan at day 0: learning, fresh creatives, the launch settings.

        Refunds still landing from pre-launch orders stay on the dashboard but are not the
        new plan's: the incremental (reward) pipeline starts empty.
        """
        cfg = self.cfg
        s = state.copy()
        s.day[:] = 0
        s.target_roi[:] = cfg.launch_target_roi
        s.budget_cny[:] = params.launch_budget_cny
        s.shares[:] = self.launch_shares
        s.learning[:] = cfg.learning_enabled
        s.learn_failed[:] = False
        s.learn_days[:] = 0
        s.learn_orders[:] = 0.0
        s.recent_edits[:] = 0.0
        s.recent_orders[:] = 0.0
        s.creative_age_days[:] = 0.0
        s.balance_cny[:] = cfg.initial_balance_cny
        s.recovery_days_left[:] = 0
        s.interrupted[:] = False
        s.protection_edits[:] = 0
        s.refund_pipe[INCREMENTAL_REFUNDS] = 0.0
        s.engaged_buyers[:] = 0.0
        return s

    # ------------------------------------------------------------------- step
    def step(self, state: MarketState, params: AccountParams, decision: Decision,
             draws: np.ndarray) -> tuple[MarketState, DayOutcome]:
        """Simulate one day for every account (see :func:`simulate_day`).

        :param state: the state at dawn (not modified).
        :param params: each account's economics.
        :param decision: the day's settings, already within platform limits.
        :param draws: standard normals of shape (n, ``self.n_draws``) (:func:`draw_count`).
        :return: the state at the next dawn, and the day's outcome.
        """
        decision = Decision(np.asarray(decision.target_roi, dtype=np.float64),
                            np.asarray(decision.budget_cny, dtype=np.float64),
                            np.ascontiguousarray(decision.shares, dtype=np.float64),
                            np.asarray(decision.refresh, dtype=np.bool_))
        # records as plain tuples (envs.inputs: Numba's dispatcher types them fast)
        return self._simulate_day(self.flat_inputs, tuple(state), tuple(params),
                                  tuple(decision), np.ascontiguousarray(draws, dtype=np.float64))


def typical_share(cfg: ScenarioConfig, pool_roi: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The pool share the scenario's typical target buys, as the bidder buys it (on its
    estimates, if noisy): the reference depth of the refund rate (:func:`envs.stages.
    draw_refunds`).

    :param pool_roi: the accounts' pool mean ROI (GMV/spend), (n,); ``sigma`` its log-sd.
    """
    s = ranking_sigma(sigma, cfg.estimation_noise_sd) if cfg.estimation_noise_enabled else sigma
    return qualifying_share(np.full(np.shape(pool_roi), cfg.typical_target_roi), pool_roi, s)


def draw_count(config: ScenarioConfig) -> int:
    """Columns of a day's draws: :data:`N_DRAWS`, plus :data:`N_DRIFT_DRAWS` when the market
    moves (``market_drift_enabled``)."""
    return N_DRAWS + (N_DRIFT_DRAWS if config.market_drift_enabled else 0)


@helper
def breakeven_roi(margin: np.ndarray, refund_rate: np.ndarray) -> np.ndarray:
    """Payment ROI at which ads pay for themselves: ``1 / (margin (1 - refund_rate))``."""
    return 1.0 / (margin * (1.0 - refund_rate))


@helper
def pending_refunds(refund_pipe: np.ndarray) -> np.ndarray:
    """Incremental refunds not yet landed (the pipe's ``INCREMENTAL_REFUNDS`` row summed over
    the days ahead), CNY."""
    incremental = refund_pipe[INCREMENTAL_REFUNDS]
    pending = incremental[0].copy()
    for ahead in range(1, incremental.shape[0]):
        pending += incremental[ahead]
    return pending


def simulate_day_of_tuples(inputs: tuple, state: tuple, params: tuple, decision: tuple,
                           draws: np.ndarray) -> tuple[MarketState, DayOutcome]:
    """:func:`simulate_day` with its records passed as plain tuples (the compiled entry).

    :param inputs: the scenario, :func:`envs.inputs.flat`.
    """
    scenario = scenario_of(inputs)
    return simulate_day(scenario.constants, scenario.tables, MarketState(*state),
                        AccountParams(*params), Decision(*decision), draws)


@helper
def simulate_day(c: DayConstants, t: DayTables, state: MarketState, params: AccountParams,
                 decision: Decision, draws: np.ndarray) -> tuple[MarketState, DayOutcome]:
    """One day for every account: the stages of :mod:`envs.stages`, in order, then the next
    state and the day's outcome assembled from what they produced.

    Written in the NumPy subset Numba compiles; :class:`MarketModel` runs it compiled unless
    told otherwise. Arrays of the inputs are never modified.

    :param c: the scenario's scalar parameters (:func:`envs.inputs.day_constants`).
    :param t: the scenario's tables (:func:`envs.inputs.day_tables`).
    :param state: the state at dawn.
    :param params: each account's economics.
    :param decision: the day's settings, within platform limits (float64, bool ``refresh``).
    :param draws: standard normals (n, :func:`draw_count`), columns ``DRAW_*``.
    :return: the state at the next dawn, and the day's outcome.
    """
    launched = state.day >= 0  # the new plan runs (not the pre-launch history)
    calendar = calendar_row(state.day, t.calendar_offset, t.traffic_mult.shape[0])
    weekday_mult = t.weekday_traffic[(params.start_weekday + state.day) % 7]
    morning, dawn = apply_decision(c, state, decision, launched)
    if c.market_drift_enabled:
        if draws.shape[1] < N_DRAWS + N_DRIFT_DRAWS:
            raise ValueError("a moving market needs the drift's draws (envs.market.draw_count)")
        drift = move_market(c, params.pool_cost_cny, params.pool_mean_roi, state.roi_drift,
                            state.cost_drift, state.roi_regime, state.cost_regime,
                            draws[:, DRAW_ROI_DRIFT], draws[:, DRAW_COST_DRIFT],
                            draws[:, DRAW_REGIME], draws[:, DRAW_REGIME_ROI],
                            draws[:, DRAW_REGIME_COST])
    else:
        drift = hold_market(params.pool_cost_cny, params.pool_mean_roi, state.roi_drift,
                            state.cost_drift, state.roi_regime, state.cost_regime)
    traffic = price_traffic(c, drift.pool_cost_cny, drift.pool_mean_roi, weekday_mult,
                            t.traffic_mult[calendar], t.roi_mult[calendar], state.traffic_shock,
                            state.recovery_days_left, morning.creative_age_days, dawn,
                            draws[:, DRAW_TRAFFIC], draws[:, DRAW_POOL_ROI])
    bids = place_bids(c, t.share_table, params.pool_sigma, morning, traffic, launched)
    orders = take_orders(c, params.bidder_bias, params.aov_cny, dawn.learning, traffic, bids,
                         draws[:, DRAW_BIDDER], draws[:, DRAW_ORDERS], draws[:, DRAW_BASKET])
    refunds = draw_refunds(c, params.refund_rate, t.refund_mult[calendar],
                           params.typical_share, bids.depth, orders, draws[:, DRAW_REFUNDS])
    if c.warmup_stock_enabled:
        engagement = convert_engaged_buyers(c, state.engaged_buyers, params.aov_cny,
                                            t.days_to_peak[calendar], t.in_peak[calendar],
                                            launched, orders.orders)
    else:
        engagement = hold_engaged_buyers(state.engaged_buyers)
    organic = add_organic(c, state.organic_stock_cny, launched, orders, refunds, engagement)
    learned = progress_learning(c, dawn, morning.shares[:, SETTLEMENT_ROI], orders.orders,
                                launched)
    book = book_refunds(t.refund_kernel, state.refund_pipe, state.cohort_settled, orders.gmv,
                        refunds, organic)
    money = settle_money(c, launched, morning, bids, orders, state.recovery_days_left)

    next_state = MarketState(
        day=state.day + 1, target_roi=morning.target_roi, budget_cny=morning.budget_cny,
        shares=morning.shares, traffic_shock=traffic.traffic_shock, learning=learned.learning,
        learn_failed=learned.learn_failed, learn_days=learned.learn_days,
        learn_orders=learned.learn_orders, recent_edits=learned.recent_edits,
        recent_orders=learned.recent_orders,
        creative_age_days=morning.creative_age_days + 1.0, balance_cny=money.balance_cny,
        recovery_days_left=money.recovery_days_left, interrupted=bids.interrupted,
        protection_edits=morning.protection_edits,
        organic_stock_cny=organic.organic_stock_cny, refund_pipe=book.refund_pipe,
        cohort_settled=book.cohort_settled, roi_drift=drift.roi_drift,
        cost_drift=drift.cost_drift, roi_regime=drift.roi_regime,
        cost_regime=drift.cost_regime, engaged_buyers=engagement.engaged_buyers)
    spend, gmv = bids.spend, orders.gmv
    outcome = DayOutcome(
        spend=spend, gmv=gmv, orders=orders.orders, refunds=book.refunds_landed,
        settled_gmv=book.settled_gmv,
        payment_roi=np.where(spend > 0, gmv / np.maximum(spend, 1e-9), 0.0),
        learning=dawn.learning, learn_failed=dawn.learn_failed,
        interrupted=bids.interrupted, promo=t.in_peak[calendar],
        balance=money.balance_cny.copy(), credit=money.credit,
        refresh_cost=money.refresh_cost, incremental_gmv=organic.incremental_gmv,
        incremental_refunds_landed=book.incremental_refunds_landed,
        cohort_incremental_refunds=organic.cohort_incremental_refunds,
        cohort_refunds=refunds.cohort_refunds, pool_share=bids.depth,
        organic_gmv=organic.organic_gmv, engaged_gmv=engagement.peak_gmv,
        expected_gmv=orders.expected_gmv)
    return next_state, outcome
