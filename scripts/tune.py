"""Tune PPO with Optuna: any number of workers, on one machine or many, share one study.

Each trial trains with the project's train() and is scored by the paired difference PPO -
static on the run's objective (profit, or the gmv_floor reward in CNY; CNY per episode) on the
validation seeds; hopeless trials are pruned at periodic validations on the same difference.

    python scripts/tune.py --study-name lr1 --n-trials 30              # SQLite in runs/tune__lr1/
    python scripts/tune.py --study-name lr1                            # a 2nd worker joins
    python scripts/tune.py --study-name lr1 --storage postgresql://user:pw@db:5432/optuna
    python scripts/tune.py --study-name lr1 --export-best tuned_3c     # configs/ppo/tuned_3c.yaml
    python scripts/tune.py --study-name small --set training.total_timesteps=20480
"""

from __future__ import annotations

import argparse
import sys

from agents.experiments.cli import heartbeat_settings, log_line, run_cli, worker_parser
from agents.experiments.space import DEFAULT_SPACE, list_spaces, load_space
from agents.experiments.study import describe_study_run
from agents.experiments.tuning import export_best, tune


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = worker_parser(__doc__)
    parser.add_argument("--space", default=DEFAULT_SPACE, help="search space in configs/tune/"
                        f" or a YAML path (spaces: {', '.join(list_spaces())})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed config value for every trial, e.g. "
                        "training.total_timesteps=20480 (repeatable)")
    parser.add_argument("--n-trials", type=int, help="trials the study asks for (default: "
                        "the existing study's, else 20)")
    parser.add_argument("--export-best", metavar="NAME", help="when the study is done, write "
                        "the best trial's config to configs/ppo/NAME.yaml")
    parser.add_argument("--force", action="store_true", help="--export-best may replace an "
                        "existing preset")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> None:
        space = load_space(args.space, sets=args.set)
        run = tune(space, args.study_name, args.storage, args.n_trials, args.runs_dir,
                   heartbeat_settings(args), max_trials=args.max_trials_here, log=log_line)
        objective = space.base_config.scenario_config().objective
        print(describe_study_run(run, f"PPO - {space.base_config.training.baseline}, "
                                 f"{objective} value, CNY per validation episode"))
        if args.export_best:
            path = export_best(run.study, args.export_best, force=args.force)
            print(f"best trial's config: {path}   (train it: python scripts/train.py "
                  f"--config {path.stem})")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
