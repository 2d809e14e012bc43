"""The market model: one day of a Qianchuan advertiser's account, batched over accounts.

Plain NumPy. Every array has a leading batch axis of ``n`` accounts (one account is
``n = 1``). Randomness enters only through explicit arrays: :meth:`MarketModel.reset` takes
a :class:`numpy.random.Generator`, and :meth:`MarketModel.step` takes the day's standard
normal draws ``(n, N_DRAWS)``. So a batch of accounts evolves exactly as the same accounts
run one by one with the same draws.

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
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, ndtr

from envs.calendar import PromoCalendar
from envs.config import ScenarioConfig
from envs.pool import gmv_share, qualifying_share

PLANS = ("payment_roi", "settlement_roi", "volume")
# Columns of the daily draws, each a standard normal.
DRAW_TRAFFIC, DRAW_POOL_ROI, DRAW_BIDDER, DRAW_ORDERS, DRAW_BASKET, DRAW_REFUNDS = range(6)
N_DRAWS = 6
REFUND_DAYS = 7
SMALL_POISSON = 12.0  # below this mean, orders are drawn by exact inversion
_COUNTS = np.arange(48.0)[None, :]  # counts the exact inversion considers (P(k >= 48) < 1e-12)
_LOG_FACTORIALS = gammaln(_COUNTS + 1.0)


# Ring buffers keep the batch axis LAST (day-major), so shifting a day and summing over days
# are contiguous row operations rather than many tiny per-account ones.
_BATCH_LAST = frozenset({"learn_orders", "refund_pipe", "cohort_settled"})


def _repeat(batch, times: int):
    """Each account of a dataclass of arrays repeated ``times`` times (account-major)."""
    return type(batch)(**{
        f.name: np.repeat(getattr(batch, f.name), times,
                          axis=-1 if f.name in _BATCH_LAST else 0)
        for f in dataclasses.fields(batch)})


def _stack(items: list):
    """Concatenate dataclasses of arrays field by field (a batch from single accounts)."""
    first = items[0]
    return type(first)(**{
        f.name: np.concatenate([getattr(x, f.name) for x in items],
                               axis=-1 if f.name in _BATCH_LAST else 0)
        for f in dataclasses.fields(first)})


@dataclass
class AccountParams:
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
        return 1.0 / (self.margin * (1.0 - self.refund_rate))

    stack = classmethod(lambda cls, items: _stack(items))
    repeat = _repeat  # params.repeat(k): each account k times, account-major


@dataclass
class MarketState:
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
        return MarketState(**{f.name: getattr(self, f.name).copy()
                              for f in dataclasses.fields(self)})

    def account(self, i: int) -> MarketState:
        """Account ``i`` alone, as a batch of one (a copy)."""
        return MarketState(**{f.name: (getattr(self, f.name)[..., i:i + 1]
                                       if f.name in _BATCH_LAST
                                       else getattr(self, f.name)[i:i + 1]).copy()
                              for f in dataclasses.fields(self)})


@dataclass
class Decision:
    """The morning's settings. Arrays of shape (n,) ((n, 3) for shares)."""

    target_roi: np.ndarray
    budget_cny: np.ndarray
    shares: np.ndarray
    refresh: np.ndarray  # bool: refresh creatives today


@dataclass
class DayOutcome:
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


def poisson_from_normal(lam: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Poisson(``lam``) counts from standard normal draws ``z`` by quantile mapping.

    Exact inversion of the CDF at ``Phi(z)`` for small means; a Cornish-Fisher quantile
    (right mean, variance and skew) above :data:`SMALL_POISSON`.
    """
    lam = np.maximum(lam, 0.0)
    approx = lam + np.sqrt(lam) * z + (z * z - 1.0) / 6.0
    counts = np.maximum(np.ceil(approx - 0.5), 0.0)
    small = lam < SMALL_POISSON
    if small.any():
        ls = lam[small][:, None]
        log_pmf = _COUNTS * np.log(np.maximum(ls, 1e-300)) - ls - _LOG_FACTORIALS
        cdf = np.cumsum(np.exp(log_pmf), axis=1)
        u = ndtr(z[small])[:, None]
        counts[small] = np.sum(cdf < u * (1.0 - 1e-12), axis=1)
    return counts


class MarketModel:
    """The day-by-day market of a scenario, for ``n`` accounts at once."""

    def __init__(self, config: ScenarioConfig):
        self.cfg = config
        self.calendar = PromoCalendar.from_config(config)
        self.weekday_traffic = (np.asarray(config.weekday_traffic) if config.weekday_enabled
                                else np.ones(7))
        self.refund_kernel = np.asarray(config.refund_kernel)
        self.launch_shares = np.asarray(config.launch_shares)

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
        """Simulate one day for every account.

        :param state: the state at dawn (not modified).
        :param params: each account's economics.
        :param decision: the day's settings, already within platform limits.
        :param draws: standard normals of shape (n, :data:`N_DRAWS`).
        :return: the state at the next dawn, and the day's outcome.
        """
        cfg = self.cfg
        # arrays changed in place below are copied; the rest are replaced, never mutated
        s = dataclasses.replace(state, learning=state.learning.copy(),
                                learn_failed=state.learn_failed.copy(),
                                learn_days=state.learn_days.copy(),
                                learn_orders=state.learn_orders.copy())
        n = s.day.shape[0]
        launched = s.day >= 0
        cal = self.calendar.index(s.day)

        # 1. the decision; what restarts learning; top-ups
        target_jump = np.abs(np.log(decision.target_roi / s.target_roi)) > np.log1p(
            cfg.relearn_target_change)
        budget_jump = decision.budget_cny > s.budget_cny * (1.0 + cfg.relearn_budget_jump)
        target_edit = decision.target_roi != s.target_roi
        refresh = decision.refresh & launched
        in_protection = launched & (s.day < cfg.cost_protection_days)
        s.protection_edits += (in_protection & (target_edit | refresh)).astype(np.int64)
        if cfg.learning_enabled:
            relearn = launched & (target_jump | budget_jump | refresh | s.interrupted)
            s.learning |= relearn
            s.learn_failed &= ~relearn
            s.learn_days[relearn] = 0
            s.learn_orders[:, relearn] = 0.0
        s.target_roi = decision.target_roi.astype(float)
        s.budget_cny = decision.budget_cny.astype(float)
        s.shares = decision.shares.astype(float)
        s.creative_age_days = np.where(refresh, 0.0, s.creative_age_days)
        if cfg.balance_enabled:
            topup = launched & (s.day > 0) & (s.day % cfg.topup_interval_days == 0)
            s.balance_cny = s.balance_cny + np.where(topup, cfg.topup_cny, 0.0)

        # 2. the pool
        if cfg.shocks_enabled:
            rho = cfg.traffic_shock_ar
            s.traffic_shock = rho * s.traffic_shock + cfg.traffic_shock_sd * np.sqrt(
                1.0 - rho * rho) * draws[:, DRAW_TRAFFIC]
            roi_noise = np.exp(cfg.roi_shock_sd * draws[:, DRAW_POOL_ROI])
        else:
            s.traffic_shock = np.zeros(n)
            roi_noise = 1.0
        weekday = self.weekday_traffic[(params.start_weekday + s.day) % 7]
        fatigue = (cfg.fatigue_floor + (1.0 - cfg.fatigue_floor)
                   * np.exp2(-s.creative_age_days / cfg.creative_half_life_days)
                   if cfg.fatigue_enabled else 1.0)
        recovering = s.recovery_days_left > 0
        traffic_mult = (np.where(s.learning, cfg.learning_traffic_mult, 1.0)
                        * np.where(s.learn_failed, cfg.learn_failed_traffic_mult, 1.0)
                        * np.where(recovering, 1.0 - cfg.interrupt_traffic_penalty, 1.0))
        pool_cost = (params.pool_cost_cny * weekday * np.exp(s.traffic_shock)
                     * self.calendar.traffic_mult[cal] * fatigue * traffic_mult)
        pool_roi = (params.pool_mean_roi * roi_noise * self.calendar.roi_mult[cal]
                    * np.where(s.learning, cfg.learning_roi_mult, 1.0)
                    / np.where(recovering, 1.0 + cfg.interrupt_cost_penalty, 1.0))
        sigma = params.pool_sigma

        # 3. the bidder: ROI plans buy qualifying traffic, the volume plan the best of the rest
        q = qualifying_share(s.target_roi, pool_roi, sigma)
        qualifying_cost = pool_cost * q
        avg_roi = np.where(q < 1.0, np.maximum(s.target_roi, pool_roi), pool_roi)
        budgets = s.budget_cny[:, None] * s.shares
        spend_set = np.minimum(budgets[:, 1], (1.0 - cfg.settlement_volume_penalty)
                               * qualifying_cost)
        spend_pay = np.minimum(budgets[:, 0], qualifying_cost - spend_set)
        roi_spend = spend_pay + spend_set
        spend_vol = np.minimum(budgets[:, 2], pool_cost - roi_spend)
        vol_top = np.minimum(spend_vol, qualifying_cost - roi_spend)  # at the qualifying ROI
        vol_deep = spend_vol - vol_top  # below the threshold, best first
        depth = np.minimum(q + vol_deep / np.maximum(pool_cost, 1e-9), 1.0)
        # GMV share of the qualifying traffic: H(q) = q * avg / m (avg ROI = target if q < 1)
        bought_share = q * avg_roi / pool_roi
        deep_gmv = np.where(vol_deep > 0.0, pool_cost * pool_roi * np.maximum(
            gmv_share(depth, sigma) - bought_share, 0.0), 0.0)
        spend = roi_spend + spend_vol
        interrupted = np.zeros(n, dtype=bool)
        if cfg.balance_enabled:
            available = np.where(launched, np.maximum(s.balance_cny, 0.0), np.inf)
            interrupted = spend > available
            scale = np.where(interrupted, available / np.maximum(spend, 1e-9), 1.0)
            spend_pay, spend_set, vol_top = spend_pay * scale, spend_set * scale, vol_top * scale
            deep_gmv, spend_vol, spend = deep_gmv * scale, spend_vol * scale, spend * scale

        # 4. achieved GMV and orders
        gmv_pay, gmv_set = avg_roi * spend_pay, avg_roi * spend_set
        # The volume plan has no ROI control: it takes the best traffic left, but its average
        # is at most the pool's mean ROI (brief §1), so a small volume budget behind a high
        # target cannot act as a second ROI lever.
        gmv_vol = np.minimum(avg_roi * vol_top + deep_gmv, pool_roi * spend_vol)
        expected_gmv = gmv_pay + gmv_set + gmv_vol
        if cfg.bidder_noise_enabled:
            noise_sd = cfg.bidder_noise_sd * np.where(s.learning, cfg.learning_noise_mult, 1.0)
            achieved = params.bidder_bias * np.exp(noise_sd * draws[:, DRAW_BIDDER]
                                                   - 0.5 * noise_sd * noise_sd)
            basket = np.exp(cfg.basket_noise_sd * draws[:, DRAW_BASKET]
                            - 0.5 * cfg.basket_noise_sd ** 2)
        else:
            achieved = basket = 1.0
        orders = poisson_from_normal(expected_gmv * achieved / params.aov_cny,
                                     draws[:, DRAW_ORDERS])
        gmv = orders * params.aov_cny * basket
        inv_gmv = 1.0 / np.maximum(expected_gmv, 1e-9)
        mix_roi, mix_set = (gmv_pay + gmv_set) * inv_gmv, gmv_set * inv_gmv  # GMV shares
        mix_vol = gmv_vol * inv_gmv

        # 5. refunds and settlement
        refund_mult = self.calendar.refund_mult[cal]
        if cfg.refunds_enabled:
            base_rate = params.refund_rate * refund_mult
            rate = np.minimum(np.maximum(
                base_rate * (1.0 + cfg.refund_depth_slope * (depth - params.typical_share)), 0.0),
                0.95)
            mean_rate = rate * (1.0 - cfg.settlement_refund_reduction * mix_set)
            sd = np.sqrt(mean_rate * (1.0 - mean_rate) / np.maximum(orders, 1.0))
            cohort_refunds = gmv * np.minimum(np.maximum(mean_rate + sd * draws[:, DRAW_REFUNDS],
                                                         0.0), 1.0)
        else:
            base_rate = np.zeros(n)
            cohort_refunds = np.zeros(n)

        # 6. organic: cannibalisation, whole-site uplift, carry-over lift
        if cfg.organic_enabled:
            cannibalised_share = (cfg.cannibalisation * mix_roi
                                  + cfg.volume_cannibalisation * mix_vol)
            stock = s.organic_stock_cny
            organic = (cfg.carryover_rate * stock / (1.0 + stock / cfg.carryover_saturation_cny)
                       + cfg.volume_organic_uplift * gmv * mix_vol)
            organic = np.where(launched, organic, 0.0)
            s.organic_stock_cny = (cfg.carryover_decay * stock
                                   + (1.0 - cfg.carryover_decay) * gmv)
        else:
            cannibalised_share = np.zeros(n)
            organic = np.zeros(n)
        incremental_gmv = gmv * (1.0 - cannibalised_share) + organic
        cohort_incr_refunds = (cohort_refunds * (1.0 - cannibalised_share)
                               + organic * base_rate)

        landed = state.refund_pipe[:, 0]  # (2, n): what lands today
        pipe = np.empty_like(state.refund_pipe)
        pipe[:, :-1] = state.refund_pipe[:, 1:]
        pipe[0, -1] = 0.0
        pipe[1, -1] = 0.0
        pipe[0] += self.refund_kernel[:, None] * cohort_refunds
        pipe[1] += self.refund_kernel[:, None] * np.where(launched, cohort_incr_refunds, 0.0)
        s.refund_pipe = pipe
        settled_today = state.cohort_settled[0]
        cohorts = np.empty_like(state.cohort_settled)
        cohorts[:-1] = state.cohort_settled[1:]
        cohorts[-1] = gmv - cohort_refunds
        s.cohort_settled = cohorts

        # 7. learning, cost protection, balance, creatives
        learning_today = s.learning.copy()
        failed_today = s.learn_failed.copy()
        if cfg.learning_enabled:
            s.learn_days += s.learning.astype(np.int64)
            s.learn_orders[:-1] = s.learn_orders[1:].copy()
            s.learn_orders[-1] = np.where(s.learning, orders, 0.0)
            needed = (cfg.learning_exit_orders
                      + cfg.learning_settlement_extra_orders * s.shares[:, 1])
            exits = s.learning & (s.learn_orders.sum(axis=0) >= needed)
            fails = s.learning & ~exits & (s.learn_days >= cfg.learning_fail_days)
            s.learning &= ~(exits | fails)
            s.learn_failed |= fails
        credit = np.zeros(n)
        if cfg.cost_protection_enabled:
            roi_gmv = gmv * mix_roi
            eligible = (in_protection & (s.protection_edits <= cfg.cost_protection_max_edits)
                        & (orders >= cfg.cost_protection_min_orders)
                        & (roi_gmv < cfg.cost_protection_ratio * s.target_roi * roi_spend))
            credit = np.where(eligible, roi_spend - roi_gmv / s.target_roi, 0.0)
        refresh_cost = np.where(refresh, cfg.refresh_cost_cny, 0.0)
        if cfg.balance_enabled:
            s.balance_cny = np.where(launched, s.balance_cny - spend + credit, s.balance_cny)
        s.recovery_days_left = np.where(interrupted, cfg.interrupt_recovery_days,
                                        np.maximum(s.recovery_days_left - 1, 0))
        s.interrupted = interrupted
        s.creative_age_days = s.creative_age_days + 1.0
        s.day = s.day + 1

        outcome = DayOutcome(
            spend=spend, gmv=gmv, orders=orders, refunds=landed[0],
            settled_gmv=settled_today,
            payment_roi=np.where(spend > 0, gmv / np.maximum(spend, 1e-9), 0.0),
            learning=learning_today, learn_failed=failed_today, interrupted=interrupted,
            promo=self.calendar.in_peak[cal], balance=s.balance_cny.copy(), credit=credit,
            refresh_cost=refresh_cost, incremental_gmv=np.where(launched, incremental_gmv, 0.0),
            incremental_refunds_landed=landed[1],
            cohort_incremental_refunds=np.where(launched, cohort_incr_refunds, 0.0),
            cohort_refunds=cohort_refunds, pool_share=depth, organic_gmv=organic,
        )
        return s, outcome

    def pending_incremental_refunds(self, state: MarketState) -> np.ndarray:
        """Incremental refunds not yet landed (charged when the episode ends), CNY."""
        return state.refund_pipe[1].sum(axis=0)
