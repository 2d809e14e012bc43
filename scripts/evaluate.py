"""Benchmark policies (heuristics by name, trained runs by folder) on scenarios, paired by seed.

    python scripts/evaluate.py                                   # every heuristic, every scenario
    python scripts/evaluate.py --policies playbook pid runs/<run> --scenarios 3c food

Writes summary.csv, episodes.csv, report.md, PNG plots and TensorBoard scalars to --out
(default: <run>/eval/ for one trained run, else runs/eval__<time>/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.eval_stats import BOOTSTRAP_REPS  # noqa: E402
from agents.evaluation import REPORT_SEED, EvaluationError, evaluate  # noqa: E402
from agents.policies import POLICIES  # noqa: E402
from envs.config import list_scenarios  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=sorted(POLICIES),
                        help=f"registered names ({', '.join(sorted(POLICIES))}) or run folders")
    parser.add_argument("--scenarios", nargs="+", default=list_scenarios(),
                        help=f"names ({', '.join(list_scenarios())}) or YAML paths")
    parser.add_argument("--episodes", type=int, default=32, help="episodes (seeds) per scenario")
    parser.add_argument("--seed", type=int, default=REPORT_SEED, help="first report seed")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--bootstrap-reps", type=int, default=BOOTSTRAP_REPS,
                        help="bootstrap resamples per interval")
    args = parser.parse_args(argv)
    try:
        out = evaluate(args.policies, args.scenarios, args.episodes, args.seed, args.out,
                       progress=not args.no_progress, plots=not args.no_plots,
                       bootstrap_reps=args.bootstrap_reps)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plots = "" if args.no_plots else ", plots"
    print(f"wrote {out}/report.md, summary.csv{plots} and tb/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
