"""Measure the project's speed figures and write them, with the machine, to runs/benchmarks/.

    python scripts/benchmark.py            # the full measurement (a few minutes)
    python scripts/benchmark.py --smoke    # seconds: checks the benchmark itself runs

Figures: the market model's account-days per second on one core (single account and a batch
of 4,096, every mechanic on), the whole simulator's (model + history + features + reward),
the environment's share of PPO's wall time during training (one torch thread, median of
3 runs), and the time to beat ``static``: the wall time of the README's main command
(``scripts/train.py`` with its defaults, validations included) until its validation first
shows PPO's value (the objective, profit by default) above ``static``'s, the paired 95%
interval's lower bound above 0.
Also the model's and the simulator's throughput under each code generation of the compiled
engine (portable and host, ``envs/compiled.py``), each in a fresh process: what the portable
default costs. And each second-version mechanic's cost: the batched model's throughput with
that mechanic alone switched off (``envs.config.SECOND_VERSION_SWITCHES``). And how fast
accounts are calibrated (:mod:`agents.calibration.speed`): one 90-day report fitted on one
core, and the rate of a pool of 2 worker processes (1,000 accounts' minutes). A benchmark
measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before NumPy/torch load

from agents.experiments.speed import (codegen_throughput, env_share_of_training,  # noqa: E402, I001
                          first_beat_time, machine_description, measure_throughput)
from envs.config import SECOND_VERSION_SWITCHES, ConfigError, load_scenario  # noqa: E402

def ppo_settings(large_n_envs: int, smoke: bool) -> list[tuple[str, int, dict]]:
    """The PPO settings the env share is measured at: the default training config, and a
    large batch of accounts with 8-day rollouts and minibatches of 1,024 (the env's cost per
    account-day falls with the batch, PPO's does not; docs/training.md compares how the two
    settings learn)."""
    from agents.training.config import load_train_config

    c = load_train_config("default")
    default = {"n_steps": c.ppo.n_steps, "batch_size": c.ppo.batch_size,
               "n_epochs": c.ppo.n_epochs,
               "policy_kwargs": {"net_arch": list(c.policy.net_arch),
                                 "log_std_init": c.policy.log_std_init}}
    large = dict(default, n_steps=8, batch_size=1024)
    if smoke:
        return [("default config", 8, dict(default, n_steps=16, batch_size=64))]
    return [(f"default config ({c.env.n_envs} envs x {c.ppo.n_steps} days)", c.env.n_envs,
             default),
            (f"{large_n_envs} envs x {large['n_steps']} days", large_n_envs, large)]


ALL_CORES = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _all_cores() -> None:
    """In the training subprocess: undo the one-core pin (the main command uses them all)."""
    if ALL_CORES:
        os.sched_setaffinity(0, ALL_CORES)


def _pin_one_core() -> str:
    """Run on one core where the OS allows it; say which."""
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return f"pinned to core {sorted(os.sched_getaffinity(0))[0]}"
    except (AttributeError, OSError):
        return "not pinned"


def time_to_beat(scenario: str, smoke: bool) -> dict:
    """Run the README's main command (``scripts/train.py``, defaults) and time the first
    validation that beats ``static``; smoke mode trains a few hundred steps."""
    extra = (["--timesteps", "512", "--n-envs", "4", "--set", "ppo.batch_size=84",
              "--set", "training.eval_freq=256",
              "--set", "training.eval_episodes=4", "--set", "training.checkpoint_freq=512"]
             if smoke else [])
    with tempfile.TemporaryDirectory() as runs:
        start = time.time()
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--scenario",
                               scenario, "--runs-dir", runs, "--run-name", "bench",
                               "--set", "training.progress_bar=false", *extra],
                              capture_output=True, text=True, preexec_fn=_all_cores,
                              env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())})
        wall = time.time() - start
        if done.returncode != 0:
            raise RuntimeError(f"scripts/train.py failed:\n{done.stderr[-2000:]}")
        found = first_beat_time(Path(runs) / "bench", start)
    return {"seconds": None if found is None else found[0],
            "step": None if found is None else found[1], "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="3c")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check it runs")
    parser.add_argument("--n-envs", type=int, default=1024,
                        help="accounts in the batched env for the env-share figure")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks")
    args = parser.parse_args(argv)
    try:
        cfg = load_scenario(args.scenario)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pinned = _pin_one_core()
    smoke = args.smoke
    days_batched, days_single = (5, 20) if smoke else (200, 2000)
    batch = 64 if smoke else 4096
    print(f"benchmark on {args.scenario} ({pinned}){' [smoke]' if smoke else ''}", flush=True)

    single = measure_throughput(cfg, 1, days_single, repeats=1 if smoke else 3)
    batched = measure_throughput(cfg, batch, days_batched, repeats=1 if smoke else 3)
    print(f"  model, 1 account:          {single.model_per_s:>12,.0f} account-days/s")
    print(f"  model, {batch} accounts:     {batched.model_per_s:>12,.0f} account-days/s")
    print(f"  simulator, 1 account:      {single.simulator_per_s:>12,.0f} account-days/s")
    print(f"  simulator, {batch} accounts: {batched.simulator_per_s:>12,.0f} account-days/s",
          flush=True)

    # what each second-version mechanic costs: the batched model with it alone switched off
    mechanic_costs = {}
    for name, off in SECOND_VERSION_SWITCHES.items():
        without = measure_throughput(cfg.replace(**off), batch, days_batched,
                                     repeats=1 if smoke else 3)
        # its share of the model's time per account-day: 1 - t_without / t_with
        share = 1.0 - batched.model_per_s / without.model_per_s
        mechanic_costs[name] = {"model_per_s_without": without.model_per_s,
                                "share_of_model_time": share}
        print(f"  without {name:<22} {without.model_per_s:>12,.0f} account-days/s "
              f"(it takes {share:+.1%} of the model's time)", flush=True)

    # what portable code generation costs: both settings, each in a fresh process
    by_codegen = codegen_throughput(args.scenario, batch, days_batched // 2,
                                    repeats=1 if smoke else 3)
    single_by_codegen = codegen_throughput(args.scenario, 1, days_single // 2,
                                           repeats=1 if smoke else 3)
    for name, figures in by_codegen.items():
        single_figures = single_by_codegen[name]
        print(f"  codegen {name:<8} ({figures['numba_cpu']}): simulator "
              f"{figures['simulator_per_s']:>10,.0f} ({batch} accounts), "
              f"{single_figures['simulator_per_s']:>8,.0f} (1 account); model "
              f"{figures['model_per_s']:>11,.0f} ({batch}), "
              f"{single_figures['model_per_s']:>8,.0f} (1) account-days/s", flush=True)

    from agents.training.config import load_train_config

    # the env as training uses it (the default config's scenario overrides, e.g. full actions)
    train_cfg = cfg.replace(**dict(load_train_config("default").env.overrides))
    shares = {}
    for label, n_envs, ppo in ppo_settings(args.n_envs, smoke):
        steps = 2 * n_envs * ppo["n_steps"] if smoke else 300_000
        runs = [env_share_of_training(train_cfg, ppo, n_envs, steps, seed=i)
                for i in range(1 if smoke else 3)]
        share = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        shares[label] = {"median": share, "runs": [r[0] for r in runs], "n_envs": n_envs,
                         "timesteps": steps, "ppo": ppo, "wall_s": wall}
        print(f"  env share of PPO wall time, {label}: {share:.1%} (median of {len(runs)}; "
              f"{n_envs} envs, {steps:,} steps in {wall:.1f} s, {steps / wall:,.0f} steps/s)",
              flush=True)

    # calibration: one 90-day account fitted on this core, and 2 worker processes' rate
    from agents.calibration.speed import calibration_speed

    workers = 1 if smoke else min(2, len(ALL_CORES or [1]))
    calibration = calibration_speed(1 if smoke else 20, 28 if smoke else 90, workers)
    print(f"  calibration, one {calibration['days']}-day account on one core: "
          f"{calibration['fit_wall_s']['median']:.2f} s wall, "
          f"{calibration['fit_cpu_s']['median']:.2f} s CPU (median of "
          f"{calibration['accounts']}; max {calibration['fit_wall_s']['max']:.2f} s); "
          f"{workers} workers: {calibration['pool_accounts_per_minute']:.0f} accounts/min, "
          f"1,000 accounts in {calibration['minutes_for_1000_accounts']:.1f} min", flush=True)

    beat = time_to_beat(args.scenario, smoke)
    if beat["seconds"] is None:
        print(f"  time to beat static: not within the run ({beat['wall_s']:.0f} s)")
    else:
        print(f"  time to beat static: {beat['seconds']:.0f} s (step {beat['step']:,}; "
              f"the whole main command took {beat['wall_s']:.0f} s)")

    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenario": args.scenario, "smoke": smoke, "core": pinned,
        "machine": machine_description(),
        "model_account_days_per_s": {"1": single.model_per_s, str(batch): batched.model_per_s},
        "simulator_account_days_per_s": {"1": single.simulator_per_s,
                                         str(batch): batched.simulator_per_s},
        "mechanic_costs": mechanic_costs,
        "by_codegen": {name: {str(batch): by_codegen[name], "1": single_by_codegen[name]}
                       for name in by_codegen},
        "env_share_of_training": shares,
        "time_to_beat_static": beat,
        "calibration": calibration,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"benchmark__{args.scenario}__{stamp}{'__smoke' if smoke else ''}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
