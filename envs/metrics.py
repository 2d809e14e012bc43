"""Episode metrics (names shared with TensorBoard tags and ``summary.csv``)."""

from __future__ import annotations

import numpy as np

from envs.compiled import helper
from envs.market import AccountParams, DayOutcome
from envs.reward import RewardSettings, discount_cost, return_handling_share, shortfall_cny

EPISODE_METRICS = ("profit", "gmv", "settled_gmv", "spend", "payment_roi", "settlement_roi",
                   "refund_rate", "learning_days", "interruptions", "roi_floor_violation_days")
_SUMS = ("profit", "gmv", "settled_gmv", "spend", "refunds", "learning_days", "interruptions",
         "roi_floor_violation_days")


@helper
def day_profit(settings: RewardSettings, params: AccountParams, out: DayOutcome) -> np.ndarray:
    """A day's contribution profit (CNY), its order cohort's refunds counted in full: with
    the second version's switches (``settings``: :func:`envs.reward.reward_args`), less the
    peak-day discount's margin and the cohort's return handling, as the reward charges them."""
    profit = (params.margin * (out.incremental_gmv - out.cohort_incremental_refunds)
              - out.spend + out.credit - out.refresh_cost)
    if settings.peak_discount > 0.0:
        profit = profit - discount_cost(settings.peak_discount, params.margin, out)
    if settings.return_handling_cny > 0.0:
        profit = profit - return_handling_share(settings.return_handling_cny,
                                                params.aov_cny) * out.cohort_incremental_refunds
    return profit


class EpisodeTally:
    """Running sums over an episode for ``n`` accounts.

    ``profit`` is always the contribution profit in CNY (whatever the reward objective), with
    each cohort's refunds counted in full; a violation day is an order day with spend whose
    settlement ROI (its refunds all landed) is below the scenario's floor.
    """

    def __init__(self, n: int):
        self.table = np.zeros((len(_SUMS), n))  # one row per sum, in _SUMS order
        self.sums = dict(zip(_SUMS, self.table, strict=True))  # views of the rows

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


@helper
def tally_day(table: np.ndarray, settings: RewardSettings, params: AccountParams,
              out: DayOutcome) -> None:
    """Add a day to the episode sums ``table`` (rows in the order of ``_SUMS``);
    ``settings``: :func:`envs.reward.reward_args`."""
    floor_roi = settings.floor_roi
    table[0] += day_profit(settings, params, out)
    table[1] += out.gmv
    table[2] += out.gmv - out.cohort_refunds
    table[3] += out.spend
    table[4] += out.cohort_refunds
    table[5] += out.learning
    table[6] += out.interrupted
    table[7] += (out.spend > 0) & (shortfall_cny(floor_roi, out) > 0)
