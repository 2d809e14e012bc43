"""The simulator's two engines (envs.compiled): Numba-compiled and plain NumPy run the same
source and must give the same episodes."""

from __future__ import annotations

import numpy as np
import pytest

from envs.compiled import ENGINE_VARIABLE, compiled, engine
from envs.config import load_scenario
from envs.simulator import Simulator


def _episode(scenario: str, engine_name: str, days: int, seeds=None):
    """Observations, rewards and infos of ``days`` days with random full actions."""
    cfg = load_scenario(scenario, action_space="full")
    sim = Simulator(cfg, n=6, engine=engine_name)
    if seeds is None:
        obs = [sim.reset(np.random.default_rng(7))]
        rng = np.random.default_rng(8)
    else:
        obs, rng = [sim.reset(seeds=seeds)], None
    actions = np.random.default_rng(9).uniform(-1.2, 1.2, (days, 6, sim.action_dim))
    rewards, infos = [], []
    for day in range(days):
        o, r, done, info = sim.step(actions[day], rng=rng)
        obs.append(o)
        rewards.append(r)
        infos.append(info)
        if done:
            break
    return np.array(obs), np.array(rewards), infos


@pytest.mark.parametrize("scenario", ["3c", "promo_heavy", "tight_balance"])
def test_engines_agree_over_an_episode(scenario):
    days = load_scenario(scenario).episode_days
    obs_c, rew_c, info_c = _episode(scenario, "numba", days)
    obs_p, rew_p, info_p = _episode(scenario, "numpy", days)
    np.testing.assert_allclose(obs_c, obs_p, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rew_c, rew_p, rtol=1e-9, atol=1e-12)
    for key in ("gmv", "spend", "orders", "refunds", "settled_gmv", "balance", "learning"):
        np.testing.assert_allclose([i[key] for i in info_c], [i[key] for i in info_p],
                                   rtol=1e-9, equal_nan=True, err_msg=key)
    last_c, last_p = info_c[-1], info_p[-1]
    assert "episode_metrics" in last_c and "episode_metrics" in last_p
    for key, value in last_p["episode_metrics"].items():
        np.testing.assert_allclose(last_c["episode_metrics"][key], value, rtol=1e-9,
                                   err_msg=key)
    for key, value in last_p["episode_reward_terms"].items():
        np.testing.assert_allclose(last_c["episode_reward_terms"][key], value, rtol=1e-9,
                                   atol=1e-6, err_msg=key)


def test_engines_agree_with_per_account_seeds():
    seeds = list(range(10000, 10006))
    obs_c, rew_c, _ = _episode("3c", "numba", 30, seeds)
    obs_p, rew_p, _ = _episode("3c", "numpy", 30, seeds)
    np.testing.assert_allclose(obs_c, obs_p, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rew_c, rew_p, rtol=1e-9, atol=1e-12)


def test_batch_equals_single_accounts_compiled():
    """A compiled batch of accounts evolves as the same accounts run one by one."""
    cfg = load_scenario("3c", action_space="full")
    seeds = [10000, 10001, 10002]
    batch = Simulator(cfg, n=3)
    obs = [batch.reset(seeds=seeds)]
    singles = [Simulator(cfg, n=1) for _ in seeds]
    single_obs = [[s.reset(seeds=[seed])] for s, seed in zip(singles, seeds, strict=True)]
    actions = np.random.default_rng(1).uniform(-1, 1, (20, 3, batch.action_dim))
    for day in range(20):
        obs.append(batch.step(actions[day])[0])
        for i, s in enumerate(singles):
            single_obs[i].append(s.step(actions[day, i:i + 1])[0])
    for i in range(3):
        np.testing.assert_array_equal(np.array(obs)[:, i], np.array(single_obs[i])[:, 0])


def test_numpy_engine_needs_no_compilation(monkeypatch):
    def kernel(x):
        return x + 1

    monkeypatch.setenv(ENGINE_VARIABLE, "numpy")
    assert engine() == "numpy"
    assert compiled(kernel) is kernel


def test_unknown_engine_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(ENGINE_VARIABLE, "cython")
    with pytest.raises(ValueError, match=f"{ENGINE_VARIABLE}='cython'"):
        engine()


def test_bad_action_is_still_an_error_on_the_compiled_path():
    sim = Simulator(load_scenario("3c"), n=2)
    sim.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN or infinite"):
        sim.step(np.array([[0.0, np.nan], [0.0, 0.0]]), rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="components"):
        sim.step(np.zeros((2, 3)), rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="3 rows for 2 accounts"):
        sim.step(np.zeros((3, sim.action_dim)), rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="draws have shape"):
        sim.step(np.zeros((2, sim.action_dim)), draws=np.zeros((2, 2)))
    # nothing was written by the refused steps: the batch still steps normally
    assert sim.step(np.zeros((2, sim.action_dim)), rng=np.random.default_rng(1))[0].shape[0] == 2


def test_observations_keep_their_memory_layout():
    """Fortran order, as before compilation: VecNormalize's running mean sums in memory
    order, so a different layout changes training in the last bits."""
    sim = Simulator(load_scenario("3c"), n=5)
    assert sim.reset(np.random.default_rng(0)).flags.f_contiguous
    obs = sim.step(np.zeros((5, sim.action_dim)), rng=np.random.default_rng(1))[0]
    assert obs.flags.f_contiguous
