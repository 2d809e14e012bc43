"""Tuned controllers: the PID and the step rule with their free numbers searched per scenario
and objective (``step_tuned``, ``pid_tuned``); and the playbook with its free numbers searched
the same way (``playbook_tuned``).

Each keeps its control law (:mod:`agents.policies.controllers`) and tunes its set point (a
multiple of break-even), gains or steps, and daily bounds on training seeds
(:func:`agents.experiments.baseline_search.search_controller`, stored in
``configs/baselines/<scenario>.yaml`` under ``controllers``). They run on the ``static``
plan mix and refresh interval of their scenario and objective (the controllers steer target and
budget, not the mix), so a tuned controller is fixed settings plus feedback: what it adds over
``static`` is what feedback is worth. Target steps stay under a 15% change, the re-learning
threshold of the named scenarios.

``playbook_tuned`` keeps every rule of the article (:class:`PlaybookPolicy`) and tunes only
its free numbers (:class:`PlaybookNumbers`: launch budget, raise step, band width, phase days,
promotion cut) within the article's ranges; the rules set their own plan mix and refreshes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.policies.base import register_policy
from agents.policies.controllers import MultiplicativeStepPolicy, PIDPolicy
from agents.policies.playbook import PlaybookNumbers, PlaybookPolicy
from agents.policies.settings import DaySettings, Obs
from agents.policies.static import FixedSettingsPolicy
from envs.actions import plan_share_row
from envs.anchored import StaticSettings, refresh_due
from envs.config import ScenarioConfig

# Search spaces: name -> (low, high, log scale). Target steps stay under a 15% change
# (re-learning); the search scales them to a scenario's own threshold.
SPACES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "step_tuned": {"set_point_over_breakeven": (0.8, 2.2, True),
                   "target_step": (1.005, 1.14, False), "dead_band": (0.0, 0.3, False),
                   "budget_up": (1.0, 1.4, False), "budget_down": (0.7, 1.0, False)},
    "pid_tuned": {"set_point_over_breakeven": (0.8, 2.2, True), "kp": (0.0, 1.5, False),
                  "ki": (0.0, 1.5, False), "kd": (0.0, 0.5, False),
                  "max_change": (0.01, 0.14, False)},
    # the article's ranges (PlaybookNumbers says which are assumptions); days are rounded
    "playbook_tuned": {"launch_budget": (0.5, 2.0, True), "raise_step_roi": (0.2, 0.3, False),
                       "band_roi": (0.6, 1.2, False), "exploration_days": (3.0, 7.0, False),
                       "mature_day": (21.0, 35.0, False), "promotion_cut": (0.13, 0.3, False)},
}


class TunedController:
    """Mixin before a controller class: tuned parameters on the instance, the static mix,
    refresh and budget ramp over the controller's own target (and budget) moves."""

    name: str
    config: ScenarioConfig

    def __init__(self, config: ScenarioConfig, params: dict[str, Any] | None = None,
                 fixed: StaticSettings | None = None):
        """:param params: the controller's numbers (default: the stored, tuned ones).
        :param fixed: the static settings to run on (default: the stored ones)."""
        super().__init__(config)
        from agents.policies.baseline_store import load_controller, load_static

        params = load_controller(self.config, self.name) if params is None else params
        unknown = set(params) - set(SPACES[self.name])
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {sorted(unknown)}")
        for key, value in params.items():
            setattr(self, key, float(value))
        self.params = dict(params)
        self.fixed = load_static(self.config) if fixed is None else fixed
        self._fixed_policy = FixedSettingsPolicy(self.config, self.fixed)  # its budget ramp

    def settings(self, obs: Obs) -> DaySettings:
        s = super().settings(obs)
        age = np.rint(obs["plan_age_days"])
        s.shares = np.tile(plan_share_row(self.fixed.shares), (age.shape[0], 1))
        s.refresh = refresh_due(obs["creative_age_days"], age, self.fixed.refresh_days)
        s.budget_ratio = self._fixed_policy.budget_ramp(age, s.budget_ratio)
        return s


@register_policy("step_tuned")
class StepTunedPolicy(TunedController, MultiplicativeStepPolicy):
    """The step rule with tuned set point, steps and dead band, on the static plan mix."""

    action_space = "full"


@register_policy("pid_tuned")
class PIDTunedPolicy(TunedController, PIDPolicy):
    """The PID with tuned set point, gains and daily bound, on the static plan and budget."""

    action_space = "full"


@register_policy("playbook_tuned")
class PlaybookTunedPolicy(PlaybookPolicy):
    """The article's rules with their free numbers tuned (``configs/baselines/``)."""

    def __init__(self, config: ScenarioConfig, params: dict[str, Any] | None = None,
                 fixed: StaticSettings | None = None):
        """:param params: the numbers by name (:data:`SPACES`; default: the stored, tuned
            ones); any not given keeps the article's value.
        :param fixed: ignored: accepted so the controllers' search can build it alike (the
            playbook's rules set their own plan mix and refreshes)."""
        from agents.policies.baseline_store import load_controller

        params = load_controller(config, self.name) if params is None else params
        super().__init__(config, PlaybookNumbers.from_params(params))  # refuses unknown names
        self.params = dict(params)
