"""Forecast a fitted account's next days with the simulator itself.

``n`` simulated copies of the account start where its report ends and run
:meth:`envs.market.MarketModel.step` under given settings, with their own draws:

- **parameters** from the fit's posterior (pool size, mean ROI and spread, bidder bias
  drawn from its normal approximation, :data:`MARKET_DRAWS` distinct draws; order value and
  refund rate from their intervals; the rest at the fit's values, in the fitted scenario);
- **the market's latent state** at the report's end (traffic shock, cost and ROI drift) drawn
  from its distribution given the report's residuals under each copy's own parameters
  (:meth:`.likelihood.Posterior.latent_end`): the report fixes how rich the pool has been
  lately, so a copy with a richer pool carries less of the drift;
- **the plan's state** read off the report: settings in force, learning state and its days,
  the last week's edits and orders, creative age, balance, and the refunds still to land,
  each of the last week's cohorts drawn given the refunds the report saw land
  (:func:`.refunds.pending_cohorts`).

The forecast is the spread of the copies: quantiles per day and of the horizon's totals.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from agents.calibration.account import AccountHistory
from agents.calibration.fit import Fit, interval_sd, replayed_refund_shapes
from agents.calibration.likelihood import normal_draws
from agents.calibration.refunds import KERNEL_DAYS, pending_cohorts
from agents.calibration.replay import (
    AMPLE_BALANCE_CNY,
    peak_days,
    recovery_days_left,
    replay_config,
)
from agents.calibration.scenario import fitted_config
from envs.actions import edit_size
from envs.market import AccountParams, Decision, MarketModel, typical_share
from envs.reward import reward_args, reward_rows
from envs.stages import AD_REFUNDS, INCREMENTAL_REFUNDS, MAX_COHORT_REFUND_RATE

MARKET_DRAWS = 64  # distinct draws of the market's parameters per forecast (each needs its
# own latent state given the report, about 1.5 ms)
QUANTILES = (0.1, 0.5, 0.9)  # an 80% interval and the median
METRICS = ("spend", "gmv", "orders", "refunds", "profit", "settled_gmv")


@dataclass(frozen=True)
class Settings:
    """The settings of each forecast day: arrays (H,), shares (H, 4)."""

    target_roi: np.ndarray
    budget_cny: np.ndarray
    shares: np.ndarray
    refresh: np.ndarray

    @classmethod
    def hold(cls, target_roi: float, budget_cny: float, shares: np.ndarray,
             days: int) -> Settings:
        """The same settings every day, no refresh."""
        return cls(np.full(days, float(target_roi)), np.full(days, float(budget_cny)),
                   np.tile(np.asarray(shares, dtype=np.float64), (days, 1)),
                   np.zeros(days, dtype=bool))

    @classmethod
    def of_history(cls, history: AccountHistory) -> Settings:
        """The settings a report's days actually ran (a refresh where the creative age fell
        to 0)."""
        refresh = history.creative_age == 0
        return cls(history.target.copy(), history.budget.copy(), history.shares.copy(),
                   refresh)


@dataclass
class Forecast:
    """Simulated days: ``paths[metric]`` is (n, H) in CNY (orders: a count)."""

    dates: list
    paths: dict[str, np.ndarray]

    def quantiles(self, metric: str) -> np.ndarray:
        """(len(QUANTILES), H) per-day quantiles."""
        return np.quantile(self.paths[metric], QUANTILES, axis=0)

    def total(self, metric: str) -> np.ndarray:
        """Quantiles of the horizon's total."""
        return np.quantile(self.paths[metric].sum(axis=1), QUANTILES)

    def settled_roi(self) -> np.ndarray:
        """Quantiles of the horizon's settled ROI: (GMV - its refunds) / spend, per copy."""
        spend = self.paths["spend"].sum(axis=1)
        return np.quantile(self.paths["settled_gmv"].sum(axis=1) / np.maximum(spend, 1e-9),
                           QUANTILES)

    def summary(self) -> dict:
        """Totals' quantiles per metric (``p10``, ``p50``, ``p90``) and the settled ROI."""
        out = {m: dict(zip(("p10", "p50", "p90"), map(float, self.total(m)), strict=True))
               for m in METRICS}
        out["settled_roi"] = dict(zip(("p10", "p50", "p90"), map(float, self.settled_roi()),
                                      strict=True))
        return out


def forecast(fit: Fit, settings: Settings, copies: int = 400, seed: int = 0) -> Forecast:
    """Simulate the account's next ``len(settings.target_roi)`` days ``copies`` times.

    :param seed: the draws' seed (the same seed and fit give the same forecast).
    """
    h = fit.history
    days = settings.target_roi.shape[0]
    rng = np.random.default_rng(seed)
    cfg = replay_config(fitted_config(fit), h, extra_days=days + 1).replace(
        balance_enabled=h.balance is not None and fit.base.balance_enabled,
        refund_charging="on_order", objective="profit", terminal_value_days=0)
    model = MarketModel(cfg)
    z = _market_draws(fit, rng, copies)
    params = _params(fit, cfg, z, rng)
    state = _state(fit, cfg, model, params, _latent_end(fit, z, rng), rng, copies)
    reward = reward_args(cfg)
    paths = {m: np.zeros((copies, days)) for m in METRICS}
    for d in range(days):
        decision = Decision(np.full(copies, settings.target_roi[d]),
                            np.full(copies, settings.budget_cny[d]),
                            np.tile(settings.shares[d], (copies, 1)),
                            np.full(copies, bool(settings.refresh[d])))
        draws = rng.standard_normal((copies, model.n_draws))
        state, out = model.step(state, params, decision, draws)
        rows = reward_rows(reward, params, out, np.zeros(copies), False)
        paths["spend"][:, d] = out.spend
        paths["gmv"][:, d] = out.gmv
        paths["orders"][:, d] = out.orders
        paths["refunds"][:, d] = out.refunds
        paths["settled_gmv"][:, d] = out.gmv - out.cohort_refunds
        paths["profit"][:, d] = rows.sum(axis=0)
    start = h.dates[-1]
    dates = [start + dt.timedelta(days=d + 1) for d in range(days)]
    return Forecast(dates, paths)


def _market_draws(fit: Fit, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws (n, P) of the market's parameters from the fit's posterior: each of
    :data:`MARKET_DRAWS` draws shared by every ``MARKET_DRAWS``-th copy."""
    draws = fit.sample_z(rng, min(n, MARKET_DRAWS))
    return draws[np.arange(n) % draws.shape[0]]


def _latent_end(fit: Fit, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each copy's latent state at the report's end (n, 3): traffic shock, cost and ROI
    drift, drawn given the report under the copy's own market draw ``z`` (n, P). Under a
    draw of a richer pool the report's days say the drift stands lower, so the two are drawn
    jointly: drawn apart (the drift's distribution at the fit's values for every copy) the
    uncertainty of the ROI level counted twice: on the calibration benchmark's 90-day
    accounts the 80% intervals of spend, GMV and orders held 90-91% of the held-out days
    (``docs/calibration.md``)."""
    latent = np.empty((z.shape[0], 3))
    unique, which = np.unique(z, axis=0, return_inverse=True)
    for i, point in enumerate(unique):
        copies = np.flatnonzero(which.ravel() == i)
        mean, cov = fit.posterior.latent_end(point)
        latent[copies] = normal_draws(rng, mean, cov, copies.size)
    return latent


def _params(fit: Fit, cfg, z: np.ndarray, rng: np.random.Generator) -> AccountParams:
    """The copies' economics: the market's draws ``z`` (n, P); order value and refund rate
    drawn from their intervals."""
    ix = {p.name: i for i, p in enumerate(fit.parameters)}
    n = z.shape[0]
    pool_roi = np.exp(z[:, ix["pool_mean_roi"]])
    sigma = np.exp(z[:, ix["pool_sigma"]])
    aov = _lognormal(fit.estimates["aov_cny"], rng, n)
    refund = fit.estimates["refund_rate"]
    rate = np.clip(refund.value + interval_sd(refund.low, refund.high)
                   * rng.standard_normal(n), 0.0, 0.95)
    return AccountParams(
        pool_cost_cny=np.exp(z[:, ix["pool_cost_cny"]]), pool_mean_roi=pool_roi,
        pool_sigma=sigma, refund_rate=rate, aov_cny=aov, margin=np.full(n, fit.margin),
        bidder_bias=np.exp(z[:, ix["bidder_bias"]]),
        launch_budget_cny=np.full(n, cfg.launch_budget_cny),
        start_weekday=np.full(n, fit.history.start_weekday, dtype=np.int64),
        typical_share=typical_share(cfg, pool_roi, sigma))


def _cohort_rates(fit: Fit, cfg, refund_rate: np.ndarray) -> np.ndarray:
    """Each report day's cohort refund rate (T, n) at the copies' ``refund_rate`` (n,): the
    replayed depth's shape at the fit (the pool's latent path at its mean given the report),
    a peak day's at the fitted promotion multiplier."""
    h, base = fit.history, fit.base
    path, _ = fit.posterior.latent_path(fit.z)
    shape = replayed_refund_shapes(fit.posterior, base, fit.z, path[None])[0]
    shape = np.where(np.isfinite(shape), shape, base.refund_rate) / max(base.refund_rate, 1e-6)
    shape = shape * np.where(peak_days(base, h), cfg.promo_refund_mult
                             / max(base.promo_refund_mult, 1e-6), 1.0)
    return np.minimum(shape[:, None] * refund_rate[None, :], MAX_COHORT_REFUND_RATE)


def _lognormal(estimate, rng: np.random.Generator, n: int) -> np.ndarray:
    sd = interval_sd(math.log(estimate.low), math.log(estimate.high))
    return estimate.value * np.exp(sd * rng.standard_normal(n))


def _state(fit: Fit, cfg, model: MarketModel, params: AccountParams, latent: np.ndarray,
           rng: np.random.Generator, n: int):
    """The copies' state at the dawn after the report's last day (``latent``: (n, 3) of
    :func:`_latent_end`)."""
    h = fit.history
    last = h.days - 1
    state = model.initial_state(params, rng)
    learning_run = 0
    for flag in h.learning[::-1]:
        if not flag:
            break
        learning_run += 1
    edits = np.zeros((cfg.relearn_window_days, n))
    for i in range(1, min(cfg.relearn_window_days, h.days - 1) + 1):
        t = h.days - i
        edits[-i] = edit_size(cfg, np.array([h.target[t - 1]]), np.array([h.target[t]]),
                              np.array([h.budget[t - 1]]), np.array([h.budget[t]]))[0]
    learn_orders = np.zeros((cfg.learning_window_days, n))
    window = h.orders[-cfg.learning_window_days:] * h.learning[-cfg.learning_window_days:]
    learn_orders[-window.size:] = window[:, None]
    recent = np.zeros((cfg.starvation_window_days, n))
    orders = h.orders[-cfg.starvation_window_days:]
    recent[-orders.size:] = orders[:, None]
    # refunds of the last week's cohorts still to land: each cohort's drawn given the refunds
    # the report saw land (its rate at the day's replayed depth and promotion, per copy)
    kernel = np.array([fit.value(f"refund_kernel_{k}") for k in range(1, 8)])
    kernel_sd = np.array([interval_sd(fit.estimates[f"refund_kernel_{k}"].low,
                                      fit.estimates[f"refund_kernel_{k}"].high)
                          for k in range(1, 8)])
    rates = _cohort_rates(fit, cfg, params.refund_rate)
    pending = pending_cohorts(h.gmv, h.orders, h.refunds, rates, kernel, kernel_sd,
                              rng)[-KERNEL_DAYS:]
    pipe = np.zeros((2, 7, n))
    cohorts = np.zeros((7, n))
    for age in range(1, min(KERNEL_DAYS, h.days) + 1):  # ordered ``age`` days before dawn
        cohort = pending[-age]
        cohorts[7 - age] = h.gmv[h.days - age] - cohort
        for ahead in range(7):  # lands ``ahead`` days after the next dawn
            k = age + ahead  # days after its order day
            if 1 <= k <= 7:
                pipe[AD_REFUNDS, ahead] += kernel[k - 1] * cohort
    pipe[INCREMENTAL_REFUNDS] = pipe[AD_REFUNDS] * (1.0 - cfg.cannibalisation)
    decay = cfg.carryover_decay
    stock = 0.0
    for g in h.gmv:
        stock = decay * stock + (1.0 - decay) * g
    recovery = recovery_days_left(np.append(h.interrupted, False),
                                  cfg.interrupt_recovery_days)[-1]
    balance = h.balance[-1] if h.balance is not None else AMPLE_BALANCE_CNY
    return state._replace(
        day=np.full(n, int(h.day[last]) + 1, dtype=np.int64),
        target_roi=np.full(n, h.target[last]), budget_cny=np.full(n, h.budget[last]),
        shares=np.tile(h.shares[last], (n, 1)), traffic_shock=latent[:, 0],
        learning=np.full(n, bool(h.learning[last])),
        learn_failed=np.full(n, bool(h.learn_failed[last])),
        learn_days=np.full(n, learning_run, dtype=np.int64), learn_orders=learn_orders,
        recent_edits=edits, recent_orders=recent,
        creative_age_days=np.full(n, h.creative_age[last] + 1.0),
        balance_cny=np.full(n, float(balance)),
        recovery_days_left=np.full(n, int(recovery), dtype=np.int64),
        interrupted=np.full(n, bool(h.interrupted[last])),
        protection_edits=np.zeros(n, dtype=np.int64),
        organic_stock_cny=np.full(n, stock), refund_pipe=pipe, cohort_settled=cohorts,
        roi_drift=latent[:, 2], cost_drift=latent[:, 1], roi_regime=np.zeros(n),
        cost_regime=np.zeros(n), engaged_buyers=np.zeros(n))
