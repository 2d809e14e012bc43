"""Speed measurements: the market model's throughput and the env's share of PPO's wall time.

Used by ``scripts/benchmark.py``. These are measurements, not tests: nothing here asserts.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.config import ScenarioConfig
from envs.market import Decision, MarketModel
from envs.simulator import Simulator, warm_up


@dataclass
class Throughput:
    """Account-days per second (median over repeats) and the batch size it was measured at."""

    n_accounts: int
    model_per_s: float  # MarketModel.step alone
    simulator_per_s: float  # model + history + features + reward + metrics


def _time_model(cfg: ScenarioConfig, n: int, days: int) -> float:
    model = MarketModel(cfg)
    rng = np.random.default_rng(0)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    decision = Decision(state.target_roi.copy(), state.budget_cny.copy(), state.shares.copy(),
                        np.zeros(n, dtype=bool))
    draws = rng.standard_normal((days, n, model.n_draws))
    start = time.perf_counter()
    for d in range(days):
        state, _ = model.step(state, params, decision, draws[d])
        if state.day[0] >= cfg.episode_days:
            state.day[:] = 0
    return n * days / (time.perf_counter() - start)


def _time_simulator(cfg: ScenarioConfig, n: int, days: int) -> float:
    sim = Simulator(cfg, n)
    rng = np.random.default_rng(0)
    sim.reset(rng)
    actions = np.zeros((n, sim.action_dim), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(days):
        _, _, done, _ = sim.step(actions, rng=rng)
        if done:
            sim.reset(rng)
    return n * days / (time.perf_counter() - start)


def measure_throughput(cfg: ScenarioConfig, n: int, days: int, repeats: int = 3) -> Throughput:
    """Median account-days/s of the model and of the whole simulator at batch size ``n``."""
    _time_model(cfg, n, 2)  # build the pool table and warm caches outside the timing
    model = statistics.median(_time_model(cfg, n, days) for _ in range(repeats))
    sim = statistics.median(_time_simulator(cfg, n, days) for _ in range(repeats))
    return Throughput(n, model, sim)


_THROUGHPUT_CHILD = """
import json, sys
from agents.experiments.speed import measure_throughput
from envs.compiled import codegen_description
from envs.config import load_scenario
from envs.simulator import warm_up
warm_up()  # compile or load outside the timing
scenario, n, days, repeats = sys.argv[1], *map(int, sys.argv[2:])
t = measure_throughput(load_scenario(scenario), n, days, repeats)
print(json.dumps({"model_per_s": t.model_per_s, "simulator_per_s": t.simulator_per_s,
                  "numba_cpu": codegen_description().get("numba_cpu")}))
"""


def codegen_throughput(scenario: str, n: int, days: int, repeats: int = 3) -> dict[str, dict]:
    """Account-days/s of the model and the simulator under each code generation
    (``$QIANCHUAN_NUMBA_CPU``: portable and host), each in a fresh process on the caller's
    cores, since Numba fixes its target CPU once per process. Compiling for a setting not yet
    cached takes a minute or two, outside the timing."""
    from envs.compiled import CODEGEN_VARIABLE, CODEGENS

    root = Path(__file__).resolve().parents[2]
    out = {}
    for name in CODEGENS:
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME",
                                                                "NUMBA_CPU_FEATURES")}
        env[CODEGEN_VARIABLE] = name
        done = subprocess.run([sys.executable, "-c", _THROUGHPUT_CHILD, scenario, str(n),
                               str(days), str(repeats)], cwd=root, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"throughput with {CODEGEN_VARIABLE}={name} failed:\n"
                               f"{done.stderr[-2000:]}")
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def env_share_of_training(cfg: ScenarioConfig, ppo_kwargs: dict, n_envs: int, timesteps: int,
                          seed: int = 0) -> tuple[float, float]:
    """Train PPO for ``timesteps`` and return (env seconds / wall seconds, wall seconds).

    The env's time is everything inside the batched env's ``reset`` and ``step_wait``
    (model, history, features, reward, auto-reset), measured by a thin wrapper; the rest is
    PPO (rollout bookkeeping, policy forward passes, gradient updates) and normalisation.
    Loading the simulator's compiled code (:mod:`envs.compiled`; compiling it, the first
    time on a machine) happens before the clock starts.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

    from envs.vec_env import QianchuanVecEnv

    class _Timed(VecEnvWrapper):
        def __init__(self, venv):
            super().__init__(venv)
            self.seconds = 0.0

        def reset(self):
            t = time.perf_counter()
            obs = self.venv.reset()
            self.seconds += time.perf_counter() - t
            return obs

        def step_wait(self):
            t = time.perf_counter()
            out = self.venv.step_wait()
            self.seconds += time.perf_counter() - t
            return out

    torch.set_num_threads(1)
    # load (or, once per machine, compile) the simulator's compiled code before timing
    warm_up()
    timed = _Timed(QianchuanVecEnv(cfg, n_envs=n_envs, seed=seed))
    venv = VecNormalize(timed, norm_obs=True, norm_reward=True)
    model = PPO("MlpPolicy", venv, seed=seed, verbose=0, **ppo_kwargs)
    start = time.perf_counter()
    model.learn(timesteps)
    wall = time.perf_counter() - start
    return timed.seconds / wall, wall


def machine_description() -> dict[str, Any]:
    """The run folders' machine context (CPU, engine, code generation, SIMD paths, code-path
    variables) plus the toolchain's versions and the platform: the context of a
    measurement."""
    from agents.run_folder import machine_context
    from envs.compiled import toolchain_versions

    context = machine_context()
    return {**context, "cores": str(context["cores"]), **toolchain_versions(),
            "simulator_engine": context["engine"], "platform": platform.platform()}


BEAT_TAG = "eval/ppo_vs_static/value_diff_ci_low"  # agents.training.tensorboard.comparison_tags


def first_beat_time(run_dir, started_at: float, tag: str = BEAT_TAG) -> tuple[float, int] | None:
    """Wall seconds from ``started_at`` (a ``time.time()``) until the run's validation first
    showed PPO beating ``static`` (the paired 95% lower bound of the difference in the run's
    objective value above 0), and the training step it happened at; None if it never did.
    """
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = []
    for path in sorted(Path(run_dir, "tb").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            events += acc.Scalars(tag)
    for event in sorted(events, key=lambda e: e.step):
        if event.value > 0:
            return event.wall_time - started_at, event.step
    return None
