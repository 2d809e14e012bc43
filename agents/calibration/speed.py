"""How fast accounts are fitted: one core, and a pool of worker processes.

``scripts/benchmark.py`` reports both: the seconds one fit of a report takes on one core
(wall and CPU, median and max over synthetic accounts), and the accounts a pool of
``workers`` processes fits per minute, from which the time for 1,000 accounts follows. The
reports are written before the clock starts; a fit is :func:`.fit.fit_account` alone (what
``calibrate`` adds, the held-out check and the files, is not counted).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SCENARIOS = ("3c", "beauty", "food", "apparel_live")
FIRST_INDEX = 400  # synthetic accounts 60400 on (agents.calibration.synthetic)


def _reports(folder: Path, accounts: int, days: int) -> list[tuple[str, str, str]]:
    """``accounts`` synthetic reports of ``days`` days: (path, base scenario, promo dates)."""
    from agents.calibration.synthetic import synthetic_account
    from envs.config import load_scenario

    out = []
    for i in range(accounts):
        name = SCENARIOS[i % len(SCENARIOS)]
        acc = synthetic_account(load_scenario(name), FIRST_INDEX + i, days)
        out.append((str(acc.write(folder / f"account_{i}.csv")), name, acc.promo_dates))
    return out


def _fit_one(job: tuple[str, str, str]) -> tuple[float, float]:
    """Read and fit one report; its fit's wall and CPU seconds."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from agents.calibration.account import account_history
    from agents.calibration.fit import fit_account
    from agents.serving.inputs import parse_promotions
    from agents.serving.report import read_report
    from envs.config import load_scenario

    path, name, promo = job
    base = load_scenario(name)
    history = account_history(read_report(path), base,
                              parse_promotions(promo, base.promo_peak_length_days))
    wall, cpu = time.perf_counter(), time.process_time()
    fit_account(history, base)
    return time.perf_counter() - wall, time.process_time() - cpu


def _unpin() -> None:
    """In a pool worker: every core the machine has (the caller may be pinned to one)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def calibration_speed(accounts: int, days: int, workers: int) -> dict:
    """Fit ``accounts`` synthetic ``days``-day reports one by one in this process (after a
    warm-up fit), then all of them again over ``workers`` processes (one: no pool, the
    one-by-one fits' rate).

    :return: per-fit wall and CPU seconds (median, max), the pool's accounts per minute and
        the minutes 1,000 accounts would take at that rate.
    """
    with tempfile.TemporaryDirectory() as folder:
        jobs = _reports(Path(folder), accounts, days)
        _fit_one(jobs[0])  # compiled code and imports warm
        timed = [_fit_one(job) for job in jobs]
        if workers > 1:
            with ProcessPoolExecutor(workers, initializer=_unpin) as pool:
                list(pool.map(_fit_one, jobs[:workers]))  # each worker warm
                start = time.perf_counter()
                list(pool.map(_fit_one, jobs))
                pooled = time.perf_counter() - start
        else:  # one worker: the fits above, one after another
            pooled = sum(t[0] for t in timed)
    walls, cpus = [t[0] for t in timed], [t[1] for t in timed]
    per_minute = accounts / pooled * 60.0
    return {"accounts": accounts, "days": days, "workers": workers,
            "fit_wall_s": {"median": statistics.median(walls), "max": max(walls)},
            "fit_cpu_s": {"median": statistics.median(cpus), "max": max(cpus)},
            "pool_accounts_per_minute": per_minute,
            "minutes_for_1000_accounts": 1000.0 / per_minute}
