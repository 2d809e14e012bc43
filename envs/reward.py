"""Reward as named terms (CNY), so an analyst can see why a policy wins.

``profit`` (default): contribution profit = margin x (incremental GMV - its refunds) - spend
+ cost-protection credit - creative refresh cost. Refunds enter as they land
(``on_landing``), with those still pending charged on the last day, or each cohort's on its
order day (``on_order``); either way the episode's sum is the settled profit.

``gmv_floor``: incremental settled GMV, minus ``floor_penalty`` per CNY of settled GMV below
the settlement-ROI floor on each order day (charged on the order day, with the cohort's true
refunds).

With ``terminal_value_days > 0`` either objective adds ``terminal_value`` (:mod:`envs.terminal`):
0 every day but the last, which carries the value of the account's final state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from envs.compiled import helper
from envs.config import ScenarioConfig
from envs.market import DayOutcome

PROFIT_TERMS = ("gmv_value", "refunds", "spend", "credit", "refresh_cost")
FLOOR_LAGRANGIAN = "floor_lagrangian"  # added to the profit terms while its multiplier > 0
GMV_FLOOR_TERMS = ("settled_gmv", "floor_penalty")
# the value of the final state (envs.terminal), last of the terms when terminal_value_days > 0
TERMINAL_VALUE = "terminal_value"


@helper
def shortfall_cny(floor_roi: float, out: DayOutcome) -> np.ndarray:
    """CNY of settled ad GMV below ``floor_roi x spend`` for today's order cohort."""
    return np.maximum(floor_roi * out.spend - (out.gmv - out.cohort_refunds), 0.0)


def term_names(cfg: ScenarioConfig, floor_multiplier: float = 0.0) -> tuple[str, ...]:
    """The names of the reward terms, in the order of :func:`reward_rows`."""
    end = (TERMINAL_VALUE,) if cfg.terminal_value_days > 0 else ()
    if cfg.objective == "gmv_floor":
        return GMV_FLOOR_TERMS + end
    return PROFIT_TERMS + ((FLOOR_LAGRANGIAN,) if floor_multiplier > 0.0 else ()) + end


class RewardSettings(NamedTuple):
    """What :func:`reward_rows` needs of the scenario and of training's floor multiplier."""

    gmv_floor: bool  # the ``gmv_floor`` objective (else ``profit``)
    on_order: bool  # refunds charged on the order day (else as they land)
    floor_roi: float  # settlement-ROI floor (settled GMV/spend)
    floor_penalty: float  # CNY per CNY of settled GMV below the floor (``gmv_floor``)
    floor_multiplier: float  # CNY per CNY of shortfall, the Lagrangian term (``profit``; 0: off)


def reward_args(cfg: ScenarioConfig, floor_multiplier: float = 0.0) -> RewardSettings:
    """The scenario's reward settings as :func:`reward_rows` takes them."""
    return RewardSettings(cfg.objective == "gmv_floor", cfg.refund_charging == "on_order",
                          float(cfg.floor_settlement_roi), float(cfg.floor_penalty),
                          float(floor_multiplier))


@helper
def reward_rows(settings: RewardSettings, margin: np.ndarray, out: DayOutcome,
                pending_refunds: np.ndarray, last_day: bool) -> np.ndarray:
    """The day's reward terms (CNY) as rows, named by :func:`term_names`.

    :param settings: :func:`reward_args`.
    :param pending_refunds: incremental refunds not yet landed, charged on the last day.
    """
    if settings.on_order:
        refunds = out.cohort_incremental_refunds
    elif last_day:
        refunds = out.incremental_refunds_landed + pending_refunds
    else:
        refunds = out.incremental_refunds_landed
    n = out.spend.shape[0]
    if settings.gmv_floor:
        rows = np.empty((2, n))
        rows[0] = out.incremental_gmv - refunds
        rows[1] = -settings.floor_penalty * shortfall_cny(settings.floor_roi, out)
        return rows
    rows = np.empty((6 if settings.floor_multiplier > 0.0 else 5, n))
    rows[0] = margin * out.incremental_gmv
    rows[1] = -margin * refunds
    rows[2] = -out.spend
    rows[3] = out.credit
    rows[4] = -out.refresh_cost
    if settings.floor_multiplier > 0.0:
        rows[5] = -settings.floor_multiplier * shortfall_cny(settings.floor_roi, out)
    return rows
