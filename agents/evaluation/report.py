"""The outputs of a paired evaluation: ``summary.csv`` and ``episodes.csv``, the Markdown
report, TensorBoard scalars and the PNG plots (:mod:`agents.evaluation.plots`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.csv_safe import csv_text as safe_csv_text
from agents.evaluation import behaviour
from agents.evaluation import plots as eval_plots
from agents.evaluation import stats as eval_stats
from agents.evaluation.scores import VALUE_KEYS, ScenarioResult, case_stem
from envs.metrics import EPISODE_METRICS


def csv_text(rows: list[dict[str, Any]]) -> str:
    """``summary.csv``/``episodes.csv``: the first row's keys as the header, floats to 6
    significant digits, text cells made inert for spreadsheets (:mod:`agents.csv_safe`)."""
    return safe_csv_text(list(rows[0]), [
        {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        for row in rows])


def episode_rows(runs: list[ScenarioResult]) -> list[dict[str, Any]]:
    rows = []
    for res in runs:
        values = res.values()
        for label, result in res.results.items():
            value = values[label]
            for i, s in enumerate(res.seeds):
                rows.append({"scenario": res.scenario.name,
                             "objective": res.scenario.objective, "policy": label,
                             "seed": int(s), "value": float(value[i]),
                             **{k: float(result.metrics[k][i]) for k in EPISODE_METRICS}})
    return rows


def _fmt(row: dict[str, Any], key: str, digits: int = 0) -> str:
    return (f"{row[key]:,.{digits}f} [{row[key + '_ci_low']:,.{digits}f}, "
            f"{row[key + '_ci_high']:,.{digits}f}]")


def _fmt_diff(row: dict[str, Any], key: str) -> str:
    """:func:`_fmt` of ``key`` (CNY), or n/a when the row lacks it."""
    return _fmt(row, key) if key in row else "n/a"


VALUE_NAMES = {"profit": "profit", "gmv_floor": "gmv_floor return"}


def value_name(objective: str) -> str:
    """What a case's value is called in tables (``profit``, ``gmv_floor return``)."""
    return VALUE_NAMES.get(objective, objective)


def objectives_of(rows: list[dict[str, Any]]) -> list[str]:
    """The objectives in ``rows``, in order of first appearance."""
    return list(dict.fromkeys(r["objective"] for r in rows))


def heuristics_table(rows: list[dict[str, Any]], objective: str) -> str:
    """Markdown: value (k CNY) and normalised score per scenario (rows) and policy, for one
    objective."""
    rows = [r for r in rows if r["objective"] == objective]
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    by = {(r["scenario"], r["policy"]): r for r in rows}
    lines = ["| scenario | " + " | ".join(policies) + " |",
             "|---|" + "---|" * len(policies)]
    for sc in scenarios:
        cells = [f"{by[sc, p]['value'] / 1000:,.0f}k ({by[sc, p]['normalised_score']:.2f})"
                 for p in policies]
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregates_lines(aggregates: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows of IQM and mean normalised score per policy."""
    out = ["| policy | IQM [95% CI] | mean [95% CI] |", "|---|---|---|"]
    for label, a in aggregates.items():
        out.append(f"| {label} | {a['iqm']:.3f} [{a['iqm_ci_low']:.3f}, {a['iqm_ci_high']:.3f}]"
                   f" | {a['mean']:.3f} [{a['mean_ci_low']:.3f}, {a['mean_ci_high']:.3f}] |")
    return out


def _case_section(rows: list[dict[str, Any]], sc: str, objective: str, plots: bool
                  ) -> list[str]:
    """One case's tables: every policy's value, metrics and comparisons."""
    mine = [r for r in rows if r["scenario"] == sc and r["objective"] == objective]
    name = value_name(objective)
    out = [f"### {sc}, {objective}", "",
           f"| policy | {name}, CNY | normalised | {name} vs playbook, CNY | P(beats playbook) "
           "| profit, CNY | payment ROI | settlement ROI | learning days | interruptions |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in mine:
        out.append(
            f"| {r['policy']} | {_fmt(r, 'value')} | {_fmt(r, 'normalised_score', 2)} | "
            f"{r['value_diff_vs_playbook']:,.0f} [{r['value_diff_ci_low']:,.0f}, "
            f"{r['value_diff_ci_high']:,.0f}] | {r['prob_improvement_vs_playbook']:.2f} | "
            f"{r['profit']:,.0f} | {r['payment_roi']:.2f} | {r['settlement_roi']:.2f} | "
            f"{r['learning_days']:.1f} | {r['interruptions']:.1f} |")
    if "value_diff_vs_static" in mine[0]:
        first = mine[0]
        out += ["", f"Against `static` (value of control, oracle − static: "
                f"{_fmt_diff(first, 'value_of_control')} CNY; control share n/a where its "
                "lower bound is ≤ 0):", "",
                f"| policy | {name} − static, CNY [95% CI] | control share [95% CI] | "
                f"{name} − the best heuristic ({first.get('best_heuristic', 'n/a')}, chosen on "
                "validation seeds), CNY [95% CI] |", "|---|---|---|---|"]
        for r in mine:
            share = ("n/a" if np.isnan(r["control_share"]) else
                     f"{r['control_share']:.2f} [{r['control_share_ci_low']:.2f}, "
                     f"{r['control_share_ci_high']:.2f}]")
            out.append(f"| {r['policy']} | {_fmt_diff(r, 'value_diff_vs_static')} | {share} | "
                       f"{_fmt_diff(r, 'value_diff_vs_best_heuristic')} |")
    shares = [k for k in mine[0] if k.startswith(("gmv_share_vs_", "spend_share_vs_",
                                                   "spend_last"))]
    if shares:
        ref = shares[0].rsplit("_vs_", 1)[1]
        out += ["", f"Volume as a share of {ref}'s on the same seeds (GMV, spend, spend over "
                f"the last {behaviour.LAST_DAYS} days):", "",
                "| policy | " + " | ".join(k.replace(f"_vs_{ref}", "") for k in shares)
                + " |", "|---|" + "---|" * len(shares)]
        out += [f"| {r['policy']} | " + " | ".join(f"{r[k]:.2f}" for k in shares) + " |"
                for r in mine]
    stem = case_stem(sc, objective)
    out += ["", f"![{sc}, {objective}](bars_{stem}.png)", "",
            f"![{sc}, {objective}: behaviour](behaviour_{stem}.png)", ""] if plots else [""]
    return out


def report_markdown(rows: list[dict[str, Any]],
                    aggregates: dict[str, dict[str, dict[str, float]]],
                    record: dict[str, Any], plots: bool = True) -> str:
    """The human-readable report (with links to the PNG plots if they were drawn).

    :param aggregates: objective -> policy -> IQM and mean normalised score.
    """
    out = [f"# Evaluation {record['created']}", "",
           f"Seeds {record['seeds'][0]}..{record['seeds'][-1]} ({record['episodes']} episodes "
           "per case, the same seeds for every policy: paired). A case is a scenario scored on "
           "one objective: its value is the episode's profit (`profit`) or its settled GMV "
           "less the settlement-ROI floor's penalty (`gmv_floor`), CNY per launch; tuned "
           "baselines and the oracle use that objective's settings and plans. Intervals are "
           "95% percentile intervals of rliable's stratified bootstrap over episodes; "
           "differences are means of per-seed differences; normalised score = (value - "
           "constant) / (oracle - constant), per episode the gain over the constant policy on "
           "the same seed.", "",
           f"Command: `{' '.join(record['command'])}`", ""]
    for objective in objectives_of(rows):
        name = value_name(objective)
        out += [f"## Objective `{objective}`", "",
                f"{name.capitalize()} per episode (k CNY) and normalised score:", "",
                heuristics_table(rows, objective), "",
                "Across scenarios (normalised score, rliable stratified bootstrap):", "",
                *aggregates_lines(aggregates.get(objective, {})), ""]
        if plots:
            out += [f"![performance profiles](performance_profiles_{objective}.png)", ""]
        for sc in dict.fromkeys(r["scenario"] for r in rows if r["objective"] == objective):
            out += _case_section(rows, sc, objective, plots)
    return "\n".join(out) + "\n"


def write_tensorboard(rows: list[dict[str, Any]], tb_dir: Path) -> None:
    """Scalars ``eval/<policy>/<metric>`` (value, the episode metrics, the normalised score),
    one folder per case: ``tb/<scenario>/<objective>``."""
    from torch.utils.tensorboard import SummaryWriter

    for sc, objective in dict.fromkeys((r["scenario"], r["objective"]) for r in rows):
        writer = SummaryWriter(str(tb_dir / sc / objective))
        for r in (r for r in rows if r["scenario"] == sc and r["objective"] == objective):
            for key in (*VALUE_KEYS, "normalised_score"):
                writer.add_scalar(f"eval/{r['policy']}/{key}", r[key], 0)
        writer.close()


def write_plots(runs: list[ScenarioResult], rows: list[dict[str, Any]],
                 scores: dict[str, dict[str, np.ndarray]], seed: int, profile_reps: int,
                 out_dir: Path) -> None:
    for res in runs:
        name, objective = res.scenario.name, res.scenario.objective
        stem, title = case_stem(name, objective), f"{name}, {objective}"
        eval_plots.plot_bars(title, [r for r in rows if r["scenario"] == name
                                     and r["objective"] == objective],
                             out_dir / f"bars_{stem}.png", value_name(objective))
        eval_plots.plot_behaviour(title, {label: result.daily
                                          for label, result in res.results.items()},
                                  out_dir / f"behaviour_{stem}.png")
        for label, result in res.results.items():
            first = {k: v[0] for k, v in result.daily.items()}
            eval_plots.plot_trajectory(title, label, first, int(res.seeds[0]),
                                       out_dir / f"trajectory_{stem}_{label}.png")
    taus = np.linspace(-1.0, 1.5, 51)
    for objective, per in scores.items():
        profiles, cis = eval_stats.performance_profiles(per, taus, seed, profile_reps)
        eval_plots.plot_profiles(taus, profiles, cis,
                                 out_dir / f"performance_profiles_{objective}.png")
