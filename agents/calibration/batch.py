"""``recommend --batch REPORTS --fit FITS``: calibrate and recommend for many accounts, one
CSV row per account.

For each report in ``REPORTS`` (``.csv``/``.xlsx``; the account is the file's name without
its suffix) :func:`run_account`

1. calibrates it into ``FITS/<account>/`` with :func:`.pipeline.calibrate_report` (what
   ``scripts/calibrate.py`` runs), unless that folder already holds a fit of this very
   report made with the same options (:func:`.pipeline.fit_is_current`, then read back by
   :func:`.recommend_fit.load_fitted`); a stale or unreadable fit is refitted;
2. recommends for the fitted account with its week's forecast
   (:func:`.recommend_fit.recommend_fitted`, as ``recommend --fit`` does);
3. makes the account's row: the plain batch CSV's columns
   (:func:`agents.serving.output.batch_rows`), then :data:`EXTRA_COLUMNS`: the break-even ROI
   and where it came from, what happened to the fit, how many parameters the report
   identified, and the week's profit (median and 80% interval) under the recommended, the
   current and ``static``'s settings.

A bad account (a report too short to fit, without orders, unreadable, ...) does not stop
the batch: its row has ``status`` ``error`` and says why in ``error``; the others go on.

The break-even ROI of an account is, first found: the report's ``breakeven_roi`` column
(its last day), ``--breakeven-roi``, ``--margin`` (with the fitted refund rate), the base
scenario's margin (with the fitted refund rate), as ``calibrate`` does; the row's
``breakeven_source`` says which.

Accounts run here one after another (:func:`run_batch`), or as the slots of a shared trial
queue (:mod:`.batch_queue`) when ``workers`` > 1 or a storage is given.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.calibration.account import CalibrationError
from agents.calibration.pipeline import (
    CalibrationInputs,
    calibrate_report,
    fit_is_current,
    report_sha256,
)
from agents.calibration.recommend_fit import SETTINGS, load_fitted, recommend_fitted
from agents.serving.errors import ServingError
from agents.serving.loading import load_policy
from agents.serving.output import (
    batch_rows,
    check_out_path,
    plain_batch_columns,
    write_csv,
)
from agents.serving.recommend import Recommendation, RecommendOptions, report_files
from agents.serving.report import AccountReport, read_report
from envs.config import ConfigError, load_scenario

SOME_FAILED_EXIT = 3  # exit code: the CSV is written, and some accounts' rows are errors
QUANTILES = ("p50", "p10", "p90")  # the week's profit: median, then the 80% interval
PROFIT_COLUMNS = tuple(f"{s}_profit_{q}" for s in SETTINGS for q in QUANTILES)
EXTRA_COLUMNS = ("breakeven_roi", "breakeven_source", "fit", "fit_dir", "identified",
                 "parameters", *PROFIT_COLUMNS)
STATUS_COLUMNS = ("status", "error")  # right after ``file``: ok | error, and why


@dataclass(frozen=True)
class BatchSettings:
    """What the command line says about every account of a batch.

    :param policy: ``--policy`` (an ONNX file or a rule's name).
    :param options: ``recommend``'s options; ``breakeven_roi`` is ``--breakeven-roi``.
    :param inputs: ``calibrate``'s options for every account (the report's break-even
        column, when present, replaces ``margin`` and ``breakeven_roi`` for its account).
    :param command: the command line recorded in each new ``fit.json``.
    :param threads: onnxruntime threads.
    """

    policy: str
    options: RecommendOptions = field(default_factory=RecommendOptions)
    inputs: CalibrationInputs = field(default_factory=CalibrationInputs)
    command: tuple[str, ...] = ("scripts/recommend.py",)
    threads: int = 1

    def identity(self) -> dict[str, Any]:
        """What every worker of a shared batch must share (compared as JSON): the policy
        (its file's sha256, not its path), recommend's and calibrate's options."""
        policy = Path(self.policy)
        spec = (f"sha256:{report_sha256(policy)}" if policy.is_file() else self.policy)
        return {"policy": spec, "options": asdict(self.options),
                "inputs": asdict(self.inputs)}


@dataclass(frozen=True)
class Account:
    """One report of the batch.

    :param file: the report's file name in the reports folder.
    :param sha256: its bytes' sha256 (workers on other machines must read the same file).
    :param clash: why it cannot run (another report has the same account name), or None.
    """

    name: str
    file: str
    sha256: str
    clash: str | None = None


@dataclass
class BatchResult:
    """What a batch command leaves: every account's row (None for a ``--join`` worker),
    and how many accounts this process ran."""

    rows: list[dict[str, Any]] | None
    ran: int
    out: Path | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows or [] if row.get("status") != "ok"]


def batch_accounts(reports_dir: str | Path) -> list[Account]:
    """The accounts of ``reports_dir``, one per report file, in file-name order.

    :raises ServingError: not a folder, or no report in it.
    """
    accounts: list[Account] = []
    seen: dict[str, str] = {}
    for path in report_files(reports_dir):
        name = path.stem
        clash = None
        if name in seen:
            clash = (f"another report of the batch, {seen[name]}, has the same account name "
                     f"{name!r} (and fits folder): rename one")
        else:
            seen[name] = path.name
        accounts.append(Account(name, path.name, report_sha256(path), clash))
    return accounts


def check_fits_dir(fits_dir: str | Path) -> Path:
    """``--fit FITS`` of a batch: a folder of calibrations, one per account (made if new).

    :raises ServingError: a file, or a single calibration's folder.
    """
    fits_dir = Path(fits_dir)
    if fits_dir.exists() and not fits_dir.is_dir():
        raise ServingError("--fit with --batch: exists and is not a folder", fits_dir)
    if (fits_dir / "fit.json").is_file():
        raise ServingError("--fit with --batch takes a folder of calibrations, one per "
                           "account (FITS/<account>/); this one holds a single calibration "
                           "(fit.json): give its parent or a new folder", fits_dir)
    try:
        fits_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServingError(f"--fit: cannot make the folder ({(exc.strerror or str(exc))})",
                           fits_dir) from None
    return fits_dir


# ------------------------------------------------------------------------------ one account
def account_inputs(report: AccountReport, settings: BatchSettings
                   ) -> tuple[CalibrationInputs, str, float | None]:
    """The account's calibration inputs, where its break-even ROI comes from (the row's
    ``breakeven_source``: the report's column, ``--breakeven-roi``, ``--margin`` or the
    base's margin), and the break-even ROI when it is given rather than fitted."""
    inputs = settings.inputs
    if "breakeven_roi" in report.values:
        value = float(report.values["breakeven_roi"][-1])
        return (dataclasses.replace(inputs, margin=None, breakeven_roi=value),
                f"the report's breakeven_roi column (last day, {value:g})", value)
    if inputs.breakeven_roi is not None:
        return inputs, "--breakeven-roi", inputs.breakeven_roi
    if inputs.margin is not None:
        return inputs, f"--margin {inputs.margin:g} and the fitted refund rate", None
    return (inputs, f"the base scenario {inputs.base!r}'s margin and the fitted refund rate",
            None)


def ensure_fit(report: AccountReport, fit_dir: Path, inputs: CalibrationInputs,
               settings: BatchSettings) -> str:
    """Calibrate ``report`` into ``fit_dir`` unless it holds a current, readable fit.

    :return: what happened, for the row's ``fit`` column: ``reused``, ``fitted`` or
        ``refitted: <why the old fit was stale>``.
    """
    current, why = fit_is_current(fit_dir, report.path, inputs)
    if current:
        try:
            load_fitted(fit_dir, report, inputs.promo_dates)
            return "reused"
        except CalibrationError as exc:
            why = f"unreadable fit ({exc.message})"
    fresh = not (fit_dir / "fit.json").exists()
    calibrate_report(report, fit_dir, inputs, list(settings.command))
    return "fitted" if fresh else f"refitted: {why}"


def fitted_row(rec: Recommendation, outlook: dict[str, Any], fit_state: str,
               breakeven: tuple[str, float | None], fit_dir: Path) -> dict[str, Any]:
    """The row of an account that was recommended for (``status`` ok).

    :param breakeven: where the break-even ROI came from, and its value when given (None:
        the fitted one, ``outlook``'s).
    """
    row = batch_rows([rec])[0]
    fit = outlook["fit"]
    source, given = breakeven
    value = float(fit["breakeven_roi"]) if given is None else given
    row.update(status="ok", error="", breakeven_roi=f"{value:.3f}", breakeven_source=source,
               fit=fit_state, fit_dir=str(fit_dir), identified=len(fit["identified"]),
               parameters=len(fit["identified"]) + len(fit["prior_decided"]))
    for name in SETTINGS:
        summary = outlook["settings"].get(name, {}).get("summary")
        for q in QUANTILES:
            row[f"{name}_profit_{q}"] = f"{summary['profit'][q]:.2f}" if summary else ""
    return row


def error_row(account: Account, path: Path, message: str) -> dict[str, Any]:
    """The row of an account that failed: its name, file, ``status`` error and why."""
    return {"account": account.name, "file": str(path), "status": "error", "error": message}


def run_account(account: Account, reports_dir: Path, fits_dir: Path,
                settings: BatchSettings) -> dict[str, Any]:
    """One account's row: calibrate (or reuse its fit), recommend, forecast. Never raises
    for a bad account: the row says what went wrong (``status`` error)."""
    path = Path(reports_dir) / account.file
    try:
        if account.clash:
            raise CalibrationError(account.clash, path)
        report = read_report(path)
        inputs, source, given = account_inputs(report, settings)
        fit_dir = Path(fits_dir) / account.name
        state = ensure_fit(report, fit_dir, inputs, settings)
        rec, outlook = recommend_fitted(settings.policy, path, fit_dir, settings.options,
                                        threads=settings.threads)
        return fitted_row(rec, outlook, state, (source, given), fit_dir)
    except ServingError as exc:  # CalibrationError included: the account's own problem
        return error_row(account, path, str(exc))
    except ConfigError as exc:
        return error_row(account, path, f"{path}: {exc}")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return error_row(account, path, f"{where}{(exc.strerror or str(exc)).lower()}")
    except Exception as exc:  # a bug or a numerical failure: this account only
        return error_row(account, path, f"internal error ({type(exc).__name__}: {exc})")


def describe_row(row: dict[str, Any]) -> str:
    """One line per account for the command's progress output."""
    if row.get("status") != "ok":
        return f"{row['account']}: error: {row.get('error', '')}"
    return (f"{row['account']}: fit: {row['fit']}; target {row['recommended_target_roi']}, "
            f"budget {row['recommended_budget_cny']} CNY; week's profit "
            f"{row['recommended_profit_p50']} [{row['recommended_profit_p10']} .. "
            f"{row['recommended_profit_p90']}] (current {row['current_profit_p50']})")


# ------------------------------------------------------------------------------ the CSV
def batch_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The CSV's columns: the plain batch's (with its whole-site and anchor columns when a
    row has them), ``status`` and ``error`` after ``file``, then :data:`EXTRA_COLUMNS`."""
    columns = plain_batch_columns(rows)
    at = columns.index("file") + 1
    columns[at:at] = list(STATUS_COLUMNS)
    return columns + list(EXTRA_COLUMNS)


def write_rows_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write the rows as one CSV (:func:`agents.serving.output.write_csv`: UTF-8 with BOM,
    formula-like text escaped, atomically).

    :raises ServingError: ``path`` is not writable (the OS's reason in words).
    """
    return write_csv(path, batch_columns(rows), rows)


# ------------------------------------------------------------------------------ the batch
@dataclass(frozen=True)
class QueueOptions:
    """The shared queue of a batch (:mod:`.batch_queue`).

    :param storage: an Optuna RDB URL (None: SQLite ``FITS/.queue.db``).
    :param study_name: the batch's study (None: a fresh one named by the local time).
    :param join: only work on an existing batch; never write the CSV.
    :param heartbeat_s: seconds between a running account's heartbeats.
    :param grace_s: silence after which its worker counts as dead and the account is retried.
    :param max_retry: retries of an account whose workers keep dying.
    """

    storage: str | None = None
    study_name: str | None = None
    join: bool = False
    heartbeat_s: int = 30
    grace_s: int = 120
    max_retry: int = 3


def run_batch(reports_dir: str | Path, fits_dir: str | Path, out: str | Path | None,
              settings: BatchSettings, workers: int = 1, queue: QueueOptions | None = None,
              log: Callable[[str], None] = print) -> BatchResult:
    """Calibrate and recommend for every report of ``reports_dir`` and write the CSV.

    :param out: the CSV (checked before any work; None with ``queue.join``).
    :param workers: local workers: 1 runs the accounts here, one after another (no queue
        unless ``queue`` gives a storage or a name); more share a queue (this process and
        ``workers - 1`` spawned ones).
    :param queue: the shared queue; other machines join it with the same storage and name.
    :raises ServingError: bad folders, options or ``out`` (nothing is run).
    """
    if workers < 1:
        raise ServingError(f"--workers must be >= 1, got {workers}")
    settings.inputs.check()
    try:
        load_scenario(settings.inputs.base)
    except ConfigError as exc:
        raise ServingError(f"--base: {exc}") from None
    load_policy(settings.policy, threads=settings.threads)  # a bad --policy: before any work
    joining = queue is not None and queue.join
    if not joining:
        if out is None:
            raise ServingError("--out: give the CSV to write")
        out = check_out_path(out)  # before any work
    accounts = batch_accounts(reports_dir)
    fits_dir = check_fits_dir(fits_dir)
    if workers == 1 and (queue is None or (queue.storage is None and queue.study_name is None
                                           and not queue.join)):
        rows = []
        for i, account in enumerate(accounts, start=1):
            began = time.perf_counter()
            row = run_account(account, Path(reports_dir), fits_dir, settings)
            log(f"[{i}/{len(accounts)}] {describe_row(row)} "
                f"({time.perf_counter() - began:.1f} s)")
            rows.append(row)
        ran = len(rows)
    else:
        from agents.calibration.batch_queue import run_queued

        rows, ran = run_queued(accounts, Path(reports_dir), fits_dir, settings, workers,
                               queue or QueueOptions(), log)
    if rows is None:
        return BatchResult(None, ran)
    return BatchResult(rows, ran, write_rows_csv(rows, out))
