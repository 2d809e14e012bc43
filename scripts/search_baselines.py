"""Search the tuned baselines on training seeds and store them in configs/baselines/.

    python scripts/search_baselines.py                         # every named scenario, both
    python scripts/search_baselines.py --scenarios 3c --objectives profit --trials 300

For each scenario and objective, an Optuna (TPE) study of the best fixed settings
(``static``: target / break-even, plan shares, budget / launch budget, refresh interval) on
the first --seeds training seeds, --trials trials; then one study per tuned controller
(``step_tuned``, ``pid_tuned``: set point, gains or steps, on the static mix); then the
static rule's one k per objective over every named scenario (``static_rule``; --no-rule
skips it). Studies run in --workers
processes. Writes configs/baselines/<scenario>.yaml and static_rule.yaml atomically, each
entry with this command, the env version, its trials, seeds and value.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.baselines import (  # noqa: E402
    OBJECTIVES,
    RULE_FILE,
    SEARCH_SEEDS,
    SEARCH_TRIALS,
    search_controller,
    search_static,
    search_static_rule,
    write_entry,
)
from envs.config import ConfigError, list_scenarios, load_scenario  # noqa: E402

CONTROLLERS = ("step_tuned", "pid_tuned")
HEADER = ("# Tuned baseline, written by scripts/search_baselines.py (data: read with "
          "yaml.safe_load by agents/baselines.py).\n# Re-make: the command in each entry. "
          "Refused when env_version differs from envs/version.py.\n")


def _study(job: tuple[str, str, int, int]) -> tuple[str, str, dict, float]:
    scenario, objective, trials, seeds = job
    start = time.perf_counter()
    entry = search_static(scenario, objective, trials, seeds)
    return scenario, objective, entry, time.perf_counter() - start


def _controller_study(job: tuple[str, str, str, int, int]) -> tuple[str, str, str, dict, float]:
    scenario, objective, policy, trials, seeds = job
    start = time.perf_counter()
    entry = search_controller(scenario, objective, policy, trials, seeds)
    return scenario, objective, policy, entry, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list_scenarios())
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES),
                        choices=OBJECTIVES)
    parser.add_argument("--trials", type=int, default=SEARCH_TRIALS)
    parser.add_argument("--seeds", type=int, default=SEARCH_SEEDS, help="training seeds 0..N-1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-rule", action="store_true", help="skip the static rule's k")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.seeds < 2 or args.workers < 1:
        print("error: --trials and --workers must be >= 1, --seeds >= 2", file=sys.stderr)
        return 2
    try:
        for name in args.scenarios:
            if name not in list_scenarios():
                load_scenario(name)  # an unknown name: the loader's message lists the known
                raise ConfigError(f"{name!r}: tuned baselines are for the named scenarios "
                                  f"({', '.join(list_scenarios())})")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = shlex.join(["python", "scripts/search_baselines.py",
                          *(sys.argv[1:] if argv is None else argv)])
    jobs = [(s, o, args.trials, args.seeds) for o in args.objectives for s in args.scenarios]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for scenario, objective, entry, seconds in pool.map(_study, jobs):
            path = write_entry(scenario, objective, entry, command, HEADER)
            print(f"{scenario}/{objective}: target {entry['target_over_breakeven']:.2f} x "
                  f"break-even, shares {entry['shares']}, budget "
                  f"{entry['budget_over_launch']:.2f} x launch, refresh every "
                  f"{entry['refresh_days']} days: {entry['training_value_cny']:,.0f} CNY "
                  f"({entry['trials']} trials, {seconds:.0f} s) -> {path.name}", flush=True)
    # the controllers run on the static mix just stored: searched after it
    jobs = [(s, o, c, args.trials, args.seeds) for o in args.objectives
            for s in args.scenarios for c in CONTROLLERS]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for scenario, objective, policy, entry, seconds in pool.map(_controller_study, jobs):
            write_entry(scenario, objective, entry, command, HEADER, controller=policy)
            print(f"{scenario}/{objective}/{policy}: {entry['params']}: "
                  f"{entry['training_value_cny']:,.0f} CNY ({seconds:.0f} s)", flush=True)
    if not args.no_rule:
        for objective in args.objectives:
            entry = search_static_rule(objective, seeds=args.seeds)
            write_entry(RULE_FILE, objective, entry, command, HEADER)
            print(f"static_rule/{objective}: k = {entry['target_over_breakeven']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
