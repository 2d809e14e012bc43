"""Fixed settings: the strongest simple baselines a learned policy must beat.

``static`` holds the best fixed settings found for its scenario and objective by a search on
training seeds (:mod:`agents.experiments.baseline_search`, stored in
``configs/baselines/<scenario>.yaml``):
a payment-ROI target as a multiple of the scenario's break-even ROI, plan shares, a daily
budget as a multiple of the launch budget, and a creative-refresh interval. ``static_rule``
is the one-line rule an operator could be told: target = k x break-even, the whole budget on
payment-ROI plans, the launch budget held, creatives refreshed on the scenario's schedule,
with one k per objective for every scenario (``configs/baselines/static_rule.yaml``).

Both reach their settings from the launch settings in steps just under the changes that
restart learning (an operator who knows the platform's rule would), then hold them. Both are
stateless functions of the daily history, like every rule-based policy: the budget ramp is
scheduled by the plan's age, so ``recommend`` can apply them to a real report.
"""

from __future__ import annotations

import numpy as np

from agents.policies.base import Policy, register_policy
from envs.actions import encode_action, plan_share_row
from envs.anchored import StaticSettings, budget_steps, refresh_due, target_move
from envs.config import ScenarioConfig


def plan_action(config: ScenarioConfig, settings: StaticSettings, target_ratio: np.ndarray,
                budget_ratio: np.ndarray, refresh: np.ndarray) -> np.ndarray:
    """The ``full`` action applying the ratios with the settings' plan shares."""
    shares = np.tile(plan_share_row(settings.shares), (target_ratio.shape[0], 1))
    return encode_action(config, target_ratio, budget_ratio, shares=shares, refresh=refresh)


class FixedSettingsPolicy(Policy):
    """Move to :class:`StaticSettings` and hold them (``full`` action space)."""

    action_space = "full"

    def __init__(self, config: ScenarioConfig, settings: StaticSettings):
        super().__init__(config)
        self.fixed = settings
        self._ramp_days, self._ramp_ratio = budget_steps(self.config,
                                                         settings.budget_over_launch)

    def decide(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        wanted = self.fixed.target_over_breakeven * self.config.breakeven_roi
        age = np.rint(obs["plan_age_days"])
        return plan_action(self.config, self.fixed,
                           target_move(self.config, obs["target_roi"], wanted),
                           self.budget_ramp(age, 1.0),
                           refresh_due(obs["creative_age_days"], age, self.fixed.refresh_days))

    def budget_ramp(self, plan_age_days: np.ndarray, otherwise: np.ndarray | float
                    ) -> np.ndarray:
        """The budget ratio of the ramp to the settings' budget by plan age, ``otherwise``
        once it is done."""
        return np.where(plan_age_days < self._ramp_days, self._ramp_ratio, otherwise)


@register_policy("static")
class StaticPolicy(FixedSettingsPolicy):
    """The best fixed settings for the scenario and objective (``configs/baselines/``)."""

    def __init__(self, config: ScenarioConfig):
        from agents.policies.baseline_store import load_static

        super().__init__(config, load_static(config))


@register_policy("static_rule")
class StaticRulePolicy(FixedSettingsPolicy):
    """Target = k x break-even (one k per objective), all budget on payment-ROI plans, the
    launch budget held, creatives refreshed on the scenario's schedule."""

    def __init__(self, config: ScenarioConfig):
        from agents.policies.baseline_store import load_static_rule

        super().__init__(config, rule_settings(config, load_static_rule(config.objective)))


def rule_settings(config: ScenarioConfig, k: float) -> StaticSettings:
    """The static rule's settings for target multiple ``k``."""
    return StaticSettings(k, (1.0, 0.0, 0.0), 1.0, int(config.scheduled_refresh_days))
