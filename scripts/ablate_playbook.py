"""Rule ablation of the playbook: each rule's paired contribution, per scenario and objective.

    python scripts/ablate_playbook.py                       # every named scenario, 32 seeds
    python scripts/ablate_playbook.py --scenarios 3c food --episodes 8 --out ablation.md

Plays the full playbook and the playbook without each rule in turn on the same report seeds
(from 10000), under profit and under the gmv_floor objective, and writes Markdown tables
(k CNY per launch, 95% intervals; bold where the interval excludes zero) to --out or stdout.
docs/baselines.md holds the tables of the default run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

from agents.evaluation.ablation import ablate, markdown_table
from agents.evaluation.stats import BOOTSTRAP_REPS
from envs.config import OBJECTIVES, ConfigError, list_scenarios
from envs.seeds import REPORT_SEED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list_scenarios())
    parser.add_argument("--episodes", type=int, default=32, help="report seeds per scenario")
    parser.add_argument("--seed", type=int, default=REPORT_SEED, help="first report seed")
    parser.add_argument("--bootstrap-reps", type=int, default=BOOTSTRAP_REPS)
    parser.add_argument("--out", type=Path, help="Markdown file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        print("error: --episodes must be at least 2 (intervals need a spread)", file=sys.stderr)
        return 2
    if args.bootstrap_reps < 100:
        print("error: --bootstrap-reps must be at least 100", file=sys.stderr)
        return 2
    seeds = np.arange(args.seed, args.seed + args.episodes)
    values = []
    try:
        for objective in OBJECTIVES:
            for scenario in args.scenarios:
                values += ablate(scenario, objective, seeds, args.seed, args.bootstrap_reps)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = " ".join(["python scripts/ablate_playbook.py", *(argv or sys.argv[1:])])
    parts = [f"Rule ablation of the playbook, {dt.date.today()}: `{command}`; seeds "
             f"{seeds[0]}..{seeds[-1]}. Full playbook minus the playbook without the rule, "
             "k CNY per launch, 95% bootstrap interval of the paired differences."]
    for objective in OBJECTIVES:
        parts += [f"### Objective: {objective}", markdown_table(values, objective)]
    text = "\n\n".join(parts) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
