"""Per-account records of the runs over synthetic accounts (the calibration benchmark, the
interval widening's measurement): each kept as a JSON file as soon as it is measured, so a
run stopped part-way (or by one account's error) keeps what it measured, and a rerun with
the same folder goes on from it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path

from agents.run_folder import write_text_atomic
from agents.serving.errors import ServingError

Job = tuple[int, int]  # (account index, days of history)


def record_path(folder: Path, index: int, days: int) -> Path:
    """Where account ``index``'s record at ``days`` days is kept."""
    return folder / f"account_{days}d_{index}.json"


def kept_records(folder: Path, jobs: list[Job]) -> dict[Job, dict]:
    """The records of ``jobs`` already kept in ``folder``."""
    return {job: json.loads(record_path(folder, *job).read_text()) for job in jobs
            if record_path(folder, *job).is_file()}


def rejected_record(index: int, days: int, scenario: str, error: Exception) -> dict:
    """The record of an account whose report ``calibrate`` refuses (it would exit 2 with
    ``error``'s message, e.g. orders on too few days to fit the order value; the report's
    path left out, the column and row kept): kept beside the fitted ones and counted as
    refused, not fitted. Readers skip it (:func:`fitted`)."""
    said = (str(ServingError(error.message, row=error.row, column=error.column))
            if isinstance(error, ServingError) else str(error))
    return {"index": index, "days": days, "scenario": scenario, "rejected": said}


def refused(record: dict) -> bool:
    """Whether ``record`` is a :func:`rejected_record` (its report refused, not fitted)."""
    return "rejected" in record


def refusal(record: dict) -> str:
    """A refused account and what ``calibrate`` said of its report, in words."""
    return (f"account {record['index']} ({record['scenario']}, {record['days']} days): "
            f"{record['rejected']}")


def fitted(records: Iterable[dict]) -> list[dict]:
    """The records of accounts that were fitted (not :func:`refused`)."""
    return [r for r in records if not refused(r)]


def run_records(run: Callable[..., dict], todo: list[Job], folder: Path, workers: int,
                *args) -> Iterator[dict]:
    """``run(index, days, *args)`` for each job of ``todo``, in this process (one worker) or
    over a pool of ``workers`` processes; each record (holding ``index`` and ``days``) is
    kept in ``folder`` as it finishes, then yielded. When a job fails, the jobs not started
    are cancelled, those running finish and are kept, and the error is raised."""

    def keep(r: dict) -> dict:
        write_text_atomic(record_path(folder, r["index"], r["days"]), json.dumps(r) + "\n")
        return r

    if workers <= 1:
        for i, d in todo:
            yield keep(run(i, d, *args))
        return
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(run, i, d, *args) for i, d in todo]
        kept: set[Future] = set()
        try:
            for future in as_completed(futures):
                r = future.result()
                kept.add(future)
                yield keep(r)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            for future in futures:
                if (future not in kept and future.done() and not future.cancelled()
                        and future.exception() is None):
                    keep(future.result())
            raise
