"""Anchored actions (envs.anchored) and anchored PPO (agents.policies.anchored,
agents.training.paired_env): the zero residual plays static, the edit cap keeps exploration
from restarting learning, the dashboard tells what the model counts, twins share their
account's market, and a run trains, validates and evaluates through the mapping."""

from __future__ import annotations

import numpy as np
import pytest

from agents.evaluation.rollout import episode_value, rollout
from agents.policies import make_policy
from agents.policies.anchored import AnchoredPolicy, anchor_for
from agents.training.paired_env import PairedVecEnv
from envs.anchored import (
    ANCHOR_FEATURES,
    EDIT_CAP,
    anchored_action,
    anchored_feature_names,
    edit_load,
    launch_week,
    residual_names,
)
from envs.config import ConfigError, load_scenario
from envs.history import COL, decode_features
from envs.simulator import Simulator

SEEDS = np.arange(10000, 10016)


def zero_policy(config):
    return AnchoredPolicy(lambda x: np.zeros((x.shape[0], len(residual_names(config)))),
                          config)


def test_zero_residual_plays_static():
    """The zero residual reaches and holds static's settings: its value is static's to within
    0.5% (the budget reaches the same level by slightly different steps)."""
    config = load_scenario("3c", action_space="full")
    static = episode_value(config, make_policy("static", config), SEEDS).mean()
    zero = zero_policy(config)
    mine = episode_value(config, zero, SEEDS).mean()
    assert abs(mine - static) < 0.005 * abs(static)
    anchor = anchor_for(config)
    result = rollout(zero, zero.config, SEEDS[:4], record_daily=True)
    target = anchor.target_over_breakeven * config.breakeven_roi
    assert np.allclose(result.daily["target_roi"][:, 20:], round(target, 2), atol=0.011)
    static_run = rollout(make_policy("static", config), config, SEEDS[:4], record_daily=True)
    assert np.allclose(result.daily["budget"][:, 20:], static_run.daily["budget"][:, 20:],
                       rtol=1e-6)


def test_dashboard_is_what_the_mapping_reads():
    """The dashboard's last row holds the budget in force, and its edits bound the model's
    own count from above (equal until a restart clears the model's)."""
    config = load_scenario("3c", action_space="full")
    anchor = anchor_for(config)
    sim = Simulator(config, n=16)
    obs = sim.reset(seeds=SEEDS)
    rng = np.random.default_rng(0)
    equal_days = 0
    for _ in range(84):
        history = sim.history
        assert np.allclose(history[:, -1, COL["budget"]], sim.state.budget_cny)
        load = edit_load(config, history)
        model = sim.state.recent_edits[1:].sum(axis=0)
        assert np.all(load >= model - 1e-9)
        equal_days += int(np.sum(np.isclose(load, model) & (model > 0)))
        residual = rng.normal(0.0, 0.3, size=(16, len(residual_names(config))))
        action = anchored_action(config, anchor, residual, obs, history,
                                 sim.params.launch_budget_cny)
        obs, _, done, _ = sim.step(action)
    assert equal_days > 0


def test_edit_cap_keeps_noise_from_restarting_learning():
    """Past the launch week and out of learning, noisy residuals (as PPO explores) edit only
    within the room the window's edits leave under the cap (the platform's rounding of the
    target to cents may add a little), so they never restart learning by adding up."""
    config = load_scenario("3c", action_space="full")
    anchor = anchor_for(config)
    sim = Simulator(config, n=16)
    obs = sim.reset(seeds=SEEDS)
    rng = np.random.default_rng(1)
    capped_days = edits = 0
    for _ in range(84):
        history = sim.history
        capped = ~launch_week(config, decode_features(obs))
        room = np.maximum(EDIT_CAP - edit_load(config, history), 0.0)
        residual = rng.normal(0.0, 0.5, size=(16, len(residual_names(config))))
        action = anchored_action(config, anchor, residual, obs, history,
                                 sim.params.launch_budget_cny)
        obs, _, _, _ = sim.step(action)
        today = sim.state.recent_edits[-1]  # today's edit (a restart would have cleared it)
        assert np.all(today[capped] <= room[capped] + 0.02)
        capped_days += int(capped.sum())
        edits += int(np.sum(capped & (today > 0)))
    assert capped_days > 16 * 30 and edits > 16


def test_the_floor_multiplier_reaches_accounts_and_twins():
    env = PairedVecEnv(["3c", "food"], 4, seed=0)
    env.sim.floor_multiplier = 0.7
    assert [sim.floor_multiplier for sim in env.sims] == [0.7, 0.7]
    assert env.sim.floor_multiplier == 0.7


def test_paired_env_twins_share_the_market():
    """At reset each account's twin sees exactly the account's observation; the learner sees
    the env's features and the anchor's; zero residuals earn nearly the twin's reward."""
    env = PairedVecEnv(["3c", "beauty"], 6, seed=3)
    obs = env.reset()
    assert obs.shape == (6, len(anchored_feature_names(env.config)))
    assert anchored_feature_names(env.config)[-len(ANCHOR_FEATURES):] == ANCHOR_FEATURES
    for sim, raw, k in zip(env.sims, env._raw, env.sizes, strict=True):
        assert np.array_equal(raw[:k], raw[k:])
        assert np.array_equal(sim.params.pool_mean_roi[:k], sim.params.pool_mean_roi[k:])
    own, paired = 0.0, 0.0
    for _ in range(84):
        env.step_async(np.zeros((6, env.action_space.shape[0])))
        _, reward, dones, infos = env.step_wait()
        paired += float(np.abs(reward).sum())
    assert dones.all() and "episode" in infos[0] and "episode_metrics" in infos[0]
    own = float(np.abs([info["episode"]["r"] for info in infos]).sum())
    assert paired < 0.05 * own


def test_anchor_config_is_checked():
    from agents.training.config import load_train_config

    with pytest.raises(ConfigError, match="paired_reward"):
        load_train_config(sets=["env.anchor=none", "env.paired_reward=true"])
    with pytest.raises(ConfigError, match="env.anchor"):
        load_train_config(sets=["env.anchor=oracle"])


def test_anchored_run_trains_validates_and_plays(tiny_anchored_run):
    """A tiny anchored run: validation and evaluation play it through the mapping (its zero
    start is static, so it is close to static at once); it loads for export
    (tests/test_export.py exports it)."""
    from agents.evaluation.evaluate import PolicySource
    from agents.export.checkpoint import load_checkpoint

    run = tiny_anchored_run
    scenario = load_scenario("3c", action_space="full")
    policy, played_on = PolicySource("ppo", run_dir=run).build(scenario)
    assert isinstance(policy, AnchoredPolicy) and played_on.action_space == "full"
    static = episode_value(scenario, make_policy("static", scenario), SEEDS[:8]).mean()
    mine = episode_value(scenario, policy, SEEDS[:8]).mean()
    assert abs(mine - static) < 0.1 * abs(static)
    loaded = load_checkpoint(run)
    assert loaded.anchored and loaded.scenario.action_space == "full"
