"""Check a fit against days it did not see: the last :data:`HOLDOUT_DAYS` days held out.

The fit is made on the report without its last 14 days, and those days are forecast under
the settings the account actually ran (:meth:`.forecast.Settings.of_history`). Per metric
(spend, GMV, orders, refunds when the report has them): how many held-out days fall inside
the forecast's 80% interval (coverage; 70-90% is calibrated), the median's mean absolute
percentage error per day, and the 14-day total's error and whether it falls in the total's
80% interval. :func:`plot_validation` draws it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.calibration.account import HOLDOUT_DAYS, AccountHistory
from agents.calibration.fit import Fit, fit_account
from agents.calibration.forecast import Forecast, Settings, forecast
from envs.config import ScenarioConfig

CHECKED = ("spend", "gmv", "orders", "refunds")


def validate(history: AccountHistory, base: ScenarioConfig, margin: float | None = None,
             breakeven_roi: float | None = None, copies: int = 400, seed: int = 0
             ) -> tuple[dict, Fit, Forecast]:
    """Fit all but the last :data:`HOLDOUT_DAYS` days and forecast those.

    :return: the summary (``validation.json``), the fit on the shorter history, and the
        forecast of the held-out days.
    """
    fitted_days = history.days - HOLDOUT_DAYS
    fit = fit_account(history.head(fitted_days), base, margin, breakeven_roi)
    held = history.tail(HOLDOUT_DAYS)
    fc = forecast(fit, Settings.of_history(held), copies=copies, seed=seed)
    metrics = {}
    for metric in CHECKED:
        actual = getattr(held, metric)
        if actual is None:
            continue
        metrics[metric] = forecast_errors(fc, metric, actual)
    inside = [m["days_inside_80"] for m in metrics.values()]
    summary = {
        "holdout_days": HOLDOUT_DAYS, "fitted_days": fitted_days,
        "first_holdout_date": held.dates[0].isoformat(),
        "interval": 0.8, "copies": copies, "seed": seed,
        "coverage_80": float(np.sum(inside) / (len(inside) * HOLDOUT_DAYS)),
        "metrics": metrics,
        "dates": [d.isoformat() for d in held.dates],
    }
    return summary, fit, fc


def forecast_errors(fc: Forecast, metric: str, actual: np.ndarray) -> dict:
    """Coverage and errors of one metric's forecast against what happened."""
    low, median, high = fc.quantiles(metric)
    inside = (actual >= low) & (actual <= high)
    scale = np.maximum(np.abs(actual), 1e-9)
    total_low, total_median, total_high = fc.total(metric)
    total = float(actual.sum())
    return {
        "coverage_80": float(inside.mean()), "days_inside_80": int(inside.sum()),
        "mape_median": float(np.mean(np.abs(median - actual) / scale))
        if np.all(actual > 0) else None,
        "total_actual": total, "total_median": float(total_median),
        "total_p10": float(total_low), "total_p90": float(total_high),
        "total_error": float((total_median - total) / total) if total > 0 else None,
        "total_inside_80": bool(total_low <= total <= total_high),
        "actual": [float(x) for x in actual], "p10": [float(x) for x in low],
        "p50": [float(x) for x in median], "p90": [float(x) for x in high],
    }


def plot_validation(summary: dict, history: AccountHistory, path: Path,
                    context_days: int = 28) -> None:
    """Actual days and the held-out forecast (median, 80% band) per metric, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(summary["metrics"])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 2.3 * len(metrics)), sharex=True)
    axes = np.atleast_1d(axes)
    shown = history.tail(min(history.days, context_days + HOLDOUT_DAYS))
    for ax, metric in zip(axes, metrics, strict=True):
        m = summary["metrics"][metric]
        ax.plot(shown.dates, getattr(shown, metric), color="0.3", lw=1, label="actual")
        held = history.dates[-HOLDOUT_DAYS:]
        ax.fill_between(held, m["p10"], m["p90"], color="tab:blue", alpha=0.25,
                        label="forecast 80%")
        ax.plot(held, m["p50"], color="tab:blue", lw=1.5, label="forecast median")
        ax.axvline(held[0], color="0.6", ls=":", lw=1)
        ax.set_ylabel(metric + (" (count)" if metric == "orders" else " (CNY)"))
        ax.set_title(f"{metric}: {m['days_inside_80']}/{HOLDOUT_DAYS} held-out days inside "
                     "the 80% interval", fontsize=9, loc="left")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
