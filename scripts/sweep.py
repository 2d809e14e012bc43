"""Sweep PPO configs x scenarios x seeds through a shared Optuna storage (any number of
workers, on one machine or many), then aggregate with rliable intervals (IQM, 95% CI).

    python scripts/sweep.py --study-name s1 --configs default --scenarios 3c beauty --seeds 0 1 2
    python scripts/sweep.py --study-name s1 --configs default --scenarios 3c beauty --seeds 0 1 2 \\
        --storage postgresql://user:pw@db:5432/optuna          # the same command on each machine
    python scripts/sweep.py --study-name s1 ... --aggregate-only   # rewrite the aggregate
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.sweep import (  # noqa: E402
    describe_aggregate,
    make_grid,
    sweep,
    write_aggregate,
)
from agents.tune.cli import add_worker_args, heartbeat_settings, log_line, run_cli  # noqa: E402
from agents.tune.tuning import load_study, study_dir, summarize  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    add_worker_args(parser)
    parser.add_argument("--configs", nargs="+", default=["default"],
                        help="PPO presets (configs/ppo/) or YAML paths")
    parser.add_argument("--scenarios", nargs="+", default=["3c"],
                        help="scenario presets (configs/scenarios/) or YAML paths")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="training seeds (default 0 1 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every cell, e.g. "
                        "training.total_timesteps=50000 (repeatable)")
    parser.add_argument("--eval-episodes", type=int, default=16,
                        help="report seeds (from 10000) each cell is evaluated on")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="do not train: write the aggregate of a finished sweep")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> None:
        grid = make_grid(args.configs, args.scenarios, args.seeds, args.set,
                         args.eval_episodes)
        if args.aggregate_only:
            study, _ = load_study(args.study_name, args.storage, args.runs_dir, kind="sweep")
            aggregate = write_aggregate(study, grid, study_dir(args.runs_dir, "sweep",
                                                               args.study_name))
            print(describe_aggregate(aggregate))
            return
        result = sweep(grid, args.study_name, args.storage, args.runs_dir,
                       heartbeat_settings(args), max_trials=args.max_trials_here, log=log_line)
        print(summarize(result.study, value="PPO - playbook profit, CNY per report episode"))
        if result.aggregate is not None:
            print(describe_aggregate(result.aggregate))
            print(f"aggregate: {result.folder / 'aggregate.json'}, "
                  f"{result.folder / 'summary.csv'}")
        print(f"run folders: {result.folder}   (TensorBoard: tensorboard --logdir "
              f"{result.folder})")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
