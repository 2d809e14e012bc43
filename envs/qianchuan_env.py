"""The Gymnasium environment ``QianchuanBidding-v1``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from envs import ENV_ID  # noqa: F401  (re-exported; registered in envs/__init__.py)
from envs.actions import action_names
from envs.config import ScenarioConfig, load_scenario
from envs.history import HISTORY_DAYS_REQUIRED, OBS_BOUND, feature_names
from envs.simulator import INFO_KEYS, Simulator
from envs.version import ENV_VERSION  # noqa: E402,F401  (re-exported)


def _scalar(x: np.ndarray) -> Any:
    v = x[0]
    return bool(v) if isinstance(v, np.bool_) else float(v)


class QianchuanBiddingEnv(gym.Env):
    """Daily payment-ROI target and budget decisions for one Qianchuan advertiser.

    ## Description
    One step is one day. Each morning the agent changes the account's payment-ROI target
    (one value shared by the ROI-controlled plans) and its daily budget; the platform's
    auto-bidder then buys traffic from a stochastic pool whose volume trades against ROI
    (``envs/pool.py``), with an imperfect bidder, learning periods, refunds that land over
    7 days, organic carry-over, promotions, creative fatigue and a finite account balance
    (``envs/market.py``; every mechanic is described in ``docs/market-model.md``).

    ## Action Space
    ``Box(-1, 1, (2,))`` for ``action_space="basic"``: ``[target change, budget change]``.
    A change ``a`` sets ``new = old * (1 + max_step) ** a`` (``target_max_step`` 0.25,
    ``budget_max_step`` 0.5 by default), then platform limits apply: target 0.01-100 with two
    decimals, budget >= 300 CNY. In ``basic``, creatives are refreshed on a fixed schedule.
    ``Box(-1, 1, (6,))`` for ``"full"`` adds the weights of the payment_roi, settlement_roi and
    volume plans (shares = ``share_range ** a``, normalised) and a creative refresh (``> 0``);
    with ``whole_site_enabled`` it is ``Box(-1, 1, (7,))``: ``weight_whole_site`` (weight
    ``share_range ** a - 1 / share_range``, 0 at ``a = -1``) comes before the refresh.
    ``env.unwrapped.action_names`` names the components.
    Out-of-range values are clipped; NaN or infinite values, anything but real numbers
    (``None``, complex numbers) and any other shape (a scalar) raise ``ValueError``.

    ## Observation Space
    ``Box(-100, 100, (43,), float32)`` of scale-free features from the dashboard history
    (``envs/history.py``; ``env.unwrapped.feature_names``), ``(44,)`` with
    ``whole_site_enabled`` (``share_whole_site`` last). Nothing hidden enters: no pool
    parameters, no true refund rate of recent orders.

    | feature | unit | meaning |
    |---|---|---|
    | roi_d1 .. roi_d7 | GMV/spend | payment ROI 1..7 days ago (0 without spend) |
    | spend_to_budget_d1 .. _d7 | ratio | spend / budget 1..7 days ago |
    | roi_7d | GMV/spend | payment ROI over the last 7 days |
    | roi_prev_7d | GMV/spend | payment ROI over the 7 days before those |
    | log_gmv_trend | log ratio | ln(mean GMV last 3 days / last 7 days) |
    | log_spend_trend | log ratio | ln(mean spend last 3 days / last 7 days) |
    | target_roi | GMV/spend | payment-ROI target in force |
    | breakeven_roi | GMV/spend | break-even payment ROI, 1/(margin (1 - refund rate)) |
    | log_target_to_roi_7d | log ratio | ln(target / 7-day ROI) |
    | log_target_to_breakeven | log ratio | ln(target / break-even ROI) |
    | log_budget_to_spend_7d | log ratio | ln(budget / mean daily spend over 7 days) |
    | log_budget_to_spend_d1 | log ratio | ln(budget / yesterday's spend) |
    | refund_rate_7d | share | refunds landed in 7 days / GMV of days 2-8 ago |
    | settlement_roi_d7 | settled GMV/spend | settlement ROI of the newest settled day |
    | settlement_roi_7d | settled GMV/spend | settlement ROI of the 7 newest settled days |
    | learning | 0/1 | plan is in its learning period |
    | learn_failed | 0/1 | plan failed to leave learning (throttled) |
    | interrupted_d1 | 0/1 | delivery stopped yesterday on an empty balance |
    | orders_3d | orders/20 | orders in the last 3 days |
    | plan_age_days | days/28 | days since the plan's launch |
    | days_since_target_change | days/7 | days the target has been unchanged (max 14) |
    | creative_age_days | days/28 | age of the creative set |
    | days_to_promo | days/7 | days to the next promotion peak (max 30) |
    | in_promo | 0/1 | the day being decided is a peak day |
    | days_after_promo | days/7 | days since the last peak ended (max 30) |
    | balance_days | days/10 | balance / mean daily spend (max 60) |
    | share_payment_roi | share | budget share of payment-ROI plans |
    | share_settlement_roi | share | budget share of settlement-ROI plans |
    | share_volume | share | budget share of volume plans |
    | weekday_sin | - | sin(2 pi weekday / 7) of the day being decided |
    | weekday_cos | - | cos(2 pi weekday / 7) of the day being decided |
    | share_whole_site | share | budget share of the whole-site plan (whole_site_enabled) |

    ## Rewards
    ``objective="profit"`` (default): contribution profit in CNY / ``reward_scale_cny``:
    margin x (incremental GMV - refunds on it) - spend + cost-protection credit - creative
    refresh cost. Incremental GMV is ad GMV net of cannibalisation, plus the whole-site uplift
    and the organic carry-over lift. Refunds count as they land; those pending at the end are
    charged on the last day (or all on the order day with ``refund_charging="on_order"``), so
    the episode's sum is the settled profit. ``objective="gmv_floor"``: settled GMV minus a
    penalty per CNY of settled GMV below the settlement-ROI floor. ``info["reward_terms"]``
    holds the terms in CNY.

    ## Starting State
    A new plan's launch day: the account's previous 14 days (a mature plan at the typical
    target) are simulated as history; the plan starts LEARNING with fresh creatives, the
    launch target and budget, and the scenario's initial balance. With ``randomize > 0`` the
    account's economics are drawn around the scenario's values each episode.

    ## Episode End
    Truncation after ``episode_days`` (84 by default: exploration, stable and mature phases
    and a promotion). There is no terminal state. On the last step ``info`` carries
    ``episode_metrics``: profit, gmv, settled_gmv, spend, payment_roi, settlement_roi,
    refund_rate, learning_days, interruptions, roi_floor_violation_days. ``step()`` after the
    end (or before the first ``reset()``) raises ``gymnasium.error.ResetNeeded``.

    ## Arguments
    ``gymnasium.make("QianchuanBidding-v1", scenario="3c", **overrides)``: ``scenario`` is a
    preset name from ``configs/scenarios/``, a YAML path or a ``ScenarioConfig`` (anything
    else raises ``ConfigError``); any scenario field may be overridden by keyword (unknown
    keys raise ``ConfigError``).
    ``render_mode="ansi"`` returns the day's line as text.

    ## Version History
    * v0: first release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, scenario: str | ScenarioConfig = "3c", render_mode: str | None = None,
                 **overrides: Any):
        self.config = load_scenario(scenario, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not one of "
                             f"{self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.sim = Simulator(self.config, n=1)
        self.feature_names = feature_names(self.config)
        self.action_names = action_names(self.config)
        self.history_days_required = HISTORY_DAYS_REQUIRED
        self.action_space = spaces.Box(-1.0, 1.0, (self.sim.action_dim,), np.float32)
        self.observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (len(self.feature_names),),
                                            np.float32)
        self._last_info: dict[str, Any] = {}
        self._needs_reset = True  # before the first reset and after the episode's last day

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs = self.sim.reset(self.np_random)
        self._last_info = {}
        self._needs_reset = False
        return obs[0], {"breakeven_roi": float(self.sim.params.breakeven_roi[0])}

    def step(self, action):
        if self._needs_reset:  # as Gymnasium's OrderEnforcing wrapper, also past the end
            raise ResetNeeded("call reset() before step(): " + (
                "no episode has started" if self.sim.state is None else
                f"the episode ended (truncated after {self.config.episode_days} days)"))
        obs, reward, done, raw = self.sim.step(action, rng=self.np_random)
        self._needs_reset = done
        info: dict[str, Any] = {k: _scalar(raw[k]) for k in INFO_KEYS}
        info["reward_terms"] = {k: float(v[0]) for k, v in raw["reward_terms"].items()}
        info["shares"] = raw["shares"][0].tolist()
        info["refresh"] = bool(raw["refresh"][0])
        if done:
            info["episode_metrics"] = {k: float(v[0]) for k, v in raw["episode_metrics"].items()}
        self._last_info = info
        return obs[0], float(reward[0]), False, done, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        i = self._last_info
        if not i:
            return "launch day: no results yet"
        return (f"day {int(self.sim.state.day[0]) - 1:3d} target {i['target_roi']:.2f} "
                f"budget {i['budget']:9.0f} spend {i['spend']:9.0f} gmv {i['gmv']:10.0f} "
                f"roi {i['payment_roi']:.2f} refunds {i['refunds']:8.0f} "
                f"{'LEARNING' if i['learning'] else ''}")
