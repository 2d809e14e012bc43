"""recommend's settings are the env's decision: a simulated account's report and an action
give, through ``recommend`` (report -> history -> :mod:`agents.serving.guards`), exactly the
target, budget and plan shares the env's own mapping gives (:func:`envs.actions.to_decision`,
the decision the simulator enters), platform limits included; and the promotion features of
a report's dates are the env's calendar. The raw ONNX and anchored ONNX
policies are checked the same way in ``test_recommend.py`` and ``test_serving_anchored.py``
(:func:`assert_is_env_decision`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from agents.serving.inputs import parse_promotions, promotion_phase
from agents.serving.recommend import RecommendOptions, recommend_files
from agents.serving.report import write_report
from agents.serving.simulated import SimulatedAccount, dated_account
from envs.actions import PLANS, plan_names, to_decision
from envs.calendar import PromoCalendar
from envs.config import load_scenario
from envs.market import Decision
from envs.simulator import Simulator

ACCOUNTS = 4


def assert_is_env_decision(answer: dict, decision: Decision, account: int = 0) -> None:
    """``answer`` (a recommendation's ``policy`` part) enters exactly the env's ``decision``
    for ``account``: target, budget and, in the ``full`` space, every plan's share and the
    refresh (the env's shares of plans the scenario lacks are 0)."""
    got = answer["recommended"]
    assert got["target_roi"] == decision.target_roi[account]
    assert got["budget_cny"] == decision.budget_cny[account]
    if "share_payment_roi" not in got:  # basic: the shares are held, as the env holds them
        return
    shares = [got.get(f"share_{plan}", 0.0) for plan in PLANS]
    assert shares == decision.shares[account].tolist()
    assert got["creative_refresh"] == bool(decision.refresh[account])


def recommend_account(policy, account: SimulatedAccount, folder: Path,
                      **options) -> dict:
    """``recommend`` on the account's report as Qianchuan shows it: the answer's ``policy``
    part (every guard of serving's own off: the settings are the platform's limits only)."""
    path = write_report(folder / "shop.csv", account.dates, account.columns())
    recs, _ = recommend_files(policy, [path], RecommendOptions(
        promo_dates=account.promo_dates, compare=None, act_while_learning=True, **options))
    return recs[0].to_dict()["policy"]


class FixedAction:
    """A policy whose next answer is :attr:`action` (1, action_dim), whatever it sees."""

    name = "fixed"

    def __init__(self, config):
        self.config = config
        self.action = None

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.action, state


def simulated(cfg, days: int = 20, seed: int = 10200) -> Simulator:
    """:data:`ACCOUNTS` accounts ``days`` days after launch, moved by random actions."""
    sim = Simulator(cfg, n=ACCOUNTS)
    sim.reset(seeds=list(range(seed, seed + ACCOUNTS)))
    rng = np.random.default_rng(seed)
    for _ in range(days):
        sim.step(rng.uniform(-1.0, 1.0, (ACCOUNTS, sim.action_dim)))
    return sim


@pytest.mark.parametrize("overrides, days", [
    ({}, 20),  # the default: full actions, the whole-site plan
    ({"whole_site_enabled": False}, 20),
    ({"action_space": "basic"}, 20),
    # two days in, the platform's limits bind: targets above 100 or below 0.01, budgets
    # under 300
    ({"launch_target_roi": 90.0, "launch_budget_cny": 320.0}, 2),
    ({"launch_target_roi": 0.011, "action_space": "basic"}, 2),
], ids=["full", "no_whole_site", "basic", "high_target_low_budget", "low_target"])
def test_recommended_settings_are_the_envs_decision(tmp_path, overrides, days):
    cfg = load_scenario("3c", **overrides)
    sim = simulated(cfg, days)
    policy = FixedAction(cfg)
    rng = np.random.default_rng(7)
    actions = [np.ones(sim.action_dim), -np.ones(sim.action_dim), np.zeros(sim.action_dim),
               *rng.uniform(-1.3, 1.3, (3, sim.action_dim))]  # beyond [-1, 1]: clipped
    limits = set()
    for i in range(ACCOUNTS):
        account = dated_account(sim, account=i)
        for action in actions:
            batch = np.tile(action, (ACCOUNTS, 1))
            decision = to_decision(cfg, sim.state, batch)  # the simulator's own mapping
            policy.action = action[None]
            answer = recommend_account(policy, account, tmp_path)
            assert_is_env_decision(answer, decision, i)
            limits |= {note["guard"] for note in answer["guards"]}
            assert len(answer["recommended"]) == (2 if cfg.action_space == "basic"
                                                  else len(plan_names(cfg)) + 3)
    assert limits <= {"target_range", "target_two_decimals", "budget_minimum"}
    if "launch_budget_cny" in overrides:
        assert {"target_range", "budget_minimum"} <= limits
    if overrides.get("launch_target_roi") == 0.011:
        assert "target_range" in limits


@pytest.mark.parametrize("scenario", ["3c", "promo_heavy"])
def test_promotion_phase_of_a_date_is_the_envs_calendar(scenario):
    cfg = load_scenario(scenario)
    calendar = PromoCalendar.from_config(cfg)
    launch = dt.date(2025, 6, 1)
    peaks = parse_promotions(",".join(
        (launch + dt.timedelta(days=start)).isoformat() for start in cfg.promo_peak_days),
        cfg.promo_peak_length_days)
    assert peaks and cfg.promotions_enabled
    for day in range(-cfg.history_days, cfg.episode_days + 1):
        row = calendar.index(np.array([day]))[0]
        assert promotion_phase(launch + dt.timedelta(days=day), peaks) == (
            calendar.days_to_peak[row], calendar.in_peak[row], calendar.days_after_peak[row])
