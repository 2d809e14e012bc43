"""Simulate episodes of one scenario with a rule-based policy and print the metrics.

    python scripts/simulate.py --scenario 3c --policy constant --episodes 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from agents.policies import POLICIES, make_policy  # noqa: E402
from agents.rollout import rollout  # noqa: E402
from envs.config import ConfigError, load_scenario  # noqa: E402

REPORT_SEED = 10000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="3c")
    parser.add_argument("--policy", default="constant", help=f"one of {sorted(POLICIES)}")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=REPORT_SEED)
    args = parser.parse_args(argv)
    try:
        cfg = load_scenario(args.scenario)
        policy = make_policy(args.policy, cfg)
    except (ConfigError, KeyError) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    result = rollout(policy, cfg, np.arange(args.seed, args.seed + args.episodes))
    print(f"scenario {cfg.name}, policy {args.policy}, {args.episodes} episode(s) of "
          f"{cfg.episode_days} days, seeds {args.seed}..{args.seed + args.episodes - 1}")
    for key, values in result.metrics.items():
        print(f"  {key:26s} mean {values.mean():14.2f}   sd {values.std():12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
