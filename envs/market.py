"""The market model: one day of a Qianchuan advertiser's account, batched over accounts.

NumPy, in the subset Numba compiles: the day is one function, :func:`simulate_day`, that
the simulator runs compiled and that also runs as plain NumPy (:mod:`envs.compiled`). Every
array has a leading batch axis of ``n`` accounts (one account is ``n = 1``). Randomness
enters only through explicit arrays: :meth:`MarketModel.sample_params` and
:meth:`MarketModel.initial_state` take a :class:`numpy.random.Generator`, and
:meth:`MarketModel.step` takes the day's standard normal draws ``(n, N_DRAWS)``. So a
batch of accounts evolves exactly as the same accounts run one by one with the same draws.

One day, in order (see ``docs/market-model.md`` for each mechanic and its sources):

1. the morning decision (target, budget, plan shares, creative refresh) may restart
   learning; top-ups arrive;
2. the pool: cost ``V`` (weekday, AR(1) shock, promotion, creative fatigue, learning and
   post-interruption throttles) and mean ROI ``m`` (shock, promotion, learning, cost penalty);
3. the bidder: ROI plans buy the qualifying traffic (closed form in :mod:`envs.pool`) within
   their budgets, the volume plan buys the best of what is left within its budget, at no
   better than the pool's mean ROI; spend is
   capped by the balance (running out interrupts delivery);
4. achieved GMV (calibration bias and noise), Poisson orders, basket noise;
5. refunds: a rate rising with depth and on peaks, lower for settlement-ROI plans, landing
   over the next 7 days; settlement of the cohort ordered 7 days ago;
6. organic: cannibalised ad GMV, the whole-site uplift, the carry-over lift from the stock
   of recent ad GMV;
7. learning progress and failure, cost protection credit, balance, creative age.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, get_type_hints

import numpy as np
from scipy.special import gammaln, ndtr

from envs.calendar import PromoCalendar, calendar_row
from envs.compiled import compiled, helper
from envs.config import ScenarioConfig
from envs.pool import gmv_share, qualifying_share, share_table, table_share

PLANS = ("payment_roi", "settlement_roi", "volume")
# Columns of the daily draws, each a standard normal.
DRAW_TRAFFIC, DRAW_POOL_ROI, DRAW_BIDDER, DRAW_ORDERS, DRAW_BASKET, DRAW_REFUNDS = range(6)
N_DRAWS = 6
REFUND_DAYS = 7
SMALL_POISSON = 12.0  # below this mean, orders are drawn by exact inversion
_MAX_COUNT = 48  # counts the exact inversion considers (P(k >= 48) < 1e-12)
_LOG_FACTORIALS = gammaln(np.arange(_MAX_COUNT) + 1.0)


# Ring buffers keep the batch axis LAST (day-major), so shifting a day and summing over days
# are contiguous row operations rather than many tiny per-account ones.
_BATCH_LAST = frozenset({"learn_orders", "refund_pipe", "cohort_settled"})


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
    shares: np.ndarray  # (n, 3) budget shares of PLANS
    traffic_shock: np.ndarray  # AR(1) log shock on the pool's cost
    learning: np.ndarray  # bool
    learn_failed: np.ndarray  # bool
    learn_days: np.ndarray  # days spent in the current learning period
    learn_orders: np.ndarray  # (window, n) orders of the last days while learning
    creative_age_days: np.ndarray
    balance_cny: np.ndarray
    recovery_days_left: np.ndarray  # days of post-interruption penalties left
    interrupted: np.ndarray  # bool: yesterday's delivery stopped on an empty balance
    protection_edits: np.ndarray  # edits within the cost-protection window
    organic_stock_cny: np.ndarray  # smoothed recent ad GMV (CNY/day)
    refund_pipe: np.ndarray  # (2, 7, n): refunds landing in 1..7 days: [ad, incremental]
    cohort_settled: np.ndarray  # (7, n): settled GMV of the last 7 order days, oldest first

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
    """The morning's settings. Arrays of shape (n,) ((n, 3) for shares)."""

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
    organic_gmv: np.ndarray  # organic lift and uplift (CNY)


@helper
def poisson_from_normal(lam: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Poisson(``lam``) counts from standard normal draws ``z`` by quantile mapping.

    Exact inversion of the CDF at ``Phi(z)`` for small means; a Cornish-Fisher quantile
    (right mean, variance and skew) above :data:`SMALL_POISSON`.
    """
    lam = np.maximum(lam, 0.0)
    approx = lam + np.sqrt(lam) * z + (z * z - 1.0) / 6.0
    counts = np.maximum(np.ceil(approx - 0.5), 0.0)
    small = np.nonzero(lam < SMALL_POISSON)[0]
    if small.shape[0] > 0:
        ls = lam[small]
        log_lam = np.log(np.maximum(ls, 1e-300))
        u = ndtr(z[small]) * (1.0 - 1e-12)
        cdf = np.zeros(small.shape[0])
        below = np.zeros(small.shape[0])  # how many counts k have P(K <= k) < u
        for k in range(_MAX_COUNT):
            cdf += np.exp(k * log_lam - ls - _LOG_FACTORIALS[k])
            short = cdf < u
            if not short.any():  # the CDF only grows: no later count is below u either
                break
            below += short
        counts[small] = below
    return counts


# Scalar fields of ScenarioConfig, as the named tuple compiled code reads them (``c.<field>``).
_SCALAR_TYPES = (bool, int, float)
_CONFIG_HINTS = get_type_hints(ScenarioConfig)
DayConstants = NamedTuple("DayConstants", [
    (f.name, _CONFIG_HINTS[f.name]) for f in dataclasses.fields(ScenarioConfig)
    if _CONFIG_HINTS[f.name] in _SCALAR_TYPES])
DayConstants.__module__ = __name__


def day_constants(config: ScenarioConfig) -> DayConstants:
    """The config's scalar fields, each cast to its declared type (one compiled signature)."""
    return DayConstants(*(kind(getattr(config, name))
                          for name, kind in DayConstants.__annotations__.items()))


class DayTables(NamedTuple):
    """The arrays a day reads besides the accounts' own: weekday and promotion multipliers,
    the refund kernel, the pool's share table."""

    weekday_traffic: np.ndarray  # (7,) multiplier on the pool's cost, Monday first
    refund_kernel: np.ndarray  # (REFUND_DAYS,) share of refunds landing 1..7 days later
    calendar_offset: int  # calendar row of day 0
    traffic_mult: np.ndarray  # per calendar row (PromoCalendar)
    roi_mult: np.ndarray
    refund_mult: np.ndarray
    in_peak: np.ndarray
    share_table: np.ndarray  # envs.pool.share_table()


class MarketModel:
    """The day-by-day market of a scenario, for ``n`` accounts at once."""

    def __init__(self, config: ScenarioConfig, engine: str | None = None):
        """:param engine: ``numba`` or ``numpy`` for :meth:`step` (:mod:`envs.compiled`);
            default ``$QIANCHUAN_ENGINE``, else ``numba``."""
        self.cfg = config
        self.calendar = PromoCalendar.from_config(config)
        self.weekday_traffic = (np.asarray(config.weekday_traffic, dtype=np.float64)
                                if config.weekday_enabled else np.ones(7))
        self.refund_kernel = np.asarray(config.refund_kernel, dtype=np.float64)
        self.launch_shares = np.asarray(config.launch_shares)
        cal = self.calendar
        tables = DayTables(self.weekday_traffic, self.refund_kernel, cal.offset,
                                cal.traffic_mult, cal.roi_mult, cal.refund_mult, cal.in_peak,
                                share_table())
        # the same as plain tuples: what compiled entries take (Numba types them fast)
        self.constants_tuple, self.tables_tuple = tuple(day_constants(config)), tuple(tables)
        self._simulate_day = compiled(simulate_day_of_tuples, engine)

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
            typical_share=qualifying_share(np.full(n, cfg.typical_target_roi), pool_roi, sigma),
        )

    def initial_state(self, params: AccountParams, rng: np.random.Generator) -> MarketState:
        """State at the start of the pre-launch history: a mature plan at the typical target."""
        cfg = self.cfg
        n = params.pool_cost_cny.shape[0]
        shock_sd = cfg.traffic_shock_sd if cfg.shocks_enabled else 0.0
        return MarketState(
            day=np.full(n, -cfg.history_days, dtype=np.int64),
            target_roi=np.full(n, cfg.typical_target_roi),
            budget_cny=params.launch_budget_cny.copy(),
            shares=np.tile(self.launch_shares, (n, 1)),
            traffic_shock=shock_sd * rng.standard_normal(n),
            learning=np.zeros(n, dtype=bool),
            learn_failed=np.zeros(n, dtype=bool),
            learn_days=np.zeros(n, dtype=np.int64),
            learn_orders=np.zeros((cfg.learning_window_days, n)),
            creative_age_days=np.zeros(n),
            balance_cny=np.full(n, cfg.initial_balance_cny),
            recovery_days_left=np.zeros(n, dtype=np.int64),
            interrupted=np.zeros(n, dtype=bool),
            protection_edits=np.zeros(n, dtype=np.int64),
            organic_stock_cny=np.zeros(n),
            refund_pipe=np.zeros((2, REFUND_DAYS, n)),
            cohort_settled=np.zeros((REFUND_DAYS, n)),
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
        s.creative_age_days[:] = 0.0
        s.balance_cny[:] = cfg.initial_balance_cny
        s.recovery_days_left[:] = 0
        s.interrupted[:] = False
        s.protection_edits[:] = 0
        s.refund_pipe[1] = 0.0
        return s

    # ------------------------------------------------------------------- step
    def step(self, state: MarketState, params: AccountParams, decision: Decision,
             draws: np.ndarray) -> tuple[MarketState, DayOutcome]:
        """Simulate one day for every account (see :func:`simulate_day`).

        :param state: the state at dawn (not modified).
        :param params: each account's economics.
        :param decision: the day's settings, already within platform limits.
        :param draws: standard normals of shape (n, :data:`N_DRAWS`).
        :return: the state at the next dawn, and the day's outcome.
        """
        decision = Decision(np.asarray(decision.target_roi, dtype=np.float64),
                            np.asarray(decision.budget_cny, dtype=np.float64),
                            np.ascontiguousarray(decision.shares, dtype=np.float64),
                            np.asarray(decision.refresh, dtype=np.bool_))
        # plain tuples: Numba's dispatcher types them fast (named tuples cost ~70 µs a call)
        return self._simulate_day(self.constants_tuple, self.tables_tuple, tuple(state),
                                  tuple(params), tuple(decision),
                                  np.ascontiguousarray(draws, dtype=np.float64))


@helper
def breakeven_roi(margin: np.ndarray, refund_rate: np.ndarray) -> np.ndarray:
    """Payment ROI at which ads pay for themselves: ``1 / (margin (1 - refund_rate))``."""
    return 1.0 / (margin * (1.0 - refund_rate))


@helper
def pending_refunds(refund_pipe: np.ndarray) -> np.ndarray:
    """Incremental refunds not yet landed (``refund_pipe[1]`` summed over the days ahead),
    CNY."""
    pending = refund_pipe[1, 0].copy()
    for ahead in range(1, refund_pipe.shape[1]):
        pending += refund_pipe[1, ahead]
    return pending


def simulate_day_of_tuples(c: tuple, t: tuple, state: tuple, params: tuple, decision: tuple,
                           draws: np.ndarray) -> tuple[MarketState, DayOutcome]:
    """:func:`simulate_day` with its records passed as plain tuples (the compiled entry)."""
    return simulate_day(DayConstants(*c), DayTables(*t), MarketState(*state),
                        AccountParams(*params), Decision(*decision), draws)


@helper
def simulate_day(c: DayConstants, t: DayTables, state: MarketState, params: AccountParams,
                 decision: Decision, draws: np.ndarray) -> tuple[MarketState, DayOutcome]:
    """One day for every account: the model itself (the steps of this module's docstring).

    Written in the NumPy subset Numba compiles; :class:`MarketModel` runs it compiled unless
    told otherwise. Arrays of the inputs are never modified.

    :param c: the scenario's scalar parameters (:func:`day_constants`).
    :param t: the scenario's tables.
    :param state: the state at dawn.
    :param params: each account's economics.
    :param decision: the day's settings, within platform limits (float64, bool ``refresh``).
    :param draws: standard normals (n, :data:`N_DRAWS`).
    :return: the state at the next dawn, and the day's outcome.
    """
    day = state.day
    n = day.shape[0]
    launched = day >= 0
    cal = calendar_row(day, t.calendar_offset, t.traffic_mult.shape[0])

    # 1. the decision; what restarts learning; top-ups
    target_jump = np.abs(np.log(decision.target_roi / state.target_roi)) > np.log1p(
        c.relearn_target_change)
    budget_jump = decision.budget_cny > state.budget_cny * (1.0 + c.relearn_budget_jump)
    target_edit = decision.target_roi != state.target_roi
    refresh = decision.refresh & launched
    in_protection = launched & (day < c.cost_protection_days)
    protection_edits = state.protection_edits + (in_protection
                                                 & (target_edit | refresh)).astype(np.int64)
    learning = state.learning.copy()
    learn_failed = state.learn_failed.copy()
    learn_days = state.learn_days.copy()
    learn_orders = state.learn_orders.copy()
    if c.learning_enabled:
        relearn = launched & (target_jump | budget_jump | refresh | state.interrupted)
        learning |= relearn
        learn_failed &= ~relearn
        learn_days[relearn] = 0
        learn_orders[:, relearn] = 0.0
    target_roi = decision.target_roi.copy()
    budget_cny = decision.budget_cny.copy()
    shares = decision.shares.copy()
    creative_age_days = np.where(refresh, 0.0, state.creative_age_days)
    balance_cny = state.balance_cny.copy()
    if c.balance_enabled:
        topup = launched & (day > 0) & (day % c.topup_interval_days == 0)
        balance_cny = balance_cny + np.where(topup, c.topup_cny, 0.0)

    # 2. the pool
    if c.shocks_enabled:
        rho = c.traffic_shock_ar
        traffic_shock = rho * state.traffic_shock + c.traffic_shock_sd * np.sqrt(
            1.0 - rho * rho) * draws[:, DRAW_TRAFFIC]
        roi_noise = np.exp(c.roi_shock_sd * draws[:, DRAW_POOL_ROI])
    else:
        traffic_shock = np.zeros(n)
        roi_noise = np.ones(n)
    weekday = t.weekday_traffic[(params.start_weekday + day) % 7]
    if c.fatigue_enabled:
        fatigue = c.fatigue_floor + (1.0 - c.fatigue_floor) * np.exp2(
            -creative_age_days / c.creative_half_life_days)
    else:
        fatigue = np.ones(n)
    recovering = state.recovery_days_left > 0
    traffic_mult = (np.where(learning, c.learning_traffic_mult, 1.0)
                    * np.where(learn_failed, c.learn_failed_traffic_mult, 1.0)
                    * np.where(recovering, 1.0 - c.interrupt_traffic_penalty, 1.0))
    pool_cost = (params.pool_cost_cny * weekday * np.exp(traffic_shock)
                 * t.traffic_mult[cal] * fatigue * traffic_mult)
    pool_roi = (params.pool_mean_roi * roi_noise * t.roi_mult[cal]
                * np.where(learning, c.learning_roi_mult, 1.0)
                / np.where(recovering, 1.0 + c.interrupt_cost_penalty, 1.0))
    sigma = params.pool_sigma

    # 3. the bidder: ROI plans buy qualifying traffic, the volume plan the best of the rest
    q = table_share(t.share_table, target_roi, pool_roi, sigma)
    qualifying_cost = pool_cost * q
    avg_roi = np.where(q < 1.0, np.maximum(target_roi, pool_roi), pool_roi)
    budgets = np.expand_dims(budget_cny, 1) * shares
    spend_set = np.minimum(budgets[:, 1], (1.0 - c.settlement_volume_penalty)
                           * qualifying_cost)
    spend_pay = np.minimum(budgets[:, 0], qualifying_cost - spend_set)
    roi_spend = spend_pay + spend_set
    # the differences are floored: with q = 1, roi_spend can round a unit above the pool
    spend_vol = np.minimum(budgets[:, 2], np.maximum(pool_cost - roi_spend, 0.0))
    vol_top = np.minimum(spend_vol, np.maximum(qualifying_cost - roi_spend, 0.0))
    vol_deep = spend_vol - vol_top  # below the threshold, best first
    depth = np.minimum(q + vol_deep / np.maximum(pool_cost, 1e-9), 1.0)
    # GMV share of the qualifying traffic: H(q) = q * avg / m (avg ROI = target if q < 1)
    bought_share = q * avg_roi / pool_roi
    deep_gmv = np.where(vol_deep > 0.0, pool_cost * pool_roi * np.maximum(
        gmv_share(depth, sigma) - bought_share, 0.0), 0.0)
    spend = roi_spend + spend_vol
    interrupted = np.zeros(n, dtype=np.bool_)
    if c.balance_enabled:
        available = np.where(launched, np.maximum(balance_cny, 0.0), np.inf)
        interrupted = spend > available
        scale = np.where(interrupted, available / np.maximum(spend, 1e-9), 1.0)
        spend_pay, spend_set, vol_top = spend_pay * scale, spend_set * scale, vol_top * scale
        deep_gmv, spend_vol = deep_gmv * scale, spend_vol * scale
        # an interrupted day spends the balance exactly (spend * scale can round above it), so
        # balance - spend below is exactly 0 then, and >= 0 whenever spend <= balance
        spend = np.where(interrupted, available, spend)

    # 4. achieved GMV and orders
    gmv_pay, gmv_set = avg_roi * spend_pay, avg_roi * spend_set
    # The volume plan has no ROI control: it takes the best traffic left, but its average
    # is at most the pool's mean ROI (brief §1), so a small volume budget behind a high
    # target cannot act as a second ROI lever.
    gmv_vol = np.minimum(avg_roi * vol_top + deep_gmv, pool_roi * spend_vol)
    expected_gmv = gmv_pay + gmv_set + gmv_vol
    if c.bidder_noise_enabled:
        noise_sd = c.bidder_noise_sd * np.where(learning, c.learning_noise_mult, 1.0)
        achieved = params.bidder_bias * np.exp(noise_sd * draws[:, DRAW_BIDDER]
                                               - 0.5 * noise_sd * noise_sd)
        basket = np.exp(c.basket_noise_sd * draws[:, DRAW_BASKET]
                        - 0.5 * c.basket_noise_sd ** 2)
    else:
        achieved = np.ones(n)
        basket = np.ones(n)
    orders = poisson_from_normal(expected_gmv * achieved / params.aov_cny,
                                 draws[:, DRAW_ORDERS])
    gmv = orders * params.aov_cny * basket
    inv_gmv = 1.0 / np.maximum(expected_gmv, 1e-9)
    mix_roi, mix_set = (gmv_pay + gmv_set) * inv_gmv, gmv_set * inv_gmv  # GMV shares
    mix_vol = gmv_vol * inv_gmv

    # 5. refunds and settlement
    if c.refunds_enabled:
        base_rate = params.refund_rate * t.refund_mult[cal]
        rate = np.minimum(np.maximum(
            base_rate * (1.0 + c.refund_depth_slope * (depth - params.typical_share)), 0.0),
            0.95)
        mean_rate = rate * (1.0 - c.settlement_refund_reduction * mix_set)
        sd = np.sqrt(mean_rate * (1.0 - mean_rate) / np.maximum(orders, 1.0))
        cohort_refunds = gmv * np.minimum(np.maximum(mean_rate + sd * draws[:, DRAW_REFUNDS],
                                                     0.0), 1.0)
    else:
        base_rate = np.zeros(n)
        cohort_refunds = np.zeros(n)

    # 6. organic: cannibalisation, whole-site uplift, carry-over lift
    stock = state.organic_stock_cny
    if c.organic_enabled:
        cannibalised_share = (c.cannibalisation * mix_roi
                              + c.volume_cannibalisation * mix_vol)
        organic = (c.carryover_rate * stock / (1.0 + stock / c.carryover_saturation_cny)
                   + c.volume_organic_uplift * gmv * mix_vol)
        organic = np.where(launched, organic, 0.0)
        organic_stock_cny = c.carryover_decay * stock + (1.0 - c.carryover_decay) * gmv
    else:
        cannibalised_share = np.zeros(n)
        organic = np.zeros(n)
        organic_stock_cny = stock.copy()
    incremental_gmv = gmv * (1.0 - cannibalised_share) + organic
    cohort_incr_refunds = (cohort_refunds * (1.0 - cannibalised_share)
                           + organic * base_rate)

    landed = state.refund_pipe[:, 0]  # (2, n): what lands today
    pipe = np.empty_like(state.refund_pipe)
    pipe[:, :-1] = state.refund_pipe[:, 1:]
    pipe[:, -1] = 0.0
    kernel = np.expand_dims(t.refund_kernel, 1)
    pipe[0] += kernel * cohort_refunds
    pipe[1] += kernel * np.where(launched, cohort_incr_refunds, 0.0)
    settled_today = state.cohort_settled[0].copy()
    cohorts = np.empty_like(state.cohort_settled)
    cohorts[:-1] = state.cohort_settled[1:]
    cohorts[-1] = gmv - cohort_refunds

    # 7. learning, cost protection, balance, creatives
    learning_today = learning.copy()
    failed_today = learn_failed.copy()
    if c.learning_enabled:
        learn_days += learning.astype(np.int64)
        learn_orders[:-1] = learn_orders[1:].copy()
        learn_orders[-1] = np.where(learning, orders, 0.0)
        needed = c.learning_exit_orders + c.learning_settlement_extra_orders * shares[:, 1]
        exits = learning & (learn_orders.sum(axis=0) >= needed)
        fails = learning & ~exits & (learn_days >= c.learning_fail_days)
        learning &= ~(exits | fails)
        learn_failed |= fails
    credit = np.zeros(n)
    if c.cost_protection_enabled:
        roi_gmv = gmv * mix_roi
        eligible = (in_protection & (protection_edits <= c.cost_protection_max_edits)
                    & (orders >= c.cost_protection_min_orders)
                    & (roi_gmv < c.cost_protection_ratio * target_roi * roi_spend))
        credit = np.where(eligible, np.maximum(roi_spend - roi_gmv / target_roi, 0.0), 0.0)
    refresh_cost = np.where(refresh, c.refresh_cost_cny, 0.0)
    if c.balance_enabled:
        balance_cny = np.where(launched, balance_cny - spend + credit, balance_cny)
    recovery_days_left = np.where(interrupted, c.interrupt_recovery_days,
                                  np.maximum(state.recovery_days_left - 1, 0))

    next_state = MarketState(
        day=day + 1, target_roi=target_roi, budget_cny=budget_cny, shares=shares,
        traffic_shock=traffic_shock, learning=learning, learn_failed=learn_failed,
        learn_days=learn_days, learn_orders=learn_orders,
        creative_age_days=creative_age_days + 1.0, balance_cny=balance_cny,
        recovery_days_left=recovery_days_left, interrupted=interrupted,
        protection_edits=protection_edits, organic_stock_cny=organic_stock_cny,
        refund_pipe=pipe, cohort_settled=cohorts)
    outcome = DayOutcome(
        spend=spend, gmv=gmv, orders=orders, refunds=landed[0].copy(),
        settled_gmv=settled_today,
        payment_roi=np.where(spend > 0, gmv / np.maximum(spend, 1e-9), 0.0),
        learning=learning_today, learn_failed=failed_today, interrupted=interrupted,
        promo=t.in_peak[cal], balance=balance_cny.copy(), credit=credit,
        refresh_cost=refresh_cost, incremental_gmv=np.where(launched, incremental_gmv, 0.0),
        incremental_refunds_landed=landed[1].copy(),
        cohort_incremental_refunds=np.where(launched, cohort_incr_refunds, 0.0),
        cohort_refunds=cohort_refunds, pool_share=depth, organic_gmv=organic)
    return next_state, outcome
