"""The Gymnasium env: API checks, determinism, batch equals singles, actions, info, docs."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401
from envs.config import load_scenario
from envs.history import FEATURE_NAMES, feature_names
from envs.market import MarketModel, MarketState
from envs.metrics import EPISODE_METRICS
from envs.qianchuan_env import QianchuanBiddingEnv
from envs.reward import TERMINAL_VALUE
from envs.simulator import INFO_KEYS, Simulator
from envs.vec_env import QianchuanVecEnv


@pytest.mark.parametrize("space", ["basic", "full"])
def test_gymnasium_and_sb3_checks_pass(space):
    env = gym.make("QianchuanBidding-v1", action_space=space).unwrapped
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(QianchuanBiddingEnv(action_space=space), warn=True)


def rollout_env(seed, steps=84, scenario="3c", **kw):
    env = gym.make("QianchuanBidding-v1", scenario=scenario, **kw)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample() * 0
                                                            + rng.uniform(-1, 1, 2))
        trace.append(np.append(obs, reward))
        if truncated:
            break
    return np.concatenate(trace), info


def test_same_seed_same_rollout_and_other_seed_differs():
    a, _ = rollout_env(7)
    b, _ = rollout_env(7)
    c, _ = rollout_env(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_episode_truncates_with_metrics_and_reward_sums_to_profit():
    for charging in ("on_landing", "on_order"):
        env = gym.make("QianchuanBidding-v1", refund_charging=charging)
        env.reset(seed=3)
        total, days = 0.0, 0
        while True:
            obs, reward, terminated, truncated, info = env.step(np.array([0.1, -0.2]))
            total += reward
            days += 1
            assert not terminated
            assert set(INFO_KEYS) <= set(info)
            if truncated:
                break
        assert days == 84
        metrics = info["episode_metrics"]
        # the end is valued by default: the rewards sum to profit plus the final state's value
        assert set(metrics) == set(EPISODE_METRICS) | {TERMINAL_VALUE}
        scale = env.unwrapped.config.reward_scale_cny
        assert total * scale == pytest.approx(metrics["profit"] + metrics[TERMINAL_VALUE],
                                              rel=1e-9)
        settled = metrics["gmv"] * (1 - metrics["refund_rate"])
        assert metrics["settled_gmv"] == pytest.approx(settled)
        assert sum(info["reward_terms"].values()) / scale == pytest.approx(reward)


def test_gmv_floor_objective_penalises_shortfall():
    env = gym.make("QianchuanBidding-v1", objective="gmv_floor", settlement_roi_floor=6.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([-1.0, 1.0]))
    assert set(info["reward_terms"]) == {"settled_gmv", "floor_penalty", TERMINAL_VALUE}
    assert info["reward_terms"]["floor_penalty"] < 0


def test_bad_actions_raise_and_out_of_range_clips():
    env = gym.make("QianchuanBidding-v1")
    env.reset(seed=0)
    for bad in ([np.nan, 0.0], [0.0, np.inf]):
        with pytest.raises(ValueError, match="NaN or infinite"):
            env.step(np.array(bad))
    with pytest.raises(ValueError, match="components"):
        env.step(np.zeros(3))
    a = gym.make("QianchuanBidding-v1")
    b = gym.make("QianchuanBidding-v1")
    a.reset(seed=1)
    b.reset(seed=1)
    oa, ra, _, _, ia = a.step(np.array([5.0, -9.0]))
    ob, rb, _, _, ib = b.step(np.array([1.0, -1.0]))
    np.testing.assert_array_equal(oa, ob)
    assert ra == rb and ia["target_roi"] == ib["target_roi"] and ia["budget"] == ib["budget"]
    cfg = a.unwrapped.config
    assert ia["target_roi"] == pytest.approx(round(cfg.launch_target_roi * 1.25, 2))
    assert ia["budget"] == pytest.approx(cfg.launch_budget_cny / 1.5)


def test_step_after_the_episode_ends_or_before_reset_needs_a_reset():
    """Stepping past the truncation kept simulating days 8, 9, ... with rewards; now it raises
    as Gymnasium's OrderEnforcing wrapper does before the first reset."""
    from gymnasium.error import ResetNeeded

    for env in (QianchuanBiddingEnv(episode_days=7),
                gym.make("QianchuanBidding-v1", episode_days=7)):
        if env is env.unwrapped:
            with pytest.raises(ResetNeeded, match="call reset"):
                env.step(np.zeros(2))
        env.reset(seed=0)
        truncated = False
        for _ in range(7):
            assert not truncated
            _, _, _, truncated, _ = env.step(np.zeros(2))
        assert truncated
        with pytest.raises(ResetNeeded, match=r"call reset\(\) .*truncated after 7 days"):
            env.step(np.zeros(2))
        assert env.unwrapped.sim.state.day[0] == 7, "the refused step simulated nothing"
        env.reset(seed=0)
        env.step(np.zeros(2))  # a new episode steps again


BAD_ACTIONS = [
    (0.5, r"shape \(\)"),
    (None, "real numbers"),
    ("ab", "real numbers"),
    (np.array([0.5 + 1j, 0.2]), "complex numbers"),
    ([True, False], "real numbers"),
    ([[0.1, [0.2]]], "real numbers"),
    (np.zeros((1, 2, 1)), r"shape \(1, 2, 1\)"),
]


@pytest.mark.parametrize("action, words", BAD_ACTIONS, ids=[
    "scalar", "none", "string", "complex", "bool", "ragged", "3d"])
def test_actions_that_are_not_real_vectors_are_named_value_errors(action, words):
    """A scalar or None gave IndexError; a complex action lost its imaginary part silently.
    The one check (envs.actions.action_batch) serves the env, the vectorised env and a mix."""
    import warnings

    env = QianchuanBiddingEnv()
    env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: refused, not cast
        with pytest.raises(ValueError, match=words):
            env.step(action)
    for venv in (QianchuanVecEnv("3c", n_envs=1, seed=0),
                 QianchuanVecEnv(["3c", "food"], n_envs=2, seed=0)):
        venv.reset()
        batch = action if venv.num_envs == 1 else [action] * venv.num_envs
        with pytest.raises(ValueError, match="action"):
            venv.step(batch)
    env.step(np.zeros((1, 2)))
    assert env.sim.state.day[0] == 1, "the refused actions simulated nothing"


def test_platform_limits_apply_after_the_step():
    env = gym.make("QianchuanBidding-v1", launch_target_roi=0.011, launch_budget_cny=310.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([-1.0, -1.0]))
    assert info["target_roi"] == 0.01 and info["budget"] == 300.0


PROMOTIONS_V2 = {"warmup_stock_enabled": True, "peak_discount_enabled": True,
                 "return_handling_enabled": True, "promo_peak_days": (12,)}
# whole-site promotion with a budget share (the launch shares are what the accounts hold)
WHOLE_SITE = {"whole_site_enabled": True, "launch_shares": (0.3, 0.1, 0.2, 0.4)}


@pytest.mark.parametrize("mechanics", [
    {},
    {"estimation_noise_enabled": True},
    # cumulative re-learning and conversion starvation, on a small pool so that plans starve
    {"relearn_cumulative_enabled": True, "starvation_enabled": True, "pool_cost_cny": 3000.0},
    {"market_drift_enabled": True},
    {"estimation_noise_enabled": True, "relearn_cumulative_enabled": True,
     "starvation_enabled": True, "market_drift_enabled": True, "pool_cost_cny": 3000.0,
     **PROMOTIONS_V2, **WHOLE_SITE},
    # promotions v2, with a peak within the 30 days (warm-up days 5..11, peak 12..14)
    PROMOTIONS_V2,
    WHOLE_SITE,
    {**WHOLE_SITE, "whole_site_exclusive": True},
], ids=["first_version", "estimation_noise", "learning_v2", "moving_market", "all",
        "promotions_v2", "whole_site", "whole_site_exclusive"])
def test_batch_of_n_equals_n_single_runs_bit_for_bit(mechanics):
    """The model with explicit draws: a batch of accounts equals the accounts one by one
    (with each second-version mechanic switched on too)."""
    cfg = load_scenario("3c", randomize=0.3, **mechanics)
    model = MarketModel(cfg)
    n, days = 5, 30
    rngs = [np.random.default_rng(s) for s in range(n)]
    singles = []
    for r in rngs:
        p = model.sample_params(r, 1)
        singles.append((p, model.launch(model.initial_state(p, r), p)))
    params = type(singles[0][0]).stack([p for p, _ in singles])
    batch = MarketState.stack([s for _, s in singles])
    draws = np.random.default_rng(99).standard_normal((days, n, model.n_draws))
    actions = np.random.default_rng(5).uniform(0.8, 1.2, (days, n))
    from envs.market import Decision
    for t in range(days):
        def dec(s, a):
            return Decision(np.round(s.target_roi * a, 2), s.budget_cny * a, s.shares,
                            np.zeros(s.day.shape, bool))
        batch, out = model.step(batch, params, dec(batch, actions[t]), draws[t])
        for i, (p, s) in enumerate(singles):
            s, o = model.step(s, p, dec(s, actions[t, i:i + 1]), draws[t, i:i + 1])
            singles[i] = (p, s)
            for field in ("spend", "gmv", "orders", "refunds", "settled_gmv", "credit",
                          "incremental_gmv", "engaged_gmv"):
                assert getattr(out, field)[i] == getattr(o, field)[0], (t, i, field)
    for i, (_, s) in enumerate(singles):
        np.testing.assert_array_equal(batch.refund_pipe[..., i], s.refund_pipe[..., 0])
        np.testing.assert_array_equal(batch.recent_edits[..., i], s.recent_edits[..., 0])
        np.testing.assert_array_equal(batch.recent_orders[..., i], s.recent_orders[..., 0])
        assert batch.learn_failed[i] == s.learn_failed[0]
        for field in ("roi_drift", "cost_drift", "roi_regime", "cost_regime",
                      "engaged_buyers"):
            assert getattr(batch, field)[i] == getattr(s, field)[0], (i, field)


@pytest.mark.parametrize("overrides", [{}, {"market_drift_enabled": True}, PROMOTIONS_V2],
                         ids=["default", "moving_market", "promotions_v2"])
def test_seeded_batch_equals_gym_envs(overrides):
    """The simulator seeded per account reproduces the Gymnasium env seed by seed."""
    seeds = [11, 12, 13]
    sim = Simulator(load_scenario("3c", **overrides), n=3)
    obs = sim.reset(seeds=seeds)
    singles = [gym.make("QianchuanBidding-v1", **overrides) for _ in seeds]
    first = [e.reset(seed=s)[0] for e, s in zip(singles, seeds, strict=True)]
    np.testing.assert_array_equal(obs, np.stack(first))
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        obs, reward, _, _ = sim.step(act)
        for i, e in enumerate(singles):
            o, r, *_ = e.step(act[i])
            np.testing.assert_array_equal(obs[i], o)
            assert reward[i] == r


def test_vec_env_steps_and_resets_like_sb3_expects():
    venv = QianchuanVecEnv("3c", n_envs=4, seed=0, episode_days=10)
    obs = venv.reset()
    assert obs.shape == (4, len(feature_names(load_scenario("3c"))))
    for _ in range(10):
        obs, rewards, dones, infos = venv.step(np.zeros((4, 2), np.float32))
    assert dones.all()
    assert all("episode_metrics" in i and "terminal_observation" in i for i in infos)
    assert infos[0]["episode"]["l"] == 10
    assert venv.sim.state.day[0] == 0, "auto-reset to launch day"


def test_observation_is_only_dashboard_features_and_documented():
    env = gym.make("QianchuanBidding-v1")
    names = env.unwrapped.feature_names  # the first version's, then whole-site's share
    assert names == feature_names(load_scenario("3c"))
    assert names == (*FEATURE_NAMES, "share_whole_site")
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (len(names),)
    assert obs.dtype == np.float32 and np.all(np.isfinite(obs))
    doc = QianchuanBiddingEnv.__doc__
    for name in names:
        stem = name.rstrip("0123456789").removesuffix("_d")
        documented = (f"| {name} |" in doc) or (f"| {stem}_d1 " in doc)
        assert documented, name
    assert f"({len(FEATURE_NAMES)},)" in doc and f"({len(names)},)" in doc


def test_scenario_mix_splits_accounts_and_matches_single_scenarios():
    from envs.simulator import ScenarioMix

    names = ["3c", "food", "beauty"]
    configs = [load_scenario(n, episode_days=12) for n in names]
    mix = ScenarioMix(configs, n=7)
    assert [s.n for s in mix.sims] == [3, 2, 2]
    obs = mix.reset(seeds=list(range(7)))
    alone = Simulator(configs[1], n=2)
    np.testing.assert_array_equal(obs[3:5], alone.reset(seeds=[3, 4]))
    act = np.zeros((7, 2), np.float32)
    for _ in range(12):
        obs, reward, done, info = mix.step(act)
        o2, r2, d2, i2 = alone.step(act[3:5])
    assert done and d2
    np.testing.assert_array_equal(reward[3:5], r2)
    np.testing.assert_array_equal(info["episode_metrics"]["profit"][3:5],
                                  i2["episode_metrics"]["profit"])
    assert info["episode_reward_terms"]["spend"].shape == (7,)
    with pytest.raises(ValueError, match="episode_days"):
        ScenarioMix([load_scenario("3c"), load_scenario("food", episode_days=30)], 4)
    venv = QianchuanVecEnv(names, n_envs=6, seed=0, episode_days=12)
    venv.reset()
    for _ in range(12):
        _, _, dones, infos = venv.step(np.zeros((6, 2), np.float32))
    assert dones.all() and "episode_reward_terms" in infos[5]


def test_floor_multiplier_adds_a_lagrangian_term_only_when_set():
    sim = Simulator(load_scenario("3c", settlement_roi_floor=8.0), n=4)
    sim.reset(seeds=[0, 1, 2, 3])
    _, r0, _, info0 = sim.step(np.zeros((4, 2)))
    assert "floor_lagrangian" not in info0["reward_terms"]
    sim.reset(seeds=[0, 1, 2, 3])
    sim.floor_multiplier = 0.5
    _, r1, _, info1 = sim.step(np.zeros((4, 2)))
    penalty = info1["reward_terms"]["floor_lagrangian"]
    assert np.all(penalty < 0)
    np.testing.assert_allclose(r1, r0 + penalty / sim.cfg.reward_scale_cny)
