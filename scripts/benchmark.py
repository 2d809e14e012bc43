"""Measure the project's speed figures and write them, with the machine, to runs/benchmarks/.

    python scripts/benchmark.py            # the full measurement (a few minutes)
    python scripts/benchmark.py --smoke    # seconds: checks the benchmark itself runs

Figures: the market model's account-days per second on one core (single account and a batch
of 4,096, every mechanic on), the whole simulator's (model + history + features + reward),
and the environment's share of PPO's wall time during training (one torch thread, median of
3 runs). A benchmark measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before NumPy/torch load

from agents.speed import env_share_of_training, machine_description, measure_throughput  # noqa: E402, I001
from envs.config import ConfigError, load_scenario  # noqa: E402

# PPO settings for the env-share figure: the defaults of configs/ppo/default.yaml where that
# exists, else these (a batched env with many accounts, short rollouts).
ENV_SHARE_PPO = {"n_steps": 16, "batch_size": 4096, "n_epochs": 5,
                 "policy_kwargs": {"net_arch": [64, 64]}}


def _pin_one_core() -> str:
    """Run on one core where the OS allows it; say which."""
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return f"pinned to core {sorted(os.sched_getaffinity(0))[0]}"
    except (AttributeError, OSError):
        return "not pinned"


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

    n_envs = 8 if smoke else args.n_envs
    ppo = dict(ENV_SHARE_PPO, batch_size=min(ENV_SHARE_PPO["batch_size"],
                                             n_envs * ENV_SHARE_PPO["n_steps"]))
    steps = 2 * n_envs * ppo["n_steps"] if smoke else 300_000
    runs = [env_share_of_training(cfg, ppo, n_envs, steps, seed=i)
            for i in range(1 if smoke else 3)]
    share = statistics.median(r[0] for r in runs)
    wall = statistics.median(r[1] for r in runs)
    print(f"  env share of PPO wall time: {share:.1%} (median of {len(runs)}; {n_envs} envs, "
          f"{steps:,} steps in {wall:.1f} s, {steps / wall:,.0f} steps/s)", flush=True)

    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenario": args.scenario, "smoke": smoke, "core": pinned,
        "machine": machine_description(),
        "model_account_days_per_s": {"1": single.model_per_s, str(batch): batched.model_per_s},
        "simulator_account_days_per_s": {"1": single.simulator_per_s,
                                         str(batch): batched.simulator_per_s},
        "env_share_of_training": {"median": share, "runs": [r[0] for r in runs],
                                  "n_envs": n_envs, "timesteps": steps, "ppo": ppo,
                                  "wall_s": wall},
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
