"""The day's proposed settings, which rules pass along and then encode as an action.

Rules read the decoded dashboard history (:func:`envs.history.decode_features`) and edit a
:class:`DaySettings` proposal: an absolute payment-ROI target, the budget as a ratio to the
budget in force (the observation is scale-free: it carries ratios to spend, not the budget in
CNY), the plan shares and a creative refresh. :meth:`DaySettings.to_action` turns the
proposal into the same [-1, 1] action PPO emits, so the action bounds apply to every policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agents.policies.base import Policy
from envs.actions import PLANS, TARGET_MIN, encode_action
from envs.config import ScenarioConfig

Obs = dict[str, np.ndarray]

# Calendar windows shared by several rules (days).
EXPLORATION_DAYS = 7  # the article's exploration phase: the first week (§三.1)
MATURE_DAY = 28  # the mature phase starts after four weeks (§三.1)
PROMO_LEAD_DAYS = 7  # promotion rules start a week before the peak (§四.1)
PROMO_RESTORE_DAYS = 3  # operators restore the target 3 days after the peak


@dataclass
class DaySettings:
    """A proposal for the coming day; arrays of shape (n,) ((n, 4) for ``shares``)."""

    target_roi: np.ndarray  # GMV/spend, absolute
    budget_ratio: np.ndarray  # new daily budget / budget in force
    shares: np.ndarray  # budget shares of the plans, columns envs.actions.PLANS (whole_site
    # last, 0 without the plan)
    refresh: np.ndarray  # bool: refresh the creatives today

    @classmethod
    def hold(cls, obs: Obs) -> DaySettings:
        """Keep every setting in force (the starting proposal of every rule chain)."""
        n = obs["target_roi"].shape[0]
        # decode_features always names share_whole_site; a hand-made observation may not
        shares = np.stack([obs.get(f"share_{plan}", np.zeros(n)) if plan == "whole_site"
                           else obs[f"share_{plan}"] for plan in PLANS], axis=1)
        return cls(obs["target_roi"].astype(float).copy(), np.ones(n), shares.astype(float),
                   np.zeros(n, dtype=bool))

    def copy(self) -> DaySettings:
        return replace(self, target_roi=self.target_roi.copy(),
                       budget_ratio=self.budget_ratio.copy(), shares=self.shares.copy(),
                       refresh=self.refresh.copy())

    def to_action(self, config: ScenarioConfig, obs: Obs) -> np.ndarray:
        """The action (n, action_dim) that applies this proposal, clipped to the bounds."""
        current = np.maximum(obs["target_roi"], TARGET_MIN)
        target = np.maximum(self.target_roi, TARGET_MIN)
        if config.action_space == "full":
            return encode_action(config, target / current, self.budget_ratio,
                                 shares=self.shares, refresh=self.refresh)
        return encode_action(config, target / current, self.budget_ratio)


def promo_window(obs: Obs) -> np.ndarray:
    """Bool (n,): from a week before a promotion peak to 3 days after it."""
    return ((obs["days_to_promo"] <= PROMO_LEAD_DAYS) | (obs["in_promo"] > 0.5)
            | (obs["days_after_promo"] <= PROMO_RESTORE_DAYS))


def budget_over_mean_spend(obs: Obs) -> np.ndarray:
    """Budget in force / mean daily spend of the last 7 days (from the log feature)."""
    return np.exp(obs["log_budget_to_spend_7d"])


def shares_row(n: int, payment: float, settlement: float, volume: float,
               whole_site: float = 0.0) -> np.ndarray:
    """(n, 4) plan shares (columns :data:`envs.actions.PLANS`), every account the same."""
    return np.tile(np.array([payment, settlement, volume, whole_site], dtype=float), (n, 1))


class SettingsPolicy(Policy):
    """A rule-based policy: it proposes :class:`DaySettings`, the action follows from them."""

    def settings(self, obs: Obs) -> DaySettings:
        """The proposal for the coming day (what ``recommend`` shows an operator)."""
        raise NotImplementedError

    def decide(self, obs: Obs) -> np.ndarray:
        return self.settings(obs).to_action(self.config, obs)
