"""A batch of accounts (:mod:`.batch`) as the slots of the shared trial queue
(:mod:`agents.experiments.queue`): many workers, on one machine or several.

The command that starts the batch creates an Optuna study holding one ``WAITING`` slot per
account (its name and report file in the slot's user attrs); every worker, this process,
the ``workers - 1`` it spawns and any that join with the same storage and study name from
another machine, claims an account, runs :func:`.batch.run_account` under a heartbeat, and
stores the account's row in the trial (:data:`ROW_ATTR`). A dead worker's account is
retried once its heartbeat is stale. When every slot is finished the command (never a
``--join`` worker) collects the rows from the storage, in account order, and writes the
CSV. Running the same command again with the same ``--study-name`` resumes the batch.

Every worker reads the reports from its own ``REPORTS`` folder and writes fits into its own
``FITS`` folder (a shared folder, or a copy of the reports on each machine): the reports'
sha256 are part of the study's identity, so a worker with other reports or options is
refused. The rows travel through the storage.
"""

from __future__ import annotations

import multiprocessing
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from agents.calibration.batch import (
    Account,
    BatchSettings,
    QueueOptions,
    describe_row,
    error_row,
    run_account,
)
from agents.experiments.queue import (
    ERROR_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TrialQueue,
    TuneError,
    create_or_join,
    describe_url,
    open_storage,
    queue_size,
    slot_trials,
    unfinished_slots,
)
from agents.experiments.study import check_study_name
from agents.serving.errors import ServingError

KIND = "recommend_batch"  # the queue study's kind
ACCOUNT_ATTR, FILE_ATTR = "account", "file"  # slot user attrs
ROW_ATTR = "row"  # trial user attr: the account's CSV row
QUEUE_DB = ".queue.db"  # the default SQLite storage, in the fits folder


def default_study_name() -> str:
    """A fresh study name for a batch started without one: ``batch-`` and the local time."""
    return time.strftime("batch-%Y%m%d-%H%M%S")


def default_storage_url(fits_dir: Path) -> str:
    """SQLite in the fits folder (one machine)."""
    return f"sqlite:///{(fits_dir / QUEUE_DB).resolve()}"


def queue_spec(accounts: Sequence[Account], settings: BatchSettings) -> QueueSpec:
    """One slot per account; the identity every worker must share: the accounts (names,
    files, sha256) and the settings."""
    identity = {**settings.identity(),
                "accounts": [[a.name, a.file, a.sha256] for a in accounts]}
    return QueueSpec(KIND, identity, [{}] * len(accounts),
                     [{ACCOUNT_ATTR: a.name, FILE_ATTR: a.file} for a in accounts])


class AccountObjective:
    """The queue's trial function: run the trial's account, store its row in the trial.
    The trial's value is 1 for a row with a recommendation, 0 for an account's error."""

    def __init__(self, accounts: Sequence[Account], reports_dir: Path, fits_dir: Path,
                 settings: BatchSettings, log: Callable[[str], None]):
        self.accounts = {a.file: a for a in accounts}
        self.reports_dir = reports_dir
        self.fits_dir = fits_dir
        self.settings = settings
        self.log = log

    def __call__(self, trial: optuna.Trial) -> float:
        account = self.accounts[trial.user_attrs[FILE_ATTR]]
        row = run_account(account, self.reports_dir, self.fits_dir, self.settings)
        trial.set_user_attr(ROW_ATTR, row)
        self.log(f"  {describe_row(row)}")
        return 1.0 if row.get("status") == "ok" else 0.0


def work(storage: Any, name: str, objective: AccountObjective, heartbeat: HeartbeatSettings,
         log: Callable[[str], None]) -> int:
    """One worker: take accounts until every slot is finished. Returns how many it ran."""
    queue = TrialQueue(storage, name, lambda slot: optuna.load_study(
        study_name=name, storage=storage), heartbeat, log)
    done = 0
    while True:
        done += len(queue.work(objective).ran)
        if not unfinished_slots(queue.study):
            return done
        time.sleep(1.0)  # a dead worker's account is being put back in the queue


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout is the command's answer


def _worker_process(url: str, name: str, heartbeat: HeartbeatSettings,
                    accounts: list[Account], reports_dir: Path, fits_dir: Path,
                    settings: BatchSettings) -> None:
    """A local worker process (spawned): its own database connection."""
    try:
        storage = open_storage(url, heartbeat)
        objective = AccountObjective(accounts, reports_dir, fits_dir, settings, _log)
        work(storage, name, objective, heartbeat, _log)
    except KeyboardInterrupt:
        sys.exit(130)  # the interrupted account went back to the queue
    except TuneError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def run_queued(accounts: Sequence[Account], reports_dir: Path, fits_dir: Path,
               settings: BatchSettings, workers: int, options: QueueOptions,
               log: Callable[[str], None] = _log) -> tuple[list[dict[str, Any]] | None, int]:
    """Create (or join) the batch's study and work on it with ``workers`` local processes
    until every account is finished.

    :return: every account's row in account order (None for a ``join`` worker), and how
        many accounts this process ran.
    :raises ServingError: a bad storage or study name, a study made with other reports or
        settings, or no batch to join.
    """
    try:
        heartbeat = HeartbeatSettings(options.heartbeat_s, options.grace_s, options.max_retry)
        if options.join and not options.study_name:
            raise TuneError("--join: give the --study-name (and --storage) of the batch to "
                            "join")
        name = options.study_name or default_study_name()
        check_study_name(name)
        url = options.storage or default_storage_url(fits_dir)
        storage = open_storage(url, heartbeat)
        spec = queue_spec(accounts, settings)
        if options.join:
            try:
                optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                raise TuneError(f"no batch {name!r} in {describe_url(url)}: start it with "
                                "the same command without --join") from None
        study, created = create_or_join(storage, name, spec)
    except TuneError as exc:
        raise ServingError(batch_message(str(exc))) from None
    log(f"{'created' if created else 'joined'} batch {name!r} ({queue_size(study)} accounts) "
        f"in {describe_url(url)}")
    log(f"add workers (here, or on other machines with a shared --storage): the same "
        f"command with --storage {describe_url(url)} --study-name {name} --join")
    context = multiprocessing.get_context("spawn")  # no database connection is inherited
    children = [context.Process(target=_worker_process, name=f"batch-worker-{i}", args=(
        url, name, heartbeat, list(accounts), reports_dir, fits_dir, settings))
        for i in range(1, workers)]
    for child in children:
        child.start()
    try:  # Ctrl-C reaches the spawned workers too: each gives its account back to the queue
        ran = work(storage, name, AccountObjective(accounts, reports_dir, fits_dir, settings,
                                                   log), heartbeat, log)
    finally:
        for child in children:
            child.join()
    for child in children:
        if child.exitcode not in (0, None):
            log(f"worker {child.name} exited with code {child.exitcode} (an account it left "
                "is retried once its heartbeat is stale)")
    if options.join:
        return None, ran
    study = optuna.load_study(study_name=name, storage=storage)
    return collect(study, accounts, reports_dir), ran


def batch_message(message: str) -> str:
    """The queue's refusal of a study made with another identity, in a batch's words."""
    found = re.search(r"study ('[^']*') exists with another search space or grid \(differs "
                      r"in: ([^)]*)\)", message)
    if found is None:
        return message
    return (f"batch {found.group(1)} exists with other reports or settings (differs in: "
            f"{found.group(2)}); use the same reports and options, or another --study-name")


def collect(study: optuna.Study, accounts: Sequence[Account],
            reports_dir: Path) -> list[dict[str, Any]]:
    """Every account's row from the study, in account order; a slot that did not complete
    (its workers kept dying, or the trial itself failed) is an error row."""
    slots = slot_trials(study)
    rows = []
    for slot, account in enumerate(accounts):
        trial = slots.get(slot)
        if trial is not None and trial.state == TrialState.COMPLETE:
            rows.append(dict(trial.user_attrs[ROW_ATTR]))
            continue
        state = "missing" if trial is None else trial.state.name
        error = "" if trial is None else trial.user_attrs.get(ERROR_ATTR, "")
        why = error or (f"its workers died (last attempt trial {trial.number}: {state}); run "
                        "the command again" if trial is not None else "never run")
        rows.append(error_row(account, reports_dir / account.file, f"not finished: {why}"))
    return rows
