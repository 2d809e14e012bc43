"""Population benchmark: anchored policies against static on markets nothing was trained on.

    python scripts/population_benchmark.py                # the shipped profit policy, 96 accounts
    python scripts/population_benchmark.py --policies models/profit runs/<run>/export \\
        --accounts 192 --workers 2 --out runs/population      # two policies, paired
    python scripts/population_benchmark.py --objective gmv_floor --accounts 48
    python scripts/population_benchmark.py --rules static_rule --accounts 384 --workers 2

Synthetic accounts (seeds 60400.., the decision value's: agents/calibration/population.py)
are drawn from the fit's prior around four named scenarios and four unseen markets; each
policy plays each account's true market from launch on its base scenario's tuned static
settings, against those settings held, on 32 report seeds (paired). Prints, per policy, the
mean difference over accounts with its 95% t-interval (accounts as clusters) and how many
accounts it is ahead of / behind static on (paired 95% interval over seeds), on all accounts,
those drawn around the named scenarios and those around the unseen markets; then each policy
against the first, paired; with --rules, each rule against static and each policy against
each rule (static_rule: the issue's one-line rule, on the account's own break-even).
Records are kept per account and policy under --out (a rerun continues; a policy added
later is measured alone); the report is written to --out/report_<objective>.md. About
0.1 s per account and policy on one core (32 report seeds).
A benchmark measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from agents.calibration.population import FIRST_INDEX  # noqa: E402
from agents.calibration.records import Job, kept_records, run_records  # noqa: E402
from agents.evaluation.population_benchmark import (  # noqa: E402
    DRAW_DAYS,
    RULES,
    STATIC,
    Comparison,
    Contender,
    compare,
    play_account,
    policy_label,
    subset,
)
from agents.run_folder import package_versions, write_text_atomic  # noqa: E402
from agents.serving.errors import ServingError  # noqa: E402
from envs.config import OBJECTIVES  # noqa: E402
from envs.seeds import CALIBRATION_SEED, REPORT_SEED  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--policies", nargs="+", type=Path, default=None,
                   help="anchored ONNX exports (policy.onnx, or the folder holding it); "
                   "default: the shipped one, models/<objective>/")
    p.add_argument("--rules", nargs="+", default=[], choices=RULES,
                   help="rules to play too (each policy is also compared with them), e.g. "
                   "static_rule, the issue's one-line rule")
    p.add_argument("--objective", default="profit", choices=OBJECTIVES)
    p.add_argument("--accounts", type=int, default=96, help="accounts 0..N-1 (default 96)")
    p.add_argument("--skip", type=int, default=0, help="start at account SKIP")
    p.add_argument("--seeds", type=int, default=32, help="report seeds per account")
    p.add_argument("--workers", type=int, default=1, help="processes (one account each)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "population")
    return p.parse_args(argv)


def _check(args: argparse.Namespace) -> str | None:
    """A message for the first bad argument, or None."""
    if args.accounts <= args.skip or args.skip < 0:
        return f"--accounts {args.accounts} --skip {args.skip}: no account to play"
    if args.accounts - args.skip < 2:
        return "at least 2 accounts are needed for an interval over accounts"
    if args.seeds < 2:
        return f"--seeds must be at least 2 (a paired interval per account), got {args.seeds}"
    if args.workers < 1:
        return f"--workers must be at least 1, got {args.workers}"
    return None


def contenders(paths: list[Path], objective: str) -> list[Contender]:
    """Each path as a :class:`Contender`, checked: an anchored export for ``objective``.

    :raises ServingError: a path that is not one, naming it and why."""
    from agents.serving.onnx_policy import OnnxPolicy

    out = []
    for given in paths:
        path = given / "policy.onnx" if given.is_dir() else given
        if not path.is_file():
            raise ServingError("no such ONNX export (give policy.onnx or its folder)", given)
        policy = OnnxPolicy(path)
        if not policy.anchored:
            raise ServingError("not an anchored policy: the population is played on each "
                               "base scenario's static settings, which only an anchored "
                               "policy plays around", path)
        if policy.trained_config.objective != objective:
            raise ServingError(f"trained for {policy.trained_config.objective!r}, not "
                               f"--objective {objective!r}", path)
        out.append(Contender(policy_label(path), path.resolve()))
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise ServingError(f"the same graph is given twice ({', '.join(labels)})")
    return out


def _row(label: str, c: Comparison) -> str:
    mean, low, high = (x / 1e3 for x in c.diff)
    return (f"| {label} | {c.accounts} | {mean:+.1f}k [{low:+.1f}, {high:+.1f}] | {c.ahead} | "
            f"{c.behind} | {c.behind_2pct} | {c.worst[0]} ({c.worst[1] / 1e3:+.1f}k) |")


def tables(records: dict[str, dict[int, dict]], labels: list[str], rules: list[str]) -> str:
    """The report's tables: each policy and rule against static, each policy against each
    rule, then each policy against the first."""
    head = ("| accounts | n | mean difference [95%] | ahead | behind | behind by > 2% | "
            "worst (index) |\n|---|---|---|---|---|---|---|")
    lines = []
    pairs = ([(label, STATIC) for label in [*labels, *rules]]
             + [(label, rule) for rule in rules for label in labels]
             + [(label, labels[0]) for label in labels[1:]])
    for label, against in pairs:
        lines += [f"### {label} - {against}", "", head]
        for name, off in (("all", None), ("around the named scenarios", False),
                          ("around the unseen markets", True)):
            mine = subset(records[label], off)
            if len(mine) >= 2:
                lines.append(_row(name, compare(mine, records[against])))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    paths = args.policies or [ROOT / "models" / args.objective]
    try:
        players = [Contender(STATIC), *(Contender(r) for r in dict.fromkeys(args.rules)),
                   *contenders(paths, args.objective)]
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    jobs: list[Job] = [(FIRST_INDEX + i, DRAW_DAYS) for i in range(args.skip, args.accounts)]
    started = time.perf_counter()
    records: dict[str, dict[int, dict]] = {}
    for player in players:
        folder = args.out / args.objective / f"seeds{args.seeds}" / player.label
        folder.mkdir(parents=True, exist_ok=True)
        kept = kept_records(folder, jobs)
        todo = [job for job in jobs if job not in kept]
        print(f"{player.label}: {len(kept)} accounts kept, {len(todo)} to play", flush=True)
        done = {r["index"]: r for r in kept.values()}
        for r in run_records(play_account, todo, folder, args.workers, args.objective, player,
                             args.seeds):
            done[r["index"]] = r
        records[player.label] = done
    rules = [p.label for p in players if p.rule is not None]
    labels = [p.label for p in players if p.path is not None]
    versions = package_versions()
    command = "python scripts/population_benchmark.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    text = (f"# Population benchmark, {args.objective}\n\n"
            f"`{command.strip()}`: accounts {FIRST_INDEX + args.skip}.."
            f"{FIRST_INDEX + args.accounts - 1} "
            f"(seeds {CALIBRATION_SEED + FIRST_INDEX + args.skip}..), report seeds "
            f"{REPORT_SEED}..{REPORT_SEED + args.seeds - 1}; CNY per 84-day launch; ahead / "
            "behind: accounts whose paired 95% interval over seeds is above / below 0. "
            f"Policies: {'; '.join(f'{p.label} = {p.path}' for p in players if p.path)}. "
            + ", ".join(f"{k} {versions[k]}" for k in sorted(versions))
            + f"; {time.perf_counter() - started:.0f} s.\n\n" + tables(records, labels, rules))
    write_text_atomic(args.out / f"report_{args.objective}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
