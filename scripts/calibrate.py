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

from agents.calibration.account import CalibrationError, account_history  # noqa: E402
from agents.calibration.fit import fit_account  # noqa: E402
from agents.calibration.outputs import (  # noqa: E402
    check_out_dir,
    fit_record,
    json_writer,
    text_writer,
    write_calibration,
)
from agents.calibration.scenario import named_base, scenario_yaml  # noqa: E402
from agents.calibration.validation import plot_validation, validate  # noqa: E402
from agents.serving.errors import ServingError  # noqa: E402
from agents.serving.inputs import parse_promotions  # noqa: E402
from agents.serving.report import read_report  # noqa: E402
from envs.config import ConfigError, load_scenario  # noqa: E402


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
    return p.parse_args(argv)


def run(args: argparse.Namespace, argv: list[str]) -> Path:
    if args.margin is not None and not 0.0 < args.margin < 1.0:
        raise CalibrationError(f"--margin {args.margin}: a share between 0 and 1")
    if args.breakeven_roi is not None and not 0.0 < args.breakeven_roi < 1000.0:
        raise CalibrationError(f"--breakeven-roi {args.breakeven_roi}: a ROI above 0")
    out = Path(args.out)
    check_out_dir(out)  # refuse before the work, not after
    base = load_scenario(args.base)
    report = read_report(args.history)
    history = account_history(report, base, parse_promotions(args.promo_dates,
                                                            base.promo_peak_length_days))
    fit = fit_account(history, base, args.margin, args.breakeven_roi)
    summary, _, _ = validate(history, base, args.margin, args.breakeven_roi, seed=args.seed)
    command = ["scripts/calibrate.py", *argv]
    write_calibration(out, {
        "fit.json": json_writer(fit_record(fit, command, args.base)),
        "scenario.yaml": text_writer(scenario_yaml(fit, named_base(args.base))),
        "validation.json": json_writer(summary),
        "validation.png": lambda path: plot_validation(summary, history, path),
    })
    identified = [n for n, e in fit.estimates.items() if e.identified]
    print(f"{history.account}: {history.days} days fitted in {fit.seconds:.1f} s; "
          f"{len(identified)} of {len(fit.estimates)} parameters identified by the report")
    for note in fit.notes:
        print(f"  note: {note}")
    print(f"  held-out 14 days: {summary['coverage_80']:.0%} of actual values inside the "
          "80% forecast intervals")
    print(f"wrote {out}/fit.json, scenario.yaml, validation.json, validation.png")
    return out


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
