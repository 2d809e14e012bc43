"""Search the tuned baselines on training seeds and store them in configs/baselines/.

    python scripts/search_baselines.py                       # re-make every file (2 workers)
    python scripts/search_baselines.py --scenarios 3c --objectives profit --trials 300
    python scripts/search_baselines.py --study-name b1 --storage postgresql://u:pw@db:5432/optuna
    python scripts/search_baselines.py --study-name b1 --storage postgresql://u:pw@db:5432/optuna \\
        --join                                               # a worker on another machine

Each Optuna study is one job of the shared trial queue (agents/experiments/baseline_jobs.py): for
each scenario and objective, a TPE study of the best fixed settings (static: target /
break-even, plan shares, budget / launch budget, refresh interval) on the first --seeds
training seeds, --trials trials; the static rule's one k per objective over every named
scenario (--no-rule skips it); then one study per tuned controller (agents.policies.tuned
SPACES: set point, gains or steps) on the static settings just found. --workers local
processes share the queue; workers on other machines join with the same --storage and
--study-name (--join: the settings come from the storage). A dead worker's study is retried
once its heartbeat is stale. When every study is done, this command (never a --join
worker) writes <out-dir>/<scenario>.yaml and static_rule.yaml atomically, each entry with
this command, the env version, its trials, seeds and value. Run it again with the same
--study-name to resume; without one, a fresh search starts (runs/baselines__<time>/).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from agents.experiments.baseline_jobs import (
    collect,
    default_search_name,
    describe_result,
    make_search,
    run_search,
    write_results,
)
from agents.experiments.cli import heartbeat_settings, log_line, run_cli, worker_parser
from agents.experiments.queue import TuneError
from agents.experiments.study import safe_command
from agents.policies.baseline_store import BASELINE_DIR
from envs.config import OBJECTIVES

SEARCH_OPTIONS = ("scenarios", "objectives", "trials", "seeds", "no_rule")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = worker_parser(__doc__, kind="baselines", study_required=False, job="studies")
    parser.add_argument("--scenarios", nargs="+", help="named scenarios (default: all)")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES,
                        help="default: all")
    parser.add_argument("--trials", type=int, help="trials per study (default 300)")
    parser.add_argument("--seeds", type=int, help="training seeds 0..N-1 (default 128)")
    parser.add_argument("--no-rule", action="store_true", default=None,
                        help="skip the static rule's k")
    parser.add_argument("--workers", type=int, default=2,
                        help="local worker processes (default 2)")
    parser.add_argument("--join", action="store_true",
                        help="only work on an existing search (its settings from the "
                        "storage); never writes the files")
    parser.add_argument("--out-dir", type=Path, default=BASELINE_DIR,
                        help="where the YAML files go (default configs/baselines/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/search_baselines.py", *safe_command(argv)])

    def body() -> None:
        heartbeat = heartbeat_settings(args)
        if args.join and not args.study_name:
            raise TuneError("--join: give the --study-name (and --storage) of the search "
                            "to join")
        given = any(getattr(args, key) is not None for key in SEARCH_OPTIONS)
        search = None if args.join and not given else make_search(
            args.scenarios, args.objectives, args.trials, args.seeds, rule=not args.no_rule)
        if not args.join:
            try:
                args.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TuneError(f"--out-dir {args.out_dir}: {exc.strerror}") from None
        run = run_search(search, args.study_name or default_search_name(), args.storage,
                         args.runs_dir, heartbeat, args.workers, join=args.join,
                         max_jobs=args.max_trials_here, record={"command": command},
                         log=log_line)
        if args.join:
            print(f"this worker ran {run.ran} studies; {run.unfinished} not finished yet")
            return
        if run.unfinished:
            print(f"{run.unfinished} studies not finished yet: nothing written; run this "
                  f"command again with --study-name {run.name} to finish and write them")
            return
        results = collect(run.storage, run.name)
        paths = write_results(results, command, args.out_dir)
        for result in results:
            print(describe_result(result))
        print(f"wrote {', '.join(p.name for p in paths)} in {args.out_dir}")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
