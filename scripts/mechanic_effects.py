"""What each second-version mechanic does to the value of day-by-day control (issue #14).

    python scripts/mechanic_effects.py                       # 3c, profit
    python scripts/mechanic_effects.py --objective gmv_floor --trials 100 --out effects.json
    python scripts/mechanic_effects.py --only --lifts 0 0.04 0.13   # whole-site lift sensitivity

Rows: the scenario as configured (every mechanic on), each second-version mechanic switched
off alone (:data:`envs.config.SECOND_VERSION_SWITCHES`), and all of them off. For each row
it re-searches ``static`` on training seeds (Optuna TPE, as ``scripts/search_baselines.py``
does, fewer trials by default), then plays the re-searched ``static`` and the oracle
(anchored on it) on the report seeds 10000.. and prints, in CNY per launch (the objective's
value): static, oracle, the value of control (oracle - static, paired 95% interval) and the
change of each against the all-on row. ``--lifts`` adds rows with every mechanic on and
whole-site promotion's organic lift (``whole_site_organic_lift``) set to each value: a
sensitivity check of the one parameter resting on unofficial claims (``--only`` keeps just
those rows and all on). ``--out`` writes the table as JSON (atomically).

A measurement for ``docs/market-model.md``, not a test: it asserts nothing. Same figures on
the same machine; the searches' best settings can differ across CPUs where episodes do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from agents.evaluation.intervals import paired_interval
from agents.evaluation.rollout import episode_value
from agents.experiments.baseline_search import search_static
from agents.policies.baseline_store import settings_from_entry
from agents.policies.oracle import OraclePolicy
from agents.policies.static import FixedSettingsPolicy
from agents.run_folder import write_text_atomic
from envs.config import (
    SECOND_VERSION_OFF,
    SECOND_VERSION_SWITCHES,
    ConfigError,
    load_scenario,
)
from envs.seeds import REPORT_SEED, TRAINING_SEED_END


def rows(lifts: tuple[float, ...] = (), switches: bool = True) -> dict[str, dict]:
    """Overrides of each row: all on, each mechanic off alone and all off (``switches``), and
    all on with each whole-site organic lift of ``lifts`` (share of whole-site's ad GMV)."""
    out: dict[str, dict] = {"all on": {}}
    if switches:
        for name, off in SECOND_VERSION_SWITCHES.items():
            out[f"{name} off"] = dict(off)
        out["all off"] = dict(SECOND_VERSION_OFF)
    for lift in lifts:
        out[f"whole-site lift {lift:g}"] = {"whole_site_organic_lift": float(lift)}
    return out


def measure(scenario: str, objective: str, overrides: dict, trials: int, seeds: int,
            episodes: int) -> dict:
    """Re-search static under ``overrides``, then play it and the oracle on report seeds."""
    config = load_scenario(scenario, objective=objective, **overrides)
    entry = search_static(scenario, objective, trials=trials, seeds=seeds, overrides=overrides)
    settings = settings_from_entry(entry)
    report = np.arange(REPORT_SEED, REPORT_SEED + episodes)
    static = episode_value(config, FixedSettingsPolicy(config, settings), report)
    oracle = episode_value(config, OraclePolicy(config, anchor=settings), report)
    value, lo, hi = paired_interval(oracle - static)
    return {"overrides": overrides, "static_settings": entry, "static": float(static.mean()),
            "oracle": float(oracle.mean()), "value_of_control": [value, lo, hi],
            "static_values": static.tolist(), "oracle_values": oracle.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="3c")
    parser.add_argument("--objective", default="profit", choices=("profit", "gmv_floor"))
    parser.add_argument("--trials", type=int, default=120, help="static search trials per row")
    parser.add_argument("--seeds", type=int, default=64, help="training seeds 0..N-1")
    parser.add_argument("--episodes", type=int, default=32, help="report seeds 10000..")
    parser.add_argument("--lifts", type=float, nargs="+", default=[],
                        help="add rows with whole_site_organic_lift set to each value")
    parser.add_argument("--only", action="store_true",
                        help="only the all-on row and the --lifts rows")
    parser.add_argument("--out", type=Path, help="write the table as JSON")
    args = parser.parse_args(argv)
    if not (2 <= args.seeds < TRAINING_SEED_END and args.trials >= 1 and args.episodes >= 2):
        print("error: --seeds 2..9999, --trials >= 1, --episodes >= 2", file=sys.stderr)
        return 2
    table_rows = rows(tuple(args.lifts), switches=not args.only)
    try:
        for overrides in table_rows.values():
            load_scenario(args.scenario, objective=args.objective, **overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    table: dict[str, dict] = {}
    print(f"{args.scenario}, {args.objective}, CNY per launch; static re-searched "
          f"({args.trials} trials, seeds 0..{args.seeds - 1}); report seeds "
          f"{REPORT_SEED}..{REPORT_SEED + args.episodes - 1}")
    print(f"{'row':28s} {'static':>10s} {'oracle':>10s} {'value of control [95% CI]':>30s}"
          f" {'static vs all on':>17s}")
    for name, overrides in table_rows.items():
        row = measure(args.scenario, args.objective, overrides, args.trials, args.seeds,
                      args.episodes)
        table[name] = row
        value, lo, hi = row["value_of_control"]
        change = row["static"] - table["all on"]["static"]
        print(f"{name:28s} {row['static']:10,.0f} {row['oracle']:10,.0f} "
              f"{value:12,.0f} [{lo:7,.0f}, {hi:7,.0f}] {change:+17,.0f}", flush=True)
    print(f"wall time {(time.perf_counter() - started) / 60:.1f} min")
    if args.out:
        write_text_atomic(args.out, json.dumps(
            {"scenario": args.scenario, "objective": args.objective, "trials": args.trials,
             "seeds": args.seeds, "episodes": args.episodes, "rows": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
