"""What a moving market (``market_drift_enabled``, issue #14 item 5) does on one scenario.

    python scripts/drift_effect.py               # 3c, training seeds 0..63
    python scripts/drift_effect.py --seeds 32 --scenario beauty

With the switch off and on, on the same training seeds (per-account seeded draws), it
reports in CNY per launch (the scenario's objective):

- ``static``'s settings held (``configs/baselines/<scenario>.yaml``): mean value, and the
  paired change on - off with a 95% interval;
- ``static_rule``'s target multiple k over the grid 1.1..2.5 (step 0.1): the best fixed k
  (highest mean over the seeds) and the mean of each account's own best k, whose difference
  is a crude value of adapting the target to the account's market (an upper bound: the
  per-account best also picks up each episode's noise, which the switch-off row measures).

A measurement for ``docs/market-model.md``, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from agents.evaluation.intervals import paired_interval
from agents.evaluation.rollout import episode_value
from agents.policies import make_policy
from agents.policies.static import FixedSettingsPolicy, rule_settings
from envs.config import ConfigError, load_scenario
from envs.seeds import TRAINING_SEED_END

K_GRID = np.round(np.arange(1.1, 2.5 + 1e-9, 0.1), 2)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="3c")
    parser.add_argument("--seeds", type=int, default=64, help="training seeds 0..N-1")
    args = parser.parse_args(argv)
    if not 2 <= args.seeds < TRAINING_SEED_END:
        print("error: --seeds must be within 2..9999 (training seeds only)", file=sys.stderr)
        return 2
    try:
        configs = {on: load_scenario(args.scenario, market_drift_enabled=on)
                   for on in (False, True)}
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seeds = np.arange(args.seeds)
    static = {on: episode_value(cfg, make_policy("static", cfg), seeds)
              for on, cfg in configs.items()}
    mean, lo, hi = paired_interval(static[True] - static[False])
    print(f"{args.scenario}, seeds 0..{args.seeds - 1}, CNY per launch")
    print(f"static held: off {static[False].mean():,.0f}, on {static[True].mean():,.0f}; "
          f"on - off {mean:,.0f} [{lo:,.0f}, {hi:,.0f}]")
    for on, cfg in configs.items():
        values = np.stack([episode_value(cfg, FixedSettingsPolicy(cfg, rule_settings(cfg, k)),
                                         seeds) for k in K_GRID], axis=1)  # (seeds, k)
        best = int(values.mean(axis=0).argmax())
        own = values.max(axis=1)
        gain, lo, hi = paired_interval(own - values[:, best])
        ks = K_GRID[values.argmax(axis=1)]
        print(f"switch {'on ' if on else 'off'}: best fixed k {K_GRID[best]:.1f} "
              f"({values[:, best].mean():,.0f}); per-account best k "
              f"({own.mean():,.0f}; k from {ks.min():.1f} to {ks.max():.1f}, sd {ks.std():.2f}"
              f"); per-account - fixed {gain:,.0f} [{lo:,.0f}, {hi:,.0f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
