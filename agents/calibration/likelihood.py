"""The report's likelihood around the simulator's replayed days (:mod:`.replay`).

For candidate parameters the replay gives each day's spend ``S`` and expected GMV ``G``
(bias included). The simulator moves a day away from that through two latent log
deviations, as :func:`envs.stages.move_market` and :func:`envs.stages.price_traffic` draw
them:

- ``a_t`` on the pool's size: the traffic shock (AR(1), sd ``traffic_shock_sd``,
  persistence ``traffic_shock_ar``), the slow cost drift (sd ``drift_cost_sd``, the base's
  half-life) and competitor regimes (the base's rate, step and half-life: a prior);
- ``b_t`` on the pool's mean ROI: the daily ROI shock (sd ``roi_shock_sd``), the slow ROI
  drift (sd ``drift_roi_sd``) and the regimes' ROI steps.

Statistically linearised (:func:`linearise`: four more replays, with the pool's size or
mean ROI at the Gauss-Hermite nodes of its deviation) ``ln spend_t = ln S_t + c_t a_t + s_t
b_t`` and ``ln(gmv_t / spend_t) = ln(G_t / S_t) + r_t b_t + e_t``, plus each day's mean
shift and leftover variance: a target-ROI bidder buys more of a richer pool at about the
same ROI, a budget caps what a larger pool would sell, and the slopes see both. ``e_t`` is
the day's independent noise: the bidder's (``bidder_noise_sd``, times
``learning_noise_mult`` while learning), the basket's and the order count's (``1 /
orders``), with the lognormal means' corrections ``-var / 2``. The days observed are
jointly normal:
The days observed are jointly normal:

- spend on days whose budget did not bind, and ROI on days with orders, in one covariance
  (gaps are exact);
- on days the budget bound (or the balance ran out) only that the traffic would have bought
  at least the spend, ``P(ln S_ample + a + s b >= ln spend)``, one day at a time;
- a day with spend and fewer than :data:`GAUSSIAN_ORDERS` orders (where the lognormal
  reading of ``gmv / spend`` fails) counts through its orders instead: Poisson with mean
  ``G / S x spend / AOV`` (the day's latent noise ignored, the count's dominates).

The prior (:mod:`.prior`) adds ``sum(((z - mean) / sd)^2) / 2``; the result is the negative
log posterior density in ``z`` that :mod:`.fit` minimises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.linalg import cho_solve, lapack, solve_triangular
from scipy.special import digamma, gammaln, log_ndtr

from agents.calibration.account import AccountHistory
from agents.calibration.prior import index_of, market_parameters, prior_means, prior_sds
from agents.calibration.replay import Replay
from envs.config import ScenarioConfig

NOISE = ("traffic_shock_sd", "traffic_shock_ar", "drift_cost_sd", "bidder_noise_sd",
         "roi_shock_sd", "drift_roi_sd")  # the fitted noise levels (names of .prior)
GAUSSIAN_ORDERS = 10  # days with fewer orders count through the order count's Poisson law
SPEND_FLOOR_SD = 0.02  # log-sd: rounding and what the replay leaves out of a day's spend
FD_STEP = 1e-4  # central-difference step (in z) of the replay's response in the gradient
RESPONSES = ("pool_cost_cny", "pool_mean_roi", "pool_sigma", "bidder_bias", "day_roi")
# the moves whose replayed responses the gradient chains with (``day_roi``: every day's pool
# mean ROI, the typical share held)
LOG_2PI = float(np.log(2.0 * np.pi))
NULL_EIGENVALUE = 1e-12  # of the largest: smaller eigenvalues of a covariance are rounding


@dataclass
class Observed:
    """The report's figures the likelihood reads, split by how each day counts."""

    free_days: np.ndarray  # spend below the budget: spend informative
    capped_days: np.ndarray  # the budget bound: spend a lower bound
    capped_mask: np.ndarray  # bool (T,): the same days
    roi_days: np.ndarray  # spend > 0 and at least GAUSSIAN_ORDERS orders
    count_days: np.ndarray  # spend > 0 and fewer orders: the count's Poisson likelihood
    log_spend: np.ndarray
    log_roi: np.ndarray  # ln(gmv / spend) on roi_days (0 elsewhere)
    orders: np.ndarray
    learning: np.ndarray
    day: np.ndarray


def observed(replay: Replay) -> Observed:
    h = replay.history
    bought = h.spend > 0
    safe_spend = np.where(bought, h.spend, 1.0)
    roi = np.where(bought & (h.gmv > 0), h.gmv / safe_spend, 1.0)
    return Observed(
        free_days=np.flatnonzero(bought & ~h.capped),
        capped_days=np.flatnonzero(bought & h.capped), capped_mask=h.capped.copy(),
        roi_days=np.flatnonzero(bought & (h.orders >= GAUSSIAN_ORDERS) & (h.gmv > 0)),
        count_days=np.flatnonzero(bought & (h.orders < GAUSSIAN_ORDERS)),
        log_spend=np.log(safe_spend), log_roi=np.log(roi), orders=h.orders,
        learning=h.learning, day=h.day.astype(np.float64))


class Loadings(NamedTuple):
    """How the days move with the latent deviations, per day (T,), by statistical
    linearisation (below): ``cost`` is the slope of ln(spend) on the pool's log size
    deviation ``a``, ``spend`` its slope on the pool's log mean-ROI deviation ``b``, ``roi``
    the slope of ln(ROI) on ``b``; ``spend_shift`` and ``roi_shift`` the mean's departure
    from the day at ``a = b = 0``, ``spend_var`` and ``roi_var`` what the slopes leave
    unexplained. Spend is the demand rows' where the budget did not bind."""

    cost: np.ndarray
    spend: np.ndarray
    roi: np.ndarray
    roi_cost: np.ndarray  # slope of ln(ROI) on ``a`` (a bigger pool: the volume plan's
    # leftovers are better traffic)
    spend_shift: np.ndarray
    roi_shift: np.ndarray
    spend_var: np.ndarray
    roi_var: np.ndarray
    capped_weight: float = 1.0  # what a budget-bound day counts for (Posterior.day_weight)
    count_weight: float = 1.0  # what a low-order day counts for (likewise)


class Factor(NamedTuple):
    """What one candidate's noise levels and loadings fix in the likelihood."""

    chol: np.ndarray  # lower Cholesky factor of the joint normal's covariance
    iid: np.ndarray  # (T,) each day's independent log-ROI variance
    capped_sd: np.ndarray  # sds of the budget-bound days' latent log demand
    capped_weight: float
    count_var: np.ndarray  # log-variances of the low-order days' expected order counts
    count_weight: float


@dataclass
class DayBlock:
    """The lags and fixed latent covariances between some of the report's days."""

    lag: np.ndarray  # (n, n) days apart
    decay: np.ndarray  # the slow drift's correlation
    regime_cost: np.ndarray  # the regimes' covariances (the base's, a prior)
    regime_roi: np.ndarray

    @classmethod
    def of(cls, post: Posterior, days: np.ndarray) -> DayBlock:
        cut = np.ix_(days, days)
        return cls(post.lag[cut], post.drift_decay[cut], post.regime_cost[cut],
                   post.regime_roi[cut])

    def covariances(self, nz: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """The latent covariances of the pool's log size (``a``) and log mean ROI (``b``)."""
        cost = (nz["traffic_shock_sd"] ** 2 * nz["traffic_shock_ar"] ** self.lag
                + nz["drift_cost_sd"] ** 2 * self.decay + self.regime_cost)
        pool_roi = (nz["roi_shock_sd"] ** 2 * (self.lag == 0) + nz["drift_roi_sd"] ** 2
                    * self.decay + self.regime_roi)
        return cost, pool_roi

    def variances(self, nz: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Each day's own latent variances of ``a`` and ``b`` (the diagonals of
        :meth:`covariances`, without building the matrices)."""
        return (nz["traffic_shock_sd"] ** 2 + nz["drift_cost_sd"] ** 2
                + np.diag(self.regime_cost),
                nz["roi_shock_sd"] ** 2 + nz["drift_roi_sd"] ** 2 + np.diag(self.regime_roi))


def linearise(f0: np.ndarray, plus: np.ndarray, minus: np.ndarray, sd: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statistical linearisation of a day's response ``f`` to a normal deviation of sd
    ``sd`` from its values at the three-point Gauss-Hermite nodes ``0, +-sqrt(3) sd``
    (weights 2/3, 1/6, 1/6): the slope, the mean's shift from ``f0`` and the variance left
    around the line. Unlike a derivative, it sees a kink (a budget or the pool's end)
    within the deviation's reach, so the likelihood stays smooth across it."""
    h = np.sqrt(3.0) * sd
    shift = (plus + minus - 2.0 * f0) / 6.0
    slope = (plus - minus) / (2.0 * h)
    mean = f0 + shift
    left = ((plus - mean - slope * h) ** 2 + (minus - mean + slope * h) ** 2) / 6.0 + (
        2.0 / 3.0) * (f0 - mean) ** 2
    return slope, shift, left


class Posterior:
    """Negative log posterior density of candidate parameters (lower is better).

    :param aov_cny: the order value, and ``basket_noise_sd`` the basket's daily log-sd, as
        :mod:`.orders` fitted them from ``gmv / orders`` (they enter the ROI's variance and
        the chance of a day without orders).
    """

    def __init__(self, replay: Replay, aov_cny: float, basket_noise_sd: float):
        self.replay = replay
        self.parameters = market_parameters(replay.config)
        self.ix = index_of(self.parameters)
        self.mean, self.sd = prior_means(self.parameters), prior_sds(self.parameters)
        self.obs = observed(replay)
        self.aov_cny = aov_cny
        self.basket_var = basket_noise_sd ** 2
        cfg = replay.config
        self.phi = float(np.exp2(-1.0 / cfg.drift_half_life_days))
        self.noise_mult = np.where(self.obs.learning, cfg.learning_noise_mult, 1.0)
        self.lag = np.abs(self.obs.day[:, None] - self.obs.day[None, :])
        self.drift_decay = self.phi ** self.lag
        # competitor regimes: the base's (a prior, not fitted), as a covariance
        if cfg.market_drift_enabled:
            rate = -float(np.expm1(-1.0 / cfg.regime_shift_interval_days))
            fade = float(np.exp2(-1.0 / cfg.regime_half_life_days))
            decay = fade ** self.lag
            self.regime_cost = regime_variance(rate, cfg.regime_cost_step_sd, fade) * decay
            self.regime_roi = regime_variance(rate, cfg.regime_roi_step_sd, fade) * decay
        else:
            self.regime_cost = self.regime_roi = np.zeros_like(self.lag)
        self.noise_index = np.array([self.ix[name] for name in NOISE])
        self._noise: tuple[bytes, dict[str, float]] = (b"", {})  # :meth:`noise`'s last
        # the joint normal's days (spend on free days, then ROI on days with orders) and the
        # lags between them: what the latent covariances need, cut once
        o = self.obs
        joint = np.ix_(np.concatenate([o.free_days, o.roi_days]),
                       np.concatenate([o.free_days, o.roi_days]))
        self.joint_lag = self.lag[joint]
        self.joint_lag_days = self.joint_lag.astype(np.int64)
        self.joint_decay = self.drift_decay[joint]
        self.joint_same_day = (self.joint_lag == 0).astype(np.float64)
        self.joint_regime_cost = self.regime_cost[joint]
        self.joint_regime_roi = self.regime_roi[joint]
        self.capped_block = DayBlock.of(self, o.capped_days)
        self.count_block = DayBlock.of(self, o.count_days)
        self.day_columns = self._day_columns(replay)
        self.evaluations = 0

    @classmethod
    def of(cls, history: AccountHistory, base: ScenarioConfig, aov_cny: float,
           basket_noise_sd: float) -> Posterior:
        """The posterior of ``history`` against ``base``: its replay reads a day as run only
        where the budget bound (:meth:`_responses`), so it replays only those days as run."""
        return cls(Replay.of(history, base, run_days=history.capped), aov_cny,
                   basket_noise_sd)

    def loadings(self, z: np.ndarray) -> Loadings:
        """How one candidate's (P,) days move with its pool's size and mean ROI."""
        return self._days(np.atleast_2d(z), None)[3][0]

    def values(self, z: np.ndarray, loadings: Loadings | None = None) -> np.ndarray:
        """Negative log posterior of each candidate, (K,) for ``z`` (K, P).

        :param loadings: hold the latent deviations' loadings at these (from
            :meth:`loadings` at a nearby candidate) instead of each candidate's own: the
            optimiser's inner problem, smooth and three times cheaper (:mod:`.fit`).
        """
        z = np.atleast_2d(z)
        self.evaluations += z.shape[0]
        log_demand, log_roi, roi, loads = self._days(z, loadings)
        prior = 0.5 * (((z - self.mean) / self.sd) ** 2).sum(axis=1)
        out = np.empty(z.shape[0])
        if loadings is None:  # each candidate its own loadings, so its own factor
            groups = [[c] for c in range(z.shape[0])]
        else:  # candidates that share the noise levels share the factor
            keys: dict[bytes, list[int]] = {}
            for c in range(z.shape[0]):
                keys.setdefault(z[c, self.noise_index].tobytes(), []).append(c)
            groups = list(keys.values())
        for group in groups:
            load = loads[0] if loadings is not None else loads[group[0]]
            factor = self._factor(z[group[0]], load)
            out[group] = prior[group] - self._loglik(factor, log_demand[group], log_roi[group],
                                                     roi[group])
        return out

    def _days(self, z: np.ndarray, loadings: Loadings | None,
              pool_roi_shift: np.ndarray | None = None):
        """The replay's log demand, log ROI and ROI (K, T) of each candidate (with the
        loadings' mean shifts), and the loadings: ``[loadings]``, or each candidate's own
        from four more replays at the Gauss-Hermite nodes of its latent deviations.

        :param pool_roi_shift: (K,) log shifts of each candidate's every day's pool mean ROI
            (:meth:`Replay.predict`), or none."""
        k = z.shape[0]
        if loadings is None:
            sd_a, sd_b = self.latent_sds(z)
            h = np.sqrt(3.0)
            nodes = [z]
            for name, sd in (("pool_cost_cny", sd_a), ("pool_mean_roi", sd_b)):
                for sign in (1.0, -1.0):
                    moved = z.copy()
                    moved[:, self.ix[name]] += sign * h * sd
                    nodes.append(moved)
            z = np.concatenate(nodes)
            if pool_roi_shift is not None:
                pool_roi_shift = np.tile(pool_roi_shift, len(nodes))
        log_demand, log_roi, roi_all = self._responses(self.replay.predict(z, pool_roi_shift))
        if loadings is None:
            loads = []
            for c in range(k):
                d0, r0 = log_demand[c], log_roi[c]
                a_plus, a_minus = log_demand[k + c], log_demand[2 * k + c]
                b_plus, b_minus = log_demand[3 * k + c], log_demand[4 * k + c]
                cost, cost_shift, cost_left = linearise(d0, a_plus, a_minus, sd_a[c])
                spend, spend_shift, spend_left = linearise(d0, b_plus, b_minus, sd_b[c])
                roi, roi_shift, roi_left = linearise(r0, log_roi[3 * k + c],
                                                     log_roi[4 * k + c], sd_b[c])
                roi_cost, roi_cost_shift, roi_cost_left = linearise(
                    r0, log_roi[k + c], log_roi[2 * k + c], sd_a[c])
                load = Loadings(cost, spend, roi, roi_cost, cost_shift + spend_shift,
                                roi_shift + roi_cost_shift, cost_left + spend_left,
                                roi_left + roi_cost_left)
                loads.append(self.with_day_weights(z[c], load))
        else:
            loads = [loadings]
        shift_demand = np.stack([ld.spend_shift for ld in loads])
        shift_roi = np.stack([ld.roi_shift for ld in loads])
        return (log_demand[:k] + shift_demand, log_roi[:k] + shift_roi, roi_all[:k], loads)

    def _responses(self, days) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A replay's (K, T) log spend a day would buy if its budget did not bind (the demand
        rows; what a day whose budget did not bind bought), log ROI and ROI: the as-run
        rows' where the budget bound, the demand rows' elsewhere."""
        log_demand = _log(days.demand)
        roi_all = np.where(self.obs.capped_mask, days.gmv / _pos(days.spend),
                           days.demand_gmv / _pos(days.demand))
        return log_demand, _log(roi_all), roi_all

    def _day_columns(self, replay: Replay) -> list[tuple[int, str, np.ndarray]]:
        """How each parameter the replay reads moves a day: (its index, the response of
        :data:`RESPONSES` it moves, per-day weights (T,)). A weekday effect moves the pool's
        size on its days (Sunday's is minus the six others' sum), a learning multiplier
        the size or the mean ROI on learning days."""
        h, ix = replay.history, self.ix
        ones = np.ones(h.days)
        sunday = (h.weekday == 6).astype(np.float64)
        columns = [(ix[name], name, ones) for name in RESPONSES[:-1]]
        for k in range(6):
            columns.append((ix["weekday_mon"] + k, "pool_cost_cny",
                            (h.weekday == k).astype(np.float64) - sunday))
        learning = h.learning.astype(np.float64)
        columns.append((ix["learning_traffic_mult"], "pool_cost_cny", learning))
        columns.append((ix["learning_roi_mult"], "day_roi", learning))
        return columns

    def value_and_gradient(self, z: np.ndarray, loadings: Loadings
                           ) -> tuple[float, np.ndarray]:
        """The negative log posterior of one candidate ``z`` (P,) with the loadings held, and
        its gradient (P,).

        The likelihood's derivatives are closed-form; they are chained with each day's
        response to the pool's size, mean ROI, spread and bias (central differences of one
        batched replay of 11 candidates: days are replayed independently, so one move gives
        every day's own response, and weekday and learning effects are those responses on
        their days, :meth:`_day_columns`). The noise levels enter through the covariance
        only: ``d loglik = -tr((inv(C) - w w') dC) / 2 - w' dr`` with ``w = inv(C) r``."""
        z = np.asarray(z, dtype=np.float64)
        self.evaluations += 1
        moves, shifts = self._response_moves(z)
        cand, roi_shift = [z, *moves], [0.0, *shifts]
        log_demand, log_roi, roi = self._responses(
            self.replay.predict(np.array(cand), np.array(roi_shift)))
        slope = {name: [(x[1 + 2 * m] - x[2 + 2 * m]) / (2.0 * FD_STEP)
                        for x in (log_demand, log_roi, roi)]
                 for m, name in enumerate(RESPONSES)}
        ld = log_demand[0] + loadings.spend_shift
        lr = log_roi[0] + loadings.roi_shift
        q = roi[0]
        parts = self._joint_parts(z, loadings)
        factor = self._factor(z, loadings, parts)
        prior_grad = (z - self.mean) / self.sd ** 2
        value = (0.5 * float((((z - self.mean) / self.sd) ** 2).sum())
                 - float(self._loglik(factor, ld[None], lr[None], q[None])[0]))
        if not np.isfinite(value):
            return value, np.zeros_like(z)
        d_ld, d_lr, d_q, d_noise = self._loglik_gradient(z, loadings, parts, factor, ld, lr, q)
        grad = prior_grad.copy()
        for index, name, weight in self.day_columns:
            sd_, sr_, sq_ = slope[name]
            grad[index] -= float(((sd_ * d_ld + sr_ * d_lr + sq_ * d_q) * weight).sum())
        grad[self.noise_index] -= d_noise * np.array(
            [float(self.parameters[i].slope(z[i])) for i in self.noise_index])
        return value, grad

    def _loglik_gradient(self, z: np.ndarray, load: Loadings, parts: tuple, factor: tuple,
                         ld: np.ndarray, lr: np.ndarray, q: np.ndarray):
        """The log likelihood's derivatives: with respect to each day's log demand, log ROI
        and ROI (T,) each, and to the natural noise levels of :data:`NOISE` (6,)."""
        o = self.obs
        f, r, c, e = o.free_days, o.roi_days, o.capped_days, o.count_days
        chol, iid, capped_sd, capped_weight = factor[:4]
        uu, vv, fast_shape, _, _ = parts
        nz = self.noise(z)
        d_ld, d_lr, d_q = np.zeros(ld.size), np.zeros(ld.size), np.zeros(ld.size)
        d_noise = np.zeros(len(NOISE))
        mult2 = self.noise_mult ** 2
        if f.size + r.size:
            resid = np.concatenate([o.log_spend[f] - ld[f], o.log_roi[r] - lr[r] + 0.5 * iid[r]])
            w = cho_solve((chol, True), resid, check_finite=False)
            d_ld[f] += w[:f.size]
            d_lr[r] += w[f.size:]
            g = _inverse(chol) - np.outer(w, w)  # d loglik / d C = -g / 2
            gu, gv = g * uu, g * vv
            s, rho = nz["traffic_shock_sd"], nz["traffic_shock_ar"]
            d_noise[0] = -s * float((gu * fast_shape).sum())
            d_noise[1] = -0.5 * s * s / rho * float((gu * fast_shape * self.joint_lag).sum())
            d_noise[2] = -nz["drift_cost_sd"] * float((gu * self.joint_decay).sum())
            d_noise[4] = -nz["roi_shock_sd"] * float((gv * self.joint_same_day).sum())
            d_noise[5] = -nz["drift_roi_sd"] * float((gv * self.joint_decay).sum())
            tail = np.diag(g)[f.size:] + w[f.size:]
            d_noise[3] = -nz["bidder_noise_sd"] * float((mult2[r] * tail).sum())
        if c.size:
            x = (ld[c] - o.log_spend[c]) / capped_sd
            mills = capped_weight * np.exp(-0.5 * x * x - 0.5 * LOG_2PI - log_ndtr(x))
            d_ld[c] += mills / capped_sd
            # d loglik / d (capped sd^2), then the sd^2's slopes on the four variances
            per_var = -mills * x / (2.0 * capped_sd ** 2)
            cost2, spend2 = load.cost[c] ** 2, load.spend[c] ** 2
            d_noise[0] += 2.0 * nz["traffic_shock_sd"] * float((per_var * cost2).sum())
            d_noise[2] += 2.0 * nz["drift_cost_sd"] * float((per_var * cost2).sum())
            d_noise[4] += 2.0 * nz["roi_shock_sd"] * float((per_var * spend2).sum())
            d_noise[5] += 2.0 * nz["drift_roi_sd"] * float((per_var * spend2).sum())
        if e.size:
            per_order = np.exp(o.log_spend[e]) / self.aov_cny
            mean = np.maximum(q[e] * per_order, 1e-12)
            size = _size(factor.count_var)
            orders, w = o.orders[e], factor.count_weight
            d_q[e] += w * (orders / mean - (orders + size) / (size + mean)) * per_order
            # d loglik / d size, then d size / d (log variance), then the variance's slopes
            d_size = (digamma(orders + size) - digamma(size) + np.log(size / (size + mean))
                      + (mean - orders) / (size + mean))
            growth = np.exp(np.minimum(factor.count_var, 50.0))
            per_var = w * d_size * -growth / np.maximum(growth - 1.0, 1e-300) ** 2
            roi2, cost2 = load.roi[e] ** 2, load.roi_cost[e] ** 2
            d_noise[0] += 2.0 * nz["traffic_shock_sd"] * float((per_var * cost2).sum())
            d_noise[2] += 2.0 * nz["drift_cost_sd"] * float((per_var * cost2).sum())
            d_noise[3] += 2.0 * nz["bidder_noise_sd"] * float((per_var * mult2[e]).sum())
            d_noise[4] += 2.0 * nz["roi_shock_sd"] * float((per_var * roi2).sum())
            d_noise[5] += 2.0 * nz["drift_roi_sd"] * float((per_var * roi2).sum())
        return d_ld, d_lr, d_q, d_noise

    def expected_information(self, z: np.ndarray, loadings: Loadings | None = None
                             ) -> np.ndarray:
        """The expected (Fisher) information (P, P) about the parameters at ``z`` that the
        days read as jointly normal carry: ``J' C^-1 J``, ``J`` the derivative of their mean
        and ``C`` their covariance (``loadings``: the mode's, or ``z``'s own). A
        Gauss-Newton matrix: positive semi-definite and free of the day's residuals, so it
        does not depend on one draw of the days, nor on a kink between two finite-difference
        points as the Hessian does. Budget-bound and low-order days are left out (a little
        information, conservatively); the noise levels, which move no mean, get none.

        ``J`` is the slope of the mean the likelihood gives a day: the replay averaged over
        the latent deviations at their Gauss-Hermite nodes (:meth:`mean_slopes`), not the
        replay's slope at one point. The pool's size and mean ROI shift the pool exactly as
        its latent deviations do, so their averaged slopes are those deviations' loadings,
        and the days tell them from a persistent deviation only as far as its covariance
        allows. The slope at one point differs where a budget or the pool's end is within
        the deviation's reach, and that difference counted as information: on drifting
        accounts it made the pool's mean ROI look about twice as sure as it was."""
        load = self.loadings(z) if loadings is None else loadings
        p = z.size
        f, r = self.obs.free_days, self.obs.roi_days
        if f.size + r.size == 0:
            return np.zeros((p, p))
        jac = np.zeros((f.size + r.size, p))
        slopes = self.mean_slopes(z)
        for index, name, weight in self.day_columns:
            d_demand, d_roi = slopes[name]
            jac[:, index] += np.concatenate([d_demand[f] * weight[f], d_roi[r] * weight[r]])
        white = solve_triangular(self._factor(z, load).chol, jac, lower=True,
                                 check_finite=False)
        info = white.T @ white
        return 0.5 * (info + info.T)

    def mean_slopes(self, z: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each day's slopes (T,) of the mean log demand and mean log ROI the likelihood
        gives it (the replay averaged over the latent deviations, each candidate with its
        own loadings) with respect to each of :data:`RESPONSES`: central differences of
        one batched replay (11 candidates at 5 nodes each)."""
        cand, roi_shift = self._response_moves(z)
        log_demand, log_roi, _, _ = self._days(np.array(cand), None, np.array(roi_shift))
        return {name: tuple((x[2 * m] - x[2 * m + 1]) / (2.0 * FD_STEP)
                            for x in (log_demand, log_roi))
                for m, name in enumerate(RESPONSES)}

    def _response_moves(self, z: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """``z`` moved by +-:data:`FD_STEP` along each of :data:`RESPONSES` (``day_roi``: a
        shift of every day's pool mean ROI, :meth:`Replay.predict`'s ``roi_shift``): the
        candidates, then their ROI shifts, plus before minus for each response."""
        cand, roi_shift = [], []
        for name in RESPONSES:
            for sign in (1.0, -1.0):
                moved = z.copy()
                if name == "day_roi":
                    roi_shift.append(sign * FD_STEP)
                else:
                    moved[self.ix[name]] += sign * FD_STEP
                    roi_shift.append(0.0)
                cand.append(moved)
        return cand, roi_shift

    def latent_sds(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stationary sds (K,) of the latent log deviations of the pool's size and mean ROI."""
        sd_a, sd_b = np.empty(z.shape[0]), np.empty(z.shape[0])
        for c in range(z.shape[0]):
            nz = self.noise(z[c])
            sd_a[c] = np.sqrt(nz["traffic_shock_sd"] ** 2 + nz["drift_cost_sd"] ** 2
                              + self.regime_cost[0, 0])
            sd_b[c] = np.sqrt(nz["roi_shock_sd"] ** 2 + nz["drift_roi_sd"] ** 2
                              + self.regime_roi[0, 0])
        return sd_a, sd_b

    def __call__(self, z: np.ndarray) -> float:
        return float(self.values(z)[0])

    def noise(self, z: np.ndarray) -> dict[str, float]:
        """One candidate's noise levels by name (the last candidate's kept: one evaluation
        asks for them several times)."""
        key = z[self.noise_index].tobytes()
        if self._noise[0] != key:
            self._noise = (key, {name: float(self.parameters[self.ix[name]].value(
                z[self.ix[name]])) for name in NOISE})
        return dict(self._noise[1])

    def day_noise_var(self, z: np.ndarray) -> np.ndarray:
        """Each day's independent log-ROI variance (T,): bidder, basket, order count."""
        bidder = (self.noise(z)["bidder_noise_sd"] * self.noise_mult) ** 2
        return bidder + self.basket_var + 1.0 / np.maximum(self.obs.orders, 1.0)

    def latent_end(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The latent deviations on the report's last day given its residuals under candidate
        ``z`` (P,): mean (3,) and covariance (3, 3) of the traffic shock, the pool's slow
        cost deviation and its slow ROI deviation (drift and regimes together), the normal
        conditional of the joint model above."""
        o, load = self.obs, self.loadings(z)
        f, r = o.free_days, o.roi_days
        nz = self.noise(z)
        last = self.lag.shape[0] - 1
        fast = nz["traffic_shock_sd"] ** 2 * nz["traffic_shock_ar"] ** self.lag[last]
        slow_cost = nz["drift_cost_sd"] ** 2 * self.drift_decay[last] + self.regime_cost[last]
        slow_roi = nz["drift_roi_sd"] ** 2 * self.drift_decay[last] + self.regime_roi[last]
        cross = np.zeros((3, f.size + r.size))
        cross[0, :f.size] = load.cost[f] * fast[f]
        cross[1, :f.size] = load.cost[f] * slow_cost[f]
        cross[2, :f.size] = load.spend[f] * slow_roi[f]
        cross[0, f.size:] = load.roi_cost[r] * fast[r]
        cross[1, f.size:] = load.roi_cost[r] * slow_cost[r]
        cross[2, f.size:] = load.roi[r] * slow_roi[r]
        prior = np.diag([fast[last], slow_cost[last], slow_roi[last]])
        return self._latent_given_days(z, load, cross, prior)

    def latent_path(self, z: np.ndarray, loadings: Loadings | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The latent log deviations of the pool's size (``a``) and mean ROI (``b``) on
        every day of the report given its residuals under candidate ``z`` (P,): mean (2T,)
        and covariance (2T, 2T), ``a`` on days 0..T-1 then ``b`` (shocks, drift and regimes
        together), the normal conditional of the joint model above. Budget-bound and
        low-order days, outside the joint normal, do not inform it.

        :param loadings: ``z``'s own (:meth:`loadings`), when the caller has them."""
        o = self.obs
        load = self.loadings(z) if loadings is None else loadings
        f, r = o.free_days, o.roi_days
        cost, pool_roi = DayBlock.of(self, np.arange(self.lag.shape[0])).covariances(
            self.noise(z))
        days = cost.shape[0]
        cross = np.zeros((2 * days, f.size + r.size))
        cross[:days, :f.size] = cost[:, f] * load.cost[f]
        cross[:days, f.size:] = cost[:, r] * load.roi_cost[r]
        cross[days:, :f.size] = pool_roi[:, f] * load.spend[f]
        cross[days:, f.size:] = pool_roi[:, r] * load.roi[r]
        prior = np.zeros((2 * days, 2 * days))
        prior[:days, :days], prior[days:, days:] = cost, pool_roi
        return self._latent_given_days(z, load, cross, prior)

    def _latent_given_days(self, z: np.ndarray, load: Loadings, cross: np.ndarray,
                           prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The normal conditional of latent deviations with covariance ``prior`` (n, n) and
        covariance ``cross`` (n, days) with the joint normal's residuals under ``z``: their
        mean (n,) and covariance (n, n)."""
        o = self.obs
        f, r = o.free_days, o.roi_days
        if f.size + r.size == 0:
            return np.zeros(prior.shape[0]), prior
        log_demand, log_roi, _, _ = self._days(np.atleast_2d(z), load)
        factor = self._factor(z, load)
        chol, iid = factor.chol, factor.iid
        resid = np.concatenate([o.log_spend[f] - log_demand[0, f],
                                o.log_roi[r] - log_roi[0, r] + 0.5 * iid[r]])
        white_cross = solve_triangular(chol, cross.T, lower=True, check_finite=False)
        white = solve_triangular(chol, resid, lower=True, check_finite=False)
        mean = white_cross.T @ white
        cov = prior - white_cross.T @ white_cross
        return mean, 0.5 * (cov + cov.T)

    def with_day_weights(self, z: np.ndarray, load: Loadings) -> Loadings:
        """``load`` with what each budget-bound day and each low-order day counts for under
        candidate ``z`` (P,): ``n_eff / n`` of each kind, where ``n_eff = n^2 / sum(R^2)``
        is the effective number of independent days among the ``n`` (``R``: the correlation
        of their latent log demand, or of their log expected order count).

        These days stay outside the joint normal (a bound; a count), one term a day. Their
        latent deviations are strongly correlated from day to day (the slow drift, the
        regimes), so the product of their terms would count one persistent deviation many
        times, and pull the pool's size or mean ROI with false confidence; weighting the
        terms (a composite likelihood) counts it about once per independent stretch."""
        o, nz = self.obs, self.noise(z)
        bidder = (nz["bidder_noise_sd"] * self.noise_mult) ** 2
        c, e = o.capped_days, o.count_days
        return load._replace(
            capped_weight=_effective_share(
                self.capped_block.covariances(nz), load.cost[c], load.spend[c],
                SPEND_FLOOR_SD ** 2 + load.spend_var[c]),
            count_weight=_effective_share(
                self.count_block.covariances(nz), load.roi_cost[e], load.roi[e],
                load.roi_var[e] + bidder[e]))

    def _joint_parts(self, z: np.ndarray, load: Loadings) -> tuple:
        """The joint residuals' covariance ``C = (u u') * A + (v v') * B + diag(d)``: the
        residuals' loadings ``u`` on the pool's size deviation and ``v`` on its mean-ROI
        deviation, ``rho ** lag`` (the traffic shock's correlation over the joint days), the
        latent covariances ``A`` and ``B`` over those days, and the diagonal ``d``.

        :return: ``(u u', v v', rho ** lag, (A, B, d), iid)``, ``iid`` each day's independent
            log-ROI variance (:meth:`day_noise_var`).
        """
        o = self.obs
        f, r = o.free_days, o.roi_days
        nz = self.noise(z)
        powers = nz["traffic_shock_ar"] ** np.arange(self.joint_lag_days.max(initial=0) + 1.0)
        fast_shape = powers[self.joint_lag_days]
        cost = (nz["traffic_shock_sd"] ** 2 * fast_shape
                + nz["drift_cost_sd"] ** 2 * self.joint_decay + self.joint_regime_cost)
        pool_roi = (nz["roi_shock_sd"] ** 2 * self.joint_same_day
                    + nz["drift_roi_sd"] ** 2 * self.joint_decay + self.joint_regime_roi)
        iid = self.day_noise_var(z)
        diag = np.concatenate([SPEND_FLOOR_SD ** 2 + load.spend_var[f],
                               iid[r] + load.roi_var[r]])
        u = np.concatenate([load.cost[f], load.roi_cost[r]])
        v = np.concatenate([load.spend[f], load.roi[r]])
        return np.outer(u, u), np.outer(v, v), fast_shape, (cost, pool_roi, diag), iid

    def _factor(self, z: np.ndarray, load: Loadings, parts: tuple | None = None) -> Factor:
        """The Cholesky factor of the joint residual covariance (:meth:`_joint_parts`), the
        independent ROI variances and the capped days' sds, for candidate ``z`` (P,)."""
        uu, vv, _, (cost, pool_roi, diag), iid = parts or self._joint_parts(z, load)
        joint = uu * cost + vv * pool_roi
        joint[np.diag_indices_from(joint)] += diag
        chol = np.linalg.cholesky(joint)
        nz = self.noise(z)
        c, e = self.obs.capped_days, self.obs.count_days
        a_var, b_var = self.capped_block.variances(nz)
        capped_sd = np.sqrt(load.cost[c] ** 2 * a_var + load.spend[c] ** 2 * b_var
                            + SPEND_FLOOR_SD ** 2 + load.spend_var[c])
        a_var, b_var = self.count_block.variances(nz)
        count_var = (load.roi[e] ** 2 * b_var + load.roi_cost[e] ** 2 * a_var
                     + load.roi_var[e] + (nz["bidder_noise_sd"] * self.noise_mult[e]) ** 2)
        return Factor(chol, iid, capped_sd, load.capped_weight, count_var, load.count_weight)

    def _loglik(self, factor: tuple, log_demand: np.ndarray, log_roi: np.ndarray,
                roi: np.ndarray) -> np.ndarray:
        """Log likelihood of candidates (G,) that share ``factor``: arrays (G, T)."""
        o = self.obs
        chol, iid, capped_sd, capped_weight = factor[:4]
        f, r = o.free_days, o.roi_days
        resid = np.concatenate([o.log_spend[f][None, :] - log_demand[:, f],
                                o.log_roi[r][None, :] - log_roi[:, r] + 0.5 * iid[r]], axis=1)
        total = np.zeros(log_demand.shape[0])
        if resid.shape[1]:
            white = solve_triangular(chol, resid.T, lower=True, check_finite=False)
            total += (-0.5 * (white * white).sum(axis=0) - np.log(np.diag(chol)).sum()
                      - 0.5 * resid.shape[1] * LOG_2PI)
        c = o.capped_days
        if c.size:
            total += capped_weight * log_ndtr(
                (log_demand[:, c] - o.log_spend[c][None, :]) / capped_sd).sum(axis=1)
        e = o.count_days
        if e.size:
            expected = roi[:, e] * np.exp(o.log_spend[e])[None, :] / self.aov_cny
            total += factor.count_weight * _negative_binomial(
                o.orders[e], expected, _size(factor.count_var)).sum(axis=1)
        return total


def _effective_share(covariances: tuple[np.ndarray, np.ndarray], a_load: np.ndarray,
                     b_load: np.ndarray, own_var: np.ndarray) -> float:
    """``n_eff / n`` of ``n`` days whose latent log values load ``a_load`` on the pool's size
    deviation and ``b_load`` on its mean-ROI deviation (``covariances`` of both over the
    days), plus independent variances ``own_var``: ``n / sum(R^2)``, 1 for fewer than two
    days."""
    if a_load.size < 2:
        return 1.0
    cost, pool_roi = covariances
    cov = np.outer(a_load, a_load) * cost + np.outer(b_load, b_load) * pool_roi
    cov[np.diag_indices_from(cov)] += own_var
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    return float(a_load.size / (corr * corr).sum())


def _size(log_var: np.ndarray) -> np.ndarray:
    """The negative binomial's size whose variance ``mean + mean^2 (exp(v) - 1)`` is a
    Poisson count's whose log mean varies with variance ``v`` (Poisson-lognormal moments)."""
    return 1.0 / np.maximum(np.expm1(np.minimum(log_var, 50.0)), 1e-12)


def _negative_binomial(orders: np.ndarray, mean: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Log probability of the order counts (n,) given means (G, n) and sizes (n,)."""
    mean = np.maximum(mean, 1e-12)
    return (gammaln(orders + size) - gammaln(size) - gammaln(orders + 1.0)
            + size * np.log(size / (size + mean)) + orders * np.log(mean / (size + mean)))


def _inverse(chol: np.ndarray) -> np.ndarray:
    """The inverse of ``L L'`` from its lower Cholesky factor ``L`` (LAPACK's ``potri``)."""
    inv, info = lapack.dpotri(chol, lower=1)  # the lower triangle; the upper is chol's: 0
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed ({info})")
    return inv + np.tril(inv, -1).T


def normal_draws(rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray,
                 n: int) -> np.ndarray:
    """``n`` draws (n, k) of the normal with ``mean`` (k,) and positive semi-definite ``cov``
    (k, k), through the covariance's symmetric square root ``V sqrt(L) V'``.

    That root is unique, so the draws do not depend on which signs (or, for repeated
    eigenvalues, which basis) a CPU's LAPACK gives the eigenvectors: NumPy's own
    ``method="eigh"`` multiplies by ``V sqrt(L)``, whose columns flip with those signs. A
    Cholesky factor is unique too, but only for a positive definite matrix; the latent
    deviations' conditional covariances are singular up to rounding. Eigenvalues below
    :data:`NULL_EIGENVALUE` of the largest are taken as 0: a null direction's computed
    eigenvalue is rounding (about 1e-16 of the largest, of either sign, whatever a CPU
    makes of it), and its square root, about 1e-8, would otherwise differ between CPUs."""
    eigval, eigvec = np.linalg.eigh(0.5 * (cov + cov.T))
    floor = NULL_EIGENVALUE * max(float(np.max(eigval, initial=0.0)), 0.0)
    root = (eigvec * np.sqrt(np.where(eigval > floor, eigval, 0.0))) @ eigvec.T
    return np.asarray(mean, dtype=np.float64) + rng.standard_normal((n, root.shape[0])) @ root


def with_sds(cov: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``cov`` (P, P) rescaled to the sds ``sd`` (P,), its correlations kept (a parameter of
    no variance keeps none)."""
    own = np.sqrt(np.diag(cov))
    scale = np.where(own > 0, sd / np.where(own > 0, own, 1.0), 1.0)
    return cov * np.outer(scale, scale)


def _pos(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 1e-9)


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-9))


def regime_variance(rate_per_day: float, step_sd: float, fade: float) -> float:
    """Stationary variance of a regime level: shifts at ``rate_per_day`` with normal steps
    (sd ``step_sd``) that decay by ``fade`` a day (:func:`envs.stages.move_market`)."""
    return rate_per_day * step_sd ** 2 / max(1.0 - fade ** 2, 1e-12)
