"""What the second version's promotions do (issue #14, item 6: the warm-up's stock of
engaged buyers, the peak-day discount; item 8: the return-handling cost), and what they cost
in speed.

    python scripts/promotions_effect.py                      # 3c, apparel_live, promo_heavy
    python scripts/promotions_effect.py --scenario 3c --seeds 32
    python scripts/promotions_effect.py --speed --rounds 7   # model and simulator speed

Effect: ``static``'s settings held (``configs/baselines/<scenario>.yaml``) on training seeds
0..N-1, each switch alone and all three on, against all off: the mean value (CNY per launch,
the scenario's objective) and the paired change with a 95% interval.

Speed: all three switches on against off, 3c, best of ``--rounds`` alternating runs in one
process: the model alone (million account-days/s at 4,096 accounts, µs a simulated day at
64, :func:`agents.experiments.speed._time_model`) and the whole simulator at 64 accounts.

A measurement for ``docs/market-model.md``, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from agents.evaluation.intervals import paired_interval
from agents.evaluation.rollout import episode_value
from agents.experiments.speed import _time_model, _time_simulator
from agents.policies import make_policy
from envs.config import ConfigError, load_scenario
from envs.seeds import TRAINING_SEED_END

SWITCHES = {"warm-up stock": ("warmup_stock_enabled",),
            "peak discount": ("peak_discount_enabled",),
            "return handling": ("return_handling_enabled",),
            "all three": ("warmup_stock_enabled", "peak_discount_enabled",
                          "return_handling_enabled")}


def effect(scenario: str, seeds: np.ndarray) -> None:
    """Print ``static``'s value with each switch on against all off."""
    off = load_scenario(scenario)
    base = episode_value(off, make_policy("static", off), seeds)
    print(f"{scenario}: static held, seeds 0..{len(seeds) - 1}, off {base.mean():,.0f} CNY")
    for label, names in SWITCHES.items():
        cfg = off.replace(**dict.fromkeys(names, True))
        value = episode_value(cfg, make_policy("static", cfg), seeds)
        mean, lo, hi = paired_interval(value - base)
        print(f"  {label}: {value.mean():,.0f}; on - off {mean:+,.0f} [{lo:+,.0f}, {hi:+,.0f}]")


def speed(rounds: int) -> None:
    """Print best-of-``rounds`` speeds, off and on, alternating in this process."""
    off = load_scenario("3c")
    on = off.replace(**dict.fromkeys(SWITCHES["all three"], True))
    best: dict[tuple[str, bool], float] = {}
    for cfg in (off, on):  # compile and build the tables outside the timing
        _time_model(cfg, 64, 2)
        _time_simulator(cfg, 64, 2)
    for _ in range(rounds):
        for switch, cfg in ((False, off), (True, on)):
            for key, rate in (("model 4096", _time_model(cfg, 4096, 84)),
                              ("model 64", _time_model(cfg, 64, 840)),
                              ("simulator 64", _time_simulator(cfg, 64, 840))):
                best[key, switch] = max(best.get((key, switch), 0.0), rate)
    print(f"speed, 3c, best of {rounds} alternating rounds (off / on):")
    print(f"  model, 4,096 accounts: {best['model 4096', False] / 1e6:.2f} / "
          f"{best['model 4096', True] / 1e6:.2f} M account-days/s")
    for key in ("model 64", "simulator 64"):
        print(f"  {key} accounts: {64e6 / best[key, False]:.1f} / "
              f"{64e6 / best[key, True]:.1f} µs a simulated day")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help="default: 3c, apparel_live, "
                        "promo_heavy")
    parser.add_argument("--seeds", type=int, default=64, help="training seeds 0..N-1")
    parser.add_argument("--speed", action="store_true", help="measure speed instead")
    parser.add_argument("--rounds", type=int, default=7, help="speed: alternating rounds")
    args = parser.parse_args(argv)
    if args.speed:
        if args.rounds < 1:
            print("error: --rounds must be at least 1", file=sys.stderr)
            return 2
        speed(args.rounds)
        return 0
    if not 2 <= args.seeds < TRAINING_SEED_END:
        print("error: --seeds must be within 2..9999 (training seeds only)", file=sys.stderr)
        return 2
    try:
        for scenario in args.scenario or ("3c", "apparel_live", "promo_heavy"):
            effect(scenario, np.arange(args.seeds))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
