"""What whole-site promotion (issue #14, item 4: ``whole_site_enabled``) does to ``static``.

    python scripts/whole_site_effect.py                   # 3c, training seeds 0..63
    python scripts/whole_site_effect.py --scenario food --seeds 32 --share 0.5

``static``'s settings (``configs/baselines/<scenario>.yaml``) held on training seeds 0..N-1:
the switch off; on with a whole-site share of 0; on with ``--share`` of the budget moved to
whole-site (static's other shares scaled down); and the same, exclusive (the room runs
whole-site alone). Prints the mean value (CNY per launch, the scenario's objective) and the
paired change against off with a 95% interval.

A measurement for ``docs/market-model.md``, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from agents.evaluation.intervals import paired_interval
from agents.evaluation.rollout import episode_value
from agents.policies.baseline_store import load_static
from agents.policies.static import FixedSettingsPolicy
from envs.actions import WHOLE_SITE, plan_share_row
from envs.anchored import StaticSettings
from envs.config import ConfigError, ScenarioConfig, load_scenario
from envs.seeds import TRAINING_SEED_END


def with_whole_site(settings: StaticSettings, share: float) -> StaticSettings:
    """``settings`` with ``share`` of the budget on whole-site, the other plans scaled."""
    shares = plan_share_row(settings.shares) * (1.0 - share)
    shares[WHOLE_SITE] += share
    return StaticSettings(settings.target_over_breakeven, tuple(float(x) for x in shares),
                          settings.budget_over_launch, settings.refresh_days)


def value(config: ScenarioConfig, settings: StaticSettings, seeds: np.ndarray) -> np.ndarray:
    """Value per launch (CNY) of ``settings`` held on ``seeds``."""
    policy = FixedSettingsPolicy(config, settings)
    return episode_value(policy.config, policy, seeds)


def effect(scenario: str, seeds: np.ndarray, share: float) -> None:
    """Print ``static``'s value with whole-site off, on at share 0, on at ``share``."""
    off = load_scenario(scenario)
    on = off.replace(whole_site_enabled=True)
    fixed = load_static(off)
    base = value(off, fixed, seeds)
    print(f"{scenario}: static held, seeds 0..{len(seeds) - 1}, off {base.mean():,.0f} CNY")
    cases = {"on, whole-site share 0": (on, fixed),
             f"on, whole-site share {share:g}": (on, with_whole_site(fixed, share)),
             f"on, share {share:g}, exclusive": (on.replace(whole_site_exclusive=True),
                                                  with_whole_site(fixed, share))}
    for label, (cfg, settings) in cases.items():
        got = value(cfg, settings, seeds)
        mean, lo, hi = paired_interval(got - base)
        print(f"  {label}: {got.mean():,.0f}; - off {mean:+,.0f} [{lo:+,.0f}, {hi:+,.0f}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="3c")
    parser.add_argument("--seeds", type=int, default=64, help="training seeds 0..N-1")
    parser.add_argument("--share", type=float, default=0.3, help="whole-site budget share")
    args = parser.parse_args(argv)
    if not 2 <= args.seeds < TRAINING_SEED_END:
        print("error: --seeds must be within 2..9999 (training seeds only)", file=sys.stderr)
        return 2
    if not 0 < args.share <= 1:
        print("error: --share must be within (0, 1]", file=sys.stderr)
        return 2
    try:
        effect(args.scenario, np.arange(args.seeds), args.share)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
