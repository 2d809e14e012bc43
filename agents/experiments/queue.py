"""A shared queue of trials in an Optuna RDB storage: many workers, on one machine or many.

The study that creates the queue enqueues a fixed list of *slots* (``study.enqueue_trial``:
one ``WAITING`` trial each, tagged with its slot number); every worker then loops

1. fail the trials whose worker stopped sending heartbeats (Optuna's
   ``fail_stale_trials``); the storage's ``RetryHeartbeatStaleTrialCallback`` puts a
   ``WAITING`` copy of each back in the queue (same slot, same parameters);
2. claim a ``WAITING`` trial (a conditional ``WAITING -> RUNNING`` update, atomic on every
   database, SQLite included: one winner, :func:`take_waiting_trial`), record its
   heartbeat, run it while a thread keeps the heartbeat fresh, and tell the result;
3. when nothing waits, wait while other workers' trials run (one of them may die and come
   back), and stop when nothing is left.

So ``n`` slots end as exactly ``n`` finished trials (``COMPLETE``, ``PRUNED``, or ``FAIL``
if the trial itself raised), whatever number of workers join or die: no trial is lost and
none runs twice to completion. A killed attempt stays in the study as ``FAIL`` (with the
worker that ran it); its retry carries ``failed_trial`` / ``retry_history`` system attrs.
Heartbeats need an RDB storage: SQLite (one machine) or PostgreSQL/MySQL (several).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

SLOT_ATTR = "slot"  # trial user attr: the queue slot a trial (or its retry) fills
WORKER_ATTR = "worker"  # trial user attr: host:pid of the worker that ran the attempt
ERROR_ATTR = "error"  # trial user attr: why a trial failed (its own exception)
QUEUE_SIZE_ATTR = "queue_size"  # study user attr, set last by the study's creator
KIND_ATTR = "kind"  # study user attr: tune | sweep
IDENTITY_ATTR = "identity"  # study user attr: what every joining worker must share
IDENTITY_HASH_ATTR = "identity_hash"
RDB_DIALECTS = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
CREATOR_WAIT_S = 60.0  # how long a joining worker waits for the creator to fill the queue

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TuneError(ValueError):
    """Bad input to a study: its storage, its name, its space or its grid."""


@dataclass(frozen=True)
class HeartbeatSettings:
    """How a dead worker is noticed and its trial retried."""

    interval_s: int = 30  # a running trial's worker writes a heartbeat this often
    grace_s: int = 120  # silence after which the trial is failed and retried
    max_retry: int = 3  # retries of one slot after killed attempts (then it stays FAIL)

    def __post_init__(self) -> None:
        if self.interval_s < 1 or self.grace_s < 1:
            raise TuneError("--heartbeat and --grace: whole seconds >= 1")
        if self.grace_s <= self.interval_s:
            raise TuneError(f"--grace ({self.grace_s} s) must exceed --heartbeat "
                            f"({self.interval_s} s), or live trials look dead")
        if self.max_retry < 0:
            raise TuneError("--max-retry: must be >= 0")


def describe_url(url: str) -> str:
    """The storage URL with its password hidden (for messages and records)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str, heartbeat: HeartbeatSettings) -> RDBStorage:
    """An Optuna RDB storage with heartbeats and retries of killed trials.

    :param url: any SQLAlchemy URL Optuna accepts (``sqlite:///path/study.db``,
        ``postgresql://user:password@host:5432/db``).
    :raises TuneError: a malformed, unsupported or unreachable URL (one clear line).
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise TuneError(f"--storage {url!r}: not a database URL (e.g. sqlite:///runs/x.db or "
                        "postgresql://user:password@host:5432/db)") from None
    dialect = parsed.get_backend_name()
    if dialect not in RDB_DIALECTS:
        raise TuneError(f"--storage {describe_url(url)}: {dialect!r} is not a database Optuna "
                        f"can share with heartbeats (use {', '.join(RDB_DIALECTS)})")
    engine_url = url
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        # SQLAlchemy 2.1 defaults to psycopg 3; the lock file pins psycopg2-binary
        engine_url = parsed.set(drivername="postgresql+psycopg2").render_as_string(
            hide_password=False)
    if dialect == "sqlite":
        connect_args: dict[str, Any] = {"timeout": 60}  # seconds to wait on a locked file
    elif dialect == "postgresql":
        connect_args = {"connect_timeout": 10}  # seconds: an unreachable host fails fast
    else:
        connect_args = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        attempt = 0
        while True:
            try:
                return RDBStorage(
                    engine_url, engine_kwargs={"connect_args": connect_args, "pool_pre_ping": True},
                    heartbeat_interval=heartbeat.interval_s, grace_period=heartbeat.grace_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=heartbeat.max_retry))
            except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as exc:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                if _creating_tables(exc) and attempt < 2:
                    attempt += 1
                    time.sleep(attempt)  # another worker is creating the tables right now
                    continue
                raise TuneError(f"cannot open storage {describe_url(url)}: {reason}") from None


def _creating_tables(exc: BaseException) -> bool:
    """Two workers started on a new database race to create Optuna's tables; the loser sees
    a duplicate table, type or key (SQLite and PostgreSQL word it differently)."""
    return isinstance(exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)) \
        or "already exists" in str(exc)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueSpec:
    """What a study's creator puts in the queue, and what joining workers must match."""

    kind: str  # tune | sweep
    identity: Mapping[str, Any]  # compared as JSON by every joining worker
    slots: Sequence[Mapping[str, Any]]  # fixed params of each slot ({} lets the sampler draw)
    slot_attrs: Sequence[Mapping[str, Any]] = ()  # extra user attrs per slot
    strict_size: bool = True  # joining: the study must have len(slots) slots
    study_attrs: Mapping[str, Any] = field(default_factory=dict)  # set by the creator

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _differences(ours: Mapping[str, Any], theirs: Mapping[str, Any], prefix: str = "") -> list:
    keys = sorted(set(ours) | set(theirs))
    out = []
    for key in keys:
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{key}.")
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True,
                                                                      default=str):
            out.append(f"{prefix}{key}")
    return out


def create_or_join(storage: RDBStorage, study_name: str, spec: QueueSpec,
                   direction: str = "maximize") -> tuple[optuna.Study, bool]:
    """Create the study and fill its queue, or join the existing one after checking that it
    was made with the same kind, identity and number of slots.

    :return: ``(study, created)``.
    :raises TuneError: the name exists with another kind, space or grid.
    """
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, direction=direction)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage)
        _check_joinable(study, spec)
        return study, False
    study.set_user_attr(KIND_ATTR, spec.kind)
    study.set_user_attr(IDENTITY_ATTR, json.loads(json.dumps(spec.identity, default=str)))
    study.set_user_attr(IDENTITY_HASH_ATTR, spec.identity_hash())
    for key, value in spec.study_attrs.items():
        study.set_user_attr(key, value)
    attrs = list(spec.slot_attrs) or [{}] * len(spec.slots)
    for slot, (params, extra) in enumerate(zip(spec.slots, attrs, strict=True)):
        study.enqueue_trial(dict(params), user_attrs={SLOT_ATTR: slot, **extra})
    study.set_user_attr(QUEUE_SIZE_ATTR, len(spec.slots))
    return study, True


def _check_joinable(study: optuna.Study, spec: QueueSpec) -> None:
    name = study.study_name
    deadline = time.monotonic() + CREATOR_WAIT_S
    while QUEUE_SIZE_ATTR not in study.user_attrs:
        if KIND_ATTR not in study.user_attrs and study.trials:
            raise TuneError(f"study {name!r} exists but was not made by this toolkit; choose "
                            "another --study-name")
        if time.monotonic() > deadline:
            raise TuneError(f"study {name!r} exists but its creator never finished filling "
                            "its queue; choose another --study-name")
        time.sleep(0.5)
    attrs = study.user_attrs
    if attrs.get(KIND_ATTR) != spec.kind:
        raise TuneError(f"study {name!r} exists as a {attrs.get(KIND_ATTR)} study, not a "
                        f"{spec.kind}; choose another --study-name")
    if attrs.get(IDENTITY_HASH_ATTR) != spec.identity_hash():
        theirs = attrs.get(IDENTITY_ATTR, {})
        ours = json.loads(json.dumps(spec.identity, default=str))
        diff = ", ".join(_differences(ours, theirs)[:8]) or "its identity"
        raise TuneError(f"study {name!r} exists with another search space or grid (differs "
                        f"in: {diff}); join it with the same settings, or choose another "
                        "--study-name")
    if spec.strict_size and attrs[QUEUE_SIZE_ATTR] != len(spec.slots):
        raise TuneError(f"study {name!r} was created for {attrs[QUEUE_SIZE_ATTR]} trials, "
                        f"not {len(spec.slots)}; join it without --n-trials or with the same "
                        "number")


def queue_size(study: optuna.Study) -> int:
    """The number of slots the study's creator enqueued."""
    return int(study.user_attrs.get(QUEUE_SIZE_ATTR, 0))


def state_counts(study: optuna.Study) -> dict[str, int]:
    """The study's trials by state name (``COMPLETE``, ``FAIL``, ``RUNNING``, ...)."""
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
class _HeartbeatThread:
    """Keeps a running trial's heartbeat fresh from a daemon thread."""

    def __init__(self, storage: RDBStorage, trial_id: int, interval_s: int):
        self._storage = storage
        self._trial_id = trial_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except sqlalchemy.exc.SQLAlchemyError:
                pass  # a transient database error; the next beat tries again

    def __enter__(self) -> _HeartbeatThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class WorkerReport:
    """What one worker did."""

    worker: str
    ran: list[int] = field(default_factory=list)  # trial numbers this worker finished
    states: dict[str, int] = field(default_factory=dict)  # the study's trials by state, at end


def worker_name() -> str:
    """``host:pid``, recorded on every trial a worker runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialQueue:
    """The worker side of a queue study (see the module docstring).

    :param storage: the study's storage (from :func:`open_storage`).
    :param study_name: the study, created by :func:`create_or_join`.
    :param make_study: builds the ``Study`` a claimed trial runs in, given the trial's slot
        (so each slot gets its own seeded sampler).
    """

    def __init__(self, storage: RDBStorage, study_name: str,
                 make_study: Callable[[int], optuna.Study], heartbeat: HeartbeatSettings,
                 log: Callable[[str], None] = print):
        self.storage = storage
        self.study_name = study_name
        self.make_study = make_study
        self.heartbeat = heartbeat
        self.log = log
        self.study = optuna.load_study(study_name=study_name, storage=storage)
        self.study_id = storage.get_study_id_from_name(study_name)
        self.worker = worker_name()

    # -- queue operations -----------------------------------------------------------------
    def fail_dead_trials(self) -> None:
        """Fail trials whose worker went silent; the storage's callback requeues them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def claim(self) -> int | None:
        """Atomically take one waiting trial (its heartbeat recorded first, so a worker
        killed right after claiming is still noticed). Returns its trial id, or None."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id,
                                                                            trial.number)
            try:
                self.storage.record_heartbeat(trial_id)
                if take_waiting_trial(self.storage, trial_id):
                    return trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            except sqlalchemy.exc.OperationalError:
                time.sleep(0.2)  # SQLite: another worker holds the write lock
                continue
        return None

    # -- the loop -------------------------------------------------------------------------
    def work(self, run_trial: Callable[[optuna.Trial], float],
             max_trials: int | None = None) -> WorkerReport:
        """Run trials until the queue is empty and no other worker's trial is running.

        :param run_trial: the objective; raises ``optuna.TrialPruned`` to prune.
        :param max_trials: stop after this many trials of this worker (None: no limit).
        """
        report = WorkerReport(self.worker)
        poll_s = max(1.0, min(5.0, self.heartbeat.interval_s))
        waiting_said = False
        while max_trials is None or len(report.ran) < max_trials:
            self.fail_dead_trials()
            trial_id = self.claim()
            if trial_id is not None:
                report.ran.append(self._run(trial_id, run_trial))
                waiting_said = False
                continue
            running = state_counts(self.study).get("RUNNING", 0)
            if running == 0:
                break
            if not waiting_said:
                self.log(f"[{self.worker}] queue empty; waiting while {running} trial(s) of "
                         "other workers run (a dead one comes back here)")
                waiting_said = True
            time.sleep(poll_s)
        report.states = state_counts(self.study)
        return report

    def _run(self, trial_id: int, run_trial: Callable[[optuna.Trial], float]) -> int:
        frozen = self.storage.get_trial(trial_id)
        slot = int(frozen.user_attrs.get(SLOT_ATTR, -1))
        study = self.make_study(slot)
        study.get_trials(deepcopy=False)  # loads the claimed trial into the study's cache
        trial = optuna.Trial(study, trial_id)
        trial.set_user_attr(WORKER_ATTR, self.worker)
        retry_of = frozen.system_attrs.get("failed_trial")  # set by the retry callback
        note = f" (retry of trial {retry_of})" if retry_of is not None else ""
        self.log(f"[{self.worker}] trial {trial.number}, slot {slot}{note}: started")
        began = time.perf_counter()
        with _HeartbeatThread(self.storage, trial_id, self.heartbeat.interval_s):
            try:
                value = run_trial(trial)
            except UpdateFinishedTrialError:
                return self._taken_over(trial.number)
            except optuna.TrialPruned as exc:
                study.tell(trial, state=TrialState.PRUNED)
                self.log(f"[{self.worker}] trial {trial.number}: pruned ({exc})")
                return trial.number
            except KeyboardInterrupt as exc:
                self._give_back(study, trial_id)
                raise KeyboardInterrupt(f"trial {trial.number} given back to the queue") \
                    from exc
            except Exception as exc:  # the trial's own failure: recorded, not retried
                trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:2000])
                study.tell(trial, state=TrialState.FAIL)
                self.log(f"[{self.worker}] trial {trial.number}: FAILED: "
                         f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                return trial.number
        if self.storage.get_trial(trial_id).state.is_finished():
            return self._taken_over(trial.number)
        study.tell(trial, value)
        self.log(f"[{self.worker}] trial {trial.number}: {value:+,.1f} "
                 f"({time.perf_counter() - began:.0f} s)")
        return trial.number

    def _taken_over(self, number: int) -> int:
        """The trial was finished while this worker ran it: its heartbeat went stale (a
        long stretch that held the interpreter, such as a first compile on a loaded
        machine), so it was failed and its slot re-queued for another worker. This
        attempt's result is dropped; the slot's retry counts."""
        self.log(f"[{self.worker}] trial {number}: finished elsewhere while it ran (its "
                 "heartbeat went stale and the slot was re-queued); this result is dropped")
        return number

    def _give_back(self, study: optuna.Study, trial_id: int) -> None:
        """An interrupted attempt: FAIL it and put a copy back in the queue (as if it had
        died), so another worker finishes the slot."""
        self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=self.heartbeat.max_retry)
        retry(study, self.storage.get_trial(trial_id))


def take_waiting_trial(storage: RDBStorage, trial_id: int) -> bool:
    """Move trial ``trial_id`` from ``WAITING`` to ``RUNNING`` if it is still waiting, in one
    conditional ``UPDATE`` (a compare-and-set the database applies atomically). True when
    this call moved it.

    Optuna's own ``set_trial_state_values`` reads the state with ``SELECT ... FOR UPDATE``
    and then writes it; SQLite ignores ``FOR UPDATE``, so two workers could both read
    ``WAITING`` and both take the trial (seen under load: two workers ran one trial, the
    second failed on the first's run folder, and its slot was lost). One statement cannot
    interleave that way on any database."""
    from optuna.storages._rdb import models  # the storage's own schema (its table, its types)

    table = models.TrialModel.__table__
    with storage.engine.begin() as connection:
        moved = connection.execute(
            table.update()
            .where(table.c.trial_id == trial_id, table.c.state == TrialState.WAITING)
            .values(state=TrialState.RUNNING, datetime_start=datetime.now())).rowcount
    return moved == 1


def slot_trials(study: optuna.Study) -> dict[int, FrozenTrial]:
    """The final attempt of each slot (retries replace killed attempts)."""
    out: dict[int, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        slot = trial.user_attrs.get(SLOT_ATTR)
        if slot is not None and (slot not in out or trial.number > out[slot].number):
            out[int(slot)] = trial
    return out


def unfinished_slots(study: optuna.Study) -> list[int]:
    """Slots whose last attempt has not finished (waiting, running, or being retried)."""
    slots = slot_trials(study)
    return [s for s in range(queue_size(study))
            if s not in slots or not slots[s].state.is_finished()]
