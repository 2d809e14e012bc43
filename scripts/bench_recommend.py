"""Throughput of batched recommendations (run it on one core for the README's numbers).

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python scripts/bench_recommend.py \
        --policy runs/<run>/export/policy.onnx --accounts 2000

Simulates ``--accounts`` accounts (report seeds from 10000), writes each one's 20-day report
as a CSV, then times (best of ``--repeat``): reading the files, scoring the read reports in
one batch (features, policy, guards, the playbook beside it), and the whole of
``recommend --batch`` without process start-up. Prints recommendations per second as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from agents.serving.loading import load_policy
from agents.serving.recommend import (
    RecommendOptions,
    recommend_files,
    recommend_reports,
    report_files,
)
from agents.serving.report import read_report, write_report
from agents.serving.simulated import dated_account
from envs.seeds import REPORT_SEED
from envs.simulator import Simulator

REPORT_DAYS = 20


def write_reports(policy, folder: Path, accounts: int, days: int = 30) -> list[Path]:
    """``accounts`` simulated reports (held settings) as CSV files in ``folder``."""
    cfg = policy.config.replace(history_days=REPORT_DAYS)
    sim = Simulator(cfg, n=accounts)
    sim.reset(seeds=list(range(REPORT_SEED, REPORT_SEED + accounts)))
    for _ in range(days):
        sim.step(np.zeros((accounts, sim.action_dim)))
    paths = []
    for i in range(accounts):
        account = dated_account(sim, account=i)
        paths.append(write_report(folder / f"account_{i:05d}.csv", account.dates,
                                  account.columns()))
    return paths


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--policy", required=True)
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    policy = load_policy(args.policy)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_reports(policy, folder, args.accounts)
        files = report_files(folder)
        reports = [read_report(f) for f in files]
        n = len(reports)
        with_playbook, alone = RecommendOptions(), RecommendOptions(compare=None)
        t_read = best_time(lambda: [read_report(f) for f in files], args.repeat)
        t_score = best_time(lambda: recommend_reports(policy, reports, with_playbook),
                            args.repeat)
        t_alone = best_time(lambda: recommend_reports(policy, reports, alone), args.repeat)
        t_batch = best_time(lambda: recommend_files(policy, files, with_playbook, True),
                            args.repeat)
    print(json.dumps({
        "policy": args.policy, "accounts": n,
        "read_reports_per_s": round(n / t_read),
        "score_per_s_with_playbook": round(n / t_score),
        "score_per_s_policy_only": round(n / t_alone),
        "batch_end_to_end_per_s": round(n / t_batch),
    }, indent=2))


if __name__ == "__main__":
    main()
