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
from scipy.linalg import solve_triangular
from scipy.special import gammaln, log_ndtr

from agents.calibration.prior import index_of, market_parameters, prior_means, prior_sds
from agents.calibration.replay import Replay

NOISE = ("traffic_shock_sd", "traffic_shock_ar", "drift_cost_sd", "bidder_noise_sd",
         "roi_shock_sd", "drift_roi_sd")  # the fitted noise levels (names of .prior)
GAUSSIAN_ORDERS = 10  # days with fewer orders count through the order count's Poisson law
SPEND_FLOOR_SD = 0.02  # log-sd: rounding and what the replay leaves out of a day's spend
LOG_2PI = float(np.log(2.0 * np.pi))


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
        self.evaluations = 0

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

    def _days(self, z: np.ndarray, loadings: Loadings | None):
        """The replay's log demand, log ROI and ROI (K, T) of each candidate (with the
        loadings' mean shifts), and the loadings: ``[loadings]``, or each candidate's own
        from four more replays at the Gauss-Hermite nodes of its latent deviations."""
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
        days = self.replay.predict(z)
        capped = self.obs.capped_mask
        # a day whose budget did not bind bought what its traffic allowed: the demand rows
        log_demand = _log(days.demand)
        roi_all = np.where(capped, days.gmv / _pos(days.spend),
                           days.demand_gmv / _pos(days.demand))
        log_roi = _log(roi_all)
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
                loads.append(Loadings(cost, spend, roi, roi_cost, cost_shift + spend_shift,
                                      roi_shift + roi_cost_shift, cost_left + spend_left,
                                      roi_left + roi_cost_left))
        else:
            loads = [loadings]
        shift_demand = np.stack([ld.spend_shift for ld in loads])
        shift_roi = np.stack([ld.roi_shift for ld in loads])
        return (log_demand[:k] + shift_demand, log_roi[:k] + shift_roi, roi_all[:k], loads)

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
        """One candidate's noise levels by name."""
        return {name: float(self.parameters[self.ix[name]].value(z[self.ix[name]]))
                for name in NOISE}

    def latent_covariances(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Covariances (T, T) over the report's days of the latent log deviations ``a`` (the
        pool's size) and ``b`` (its mean ROI) under candidate ``z`` (P,)."""
        nz = self.noise(z)
        fast = nz["traffic_shock_sd"] ** 2 * nz["traffic_shock_ar"] ** self.lag
        cost = fast + nz["drift_cost_sd"] ** 2 * self.drift_decay + self.regime_cost
        roi = (nz["roi_shock_sd"] ** 2 * np.eye(self.lag.shape[0])
               + nz["drift_roi_sd"] ** 2 * self.drift_decay + self.regime_roi)
        return cost, roi

    def day_noise_var(self, z: np.ndarray) -> np.ndarray:
        """Each day's independent log-ROI variance (T,): bidder, basket, order count."""
        bidder = (self.noise(z)["bidder_noise_sd"] * self.noise_mult) ** 2
        return bidder + self.basket_var + 1.0 / np.maximum(self.obs.orders, 1.0)

    def latent_end(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The latent deviations on the report's last day given its residuals under candidate
        ``z`` (P,): mean (3,) and covariance (3, 3) of the traffic shock, the pool's slow
        cost deviation and its slow ROI deviation (drift and regimes together), the normal
        conditional of the joint model above."""
        o = self.obs
        load = self.loadings(z)
        log_demand, log_roi, _, _ = self._days(np.atleast_2d(z), load)
        chol, iid, _ = self._factor(z, load)
        f, r = o.free_days, o.roi_days
        resid = np.concatenate([o.log_spend[f] - log_demand[0, f],
                                o.log_roi[r] - log_roi[0, r] + 0.5 * iid[r]])
        nz = self.noise(z)
        last = self.lag.shape[0] - 1
        fast = nz["traffic_shock_sd"] ** 2 * nz["traffic_shock_ar"] ** self.lag[last]
        slow_cost = nz["drift_cost_sd"] ** 2 * self.drift_decay[last] + self.regime_cost[last]
        slow_roi = nz["drift_roi_sd"] ** 2 * self.drift_decay[last] + self.regime_roi[last]
        cross = np.zeros((3, resid.size))
        cross[0, :f.size] = load.cost[f] * fast[f]
        cross[1, :f.size] = load.cost[f] * slow_cost[f]
        cross[2, :f.size] = load.spend[f] * slow_roi[f]
        cross[0, f.size:] = load.roi_cost[r] * fast[r]
        cross[1, f.size:] = load.roi_cost[r] * slow_cost[r]
        cross[2, f.size:] = load.roi[r] * slow_roi[r]
        prior = np.diag([fast[last], slow_cost[last], slow_roi[last]])
        if resid.size == 0:
            return np.zeros(3), prior
        white_cross = solve_triangular(chol, cross.T, lower=True, check_finite=False)
        white = solve_triangular(chol, resid, lower=True, check_finite=False)
        mean = white_cross.T @ white
        cov = prior - white_cross.T @ white_cross
        return mean, 0.5 * (cov + cov.T)

    def _factor(self, z: np.ndarray, load: Loadings) -> tuple:
        """The Cholesky factor of the joint residual covariance, the independent ROI
        variances and the capped days' sds, for candidate ``z`` (P,) and ``load``."""
        o = self.obs
        cost, pool_roi = self.latent_covariances(z)
        iid = self.day_noise_var(z)
        f, r = o.free_days, o.roi_days
        # joint covariance of [spend residuals on free days, ROI residuals on days with orders]
        af, sf, rr, ra = load.cost[f], load.spend[f], load.roi[r], load.roi_cost[r]
        top = (np.outer(af, af) * cost[np.ix_(f, f)]
               + np.outer(sf, sf) * pool_roi[np.ix_(f, f)])
        top[np.diag_indices_from(top)] += SPEND_FLOOR_SD ** 2 + load.spend_var[f]
        cross = (np.outer(sf, rr) * pool_roi[np.ix_(f, r)]
                 + np.outer(af, ra) * cost[np.ix_(f, r)])
        bottom = (np.outer(rr, rr) * pool_roi[np.ix_(r, r)]
                  + np.outer(ra, ra) * cost[np.ix_(r, r)])
        bottom[np.diag_indices_from(bottom)] += iid[r] + load.roi_var[r]
        chol = np.linalg.cholesky(np.block([[top, cross], [cross.T, bottom]]))
        c = o.capped_days
        capped_sd = np.sqrt(load.cost[c] ** 2 * np.diag(cost)[c]
                            + load.spend[c] ** 2 * np.diag(pool_roi)[c] + SPEND_FLOOR_SD ** 2
                            + load.spend_var[c])
        return chol, iid, capped_sd

    def _loglik(self, factor: tuple, log_demand: np.ndarray, log_roi: np.ndarray,
                roi: np.ndarray) -> np.ndarray:
        """Log likelihood of candidates (G,) that share ``factor``: arrays (G, T)."""
        o = self.obs
        chol, iid, capped_sd = factor
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
            total += log_ndtr((log_demand[:, c] - o.log_spend[c][None, :]) / capped_sd).sum(
                axis=1)
        e = o.count_days
        if e.size:
            expected = roi[:, e] * np.exp(o.log_spend[e])[None, :] / self.aov_cny
            total += (o.orders[e][None, :] * np.log(np.maximum(expected, 1e-12)) - expected
                      - gammaln(o.orders[e] + 1.0)[None, :]).sum(axis=1)
        return total


def _pos(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 1e-9)


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-9))


def regime_variance(rate_per_day: float, step_sd: float, fade: float) -> float:
    """Stationary variance of a regime level: shifts at ``rate_per_day`` with normal steps
    (sd ``step_sd``) that decay by ``fade`` a day (:func:`envs.stages.move_market`)."""
    return rate_per_day * step_sd ** 2 / max(1.0 - fade ** 2, 1e-12)
