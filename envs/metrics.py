"""Episode metrics (names shared with TensorBoard tags and ``summary.csv``)."""

from __future__ import annotations

import numpy as np

from envs.config import ScenarioConfig
from envs.market import AccountParams, DayOutcome
from envs.reward import floor_shortfall

EPISODE_METRICS = ("profit", "gmv", "settled_gmv", "spend", "payment_roi", "settlement_roi",
                   "refund_rate", "learning_days", "interruptions", "roi_floor_violation_days")
_SUMS = ("profit", "gmv", "settled_gmv", "spend", "refunds", "learning_days", "interruptions",
         "roi_floor_violation_days")


def day_profit(params: AccountParams, out: DayOutcome) -> np.ndarray:
    """A day's contribution profit (CNY), its order cohort's refunds counted in full."""
    return (params.margin * (out.incremental_gmv - out.cohort_incremental_refunds)
            - out.spend + out.credit - out.refresh_cost)


class EpisodeTally:
    """Running sums over an episode for ``n`` accounts.

    ``profit`` is always the contribution profit in CNY (whatever the reward objective), with
    each cohort's refunds counted in full; a violation day is an order day with spend whose
    settlement ROI (its refunds all landed) is below the scenario's floor.
    """

    def __init__(self, n: int):
        self.sums = {k: np.zeros(n) for k in _SUMS}

    def add(self, cfg: ScenarioConfig, params: AccountParams, out: DayOutcome) -> None:
        s = self.sums
        s["profit"] += day_profit(params, out)
        s["gmv"] += out.gmv
        s["settled_gmv"] += out.gmv - out.cohort_refunds
        s["spend"] += out.spend
        s["refunds"] += out.cohort_refunds
        s["learning_days"] += out.learning
        s["interruptions"] += out.interrupted
        s["roi_floor_violation_days"] += (out.spend > 0) & (floor_shortfall(cfg, out) > 0)

    def result(self) -> dict[str, np.ndarray]:
        """The episode metrics, arrays of shape (n,)."""
        s = self.sums
        spend = np.where(s["spend"] > 0, s["spend"], np.nan)
        gmv = np.where(s["gmv"] > 0, s["gmv"], np.nan)
        return {
            "profit": s["profit"].copy(), "gmv": s["gmv"].copy(),
            "settled_gmv": s["settled_gmv"].copy(), "spend": s["spend"].copy(),
            "payment_roi": np.nan_to_num(s["gmv"] / spend),
            "settlement_roi": np.nan_to_num(s["settled_gmv"] / spend),
            "refund_rate": np.nan_to_num(s["refunds"] / gmv),
            "learning_days": s["learning_days"].copy(), "interruptions": s["interruptions"].copy(),
            "roi_floor_violation_days": s["roi_floor_violation_days"].copy(),
        }
