"""A calibration's ``fit.json`` read back as a :class:`agents.calibration.fit.Fit`, without
refitting: what ``recommend --fit DIR`` forecasts from.

The fit's market is the Laplace approximation ``fit.json`` stores (the posterior's mode and
covariance in the fit's space, :mod:`.prior`); the report's days, which the forecast starts
from, are read again from the report itself, which must be the one fitted (its period is
checked against ``fit.json``'s).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.calibration.account import AccountHistory, CalibrationError
from agents.calibration.fit import Fit
from agents.calibration.likelihood import Posterior
from agents.calibration.orders import Estimate
from agents.calibration.outputs import FORMAT_VERSION
from agents.calibration.prior import market_parameters
from envs.config import ConfigError, ScenarioConfig, load_scenario

FIT_FILE = "fit.json"
RECALIBRATE = "python scripts/calibrate.py --history REPORT --out DIR"


def read_fit_json(directory: str | Path) -> dict[str, Any]:
    """``DIR/fit.json`` as a mapping.

    :raises CalibrationError: ``DIR`` or its ``fit.json`` is missing, unreadable or not JSON
        (naming the file).
    """
    directory = Path(directory)
    path = directory / FIT_FILE
    if not directory.is_dir():
        raise CalibrationError(f"--fit: no such folder (make it with {RECALIBRATE})",
                               directory)
    if not path.is_file():
        raise CalibrationError(f"--fit: no {FIT_FILE} in the folder (make it with "
                               f"{RECALIBRATE})", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"--fit: cannot read the fit ({exc}): recalibrate", path
                               ) from None
    if not isinstance(data, dict):
        raise CalibrationError("--fit: not a calibration's fit (a JSON object expected): "
                               "recalibrate", path)
    return data


def fit_base(directory: str | Path) -> tuple[str, ScenarioConfig]:
    """The base scenario ``DIR/fit.json`` was fitted against: its name (a preset's, or a
    YAML path) as ``calibrate --base`` gave it, and the scenario.

    :raises CalibrationError: no readable fit, or a base that no longer loads.
    """
    data = read_fit_json(directory)
    return str(data.get("base")), _base(data, Path(directory) / FIT_FILE)


def _base(data: dict[str, Any], path: Path) -> ScenarioConfig:
    try:
        return load_scenario(data["base"])
    except KeyError:
        raise CalibrationError("not a complete fit (no base scenario): recalibrate",
                               path) from None
    except ConfigError as exc:
        raise CalibrationError(f"the fit's base scenario {data.get('base')!r}: {exc}",
                               path) from None


def load_fit(directory: str | Path, history: AccountHistory) -> Fit:
    """The fit stored in ``DIR/fit.json``, for ``history`` (the fitted report's days, read by
    :func:`agents.calibration.account.account_history` with the fit's base scenario).

    :raises CalibrationError: a missing or corrupt file, a fit written by another version,
        or a report of another period than the fit's (each naming the file).
    """
    path = Path(directory) / FIT_FILE
    data = read_fit_json(directory)
    try:
        if data.get("format_version") != FORMAT_VERSION:
            raise CalibrationError(f"fit.json was written by another version (format "
                                   f"{data.get('format_version')!r}, this reads "
                                   f"{FORMAT_VERSION}): recalibrate", path)
        base = _base(data, path)
        check_period(data, history, path)
        estimates = {name: _estimate(entry) for name, entry in data["parameters"].items()}
        parameters = market_parameters(base)
        z, cov = _posterior_arrays(data["posterior"], [p.name for p in parameters], path)
        margin = float(data["margin"]["value"])
        margin_source = str(data["margin"]["source"])
        aov, basket = estimates["aov_cny"].value, estimates["basket_noise_sd"].value
        missing = [p.name for p in parameters if p.name not in estimates]
        missing += [n for n in ("refund_rate", "promo_refund_mult",
                                *(f"refund_kernel_{k}" for k in range(1, 8)))
                    if n not in estimates]
        if missing or not 0.0 < margin < 1.0:
            raise ValueError(f"missing parameters {missing}" if missing
                             else f"margin {margin} not in (0, 1)")
        log_posterior = float(data.get("log_posterior", math.nan))
        seconds = float(data.get("seconds", 0.0))
        notes = [str(n) for n in data.get("notes", [])]
        widening = {str(n): float(k) for n, k in data.get("interval_widening", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CalibrationError(f"not a complete fit ({type(exc).__name__}: {exc}): "
                               "recalibrate", path) from None
    posterior = Posterior.of(history, base, aov, basket)
    return Fit(history=history, base=base, parameters=parameters, z=z, cov=cov,
               estimates=estimates, margin=margin, margin_source=margin_source,
               log_posterior=log_posterior, seconds=seconds, posterior=posterior, notes=notes,
               widening=widening)


def check_period(data: dict[str, Any], history: AccountHistory, path: Path) -> None:
    """The report's days are the fit's: the same last and first date.

    :raises CalibrationError: naming both periods.
    """
    first = dt.date.fromisoformat(str(data["first_date"]))
    last = dt.date.fromisoformat(str(data["last_date"]))
    if history.dates[-1] != last or history.dates[0] != first:
        raise CalibrationError(
            f"the fit is of another report or period: recalibrate (fit.json ends "
            f"{last} and starts {first}; the report ends {history.dates[-1]} and starts "
            f"{history.dates[0]})", path)


def _estimate(entry: dict[str, Any]) -> Estimate:
    return Estimate(float(entry["value"]), float(entry["ci_low"]), float(entry["ci_high"]),
                    str(entry["unit"]), bool(entry["identified"]), str(entry["source"]))


def _posterior_arrays(posterior: dict[str, Any], names: list[str],
                      path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The mode (P,) and covariance (P, P) in the order of ``names``.

    :raises CalibrationError: other parameter names (another version's fit).
    """
    if list(posterior["parameters"]) != names:
        raise CalibrationError("fit.json was written by another version: recalibrate (its "
                               "posterior's parameters are not this version's)", path)
    z = np.asarray(posterior["mode"], dtype=np.float64)
    cov = np.asarray(posterior["covariance"], dtype=np.float64)
    if z.shape != (len(names),) or cov.shape != (len(names), len(names)):
        raise ValueError(f"posterior of shapes {z.shape} and {cov.shape} for "
                         f"{len(names)} parameters")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(cov))):
        raise ValueError("posterior with values that are not finite")
    return z, cov
