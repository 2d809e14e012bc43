"""Reward as named terms (CNY), so an analyst can see why a policy wins.

``profit`` (default): contribution profit = margin x (incremental GMV - its refunds) - spend
+ cost-protection credit - creative refresh cost. Refunds enter as they land
(``on_landing``), with those still pending charged on the last day, or each cohort's on its
order day (``on_order``); either way the episode's sum is the settled profit.

``gmv_floor``: incremental settled GMV, minus ``floor_penalty`` per CNY of settled GMV below
the settlement-ROI floor on each order day (charged on the order day, with the cohort's true
refunds).
"""

from __future__ import annotations

import numpy as np

from envs.config import ScenarioConfig
from envs.market import AccountParams, DayOutcome


def floor_shortfall(cfg: ScenarioConfig, out: DayOutcome) -> np.ndarray:
    """CNY of settled ad GMV below ``floor x spend`` for today's order cohort."""
    return np.maximum(cfg.floor_settlement_roi * out.spend - (out.gmv - out.cohort_refunds), 0.0)


def reward_terms(cfg: ScenarioConfig, params: AccountParams, out: DayOutcome,
                 pending_refunds: np.ndarray | None,
                 floor_multiplier: float = 0.0) -> dict[str, np.ndarray]:
    """The day's reward terms in CNY.

    :param pending_refunds: on the episode's last day, incremental refunds not yet landed
        (charged now); None on other days.
    :param floor_multiplier: Lagrange multiplier of the settlement-ROI floor constraint (CNY
        per CNY of shortfall) for the profit objective; training may adapt it (dual ascent).
        0 leaves the reward the plain profit.
    """
    if cfg.refund_charging == "on_order":
        refunds = out.cohort_incremental_refunds
    else:
        refunds = out.incremental_refunds_landed
        if pending_refunds is not None:
            refunds = refunds + pending_refunds
    if cfg.objective == "gmv_floor":
        return {"settled_gmv": out.incremental_gmv - refunds,
                "floor_penalty": -cfg.floor_penalty * floor_shortfall(cfg, out)}
    terms = {
        "gmv_value": params.margin * out.incremental_gmv,
        "refunds": -params.margin * refunds,
        "spend": -out.spend,
        "credit": out.credit,
        "refresh_cost": -out.refresh_cost,
    }
    if floor_multiplier > 0.0:
        terms["floor_lagrangian"] = -floor_multiplier * floor_shortfall(cfg, out)
    return terms
