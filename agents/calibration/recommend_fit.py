"""``recommend --fit DIR``: tomorrow's settings for a calibrated account, and a week's
forecast of them beside the current settings and ``static``'s.

The account's scenario is the calibration's ``DIR/scenario.yaml`` (its market, margin and
break-even ROI), named as its base scenario so that the base's tuned baselines
(``configs/baselines/``) and an anchored policy's anchor for the base are the ones played.
The break-even ROI is the fitted one, ``1 / (margin (1 - refund rate))``, unless
``--breakeven-roi`` or the report gives one.

The forecast is :func:`agents.calibration.forecast.forecast` from the fit read back from
``DIR/fit.json`` (:func:`agents.calibration.fit_io.load_fit`): the simulator run
:data:`COPIES` times from the report's last day, each copy with parameters drawn from the
fit's uncertainty, under three settings held :data:`FORECAST_DAYS` days: the recommended
ones, the current ones (the report's last row) and ``static``'s (the base scenario's tuned
fixed settings for this account, entered at once: :func:`static_settings`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.calibration.account import CalibrationError, account_history
from agents.calibration.fit import Fit
from agents.calibration.fit_io import fit_base, load_fit
from agents.calibration.forecast import Settings, forecast
from agents.calibration.identification import format_test, propose
from agents.calibration.scenario import named_base
from agents.policies.baseline_store import BaselineError, load_static
from agents.serving.inputs import launch_budget, parse_promotions
from agents.serving.loading import load_policy, rule_policy
from agents.serving.output import format_table
from agents.serving.recommend import Recommendation, RecommendOptions, recommend_reports
from agents.serving.report import AccountReport, read_report
from envs.actions import PLANS, plan_share_row, platform_budget, platform_target
from envs.anchored import refresh_due
from envs.config import ConfigError, ScenarioConfig, load_scenario

FORECAST_DAYS = 7
COPIES = 400  # simulated copies of the account (parameters drawn from the fit)
SEED = 0  # the forecast's draws: the same fit and report give the same forecast
SHOWN = (("profit", "profit (CNY)"), ("gmv", "GMV (CNY)"), ("spend", "spend (CNY)"),
         ("settled_roi", "settled ROI"))  # the table's metrics, totals over the week
SETTINGS = ("recommended", "current", "static")
IDENTIFICATION_KEYS = ("identification_test", "identification_test_reason")  # top-level JSON
SHORT = {"payment_roi": "pay", "settlement_roi": "settle", "volume": "vol",
         "whole_site": "site"}  # the plans' names in the table's shares row


@dataclass
class FittedAccount:
    """A calibrated account, ready to recommend for and forecast.

    :param scenario: ``DIR/scenario.yaml``, named as its base when the base is a preset.
    """

    directory: Path
    base_name: str
    fit: Fit
    scenario: ScenarioConfig

    @property
    def breakeven_roi(self) -> float:
        """The fitted break-even payment ROI (GMV/spend): ``1 / (margin (1 - refund
        rate))`` of the fitted scenario."""
        return self.scenario.breakeven_roi


def load_fitted(directory: str | Path, report: AccountReport,
                promo_dates: str | None) -> FittedAccount:
    """The fit in ``directory`` for ``report`` (the report it was fitted on).

    :raises CalibrationError: a missing or unreadable ``fit.json`` or ``scenario.yaml``, or
        a fit of another report or period.
    """
    directory = Path(directory)
    base_name, base = fit_base(directory)
    history = account_history(report, base, parse_promotions(promo_dates,
                                                             base.promo_peak_length_days))
    fit = load_fit(directory, history)
    path = directory / "scenario.yaml"
    if not path.is_file():
        raise CalibrationError("--fit: no scenario.yaml in the folder: recalibrate", path)
    try:
        scenario = load_scenario(path)
        if named_base(base_name) is not None:
            scenario = scenario.replace(name=base_name)
    except ConfigError as exc:
        raise CalibrationError(f"--fit: {exc}", path) from None
    return FittedAccount(directory, base_name, fit, scenario)


def fitted_policy(spec: str, account: FittedAccount, threads: int = 1) -> Any:
    """The policy of ``--policy`` playing the fitted account: an anchored ONNX policy in the
    fitted scenario, on the anchor adapted to the fit (``DIR/anchor.json``,
    :func:`use_adapted_anchor`) or, without one, on its anchor for the fit's base; a
    rule-based one built for the fitted scenario; a raw ONNX policy as it is (its own
    scenario; the break-even ROI still the fitted one, :func:`fitted_options`)."""
    if spec.endswith(".onnx") or Path(spec).is_file():
        policy = load_policy(spec, threads=threads)
        if policy.anchored:
            from agents.calibration.adapt import read_anchor

            adapted = read_anchor(account.directory, policy.config.objective)
            if account.base_name in policy.anchors:
                policy.select_anchor(account.base_name, account=account.scenario)
            elif adapted is not None:
                # a base of the user's own: the policy's own scenario's anchor is only a
                # placeholder here, replaced by the fit's adapted anchor just below
                policy.select_anchor(None, account=account.scenario)
            else:
                raise CalibrationError(
                    f"--fit: the policy has no anchor for the fit's base scenario "
                    f"{account.base_name!r} (its anchors: {', '.join(sorted(policy.anchors))})"
                    " and the fit no anchor adapted to it; calibrate with --base one of "
                    "them or with --adapt-anchor, or choose another --policy",
                    account.directory / "fit.json")
            use_adapted_anchor(policy, account, adapted)
        return policy
    try:
        return rule_policy(spec, account.scenario)
    except BaselineError as exc:
        raise CalibrationError(f"--policy {spec}: {exc}") from None


def use_adapted_anchor(policy: Any, account: FittedAccount, adapted: Any) -> None:
    """Play an anchored policy on ``adapted``, the anchor adapted to the fit for its objective
    (``DIR/anchor.json`` as :func:`agents.calibration.adapt.read_anchor` read it); without one
    (None), it keeps the base's, and the answer's anchor line says so (its scenario names
    where the anchor came from)."""
    from agents.calibration.adapt import ANCHOR_FILE
    from agents.calibration.pipeline import ADAPT_MIN_REPORT_DAYS

    path = account.directory / ANCHOR_FILE
    if adapted is None:
        why = (f"no adapted anchor for {policy.config.objective} in the fit's {ANCHOR_FILE}"
               if path.is_file() else
               f"no {ANCHOR_FILE} in the fit (calibrate writes one on reports of at least "
               f"{ADAPT_MIN_REPORT_DAYS} days, or with --adapt-anchor)")
        policy.anchor_name = f"{account.base_name} (the base's: {why})"
        return
    policy.anchor = adapted
    policy.anchor_name = f"{account.base_name}, adapted to the fit (its {ANCHOR_FILE})"


def fitted_options(options: RecommendOptions, account: FittedAccount) -> RecommendOptions:
    """``options`` with the fitted break-even ROI unless ``--breakeven-roi`` gave one."""
    if options.breakeven_roi is not None:
        return options
    return dataclasses.replace(options, breakeven_roi=account.breakeven_roi)


def static_settings(account: FittedAccount, report: AccountReport,
                    options: RecommendOptions, objective: str,
                    days: int = FORECAST_DAYS) -> tuple[Settings | None, str]:
    """``static``'s settings for this account, entered tomorrow and held ``days`` days: the
    base scenario's tuned fixed settings for ``objective`` (:func:`load_static`) on the
    account's break-even ROI and launch budget as ``recommend`` reads them, within the
    platform's limits, creatives refreshed on static's schedule.

    :return: the settings (None when the base has no tuned static settings) and what they
        are (or why there are none), in words.
    """
    try:
        fixed = load_static(account.scenario.replace(objective=objective))
    except BaselineError as exc:
        return None, f"none for this account ({exc})"
    if "breakeven_roi" in report.values:
        breakeven, where = float(report.values["breakeven_roi"][-1]), "the report's"
    else:
        given = options.breakeven_roi is not None
        breakeven = float(options.breakeven_roi) if given else account.breakeven_roi
        where = "--breakeven-roi" if given else "the fitted"
    launch = launch_budget(report, options.launch_budget)
    target = float(platform_target(np.array([fixed.target_over_breakeven * breakeven]))[0])
    budget = float(platform_budget(np.array([fixed.budget_over_launch * launch.cny]))[0])
    settings = Settings.hold(target, budget, plan_share_row(fixed.shares), days)
    age = float(account.fit.history.creative_age[-1]) + 1.0  # tomorrow's creative age (days)
    refresh = np.zeros(days, dtype=bool)
    for d in range(days):
        refresh[d] = bool(refresh_due(np.array([age]), np.array([1.0]), fixed.refresh_days)[0])
        age = 1.0 if refresh[d] else age + 1.0
    what = (f"{account.base_name}'s tuned settings entered at once: target "
            f"{fixed.target_over_breakeven:.4g} x {where} break-even {breakeven:.3f}, budget "
            f"{fixed.budget_over_launch:.4g} x the launch budget {launch.cny:,.2f} "
            f"({launch.source}), creatives refreshed every {fixed.refresh_days} days")
    return dataclasses.replace(settings, refresh=refresh), what


def held(answer: dict[str, Any], shares: np.ndarray, days: int = FORECAST_DAYS) -> Settings:
    """An answer's recommended settings held ``days`` days (a creative refresh on the first
    day when it says so); ``shares`` (4,) where it sets none (a basic-space answer)."""
    rec = answer["recommended"]
    if any(f"share_{p}" in rec for p in PLANS):
        shares = np.array([rec.get(f"share_{p}", 0.0) for p in PLANS])
    settings = Settings.hold(rec["target_roi"], rec["budget_cny"], shares, days)
    refresh = np.zeros(days, dtype=bool)
    refresh[0] = bool(rec.get("creative_refresh", False))
    return dataclasses.replace(settings, refresh=refresh)


def settings_data(settings: Settings) -> dict[str, Any]:
    """Held settings as plain data: target (GMV/spend), budget (CNY/day), plan shares, and
    the days of the week (1 = tomorrow) the creatives are refreshed."""
    return {"target_roi": float(settings.target_roi[0]),
            "budget_cny": float(settings.budget_cny[0]),
            "shares": {p: float(s) for p, s in zip(PLANS, settings.shares[0], strict=True)},
            "refresh_days": [int(d) + 1 for d in np.flatnonzero(settings.refresh)]}


def week_ahead(account: FittedAccount, rec: Recommendation, static: Settings | None,
               static_description: str) -> dict[str, Any]:
    """The ``forecast`` object: per settings the settings and the forecast's summary
    (quantiles ``p10``, ``p50``, ``p90`` of the week's totals in CNY, orders as a count,
    and of its settled ROI), with what the fit is."""
    fit, h = account.fit, account.fit.history
    current = Settings.hold(h.target[-1], h.budget[-1], h.shares[-1], FORECAST_DAYS)
    plans = {"recommended": held(rec.policy, h.shares[-1]), "current": current}
    if static is not None:
        plans["static"] = static
    out: dict[str, Any] = {}
    dates: list = []
    for name, settings in plans.items():
        result = forecast(fit, settings, copies=COPIES, seed=SEED)
        dates = result.dates
        out[name] = {"settings": settings_data(settings), "summary": result.summary()}
    return {
        "days": FORECAST_DAYS, "first_date": dates[0].isoformat(),
        "last_date": dates[-1].isoformat(), "copies": COPIES, "seed": SEED,
        "settings": out, "static_description": static_description,
        "fit": {"dir": str(account.directory), "base": account.base_name,
                "margin": fit.margin, "breakeven_roi": account.breakeven_roi,
                "identified": sorted(n for n, e in fit.estimates.items() if e.identified),
                "prior_decided": sorted(n for n, e in fit.estimates.items()
                                        if not e.identified),
                "notes": fit.notes},
    }


def recommend_fitted(spec: str, report_path: str | Path, directory: str | Path,
                     options: RecommendOptions, threads: int = 1,
                     identification: bool = True) -> tuple[Recommendation, dict[str, Any]]:
    """The recommendation of ``--policy spec`` for the calibrated account of ``directory``,
    and the week's forecast (:func:`week_ahead`), with the identification test
    (:func:`agents.calibration.identification.propose`) under ``identification_test`` and
    ``identification_test_reason`` (``identification``: False skips it)."""
    report = read_report(report_path)
    account = load_fitted(directory, report, options.promo_dates)
    policy = fitted_policy(spec, account, threads)
    opts = fitted_options(options, account)
    rec = recommend_reports(policy, [report], opts)[0]
    if options.breakeven_roi is None and "breakeven_roi" not in report.values:
        fit = account.fit
        rec.notes.append(f"break-even ROI {account.breakeven_roi:.3f} from the fit: 1 / "
                         f"(margin {fit.margin:.3f} x (1 - refund rate "
                         f"{account.scenario.refund_rate:.3f})); margin from "
                         f"{fit.margin_source}")
    static, what = static_settings(account, report, options, policy.config.objective)
    outlook = week_ahead(account, rec, static, what)
    test, reason = (propose(account.fit) if identification
                    else (None, "not asked: --no-identification-test"))
    outlook.update(identification_test=test, identification_test_reason=reason)
    return rec, outlook


# ------------------------------------------------------------------------------- output
def _cell(quantiles: dict[str, float], ratio: bool) -> str:
    """``median [p10 .. p90]``: money to the yuan, a ROI to two decimals."""
    fmt = "{:.2f}" if ratio else "{:,.0f}"
    return (f"{fmt.format(quantiles['p50'])} [{fmt.format(quantiles['p10'])} .. "
            f"{fmt.format(quantiles['p90'])}]")


def _shares(shares: dict[str, float]) -> str:
    return "/".join(f"{100 * shares[p]:.0f}" for p in PLANS)


def format_forecast(outlook: dict[str, Any]) -> str:
    """The forecast as a table: a column per settings, a row per setting and metric."""
    runs = outlook["settings"]
    fit = outlook["fit"]
    lines = [f"  {outlook['days']}-day forecast {outlook['first_date']}..{outlook['last_date']}"
             f" from the fit in {fit['dir']}: the simulator run {outlook['copies']} times, "
             "parameters drawn from the fit's uncertainty; week totals, median [80% "
             "interval]",
             f"  fit    : {len(fit['identified'])} of "
             f"{len(fit['identified']) + len(fit['prior_decided'])} parameters identified by "
             f"the report, the rest left to the prior (fit.json); margin {fit['margin']:.3f}"]
    lines.append(f"  static : {outlook['static_description']}")
    names = [name for name in SETTINGS if name in runs]
    rows = [["", *names]]
    rows.append(["payment-ROI target", *(f"{runs[n]['settings']['target_roi']:.2f}"
                                         for n in names)])
    rows.append(["daily budget (CNY)", *(f"{runs[n]['settings']['budget_cny']:,.2f}"
                                         for n in names)])
    rows.append(["plan shares % (" + "/".join(SHORT[p] for p in PLANS) + ")",
                 *(_shares(runs[n]["settings"]["shares"]) for n in names)])
    if any(runs[n]["settings"]["refresh_days"] for n in names):
        rows.append(["refresh creatives on day", *(
            ", ".join(map(str, runs[n]["settings"]["refresh_days"])) or "-" for n in names)])
    for key, label in SHOWN:
        rows.append([label, *(_cell(runs[n]["summary"][key], key == "settled_roi")
                              for n in names)])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines.append("")
    for row in rows:
        lines.append("  " + row[0].ljust(widths[0]) + "".join(
            "  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)))
    return "\n".join(lines)


def fitted_text(rec: Recommendation, outlook: dict[str, Any]) -> str:
    """The recommendation's table, then the forecast's, then the identification test's."""
    text = format_table(rec) + "\n\n" + format_forecast(outlook)
    if "identification_test" in outlook:
        text += "\n\n" + format_test(outlook["identification_test"],
                                      outlook["identification_test_reason"])
    return text


def fitted_json(rec: Recommendation, outlook: dict[str, Any]) -> str:
    """``--json``: the recommendation's object with a ``forecast`` object and, beside it, the
    ``identification_test`` object (null, with ``identification_test_reason``, when none is
    proposed)."""
    test = {k: outlook[k] for k in IDENTIFICATION_KEYS if k in outlook}
    forecast_data = {k: v for k, v in outlook.items() if k not in IDENTIFICATION_KEYS}
    return json.dumps({**rec.to_dict(), "forecast": forecast_data, **test},
                      ensure_ascii=False, indent=2)
