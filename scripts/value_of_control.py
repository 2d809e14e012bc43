"""Value of control: the oracle against the best fixed settings, per scenario and objective.

    python scripts/value_of_control.py                      # every named scenario, both objectives
    python scripts/value_of_control.py --scenarios 3c --objectives profit --episodes 8

Plays ``static``, ``static_rule`` and the oracle on the same report seeds (from 10000) and
prints a Markdown table: each one's mean value per launch (k CNY: profit, or the gmv_floor
return) and value_of_control = oracle - static, paired, with its 95% bootstrap interval (the
same figures as scripts/evaluate.py's on the same seeds).
Where that interval's lower end is <= 0, the best fixed settings leave nothing measurable to
learn, and a policy's control_share is n/a there.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from agents.evaluation import stats as eval_stats
from agents.evaluation.rollout import episode_value
from agents.evaluation.scores import case_key, value_of_control
from agents.policies import make_policy
from agents.policies.baseline_store import BaselineError
from envs.config import OBJECTIVES, ConfigError, list_scenarios, load_scenario
from envs.seeds import REPORT_SEED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list_scenarios())
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=REPORT_SEED)
    parser.add_argument("--bootstrap-reps", type=int, default=eval_stats.BOOTSTRAP_REPS)
    args = parser.parse_args(argv)
    if args.episodes < 2 or args.bootstrap_reps < 100:
        print("error: --episodes must be >= 2 and --bootstrap-reps >= 100", file=sys.stderr)
        return 2
    seeds = np.arange(args.seed, args.seed + args.episodes)
    print(f"Seeds {seeds[0]}..{seeds[-1]}; k CNY per launch; value_of_control = oracle - "
          "static, paired, 95% bootstrap interval.\n")
    print("| objective | scenario | static | static_rule | oracle | value_of_control |")
    print("|---|---|---|---|---|---|")
    try:
        for objective in args.objectives:
            for name in args.scenarios:
                config = load_scenario(name, objective=objective)
                value = {p: episode_value(config, make_policy(p, config), seeds)
                         for p in ("static", "static_rule", "oracle")}
                voc = value_of_control(value["oracle"], value["static"], args.seed,
                                       case_key(config), args.bootstrap_reps)
                print(f"| {objective} | {name} | {value['static'].mean() / 1e3:,.1f} | "
                      f"{value['static_rule'].mean() / 1e3:,.1f} | "
                      f"{value['oracle'].mean() / 1e3:,.1f} | "
                      f"{voc['value_of_control'] / 1e3:+,.1f} "
                      f"[{voc['value_of_control_ci_low'] / 1e3:+,.1f}, "
                      f"{voc['value_of_control_ci_high'] / 1e3:+,.1f}] |", flush=True)
    except (ConfigError, BaselineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
