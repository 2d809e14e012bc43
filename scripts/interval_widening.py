"""Measure how much the market's 90% intervals must widen to cover the truth 90% of the time.

    python scripts/interval_widening.py --workers 2          # 720 accounts x 28/56/90 days
    python scripts/interval_widening.py --accounts 8 --smoke # a look, the table unchanged

Synthetic accounts of their own seeds (``agents.calibration.widening.FIRST_INDEX`` on: 61000
on, disjoint from the calibration benchmark's, the tests' and the other benchmarks'), drawn
from the fit's prior around four named scenarios and run by the playbook's rules, are fitted
without widening; each identified parameter's standardised error (fit minus truth over the
interval's sd, in the fit's space) and its sd over the prior's go into
:func:`agents.calibration.widening.measure`,
which writes ``configs/calibration/interval_widening.json`` (unless ``--smoke``). The fit
reads that table; ``scripts/calibration_benchmark.py`` checks it on other accounts. Records
per account are kept in ``--out`` (a rerun goes on from them). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is faster

import numpy as np  # noqa: E402

from agents.calibration.account import CalibrationError  # noqa: E402
from agents.calibration.fit import LEVEL, fit_account  # noqa: E402
from agents.calibration.records import (  # noqa: E402
    kept_records,
    rejected_record,
    run_records,
)
from agents.calibration.speed import SCENARIOS  # noqa: E402
from agents.calibration.synthetic import synthetic_account  # noqa: E402
from agents.calibration.widening import FIRST_INDEX, measure, table_path  # noqa: E402
from agents.run_folder import package_versions, write_text_atomic  # noqa: E402
from envs.config import load_scenario  # noqa: E402
from envs.seeds import CALIBRATION_SEED  # noqa: E402


def one_account(index: int, days: int, work: Path) -> dict:
    """Account ``index`` with ``days`` of history, fitted without widening: each market
    parameter's identification and standardised error in the fit's space (or, for a report
    ``calibrate`` refuses, what it said)."""
    base = load_scenario(SCENARIOS[index % len(SCENARIOS)])
    acc = synthetic_account(base, index, days)
    try:
        history = acc.history(base, work / f"account_{days}d_{index}.csv")
    except CalibrationError as exc:  # calibrate would refuse the report (exit 2)
        return rejected_record(index, days, base.name, exc)
    fit = fit_account(history, base, widen=False)
    sd = np.sqrt(np.diag(fit.cov))
    params = {}
    for i, p in enumerate(fit.parameters):
        truth = min(max(p.z_of(acc.truth[p.name]), p.lower), p.upper)
        params[p.name] = {"identified": fit.estimates[p.name].identified,
                          "z": float((fit.z[i] - truth) / sd[i]) if sd[i] > 0 else None,
                          "sd_ratio": float(sd[i] / p.prior_sd)}
    return {"index": index, "days": days, "scenario": base.name, "parameters": params}


def table_text(table: dict) -> str:
    """The table as JSON, one parameter (or package) a line."""
    parts = []
    for key, value in table.items():
        if isinstance(value, dict):
            rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            parts.append(f" {json.dumps(key)}: {{\n{rows}\n }}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=720, help="accounts per history length")
    p.add_argument("--days", default="28,56,90", help="history lengths, comma-separated")
    p.add_argument("--workers", type=int, default=1, help="processes the accounts share")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "interval_widening")
    p.add_argument("--smoke", action="store_true", help="do not write the table")
    args = p.parse_args(argv)
    if args.accounts < 1 or args.workers < 1:
        p.error("--accounts and --workers must be at least 1")
    try:
        lengths = sorted({int(d) for d in args.days.split(",")})
    except ValueError:
        p.error(f"--days: whole numbers separated by commas, not {args.days!r}")
    if lengths[0] < 14:
        p.error("--days: a fit needs at least 14 days")
    work, kept = args.out / "reports", args.out / "accounts"
    work.mkdir(parents=True, exist_ok=True)
    kept.mkdir(exist_ok=True)
    jobs = [(FIRST_INDEX + i, d) for d in lengths for i in range(args.accounts)]
    done = kept_records(kept, jobs)
    todo = [job for job in jobs if job not in done]
    for n, r in enumerate(run_records(one_account, todo, kept, args.workers, work), 1):
        done[(r["index"], r["days"])] = r
        if n % 20 == 0 or n == len(todo):
            print(f"{n}/{len(todo)} fitted", flush=True)
    table = measure([done[job] for job in jobs], lengths, LEVEL)
    table.update(
        accounts=args.accounts,
        seeds=f"{CALIBRATION_SEED + FIRST_INDEX}-"
              f"{CALIBRATION_SEED + FIRST_INDEX + args.accounts - 1}",
        scenarios=list(SCENARIOS),
        command="python scripts/interval_widening.py " + " ".join(argv or sys.argv[1:]),
        measured=dt.date.today().isoformat(), versions=package_versions())
    for name, row in table["factors"].items():
        print(f"{name:24s} " + "  ".join(f"{d}d x{k:.2f} ({n})" for d, k, n in zip(
            lengths, row, table["cases"][name], strict=True)))
    if not args.smoke:
        target = table_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, table_text(table))
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
