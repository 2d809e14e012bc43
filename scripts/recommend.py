"""Tomorrow's payment-ROI target and daily budget from an account's daily report.

    python scripts/recommend.py --policy runs/<run>/export/policy.onnx --history report.csv
    python scripts/recommend.py --policy playbook --history report.csv --json
    python scripts/recommend.py --policy runs/<run>/export/policy.onnx --batch reports/ \
        --out recommendations.csv
    python scripts/recommend.py --history report.csv --fit fits/my_shop

With ``--fit DIR`` (a calibration of the same report by ``scripts/calibrate.py --history
report.csv --out DIR``) the policy plays the fitted account: its scenario is
``DIR/scenario.yaml`` and its break-even ROI the fitted one, ``1 / (margin (1 - refund
rate))``, unless ``--breakeven-roi`` gives another. After the recommendation a 7-day
forecast compares three settings held for the week: the recommended ones, the current ones
(the report's last row) and ``static``'s. The forecast is the simulator run from the fit:
400 copies of the account from the report's last day, each with parameters drawn from the
fit's uncertainty; it gives the week's profit, GMV, spend and settled ROI as a median and
an 80% interval (``--json``: a ``forecast`` object). A fit of another report or period is
refused.

``--batch REPORTS --fit FITS`` fits and recommends for many accounts: each report is
calibrated into ``FITS/<account>/`` (as ``calibrate.py`` does, with ``--base``,
``--margin`` or ``--breakeven-roi``, ``--promo-dates``) unless a fit of that same report
with the same options is already there, then recommended for with its forecast; ``--out``
gets one row per account (the plain batch's columns, then ``status``/``error``, the
break-even ROI and its source, the fit's identified parameters, and the week's profit
median and 80% interval under the recommended, current and static settings). A bad account
does not stop the batch: its row says why, and the command exits with code 3.
``--workers N`` runs N local workers over a shared queue (SQLite ``FITS/.queue.db`` unless
``--storage URL``); workers on other machines join with the same command plus ``--storage``
(PostgreSQL), ``--study-name`` and ``--join``; a dead worker's account is retried once its
heartbeat is stale; the command without ``--join`` writes the CSV.

Bad input is reported with the file, row and column, and exits with code 2. In ``--batch``
a bad report is reported on stderr and skipped; the others are still scored (with ``--fit``:
its row says why, and the exit code is 3). Output piped
into a reader that stops early (``| head``) ends quietly with code 141, as a Unix tool
killed by SIGPIPE does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # --fit: small matrices, one thread faster

from agents.serving.errors import ServingError
from agents.serving.loading import load_policy
from agents.serving.output import check_out_path, format_table, to_json, write_batch_csv
from agents.serving.recommend import (
    COMPARE_POLICY,
    RecommendOptions,
    recommend_files,
    report_files,
)

# The cross-scenario policies `make results` trains (one per objective, anchored on each
# scenario's static settings), exported and shipped so recommendations work before anything
# is trained (tests/test_default_policy.py).
MODELS = Path(__file__).resolve().parent.parent / "models"
OBJECTIVES = ("profit", "gmv_floor")
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader left
INTERRUPTED_EXIT = 130  # 128 + SIGINT
FIT_BATCH_OPTIONS = ("base", "margin", "workers", "storage", "study_name", "join",
                     "heartbeat", "grace", "max_retry", "adapt_anchor")  # only with
# --batch and --fit


def shipped_policy(objective: str) -> Path:
    """The shipped policy for ``objective``: ``models/<objective>/policy.onnx``."""
    return MODELS / objective / "policy.onnx"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--policy",
                   help="runs/<run>/export/policy.onnx, 'playbook' or another rule's name "
                   "(default: the shipped policy for --objective, "
                   "models/<objective>/policy.onnx)")
    p.add_argument("--objective", choices=OBJECTIVES,
                   help="which shipped policy to use without --policy: profit (default) or "
                   "gmv_floor (settled GMV with a settlement-ROI floor)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--history", help="one account's daily report (.csv or .xlsx)")
    src.add_argument("--batch", metavar="DIR", help="score every report in DIR (with --fit "
                     "FITS: calibrate and recommend for each, see below)")
    p.add_argument("--out", default="recommendations.csv",
                   help="--batch: the CSV to write, atomically (default: %(default)s)")
    p.add_argument("--promo-dates", help="promotion peaks: YYYY-MM-DD (a peak of the "
                   "scenario's length) or YYYY-MM-DD..YYYY-MM-DD, comma-separated")
    p.add_argument("--breakeven-roi", type=float,
                   help="the account's break-even payment ROI (default: the scenario's)")
    p.add_argument("--edits-today", type=int, default=0,
                   help="target edits already made today (the platform allows 2)")
    p.add_argument("--act-while-learning", action="store_true",
                   help="do not hold the settings while the plan is learning")
    p.add_argument("--scenario",
                   help="scenario of a rule-based --policy (default: 3c); of an anchored "
                   "ONNX policy, the scenario whose anchor it plays (default: the one it was "
                   "trained on); a raw ONNX policy has its own")
    p.add_argument("--launch-budget", type=float, metavar="CNY",
                   help="anchored policies: the plan's launch budget when the report does "
                   "not show it (the budget on the day before plan_launch_date); default: "
                   "the report's earliest budget, said in the output")
    p.add_argument("--compare", default=COMPARE_POLICY,
                   help="rule-based policy shown beside the answer ('none': none)")
    p.add_argument("--fit", metavar="DIR",
                   help="a calibration of this report (scripts/calibrate.py --out DIR): "
                   "recommend for the fitted account and forecast the next 7 days; with "
                   "--batch, the folder of the accounts' calibrations (FITS/<account>/)")
    fitted = p.add_argument_group(
        "--batch REPORTS --fit FITS", "calibrate each report into FITS/<account>/ (unless a "
        "fit of the same report is there) and recommend for it; exit code 3 when some "
        "accounts failed (their rows say why)")
    fitted.add_argument("--base", help="the scenario supplying what a report cannot show, "
                        "and the prior's centre (default: 3c)")
    fitted.add_argument("--margin", type=float, help="contribution margin on settled GMV, "
                        "0-1, when a report has no breakeven_roi column and no "
                        "--breakeven-roi is given (default: the base's)")
    fitted.add_argument("--adapt-anchor", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="calibrate with anchor.json, or without (calibrate.py "
                        "--adapt-anchor: the profit policy's anchor tuned on each fitted "
                        "market, ~10 s each; default: as calibrate.py decides by the "
                        "report's length)")
    fitted.add_argument("--workers", type=int, help="local worker processes sharing the "
                        "accounts through a queue (default 1: one after another, no queue)")
    fitted.add_argument("--storage", metavar="URL", help="the queue's Optuna RDB storage "
                        "(default: SQLite FITS/.queue.db), e.g. "
                        "postgresql://user:password@host:5432/db for several machines")
    fitted.add_argument("--study-name", "--name", dest="study_name", metavar="NAME",
                        help="the batch's queue; workers with the same name and storage "
                        "share it (default: a fresh one named by the local time); the same "
                        "name again resumes it")
    fitted.add_argument("--join", action="store_true", default=None,
                        help="only work on an existing batch (never writes the CSV)")
    fitted.add_argument("--heartbeat", type=int, metavar="S",
                        help="seconds between a running account's heartbeats (default 30)")
    fitted.add_argument("--grace", type=int, metavar="S", help="silence after which an "
                        "account's worker counts as dead and it is retried (default 120)")
    fitted.add_argument("--max-retry", type=int, metavar="N",
                        help="retries of an account whose workers keep dying (default 3)")
    p.add_argument("--no-identification-test", action="store_true",
                   help="--fit: skip designing the identification test (about 1 s)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    if args.edits_today < 0:
        p.error("--edits-today must be >= 0")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.policy is not None and args.objective is not None:
        p.error("--objective picks a shipped policy; a --policy has its own objective")
    if args.policy is None:
        args.policy = str(shipped_policy(args.objective or "profit"))
    if not (args.batch and args.fit):
        given = [f"--{name.replace('_', '-')}" for name in FIT_BATCH_OPTIONS
                 if getattr(args, name) is not None]
        if given:
            p.error(f"{', '.join(given)}: only with --batch REPORTS --fit FITS")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.argv = argv
    try:
        return run(args)
    except BrokenPipeError:
        # the reader closed (``| head``): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


def run(args: argparse.Namespace) -> int:
    """Recommend as ``args`` say; print the answer (flushed, so a closed pipe shows here)."""
    options = RecommendOptions(
        promo_dates=args.promo_dates, breakeven_roi=args.breakeven_roi,
        edits_today=args.edits_today, act_while_learning=args.act_while_learning,
        compare=None if args.compare.lower() == "none" else args.compare,
        launch_budget=args.launch_budget)
    try:
        if args.fit:
            return run_fitted(args, options)
        if args.batch:
            check_out_path(args.out)  # before any work
        policy = load_policy(args.policy, scenario=args.scenario, threads=args.threads)
        if args.history:
            recs, _ = recommend_files(policy, [args.history], options)
            print(to_json(recs) if args.json else format_table(recs[0]))
            sys.stdout.flush()
            return 0
        recs, skipped = recommend_files(policy, report_files(args.batch), options,
                                        skip_bad=True)
        for item in skipped:
            print(f"skipped {item['error']}", file=sys.stderr)
        if not recs:
            raise ServingError(f"--batch: every report was bad ({len(skipped)} skipped)",
                               args.batch)
        write_batch_csv(recs, args.out)
        if args.json:
            print(to_json(recs, skipped, batch=True))
        else:
            print(f"{len(recs)} account(s) scored, {len(skipped)} skipped: wrote {args.out}")
        sys.stdout.flush()
        return 0
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as exc:  # the OS's reason in words, not errno text
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{(exc.strerror or str(exc)).lower()}", file=sys.stderr)
        return 2


def run_fitted(args: argparse.Namespace, options: RecommendOptions) -> int:
    """``--fit DIR``: the recommendation for the fitted account and its 7-day forecast.
    The calibration's modules (SciPy, the simulator) load only here."""
    if args.scenario:
        raise ServingError("--fit plays the fitted account's scenario (DIR/scenario.yaml): "
                           "drop --scenario")
    if args.batch:
        return run_fitted_batch(args, options)
    from agents.calibration.recommend_fit import fitted_json, fitted_text, recommend_fitted

    rec, outlook = recommend_fitted(args.policy, args.history, args.fit, options,
                                    threads=args.threads,
                                    identification=not args.no_identification_test)
    print(fitted_json(rec, outlook) if args.json else fitted_text(rec, outlook))
    sys.stdout.flush()
    return 0


def run_fitted_batch(args: argparse.Namespace, options: RecommendOptions) -> int:
    """``--batch REPORTS --fit FITS``: every account calibrated (or its fit reused) and
    recommended for, one CSV row each (:func:`agents.calibration.batch.run_batch`).

    :return: 0, or :data:`agents.calibration.batch.SOME_FAILED_EXIT` when some accounts'
        rows are errors.
    """
    from agents.calibration.batch import (
        SOME_FAILED_EXIT,
        BatchSettings,
        QueueOptions,
        run_batch,
    )
    from agents.calibration.pipeline import DEFAULT_BASE, CalibrationInputs
    from agents.experiments.study import safe_command  # database passwords hidden

    inputs = CalibrationInputs(base=args.base or DEFAULT_BASE, margin=args.margin,
                               breakeven_roi=args.breakeven_roi, promo_dates=args.promo_dates,
                               adapt_anchor=args.adapt_anchor)
    settings = BatchSettings(args.policy, options, inputs,
                             ("scripts/recommend.py", *safe_command(args.argv)),
                             args.threads)
    queue = None
    if not _queued(args) and any(v is not None for v in (args.heartbeat, args.grace,
                                                           args.max_retry)):
        raise ServingError("--heartbeat, --grace and --max-retry: only with a queue "
                           "(--workers N > 1, --storage or --study-name)")
    if _queued(args):
        default = QueueOptions()
        queue = QueueOptions(
            args.storage, args.study_name, bool(args.join),
            default.heartbeat_s if args.heartbeat is None else args.heartbeat,
            default.grace_s if args.grace is None else args.grace,
            default.max_retry if args.max_retry is None else args.max_retry)
    try:
        result = run_batch(args.batch, args.fit, None if args.join else args.out, settings,
                           args.workers or 1, queue, log=_progress)
    except KeyboardInterrupt:
        print("interrupted" + (": the accounts running went back to the queue; the same "
                               "command finishes the batch" if queue else ""), file=sys.stderr)
        return INTERRUPTED_EXIT
    if result.rows is None:
        print(f"this worker ran {result.ran} account(s)")
        return 0
    for row in result.failed:
        print(f"failed {row['account']}: {row['error']}", file=sys.stderr)
    ok = len(result.rows) - len(result.failed)
    if args.json:
        import json

        print(json.dumps({"accounts": result.rows, "failed": len(result.failed)},
                         ensure_ascii=False, indent=2))
    else:
        print(f"{ok} account(s) recommended, {len(result.failed)} failed: wrote {result.out}")
    sys.stdout.flush()
    return SOME_FAILED_EXIT if result.failed else 0


def _queued(args: argparse.Namespace) -> bool:
    return bool((args.workers or 1) > 1 or args.storage or args.study_name or args.join)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout keeps the answer (or the JSON)


if __name__ == "__main__":
    sys.exit(main())
