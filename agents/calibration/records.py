"""Per-account records of the runs over synthetic accounts (the calibration benchmark, the
interval widening's measurement): each kept as a JSON file as soon as it is measured, so a
run stopped part-way (or by one account's error) keeps what it measured, and a rerun with
the same folder goes on from it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from pathlib import Path

from agents.run_folder import write_text_atomic

Job = tuple[int, int]  # (account index, days of history)


def record_path(folder: Path, index: int, days: int) -> Path:
    """Where account ``index``'s record at ``days`` days is kept."""
    return folder / f"account_{days}d_{index}.json"


def kept_records(folder: Path, jobs: list[Job]) -> dict[Job, dict]:
    """The records of ``jobs`` already kept in ``folder``."""
    return {job: json.loads(record_path(folder, *job).read_text()) for job in jobs
            if record_path(folder, *job).is_file()}


def run_records(run: Callable[..., dict], todo: list[Job], folder: Path, workers: int,
                *args) -> Iterator[dict]:
    """``run(index, days, *args)`` for each job of ``todo``, in this process (one worker) or
    over a pool of ``workers`` processes; each record (holding ``index`` and ``days``) is
    kept in ``folder`` as it finishes, then yielded."""
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        if pool is None:
            finished = (run(i, d, *args) for i, d in todo)
        else:
            finished = (f.result() for f in as_completed(
                [pool.submit(run, i, d, *args) for i, d in todo]))
        for r in finished:
            write_text_atomic(record_path(folder, r["index"], r["days"]), json.dumps(r) + "\n")
            yield r
