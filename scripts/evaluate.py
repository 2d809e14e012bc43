"""Benchmark policies (heuristics by name, trained runs by folder) on scenarios, paired by seed.

    python scripts/evaluate.py                  # every policy, every scenario, both objectives
    python scripts/evaluate.py --policies playbook pid runs/<run> --scenarios 3c food
    python scripts/evaluate.py --objectives gmv_floor         # one objective
    python scripts/evaluate.py --unseen         # the unseen markets, seeds 30000..

Writes summary.csv, episodes.csv, report.md, PNG plots and TensorBoard scalars to --out
(default: <run>/eval/ for one trained run, else runs/eval__<time>/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.evaluation.evaluate import (
    TUNED_BASELINES,
    EvaluationError,
    check_tuned_baselines,
    evaluate,
    resolve_scenarios,
)
from agents.evaluation.stats import BOOTSTRAP_REPS
from agents.policies import POLICIES
from envs.config import OBJECTIVES, ConfigError, list_scenarios, list_unseen
from envs.seeds import REPORT_SEED, UNSEEN_SEED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=None,
                        help=f"registered names ({', '.join(sorted(POLICIES))}) or run folders "
                             "(default: every registered policy; a tuned baseline without a "
                             "file for a scenario is left out, with a note)")
    parser.add_argument("--scenarios", nargs="+", default=None,
                        help=f"names ({', '.join(list_scenarios())}) or YAML paths "
                             "(default: every named scenario)")
    parser.add_argument("--unseen", action="store_true",
                        help="play the unseen markets (configs/scenarios/unseen/) instead, on "
                             f"seeds from {UNSEEN_SEED}")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES),
                        choices=OBJECTIVES, help="score every scenario on each (default: both)")
    parser.add_argument("--episodes", type=int, default=32, help="episodes (seeds) per scenario")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"first seed (default: {REPORT_SEED}, or {UNSEEN_SEED} with "
                             "--unseen)")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--bootstrap-reps", type=int, default=BOOTSTRAP_REPS,
                        help="bootstrap resamples per interval")
    args = parser.parse_args(argv)
    if args.unseen and args.scenarios is not None:
        print("error: --unseen plays every unseen market: give it or --scenarios, not both",
              file=sys.stderr)
        return 2
    try:
        scenarios = ([m.preset for m in list_unseen()] if args.unseen
                     else args.scenarios or list_scenarios())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.unseen and not scenarios:
        print("error: no unseen markets in configs/scenarios/unseen/", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else UNSEEN_SEED if args.unseen else REPORT_SEED
    policies = args.policies
    if policies is None:  # every registered policy that can play every scenario
        policies = sorted(POLICIES)
        try:
            configs = resolve_scenarios(scenarios, tuple(args.objectives))
        except EvaluationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for name in (n for n in TUNED_BASELINES if n in policies):
            try:
                check_tuned_baselines([name], configs)
            except EvaluationError as exc:
                policies.remove(name)
                print(f"note: {name} left out: {exc}", file=sys.stderr)
    try:
        out = evaluate(policies, scenarios, args.episodes, seed, args.out,
                       progress=not args.no_progress, plots=not args.no_plots,
                       bootstrap_reps=args.bootstrap_reps,
                       objectives=tuple(dict.fromkeys(args.objectives)))
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plots = "" if args.no_plots else ", plots"
    print(f"wrote {out}/report.md, summary.csv{plots} and tb/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
