"""Decision value of calibration: what adapting the shipped policy's anchor to a fit is worth.

    python scripts/decision_value.py                       # 24 accounts, profit and gmv_floor
    python scripts/decision_value.py --accounts 4 --objectives profit --smoke
    python scripts/decision_value.py --objectives profit --known pool_mean_roi --smoke \
        --out runs/decision_value_known_roi     # what the mean ROI's error costs
    python scripts/decision_value.py --objectives profit --days 90 --explain 476 \
        --out runs/dv_v10_90d                   # which fitted value decided one account

Synthetic accounts (seeds from 60000, :mod:`agents.calibration.synthetic`; account indices
from :data:`FIRST_INDEX`) are drawn from the fit's prior around named scenarios and around
unseen markets (:data:`MARKETS`: off the named scenarios either way), run by the playbook's
rules for 56 days (``--days``), and fitted from their reports against the named base (an
unseen market's base). Then, on each account's TRUE market from launch, on report seeds
(paired: every policy meets the same seeds), per objective:

- ``G``: the shipped policy (``models/<objective>/policy.onnx``) on the base's stored anchor
  (what ``recommend --fit`` played before the anchor was adapted);
- ``F``: the same policy on the anchor adapted to the fit
  (:func:`agents.calibration.adapt.adapted_anchor`, posterior draws);
- ``T``: the same policy on the anchor adapted, by the same procedure, to the true market;
- ``static``, ``static_F``, ``static_T``: those three anchors held as fixed settings.

The issue's targets: F beats G, and (T - F) <= 10% of (T - G). Gains are means over accounts
and seeds (CNY per 84-day launch) with 95% t-intervals over accounts (the account is the
cluster: each account's mean over its seeds is one observation); the loss ratio
(T - F) / (T - G) is a ratio of those means with a 95% bootstrap interval over accounts.
Per-account results are kept in ``runs/decision_value/accounts/`` (a rerun with more accounts
computes only the new ones). ``--known`` tells the F arm's fit the truth of some market
parameters (the fit's normal approximation conditioned on them,
:func:`agents.calibration.synthetic.fit_given_truth`): how much of T - F each parameter's
error accounts for; ``--explain`` replays one account with each fitted value put alone into
its true market (which of the fit's errors decided its anchor). Writes
``docs/decision_value_results.md`` (unless ``--smoke`` or ``--explain``).
A benchmark measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is faster

import numpy as np  # noqa: E402

from agents.calibration.account import (  # noqa: E402
    MIN_FIT_DAYS,
    CalibrationError,
    account_history,
)
from agents.calibration.adapt import (  # noqa: E402
    ADAPT_DRAWS,
    ADAPT_SEEDS,
    ADAPT_TRIALS,
    adapt_settings,
    adapted_anchor,
    base_anchor,
    network_value,
    shipped_policy,
)
from agents.calibration.fit import fit_account  # noqa: E402
from agents.calibration.population import (  # noqa: E402
    ACCOUNT_KEYS,
    FIRST_INDEX,
    MARKETS,
    account_market,
    true_launch,
)
from agents.calibration.population import off_scenario as drawn_off_scenario  # noqa: E402
from agents.calibration.prior import market_parameters  # noqa: E402
from agents.calibration.records import refusal, refused, rejected_record  # noqa: E402
from agents.calibration.scenario import fitted_config  # noqa: E402
from agents.calibration.synthetic import (  # noqa: E402
    fit_given_truth,
    synthetic_account,
    truth_names,
)
from agents.evaluation.intervals import mean_interval  # noqa: E402
from agents.evaluation.rollout import episode_value  # noqa: E402
from agents.evaluation.stats import ratio_of_means, stream_seed  # noqa: E402
from agents.policies.baseline_store import (  # noqa: E402
    settings_from_entry,
)
from agents.policies.static import FixedSettingsPolicy  # noqa: E402
from agents.run_folder import package_versions, write_text_atomic  # noqa: E402
from agents.serving.inputs import parse_promotions  # noqa: E402
from agents.serving.onnx_policy import OnnxPolicy  # noqa: E402
from agents.serving.report import read_report  # noqa: E402
from envs.anchored import settings_as_data  # noqa: E402
from envs.config import ScenarioConfig, load_scenario  # noqa: E402
from envs.presets import ConfigError  # noqa: E402
from envs.seeds import CALIBRATION_SEED, REPORT_SEED  # noqa: E402
from envs.version import ENV_VERSION  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HISTORY_DAYS = 56  # the report's length unless --days says otherwise
POLICIES = ("G", "F", "T", "static", "static_F", "static_T")


def fitted_account(market: ScenarioConfig, base: ScenarioConfig, index: int, work: Path,
                   days: int = HISTORY_DAYS):
    """Account ``index`` drawn around ``market`` (:func:`account_market`): the synthetic
    account (:func:`agents.calibration.synthetic.synthetic_account`, its report written into
    ``work``) and the fit of that report against ``base``.

    :raises CalibrationError: ``calibrate`` would refuse the report (exit 2)."""
    acc = synthetic_account(market, index, days)
    path = acc.write(work / f"account_{index}.csv")
    history = account_history(read_report(path), base,
                              parse_promotions(acc.promo_dates, base.promo_peak_length_days))
    return acc, fit_account(history, base)


def one_account(index: int, objectives: list[str], seeds: int, work: Path,
                choose: str = "network", spread: float = 1.0,
                known: list[str] | None = None, days: int = HISTORY_DAYS) -> dict:
    """Draw, fit, adapt and evaluate account ``index`` (its record, values per seed).

    :param choose: ``network``: the adapted anchor is the one the shipped network plays best
        among the search's best (:func:`agents.calibration.adapt.adapt_settings`);
        ``static``: the search's best fixed settings.
    :param known: market parameters whose truth the F arm's fit is told
        (:func:`agents.calibration.synthetic.fit_given_truth`): what their errors cost.
    :param days: the report's length (days); the account's market and its first days are the
        same at every length.
    """
    market, base = account_market(index)
    try:
        acc, fit = fitted_account(market, base, index, work, days)
    except CalibrationError as exc:  # kept as refused: the tables count it apart
        return {**rejected_record(index, days, market.name, exc), "market": market.name,
                "base": base.name, "seed": CALIBRATION_SEED + index}
    if known:
        fit = fit_given_truth(fit, acc.truth, known)
    report_seeds = REPORT_SEED + np.arange(seeds)
    record = {"index": index, "seed": acc.seed, "market": market.name, "base": base.name,
              "days": days, "fit_seconds": fit.seconds,
              "truth": {k: acc.truth[k] for k in ("pool_cost_cny", "pool_mean_roi",
                                                  "pool_sigma")},
              "fitted": {k: fit.value(k) for k in ("pool_cost_cny", "pool_mean_roi",
                                                   "pool_sigma")},
              "objectives": {}}
    for objective in objectives:
        truth, keys = true_launch(acc, market, objective)
        start = base_anchor(fit, objective)
        shipped = shipped_policy(objective) if choose == "network" else ""
        fitted = adapted_anchor(fit, objective, account=keys, policy=shipped, spread=spread)
        true = adapt_settings([truth] * ADAPT_DRAWS, start, played=(
            network_value(shipped, base.name) if shipped else None))
        anchors = {"G": start, "F": fitted.settings, "T": true.settings}
        policy = OnnxPolicy(shipped_policy(objective))
        policy.select_anchor(base.name, account=truth)
        values = {}
        for name, anchor in anchors.items():
            policy.anchor = anchor
            values[name] = episode_value(truth, policy, report_seeds)
            values[f"static{'' if name == 'G' else '_' + name}"] = episode_value(
                truth, FixedSettingsPolicy(truth, anchor), report_seeds)
        record["objectives"][objective] = {
            "anchors": {k: settings_as_data(v, digits=4) for k, v in anchors.items()},
            "adapt_seconds": {"F": fitted.seconds, "T": true.seconds},
            "values": {k: [float(x) for x in v] for k, v in values.items()}}
    return record


# what --explain does not swap: the advertiser's own keys, and what names or frames the launch
NOT_SWAPPED = ("name", "objective", "episode_days", *ACCOUNT_KEYS)


def swapped_markets(truth: ScenarioConfig, fitted: ScenarioConfig
                    ) -> list[tuple[str, ScenarioConfig | None]]:
    """The true market with one key of the fitted market at a time: every key in which
    ``fitted`` differs from ``truth`` (:data:`NOT_SWAPPED` excepted), in the config's order;
    ``None`` where that value alone does not make a valid market."""
    t, f = truth.to_dict(), fitted.to_dict()
    out: list[tuple[str, ScenarioConfig | None]] = []
    for key in f:
        if key in NOT_SWAPPED or f[key] == t.get(key):
            continue
        try:
            out.append((key, truth.replace(**{key: f[key]})))
        except ConfigError:
            out.append((key, None))
    return out


def explain(record: dict, objective: str, seeds: int, work: Path) -> str:
    """Why an account's anchors earn what they do: the shipped policy on its G, F and T
    anchors (``record``'s, :func:`one_account`) played on the true market, on the fitted
    market at the fit's mode, and on the true market with each fitted value put in alone
    (:func:`swapped_markets`), on ``seeds`` report seeds; CNY per launch. The keys that
    move F - G most are the fit's errors that decided the anchor."""
    market, base = account_market(record["index"])
    acc, fit = fitted_account(market, base, record["index"], work, record["days"])
    truth, keys = true_launch(acc, market, objective)
    fitted = fitted_config(fit).replace(objective=objective,
                                        episode_days=market.episode_days, **keys)
    anchors = {k: settings_from_entry(v)
               for k, v in record["objectives"][objective]["anchors"].items()}
    played = network_value(shipped_policy(objective), base.name)
    report_seeds = REPORT_SEED + np.arange(seeds)

    def values(config: ScenarioConfig) -> dict[str, float]:
        return {name: played(config, anchor, report_seeds) for name, anchor in anchors.items()}

    def row(label: str, t: object, f: object, v: dict[str, float]) -> str:
        return (f"| {label} | {t} | {f} | " + " | ".join(f"{v[k] / 1000:,.1f}k" for k in "GFT")
                + f" | {_k(v['F'] - v['G'])} |")

    t_dict, f_dict = truth.to_dict(), fitted.to_dict()
    est = fit.estimates
    at_truth = values(truth)
    lines = [f"Account {record['seed']} ({record['market']}, base {record['base']}, "
             f"{record['days']}-day report), {objective}: the shipped policy on the anchors "
             f"G, F and T, mean over {seeds} report seeds, CNY per launch. A key's row puts "
             "the fitted value alone into the true market; (prior): the report did not "
             "identify it. Rows by how far the key alone moves F - G from the truth's.", "",
             "| market | truth | fitted | G | F | T | F - G |", "|---|---|---|---|---|---|---|",
             row("the truth", "", "", at_truth),
             row("the fitted market (mode)", "", "", values(fitted))]
    swapped = []
    for key, config in swapped_markets(truth, fitted):
        shown = [_short(t_dict.get(key)), _short(f_dict[key])
                 + (" (prior)" if key in est and not est[key].identified else "")]
        if config is None:
            lines.append(f"| {key} | {shown[0]} | {shown[1]} | not a valid market alone |||| ")
            continue
        v = values(config)
        moved = (v["F"] - v["G"]) - (at_truth["F"] - at_truth["G"])
        swapped.append((abs(moved), row(key, *shown, v)))
    lines += [r for _, r in sorted(swapped, key=lambda x: -x[0])]
    return "\n".join(lines) + "\n"


def _short(value: object) -> str:
    """A config value for a table cell: 4 significant digits, lists element-wise."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def account_means(records: list[dict], objective: str) -> dict[str, np.ndarray]:
    """Each policy's mean value per account (accounts,), CNY per launch."""
    return {p: np.array([np.mean(r["objectives"][objective]["values"][p]) for r in records])
            for p in POLICIES}


def summary(records: list[dict], objective: str) -> dict:
    """Gains over G with t-intervals over accounts, the loss ratio with its bootstrap."""
    m = account_means(records, objective)
    out = {"accounts": len(records)}
    for name, (a, b) in {"F-G": ("F", "G"), "T-G": ("T", "G"), "T-F": ("T", "F"),
                         "static_F-static": ("static_F", "static"),
                         "static_T-static": ("static_T", "static"),
                         "G-static": ("G", "static"), "F-static_F": ("F", "static_F")}.items():
        out[name] = mean_interval(m[a] - m[b])
        out[name + " wins"] = int(np.sum(m[a] > m[b]))
    out["loss_ratio"] = ratio_of_means(m["T"] - m["F"], m["T"] - m["G"],
                                       stream_seed(0, "decision_value", objective))
    out["static_loss_ratio"] = ratio_of_means(m["static_T"] - m["static_F"],
                                              m["static_T"] - m["static"],
                                              stream_seed(0, "decision_value_static",
                                                          objective))
    return out


def _k(x: float) -> str:
    return f"{x / 1000:+.1f}k"


def _spread(x: np.ndarray) -> str:
    return f"{np.median(x):+.1%} [{x.min():+.1%}, {x.max():+.1%}]"


def _interval(t: tuple[float, float, float]) -> str:
    return f"{_k(t[0])} [{t[1] / 1000:+.1f}, {t[2] / 1000:+.1f}]"


def off_scenario(record: dict) -> bool:
    """Whether the account was drawn around an unseen market (off the named scenarios)."""
    return drawn_off_scenario(record["market"], record["base"])


def _verdict(s: dict) -> tuple[str, str]:
    """The issue's two targets on a :func:`summary`: F above G; the loss ratio within 10%."""
    lr = s["loss_ratio"]
    ratio = ("met" if lr[2] <= 0.10
             else "not met (point estimate within)" if lr[0] <= 0.10 else "not met")
    return ("met" if s["F-G"][1] > 0 else "not met"), ratio


def tables(records: list[dict], objectives: list[str], seeds: int) -> str:
    lines = []
    for objective in objectives:
        s = summary(records, objective)
        lr, slr = s["loss_ratio"], s["static_loss_ratio"]
        beats, within = _verdict(s)
        lines += [f"## {objective}", "",
                  f"{s['accounts']} accounts x {seeds} report seeds; CNY per 84-day launch, "
                  "mean over accounts [95% interval, accounts as clusters]; wins: accounts "
                  "whose mean is higher.", "",
                  "| comparison | mean [95%] | wins |", "|---|---|---|"]
        for name, what in (("F-G", "F - G: adapted on the fit vs the base's anchor"),
                           ("T-G", "T - G: adapted on the truth vs the base's anchor"),
                           ("T-F", "T - F: what the fit's error costs"),
                           ("G-static", "G - static: the network's gain on the base anchor"),
                           ("F-static_F", "F - static_F: the network on the adapted anchor"),
                           ("static_F-static", "static_F - static (fixed settings only)"),
                           ("static_T-static", "static_T - static (fixed settings only)")):
            lines.append(f"| {what} | {_interval(s[name])} | {s[name + ' wins']}/"
                         f"{s['accounts']} |")
        m = account_means(records, objective)
        scale = np.maximum(np.abs(m["G"]), 1.0)
        lines += ["", "Per account, relative to |G| (median [min, max]): F - G "
                  + _spread((m["F"] - m["G"]) / scale) + ", T - G "
                  + _spread((m["T"] - m["G"]) / scale) + "."]
        lines += ["",
                  f"Loss ratio (T - F) / (T - G): **{lr[0]:.1%}** [{lr[1]:.1%}, {lr[2]:.1%}] "
                  f"(bootstrap over accounts); fixed settings alone: {slr[0]:.1%} "
                  f"[{slr[1]:.1%}, {slr[2]:.1%}].", "",
                  f"Targets, all accounts: F beats G (lower bound above 0): **{beats}**; "
                  f"loss ratio at most 10% (upper bound): **{within}**.", ""]
        off = [r for r in records if off_scenario(r)]
        if len(off) >= 2:
            o = summary(off, objective)
            olr = o["loss_ratio"]
            off_beats, off_within = _verdict(o)
            lines += [f"Accounts drawn around the unseen markets (off the named scenarios, "
                      f"the issue's population; {o['accounts']} of {s['accounts']}): F - G "
                      f"{_interval(o['F-G'])}, T - G {_interval(o['T-G'])}, T - F "
                      f"{_interval(o['T-F'])}; loss ratio **{olr[0]:.1%}** [{olr[1]:.1%}, "
                      f"{olr[2]:.1%}]. Targets: F beats G **{off_beats}**; loss ratio at "
                      f"most 10% **{off_within}**.", ""]
        lines += ["| account | market (base) | pool cost truth / fit | mean ROI truth / fit | "
                  "G | F - G | T - G | target x BE: G / F / T | budget x launch: G / F / T |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in records:
            o = r["objectives"][objective]
            v = {k: np.mean(x) for k, x in o["values"].items()}
            a = o["anchors"]
            lines.append(
                f"| {r['index']} | {r['market']} ({r['base']}) | "
                f"{r['truth']['pool_cost_cny']:,.0f} / {r['fitted']['pool_cost_cny']:,.0f} | "
                f"{r['truth']['pool_mean_roi']:.2f} / {r['fitted']['pool_mean_roi']:.2f} | "
                f"{v['G'] / 1000:,.1f}k | {_k(v['F'] - v['G'])} | {_k(v['T'] - v['G'])} | "
                + " / ".join(f"{a[k]['target_over_breakeven']:.2f}" for k in "GFT") + " | "
                + " / ".join(f"{a[k]['budget_over_launch']:.2f}" for k in "GFT") + " |")
        secs = [r["objectives"][objective]["adapt_seconds"]["F"] for r in records]
        lines += ["", f"Adapting on the fit: median {statistics.median(secs):.1f} s, max "
                  f"{max(secs):.1f} s per account (one core, shared).", ""]
    fits = [r["fit_seconds"] for r in records]
    days = sorted({r.get("days", HISTORY_DAYS) for r in records})
    lines.append(f"Fits: median {statistics.median(fits):.1f} s "
                 f"({'/'.join(map(str, days))}-day reports).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=24)
    p.add_argument("--objectives", nargs="+", default=["profit", "gmv_floor"])
    p.add_argument("--seeds", type=int, default=32, help="report seeds per account")
    p.add_argument("--skip", type=int, default=0,
                   help="start at the account this many after the first (split a run "
                   "across processes; the cache joins them)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "decision_value")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "decision_value_results.md")
    p.add_argument("--choose", choices=("network", "static"), default="network",
                   help="the adapted anchor: the shipped network's best among the search's "
                   "best settings (default), or the search's best fixed settings")
    p.add_argument("--spread", type=float, default=1.0,
                   help="posterior draws' sd over the fit's (default 1)")
    p.add_argument("--known", nargs="+", default=[], metavar="PARAMETER",
                   help="diagnostic: tell the F arm's fit the truth of these market "
                   "parameters (e.g. pool_mean_roi): what their errors cost")
    p.add_argument("--days", type=int, default=HISTORY_DAYS,
                   help=f"the reports' length in days (default {HISTORY_DAYS})")
    p.add_argument("--explain", type=int, metavar="INDEX",
                   help="diagnostic: for account INDEX (e.g. 476 for seed 60476) and the "
                   "first objective, the anchors played on its true market with each fitted "
                   "value put in alone (what decided F - G); writes no doc")
    p.add_argument("--smoke", action="store_true", help="do not write the doc")
    args = p.parse_args(argv)
    if args.days < MIN_FIT_DAYS:
        p.error(f"--days: a report of {args.days} days is too short to fit (at least "
                f"{MIN_FIT_DAYS})")
    names = truth_names(market_parameters(load_scenario(MARKETS[0])))
    wrong = [n for n in args.known if n not in names]
    if wrong:
        p.error(f"--known: not a market parameter: {', '.join(wrong)} (one of: "
                f"{', '.join(names)})")
    if args.explain is not None and args.explain < FIRST_INDEX:
        p.error(f"--explain: account indices start at {FIRST_INDEX} (seed "
                f"{CALIBRATION_SEED + FIRST_INDEX}), got {args.explain}")
    if args.explain is not None and args.known:
        p.error("--explain replays the account's own fit: leave out --known")
    work = args.out / "accounts"
    work.mkdir(parents=True, exist_ok=True)

    def record_of(i: int) -> dict:
        """Account ``i``'s record: read from ``--out``; the objectives it lacks are measured
        and added to it (those it holds are kept), and it is kept there."""
        cache = work / f"account_{i}_{args.seeds}{'' if args.choose == 'static' else '_net'}"
        cache = cache.with_name(cache.name + ("" if args.spread == 1.0 else f"_s{args.spread:g}")
                                + "".join(f"_known-{n}" for n in args.known)
                                + ("" if args.days == HISTORY_DAYS else f"_d{args.days}")
                                + ".json")
        record = json.loads(cache.read_text()) if cache.is_file() else None
        if record is not None and refused(record):
            return record
        missing = [o for o in args.objectives
                   if record is None or o not in record["objectives"]]
        if missing:
            new = one_account(i, missing, args.seeds, work, args.choose, args.spread,
                              args.known, args.days)
            if record is not None and not refused(new):
                new["objectives"] = {**record["objectives"], **new["objectives"]}
            record = new
            write_text_atomic(cache, json.dumps(record) + "\n")
        return record

    if args.explain is not None:
        record = record_of(args.explain)
        if refused(record):
            print(f"error: account {args.explain}: calibrate refuses its report: "
                  f"{record['rejected']}", file=sys.stderr)
            return 2
        print(explain(record, args.objectives[0], args.seeds, work))
        return 0
    records, turned_away = [], []
    started = time.perf_counter()
    for i in range(FIRST_INDEX + args.skip, FIRST_INDEX + args.accounts):
        record = record_of(i)
        if refused(record):
            turned_away.append(record)
            print(f"refused: {refusal(record)}", flush=True)
            continue
        records.append(record)
        line = ", ".join(
            f"{o}: F-G {_k(np.mean(record['objectives'][o]['values']['F']) - np.mean(record['objectives'][o]['values']['G']))}"  # noqa: E501
            f" T-G {_k(np.mean(record['objectives'][o]['values']['T']) - np.mean(record['objectives'][o]['values']['G']))}"  # noqa: E501
            for o in args.objectives)
        print(f"account {i} ({record['market']}): {line}  [{time.perf_counter() - started:.0f} s]",
              flush=True)
    if not records:
        print(f"error: calibrate refuses every report of accounts {FIRST_INDEX + args.skip}-"
              f"{FIRST_INDEX + args.accounts - 1}: nothing to measure", file=sys.stderr)
        return 2
    text = tables(records, args.objectives, args.seeds)
    if turned_away:
        text += ("\nReports `calibrate` refuses (not measured): "
                 + "; ".join(refusal(r) for r in turned_away) + ".\n")
    print(text)
    if not args.smoke:
        command = "python scripts/decision_value.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        versions = package_versions()
        shown = ", ".join(f"{k} {versions[k]}" for k in sorted(versions))
        write_text_atomic(
            args.doc,
            "# Decision value of calibration: measured\n\nGenerated by `" + command.strip()
            + f"` (env version {ENV_VERSION}; adaptation: {ADAPT_DRAWS} posterior draws x "
            f"{ADAPT_SEEDS} training seeds, {ADAPT_TRIALS} trials, anchor chosen by "
            f"{args.choose}, draws' spread {args.spread:g} x the posterior's; {shown}); do not "
            "edit. "
            "G: the shipped policy on the base's stored anchor; F: on the anchor adapted to "
            "the fit; T: on the anchor adapted to the true market; static, static_F, "
            "static_T: those anchors held as fixed settings. Every policy is played on the "
            "account's true market from launch. See [calibration.md](calibration.md#decision-"
            "value).\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
