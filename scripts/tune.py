"""Tune PPO with Optuna: trials train with the project's train() and are scored against the
playbook on the validation seeds; start as many workers as you like on one study.

    python scripts/tune.py --study-name lr1 --n-trials 30              # SQLite in runs/tune__lr1/
    python scripts/tune.py --study-name lr1                            # a 2nd worker joins
    python scripts/tune.py --study-name lr1 --storage postgresql://user:pw@db:5432/optuna
    python scripts/tune.py --study-name lr1 --export-best tuned_3c     # configs/ppo/tuned_3c.yaml
    python scripts/tune.py --space my_space --set training.total_timesteps=20480
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.run_folder import RunError  # noqa: E402
from agents.tune.queue import HeartbeatSettings, TuneError  # noqa: E402
from agents.tune.space import DEFAULT_SPACE, list_spaces, load_space  # noqa: E402
from agents.tune.tuning import export_best, summarize, tune  # noqa: E402
from envs.config import ConfigError  # noqa: E402


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """Arguments every queue worker takes (shared with scripts/sweep.py)."""
    parser.add_argument("--study-name", required=True,
                        help="the study; workers with the same name and storage share it")
    parser.add_argument("--storage", help="any Optuna RDB URL (default: SQLite "
                        "runs/<kind>__<study>/study.db); e.g. postgresql://user:pw@host/db")
    parser.add_argument("--runs-dir", default="runs", help="where study folders live")
    parser.add_argument("--heartbeat", type=int, default=30, metavar="S",
                        help="seconds between a running trial's heartbeats (default 30)")
    parser.add_argument("--grace", type=int, default=120, metavar="S",
                        help="silence after which a trial's worker counts as dead and the "
                        "trial is retried (default 120)")
    parser.add_argument("--max-retry", type=int, default=3,
                        help="retries of a trial whose workers keep dying (default 3)")
    parser.add_argument("--max-trials-here", type=int, metavar="N",
                        help="this worker stops after N trials (the rest stay queued)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    add_worker_args(parser)
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
    try:
        heartbeat = HeartbeatSettings(args.heartbeat, args.grace, args.max_retry)
        space = load_space(args.space, sets=args.set)
        result = tune(space, args.study_name, args.storage, args.n_trials, args.runs_dir,
                      heartbeat, max_trials=args.max_trials_here,
                      log=lambda line: print(line, flush=True))
        print(summarize(result.study))
        print(f"trial run folders: {result.folder}   (TensorBoard: tensorboard --logdir "
              f"{result.folder})")
        if args.export_best:
            path = export_best(result.study, args.export_best, force=args.force)
            print(f"best trial's config: {path}   (train it: python scripts/train.py "
                  f"--config {path.stem})")
    except (ConfigError, TuneError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted: {exc}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
