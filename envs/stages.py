"""The stages of one simulated day, each a small function over the batch of accounts.

:func:`envs.market.simulate_day` runs them in this order, each reading the state at dawn,
the accounts' parameters and what the stages before it produced, and returning a record of
its own (``docs/market-model.md`` describes each mechanic and its sources):

1. **decision** (:func:`apply_decision` -> :class:`Morning` and the :class:`Learning`
   state at dawn): the morning's settings take effect; what restarts learning; scheduled
   top-ups arrive;
2. **traffic** (:func:`move_market` -> :class:`MarketDrift`, :func:`price_traffic` ->
   :class:`Traffic`): the pool's slow drift and competitor regimes (switch
   ``market_drift_enabled``; :func:`hold_market` when off), then its cost ``V`` and mean ROI
   ``m`` today;
3. **bidding** (:func:`place_bids` -> :class:`Bids`): what each plan buys, within its budget
   and the balance;
4. **orders** (:func:`take_orders` -> :class:`Orders`): achieved GMV, Poisson orders,
   basket value;
5. **refunds** (:func:`draw_refunds` -> :class:`Refunds`): the refunds today's orders will
   have;
6. **organic** (:func:`convert_engaged_buyers` -> :class:`Engagement`, or
   :func:`hold_engaged_buyers` when switch ``warmup_stock_enabled`` is off;
   :func:`add_organic` -> :class:`Organic`): a promotion's warm-up builds a stock of engaged
   buyers that buys on its peak days; cannibalisation, the whole-site uplift, the carry-over
   lift; incremental GMV and its refunds;
7. **learning** (:func:`progress_learning` -> :class:`Learning`): progress to exit, exit,
   failure;
8. **money** (:func:`book_refunds` -> :class:`RefundBook`, :func:`settle_money` ->
   :class:`Money`): refunds scheduled and landing, settlement; cost-protection credit,
   refresh cost, balance, post-interruption recovery.

Written in the NumPy subset Numba compiles (:mod:`envs.compiled`): every stage is a helper
compiled into the one call that simulates a day. Arrays (n,) have one value per account;
money is in CNY, ROI in GMV per CNY of spend. No stage modifies the arrays it is given.

A stage takes the arrays it reads, by name, and the small records of earlier stages; the
large records (the state, the parameters, the scenario's tables) stay with
:func:`envs.market.simulate_day`. Compiled code counts references to every array it hands
to a function (about 10 ns an array): whole records for every stage cost 4.4 µs a simulated
day, this split 2.7 µs (``docs/market-model.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy.special import gammaln, ndtr

# Columns of the plans' budgets and shares: envs.actions.PLANS (WHOLE_SITE is 0 unless
# whole_site_enabled); PAYMENT_ROI and SETTLEMENT_ROI re-exported for the stages' readers.
from envs.actions import (  # noqa: F401
    PAYMENT_ROI,
    SETTLEMENT_ROI,
    VOLUME,
    WHOLE_SITE,
    edit_size,
)
from envs.calendar import FAR_DAYS
from envs.compiled import helper
from envs.pool import gmv_share, realised_average_roi, select_depth, table_share

if TYPE_CHECKING:
    from envs.inputs import DayConstants
    from envs.market import Decision, MarketState

# Rows of the refund pipe (MarketState.refund_pipe): refunds on ad GMV, on incremental GMV.
AD_REFUNDS, INCREMENTAL_REFUNDS = range(2)
MAX_COHORT_REFUND_RATE = 0.95  # a cohort's refund rate never exceeds this (share of GMV)
SMALL_POISSON = 12.0  # below this mean, orders are drawn by exact inversion
_MAX_COUNT = 48  # counts the exact inversion considers (P(k >= 48) < 1e-12)
_LOG_FACTORIALS = gammaln(np.arange(_MAX_COUNT) + 1.0)


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


# ------------------------------------------------------------------------- 1. decision
class Morning(NamedTuple):
    """The day's settings in force, once they took effect."""

    target_roi: np.ndarray  # payment-ROI target (GMV/spend)
    budget_cny: np.ndarray  # daily budget (CNY)
    shares: np.ndarray  # (n, 4) budget shares of the plans, columns PAYMENT_ROI..WHOLE_SITE
    refresh: np.ndarray  # bool: creatives refreshed today (launched plans only)
    creative_age_days: np.ndarray  # age of the creative set today (days)
    in_protection: np.ndarray  # bool: within the cost-protection window
    protection_edits: np.ndarray  # target edits and refreshes within that window
    balance_cny: np.ndarray  # account balance once today's top-ups arrived (CNY)


class Learning(NamedTuple):
    """The plan's learning state: at dawn (restarts applied), or for tomorrow."""

    learning: np.ndarray  # bool
    learn_failed: np.ndarray  # bool: failed to leave learning, throttled
    learn_days: np.ndarray  # days spent in the current learning period
    learn_orders: np.ndarray  # (window, n) orders of the last days while learning
    recent_edits: np.ndarray  # (relearn_window_days, n) edit sizes of the last days, in
    # units of the one-day re-learning thresholds (cumulative re-learning)
    recent_orders: np.ndarray  # (starvation_window_days, n) orders of the last days since
    # learning last restarted (conversion starvation)


@helper
def apply_decision(c: DayConstants, state: MarketState, decision: Decision,
                   launched: np.ndarray) -> tuple[Morning, Learning]:
    """Stage 1: the morning's settings take effect. A target change beyond
    ``relearn_target_change``, a budget rise beyond ``relearn_budget_jump``, a creative
    refresh or yesterday's balance stop restarts learning (launched plans only); scheduled
    top-ups arrive. With ``relearn_cumulative_enabled``, edits also add up: learning
    restarts when the :func:`edit_size` of the last ``relearn_window_days`` edits sums
    above 1. A restart clears the edits and the conversions counted so far. With
    ``whole_site_exclusive``, a day with a whole-site share runs whole-site alone
    (:func:`exclusive_shares`).

    :param launched: bool (n,), the plan's day is 0 or later (not the pre-launch history).
    :return: the settings in force, and the learning state at dawn.
    """
    day = state.day
    refresh = decision.refresh & launched
    in_protection = launched & (day < c.cost_protection_days)
    target_edit = decision.target_roi != state.target_roi
    protection_edits = state.protection_edits + (in_protection
                                                 & (target_edit | refresh)).astype(np.int64)
    learning = state.learning.copy()
    learn_failed = state.learn_failed.copy()
    learn_days = state.learn_days.copy()
    learn_orders = state.learn_orders.copy()
    # the rings are copied only where a switch writes them (else passed on as they are)
    recent_edits = state.recent_edits
    recent_orders = state.recent_orders
    if c.learning_enabled:
        target_jump = np.abs(np.log(decision.target_roi / state.target_roi)) > np.log1p(
            c.relearn_target_change)
        budget_jump = decision.budget_cny > state.budget_cny * (1.0 + c.relearn_budget_jump)
        relearn = launched & (target_jump | budget_jump | refresh | state.interrupted)
        if c.relearn_cumulative_enabled:
            recent_edits = np.empty_like(state.recent_edits)
            recent_edits[:-1] = state.recent_edits[1:]
            recent_edits[-1] = np.where(launched, edit_size(
                c, state.target_roi, decision.target_roi, state.budget_cny,
                decision.budget_cny), 0.0)
            relearn |= launched & (recent_edits.sum(axis=0) > 1.0)
            recent_edits[:, relearn] = 0.0
        if c.starvation_enabled:
            recent_orders = state.recent_orders.copy()
            recent_orders[:, relearn] = 0.0
        learning |= relearn
        learn_failed &= ~relearn
        learn_days[relearn] = 0
        learn_orders[:, relearn] = 0.0
    balance_cny = state.balance_cny.copy()
    if c.balance_enabled:
        topup = launched & (day > 0) & (day % c.topup_interval_days == 0)
        balance_cny = balance_cny + np.where(topup, c.topup_cny, 0.0)
    shares = decision.shares.copy()
    if c.whole_site_enabled and c.whole_site_exclusive:
        shares = exclusive_shares(shares)
    morning = Morning(
        target_roi=decision.target_roi.copy(), budget_cny=decision.budget_cny.copy(),
        shares=shares, refresh=refresh,
        creative_age_days=np.where(refresh, 0.0, state.creative_age_days),
        in_protection=in_protection, protection_edits=protection_edits,
        balance_cny=balance_cny)
    return morning, Learning(learning, learn_failed, learn_days, learn_orders, recent_edits,
                             recent_orders)


@helper
def exclusive_shares(shares: np.ndarray) -> np.ndarray:
    """Switch ``whole_site_exclusive``: a live room cannot run whole-site beside standard
    plans, so where the whole-site share is above 0 every plan's share moves to it (shares
    (n, 4), columns PAYMENT_ROI..WHOLE_SITE; a copy)."""
    alone = shares[:, WHOLE_SITE] > 0.0
    out = np.empty_like(shares)
    for plan in range(shares.shape[1]):
        out[:, plan] = np.where(alone, 0.0, shares[:, plan])
    out[:, WHOLE_SITE] = np.where(alone, 1.0, shares[:, WHOLE_SITE])
    return out


# -------------------------------------------------------------------------- 2. traffic
class MarketDrift(NamedTuple):
    """The pool's slow movement: log deviations of its mean ROI and cost from the account's
    drawn economics (``AccountParams``), and the pool they make today."""

    roi_drift: np.ndarray  # mean-reverting log drift of the pool's mean ROI, today
    cost_drift: np.ndarray  # mean-reverting log drift of the pool's cost, today
    roi_regime: np.ndarray  # competitor regimes' log step on the pool's mean ROI, today
    cost_regime: np.ndarray  # competitor regimes' log step on the pool's cost, today
    pool_mean_roi: np.ndarray  # the account's pool mean ROI, moved (GMV/spend)
    pool_cost_cny: np.ndarray  # the account's pool cost on a plain day, moved (CNY/day)


@helper
def hold_market(pool_cost_cny: np.ndarray, pool_mean_roi: np.ndarray, roi_drift: np.ndarray,
                cost_drift: np.ndarray, roi_regime: np.ndarray,
                cost_regime: np.ndarray) -> MarketDrift:
    """Stage 2, switch ``market_drift_enabled`` off: the pool stays the account's
    (``pool_cost_cny`` and ``pool_mean_roi`` unchanged), the drift state is carried as it is."""
    return MarketDrift(roi_drift=roi_drift.copy(), cost_drift=cost_drift.copy(),
                       roi_regime=roi_regime.copy(), cost_regime=cost_regime.copy(),
                       pool_mean_roi=pool_mean_roi, pool_cost_cny=pool_cost_cny)


@helper
def move_market(c: DayConstants, pool_cost_cny: np.ndarray, pool_mean_roi: np.ndarray,
                roi_drift: np.ndarray, cost_drift: np.ndarray, roi_regime: np.ndarray,
                cost_regime: np.ndarray, roi_drift_draw: np.ndarray,
                cost_drift_draw: np.ndarray, regime_draw: np.ndarray,
                regime_roi_draw: np.ndarray, regime_cost_draw: np.ndarray) -> MarketDrift:
    """Stage 2, a moving market (switch ``market_drift_enabled``): the pool's mean ROI and
    cost drift and shift with competitor regimes.

    Each log drift is a stationary AR(1) (a sampled Ornstein-Uhlenbeck process) with
    persistence ``phi = 2^(-1 / drift_half_life_days)``: ``x' = phi x + sd sqrt(1 - phi^2) e``
    (stationary log-sd ``drift_roi_sd`` / ``drift_cost_sd``). A regime shift (a competitor
    enters or leaves) occurs on a day with probability ``1 - exp(-1 /
    regime_shift_interval_days)`` (a Poisson process, at most one a day) and adds a normal
    step (log-sd ``regime_roi_step_sd`` / ``regime_cost_step_sd``) to a regime level that
    decays with half-life ``regime_half_life_days``. Today's pool is the account's times
    ``exp(drift + regime)``, in both.

    :param pool_cost_cny: the account's pool cost on a plain day (CNY/day);
        ``pool_mean_roi`` its mean ROI (GMV/spend).
    :param roi_drift: yesterday's log levels, likewise ``cost_drift``, ``roi_regime``,
        ``cost_regime``.
    :param roi_drift_draw: standard normals (n,) of the drifts' innovations (likewise
        ``cost_drift_draw``); ``regime_draw`` whether a shift occurs (``Phi(z) < p``);
        ``regime_roi_draw`` and ``regime_cost_draw`` its steps.
    """
    phi = np.exp2(-1.0 / c.drift_half_life_days)
    innovation = np.sqrt(1.0 - phi * phi)
    roi_today = phi * roi_drift + c.drift_roi_sd * innovation * roi_drift_draw
    cost_today = phi * cost_drift + c.drift_cost_sd * innovation * cost_drift_draw
    shift = ndtr(regime_draw) < -np.expm1(-1.0 / c.regime_shift_interval_days)
    fade = np.exp2(-1.0 / c.regime_half_life_days)
    roi_regime_today = fade * roi_regime + np.where(
        shift, c.regime_roi_step_sd * regime_roi_draw, 0.0)
    cost_regime_today = fade * cost_regime + np.where(
        shift, c.regime_cost_step_sd * regime_cost_draw, 0.0)
    return MarketDrift(
        roi_drift=roi_today, cost_drift=cost_today, roi_regime=roi_regime_today,
        cost_regime=cost_regime_today,
        pool_mean_roi=pool_mean_roi * np.exp(roi_today + roi_regime_today),
        pool_cost_cny=pool_cost_cny * np.exp(cost_today + cost_regime_today))


class Traffic(NamedTuple):
    """Today's pool of opportunities."""

    traffic_shock: np.ndarray  # AR(1) log shock on the pool's cost
    pool_cost: np.ndarray  # V: the pool's cost at market prices (CNY)
    pool_roi: np.ndarray  # m: the pool's mean ROI (GMV/spend)


@helper
def price_traffic(c: DayConstants, pool_cost_cny: np.ndarray, pool_mean_roi: np.ndarray,
                  weekday_mult: np.ndarray, promo_traffic_mult: np.ndarray,
                  promo_roi_mult: np.ndarray, shock_yesterday: np.ndarray,
                  recovery_days_left: np.ndarray, creative_age_days: np.ndarray,
                  dawn: Learning, traffic_draw: np.ndarray,
                  pool_roi_draw: np.ndarray) -> Traffic:
    """Stage 2: the pool's cost ``V`` (weekday, AR(1) shock, promotion, creative fatigue,
    learning and post-interruption throttles) and mean ROI ``m`` (daily noise, promotion,
    learning, post-interruption cost penalty).

    :param pool_cost_cny: the account's pool cost on a plain day (CNY), as the market's drift
        moved it (:class:`MarketDrift`); ``pool_mean_roi`` its mean ROI, likewise.
    :param weekday_mult: today's weekday multiplier on the cost; ``promo_traffic_mult`` and
        ``promo_roi_mult`` the promotion calendar's on cost and ROI.
    :param shock_yesterday: yesterday's traffic shock; ``recovery_days_left`` the days of
        post-interruption penalties left.
    :param traffic_draw: standard normals (n,) of the traffic shock, ``pool_roi_draw`` of
        the pool's ROI noise.
    """
    n = shock_yesterday.shape[0]
    if c.shocks_enabled:
        rho = c.traffic_shock_ar
        traffic_shock = rho * shock_yesterday + c.traffic_shock_sd * np.sqrt(
            1.0 - rho * rho) * traffic_draw
        roi_noise = np.exp(c.roi_shock_sd * pool_roi_draw)
    else:
        traffic_shock = np.zeros(n)
        roi_noise = np.ones(n)
    if c.fatigue_enabled:
        fatigue = c.fatigue_floor + (1.0 - c.fatigue_floor) * np.exp2(
            -creative_age_days / c.creative_half_life_days)
    else:
        fatigue = np.ones(n)
    recovering = recovery_days_left > 0
    throttle = (np.where(dawn.learning, c.learning_traffic_mult, 1.0)
                * np.where(dawn.learn_failed, c.learn_failed_traffic_mult, 1.0)
                * np.where(recovering, 1.0 - c.interrupt_traffic_penalty, 1.0))
    pool_cost = (pool_cost_cny * weekday_mult * np.exp(traffic_shock)
                 * promo_traffic_mult * fatigue * throttle)
    pool_roi = (pool_mean_roi * roi_noise * promo_roi_mult
                * np.where(dawn.learning, c.learning_roi_mult, 1.0)
                / np.where(recovering, 1.0 + c.interrupt_cost_penalty, 1.0))
    return Traffic(traffic_shock=traffic_shock, pool_cost=pool_cost, pool_roi=pool_roi)


# -------------------------------------------------------------------------- 3. bidding
class Bids(NamedTuple):
    """What the plans bought (CNY of spend; GMV before noise)."""

    avg_roi: np.ndarray  # expected ROI of the ROI plans' traffic (GMV/spend)
    spend_pay: np.ndarray  # payment-ROI plans
    spend_set: np.ndarray  # settlement-ROI plans
    roi_spend: np.ndarray  # both ROI plans, before any balance cap
    spend_vol: np.ndarray  # volume plan
    vol_top: np.ndarray  # the volume plan's spend on traffic above the ROI threshold
    deep_gmv: np.ndarray  # expected GMV of the volume plan below the threshold
    spend_ws: np.ndarray  # whole-site plan (0 unless whole_site_enabled)
    ws_top: np.ndarray  # the whole-site plan's spend on traffic above the ROI threshold
    ws_deep_gmv: np.ndarray  # expected GMV of the whole-site plan below the threshold
    spend: np.ndarray  # total spend, capped by the balance
    depth: np.ndarray  # share of the pool's cost bought, in [0, 1]
    interrupted: np.ndarray  # bool: delivery stopped on an empty balance


@helper
def qualify(c: DayConstants, share_table: np.ndarray, target_roi: np.ndarray,
            pool_roi: np.ndarray, sigma: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a target-ROI bidder holding ``target_roi`` (GMV/spend) qualifies for: the cost
    share ``q`` of the pool, the true average ROI of that share (GMV/spend), and the log-sd
    with which :func:`envs.pool.gmv_share` gives the true GMV share of a depth (``sigma``;
    ``sigma_r`` with ``estimation_noise_enabled``, :func:`envs.pool.select_on_estimates`)."""
    q, gmv_sigma = qualifying_depth(c, share_table, target_roi, pool_roi, sigma)
    if c.estimation_noise_enabled:
        # ranked on noisy estimates: the estimated average holds the target, the truth less
        return q, realised_average_roi(q, pool_roi, gmv_sigma), gmv_sigma
    return q, np.where(q < 1.0, np.maximum(target_roi, pool_roi), pool_roi), gmv_sigma


@helper
def qualifying_depth(c: DayConstants, share_table: np.ndarray, target_roi: np.ndarray,
                     pool_roi: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cost share ``q`` a target-ROI bidder qualifies for and the log-sd with which
    :func:`envs.pool.gmv_share` gives the true GMV share of a depth (:func:`qualify` adds the
    average ROI; whole-site needs only this)."""
    if c.estimation_noise_enabled:
        return select_depth(share_table, target_roi, pool_roi, sigma, c.estimation_noise_sd)
    return table_share(share_table, target_roi, pool_roi, sigma), sigma


@helper
def buy_whole_site(c: DayConstants, share_table: np.ndarray, target_roi: np.ndarray,
                   budget_cny: np.ndarray, pool_cost: np.ndarray, pool_roi: np.ndarray,
                   sigma: np.ndarray, q: np.ndarray, roi_spend: np.ndarray,
                   bought_share: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The whole-site plan's buying (switch ``whole_site_enabled``), after the standard ROI
    plans. The platform holds ``(1 + whole_site_organic_lift) x ad GMV / spend`` at the
    target, so the plan qualifies for the traffic of the effective ad target ``target / (1 +
    lift)`` (:func:`qualify`): first what the standard plans left of their qualifying traffic
    (the top share ``q``, at its average ROI), then the band below it, best first, down to
    its own qualifying depth; its spend is at most its ``budget_cny`` and its qualifying cost
    less ``roi_spend``.

    :param q: the standard plans' qualifying cost share; ``roi_spend`` their spend (CNY);
        ``bought_share`` the GMV share of the top ``q`` (:func:`place_bids`).
    :return: its spend (CNY), the part of it above the standard threshold (CNY), the part
        below it (CNY), the expected GMV of that deep part (CNY), and the pool's GMV share
        bought once its band ends (where the volume plan's band starts).
    """
    effective_roi = target_roi / (1.0 + c.whole_site_organic_lift)
    ws_q, gmv_sigma = qualifying_depth(c, share_table, effective_roi, pool_roi, sigma)
    spend_ws = np.minimum(budget_cny, np.maximum(pool_cost * ws_q - roi_spend, 0.0))
    ws_top = np.minimum(spend_ws, np.maximum(pool_cost * q - roi_spend, 0.0))
    ws_deep = spend_ws - ws_top
    band_end = np.where(ws_deep > 0.0, gmv_share(
        q + ws_deep / np.maximum(pool_cost, 1e-9), gmv_sigma), bought_share)
    ws_deep_gmv = pool_cost * pool_roi * np.maximum(band_end - bought_share, 0.0)
    return spend_ws, ws_top, ws_deep, ws_deep_gmv, np.maximum(band_end, bought_share)


@helper
def place_bids(c: DayConstants, share_table: np.ndarray, pool_sigma: np.ndarray,
               morning: Morning, traffic: Traffic, launched: np.ndarray) -> Bids:
    """Stage 3: the standard ROI plans buy the qualifying traffic (closed form,
    :mod:`envs.pool`) within their budgets; with ``whole_site_enabled`` the whole-site plan
    buys next, down to its own, deeper, qualifying depth (:func:`buy_whole_site`); the
    volume plan buys the best of what is left within its budget; spend is capped by the
    balance (running out interrupts delivery). With ``estimation_noise_enabled`` the bidder
    ranks the pool on noisy estimates of ROI (:func:`envs.pool.select_on_estimates`): the
    plans buy more of the pool than the closed form says, at a true average ROI below the
    target.

    :param share_table: :func:`envs.pool.share_table`; ``pool_sigma`` the log-sd of the
        pool's ROI.
    """
    pool_cost, pool_roi, sigma = traffic.pool_cost, traffic.pool_roi, pool_sigma
    target_roi = morning.target_roi
    q, avg_roi, gmv_sigma = qualify(c, share_table, target_roi, pool_roi, sigma)
    qualifying_cost = pool_cost * q
    budgets = np.expand_dims(morning.budget_cny, 1) * morning.shares
    spend_set = np.minimum(budgets[:, SETTLEMENT_ROI], (1.0 - c.settlement_volume_penalty)
                           * qualifying_cost)
    spend_pay = np.minimum(budgets[:, PAYMENT_ROI], qualifying_cost - spend_set)
    roi_spend = spend_pay + spend_set
    # GMV share of the qualifying traffic: H(q) = q * avg / m (avg: the true average ROI,
    # the target if q < 1 without estimation noise)
    bought_share = q * avg_roi / pool_roi
    none = np.zeros(pool_cost.shape[0])
    # the whole-site plan (all 0 when off: the sums below are then the first version's)
    spend_ws, ws_top, ws_deep, ws_deep_gmv, band_start = none, none, none, none, bought_share
    if c.whole_site_enabled:
        spend_ws, ws_top, ws_deep, ws_deep_gmv, band_start = buy_whole_site(
            c, share_table, target_roi, budgets[:, WHOLE_SITE], pool_cost, pool_roi, sigma, q,
            roi_spend, bought_share)
    # the differences are floored: with q = 1, roi_spend can round a unit above the pool
    spend_vol = np.minimum(budgets[:, VOLUME],
                           np.maximum(pool_cost - roi_spend - spend_ws, 0.0))
    vol_top = np.minimum(spend_vol, np.maximum(qualifying_cost - roi_spend - ws_top, 0.0))
    vol_deep = spend_vol - vol_top  # below the whole-site band, best first
    depth = np.minimum(q + (ws_deep + vol_deep) / np.maximum(pool_cost, 1e-9), 1.0)
    deep_gmv = np.where(vol_deep > 0.0, pool_cost * pool_roi * np.maximum(
        gmv_share(depth, gmv_sigma) - band_start, 0.0), 0.0)
    spend = roi_spend + spend_ws + spend_vol
    interrupted = np.zeros(pool_cost.shape[0], dtype=np.bool_)
    if c.balance_enabled:
        available = np.where(launched, np.maximum(morning.balance_cny, 0.0), np.inf)
        interrupted = spend > available
        scale = np.where(interrupted, available / np.maximum(spend, 1e-9), 1.0)
        spend_pay, spend_set, vol_top = spend_pay * scale, spend_set * scale, vol_top * scale
        deep_gmv, spend_vol = deep_gmv * scale, spend_vol * scale
        spend_ws, ws_top, ws_deep_gmv = spend_ws * scale, ws_top * scale, ws_deep_gmv * scale
        # an interrupted day spends the balance exactly (spend * scale can round above it), so
        # balance - spend is exactly 0 then, and >= 0 whenever spend <= balance
        spend = np.where(interrupted, available, spend)
    return Bids(avg_roi=avg_roi, spend_pay=spend_pay, spend_set=spend_set,
                roi_spend=roi_spend, spend_vol=spend_vol, vol_top=vol_top, deep_gmv=deep_gmv,
                spend_ws=spend_ws, ws_top=ws_top, ws_deep_gmv=ws_deep_gmv, spend=spend,
                depth=depth, interrupted=interrupted)


# --------------------------------------------------------------------------- 4. orders
class Orders(NamedTuple):
    """Today's orders and their GMV."""

    orders: np.ndarray  # count
    gmv: np.ndarray  # payment GMV attributed to ads (CNY)
    mix_roi: np.ndarray  # share of expected GMV from both standard ROI plans
    mix_set: np.ndarray  # share of expected GMV from settlement-ROI plans
    mix_vol: np.ndarray  # share of expected GMV from the volume plan
    mix_ws: np.ndarray  # share of expected GMV from the whole-site plan (0 when off)
    expected_gmv: np.ndarray  # GMV expected before the day's noise (CNY): the plans'
    # expected GMV times the account's bidder bias (what calibration fits to, agents.calibration)


@helper
def take_orders(c: DayConstants, bidder_bias: np.ndarray, aov_cny: np.ndarray,
                learning: np.ndarray, traffic: Traffic, bids: Bids, bidder_draw: np.ndarray,
                orders_draw: np.ndarray, basket_draw: np.ndarray) -> Orders:
    """Stage 4: expected GMV, the bidder's achieved share of it (calibration bias
    ``bidder_bias`` and noise, noisier while ``learning``), Poisson orders of ``aov_cny``,
    basket noise.

    :param bidder_draw: standard normals (n,) of the bidder's noise; ``orders_draw`` of the
        order count, ``basket_draw`` of the basket value.
    """
    avg_roi = bids.avg_roi
    gmv_pay, gmv_set = avg_roi * bids.spend_pay, avg_roi * bids.spend_set
    # The volume plan has no ROI control: it takes the best traffic left, but its average
    # is at most the pool's mean ROI (brief §1), so a small volume budget behind a high
    # target cannot act as a second ROI lever.
    gmv_vol = np.minimum(avg_roi * bids.vol_top + bids.deep_gmv,
                         traffic.pool_roi * bids.spend_vol)
    # whole-site: ROI-controlled (its depth holds the target on total GMV), no cap
    gmv_ws = avg_roi * bids.ws_top + bids.ws_deep_gmv
    expected_gmv = gmv_pay + gmv_set + gmv_ws + gmv_vol
    if c.bidder_noise_enabled:
        noise_sd = c.bidder_noise_sd * np.where(learning, c.learning_noise_mult, 1.0)
        achieved = bidder_bias * np.exp(noise_sd * bidder_draw - 0.5 * noise_sd * noise_sd)
        basket = np.exp(c.basket_noise_sd * basket_draw - 0.5 * c.basket_noise_sd ** 2)
    else:
        achieved = np.ones(expected_gmv.shape[0])
        basket = np.ones(expected_gmv.shape[0])
    orders = poisson_from_normal(expected_gmv * achieved / aov_cny, orders_draw)
    gmv = orders * aov_cny * basket
    inv_gmv = 1.0 / np.maximum(expected_gmv, 1e-9)
    biased = expected_gmv * bidder_bias if c.bidder_noise_enabled else expected_gmv
    return Orders(orders=orders, gmv=gmv, mix_roi=(gmv_pay + gmv_set) * inv_gmv,
                  mix_set=gmv_set * inv_gmv, mix_vol=gmv_vol * inv_gmv, mix_ws=gmv_ws * inv_gmv,
                  expected_gmv=biased)


# -------------------------------------------------------------------------- 5. refunds
class Refunds(NamedTuple):
    """The refunds of today's order cohort."""

    base_rate: np.ndarray  # the account's refund rate today (peaks included), a share
    cohort_refunds: np.ndarray  # refunds today's ad orders will have (CNY)


@helper
def draw_refunds(c: DayConstants, refund_rate: np.ndarray, promo_refund_mult: np.ndarray,
                 typical_share: np.ndarray, depth: np.ndarray, orders: Orders,
                 refunds_draw: np.ndarray) -> Refunds:
    """Stage 5: the cohort's refund rate (the account's ``refund_rate``, times the promotion
    calendar's ``promo_refund_mult``) rises with the ``depth`` bought beyond the typical
    target's ``typical_share`` and is lower for settlement-ROI plans; its refunds are drawn
    around it (binomial spread).

    :param refunds_draw: standard normals (n,) of the cohort's refund share.
    """
    if c.refunds_enabled:
        base_rate = refund_rate * promo_refund_mult
        rate = np.minimum(np.maximum(
            base_rate * (1.0 + c.refund_depth_slope * (depth - typical_share)), 0.0),
            MAX_COHORT_REFUND_RATE)
        mean_rate = rate * (1.0 - c.settlement_refund_reduction * orders.mix_set)
        cohort_refunds = orders.gmv * refund_share(mean_rate, orders.orders, refunds_draw)
    else:
        base_rate = np.zeros(orders.gmv.shape[0])
        cohort_refunds = np.zeros(orders.gmv.shape[0])
    return Refunds(base_rate=base_rate, cohort_refunds=cohort_refunds)


@helper
def refund_share_sd(mean_rate: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """The sd of a cohort's refund share around its rate ``mean_rate`` (share of GMV) for
    ``orders`` orders: binomial, ``sqrt(r (1 - r) / max(orders, 1))``."""
    return np.sqrt(mean_rate * (1.0 - mean_rate) / np.maximum(orders, 1.0))


@helper
def refund_share(mean_rate: np.ndarray, orders: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """A cohort's refund share as the market draws it: normal around ``mean_rate`` (sd
    :func:`refund_share_sd`) at the standard normal ``draw``, clipped to [0, 1]. The
    simulator's refunds (:func:`draw_refunds`) and the forecast's pending cohorts
    (:func:`agents.calibration.refunds.pending_cohorts`) both draw it here."""
    return np.minimum(np.maximum(mean_rate + refund_share_sd(mean_rate, orders) * draw, 0.0),
                      1.0)


def refund_share_moments(mean_rate: np.ndarray, orders: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The mean and variance of the cohort refund share :func:`draw_refunds` draws: its normal
    around ``mean_rate`` (sd ``sqrt(r (1 - r) / max(orders, 1))``), clipped to [0, 1].

    For a cohort of few orders the clip at 0 cuts more of the lower tail than the clip at 1
    of the upper one, so the mean share lies above ``mean_rate`` (one order at a rate of
    0.12: about 0.19) and the variance below the normal's. Calibration reads refunds through
    these (:mod:`agents.calibration.refunds`).

    :param mean_rate: the cohort's refund rate (share of its GMV), in [0, 1].
    :param orders: the cohort's orders (count).
    """
    r = np.clip(mean_rate, 0.0, 1.0)
    sd = refund_share_sd(r, orders)
    safe = np.maximum(sd, 1e-12)
    lo, hi = -r / safe, (1.0 - r) / safe  # the clips in standard units
    inside = ndtr(hi) - ndtr(lo)
    pdf_lo, pdf_hi = (np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi) for z in (lo, hi))
    above = 1.0 - ndtr(hi)  # the share is 1 there
    mean = r * inside - sd * (pdf_hi - pdf_lo) + above
    second = ((r * r + sd * sd) * inside - sd * ((r + 1.0) * pdf_hi - r * pdf_lo) + above)
    exact = sd <= 0.0
    return (np.where(exact, r, mean),
            np.where(exact, 0.0, np.maximum(second - mean * mean, 0.0)))


# -------------------------------------------------------------------------- 6. organic
class Engagement(NamedTuple):
    """The stock of engaged buyers a promotion's warm-up builds (蓄水), and what it bought."""

    engaged_buyers: np.ndarray  # the stock for tomorrow (buyers)
    peak_orders: np.ndarray  # orders the stock placed today (expected, orders)
    peak_gmv: np.ndarray  # their GMV (CNY), organic: through carts, follows and bookings


@helper
def hold_engaged_buyers(engaged_buyers: np.ndarray) -> Engagement:
    """Stage 6, switch ``warmup_stock_enabled`` off: the stock (0) is carried, buys nothing."""
    none = np.zeros(engaged_buyers.shape[0])
    return Engagement(engaged_buyers=engaged_buyers.copy(), peak_orders=none,
                      peak_gmv=none.copy())


@helper
def convert_engaged_buyers(c: DayConstants, engaged_buyers: np.ndarray, aov_cny: np.ndarray,
                           days_to_peak: np.ndarray, in_peak: np.ndarray, launched: np.ndarray,
                           orders: np.ndarray) -> Engagement:
    """Stage 6, a promotion's warm-up (蓄水, switch ``warmup_stock_enabled``): each ad order
    of a warm-up day (1 to ``promo_warmup_days`` days before a peak) adds
    ``warmup_buyers_per_order`` engaged buyers to the stock; on a peak day
    ``warmup_peak_conversion`` of the stock orders (expected orders, at the account's
    ``aov_cny``); the rest decays with half-life ``warmup_half_life_days``:
    ``S' = 2^(-1/h) (S - p S [peak] + b orders [warm-up])``.

    :param engaged_buyers: the stock at dawn (buyers).
    :param days_to_peak: today's days to the next peak (calendar, saturating at
        ``FAR_DAYS``); ``in_peak`` bool, today is a peak day.
    :param orders: today's ad orders.
    """
    warmup = launched & (days_to_peak >= 1) & (days_to_peak <= c.promo_warmup_days) & (
        days_to_peak < FAR_DAYS)
    buying = np.where(launched & in_peak, c.warmup_peak_conversion * engaged_buyers, 0.0)
    added = np.where(warmup, c.warmup_buyers_per_order * orders, 0.0)
    keep = np.exp2(-1.0 / c.warmup_half_life_days)
    return Engagement(engaged_buyers=keep * (engaged_buyers - buying + added),
                      peak_orders=buying, peak_gmv=buying * aov_cny)


class Organic(NamedTuple):
    """Organic GMV and what the ads added to the shop's GMV (0 before launch)."""

    organic_gmv: np.ndarray  # carry-over lift and whole-site uplift (CNY)
    organic_stock_cny: np.ndarray  # smoothed recent ad GMV, for tomorrow (CNY/day)
    incremental_gmv: np.ndarray  # ad GMV net of cannibalisation, plus organic GMV (CNY)
    cohort_incremental_refunds: np.ndarray  # refunds today's incremental GMV will have (CNY)


@helper
def add_organic(c: DayConstants, stock: np.ndarray, launched: np.ndarray, orders: Orders,
                refunds: Refunds, engagement: Engagement) -> Organic:
    """Stage 6: ad GMV cannibalises organic sales; the volume plan's whole-site uplift and
    the carry-over lift from the ``stock`` of recent ad GMV (CNY/day) add organic GMV, and
    so do the engaged buyers of a warm-up on peak days (``engagement``, with
    ``warmup_stock_enabled``) and, with ``whole_site_enabled``, the whole-site plan's lift
    (``whole_site_organic_lift`` of its ad GMV; its ad GMV cannibalises at
    ``whole_site_cannibalisation``); the incremental GMV and its refunds follow (refunds on
    organic GMV at the account's rate)."""
    gmv = orders.gmv
    if c.organic_enabled:
        cannibalised_share = (c.cannibalisation * orders.mix_roi
                              + c.volume_cannibalisation * orders.mix_vol)
        organic = (c.carryover_rate * stock / (1.0 + stock / c.carryover_saturation_cny)
                   + c.volume_organic_uplift * gmv * orders.mix_vol)
        if c.whole_site_enabled:
            cannibalised_share = (cannibalised_share
                                  + c.whole_site_cannibalisation * orders.mix_ws)
            organic = organic + c.whole_site_organic_lift * gmv * orders.mix_ws
        organic = np.where(launched, organic, 0.0)
        organic_stock_cny = c.carryover_decay * stock + (1.0 - c.carryover_decay) * gmv
    else:
        cannibalised_share = np.zeros(gmv.shape[0])
        organic = np.zeros(gmv.shape[0])
        organic_stock_cny = stock.copy()
    if c.warmup_stock_enabled:
        organic = organic + engagement.peak_gmv
    incremental_gmv = gmv * (1.0 - cannibalised_share) + organic
    incremental_refunds = (refunds.cohort_refunds * (1.0 - cannibalised_share)
                           + organic * refunds.base_rate)
    return Organic(organic_gmv=organic, organic_stock_cny=organic_stock_cny,
                   incremental_gmv=np.where(launched, incremental_gmv, 0.0),
                   cohort_incremental_refunds=np.where(launched, incremental_refunds, 0.0))


# ------------------------------------------------------------------------- 7. learning
@helper
def progress_learning(c: DayConstants, dawn: Learning, settlement_share: np.ndarray,
                      orders: np.ndarray, launched: np.ndarray) -> Learning:
    """Stage 7: a learning plan counts today's ``orders``; it exits once the window holds
    ``learning_exit_orders`` (more with a larger ``settlement_share`` of the budget), and
    fails after ``learning_fail_days`` without exit. With ``starvation_enabled``, a launched
    plan out of learning whose orders since its last restart, over the last
    ``starvation_window_days``, fall below ``starvation_min_orders`` is conversion-starved:
    it fails too (LEARN_FAILED, throttled until an edit restarts learning).

    :param launched: bool (n,), the plan's day is 0 or later.
    :return: the learning state for tomorrow.
    """
    if not c.learning_enabled:
        return Learning(dawn.learning.copy(), dawn.learn_failed.copy(),
                        dawn.learn_days.copy(), dawn.learn_orders.copy(),
                        dawn.recent_edits.copy(), dawn.recent_orders.copy())
    learning = dawn.learning
    learn_days = dawn.learn_days + learning.astype(np.int64)
    learn_orders = np.empty_like(dawn.learn_orders)
    learn_orders[:-1] = dawn.learn_orders[1:]
    learn_orders[-1] = np.where(learning, orders, 0.0)
    needed = c.learning_exit_orders + c.learning_settlement_extra_orders * settlement_share
    exits = learning & (learn_orders.sum(axis=0) >= needed)
    fails = learning & ~exits & (learn_days >= c.learning_fail_days)
    recent_orders = dawn.recent_orders
    if c.starvation_enabled:
        recent_orders = np.empty_like(dawn.recent_orders)
        recent_orders[:-1] = dawn.recent_orders[1:]
        recent_orders[-1] = np.where(launched, orders, 0.0)
        fails |= (launched & ~learning & ~dawn.learn_failed
                  & (recent_orders.sum(axis=0) < c.starvation_min_orders))
    return Learning(learning=learning & ~(exits | fails),
                    learn_failed=dawn.learn_failed | fails, learn_days=learn_days,
                    learn_orders=learn_orders, recent_edits=dawn.recent_edits,
                    recent_orders=recent_orders)


# ---------------------------------------------------------------------------- 8. money
class RefundBook(NamedTuple):
    """Refunds scheduled and landed, and the settled GMV the dashboard reports."""

    refund_pipe: np.ndarray  # (2, 7, n) refunds landing in 1..7 days, rows AD_REFUNDS..
    cohort_settled: np.ndarray  # (7, n) settled GMV of the last 7 order days, oldest first
    refunds_landed: np.ndarray  # ad refunds landing today (CNY)
    incremental_refunds_landed: np.ndarray  # refunds on incremental GMV landing today (CNY)
    settled_gmv: np.ndarray  # refund-net GMV of the order day 7 days ago, settled today


@helper
def book_refunds(refund_kernel: np.ndarray, refund_pipe: np.ndarray,
                 cohort_settled: np.ndarray, gmv: np.ndarray, refunds: Refunds,
                 organic: Organic) -> RefundBook:
    """Stage 8, refunds: today's cohort's refunds (on ad GMV and on incremental GMV) are
    scheduled over the next 7 days by ``refund_kernel`` and those due today land; the
    order day of a week ago settles, today's ``gmv`` net of its refunds joins the cohorts.

    :param refund_pipe: yesterday's (2, 7, n) pipe; ``cohort_settled`` yesterday's (7, n).
    """
    landed = refund_pipe[:, 0]  # (2, n): what lands today
    pipe = np.empty_like(refund_pipe)
    pipe[:, :-1] = refund_pipe[:, 1:]
    pipe[:, -1] = 0.0
    kernel = np.expand_dims(refund_kernel, 1)
    pipe[AD_REFUNDS] += kernel * refunds.cohort_refunds
    pipe[INCREMENTAL_REFUNDS] += kernel * organic.cohort_incremental_refunds
    cohorts = np.empty_like(cohort_settled)
    cohorts[:-1] = cohort_settled[1:]
    cohorts[-1] = gmv - refunds.cohort_refunds
    return RefundBook(refund_pipe=pipe, cohort_settled=cohorts,
                      refunds_landed=landed[AD_REFUNDS].copy(),
                      incremental_refunds_landed=landed[INCREMENTAL_REFUNDS].copy(),
                      settled_gmv=cohort_settled[0].copy())


class Money(NamedTuple):
    """The day's credits and costs, and the balance."""

    credit: np.ndarray  # cost-protection credit (CNY)
    refresh_cost: np.ndarray  # CNY
    balance_cny: np.ndarray  # at the end of the day (CNY)
    recovery_days_left: np.ndarray  # days of post-interruption penalties left


@helper
def settle_money(c: DayConstants, launched: np.ndarray, morning: Morning, bids: Bids,
                 orders: Orders, recovery_days_left: np.ndarray) -> Money:
    """Stage 8, money: cost protection credits an eligible plan's shortfall; refreshes are
    charged; spend and credit move the balance; an interruption restarts the recovery
    penalties (``recovery_days_left``: yesterday's count)."""
    credit = np.zeros(orders.gmv.shape[0])
    if c.cost_protection_enabled:
        roi_gmv = orders.gmv * orders.mix_roi
        eligible = (morning.in_protection
                    & (morning.protection_edits <= c.cost_protection_max_edits)
                    & (orders.orders >= c.cost_protection_min_orders)
                    & (roi_gmv < c.cost_protection_ratio * morning.target_roi * bids.roi_spend))
        credit = np.where(eligible, np.maximum(bids.roi_spend - roi_gmv / morning.target_roi,
                                               0.0), 0.0)
    balance_cny = morning.balance_cny
    if c.balance_enabled:
        balance_cny = np.where(launched, balance_cny - bids.spend + credit, balance_cny)
    return Money(
        credit=credit, refresh_cost=np.where(morning.refresh, c.refresh_cost_cny, 0.0),
        balance_cny=balance_cny,
        recovery_days_left=np.where(bids.interrupted, c.interrupt_recovery_days,
                                    np.maximum(recovery_days_left - 1, 0)))
