"""Operators' rules of thumb (public operator guides, market brief §9), as one policy.

Stateless like the playbook's rules: every decision is a function of the decoded history.
Acts through the ``basic`` space (target and budget; creatives on the scenario's schedule).
"""

from __future__ import annotations

import numpy as np

from agents.policies.base import register_policy
from agents.policies.settings import (
    PROMO_LEAD_DAYS,
    PROMO_RESTORE_DAYS,
    DaySettings,
    Obs,
    SettingsPolicy,
)
from envs.config import ScenarioConfig


@register_policy("operator")
class OperatorPolicy(SettingsPolicy):
    """Rules of thumb an experienced operator applies every morning.

    - The ROI goal is the scenario's launch target (what the operator was asked to hold).
      Outside promotions the target moves so the 7-day payment ROI meets the goal, by at most
      10% a day ("change the target by at most 10% at a time").
    - After three days in a row with ROI above the goal, raise the budget by 20%, but never
      above 1.5x yesterday's spend.
    - Promotions: lower the target by 0.4 (the guides' 0.3-0.5) in two steps of 0.2 starting
      7 days before the peak, and put it back in two steps starting 3 days after it.
    """

    action_space = "basic"
    max_daily_change = 0.10
    promo_cut_roi = 0.4
    budget_raise = 1.2
    budget_cap_to_spend = 1.5

    def __init__(self, config: ScenarioConfig):
        super().__init__(config)
        self.goal_roi = config.launch_target_roi

    def settings(self, obs: Obs) -> DaySettings:
        s = DaySettings.hold(obs)
        target, roi7 = obs["target_roi"], obs["roi_7d"]
        to_peak, after = obs["days_to_promo"], obs["days_after_promo"]
        in_window = ((to_peak <= PROMO_LEAD_DAYS) | (obs["in_promo"] > 0.5)
                     | (after <= PROMO_RESTORE_DAYS + 1))
        step = self.promo_cut_roi / 2.0
        cutting = (np.abs(to_peak - PROMO_LEAD_DAYS) < 0.5) | (
            np.abs(to_peak - PROMO_LEAD_DAYS + 1) < 0.5)
        restoring = (np.abs(after - PROMO_RESTORE_DAYS) < 0.5) | (
            np.abs(after - PROMO_RESTORE_DAYS - 1) < 0.5)
        chase = np.where(roi7 > 0, target * self.goal_roi / np.maximum(roi7, 1e-9), target)
        lo, hi = target * (1 - self.max_daily_change), target * (1 + self.max_daily_change)
        wanted = np.where(cutting, target - step, np.where(restoring, target + step, chase))
        s.target_roi = np.where(in_window & ~cutting & ~restoring, target,
                                np.clip(wanted, lo, hi))
        good = ((obs["roi_d1"] >= self.goal_roi) & (obs["roi_d2"] >= self.goal_roi)
                & (obs["roi_d3"] >= self.goal_roi))
        cap = self.budget_cap_to_spend * obs["spend_to_budget_d1"]
        raise_to = np.maximum(np.minimum(self.budget_raise, cap), 1.0)
        s.budget_ratio = np.where(good & ~in_window, raise_to, 1.0)
        return s
