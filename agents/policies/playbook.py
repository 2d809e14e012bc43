"""The playbook's hand-written heuristics: one class per rule family, and all of them combined.

The source is the ROI/GMV co-optimisation playbook article (Chinese; sections cited by their
numbers, e.g. §二.1). Each rule is a stateless function of the decoded dashboard history
(:func:`envs.history.decode_features`) and of the proposal it is handed: ``rule(obs,
settings) -> settings``. Nothing is remembered between days, so ``recommend`` can apply the
same rules to a real account's report. Where the model lacks the article's lever, the rule
uses the nearest one; ``docs/baselines.md`` lists each mapping.

:class:`PlaybookPolicy` (registered as ``"playbook"``) chains every rule as an operator who
follows the whole article would. It acts through the ``full`` action space (plan shares and
creative refreshes are levers of the article). The rules' free numbers (launch budget, raise
step, band width, phase days, promotion cut) are a :class:`PlaybookNumbers`, the article's
values by default; ``playbook_tuned`` (:mod:`agents.policies.tuned`) runs the same rules
with them tuned within the article's ranges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import numpy as np

from agents.policies.base import register_policy
from agents.policies.settings import (
    EXPLORATION_DAYS,
    MATURE_DAY,
    PROMO_LEAD_DAYS,
    PROMO_RESTORE_DAYS,
    DaySettings,
    Obs,
    SettingsPolicy,
    budget_over_mean_spend,
    promo_window,
    shares_row,
)
from agents.policies.static import FixedSettingsPolicy
from envs.actions import TARGET_MIN, VOLUME, WHOLE_SITE
from envs.anchored import StaticSettings, target_step
from envs.config import ScenarioConfig

BudgetRamp = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (plan age, otherwise) -> ratio


@dataclass(frozen=True)
class PlaybookNumbers:
    """The rules' free numbers: the article's values by default (the untuned ``playbook``).

    Ranges (searched by ``playbook_tuned``, :data:`agents.policies.tuned.SPACES`): the
    article's own where it gives one; where it gives a single value, ±1/3 around it (an
    assumption: an operator reading "about x").

    - ``launch_budget``: the daily budget held from launch, x the launch budget. The article
      only says the exploration budget "covers the whole day" (§三.1), so the launch budget is
      kept (1.0); it names no level. Range (assumption): half to twice the launch budget.
      Another multiple is reached from launch in the learning-safe steps of ``static``.
    - ``raise_step_roi``: the target raise when the target is met and the weekly ladder
      (§二.1, §四.2): "+0.2-0.3" (GMV/spend); 0.25, its middle. Range 0.2-0.3.
    - ``band_roi``: half-width of the target band around the 7-day mean ROI (§二.1): ±0.9
      (GMV/spend). Range (assumption) 0.6-1.2.
    - ``exploration_days``: length of the exploration phase (§三.1): 1 week (7 days); the 3C
      case of §五 collects its conversions in 3 days. Range 3-7 days.
    - ``mature_day``: plan age (days) from which the mature phase runs (§三.1: "4 weeks+"):
      28. Range (assumption) 21-35 days, a week either side.
    - ``promotion_cut``: the share by which the payment-ROI target is lowered a week before a
      promotion (§四.1): 20%; the 3C case of §五 cuts 3.0 to 2.1 (30%). Range 13-30%.
    """

    launch_budget: float = 1.0  # x the launch budget
    raise_step_roi: float = 0.25  # GMV/spend
    band_roi: float = 0.9  # GMV/spend, either side of the 7-day mean
    exploration_days: int = EXPLORATION_DAYS  # days
    mature_day: int = MATURE_DAY  # plan age, days
    promotion_cut: float = 0.2  # share of the target

    def __post_init__(self) -> None:
        if not (self.launch_budget > 0 and self.raise_step_roi >= 0 and self.band_roi > 0):
            raise ValueError("launch_budget and band_roi must be > 0, raise_step_roi >= 0; got "
                             f"{self.launch_budget}, {self.band_roi}, {self.raise_step_roi}")
        if not 1 <= self.exploration_days < self.mature_day:
            raise ValueError("need 1 <= exploration_days < mature_day, got "
                             f"{self.exploration_days} and {self.mature_day}")
        if not 0 <= self.promotion_cut < 1:
            raise ValueError(f"promotion_cut must be in [0, 1), got {self.promotion_cut}")

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> PlaybookNumbers:
        """Numbers from a search's or a file's parameters (the article's value for any not
        given); day counts are rounded to whole days. Unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"playbook: unknown parameter(s) {sorted(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        default = cls()
        return cls(**{k: (round(float(v)) if isinstance(getattr(default, k), int)
                          else float(v)) for k, v in params.items()})


ARTICLE = PlaybookNumbers()


def phase(obs: Obs, exploration_days: int = EXPLORATION_DAYS,
          mature_day: int = MATURE_DAY) -> np.ndarray:
    """0 exploration (week 1), 1 stable (weeks 2-4), 2 mature (from week 5); by plan age
    (days; the phases' bounds by default the article's)."""
    age = obs["plan_age_days"]
    return np.where(age < exploration_days, 0, np.where(age < mature_day, 1, 2))


def launch_budget_ramp(config: ScenarioConfig, launch_budget: float) -> BudgetRamp:
    """The budget ratio by plan age that takes the launch budget to ``launch_budget`` x it in
    ``static``'s learning-safe steps (:meth:`FixedSettingsPolicy.budget_ramp`), ``otherwise``
    once there (at once for 1.0). Only the ramp of the fixed settings is used: the week-1
    settings the playbook launches with (payment-ROI plans, launch target and schedule)."""
    week1 = StaticSettings(config.launch_target_roi / config.breakeven_roi, (1.0, 0.0, 0.0),
                           launch_budget, int(config.scheduled_refresh_days))
    return FixedSettingsPolicy(config, week1).budget_ramp


def promotion_steps(config: ScenarioConfig, cut: float) -> int:
    """Days over which a promotion cut of ``cut`` (share of the target) is made: two equal
    steps, more when two would each change the target by more than ``static``'s
    learning-safe step (:func:`agents.policies.static.target_step`)."""
    if cut <= 0:
        return 2
    needed = math.ceil(-math.log1p(-cut) / math.log1p(target_step(config)) - 1e-9)
    return max(2, needed)


class TargetBandRule:
    """§二.1 (target setting): anchor the target on the last 7 days' mean payment ROI and keep
    it inside a band of ±0.9 around that mean (a mean of 3.0 allows 2.1 to 3.9;
    ``numbers.band_roi``).

    The article's "start conservative, raise once the model is stable" is carried by the
    phase rule (week 1) and the raise rules; this rule only enforces the band.

    Lever mapping: the article's mean is that of the plans the target controls, but the
    dashboard history here holds account totals, in which volume plans (no target, deeper
    traffic) pull the mean down. The band is applied once no volume plan has run for the
    whole 7-day window (from the second week of the mature phase), when the account mean is
    the ROI plans' own.
    """

    section = "§二.1 目标设定"
    max_volume_share = 0.05

    def __init__(self, numbers: PlaybookNumbers = ARTICLE):
        self.numbers = numbers

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        mean, band = obs["roi_7d"], self.numbers.band_roi
        own_mean = ((obs["plan_age_days"] >= self.numbers.mature_day + 7)
                    & (obs["share_volume"] < self.max_volume_share))
        known = (mean > 0) & own_mean  # and some spend in the window to anchor on
        lo = np.maximum(mean - band, TARGET_MIN)
        out = s.copy()
        out.target_roi = np.where(known, np.clip(s.target_roi, lo, mean + band), s.target_roi)
        return out


class BudgetSplitRule:
    """§二.1 (budget split): 40% of the budget to plans that protect the payment ROI, 60% to
    volume plans that look for extra GMV.

    Applies in the stable phase, when the article switches smart volume on; in week 1 the
    phase rule keeps volume off, and from week 5 the mature split replaces it.
    """

    section = "§二.1 预算分配"
    roi_share, volume_share = 0.4, 0.6

    def __init__(self, numbers: PlaybookNumbers = ARTICLE):
        self.numbers = numbers

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        out = s.copy()
        stable = phase(obs, self.numbers.exploration_days, self.numbers.mature_day) == 1
        split = shares_row(len(stable), self.roi_share, 0.0, self.volume_share)
        out.shares = np.where(stable[:, None], split, s.shares)
        return out


class RaiseWhenTargetMetRule:
    """§二.1 (budget split, second sentence): when the payment ROI reaches the target and the
    plan spends more than 80% of its budget, raise the target by 0.2-0.3
    (``numbers.raise_step_roi``, 0.25 by default).

    In the stable phase a shortfall within the ±15% swing the article allows (§三.1) still
    counts as meeting the target.
    """

    section = "§二.1 预算分配"
    spend_share = 0.8
    stable_swing = 0.15

    def __init__(self, numbers: PlaybookNumbers = ARTICLE):
        self.numbers = numbers

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        p = phase(obs, self.numbers.exploration_days, self.numbers.mature_day)
        tolerance = np.where(p == 1, 1.0 - self.stable_swing, 1.0)
        met = obs["roi_d1"] >= obs["target_roi"] * tolerance
        busy = obs["spend_to_budget_d1"] >= self.spend_share
        out = s.copy()
        out.target_roi = np.where(met & busy & (p > 0), s.target_roi + self.numbers.raise_step_roi,
                                  s.target_roi)
        return out


class SettlementPlanRule:
    """§二.2 (settlement ROI): once settlement-ROI plans run, give them at least 30% of the
    spend (the article's "消耗占比≥30%"), taken from the payment-ROI plans first.

    Their target follows the shared target (the model has one target for ROI plans; the
    platform's suggested range is not modelled). The volume plans' "match the live hours,
    three mature creatives each" has no lever in a daily model.
    """

    section = "§二.2 结算ROI"
    min_share = 0.3

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        out = s.copy()
        on = s.shares[:, 1] > 1e-3
        missing = np.where(on, np.maximum(self.min_share - s.shares[:, 1], 0.0), 0.0)
        from_payment = np.minimum(missing, s.shares[:, 0])
        out.shares[:, 1] += missing
        out.shares[:, 0] -= from_payment
        out.shares[:, 2] -= missing - from_payment
        return out


class PhaseRule:
    """§三.1 (layered strategy) and the 3C case of §五: three phases by plan age.

    - Exploration (week 1, ``numbers.exploration_days``): a conservative target at 80% of the
      mean ROI, set on launch day (the case: 2.4 from a mean of 3.0), then held while the
      plan collects conversions; the budget covers the whole day (the model has no hours: the
      launch budget is kept, never cut; with ``numbers.launch_budget`` other than 1 it is
      first ramped there by ``budget_ramp``, :func:`launch_budget_ramp`); smart volume is
      not on yet, so the whole budget goes to payment-ROI plans.
    - Stable (weeks 2-4): smart volume on (the 40/60 split), a ±15% ROI swing allowed (see
      :class:`RaiseWhenTargetMetRule`).
    - Mature (week 5 on, from ``numbers.mature_day``): 80% of the budget to settlement-ROI
      plans; the other 20% stays with the payment-ROI plans. Where the scenario has the
      whole-site plan (``whole_site_enabled``), 30% of the budget goes to it first, as in
      the article's 3C case ("同步分配 30% 预算给全域推广"), and the 80/20 split takes the
      other 70%; without it, the phase rule alone (the case's 30% has no plan to go to).
    """

    section = "§三.1 策略分层"
    exploration_ratio = 0.8
    mature_settlement_share = 0.8
    mature_whole_site_share = 0.3

    def __init__(self, numbers: PlaybookNumbers = ARTICLE, budget_ramp: BudgetRamp | None = None,
                 whole_site: bool = False):
        """:param budget_ramp: the ramp to ``numbers.launch_budget`` (:func:`launch_budget_ramp`);
        needed only when it is not 1.
        :param whole_site: the scenario has the whole-site plan (``whole_site_enabled``)."""
        if budget_ramp is None and numbers.launch_budget != 1.0:
            raise ValueError("a launch budget other than 1 x needs its budget_ramp")
        self.numbers = numbers
        self.budget_ramp = budget_ramp
        self.whole_site_share = self.mature_whole_site_share if whole_site else 0.0

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        out = s.copy()
        p = phase(obs, self.numbers.exploration_days, self.numbers.mature_day)
        n = len(p)
        launch_day = obs["plan_age_days"] < 0.5
        out.target_roi = np.where(launch_day & (obs["roi_7d"] > 0),
                                  self.exploration_ratio * obs["roi_7d"], s.target_roi)
        out.budget_ratio = np.where(p == 0, np.maximum(s.budget_ratio, 1.0), s.budget_ratio)
        if self.budget_ramp is not None:
            out.budget_ratio = self.budget_ramp(np.rint(obs["plan_age_days"]), out.budget_ratio)
        rest = 1.0 - self.whole_site_share
        mature = shares_row(n, rest * (1.0 - self.mature_settlement_share),
                            rest * self.mature_settlement_share, 0.0, self.whole_site_share)
        exploring = shares_row(n, 1.0, 0.0, 0.0)
        out.shares = np.where((p == 0)[:, None], exploring,
                              np.where((p == 2)[:, None], mature, s.shares))
        return out


class PromotionRule:
    """§四.1 (big promotions): a week before the peak, lower the payment-ROI target by 20%
    (``numbers.promotion_cut``); keep a dynamic floor at 70% of the mean ROI; re-allocate the
    budget in real time with whole-site promotion's "one-click pacing".

    The cut is made in ``steps`` equal daily steps from 7 days before the peak (two for 20%:
    7 and 6 days before), each below the change that restarts learning (operators keep single
    changes small; :func:`promotion_steps`). Restoring the target in as many steps from 3
    days after the peak is the operator guides' completion (the article does not say when to
    undo the cut). Lever mapping: one-click pacing moves budget
    within a day; a daily model has no intraday lever, so the daily budget is left as is.
    Where the scenario has the whole-site plan (``whole_site_enabled``), the promotion window
    runs the volume plans' share through whole-site instead (the platform then paces that
    budget across all traffic, holding the target); without it, the shares are left as is.
    """

    section = "§四.1 大促期间"
    floor_ratio = 0.7

    def __init__(self, numbers: PlaybookNumbers = ARTICLE, steps: int = 2,
                 whole_site: bool = False):
        """:param whole_site: the scenario has the whole-site plan (``whole_site_enabled``)."""
        self.numbers = numbers
        self.steps = steps
        self.whole_site = whole_site

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        out = s.copy()
        to_peak, after = obs["days_to_promo"], obs["days_after_promo"]
        peak = obs["in_promo"] > 0.5
        step = (1.0 - self.numbers.promotion_cut) ** (1.0 / self.steps)
        start = np.zeros(to_peak.shape, dtype=bool)
        restore = np.zeros(after.shape, dtype=bool)
        for k in range(self.steps):
            start |= np.abs(to_peak - PROMO_LEAD_DAYS + k) < 0.5
            restore |= np.abs(after - PROMO_RESTORE_DAYS - k) < 0.5
        start &= ~peak
        target = np.where(start, obs["target_roi"] * step, s.target_roi)
        target = np.where(restore, obs["target_roi"] / step, target)
        window = promo_window(obs)
        floor = self.floor_ratio * obs["roi_7d"]
        out.target_roi = np.where(window & ~restore, np.maximum(target, floor), target)
        if self.whole_site:
            moved = np.where(window, s.shares[:, VOLUME], 0.0)
            out.shares[:, WHOLE_SITE] += moved
            out.shares[:, VOLUME] -= moved
        return out


class LadderRule:
    """§四.2 (everyday operation): the "ladder": raise the payment-ROI target by 0.2-0.3
    (``numbers.raise_step_roi``, 0.25 by default) every week, here after a week without any
    target change, outside week 1 and outside the promotion window, unless another rule
    already raised it today.
    """

    section = "§四.2 日常运营"
    every_days = 7

    def __init__(self, numbers: PlaybookNumbers = ARTICLE):
        self.numbers = numbers

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        p = phase(obs, self.numbers.exploration_days, self.numbers.mature_day)
        due = ((obs["days_since_target_change"] >= self.every_days - 0.5)
               & (p > 0) & ~promo_window(obs) & (s.target_roi <= obs["target_roi"]))
        out = s.copy()
        out.target_roi = np.where(due, s.target_roi + self.numbers.raise_step_roi, s.target_roi)
        return out


class BalanceRule:
    """§四.2 (everyday operation): keep the account balance above 3 days of average spend,
    so delivery is never interrupted.

    Lever mapping: the model cannot top up the balance, so the rule caps the daily budget at
    a third of the balance instead. On the morning a scheduled top-up arrives (the schedule is
    the account's own) the dashboard still shows yesterday's balance, so the cap is skipped.
    """

    section = "§四.2 日常运营"
    days = 3.0

    def __init__(self, topup_interval_days: int = 7):
        self.topup_interval_days = topup_interval_days

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        ratio_now = budget_over_mean_spend(obs)  # budget / mean spend
        cap = obs["balance_days"] / self.days / np.maximum(ratio_now, 1e-9)
        spent = obs["log_budget_to_spend_7d"] < 5.0  # some spend in the last week
        age = np.rint(obs["plan_age_days"]).astype(np.int64)
        topup_day = (age > 0) & (age % self.topup_interval_days == 0)
        out = s.copy()
        out.budget_ratio = np.where(spent & ~topup_day, np.minimum(s.budget_ratio, cap),
                                    s.budget_ratio)
        return out


class RestartDecayingPlanRule:
    """§四.2 (everyday operation): restart a decaying plan by changing one or two targeting
    tags or creatives ("变量重启").

    A plan decays when its last 3 days' GMV is more than 10% below its 7-day mean with
    creatives at least two weeks old and a target unchanged for a week (so the drop is not
    the plan's own re-learning), out of learning and outside the promotion window.
    Lever mapping: the model's creative refresh (restores traffic, restarts learning).
    """

    section = "§四.2 日常运营"
    drop = np.log(0.9)
    min_creative_age_days = 14.0
    min_days_since_target_change = 7.0

    def __init__(self, numbers: PlaybookNumbers = ARTICLE):
        self.numbers = numbers

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        decaying = ((obs["log_gmv_trend"] < self.drop)
                    & (obs["creative_age_days"] >= self.min_creative_age_days)
                    & (obs["days_since_target_change"] >= self.min_days_since_target_change)
                    & (obs["learning"] < 0.5)
                    & (obs["plan_age_days"] >= self.numbers.exploration_days)
                    & ~promo_window(obs))
        out = s.copy()
        out.refresh = s.refresh | decaying
        return out


class CreativeRotationRule:
    """§三.2 (creatives and audiences): keep renewing the creative set (the article generates
    100+ programmatic combinations and keeps those whose CTR beats the industry by 25%).

    Lever mapping: the model has one creative set per account, so renewal becomes a refresh
    on the account's creative schedule (``scheduled_refresh_days``, the same schedule the
    ``basic`` space applies to every other policy), outside the promotion window.
    """

    section = "§三.2 素材与人群的动态适配"

    def __init__(self, every_days: int = 28):
        self.every_days = every_days

    def __call__(self, obs: Obs, s: DaySettings) -> DaySettings:
        out = s.copy()
        if self.every_days > 0:
            due = ((obs["creative_age_days"] >= self.every_days - 0.5)
                   & (obs["plan_age_days"] > 0.5) & ~promo_window(obs))
            out.refresh = s.refresh | due
        return out


@register_policy("playbook")
class PlaybookPolicy(SettingsPolicy):
    """All the article's rules at once: the strongest hand-written baseline.

    Order: phase (shares, launch target and budget) → budget split → settlement floor →
    raise when the target is met → weekly ladder → band around the mean → promotions (their
    floor wins in the window) → creative rotation → restart → balance cap (last, so nothing
    lifts the budget past it).

    :param numbers: the rules' free numbers (default: the article's, :data:`ARTICLE`).
    """

    action_space = "full"

    def __init__(self, config: ScenarioConfig, numbers: PlaybookNumbers = ARTICLE):
        super().__init__(config)
        self.numbers = numbers
        ramp = (None if numbers.launch_budget == 1.0
                else launch_budget_ramp(self.config, numbers.launch_budget))
        whole_site = config.whole_site_enabled
        self.rules = (PhaseRule(numbers, ramp, whole_site), BudgetSplitRule(numbers),
                      SettlementPlanRule(), RaiseWhenTargetMetRule(numbers), LadderRule(numbers),
                      TargetBandRule(numbers),
                      PromotionRule(numbers, promotion_steps(self.config, numbers.promotion_cut),
                                    whole_site),
                      CreativeRotationRule(config.scheduled_refresh_days),
                      RestartDecayingPlanRule(numbers), BalanceRule(config.topup_interval_days))

    def settings(self, obs: Obs) -> DaySettings:
        """The day's settings after every rule (for ``recommend`` and the tests)."""
        s = DaySettings.hold(obs)
        for rule in self.rules:
            s = rule(obs, s)
        return s
