"""Reproduce docs/results.md: PPO on every scenario and objective x 3 training seeds, one
policy across all scenarios per objective x 3 seeds, every heuristic, the tuned baselines and
the oracle, benchmarked on the report seeds and on the unseen markets.

    python scripts/results.py                      # = make results (resumable: rerun continues)
    python scripts/results.py --scenarios 3c food --seeds 0 --workers 1 --objectives profit
    python scripts/results.py --timesteps 800000 --out /tmp/results.md

The tuned baselines are read from configs/baselines/ (scripts/search_baselines.py makes them).

Trained runs live in runs/results/ (a finished run is reused; an interrupted one continues
from its last checkpoint); results.json and summary.csv land there too.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from agents.evaluation.results import (
    EPISODES,
    RESULTS_MD,
    RUNS_DIR,
    TRAINING_SEEDS,
    make_results,
)
from agents.policies.baseline_store import BaselineError
from agents.run_folder import RunError
from agents.training.interrupt import InterruptedTrainingError
from envs.config import OBJECTIVES, ConfigError, list_scenarios
from envs.seeds import REPORT_SEED


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--scenarios", nargs="+", default=None,
                        help=f"scenario names (default: all: {', '.join(list_scenarios())})")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(TRAINING_SEEDS),
                        help="training seeds")
    parser.add_argument("--workers", type=int, default=2,
                        help="training processes at a time, one torch thread each (on 2 "
                        "cores, 2 train 1.96x as fast as 1: measured)")
    parser.add_argument("--timesteps", type=int, help="steps of every per-scenario run "
                        "(default: its preset's)")
    parser.add_argument("--mix-timesteps", type=int, help="steps of every cross-scenario run "
                        "(default: configs/ppo/all_scenarios.yaml's)")
    parser.add_argument("--no-mix", action="store_true", help="skip the cross-scenario policy")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES,
                        help="train and score on each (default: both)")
    parser.add_argument("--no-unseen", action="store_true",
                        help="skip the unseen markets (configs/scenarios/unseen/)")
    parser.add_argument("--episodes", type=int, default=EPISODES, help="report seeds per scenario")
    parser.add_argument("--seed", type=int, default=REPORT_SEED, help="first report seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key of every run (as scripts/train.py)")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where the runs live")
    parser.add_argument("--out", type=Path, default=RESULTS_MD, help="the markdown report")
    parser.add_argument("--bootstrap-reps", type=int, default=2000,
                        help="bootstrap resamples per interval")
    return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> str | None:
    """A message for the first bad argument, or None."""
    if args.workers < 1:
        return f"--workers must be at least 1, got {args.workers}"
    if args.episodes < 2:
        return f"--episodes must be at least 2 (intervals need a spread), got {args.episodes}"
    if args.seed < 0 or any(s < 0 for s in args.seeds):
        return "--seed and --seeds must be >= 0"
    if len(set(args.seeds)) != len(args.seeds):
        return f"--seeds {args.seeds} repeats a seed"
    if args.bootstrap_reps < 100:
        return f"--bootstrap-reps must be at least 100, got {args.bootstrap_reps}"
    for flag in ("timesteps", "mix_timesteps"):
        if getattr(args, flag) is not None and getattr(args, flag) <= 0:
            return f"--{flag.replace('_', '-')} must be > 0"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    values = ({"training.total_timesteps": args.timesteps} if args.timesteps else {})
    mix_values = ({"training.total_timesteps": args.mix_timesteps} if args.mix_timesteps
                  else {})
    command = ("make results" if argv is None and len(sys.argv) == 1
               else shlex.join(["python", "scripts/results.py", *(sys.argv[1:] if argv is None
                                                                  else argv)]))
    try:
        out = make_results(args.scenarios, tuple(args.seeds), args.workers, args.episodes,
                           args.seed, args.runs_dir, args.out, not args.no_mix, values,
                           mix_values, tuple(args.set), args.bootstrap_reps, command,
                           tuple(dict.fromkeys(args.objectives)), not args.no_unseen,
                           log=lambda text: print(text, flush=True))
    except (ConfigError, RunError, BaselineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, InterruptedTrainingError):
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return 130
    print(f"wrote {out} (and {args.runs_dir}/results.json, summary.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
