"""The simulator's two engines (envs.compiled): Numba-compiled and plain NumPy run the same
source and must give the same episodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.compiled import (
    CODEGEN_VARIABLE,
    ENGINE_VARIABLE,
    build_facts,
    cache_dir,
    cache_key,
    codegen,
    compiled,
    engine,
    target_cpu,
)
from envs.config import load_scenario
from envs.simulator import Simulator


def _episode(scenario: str, engine_name: str, days: int, seeds=None, **overrides):
    """Observations, rewards and infos of ``days`` days with random full actions
    (``overrides``: scenario fields, e.g. a mechanic's switch)."""
    cfg = load_scenario(scenario, action_space="full", **overrides)
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


def assert_close_at_scale(actual, desired, err_msg: str, rel: float = 1e-9) -> None:
    """Equal to ``rel`` of the quantity's own size: relative tolerance ``rel`` plus an absolute
    one of ``rel`` x the largest magnitude in ``desired``, so values at or near zero (an empty
    balance, an unsettled day) compare sensibly. The engines run the same source but may use
    different maths libraries (NumPy's SIMD exp/log against the C library's), so they agree to
    rounding, not bit for bit, and rounding near zero is not a relative error."""
    actual, desired = np.asarray(actual, dtype=float), np.asarray(desired, dtype=float)
    finite = np.isfinite(desired)
    scale = float(np.abs(desired[finite]).max()) if finite.any() else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rel, atol=rel * scale, equal_nan=True,
                               err_msg=err_msg)


@pytest.mark.parametrize(("scenario", "mechanic"), [
    ("3c", {}), ("promo_heavy", {}), ("tight_balance", {}),
    ("3c", {"estimation_noise_enabled": True}),
    ("promo_heavy", {"estimation_noise_enabled": True, "relearn_cumulative_enabled": True,
                     "starvation_enabled": True, "market_drift_enabled": True,
                     "warmup_stock_enabled": True, "peak_discount_enabled": True,
                     "return_handling_enabled": True, "terminal_value_days": 28,
                     "whole_site_enabled": True}),
    ("promo_heavy", {"warmup_stock_enabled": True, "peak_discount_enabled": True,
                     "return_handling_enabled": True}),
    ("3c", {"whole_site_enabled": True}),
    ("tight_balance", {"whole_site_enabled": True, "whole_site_exclusive": True})],
    ids=["3c", "promo_heavy", "tight_balance", "3c-estimation_noise",
         "promo_heavy-every_second_version_mechanic", "promo_heavy-promotions_v2",
         "3c-whole_site", "tight_balance-whole_site_exclusive"])
def test_engines_agree_over_an_episode(scenario, mechanic):
    days = load_scenario(scenario).episode_days
    obs_c, rew_c, info_c = _episode(scenario, "numba", days, **mechanic)
    obs_p, rew_p, info_p = _episode(scenario, "numpy", days, **mechanic)
    assert_close_at_scale(obs_c, obs_p, "observations")
    assert_close_at_scale(rew_c, rew_p, "rewards")
    for key in ("gmv", "spend", "orders", "refunds", "settled_gmv", "balance", "learning"):
        assert_close_at_scale([i[key] for i in info_c], [i[key] for i in info_p], key)
    last_c, last_p = info_c[-1], info_p[-1]
    assert "episode_metrics" in last_c and "episode_metrics" in last_p
    for key, value in last_p["episode_metrics"].items():
        assert_close_at_scale(last_c["episode_metrics"][key], value, key)
    for key, value in last_p["episode_reward_terms"].items():
        assert_close_at_scale(last_c["episode_reward_terms"][key], value, key)


def test_engines_agree_with_per_account_seeds():
    seeds = list(range(10000, 10006))
    obs_c, rew_c, _ = _episode("3c", "numba", 30, seeds)
    obs_p, rew_p, _ = _episode("3c", "numpy", 30, seeds)
    assert_close_at_scale(obs_c, obs_p, "observations")
    assert_close_at_scale(rew_c, rew_p, "rewards")


def test_scaled_tolerance_means_something_at_zero():
    """The comparison passes rounding at zero and fails a real difference there."""
    balance = np.array([80000.0, 1234.5, 0.0])
    assert_close_at_scale(balance + [0.0, 0.0, -4.5e-13], balance, "rounding at zero")
    with pytest.raises(AssertionError):
        assert_close_at_scale(balance + [0.0, 0.0, 1.0], balance, "one yuan at zero")
    with pytest.raises(AssertionError):
        assert_close_at_scale(balance * (1 + 1e-6), balance, "a relative error")


@pytest.mark.parametrize("engine_name", ["numba", "numpy"])
def test_same_engine_same_seed_is_identical(engine_name):
    """Strict where strictness is real: one engine, one machine, one seed, bit for bit."""
    first = _episode("tight_balance", engine_name, 60, list(range(10000, 10006)))
    again = _episode("tight_balance", engine_name, 60, list(range(10000, 10006)))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    for key in ("spend", "balance", "settled_gmv"):
        np.testing.assert_array_equal([i[key] for i in first[2]], [i[key] for i in again[2]])


@pytest.mark.parametrize("overrides", [{}, {"whole_site_enabled": True}],
                         ids=["first_version", "whole_site"])
def test_batch_equals_single_accounts_compiled(overrides):
    """A compiled batch of accounts evolves as the same accounts run one by one."""
    cfg = load_scenario("3c", action_space="full", **overrides)
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


# ------------------------------------------------------------------ code generation and cache
@pytest.fixture
def no_numba_cpu_variables(monkeypatch):
    for name in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_portable_code_generation_targets_a_generic_cpu(no_numba_cpu_variables):
    monkeypatch = no_numba_cpu_variables
    monkeypatch.delenv(CODEGEN_VARIABLE, raising=False)
    assert codegen() == "portable" and target_cpu() == ("generic", "")
    monkeypatch.setenv(CODEGEN_VARIABLE, "host")
    name, features = target_cpu()
    assert name != "generic" and features, "host code generation names this CPU"
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")  # an explicit Numba setting wins
    assert target_cpu() == ("generic", "")
    monkeypatch.setenv(CODEGEN_VARIABLE, "native")
    with pytest.raises(ValueError, match=f"{CODEGEN_VARIABLE}='native'"):
        codegen()


def test_cache_key_covers_versions_and_target_cpu(no_numba_cpu_variables):
    facts = build_facts()
    assert {"numba", "llvmlite", "numpy", "python", "cpu", "cpu_features"} <= set(facts)
    key = cache_key(facts)
    assert cache_key(dict(facts)) == key
    for name, other in (("numba", "0.0.1"), ("llvmlite", "0.0.1"), ("numpy", "9.9.9"),
                        ("python", "3.99.0"), ("cpu", "skylake-avx512"),
                        ("cpu_features", "+avx512f,+fma")):
        assert cache_key({**facts, name: other}) != key, name
    monkeypatch = no_numba_cpu_variables
    monkeypatch.setenv(CODEGEN_VARIABLE, "portable")
    portable = cache_dir()
    monkeypatch.setenv(CODEGEN_VARIABLE, "host")
    assert cache_dir() != portable and cache_dir().parent == portable.parent
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere")  # a chosen place is keyed too
    assert cache_dir() == Path("/somewhere") / cache_key()


PROBE = """
import json, sys
import numpy as np
import envs.compiled as c
if len(sys.argv) > 1:  # pretend another Numba release built this process
    real = c.toolchain_versions
    c.toolchain_versions = lambda: {**real(), "numba": sys.argv[1]}
import probe_kernel
kernel = c.compiled(probe_kernel.scaled_sum, "numba")
kernel(np.ones(8))
import numba
print(json.dumps({"dir": str(c.cache_dir()), "cpu": numba.config.CPU_NAME,
                  "hits": sum(kernel.stats.cache_hits.values()),
                  "misses": sum(kernel.stats.cache_misses.values())}))
"""


def test_compiled_code_is_never_served_to_another_cpu_or_numba(tmp_path):
    """End to end in fresh processes: the second portable run loads the cache; host code
    generation or another Numba version compiles anew, into a directory of its own."""
    (tmp_path / "probe_kernel.py").write_text(
        "def scaled_sum(x):\n    return (x * 2.5).sum()\n")
    root = Path(__file__).resolve().parent.parent

    def run(codegen_name: str, *argv: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
        env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), QIANCHUAN_NUMBA_CPU=codegen_name,
                   PYTHONPATH=os.pathsep.join([str(tmp_path), str(root)]))
        done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, again = run("portable"), run("portable")
    assert (first["misses"], again["hits"], again["misses"]) == (1, 1, 0)
    assert first["cpu"] == "generic" and first["dir"] == again["dir"]
    host = run("host")
    assert host["cpu"] != "generic" and host["misses"] == 1 and host["hits"] == 0
    assert host["dir"] != first["dir"]
    other_numba = run("portable", "0.0.1")
    assert other_numba["misses"] == 1 and other_numba["hits"] == 0
    assert other_numba["dir"] not in (first["dir"], host["dir"])
