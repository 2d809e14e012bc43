"""Scenario configuration: one frozen, validated dataclass, presets in ``configs/scenarios/``.

Every parameter of the market model is a field here with its unit, its valid range and its
source. ``(u)`` marks figures from unofficial operator guides: defaults and randomisation
ranges, not exact truths. Derived values (break-even ROI, ...) are properties, never stored.

Load a preset with :func:`load_scenario`; unknown keys, wrong types and out-of-range values
raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from envs.excerpt import excerpt
from envs.paths import config_dir
from envs.presets import (
    ConfigError,
    check_choice,
    check_finite,
    coerce_value,
    key_text,
    read_preset,
    read_yaml_mapping,
)

SCENARIO_DIR = config_dir("scenarios")
DEFAULT_SCENARIO = "3c"
# Unseen markets: perturbations of the named scenarios that nothing trains or tunes on, only
# evaluation plays (``scripts/evaluate.py --unseen``); loaded as ``unseen/<file stem>`` and
# named ``unseen_<file stem>``.
UNSEEN_DIR = SCENARIO_DIR / "unseen"
UNSEEN_PREFIX = "unseen_"
# Keys of a scenario's file that are not market parameters, each read from that file alone
# (not inherited through ``base:``): ``reason``, why a preset exists (every unseen market says
# it); ``training_preset``, the PPO preset (configs/ppo/) that trains on it by default
# (agents.training.config.preset_for_scenario).
PRESET_NOTES = ("reason", "training_preset")


def param(default: Any, unit: str, lo: float | None = None, hi: float | None = None,
          source: str = "model choice", doc: str = "") -> Any:
    """A config field with its unit, range, source and description as metadata."""
    kwargs: dict[str, Any] = {"metadata": {"unit": unit, "lo": lo, "hi": hi, "source": source,
                                           "doc": doc}}
    if isinstance(default, (list, tuple)):
        kwargs["default_factory"] = lambda d=tuple(default): d
    else:
        kwargs["default"] = default
    return field(**kwargs)


OP = "public operator guides (u)"
PLAYBOOK = "the ROI/GMV playbook article"


@dataclass(frozen=True)
class ScenarioConfig:
    """All parameters of one market scenario (defaults: the ``3c`` scenario)."""

    name: str = param("3c", "-", doc="Scenario name.")
    category: str = param("3c", "-", doc="Product category, for documentation and randomisation.")

    # --- economics of the shop -------------------------------------------------------------
    aov_cny: float = param(800.0, "CNY/order", 10, 10000, OP, "Average order value.")
    margin: float = param(0.35, "share of settled GMV", 0.01, 0.95, "market brief §8",
                          "Contribution margin on settled (refund-net) GMV.")
    refund_rate: float = param(0.10, "share of GMV", 0.0, 0.9, OP,
                               "Refund rate of ad orders at the typical traffic depth.")
    typical_target_roi: float = param(3.0, "GMV/spend", 0.1, 100, OP,
                                      "The payment-ROI target operators typically set.")

    # --- traffic pool ----------------------------------------------------------------------
    pool_cost_cny: float = param(20000.0, "CNY/day", 100, 1e8, "model choice",
                                 "Cost of the whole daily pool at market prices (spend if "
                                 "everything were bought), before weekday, shocks and states.")
    pool_mean_roi: float = param(2.0, "GMV/spend", 0.1, 50, "market brief §2/§8 (u)",
                                 "Pool's cost-weighted mean payment ROI m.")
    pool_sigma: float = param(0.7, "log-sd", 0.1, 1.6, "market brief §2",
                              "Log-sd of the pool's ROI distribution.")
    weekday_traffic: tuple[float, ...] = param(
        (0.95, 0.95, 0.97, 1.0, 1.05, 1.1, 0.98), "multiplier", 0.1, 5, "model choice",
        "Traffic multiplier by weekday, Monday first.")
    weekday_enabled: bool = param(True, "switch", doc="Weekday pattern on.")
    traffic_shock_sd: float = param(0.10, "log-sd/day", 0, 1, "model choice",
                                    "Stationary log-sd of the AR(1) traffic shock.")
    traffic_shock_ar: float = param(0.7, "per day", 0, 0.999, "model choice",
                                    "AR(1) persistence of the traffic shock.")
    roi_shock_sd: float = param(0.05, "log-sd/day", 0, 1, "model choice",
                                "Daily i.i.d. log-noise on the pool's mean ROI.")
    shocks_enabled: bool = param(True, "switch", doc="Traffic and ROI shocks on.")

    # --- a moving market (issue #14, item 5; docs/market-model.md) -------------------------
    market_drift_enabled: bool = param(
        True, "switch", doc="The pool's mean ROI and cost drift (mean-reverting) and shift "
        "with competitor regimes; off: the pool holds still but for the shocks above.")
    drift_half_life_days: float = param(
        21.0, "days", 1, 1000, "assumption: 'mean-reverting over weeks' (market brief §11); "
        "3 weeks", "Half-life of the log drift of the pool's mean ROI and cost.")
    drift_roi_sd: float = param(
        0.10, "log-sd", 0, 1, "assumption: months differ by about ±20% (2 sd) in the pool's "
        "mean ROI, within the 2-5 spread of brief §2 (u)",
        "Stationary log-sd of the pool's mean-ROI drift.")
    drift_cost_sd: float = param(
        0.15, "log-sd", 0, 2, "assumption: traffic volume varies more than its ROI (1.5 × "
        "drift_roi_sd)", "Stationary log-sd of the pool's cost drift.")
    regime_shift_interval_days: float = param(
        42.0, "days", 1, 1e6, "assumption: a competitor enters or leaves about twice per "
        "84-day launch (brief §11)",
        "Mean days between competitor regime shifts (Poisson, at most one a day).")
    regime_roi_step_sd: float = param(
        0.10, "log-sd/shift", 0, 1, "assumption: one competitor moves the pool's mean ROI "
        "by about 10%", "Log-sd of a regime shift's step in the pool's mean ROI.")
    regime_cost_step_sd: float = param(
        0.15, "log-sd/shift", 0, 2, "assumption: 1.5 × regime_roi_step_sd, as for the drift",
        "Log-sd of a regime shift's step in the pool's cost.")
    regime_half_life_days: float = param(
        56.0, "days", 1, 1e6, "assumption: a competitor's push fades over about two months "
        "(1e6: it persists)", "Half-life of a regime shift's step.")

    # --- the auto-bidder -------------------------------------------------------------------
    bidder_bias_sd: float = param(0.05, "log-sd/episode", 0, 1, "model choice",
                                  "Per-episode calibration bias of achieved vs promised ROI.")
    bidder_noise_sd: float = param(0.08, "log-sd/day", 0, 1, "model choice",
                                   "Daily noise of achieved ROI.")
    basket_noise_sd: float = param(0.05, "log-sd/day", 0, 1, "model choice",
                                   "Daily noise of basket value around the AOV.")
    bidder_noise_enabled: bool = param(True, "switch", doc="Bidder bias and noise on.")
    estimation_noise_enabled: bool = param(
        True, "switch", doc="Selection on noisy ROI estimates (winner's curse) on: the ROI "
        "plans hold the target on the bidder's estimates, and truly earn less.")
    estimation_noise_sd: float = param(
        0.35, "log-sd", 0, 0.75,
        "assumption: the bidder's value model explains 80% of the variance of log ROI across "
        "the pool (rho^2 = 0.8, so sigma_e = sigma/2 at sigma = 0.7); market brief §11",
        "Log-sd of the error of the bidder's per-opportunity ROI estimate (level-calibrated: "
        "the pool's mean estimate is its mean ROI). At most 0.75, so that the estimates' "
        "spread sqrt(sigma^2 + sigma_e^2) stays within the share table for any drawn sigma.")

    # --- launch ----------------------------------------------------------------------------
    launch_target_roi: float = param(3.0, "GMV/spend", 0.01, 100, PLAYBOOK,
                                     "Target in force at launch (held by the constant policy).")
    launch_budget_cny: float = param(12000.0, "CNY/day", 300, 1e8, "model choice",
                                     "Daily budget in force at launch.")
    launch_shares: tuple[float, ...] = param(
        (0.4, 0.0, 0.6), "share", 0, 1, PLAYBOOK,
        "Budget shares of the payment_roi, settlement_roi and volume plans at launch, and of "
        "whole_site as a fourth value (3 values: whole_site 0; above 0 needs "
        "whole_site_enabled).")
    history_days: int = param(14, "days", 14, 60, "model choice",
                              "Days of the account's pre-launch history simulated at reset.")
    episode_days: int = param(84, "days", 7, 730, "model choice",
                              "Episode length: exploration, stable and mature phases.")

    # --- learning period -------------------------------------------------------------------
    learning_enabled: bool = param(True, "switch", doc="Learning period and re-learning on.")
    learning_exit_orders: float = param(20.0, "orders", 1, 1000, OP,
                                        "Orders within the window that end learning.")
    learning_settlement_extra_orders: float = param(
        15.0, "orders", 0, 1000, PLAYBOOK,
        "Extra orders needed to learn when the whole budget is on settlement-ROI plans "
        "(scaled by that share).")
    learning_window_days: int = param(3, "days", 1, 14, OP, "Window for counting exit orders.")
    learning_fail_days: int = param(7, "days", 2, 60, OP,
                                    "Days in learning after which the plan is LEARN_FAILED.")
    learning_traffic_mult: float = param(0.6, "multiplier", 0.05, 1, "market brief §3",
                                         "Traffic reached while learning.")
    learning_roi_mult: float = param(0.85, "multiplier", 0.1, 1, "market brief §3",
                                     "Pool ROI while learning (bidder still exploring).")
    learning_noise_mult: float = param(2.0, "multiplier", 1, 10, "market brief §3",
                                       "Bidder noise multiplier while learning.")
    learn_failed_traffic_mult: float = param(0.5, "multiplier", 0.05, 1, "market brief §3",
                                             "Traffic of a LEARN_FAILED plan (throttled).")
    relearn_target_change: float = param(0.15, "relative change", 0.0, 10, OP,
                                         "A one-day target change beyond this restarts "
                                         "learning.")
    relearn_budget_jump: float = param(0.5, "relative increase", 0.0, 100, OP,
                                       "A one-day budget increase beyond this restarts "
                                       "learning.")
    relearn_cumulative_enabled: bool = param(
        True, "switch", doc="Second version (#14): edits add up over "
        "relearn_window_days; learning restarts when their sum, each edit in units of the "
        "one-day thresholds above, exceeds 1.")
    relearn_window_days: int = param(
        7, "days", 1, 60, "Meta: ~50 optimisation events within 7 days of the last "
        "significant edit; TikTok: ~25 results or 7 days; Google SA360: a target change "
        ">30% re-learns for about a week",
        "Window over which edits add up (cumulative re-learning).")
    starvation_enabled: bool = param(
        True, "switch", doc="Second version (#14): a plan out of learning with fewer than "
        "starvation_min_orders over starvation_window_days is LEARN_FAILED (throttled) until "
        "an edit restarts learning.")
    starvation_window_days: int = param(
        7, "days", 1, 60, "Meta: the exit count within 7 days ('Learning limited' when an "
        "ad set will not reach it); TikTok: 7 days",
        "Window over which a plan's conversions are counted (conversion starvation).")
    starvation_min_orders: float = param(
        20.0, "orders", 0, 1000, "assumption: the learning-exit count (market brief §3, "
        "20 (u)), held over the window; Meta's exit count is 50 in 7 days",
        "Orders over the window a plan out of learning needs to keep delivering.")

    # --- cost protection (成本保障) -----------------------------------------------------------
    cost_protection_enabled: bool = param(True, "switch", doc="Cost protection on.")
    cost_protection_days: int = param(3, "days", 0, 30, OP, "Protected days after launch.")
    cost_protection_ratio: float = param(0.8, "share of target", 0, 1, OP,
                                         "Achieved ROI below this share of the target is "
                                         "compensated.")
    cost_protection_min_orders: float = param(10.0, "orders/day", 0, 1000, OP,
                                              "Orders needed on a day to be compensated.")
    cost_protection_max_edits: int = param(2, "edits", 0, 100, OP,
                                           "Target changes and creative refreshes allowed "
                                           "within the protected days before it is forfeited.")

    # --- refunds and settlement ------------------------------------------------------------
    refunds_enabled: bool = param(True, "switch", doc="Refunds on.")
    refund_kernel: tuple[float, ...] = param(
        (0.30, 0.22, 0.16, 0.12, 0.09, 0.06, 0.05), "share", 0, 1, "model choice",
        "Share of a cohort's refunds landing 1..7 days after the order day (sums to 1).")
    refund_depth_slope: float = param(0.5, "per unit of pool share", 0, 10, "market brief §4",
                                      "Relative rise of the refund rate per unit of extra "
                                      "pool depth bought beyond the typical depth.")
    promo_refund_mult: float = param(1.4, "multiplier", 1, 5, "market brief §4 (u)",
                                     "Refund rate multiplier on promotion peak days.")
    return_handling_enabled: bool = param(
        True, "switch", doc="A refunded order costs handling and shipping (issue #14, item 8; "
        "market brief §11).")
    return_handling_cny: float = param(
        10.0, "CNY/returned order", 0, 1000, "market brief §11: 8-15 CNY a return (u)",
        "Handling and shipping cost of a refunded order (every refund taken as a return).")
    settlement_refund_reduction: float = param(0.35, "relative", 0, 0.95, PLAYBOOK,
                                               "Refund-rate reduction of settlement-ROI plans "
                                               "(the article's best case is 55%).")
    settlement_volume_penalty: float = param(0.10, "relative", 0, 0.9, PLAYBOOK,
                                             "Share of qualifying traffic a settlement-ROI "
                                             "plan cannot reach.")

    # --- organic carry-over and cannibalisation --------------------------------------------
    organic_enabled: bool = param(True, "switch", doc="Carry-over and cannibalisation on.")
    cannibalisation: float = param(0.25, "share of ad GMV", 0, 0.9, "market brief §5 (u)",
                                   "Share of ROI-plan ad GMV that would have happened anyway.")
    volume_cannibalisation: float = param(0.10, "share of ad GMV", 0, 0.9, "market brief §5 (u)",
                                          "Same for the volume (whole-site) plan.")
    volume_organic_uplift: float = param(0.15, "share of volume GMV", 0, 2, OP,
                                         "Extra same-day organic GMV per CNY of volume-plan GMV.")
    # second version (issue #14, item 4): whole-site promotion (全域推广) as its own plan type
    # (docs/market-model.md, "Second version: whole-site promotion")
    whole_site_enabled: bool = param(
        True, "switch", doc="A fourth plan, whole_site: ROI-controlled on the room's total GMV "
        "(its ad GMV plus the organic GMV it lifts), so it buys deeper than the standard ROI "
        "plans at the same target; full actions gain 'weight_whole_site', observations "
        "'share_whole_site'.")
    whole_site_organic_lift: float = param(
        0.085, "share of whole-site ad GMV", 0, 2, "market brief §11 and the playbook "
        "article: +15-20% GMV at a steady ROI (u). Sized so that on 3c at its typical target "
        "(budget not binding) whole-site's total GMV is +17.5% over the payment-ROI plan's at "
        "the same ROI: the claim is the whole effect, deeper buying and lift together",
        "Incremental organic GMV the whole-site plan lifts, per CNY of its ad GMV; the platform "
        "holds (1 + lift) x ad GMV / spend at the target.")
    whole_site_cannibalisation: float = param(
        0.25, "share of whole-site ad GMV", 0, 0.9, "assumption: as the standard ROI plans' "
        "(the article credits its +15-20% to less paid/organic overlap; that claim is counted "
        "once, in the lift)",
        "Share of whole-site ad GMV that would have happened anyway.")
    whole_site_exclusive: bool = param(
        False, "switch", doc="A live room runs whole-site alone (market brief §11 (u)): on a day "
        "the whole-site share is above 0, the other plans' shares move to it.")
    carryover_decay: float = param(0.8, "per day", 0, 0.999, "model choice",
                                   "Daily decay of the ad-GMV stock that lifts organic traffic.")
    carryover_rate: float = param(0.25, "share of stock", 0, 5, "model choice",
                                  "Organic GMV per CNY of the (smoothed daily) ad-GMV stock.")
    carryover_saturation_cny: float = param(60000.0, "CNY/day", 1, 1e9, "model choice",
                                            "Stock at which the organic lift is halved by "
                                            "saturation.")

    # --- creatives -------------------------------------------------------------------------
    fatigue_enabled: bool = param(True, "switch", doc="Creative fatigue on.")
    creative_half_life_days: float = param(21.0, "days", 1, 1000, OP,
                                           "Days for the fatigued part of traffic to halve.")
    fatigue_floor: float = param(0.5, "multiplier", 0, 1, "model choice",
                                 "Traffic multiplier a fully fatigued creative set keeps.")
    refresh_cost_cny: float = param(1000.0, "CNY", 0, 1e7, "model choice",
                                    "Production cost of a creative refresh.")
    scheduled_refresh_days: int = param(28, "days", 0, 365, PLAYBOOK,
                                        "In the basic action space, creatives are refreshed on "
                                        "this schedule (0: never).")

    # --- promotions ------------------------------------------------------------------------
    promotions_enabled: bool = param(True, "switch", doc="Promotions on.")
    promo_peak_days: tuple[int, ...] = param((56,), "day of episode", 0, 730, "model choice",
                                             "First peak day of each promotion.")
    promo_peak_length_days: int = param(3, "days", 1, 14, OP, "Peak length.")
    promo_warmup_days: int = param(7, "days", 0, 30, OP, "Warm-up days before a peak.")
    promo_warmup_traffic: float = param(0.85, "multiplier", 0.1, 2, "market brief §6",
                                        "Traffic in warm-up (buyers wait).")
    promo_peak_traffic: float = param(3.5, "multiplier", 1, 10, "market brief §6 (u)",
                                      "Traffic on peak days.")
    promo_peak_roi: float = param(0.8, "multiplier", 0.1, 1.5, "market brief §6",
                                  "Pool ROI on peak days (competitors bid up).")
    promo_after_days: int = param(3, "days", 0, 30, OP, "Cool-down days after a peak.")
    promo_after_traffic: float = param(0.9, "multiplier", 0.1, 2, "model choice",
                                       "Traffic in cool-down.")
    # second version (issue #14, item 6), each off by default: the warm-up's stock of engaged
    # buyers (蓄水) and the peak-day discount (docs/market-model.md, "Second version: promotions")
    warmup_stock_enabled: bool = param(
        True, "switch", doc="Ad orders in a promotion's warm-up days add engaged buyers (carts, "
        "follows, bookings: 蓄水) to a decaying stock that buys on its peak days.")
    warmup_buyers_per_order: float = param(
        2.0, "engaged buyers/ad order", 0, 100, "assumption: carts and follows run at 2-4 × "
        "orders on a product page (u); the low end, the warm-up's buyers who buy at once being "
        "its orders", "Engaged buyers a warm-up day's ad order brings with it.")
    warmup_half_life_days: float = param(
        7.0, "days", 0.1, 365, "assumption: a 7-day retargeting window (operators' 7-15 day "
        "audience windows (u)), the short end", "Half-life of the stock of engaged buyers.")
    warmup_peak_conversion: float = param(
        0.10, "share of the stock/peak day", 0, 1, "assumption: 27% of the stock over a 3-day "
        "peak (1 - 0.9^3), below the 30-50% that operators claim for 预售 deposits (u)",
        "Share of the stock of engaged buyers that orders on each peak day.")
    peak_discount_enabled: bool = param(
        True, "switch", doc="Peak days sell at a discount: the contribution margin on their "
        "GMV becomes (margin - d) / (1 - d) (market brief §11).")
    peak_discount: float = param(
        0.15, "share of the list price", 0, 0.9, "assumption: 大促 discounts of 10-20% "
        "(满减 such as 50 off 300, platform coupons (u)), the middle",
        "Price discount d on peak days.")

    # --- account balance -------------------------------------------------------------------
    balance_enabled: bool = param(True, "switch", doc="Finite balance and interruptions on.")
    initial_balance_cny: float = param(80000.0, "CNY", 0, 1e10, "model choice",
                                       "Balance at launch.")
    topup_cny: float = param(80000.0, "CNY", 0, 1e10, "model choice", "Scheduled top-up.")
    topup_interval_days: int = param(7, "days", 1, 365, "model choice", "Days between top-ups.")
    interrupt_traffic_penalty: float = param(0.25, "relative", 0, 0.95, "market brief §3 (u)",
                                             "CTR (traffic) loss after a balance stop.")
    interrupt_cost_penalty: float = param(0.15, "relative", 0, 2, "market brief §3 (u)",
                                          "Cost rise (ROI loss) after a balance stop.")
    interrupt_recovery_days: int = param(5, "days", 0, 60, "model choice",
                                         "Days the penalties last.")

    # --- reward ----------------------------------------------------------------------------
    objective: str = param("profit", "-", doc="'profit' (contribution profit) or 'gmv_floor' "
                           "(settled GMV with a settlement-ROI floor penalty).")
    settlement_roi_floor: float = param(0.0, "settled GMV/spend", 0, 100, "market brief §7",
                                        "ROI floor for violation days and the gmv_floor "
                                        "penalty; 0 means the break-even settlement ROI.")
    floor_penalty: float = param(3.0, "CNY per CNY of shortfall", 0, 1000, "model choice",
                                 "gmv_floor objective: penalty per CNY of settled GMV below "
                                 "the floor.")
    refund_charging: str = param("on_landing", "-", doc="'on_landing' (refunds enter the "
                                 "reward as they land, pending ones at the end) or 'on_order' "
                                 "(each cohort's refunds on its order day). Same episode sum.")
    reward_scale_cny: float = param(10000.0, "CNY", 1e-6, 1e12, "model choice",
                                    "Reward = CNY / this.")
    terminal_value_days: int = param(
        28, "days", 0, 365,
        "assumption: 28 days (four weeks, past one learning period and the organic stock's "
        "decay) holding the final settings, undiscounted; market brief §11 (the end is not "
        "free)",
        "An end that is not free: the last day's reward adds the 'terminal_value' term, the "
        "value of this many more days holding the final settings from the final state "
        "(envs.terminal, noise-free). 0: off.")

    # --- actions ---------------------------------------------------------------------------
    action_space: str = param("basic", "-", doc="'basic' (target, budget) or 'full' (adds "
                              "three plan shares, a fourth with whole_site_enabled, and a "
                              "creative refresh).")
    target_max_step: float = param(0.25, "relative", 0.001, 10, OP,
                                   "Largest one-day target change: new = old*(1+step)^a.")
    budget_max_step: float = param(0.5, "relative", 0.001, 10, OP,
                                   "Largest one-day budget change.")
    share_range: float = param(9.0, "ratio", 1.001, 1e3, "model choice",
                               "full actions: plan weights are share_range**a, normalised.")

    # --- per-episode randomisation (training) ----------------------------------------------
    randomize: float = param(0.0, "relative spread", 0, 0.9, "model choice",
                             "Per-episode spread of pool cost, pool ROI, sigma, refund rate, "
                             "AOV and margin around their values (0: off).")

    # --------------------------------------------------------------------------------------
    @property
    def breakeven_roi(self) -> float:
        """Payment ROI at which an order pays for its ad: ``1 / (margin * (1 - refund_rate))``."""
        return 1.0 / (self.margin * (1.0 - self.refund_rate))

    @property
    def breakeven_roi_with_returns(self) -> float:
        """Break-even payment ROI counting each refund's handling cost (``return_handling_cny``
        per refunded order of ``aov_cny``): ``1 / (margin (1 - r) - r handling / aov)``. For
        the docs: the observation and the baselines use :attr:`breakeven_roi`."""
        per_gmv = self.refund_rate * self.return_handling_cny / self.aov_cny
        return 1.0 / (self.margin * (1.0 - self.refund_rate) - per_gmv)

    @property
    def floor_settlement_roi(self) -> float:
        """Settlement-ROI floor in force: the configured one, else break-even ``1 / margin``."""
        return self.settlement_roi_floor if self.settlement_roi_floor > 0 else 1.0 / self.margin

    @property
    def typical_pool_share(self) -> float:
        """Share of the pool the typical target buys (calibration check, brief §10)."""
        from envs.pool import qualifying_share, ranking_sigma

        sigma = (ranking_sigma(self.pool_sigma, self.estimation_noise_sd)
                 if self.estimation_noise_enabled else self.pool_sigma)
        return float(qualifying_share(self.typical_target_roi, self.pool_mean_roi, sigma))

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def hash(self) -> str:
        """Short sha256 of the resolved values, to tell configs apart in run records."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def replace(self, **overrides: Any) -> ScenarioConfig:
        """A copy with ``overrides`` applied (validated, unknown keys rejected)."""
        return from_dict({**self.to_dict(), **overrides})


OBJECTIVES = ("profit", "gmv_floor")  # what an episode is scored on (ScenarioConfig.objective)

_CHOICES = {"objective": OBJECTIVES, "refund_charging": ("on_landing", "on_order"),
            "action_space": ("basic", "full")}
# The second version's mechanics (issue #14), each with the overrides that switch it off;
# every one is on by default. Measurements and ablations find them here.
SECOND_VERSION_SWITCHES: dict[str, dict[str, Any]] = {
    "estimation_noise": {"estimation_noise_enabled": False},
    "cumulative_relearning": {"relearn_cumulative_enabled": False},
    "starvation": {"starvation_enabled": False},
    "market_drift": {"market_drift_enabled": False},
    "terminal_value": {"terminal_value_days": 0},
    "warmup_stock": {"warmup_stock_enabled": False},
    "peak_discount": {"peak_discount_enabled": False},
    "return_handling": {"return_handling_enabled": False},
    "whole_site": {"whole_site_enabled": False},
}
# Every one of them off: the first version's market (tests of its mechanics in isolation).
SECOND_VERSION_OFF: dict[str, Any] = {
    key: value for off in SECOND_VERSION_SWITCHES.values() for key, value in off.items()}

_LENGTHS = {"weekday_traffic": (7,), "launch_shares": (3, 4), "refund_kernel": (7,)}


def _check_number(key: str, value: Any, meta: dict[str, Any]) -> None:
    check_finite(key, value)
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{key}: {excerpt(value)} is out of range [{lo}, {hi}] ({meta['unit']})")


def validate(cfg: ScenarioConfig) -> None:
    """Check ranges and cross-field rules; raise :class:`ConfigError` naming the key."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, tuple):
            for item in value:
                _check_number(f.name, item, f.metadata)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_number(f.name, value, f.metadata)
    for key, choices in _CHOICES.items():
        check_choice(key, getattr(cfg, key), choices)
    for key, lengths in _LENGTHS.items():
        if len(getattr(cfg, key)) not in lengths:
            raise ConfigError(f"{key}: needs {' or '.join(map(str, lengths))} values, got "
                              f"{len(getattr(cfg, key))}")
    if abs(sum(cfg.refund_kernel) - 1.0) > 1e-6:
        raise ConfigError(f"refund_kernel: must sum to 1, sums to {sum(cfg.refund_kernel):.6f}")
    if abs(sum(cfg.launch_shares) - 1.0) > 1e-6:
        raise ConfigError(f"launch_shares: must sum to 1, sums to {sum(cfg.launch_shares):.6f}")
    if not cfg.whole_site_enabled and sum(cfg.launch_shares[3:]) > 0:
        raise ConfigError("launch_shares: a whole_site share above 0 needs whole_site_enabled")
    if cfg.learning_window_days > cfg.learning_fail_days:
        raise ConfigError("learning_window_days: must not exceed learning_fail_days")
    # a plan leaves learning with learning_exit_orders within learning_window_days, so its
    # starvation window holds enough orders the day it leaves: it cannot fail at once
    if cfg.starvation_enabled and cfg.starvation_min_orders > cfg.learning_exit_orders:
        raise ConfigError("starvation_min_orders: must not exceed learning_exit_orders")
    if cfg.starvation_enabled and cfg.learning_window_days > cfg.starvation_window_days:
        raise ConfigError("starvation_window_days: must not be shorter than "
                          "learning_window_days")


def from_dict(data: dict[str, Any]) -> ScenarioConfig:
    """Build a validated config from plain data; unknown keys are an error."""
    hints = get_type_hints(ScenarioConfig)
    known = {f.name for f in dataclasses.fields(ScenarioConfig)}
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ConfigError(f"unknown scenario key(s): {', '.join(map(key_text, unknown))}")
    values = {k: coerce_value(k, v, hints[k]) for k, v in data.items()}
    return ScenarioConfig(**values)


def list_scenarios() -> list[str]:
    """Names of the presets in ``configs/scenarios/`` (the named scenarios; not the unseen
    markets in its ``unseen/`` folder)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class UnseenMarket:
    """An unseen market: how to load it, the named scenario it perturbs, and why it exists."""

    preset: str  # what load_scenario takes: "unseen/<stem>"
    name: str  # the loaded config's name: "unseen_<stem>"
    base: str  # the named scenario it perturbs (whose tuned baselines it is played with)
    reason: str


def list_unseen() -> list[UnseenMarket]:
    """The unseen markets in ``configs/scenarios/unseen/``, by file name.

    :raises ConfigError: a file without ``base:`` naming a named scenario, or without a
        ``reason:``.
    """
    named = set(list_scenarios())
    out = []
    for path in sorted(UNSEEN_DIR.glob("*.yaml")):
        data = read_yaml_mapping(path)
        base, reason = data.get("base"), data.get("reason")
        if base not in named:
            raise ConfigError(f"{path}: 'base' must name one of the named scenarios "
                              f"({', '.join(sorted(named))}), got {excerpt(base)}")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{path}: 'reason' must say why this market exists")
        out.append(UnseenMarket(f"unseen/{path.stem}", UNSEEN_PREFIX + path.stem, base,
                                reason.strip()))
    return out


def is_unseen(scenario: str | Path | ScenarioConfig) -> bool:
    """Whether ``scenario`` (a preset name, a YAML path or a loaded config) is an unseen
    market: a file under ``configs/scenarios/unseen/``, or a config loaded from one."""
    if isinstance(scenario, ScenarioConfig):
        return scenario.name.startswith(UNSEEN_PREFIX)
    path = Path(scenario)
    if path.suffix not in (".yaml", ".yml"):
        path = SCENARIO_DIR / f"{scenario}.yaml"
    return _in_unseen_dir(path)


def _in_unseen_dir(path: Path) -> bool:
    return UNSEEN_DIR.resolve() in path.resolve().parents


def load_scenario(name_or_path: str | Path | ScenarioConfig = DEFAULT_SCENARIO,
                  **overrides: Any) -> ScenarioConfig:
    """Load a preset by name (or a YAML file by path) and apply ``overrides``.

    A preset may name another with ``base: <name>`` and override some of its fields.

    :raises ConfigError: ``name_or_path`` is none of these (``None``, a number, ...), an
        unknown preset, a bad file or a bad value.
    """
    if isinstance(name_or_path, ScenarioConfig):
        return name_or_path.replace(**overrides) if overrides else name_or_path
    if not isinstance(name_or_path, (str, Path)):
        raise ConfigError(f"scenario: expected a preset name, a YAML path or a ScenarioConfig, "
                          f"got {excerpt(name_or_path)}")
    data = read_preset(name_or_path, SCENARIO_DIR, "scenario", prepare=_prepare)
    data.update(overrides)
    return from_dict(data)


def _prepare(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """One scenario file's data for its ``base:`` chain: without the keys that are not market
    parameters (:data:`PRESET_NOTES`), and named (its ``name:``, else its file stem: prefixed
    in ``unseen/``), so the top file's name wins over its base's."""
    for key in PRESET_NOTES:
        data.pop(key, None)
    data["name"] = data.pop("name", UNSEEN_PREFIX + path.stem if _in_unseen_dir(path)
                            else path.stem)
    return data


def describe_parameters() -> list[dict[str, Any]]:
    """One row per parameter (name, default, unit, range, source, doc), for the docs."""
    rows = []
    for f in dataclasses.fields(ScenarioConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append({"name": f.name, "default": default, **f.metadata})
    return rows
