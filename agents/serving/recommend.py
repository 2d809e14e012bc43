"""Accounts' daily reports -> tomorrow's payment-ROI target and budget, beside the playbook's.

One batch at a time: every report becomes a row of the env's history table and a decision
context (:mod:`agents.serving.inputs`), one :func:`envs.history.build_features` call makes
the observations, one ``predict`` call answers for all accounts, and the platform's guards
(:mod:`agents.serving.guards`) turn the answer into settings to enter. The same is done with
the playbook, so an operator sees both.

An anchored policy (:mod:`envs.anchored`) also reads each account's dashboard history and
its plan's launch budget (:func:`agents.serving.inputs.launch_budget`): its graph outputs a
residual on the anchor of ``--scenario``, mapped to the env's action by
:func:`envs.anchored.anchored_action`; the rest (settings, guards, output) is the same.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.serving.errors import ServingError
from agents.serving.guards import PLANS, GuardNote, Settings, apply_guards, raw_settings
from agents.serving.inputs import (
    AccountDefaults,
    LaunchBudget,
    Promotion,
    history_inputs,
    launch_budget,
    observations,
    parse_promotions,
)
from agents.serving.report import AccountReport, read_report
from envs.actions import plan_names
from envs.anchored import settings_as_data
from envs.config import ConfigError, ScenarioConfig, load_scenario
from envs.history import COL

COMPARE_POLICY = "playbook"
DEFAULT_SCENARIO = "3c"  # a rule-based policy's scenario when none is named
REPORT_SUFFIXES = (".csv", ".xlsx", ".xlsm")


# ---------------------------------------------------------------------------- policies
def load_policy(spec: str, scenario: str | None = None, threads: int = 1) -> Any:
    """A policy from ``--policy``: a path to ``policy.onnx`` or a rule-based policy's name.

    :param scenario: the scenario a rule-based policy is built for (None:
        :data:`DEFAULT_SCENARIO`); for an anchored ONNX policy, the scenario whose anchor it
        plays (None: the one it was trained on); a raw ONNX policy carries its own in the
        manifest.
    """
    if spec.endswith(".onnx") or Path(spec).is_file():
        from agents.serving.onnx_policy import OnnxPolicy

        policy = OnnxPolicy(spec, threads=threads)
        if policy.anchored:
            policy.select_anchor(scenario)
        return policy
    return rule_policy(spec, scenario_config(scenario or DEFAULT_SCENARIO))


def scenario_config(scenario: str) -> ScenarioConfig:
    """The scenario by preset name or YAML path, as a :class:`ServingError` if unknown."""
    try:
        return load_scenario(scenario)
    except ConfigError as exc:
        raise ServingError(f"--scenario: {exc}") from None


def rule_policy(name: str, config: ScenarioConfig) -> Any:
    """A registered rule-based policy (``playbook``, ``pid``, ...) that reads only the report."""
    from agents.policies import POLICIES, make_policy

    usable = sorted(n for n, cls in POLICIES.items() if not getattr(cls, "needs_simulator", False))
    if name not in usable:
        why = ("needs the simulator's hidden state" if name in POLICIES
               else "is not a policy file or a known policy")
        raise ServingError(f"--policy {name!r} {why}; use runs/<run>/export/policy.onnx or "
                           f"one of: {', '.join(usable)}")
    return make_policy(name, config)


# ------------------------------------------------------------------------------ answers
@dataclass
class Answer:
    """One policy's answer for a batch: the action, what it asked for, what to enter."""

    name: str
    action: np.ndarray  # (n, action_dim) in [-1, 1]
    raw: Settings
    final: Settings
    guards: list[list[GuardNote]]
    space: str
    plans: tuple[str, ...]  # the plans of the policy's scenario (envs.actions.plan_names)
    residual: np.ndarray | None = None  # an anchored policy's (n, k) graph output
    anchor: dict[str, Any] | None = None  # an anchored policy's anchor (scenario, settings)
    launch: list[LaunchBudget] | None = None  # an anchored policy's launch budgets


@dataclass
class Recommendation:
    """Tomorrow's settings for one account, with everything needed to explain them."""

    report: AccountReport
    current: dict[str, Any]
    policy: dict[str, Any]
    playbook: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``--json``)."""
        r = self.report
        return {
            "account": r.account, "file": str(r.path),
            "decision_date": r.decision_date.isoformat(),
            "history": {"days": len(r.dates), "first": r.dates[0].isoformat(),
                        "last": r.dates[-1].isoformat(), "encoding": r.encoding},
            "mapping": r.mapping, "ignored_columns": r.ignored,
            "current": self.current, "policy": self.policy, "playbook": self.playbook,
            "notes": r.notes + self.notes,
        }


def answer(policy: Any, obs: np.ndarray, current: Settings, learning: np.ndarray,
           learn_failed: np.ndarray, edits_today: int = 0,
           act_while_learning: bool = False) -> Answer:
    """Run ``policy`` on a batch of observations and guard its answer."""
    action = np.asarray(policy.predict(obs, deterministic=True)[0], dtype=np.float64)
    action = action.reshape(obs.shape[0], -1)
    raw = raw_settings(policy.config, action, current)
    acts = act_while_learning or bool(getattr(policy, "acts_while_learning", False))
    final, notes = apply_guards(raw, current, learning, learn_failed, edits_today, acts)
    out = Answer(getattr(policy, "name", "policy"), action, raw, final, notes,
                 policy.config.action_space, plan_names(policy.config))
    if getattr(policy, "anchored", False):
        out.residual = np.asarray(policy.residual, dtype=np.float64).reshape(obs.shape[0], -1)
        out.anchor = {"kind": policy.anchor_kind, "scenario": policy.anchor_name,
                      "settings": settings_as_data(policy.anchor)}
    return out


def _settings_dict(s: Settings, i: int, space: str, plans: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"target_roi": float(s.target_roi[i]),
                           "budget_cny": float(s.budget_cny[i])}
    if space == "full":
        out.update({f"share_{p}": float(s.shares[i, k]) for k, p in enumerate(PLANS)
                    if p in plans})
        out["creative_refresh"] = bool(s.refresh[i])
    return out


def _answer_dict(a: Answer, i: int, current: Settings) -> dict[str, Any]:
    final = _settings_dict(a.final, i, a.space, a.plans)
    change = {"target_roi": final["target_roi"] - float(current.target_roi[i]),
              "budget_cny": final["budget_cny"] - float(current.budget_cny[i])}
    out = {"name": a.name, "action": [float(x) for x in a.action[i]],
           "raw": _settings_dict(a.raw, i, a.space, a.plans), "recommended": final,
           "change": change,
           "guards": [vars(g) for g in a.guards[i]]}
    if a.anchor is not None and a.residual is not None and a.launch is not None:
        out["anchored"] = True
        out["residual"] = [float(x) for x in a.residual[i]]
        out["anchor"] = {**a.anchor, "launch_budget_cny": a.launch[i].cny,
                         "launch_budget_source": a.launch[i].source}
    return out


# ------------------------------------------------------------------------------ accounts
@dataclass
class RecommendOptions:
    """What the command line says about every account.

    :param promo_dates: ``--promo-dates`` (see :func:`parse_promotions`).
    :param breakeven_roi: the accounts' break-even payment ROI (None: the scenario's).
    :param edits_today: target edits already made today.
    :param act_while_learning: do not hold settings while a plan is learning.
    :param compare: the rule-based policy shown beside the answer (None: none).
    :param launch_budget: the plans' launch budget (CNY) for an anchored policy when a report
        does not show it (:func:`agents.serving.inputs.launch_budget`).
    """

    promo_dates: str | None = None
    breakeven_roi: float | None = None
    edits_today: int = 0
    act_while_learning: bool = False
    compare: str | None = COMPARE_POLICY
    launch_budget: float | None = None


def _defaults_and_peaks(cfg: ScenarioConfig,
                        options: RecommendOptions) -> tuple[AccountDefaults, list[Promotion]]:
    if options.breakeven_roi is not None and options.breakeven_roi <= 0:
        raise ServingError("--breakeven-roi must be > 0")
    if options.launch_budget is not None and not (math.isfinite(options.launch_budget)
                                                  and options.launch_budget > 0):
        raise ServingError(f"--launch-budget must be a finite amount > 0 (CNY), got "
                           f"{options.launch_budget}")
    defaults = AccountDefaults(
        breakeven_roi=options.breakeven_roi or cfg.breakeven_roi,
        shares=tuple(cfg.launch_shares), breakeven_given=options.breakeven_roi is not None)
    return defaults, parse_promotions(options.promo_dates, cfg.promo_peak_length_days)


def recommend_reports(policy: Any, reports: Sequence[AccountReport],
                      options: RecommendOptions) -> list[Recommendation]:
    """Recommendations for already-read reports, all accounts in one batch."""
    defaults, peaks = _defaults_and_peaks(policy.config, options)
    inputs = [history_inputs(report, defaults, peaks) for report in reports]
    return _score(policy, reports, inputs, options)


def _score(policy: Any, reports: Sequence[AccountReport],
           inputs: Sequence[tuple[np.ndarray, Any, list[str]]],
           options: RecommendOptions) -> list[Recommendation]:
    if not reports:
        return []
    histories = [rows for rows, _, _ in inputs]
    contexts = [ctx for _, ctx, _ in inputs]
    obs = observations(histories, contexts, policy.config.whole_site_enabled)
    last = np.stack([h[-1] for h in histories])
    current = Settings(last[:, COL["target_roi"]].copy(), last[:, COL["budget"]].copy(),
                       np.concatenate([c.shares for c in contexts]),
                       np.zeros(len(reports), dtype=bool))
    learning, failed = last[:, COL["learning"]] > 0.5, last[:, COL["learn_failed"]] > 0.5
    notes = [list(note) for _, _, note in inputs]
    launch = None
    if getattr(policy, "needs_dashboard", False):
        launch = [launch_budget(report, options.launch_budget) for report in reports]
        for i, item in enumerate(launch):
            if item.note:
                notes[i].append(item.note)
        policy.see_dashboard(dashboard(histories, policy.config.history_days),
                             np.array([item.cny for item in launch]))
    main = answer(policy, obs, current, learning, failed, options.edits_today,
                  options.act_while_learning)
    main.launch = launch
    other = None
    if options.compare and options.compare != getattr(policy, "name", None):
        other = answer(rule_policy(options.compare, policy.config), obs, current, learning,
                       failed, options.edits_today, options.act_while_learning)
    space = "full" if "full" in (main.space, getattr(other, "space", "")) else "basic"
    out = []
    for i, report in enumerate(reports):
        cur = _settings_dict(current, i, space, main.plans)
        cur.update(learning=bool(learning[i]), learn_failed=bool(failed[i]))
        out.append(Recommendation(
            report=report, current=cur, policy=_answer_dict(main, i, current),
            playbook=None if other is None else _answer_dict(other, i, current),
            notes=notes[i]))
    return out


def dashboard(histories: Sequence[np.ndarray], days: int) -> np.ndarray:
    """The accounts' dashboards as the env holds them (n, days, columns): the last ``days``
    rows of each report (the scenario's ``history_days``), or as many as the shortest has."""
    days = min(days, *(len(h) for h in histories))
    return np.stack([h[-days:] for h in histories])


def report_files(directory: str | Path) -> list[Path]:
    """The report files of ``--batch DIR`` (``.csv``/``.xlsx``, hidden files skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ServingError("--batch: not a directory", directory)
    files = sorted(p for p in directory.iterdir()
                   if p.suffix.lower() in REPORT_SUFFIXES and not p.name.startswith((".", "~")))
    if not files:
        raise ServingError("--batch: no .csv or .xlsx reports in the directory", directory)
    return files


def recommend_files(policy: Any, paths: Sequence[str | Path], options: RecommendOptions,
                    skip_bad: bool = False) -> tuple[list[Recommendation], list[dict[str, str]]]:
    """Read and score many reports; with ``skip_bad`` a bad report is listed, not fatal.

    :return: the recommendations and the skipped files with the reason.
    """
    defaults, peaks = _defaults_and_peaks(policy.config, options)  # bad options fail first
    reports, inputs, skipped = [], [], []
    for path in paths:
        try:
            report = read_report(path)
            prepared = history_inputs(report, defaults, peaks)
        except ServingError as exc:
            if not skip_bad:
                raise
            skipped.append({"file": str(path), "error": str(exc)})
            continue
        reports.append(report)
        inputs.append(prepared)
    return _score(policy, reports, inputs, options), skipped


# ------------------------------------------------------------------------------- output
def _money(x: float) -> str:
    return f"{x:,.2f}"


def _change(key: str, new: float, old: float, fmt) -> str:
    """``+0.12 (+4.0%)`` for target and budget; percentage points for plan shares."""
    diff = new - old
    if key.startswith("share_"):
        return f"{diff * 100:+.1f} pp"
    pct = f" ({diff / old:+.1%})" if old else ""
    return f"{'+' if diff >= 0 else '-'}{fmt(abs(diff))}{pct}"


def format_table(rec: Recommendation) -> str:
    """The human-readable answer for one account."""
    r, cur, pol, pb = rec.report, rec.current, rec.policy, rec.playbook
    lines = [
        f"Recommendation for {r.decision_date} ({r.decision_date:%a}), account {r.account}",
        f"  policy : {pol['name']}",
    ]
    if pol.get("anchored"):
        lines.append(f"  anchor : {describe_anchor(pol['anchor'])}")
    lines += [
        f"  report : {r.path} ({r.encoding}, {len(r.dates)} days {r.dates[0]}..{r.dates[-1]})",
        f"  columns: {r.describe_mapping()}",
    ]
    lines += [f"  read   : {note}" for note in r.notes]
    lines += [f"  assumed: {note}" for note in rec.notes]
    if cur["learning"] or cur["learn_failed"]:
        lines.append(f"  status : {'learning' if cur['learning'] else 'learning failed'}")
    header = ["setting", "current", "policy raw", "recommended", "change"]
    if pb is not None:
        header.append(pb["name"])
    rows = [header]
    fields = [("payment-ROI target", "target_roi", lambda x: f"{x:.2f}", lambda x: f"{x:.4f}"),
              ("daily budget (CNY)", "budget_cny", _money, _money)]
    if "share_volume" in pol["recommended"] or (pb and "share_volume" in pb["recommended"]):
        fields += [(f"share {p}", f"share_{p}", lambda x: f"{x:.0%}", lambda x: f"{x:.1%}")
                   for p in PLANS if f"share_{p}" in cur]
    for label, key, fmt, raw_fmt in fields:
        rec_value = pol["recommended"].get(key)
        row = [label, fmt(cur[key]),
               raw_fmt(pol["raw"][key]) if rec_value is not None else "-",
               fmt(rec_value) if rec_value is not None else "-",
               _change(key, rec_value, cur[key], fmt) if rec_value is not None else ""]
        if pb is not None:
            value = pb["recommended"].get(key)
            row.append(fmt(value) if value is not None else "-")
        rows.append(row)
    if "creative_refresh" in pol["recommended"] or (pb and "creative_refresh" in
                                                     pb["recommended"]):
        yes = {True: "yes", False: "no", None: "-"}
        row = ["refresh creatives", "", yes[pol["raw"].get("creative_refresh")],
               yes[pol["recommended"].get("creative_refresh")], ""]
        if pb is not None:
            row.append(yes[pb["recommended"].get("creative_refresh")])
        rows.append(row)
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    lines.append("")
    for row in rows:
        lines.append("  " + row[0].ljust(widths[0]) + "".join(
            "  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)))
    for who, ans in (("policy", pol), (pb["name"] if pb else "", pb)):
        if ans is None:
            continue
        lines.append("")
        lines.append(f"  guards on the {who}'s answer:" + ("" if ans["guards"] else " none"))
        for g in ans["guards"]:
            lines.append(f"    {GuardNote(**g).describe()}")
    return "\n".join(lines)


def describe_anchor(anchor: dict[str, Any]) -> str:
    """An anchored answer's anchor in one line (the table's ``anchor :`` line)."""
    a = anchor["settings"]
    return (f"anchored on {anchor['kind']}'s settings for {anchor['scenario']}: target "
            f"{a['target_over_breakeven']:.4g} x break-even, budget "
            f"{a['budget_over_launch']:.4g} x the launch budget "
            f"{_money(anchor['launch_budget_cny'])} ({anchor['launch_budget_source']})")


CSV_COLUMNS = ("account", "file", "decision_date", "policy", "current_target_roi",
               "recommended_target_roi", "target_change", "current_budget_cny",
               "recommended_budget_cny", "budget_change_cny", "share_payment_roi",
               "share_settlement_roi", "share_volume", "creative_refresh", "learning",
               "guards", "playbook_target_roi", "playbook_budget_cny", "playbook_guards",
               "notes")


def batch_rows(recs: Sequence[Recommendation]) -> list[dict[str, Any]]:
    """One flat row per account for the batch CSV."""
    rows = []
    for rec in recs:
        pol, pb, cur = rec.policy, rec.playbook, rec.current
        final = pol["recommended"]
        rows.append({
            "account": rec.report.account, "file": str(rec.report.path),
            "decision_date": rec.report.decision_date.isoformat(), "policy": pol["name"],
            **({"anchor": f"{pol['anchor']['kind']}:{pol['anchor']['scenario']}",
                "launch_budget_cny": f"{pol['anchor']['launch_budget_cny']:.2f}"}
               if pol.get("anchored") else {}),
            "current_target_roi": f"{cur['target_roi']:.2f}",
            "recommended_target_roi": f"{final['target_roi']:.2f}",
            "target_change": f"{pol['change']['target_roi']:+.2f}",
            "current_budget_cny": f"{cur['budget_cny']:.2f}",
            "recommended_budget_cny": f"{final['budget_cny']:.2f}",
            "budget_change_cny": f"{pol['change']['budget_cny']:+.2f}",
            **{f"share_{p}": (f"{final[f'share_{p}']:.4f}" if f"share_{p}" in final else "")
               for p in PLANS if p != "whole_site" or f"share_{p}" in final},
            "creative_refresh": final.get("creative_refresh", ""),
            "learning": int(cur["learning"]),
            "guards": "; ".join(GuardNote(**g).describe() for g in pol["guards"]),
            "playbook_target_roi": f"{pb['recommended']['target_roi']:.2f}" if pb else "",
            "playbook_budget_cny": f"{pb['recommended']['budget_cny']:.2f}" if pb else "",
            "playbook_guards": ("; ".join(GuardNote(**g).describe() for g in pb["guards"])
                                if pb else ""),
            "notes": "; ".join(rec.report.notes + rec.notes),
        })
    return rows


def write_batch_csv(recs: Sequence[Recommendation], path: str | Path) -> Path:
    """Write the batch's recommendations as one CSV (UTF-8 with BOM: opens in Excel)."""
    path = Path(path)
    buffer = io.StringIO(newline="")
    rows = batch_rows(recs)
    columns = list(CSV_COLUMNS)
    if any("share_whole_site" in row for row in rows):  # a scenario with the whole-site plan
        columns.insert(columns.index("share_volume") + 1, "share_whole_site")
    if any("anchor" in row for row in rows):  # an anchored policy: its anchor, launch budget
        at = columns.index("policy") + 1
        columns[at:at] = ["anchor", "launch_budget_cny"]
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    os.replace(tmp, path)
    return path


def to_json(recs: Sequence[Recommendation], skipped: Sequence[dict[str, str]] | None = None,
            batch: bool = False) -> str:
    """``--json`` output: one object for one account, else recommendations and skipped."""
    if not batch and len(recs) == 1:
        return json.dumps(recs[0].to_dict(), ensure_ascii=False, indent=2)
    return json.dumps({"recommendations": [r.to_dict() for r in recs],
                       "skipped": list(skipped or [])}, ensure_ascii=False, indent=2)


__all__ = ["RecommendOptions", "Recommendation", "format_table", "load_policy",
           "recommend_files", "recommend_reports", "report_files", "to_json", "write_batch_csv"]
