"""Accounts' daily reports -> tomorrow's payment-ROI target and budget, beside the playbook's.

One batch at a time: every report becomes a row of the env's history table and a decision
context (:mod:`agents.serving.inputs`), one :func:`envs.history.build_features` call makes
the observations, one ``predict`` call answers for all accounts, and the platform's guards
(:mod:`agents.serving.guards`) turn the answer into settings to enter. The same is done with
the playbook, so an operator sees both. The policy comes from :mod:`agents.serving.loading`;
the answers are written by :mod:`agents.serving.output` (table, CSV, JSON).

An anchored policy (:mod:`envs.anchored`) also reads each account's dashboard history and
its plan's launch budget (:func:`agents.serving.inputs.launch_budget`): its graph outputs a
residual on the anchor of ``--scenario``, mapped to the env's action by
:func:`envs.anchored.anchored_action`; the rest (settings, guards, output) is the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.serving.errors import ServingError
from agents.serving.guards import GuardNote, Settings, apply_guards, raw_settings
from agents.serving.inputs import (
    AccountDefaults,
    LaunchBudget,
    Promotion,
    history_inputs,
    launch_budget,
    observations,
    parse_promotions,
)
from agents.serving.loading import rule_policy
from agents.serving.report import AccountReport, read_report
from envs.actions import PLANS, plan_names
from envs.anchored import settings_as_data
from envs.config import ScenarioConfig
from envs.history import COL

COMPARE_POLICY = "playbook"
REPORT_SUFFIXES = (".csv", ".xlsx", ".xlsm")


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

