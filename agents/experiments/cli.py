"""Command-line pieces shared by the queue workers ``scripts/tune.py`` and ``scripts/sweep.py``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from agents.experiments.queue import HeartbeatSettings, TuneError
from agents.run_folder import RunError
from envs.config import ConfigError


def worker_parser(doc: str, kind: str = "<tune|sweep>", study_required: bool = True,
                  job: str = "trials") -> argparse.ArgumentParser:
    """A command's parser (description and examples from its docstring) with the worker
    arguments: the study, its storage and the dead-worker settings.

    :param kind: the study folder's prefix in the help (``runs/<kind>__<study>/``).
    :param study_required: whether ``--study-name`` must be given (else the command names a
        fresh study itself).
    :param job: what one queue slot is, in the help (trials, studies).
    """
    lines = doc.splitlines()
    parser = argparse.ArgumentParser(description=lines[0], epilog="\n".join(lines[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-name", required=study_required,
                        help="the study; workers with the same name and storage share it"
                        + ("" if study_required else
                           " (default: a fresh one named by the local time)"))
    parser.add_argument("--storage", help="any Optuna RDB URL (default: SQLite "
                        f"runs/{kind}__<study>/study.db), e.g. "
                        "postgresql://user:password@host:5432/db")
    parser.add_argument("--runs-dir", default="runs", help="where study folders live")
    parser.add_argument("--heartbeat", type=int, default=30, metavar="S",
                        help="seconds between a running trial's heartbeats (default 30)")
    parser.add_argument("--grace", type=int, default=120, metavar="S",
                        help="silence after which a trial's worker counts as dead and the "
                        "trial is retried (default 120)")
    parser.add_argument("--max-retry", type=int, default=3,
                        help="retries of a trial whose workers keep dying (default 3)")
    parser.add_argument("--max-trials-here", type=int, metavar="N",
                        help=f"this worker stops after N {job} (the rest stay queued)")
    return parser


def heartbeat_settings(args: argparse.Namespace) -> HeartbeatSettings:
    return HeartbeatSettings(args.heartbeat, args.grace, args.max_retry)


def log_line(line: str) -> None:
    print(line, flush=True)


def run_cli(body: Callable[[], None]) -> int:
    """Run a command's body: bad input is one ``error:`` line and exit code 2; Ctrl-C is 130
    (the interrupted trial goes back to the queue)."""
    try:
        body()
    except (ConfigError, TuneError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted: {exc}", file=sys.stderr)
        return 130
    return 0
