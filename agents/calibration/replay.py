"""The simulator's own day, replayed on a report: what each day's settings would buy, on
average, under candidate parameters.

Every day of the report becomes one account of a batch: its state at dawn is what the report
shows (target, budget and shares in force, learning state, creative age, days since an
interruption), its latent shocks and drifts are 0 and its draws are 0, and
:meth:`envs.market.MarketModel.step` runs it. The day's spend and its expected GMV
(:attr:`envs.market.DayOutcome.expected_gmv`, before the bidder's daily noise and the order
count) are the model's answer; the likelihood (:mod:`.likelihood`) puts the noise around it.
Teacher-forced like this, days are independent, so ``K`` candidates x ``T`` days are one
call of the compiled day.

Per-candidate parameters enter through the batch's :class:`envs.market.AccountParams`: the
pool's size carries the weekday effect and the learning traffic throttle relative to the
base's (both multiply the pool's cost in :func:`envs.stages.price_traffic`), its mean ROI the
learning ROI throttle (likewise); the rest of the scenario is the base's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from agents.calibration.account import AccountHistory
from agents.calibration.prior import index_of, market_parameters, weekday_log_effects
from envs.actions import VOLUME
from envs.calendar import PromoCalendar
from envs.config import ScenarioConfig
from envs.market import AccountParams, Decision, MarketModel, MarketState, typical_share

DEMAND_BUDGET_MULT = 1000.0  # the ROI plans' budgets this many times the day's: ample
AMPLE_BALANCE_CNY = 1e15  # the replay's balance: the report's spend already shows a stop
MAX_HISTORY_DAYS = 60  # the simulator's longest pre-launch history (envs.config)
MAX_EPISODE_DAYS = 730


def replay_config(base: ScenarioConfig, history: AccountHistory,
                  extra_days: int = 0) -> ScenarioConfig:
    """The base scenario with the report's promotions, and a calendar long enough for its
    days (and ``extra_days`` beyond, for a forecast). Promotions the report does not name
    (``--promo-dates``) are off: the base's calendar is a launch's, not this account's."""
    first, last = int(history.day.min()), int(history.day.max()) + extra_days
    peaks = [start for start, _ in history.peaks]
    length = history.peaks[0][1] if history.peaks else base.promo_peak_length_days
    return base.replace(
        history_days=int(min(max(14, -first + 1), MAX_HISTORY_DAYS)),
        episode_days=int(min(max(7, last + 1), MAX_EPISODE_DAYS)),
        promotions_enabled=bool(peaks) and base.promotions_enabled,
        promo_peak_days=tuple(min(max(p, 0), MAX_EPISODE_DAYS) for p in peaks) or
        base.promo_peak_days,
        promo_peak_length_days=int(min(max(length, 1), 14)),
        balance_enabled=False)


def peak_days(base: ScenarioConfig, history: AccountHistory) -> np.ndarray:
    """Bool (T,): the report's days that are promotion peak days in its replay
    (:func:`replay_config`'s calendar, the simulator's own), on which the market multiplies
    the cohorts' refund rate by ``promo_refund_mult``; all false when the base has no
    promotions."""
    config = replay_config(base, history)
    if not config.promotions_enabled:
        return np.zeros(history.days, dtype=bool)
    calendar = PromoCalendar.from_config(config)
    return calendar.in_peak[calendar.index(history.day)].astype(bool)


def recovery_days_left(interrupted: np.ndarray, recovery_days: int) -> np.ndarray:
    """Days of post-interruption penalties left at each dawn (the simulator's count: an
    interruption on day t penalises days t+1 .. t+``recovery_days``)."""
    left = np.zeros(interrupted.shape[0], dtype=np.int64)
    count = 0
    for t in range(interrupted.shape[0]):
        left[t] = count
        count = recovery_days if interrupted[t] else max(count - 1, 0)
    return left


class Replayed(NamedTuple):
    """The replayed days of ``K`` candidates, arrays (K, T)."""

    spend: np.ndarray  # CNY
    gmv: np.ndarray  # expected GMV (CNY): bias included, before the day's noise
    demand: np.ndarray  # spend with ample budgets on the ROI-controlled plans (CNY)
    demand_gmv: np.ndarray  # its expected GMV (CNY)
    refund_rate: np.ndarray  # the day's cohort refund rate at the base's refund_rate (NaN
    # on a day the replay books no order)


@dataclass
class Replay:
    """The report's days as a batch for :meth:`predict` (built once per fit)."""

    history: AccountHistory
    config: ScenarioConfig
    model: MarketModel
    rows: np.ndarray  # day index of each row of one candidate's block
    demand: np.ndarray  # bool: the row replays its day with an ample budget
    run_days: np.ndarray  # the days replayed as run (the first rows), ascending
    state: MarketState
    decision: Decision
    _batches: dict = field(default_factory=dict, repr=False)  # k -> :meth:`_batch`

    @classmethod
    def of(cls, history: AccountHistory, base: ScenarioConfig,
           run_days: np.ndarray | None = None) -> Replay:
        """The report's batch: each day replayed with an ample budget (its demand) and, for
        the days in ``run_days`` (bool (T,); default every day), as it was run.

        The likelihood reads a day as run only where its budget bound, so its replay leaves
        the other days' as-run rows out (rows are independent: the rest are unchanged); their
        ``spend``, ``gmv`` and ``refund_rate`` are NaN in :meth:`predict`."""
        config = replay_config(base, history)
        model = MarketModel(config)
        days = np.arange(history.days)
        run = days if run_days is None else np.flatnonzero(run_days)
        rows = np.concatenate([run, days])
        demand = np.concatenate([np.zeros(run.size, bool), np.ones(history.days, bool)])
        n = rows.size
        state = model.initial_state(unit_params(config, n), np.random.default_rng(0))
        recovery = recovery_days_left(history.interrupted, config.interrupt_recovery_days)
        # demand rows: the ROI-controlled plans' budgets ample, the volume plan's as set (it
        # spends its budget whatever the traffic): what the day buys when its budget does not
        # bind (shares need not sum to 1: each plan's budget is budget x share)
        budget = history.budget[rows] * np.where(demand, DEMAND_BUDGET_MULT, 1.0)
        shares = history.shares[rows].copy()
        shares[demand, VOLUME] /= DEMAND_BUDGET_MULT
        state = state._replace(
            day=history.day[rows].copy(), target_roi=history.target[rows].copy(),
            budget_cny=budget, shares=shares,
            traffic_shock=np.zeros(n), learning=history.learning[rows].copy(),
            learn_failed=history.learn_failed[rows].copy(),
            creative_age_days=history.creative_age[rows].copy(),
            balance_cny=np.full(n, AMPLE_BALANCE_CNY),
            recovery_days_left=recovery[rows], interrupted=np.zeros(n, bool),
            protection_edits=np.zeros(n, np.int64),
            roi_drift=np.zeros(n), cost_drift=np.zeros(n), roi_regime=np.zeros(n),
            cost_regime=np.zeros(n))
        decision = Decision(target_roi=state.target_roi.copy(), budget_cny=budget.copy(),
                            shares=state.shares.copy(), refresh=np.zeros(n, bool))
        return cls(history, config, model, rows, demand, run, state, decision)

    def predict(self, z: np.ndarray, roi_shift: np.ndarray | None = None,
                cost_shift: np.ndarray | None = None) -> Replayed:
        """The model's days under each candidate.

        :param z: (K, P) candidates in the space of :func:`market_parameters`.
        :param roi_shift: log shifts of the pool's mean ROI that leave the typical share (a
            property of the account's pool, not of one day) as it is: (K,) every day's alike
            (the likelihood's gradient reads each day's own response from it), or (K, T) a
            path of the latent deviations, each day its own (as the simulator's drift and
            shocks move it).
        :param cost_shift: (K, T) log shifts of each day's pool size (a latent path), or none.
        """
        z = np.atleast_2d(z)
        k = z.shape[0]
        params = self.account_params(z)
        if roi_shift is not None:
            params = params._replace(
                pool_mean_roi=params.pool_mean_roi * self._per_row(roi_shift))
        if cost_shift is not None:
            params = params._replace(
                pool_cost_cny=params.pool_cost_cny * self._per_row(cost_shift))
        state, decision, draws, _ = self._batch(k)
        _, out = self.model.step(state, params, decision, draws)
        m = self.run_days.size
        spend = out.spend.reshape(k, -1)
        gmv = out.expected_gmv.reshape(k, -1)
        booked = out.gmv.reshape(k, -1)[:, :m]
        rate = np.where(booked > 0, out.cohort_refunds.reshape(k, -1)[:, :m]
                        / np.maximum(booked, 1e-9), np.nan)
        return Replayed(self._as_run(spend[:, :m]), self._as_run(gmv[:, :m]), spend[:, m:],
                        gmv[:, m:], self._as_run(rate))

    def _per_row(self, shift: np.ndarray) -> np.ndarray:
        """Multipliers (K * rows,) of log shifts (K,) per candidate or (K, T) per day."""
        shift = np.asarray(shift, dtype=np.float64)
        if shift.ndim == 1:
            return np.repeat(np.exp(shift), self.rows.size)
        return np.exp(shift[:, self.rows]).ravel()

    def _as_run(self, rows: np.ndarray) -> np.ndarray:
        """The as-run rows (K, m) on the report's days (K, T): NaN on days not replayed."""
        if self.run_days.size == self.history.days:
            return rows
        out = np.full((rows.shape[0], self.history.days), np.nan)
        out[:, self.run_days] = rows
        return out

    def _batch(self, k: int) -> tuple[MarketState, Decision, np.ndarray, AccountParams]:
        """The state at dawn, the settings, the (zero) draws and the parameters no candidate
        moves (the base's) of ``k`` candidates' rows, candidate-major; built once per ``k``
        (:meth:`MarketModel.step` modifies none)."""
        if k not in self._batches:
            cfg, n = self.config, k * self.rows.size
            state = MarketState.stack([self.state] * k)._replace(
                recent_edits=np.zeros((cfg.relearn_window_days, n)),
                recent_orders=np.zeros((cfg.starvation_window_days, n)),
                learn_orders=np.zeros((cfg.learning_window_days, n)))
            decision = Decision(*(np.tile(x, (k,) + (1,) * (x.ndim - 1))
                                  for x in self.decision))
            full = np.ones(n)
            fixed = AccountParams(
                pool_cost_cny=full, pool_mean_roi=full, pool_sigma=full,
                refund_rate=full * cfg.refund_rate, aov_cny=full * cfg.aov_cny,
                margin=full * cfg.margin, bidder_bias=full,
                launch_budget_cny=full * cfg.launch_budget_cny,
                start_weekday=np.full(n, self.history.start_weekday, dtype=np.int64),
                typical_share=full)
            self._batches[k] = (state, decision, np.zeros((n, self.model.n_draws)), fixed)
        return self._batches[k]

    def account_params(self, z: np.ndarray) -> AccountParams:
        """The batch's :class:`AccountParams`: each candidate's values on each of its rows,
        with the weekday and learning effects folded into the pool's size and mean ROI."""
        cfg, h, ix = self.config, self.history, self._index
        k, n = z.shape[0], self.rows.size
        learning = h.learning[self.rows]
        weekday = weekday_log_effects(z, ix["weekday_mon"])[:, h.weekday[self.rows]]  # (K, n)
        cost = np.exp(z[:, [ix["pool_cost_cny"]]] + weekday + np.where(
            learning, z[:, [ix["learning_traffic_mult"]]] - np.log(cfg.learning_traffic_mult),
            0.0))
        roi = np.exp(z[:, [ix["pool_mean_roi"]]] + np.where(
            learning, z[:, [ix["learning_roi_mult"]]] - np.log(cfg.learning_roi_mult), 0.0))
        sigma = np.repeat(np.exp(z[:, ix["pool_sigma"]]), n)
        bias = np.repeat(np.exp(z[:, ix["bidder_bias"]]), n)
        typical = typical_share(cfg, np.exp(z[:, ix["pool_mean_roi"]]),
                                np.exp(z[:, ix["pool_sigma"]]))
        return self._batch(k)[3]._replace(
            pool_cost_cny=cost.ravel(), pool_mean_roi=roi.ravel(), pool_sigma=sigma,
            bidder_bias=bias, typical_share=np.repeat(typical, n))

    @cached_property
    def _index(self) -> dict[str, int]:
        return index_of(market_parameters(self.config))


def unit_params(cfg: ScenarioConfig, n: int) -> AccountParams:
    """Placeholder params for :meth:`MarketModel.initial_state` (it reads only their count)."""
    ones = np.ones(n)
    return AccountParams(ones * cfg.pool_cost_cny, ones * cfg.pool_mean_roi,
                         ones * cfg.pool_sigma, ones * cfg.refund_rate, ones * cfg.aov_cny,
                         ones * cfg.margin, ones, ones * cfg.launch_budget_cny,
                         np.zeros(n, np.int64), ones * 0.5)
