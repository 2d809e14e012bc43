"""Fit the market model to one account's daily report, and check it on held-out days.

    python scripts/calibrate.py --history report.csv --out fits/my_shop
    python scripts/calibrate.py --history 报表.xlsx --out fits/shop --base beauty \
        --breakeven-roi 4.8 --promo-dates 2025-06-16

Writes ``DIR/fit.json`` (every parameter: value, 90% interval, unit, identified or left to
the prior), ``DIR/scenario.yaml`` (a preset for train.py, evaluate.py and tune.py),
``DIR/validation.json`` and ``DIR/validation.png`` (the last 14 days held out and forecast).
The report is read as ``recommend`` reads it (Chinese headers, GBK, xlsx). Bad input is
reported naming the file, row and column, exits with code 2, and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is faster

from agents.calibration.pipeline import (  # noqa: E402
    ADAPT_MIN_REPORT_DAYS,
    CalibrationInputs,
    calibrate_report,
)
from agents.serving.errors import ServingError  # noqa: E402
from envs.config import ConfigError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--history", required=True, help="the account's daily report (.csv, .xlsx)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder to write (new, empty, or an earlier calibration's)")
    p.add_argument("--base", default="3c", help="the scenario supplying what the report "
                   "cannot show, and the prior's centre (default: %(default)s)")
    money = p.add_mutually_exclusive_group()
    money.add_argument("--margin", type=float,
                       help="contribution margin on settled GMV, 0-1 (default: the base's)")
    money.add_argument("--breakeven-roi", type=float,
                       help="break-even payment ROI (the margin follows from the fitted "
                       "refund rate)")
    p.add_argument("--promo-dates", help="promotion peaks in the report: YYYY-MM-DD or "
                   "YYYY-MM-DD..YYYY-MM-DD, comma-separated")
    p.add_argument("--seed", type=int, default=0, help="the forecast's draws (default 0)")
    p.add_argument("--adapt-anchor", action=argparse.BooleanOptionalAction, default=None,
                   help="tune the shipped profit policy's anchor on the fitted market "
                   "(anchor.json, about 10 s; recommend --fit then plays it), or not "
                   "(--no-adapt-anchor: the base's anchor). Default: on reports of at least "
                   f"{ADAPT_MIN_REPORT_DAYS} days, a caution (on synthetic accounts it beat "
                   "the base's anchor on average from 28 days on, and lost least against "
                   "adapting on the truth from 90): docs/calibration.md, Decision value")
    return p.parse_args(argv)


def run(args: argparse.Namespace, argv: list[str]) -> Path:
    """Calibrate as ``args`` say (:func:`agents.calibration.pipeline.calibrate_report`) and
    print what was fitted and written."""
    inputs = CalibrationInputs(base=args.base, margin=args.margin,
                               breakeven_roi=args.breakeven_roi, promo_dates=args.promo_dates,
                               seed=args.seed, adapt_anchor=args.adapt_anchor)
    done = calibrate_report(args.history, args.out, inputs, ["scripts/calibrate.py", *argv])
    for line in done.summary_lines():
        print(line)
    return done.out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        run(args, argv)
    except (ServingError, ConfigError) as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
