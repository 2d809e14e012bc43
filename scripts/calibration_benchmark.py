"""Measure calibration on synthetic accounts with a known truth; write the tables.

    python scripts/calibration_benchmark.py                 # 240 accounts per history length
    python scripts/calibration_benchmark.py --accounts 4 --days 28 --smoke
    python scripts/calibration_benchmark.py --workers 2     # accounts spread over 2 processes
    python scripts/calibration_benchmark.py --truth-overrides '{market_drift_enabled: false}' \
        --out runs/calibration_no_drift --smoke              # a mechanic off in the truth only

Accounts are drawn from the fit's prior around the named scenarios (seeds from 60000,
:mod:`agents.calibration.synthetic`), run by the playbook's rules, and fitted from their
reports as ``calibrate`` fits them. Per history length: for each parameter, how often the
report identified it, how often its 90% interval covered the truth (calibrated: 85-95%),
and its median absolute error (in log units for positive parameters); coverage comes with
its 95% Wilson interval (a coverage over 20 accounts is only known to about +-15 points);
the standardised error (fit minus truth over the sd its 90% interval implies, in the same
units: calibrated, mean about 0 and sd about 1), which tells a bias from intervals too narrow;
the error trend over the accounts identified at every length (the same accounts, so a
shrinking error is the history's doing, not a different mix of accounts); the held-out
14-day forecast's 80% coverage per metric (calibrated: 70-90%) and its daily error, each
beside the noise floor's (the same forecast made from the true parameters); seconds per fit.
Writes
``runs/calibration/benchmark.json`` and ``docs/calibration_results.md`` (atomically), and
each account's record as it finishes (``accounts/`` under ``--out``): a rerun with the same
``--out`` reads those and measures only the rest, so a run of changed code wants a new
``--out``. ``--truth-overrides`` sets scenario keys in the synthetic accounts' markets only
(the fit still assumes the base's): what a mechanic does to the fit, e.g. the market's drift
switched off. A benchmark measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is faster

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402

from agents.calibration.account import HOLDOUT_DAYS, CalibrationError  # noqa: E402
from agents.calibration.fit import fit_account, interval_sd  # noqa: E402
from agents.calibration.forecast import Settings, forecast  # noqa: E402
from agents.calibration.learning_rules import RULES  # noqa: E402
from agents.calibration.records import (  # noqa: E402
    fitted,
    kept_records,
    record_path,  # noqa: F401 (the tests find a record by it)
    refusal,
    refused,
    rejected_record,
    run_records,
)
from agents.calibration.synthetic import fit_at_truth, synthetic_account  # noqa: E402
from agents.calibration.validation import forecast_errors, validate  # noqa: E402
from agents.run_folder import write_text_atomic  # noqa: E402
from envs.config import ConfigError, load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("3c", "beauty", "food", "apparel_live")


def units(name: str, *values: float):
    """The scale errors of ``name`` are measured in: logs for positive quantities, plain for
    weekday effects (and wherever one of ``values`` is not positive)."""
    return float if name.startswith("weekday_") or min(values) <= 0 else np.log


def error(name: str, value: float, truth: float) -> float:
    """Absolute error, in :func:`units`."""
    f = units(name, value, truth)
    return abs(float(f(value) - f(truth)))


def standardised(name: str, value: float, low: float, high: float,
                 truth: float) -> float | None:
    """Fit minus truth over the sd the 90% interval ``low`` .. ``high`` implies, in
    :func:`units` (logs where the interval is positive); None for an interval of no
    width. Approximate where an interval was cut at a bound."""
    f = units(name, value, truth, low)
    sd = interval_sd(f(low), f(high))
    return float((f(value) - f(truth)) / sd) if sd > 0 else None


def one_account(index: int, days: int, work: Path, overrides: dict | None = None) -> dict:
    """Draw, fit and check account ``index`` with ``days`` of history (its record).

    :param overrides: scenario keys set in the account's market only (``--truth-overrides``).
    """
    base = load_scenario(SCENARIOS[index % len(SCENARIOS)])
    acc = synthetic_account(base, index, days, overrides=overrides)
    try:
        history = acc.history(base, work / f"account_{days}d_{index}.csv")
    except CalibrationError as exc:  # calibrate would refuse the report (exit 2)
        return {**rejected_record(index, days, base.name, exc),
                "truth_overrides": overrides or {}}
    started, cpu = time.perf_counter(), time.process_time()
    fit = fit_account(history, base)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    params = {}
    for name, e in fit.estimates.items():
        if name not in acc.truth:
            continue
        truth = acc.truth[name]
        params[name] = {"identified": e.identified, "covered": bool(e.low <= truth <= e.high),
                        "error": error(name, e.value, truth),
                        # a learning rule's interval is the set its flags pass, not a normal's
                        "z": (None if name in RULES
                              else standardised(name, e.value, e.low, e.high, truth))}
    summary, head_fit, _ = validate(history, base, seed=index)
    # the noise floor: the same forecast made from the true parameters
    held = history.tail(HOLDOUT_DAYS)
    floor = forecast(fit_at_truth(head_fit, acc.truth), Settings.of_history(held), seed=index)
    at_truth = {m: forecast_errors(floor, m, getattr(held, m)) for m in summary["metrics"]}
    errors = {m: {"fit": summary["metrics"][m]["mape_median"],
                  "truth": at_truth[m]["mape_median"]} for m in ("spend", "gmv")}
    return {"index": index, "scenario": base.name, "days": days,
            "truth_overrides": overrides or {}, "seconds": seconds,
            "cpu_seconds": cpu_seconds, "parameters": params,
            "forecast": {m: v["coverage_80"] for m, v in summary["metrics"].items()},
            "forecast_at_truth": {m: v["coverage_80"] for m, v in at_truth.items()},
            "forecast_weeks": {m: weekly_coverage(v) for m, v in summary["metrics"].items()},
            "forecast_weeks_at_truth": {m: weekly_coverage(v) for m, v in at_truth.items()},
            "forecast_error": errors}


def weekly_coverage(errors: dict) -> list[float]:
    """The held-out days inside the 80% interval, share per week (days 1-7, 8-14), from
    :func:`agents.calibration.validation.forecast_errors`' lists."""
    actual, low, high = (np.array(errors[k]) for k in ("actual", "p10", "p90"))
    inside = (actual >= low) & (actual <= high)
    return [float(week.mean()) for week in np.array_split(inside, 2)]


def tables(results: list[dict], lengths: list[int]) -> str:
    turned_away = [r for r in results if refused(r)]
    results = fitted(results)
    names = sorted({n for r in results for n in r["parameters"]},
                   key=lambda n: list(results[0]["parameters"]).index(n)
                   if n in results[0]["parameters"] else 99)
    lines = ["| parameter | " + " | ".join(f"{d} days: identified / covered / error"
                                          for d in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for name in names:
        cells = []
        for d in lengths:
            rows = [r["parameters"][name] for r in results if r["days"] == d
                    and name in r["parameters"]]
            ident = [x for x in rows if x["identified"]]
            cover = coverage(sum(x["covered"] for x in ident), len(ident))
            err = (f"{statistics.median(x['error'] for x in ident):.3f}" if ident else "-")
            cells.append(f"{len(ident)}/{len(rows)} / {cover} / {err}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "Error trend on the same accounts: median absolute error at each length over "
              "the accounts whose report identified the parameter at every length.", "",
              "| parameter | accounts | " + " | ".join(f"{d} days" for d in lengths) + " |",
              "|---|---|" + "---|" * len(lengths)]
    for name in names:
        same = same_accounts(results, name, lengths)
        if len(same) < 3:
            continue
        errs = [statistics.median(same[i][d] for i in same) for d in lengths]
        lines.append(f"| `{name}` | {len(same)} | " + " | ".join(f"{e:.3f}" for e in errs)
                     + " |")
    lines += ["", "Standardised error among the accounts whose report identified the "
              "parameter: fit minus truth over the sd its 90% interval implies (log units for "
              "positive parameters); mean, sd (accounts). Calibrated: mean about 0, sd about "
              "1; a mean away from 0 is a bias, an sd above 1 intervals too narrow.", "",
              "| parameter | " + " | ".join(f"{d} days" for d in lengths) + " |",
              "|---|" + "---|" * len(lengths)]
    for name in names:
        cells = []
        for d in lengths:
            zs = [r["parameters"][name].get("z") for r in results if r["days"] == d
                  and name in r["parameters"] and r["parameters"][name]["identified"]]
            zs = [z for z in zs if z is not None]
            cells.append(f"{np.mean(zs):+.2f}, {np.std(zs):.2f} ({len(zs)})" if len(zs) >= 3
                         else "-")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", "| history | accounts | seconds per fit, wall (median, max) | CPU seconds "
              "(median, max) | held-out 80% coverage: spend / GMV / orders / refunds | the "
              "same from the true parameters | daily error of the median, spend: fit / truth "
              "| GMV: fit / truth |",
              "|---|---|---|---|---|---|---|---|"]
    for d in lengths:
        rows = [r for r in results if r["days"] == d]
        if not rows:
            lines.append(f"| {d} days | 0 | - | - | - | - | - | - |")
            continue
        secs, cpu = [r["seconds"] for r in rows], [r["cpu_seconds"] for r in rows]
        cov, cov_truth = (" / ".join(
            f"{np.mean([r[key][m] for r in rows if m in r.get(key, {})] or [np.nan]):.0%}"
            for m in ("spend", "gmv", "orders", "refunds"))
            for key in ("forecast", "forecast_at_truth"))
        err = [" / ".join(f"{_median(r['forecast_error'][m][k] for r in rows):.0%}"
                          for k in ("fit", "truth")) for m in ("spend", "gmv")]
        lines.append(f"| {d} days | {len(rows)} | {statistics.median(secs):.2f}, "
                     f"{max(secs):.2f} | {statistics.median(cpu):.2f}, {max(cpu):.2f} | {cov} "
                     f"| {cov_truth} | {err[0]} | {err[1]} |")
    lines += ["", "Held-out 80% coverage by week of the forecast (days 1-7 / 8-14): the first "
              "week's refunds are mostly those of the report's last cohorts still landing.", "",
              "| history | metric | fit | true parameters |", "|---|---|---|---|"]
    for d in lengths:
        rows = [r for r in results if r["days"] == d]
        for m in ("spend", "gmv", "orders", "refunds"):
            cells = []
            for key in ("forecast_weeks", "forecast_weeks_at_truth"):
                weeks = np.array([r[key][m] for r in rows if m in r.get(key, {})])
                cells.append(" / ".join(f"{w:.0%}" for w in weeks.mean(axis=0))
                             if weeks.size else "-")
            lines.append(f"| {d} days | {m} | {cells[0]} | {cells[1]} |")
    lines += ["", "Reports `calibrate` refuses (it exits 2 naming what is missing; not in the "
              "tables above): " + ("none." if not turned_away else "; ".join(
                  f"{d} days: {sum(r['days'] == d for r in turned_away)}" for d in lengths)
                  + ". " + "; ".join(sorted({refusal(r) for r in turned_away})) + ".")]
    return "\n".join(lines) + "\n"


def coverage(covered: int, accounts: int) -> str:
    """``covered / accounts`` as a share with its 95% Wilson interval, e.g. ``90% [70-97]``."""
    if accounts == 0:
        return "-"
    ci = stats.binomtest(covered, accounts).proportion_ci(0.95, method="wilson")
    return f"{covered / accounts:.0%} [{ci.low:.0%}-{ci.high:.0%}]"


def same_accounts(results: list[dict], name: str, lengths: list[int]
                  ) -> dict[int, dict[int, float]]:
    """Errors of ``name`` per account index and history length, for the accounts whose report
    identified it at every length."""
    by_index: dict[int, dict[int, float]] = {}
    for r in results:
        x = r["parameters"].get(name)
        if x is not None and x["identified"]:
            by_index.setdefault(r["index"], {})[r["days"]] = x["error"]
    return {i: e for i, e in by_index.items() if all(d in e for d in lengths)}


def _median(values) -> float:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else float("nan")


def truth_overrides(parser: argparse.ArgumentParser, text: str) -> dict:
    """``--truth-overrides`` as a mapping of scenario keys, checked against every scenario
    the accounts are drawn around (a bad key or value exits 2 naming it)."""
    try:
        overrides = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        parser.error(f"--truth-overrides: not YAML ({getattr(exc, 'problem', None) or exc})")
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        parser.error(f"--truth-overrides: a mapping of scenario keys, not {text!r}")
    try:
        for name in SCENARIOS:
            load_scenario(name).replace(**overrides)
    except ConfigError as exc:
        parser.error(f"--truth-overrides: {exc}")
    return overrides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=240, help="accounts per history length")
    p.add_argument("--days", default="28,56,90", help="history lengths, comma-separated")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "calibration")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "calibration_results.md")
    p.add_argument("--smoke", action="store_true", help="do not write the doc")
    p.add_argument("--truth-overrides", default="{}", metavar="YAML",
                   help="scenario keys set in the synthetic accounts' markets only, as a YAML "
                        "or JSON mapping, e.g. '{market_drift_enabled: false}'")
    p.add_argument("--workers", type=int, default=1,
                   help="processes the accounts are spread over (the figures do not depend "
                        "on it; the seconds per fit do, when the processes share cores)")
    args = p.parse_args(argv)
    if args.accounts < 1 or args.workers < 1:
        p.error("--accounts and --workers must be at least 1")
    lengths = [int(d) for d in args.days.split(",")]
    overrides = truth_overrides(p, args.truth_overrides)
    work, kept = args.out / "reports", args.out / "accounts"
    work.mkdir(parents=True, exist_ok=True)
    kept.mkdir(exist_ok=True)
    jobs = [(i, d) for d in lengths for i in range(args.accounts)]
    done = kept_records(kept, jobs)
    other = sorted({json.dumps(r.get("truth_overrides", {}), sort_keys=True)
                    for r in done.values()} - {json.dumps(overrides, sort_keys=True)})
    if other:
        p.error(f"{kept} holds accounts run with other --truth-overrides ({', '.join(other)}): "
                "use another --out")
    if done:
        print(f"{len(done)} account(s) read from {kept} (a run of other code wants a new --out)",
              flush=True)
    todo = [job for job in jobs if job not in done]
    for r in run_records(one_account, todo, kept, args.workers, work, overrides):
        done[(r["index"], r["days"])] = r
        print(f"{r['days']}d account {r['index']} ({r['scenario']}): " + (
            f"refused: {r['rejected']}" if refused(r) else
            f"{r['seconds']:.1f} s, forecast "
            + ", ".join(f"{m} {v:.0%}" for m, v in r["forecast"].items())), flush=True)
    results = [done[job] for job in jobs]
    write_text_atomic(args.out / "benchmark.json", json.dumps(results, indent=1) + "\n")
    text = tables(results, lengths)
    print(text)
    if not args.smoke:
        command = "python scripts/calibration_benchmark.py " + " ".join(argv or sys.argv[1:])
        write_text_atomic(args.doc,
            "# Calibration on synthetic accounts: measured\n\nGenerated by `"
            + command.strip() + "`; do not edit. Each cell: accounts whose report identified "
            "the parameter / how often its 90% interval covered the truth among those / "
            "median absolute error (log units for positive parameters); coverage with its 95% "
            "Wilson interval. See "
            "[calibration.md](calibration.md) for what these mean.\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
