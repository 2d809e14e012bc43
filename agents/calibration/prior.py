"""The fitted parameters: names, units, priors, and how each maps to a scenario.

The fit works in an unconstrained space ``z`` (logs, logits); each :class:`Parameter` has a
normal prior there, centred on the base scenario's value, wide enough to span the named
scenarios and beyond (the prior a synthetic account is drawn from, :mod:`.synthetic`). A
parameter the report cannot identify keeps (about) its prior, and the fit says so.

Weekday effects are six free log-multipliers on the base's weekday pattern; the seventh is
minus their sum, so the pattern's level stays in the pool's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.config import ScenarioConfig

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Parameter:
    """One fitted parameter.

    :param name: its key in ``fit.json`` (a scenario key where it is one).
    :param unit: the unit of its natural value.
    :param transform: ``log`` (value = exp z), ``logit`` (value = 1 / (1 + exp -z)) or
        ``identity``.
    :param prior_mean: the prior's mean of ``z``; ``prior_sd`` its sd.
    :param lower: ``upper``: bounds on ``z`` for the optimiser (the model's valid range).
    """

    name: str
    unit: str
    transform: str
    prior_mean: float
    prior_sd: float
    lower: float = -math.inf
    upper: float = math.inf
    meaning: str = ""

    def value(self, z: np.ndarray | float) -> np.ndarray:
        """Natural value of ``z``."""
        z = np.asarray(z, dtype=np.float64)
        if self.transform == "log":
            return np.exp(z)
        if self.transform == "logit":
            return 1.0 / (1.0 + np.exp(-z))
        return z

    def slope(self, z: np.ndarray | float) -> np.ndarray:
        """Derivative of the natural value with respect to ``z``."""
        z = np.asarray(z, dtype=np.float64)
        if self.transform == "log":
            return np.exp(z)
        if self.transform == "logit":
            v = 1.0 / (1.0 + np.exp(-z))
            return v * (1.0 - v)
        return np.ones_like(z)

    def z_of(self, value: float) -> float:
        """``z`` of a natural value (the inverse of :meth:`value`)."""
        if self.transform == "log":
            return math.log(value)
        if self.transform == "logit":
            return math.log(value / (1.0 - value))
        return float(value)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def market_parameters(base: ScenarioConfig) -> list[Parameter]:
    """The parameters the spend and ROI likelihood fits (:mod:`.likelihood`), in order.

    Prior spreads (assumptions, stated once here): the pool's size is known to a factor
    of about e^1.5 = 4.5 either way (1 sd; the data decide it), its mean ROI within about
    +-40% (categories' typical 2-6, brief §2), its spread sigma within about +-30% of
    0.5-0.9; the bidder's bias as the scenario draws it; noise levels and drift within a
    factor of e^0.6 = 1.8; weekday effects +-10%; the learning throttles within +-35% (traffic)
    and +-15% (ROI).
    """
    log = math.log
    return [
        Parameter("pool_cost_cny", "CNY/day", "log", log(base.pool_cost_cny), 1.5,
                  log(100.0), log(1e8), "cost of the whole daily pool at market prices"),
        Parameter("pool_mean_roi", "GMV/spend", "log", log(base.pool_mean_roi), 0.35,
                  log(0.2), log(40.0), "the pool's cost-weighted mean payment ROI"),
        Parameter("pool_sigma", "log-sd", "log", log(base.pool_sigma), 0.3,
                  log(0.2), log(1.4), "spread of ROI across the pool (the ROI/volume curve)"),
        Parameter("bidder_bias", "multiplier", "log", 0.0, max(base.bidder_bias_sd, 0.01),
                  -1.0, 1.0, "this account's achieved ROI over what the bidder promises"),
        *[Parameter(f"weekday_{d}", "log multiplier", "identity", 0.0, 0.1, -1.0, 1.0,
                    f"{d}'s traffic relative to the base pattern")
          for d in WEEKDAYS[:-1]],
        Parameter("traffic_shock_sd", "log-sd/day", "log", log(max(base.traffic_shock_sd, 0.02)),
                  0.6, log(0.005), log(1.0), "stationary sd of the daily traffic shock"),
        Parameter("traffic_shock_ar", "per day", "logit",
                  _logit(min(max(base.traffic_shock_ar, 0.05), 0.95)), 1.0, -5.0, 5.0,
                  "persistence of the traffic shock"),
        Parameter("drift_cost_sd", "log-sd", "log", log(max(base.drift_cost_sd, 0.02)), 0.6,
                  log(0.005), log(2.0), "stationary sd of the slow drift of the pool's size"),
        Parameter("bidder_noise_sd", "log-sd/day", "log", log(max(base.bidder_noise_sd, 0.02)),
                  0.6, log(0.005), log(1.0), "daily noise of the achieved ROI"),
        Parameter("roi_shock_sd", "log-sd/day", "log", log(max(base.roi_shock_sd, 0.01)), 0.6,
                  log(0.002), log(1.0), "daily noise of the pool's mean ROI"),
        Parameter("drift_roi_sd", "log-sd", "log", log(max(base.drift_roi_sd, 0.02)), 0.6,
                  log(0.005), log(1.0), "stationary sd of the slow drift of the pool's ROI"),
        Parameter("learning_traffic_mult", "multiplier", "log",
                  log(base.learning_traffic_mult), 0.35, log(0.05), 0.0,
                  "traffic reached while the plan learns"),
        Parameter("learning_roi_mult", "multiplier", "log", log(base.learning_roi_mult), 0.15,
                  log(0.1), 0.0, "pool ROI while the plan learns"),
    ]


def index_of(parameters: list[Parameter]) -> dict[str, int]:
    """Position of each parameter by name."""
    return {p.name: i for i, p in enumerate(parameters)}


def prior_means(parameters: list[Parameter]) -> np.ndarray:
    return np.array([p.prior_mean for p in parameters])


def prior_sds(parameters: list[Parameter]) -> np.ndarray:
    return np.array([p.prior_sd for p in parameters])


def bounds(parameters: list[Parameter]) -> tuple[np.ndarray, np.ndarray]:
    """The optimiser's bounds on ``z``: lower and upper arrays (P,)."""
    return (np.array([p.lower for p in parameters]), np.array([p.upper for p in parameters]))


def weekday_log_effects(z: np.ndarray, first: int) -> np.ndarray:
    """The seven weekday log effects (Monday first) from the six free ones at
    ``z[..., first:first + 6]``; the seventh is minus their sum. Shape (..., 7)."""
    free = z[..., first:first + 6]
    return np.concatenate([free, -free.sum(axis=-1, keepdims=True)], axis=-1)
