"""Fingerprint the simulator's episodes, to check what is reproducible where.

    python scripts/fingerprint.py                     # digest of the default set, this engine
    python scripts/fingerprint.py --save a.npz        # keep the arrays, to compare later
    python scripts/fingerprint.py --compare a.npz     # largest differences against a saved set

Plays 3 scenarios x 16 accounts x 200 days with fixed random actions (every mechanic on, full
action space; ``--first-version``: the second version's mechanics off) and hashes the
observations, rewards and daily infos bit for bit (SHA-256 of the float64 bytes). Run it
under different engines (``QIANCHUAN_ENGINE``), code-generation settings
(``QIANCHUAN_NUMBA_CPU``) or NumPy/glibc code paths (``NPY_DISABLE_CPU_FEATURES``,
``GLIBC_TUNABLES``), or on another machine, and compare the digests; ``--compare`` says how
far apart two sets are when the digests differ. ``docs/market-model.md#speed`` records what
was measured. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from envs.compiled import codegen_description
from envs.config import SECOND_VERSION_OFF, ConfigError, load_scenario
from envs.seeds import REPORT_SEED
from envs.simulator import INFO_KEYS, Simulator

SCENARIOS = ("3c", "promo_heavy", "tight_balance")


def play(scenario: str, accounts: int, days: int,
         first_version: bool = False) -> dict[str, np.ndarray]:
    """Observations, rewards and infos of ``days`` days of ``accounts`` accounts (seeds
    10000..) under fixed random actions; episodes restart when they end. ``first_version``:
    every second-version mechanic off (:data:`envs.config.SECOND_VERSION_OFF`)."""
    cfg = load_scenario(scenario, action_space="full",
                        **(SECOND_VERSION_OFF if first_version else {}))
    sim = Simulator(cfg, n=accounts)
    seeds = list(range(REPORT_SEED, REPORT_SEED + accounts))
    obs, rewards = [sim.reset(seeds=seeds)], []
    infos: dict[str, list] = {key: [] for key in INFO_KEYS}
    actions = np.random.default_rng(9).uniform(-1.2, 1.2, (days, accounts, sim.action_dim))
    for day in range(days):
        o, r, done, info = sim.step(actions[day])
        obs.append(o)
        rewards.append(r)
        for key in INFO_KEYS:
            infos[key].append(np.asarray(info[key], dtype=np.float64))
        if done:
            obs.append(sim.reset(seeds=[s + day + 1 for s in seeds]))
    out = {"obs": np.array(obs, dtype=np.float64), "reward": np.array(rewards, np.float64)}
    out.update({f"info_{key}": np.array(v) for key, v in infos.items()})
    return {f"{scenario}/{name}": value for name, value in out.items()}


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, shapes and C-ordered float64 bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name], dtype=np.float64)
        h.update(name.encode())
        h.update(str(value.shape).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def compare(mine: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> list[dict]:
    """Per array: elements that differ, the largest absolute difference and the largest
    difference relative to the array's largest magnitude."""
    rows = []
    for name in sorted(mine):
        a, b = mine[name], theirs.get(name)
        if b is None or a.shape != b.shape:
            rows.append({"array": name, "note": "missing or of another shape"})
            continue
        diff = np.abs(np.nan_to_num(a, nan=0.0) - np.nan_to_num(b, nan=0.0))
        scale = float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 0.0
        rows.append({"array": name, "differ": int((a != b).sum() - (np.isnan(a) & np.isnan(b))
                                                  .sum()),
                     "of": int(a.size), "max_abs": float(diff.max()),
                     "max_rel_to_scale": float(diff.max() / scale) if scale else 0.0})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=16)
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--save", type=Path, help="write the arrays to this .npz")
    parser.add_argument("--compare", type=Path, help="a .npz written by --save")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--first-version", action="store_true",
                        help="every second-version mechanic off: the first version's market")
    args = parser.parse_args(argv)
    if args.accounts < 1 or args.days < 1:
        print("error: --accounts and --days must be at least 1", file=sys.stderr)
        return 2
    try:
        arrays: dict[str, np.ndarray] = {}
        for scenario in SCENARIOS:
            arrays.update(play(scenario, args.accounts, args.days, args.first_version))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"digest": digest(arrays), **codegen_description()}
    if args.compare is not None:
        try:
            with np.load(args.compare) as saved:
                theirs = {name: saved[name] for name in saved.files}
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {args.compare}: {exc}", file=sys.stderr)
            return 2
        rows = compare(arrays, theirs)
        result["identical"] = digest(theirs) == result["digest"]
        result["differences"] = [r for r in rows if r.get("differ", 1)]
    if args.save is not None:
        tmp = args.save.with_name(args.save.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(args.save)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if key != "differences":
                print(f"{key}: {value}")
        for row in result.get("differences", []):
            print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
