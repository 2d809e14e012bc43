"""A queue study on this machine: its folder, its record, and one worker's run over it.

Tuning (:mod:`agents.experiments.tuning`) and sweeps (:mod:`agents.experiments.sweep`) differ
only in their queue (:class:`agents.experiments.queue.QueueSpec`) and their objective; both live in
``runs/<kind>__<study>/`` with the default SQLite storage ``study.db``, a ``study.json``
record, and one run folder per trial (the trial's ``run_dir`` user attr).
"""

from __future__ import annotations

import fcntl
import json
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from agents.experiments.queue import (
    HeartbeatSettings,
    QueueSpec,
    TrialQueue,
    TuneError,
    WorkerReport,
    create_or_join,
    describe_url,
    open_storage,
    queue_size,
    slot_trials,
    state_counts,
)
from agents.run_folder import (
    RUN_JSON,
    command_line,
    package_versions,
    read_run_json,
    update_run_json,
    write_json_atomic,
)
from agents.run_lock import RunBusyError, RunLock

if TYPE_CHECKING:  # training (torch) loads only where a trial trains: searches stay light
    from agents.training.config import TrainConfig
    from agents.training.validation import ValidationResult

STUDY_DB = "study.db"
STUDY_JSON = "study.json"
SEED_ATTR, RUN_ATTR = "seed", "run_dir"  # trial user attrs: training seed, run folder
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_study_name(name: str) -> str:
    """A study name usable in a folder name: letters, digits, ``_.-``, no ``__``."""
    if not _STUDY_NAME.match(name) or "__" in name:
        raise TuneError(f"--study-name {name!r}: use up to 64 letters, digits, '_', '.' or "
                        "'-', without '__'")
    return name


def study_dir(runs_dir: str | Path, kind: str, study_name: str) -> Path:
    """``runs/<kind>__<study>/``: the study's folder on this machine."""
    return Path(runs_dir) / f"{kind}__{check_study_name(study_name)}"


def default_storage_url(folder: Path) -> str:
    """The embedded default: a SQLite file in the study's folder."""
    return f"sqlite:///{(folder / STUDY_DB).resolve()}"


def safe_command(argv: list[str] | None = None) -> list[str]:
    """This process's command line (or ``argv``) with database passwords hidden, for records:
    ``--storage postgresql://user:pw@host/db`` becomes ``postgresql://user:***@host/db``."""
    out = []
    for arg in command_line() if argv is None else argv:
        prefix, _, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
        if "://" in value and "@" in value:
            value = describe_url(value)
        out.append(f"{prefix}={value}" if prefix else value)
    return out


def write_study_record(folder: Path, record: Mapping[str, Any]) -> None:
    """``study.json`` on this machine (first worker writes it; later ones add themselves,
    one at a time: workers starting together take turns on a lock file)."""
    path = folder / STUDY_JSON
    with open(folder / ".study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        workers = []
        if path.is_file():
            try:
                workers = json.loads(path.read_text(encoding="utf-8")).get("workers", [])
            except (OSError, ValueError):
                workers = []
        workers.append({"command": shlex.join(safe_command()),
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write_json_atomic(path, {**record, "package_versions": package_versions(),
                                 "workers": workers})


def mark_abandoned(user_attrs: Mapping[str, Any], retry_number: int) -> None:
    """A killed attempt's run folder (if on this machine) says it was retried: a retried
    trial starts with the user attrs of the attempt it replaces."""
    old = user_attrs.get(RUN_ATTR)
    if not (old and (Path(old) / RUN_JSON).is_file()):
        return
    try:
        with RunLock(old):
            status = read_run_json(Path(old)).get("status")
            if status in ("running", "failed"):
                update_run_json(Path(old), status="abandoned",
                                note=f"its worker died; retried as trial {retry_number}")
            else:  # trained to the end, but the worker died before the study recorded it
                update_run_json(Path(old), note=f"its worker died before the study "
                                f"recorded the result; retried as trial {retry_number}")
    except RunBusyError:
        pass  # its worker still writes it (alive after all): its own record stands


def train_trial(trial: optuna.Trial, config: TrainConfig, folder: Path, run_name: str,
                on_validation: Callable[[ValidationResult], None] | None = None) -> Path:
    """Train a trial's run into the study's folder with :func:`agents.training.train.train`; the
    trial records its run folder and seed. A pruned run's status becomes ``pruned``; an
    interrupted one (Ctrl-C, SIGTERM) raises ``KeyboardInterrupt`` so the queue gives the
    trial back."""
    from agents.training.interrupt import InterruptedTrainingError
    from agents.training.train import train

    mark_abandoned(trial.user_attrs, trial.number)  # a retry carries the dead attempt's attrs
    run_dir = folder / run_name
    trial.set_user_attr(SEED_ATTR, config.seed)
    trial.set_user_attr(RUN_ATTR, str(run_dir))
    try:
        return train(config, runs_dir=folder, run_name=run_name, on_validation=on_validation,
                     command=[*safe_command(), f"# trial {trial.number} of "
                              f"{trial.study.study_name}"])
    except optuna.TrialPruned:
        update_run_json(run_dir, status="pruned")
        raise
    except InterruptedTrainingError as exc:
        raise KeyboardInterrupt(str(exc)) from exc


@dataclass
class StudyRun:
    """What one worker leaves: the study, its folder here, and what the worker did."""

    study: optuna.Study
    folder: Path
    storage: str  # the URL, password hidden
    report: WorkerReport


def run_study(spec: QueueSpec, study_name: str,
              make_objective: Callable[[Path], Callable[[optuna.Trial], float]], *,
              storage_url: str | None = None, runs_dir: str | Path = "runs",
              heartbeat: HeartbeatSettings | None = None,
              study_kwargs: Callable[[int], Mapping[str, Any]] = lambda slot: {},
              record: Mapping[str, Any] | None = None, max_trials: int | None = None,
              log: Callable[[str], None] = print) -> StudyRun:
    """Create or join the study ``study_name`` and work on its queue until it is empty.

    :param make_objective: the trial function, given the study's folder.
    :param storage_url: any Optuna RDB URL; default SQLite ``runs/<kind>__<name>/study.db``.
    :param study_kwargs: ``optuna.load_study`` arguments (sampler, pruner) for a slot.
    :param record: what ``study.json`` records besides the name, kind and storage.
    :param max_trials: stop this worker after that many trials (the rest stay queued).
    :raises TuneError: bad storage, or the name exists with another kind, identity or size.
    """
    heartbeat = heartbeat or HeartbeatSettings()
    folder = study_dir(runs_dir, spec.kind, study_name)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage_url or default_storage_url(folder)
    storage = open_storage(url, heartbeat)
    study, created = create_or_join(storage, study_name, spec)
    log(f"{'created' if created else 'joined'} {spec.kind} study {study_name!r} "
        f"({queue_size(study)} trials) in {describe_url(url)}")
    write_study_record(folder, {"study_name": study_name, "kind": spec.kind,
                                "storage": describe_url(url), "n_trials": queue_size(study),
                                **(record or {}), "identity": spec.identity})

    def make_study(slot: int) -> optuna.Study:
        return optuna.load_study(study_name=study_name, storage=storage, **study_kwargs(slot))

    queue = TrialQueue(storage, study_name, make_study, heartbeat, log)
    report = queue.work(make_objective(folder), max_trials=max_trials)
    return StudyRun(queue.study, folder, describe_url(url), report)


def load_study(study_name: str, storage_url: str | None, runs_dir: str | Path = "runs",
               kind: str = "tune") -> tuple[optuna.Study, RDBStorage]:
    """An existing study (for export or aggregation), without working on it."""
    folder = study_dir(runs_dir, kind, study_name)
    url = storage_url or default_storage_url(folder)
    if storage_url is None and not (folder / STUDY_DB).is_file():
        raise TuneError(f"no study {study_name!r} in {folder} (pass its --storage URL)")
    storage = open_storage(url, HeartbeatSettings())
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise TuneError(f"no study {study_name!r} in {describe_url(url)}") from None
    return study, storage


def summarize(study: optuna.Study, value: str, top: int = 5) -> str:
    """The study in a few lines: trials by state, retried slots, the best trials.

    :param value: what a trial's value is (for the heading).
    """
    trials = study.get_trials(deepcopy=False)
    lines = [f"study {study.study_name!r}: {queue_size(study)} trials asked; "
             + ", ".join(f"{n} {s}" for s, n in sorted(state_counts(study).items()))]
    retried = [t for t in trials if "failed_trial" in t.system_attrs]
    if retried:
        lines.append("retried after a worker died: " + ", ".join(
            f"trial {t.system_attrs['failed_trial']} -> {t.number}" for t in retried))
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                  key=lambda t: -t.value)[:top]
    if done:
        lines.append(f"best trials ({value}):")
    for t in done:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in t.params.items())
        lines.append(f"  trial {t.number:4d} (slot {t.user_attrs.get('slot')}, seed "
                     f"{t.user_attrs.get(SEED_ATTR)}): {t.value:+12,.0f}   {params}")
    unfinished = [s for s, t in slot_trials(study).items() if not t.state.is_finished()]
    if unfinished:
        lines.append(f"slots not finished yet: {unfinished}")
    return "\n".join(lines)


def describe_study_run(run: StudyRun, value: str) -> str:
    """What a worker prints at the end: the summary and where the run folders are."""
    return (f"{summarize(run.study, value)}\nrun folders: {run.folder}   (TensorBoard: "
            f"tensorboard --logdir {run.folder})")
