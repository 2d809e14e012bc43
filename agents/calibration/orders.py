"""Order value and basket noise, from each day's ``gmv / orders``.

The simulator's day books ``gmv = orders x AOV x basket`` with one lognormal basket draw a
day, ``basket = exp(s z - s^2 / 2)`` (:func:`envs.stages.take_orders`), so ``ln(gmv /
orders)`` is normal with mean ``ln AOV - s^2 / 2`` and sd ``s``: the estimates and their
intervals are exact (Student's t for the mean, chi-square for the sd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from agents.calibration.account import AccountHistory


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its interval (``level``, two-sided) and whether data decided it."""

    value: float
    low: float
    high: float
    unit: str
    identified: bool
    source: str

    def to_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high,
                "unit": self.unit, "identified": self.identified, "source": self.source}


def order_value(history: AccountHistory, level: float = 0.9) -> dict[str, Estimate]:
    """``aov_cny`` and ``basket_noise_sd`` of the days with orders."""
    days = (history.orders > 0) & (history.gmv > 0)
    y = np.log(history.gmv[days] / history.orders[days])
    n = y.size
    mean = float(y.mean())
    sd = float(y.std(ddof=1)) if n > 1 else 0.0
    sd = max(sd, 1e-4)
    tail = (1.0 - level) / 2.0
    t = float(stats.t.ppf(1.0 - tail, n - 1))
    half = t * sd / math.sqrt(n)
    sd_low = sd * math.sqrt((n - 1) / stats.chi2.ppf(1.0 - tail, n - 1))
    sd_high = sd * math.sqrt((n - 1) / stats.chi2.ppf(tail, n - 1))
    shift = 0.5 * sd * sd
    source = f"gmv / orders on {n} days"
    return {
        "aov_cny": Estimate(math.exp(mean + shift), math.exp(mean - half + shift),
                            math.exp(mean + half + shift), "CNY/order", True, source),
        "basket_noise_sd": Estimate(sd, sd_low, sd_high, "log-sd/day", True, source),
    }
