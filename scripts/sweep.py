"""Sweep PPO configs x scenarios x seeds: any number of workers share one queue of cells.

When every cell is done, one aggregate with rliable intervals (IQM and mean, 95% CI).

    python scripts/sweep.py --study-name s1 --configs default --scenarios 3c beauty --seeds 0 1 2
    python scripts/sweep.py --study-name s1 --configs default --scenarios 3c beauty --seeds 0 1 2 \\
        --storage postgresql://user:pw@db:5432/optuna          # the same command on each machine
    python scripts/sweep.py --study-name s1 ... --aggregate-only   # rewrite the aggregate
"""

from __future__ import annotations

import argparse
import sys

from agents.experiments.cli import heartbeat_settings, log_line, run_cli, worker_parser
from agents.experiments.study import describe_study_run, load_study, study_dir
from agents.experiments.sweep import (
    AGGREGATE_JSON,
    SUMMARY_CSV,
    describe_aggregate,
    make_grid,
    sweep,
    write_aggregate,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = worker_parser(__doc__)
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
        run, aggregate = sweep(grid, args.study_name, args.storage, args.runs_dir,
                               heartbeat_settings(args), max_trials=args.max_trials_here,
                               log=log_line)
        print(describe_study_run(run, "PPO - playbook profit, CNY per report episode"))
        if aggregate is not None:
            print(describe_aggregate(aggregate))
            print(f"aggregate: {run.folder / AGGREGATE_JSON}, {run.folder / SUMMARY_CSV}")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
