"""Classic controllers from the auto-bidding literature: a PID and a multiplicative step rule.

Both steer the payment ROI towards a set point, the account's break-even payment ROI (a
dashboard feature: ``1 / (margin (1 - refund rate))``), by moving the target; they act
through the ``basic`` space. Both are stateless: the PID's integral and derivative are taken
over the 7 daily ROIs the observation carries, so no memory is needed between days.
"""

from __future__ import annotations

import numpy as np

from agents.policies.base import register_policy
from agents.policies.settings import DaySettings, Obs, SettingsPolicy


def roi_errors(obs: Obs, set_point: np.ndarray, days: int = 7) -> np.ndarray:
    """Log ROI errors ``ln(roi_dk / set_point)``, k = 1..days (n, days); 0 where no spend."""
    roi = np.stack([obs[f"roi_d{k}"] for k in range(1, days + 1)], axis=1)
    sp = set_point[:, None]
    return np.where(roi > 0, np.log(np.maximum(roi, 1e-9) / sp), 0.0)


@register_policy("pid")
class PIDPolicy(SettingsPolicy):
    """PID on the log ROI error: ``u = Kp e_1 + Ki mean(e_1..e_7) + Kd (e_1 - e_2)``.

    The target moves by ``exp(-u)`` (ROI below the set point raises the target, which buys
    less but better traffic), bounded to ±``max_change`` a day; the budget is held.
    """

    action_space = "basic"
    kp, ki, kd = 0.3, 0.4, 0.1
    max_change = 0.10
    set_point_over_breakeven = 1.0  # the set point: this multiple of the break-even ROI

    def settings(self, obs: Obs) -> DaySettings:
        s = DaySettings.hold(obs)
        e = roi_errors(obs, obs["breakeven_roi"] * self.set_point_over_breakeven)
        u = self.kp * e[:, 0] + self.ki * e.mean(axis=1) + self.kd * (e[:, 0] - e[:, 1])
        ratio = np.clip(np.exp(-u), 1.0 - self.max_change, 1.0 + self.max_change)
        s.target_roi = obs["target_roi"] * ratio
        return s


@register_policy("step")
class MultiplicativeStepPolicy(SettingsPolicy):
    """Multiplicative step rule: fixed relative steps on both levers, by yesterday's ROI.

    - ROI below the set point: target x1.05 (buy better traffic) and budget x0.9 if ROI is
      more than 10% short.
    - ROI above the set point by more than 5%: target /1.05 (buy more); and budget x1.1 when
      the budget bound yesterday (spend >= 95% of it).
    """

    action_space = "basic"
    target_step = 1.05
    budget_up, budget_down = 1.1, 0.9
    dead_band = 0.05
    set_point_over_breakeven = 1.0  # the set point: this multiple of the break-even ROI

    def settings(self, obs: Obs) -> DaySettings:
        s = DaySettings.hold(obs)
        roi, sp = obs["roi_d1"], obs["breakeven_roi"] * self.set_point_over_breakeven
        spent = roi > 0
        low = spent & (roi < sp)
        high = spent & (roi > sp * (1 + self.dead_band))
        target = obs["target_roi"]
        s.target_roi = np.where(low, target * self.target_step,
                                np.where(high, target / self.target_step, target))
        bound = obs["spend_to_budget_d1"] >= 0.95
        s.budget_ratio = np.where(spent & (roi < 0.9 * sp), self.budget_down,
                                  np.where(high & bound, self.budget_up, 1.0))
        return s
