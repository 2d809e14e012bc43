"""Write a calibration's folder: ``fit.json``, ``scenario.yaml``, ``validation.json`` and
``validation.png`` (contracts: Calibration), all or nothing.

Everything is written into a fresh temporary folder beside ``DIR`` and moved into place
only when complete; a ``DIR`` that already holds a calibration is replaced whole. A
``DIR`` that holds anything else is refused rather than mixed with.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from agents.calibration.account import CalibrationError
from agents.calibration.fit import LEVEL, Fit
from agents.run_folder import package_versions

FILES = ("fit.json", "scenario.yaml", "validation.json", "validation.png", "anchor.json")
FORMAT_VERSION = 3  # 2: promo_refund_mult fitted (a fit of version 1 lacks it); 3: the market's
# intervals widened by the measured table (interval_widening; version 2's are narrower)


def fit_record(fit: Fit, command: list[str], base_name: str) -> dict:
    """``fit.json``: per parameter its value, 90% interval, unit and whether the report
    identified it, with what the fit assumed and how long it took."""
    h = fit.history
    return {
        "format_version": FORMAT_VERSION,
        "account": h.account,
        "first_date": h.dates[0].isoformat(), "last_date": h.dates[-1].isoformat(),
        "days": h.days, "base": base_name, "interval": LEVEL,
        "parameters": {name: e.to_dict() for name, e in fit.estimates.items()},
        "margin": {"value": fit.margin, "source": fit.margin_source},
        "breakeven_roi": 1.0 / (fit.margin * (1.0 - fit.value("refund_rate"))),
        "identified": sorted(n for n, e in fit.estimates.items() if e.identified),
        "prior_decided": sorted(n for n, e in fit.estimates.items() if not e.identified),
        "notes": fit.notes, "log_posterior": fit.log_posterior,
        # each market parameter's interval widening, measured on synthetic accounts
        # (agents.calibration.widening; 1: none); the covariance below includes it
        "interval_widening": fit.widening,
        # the normal approximation of the posterior in the fit's space (logs, logits), for
        # forecasts without refitting (agents.calibration.fit_io.load_fit)
        "posterior": {"parameters": [p.name for p in fit.parameters],
                      "mode": [float(x) for x in fit.z],
                      "covariance": [[float(x) for x in row] for row in fit.cov]},
        "seconds": round(fit.seconds, 3), "command": command,
        "versions": package_versions(),
    }


def check_out_dir(out: Path) -> None:
    """``DIR`` may be new, empty, or an earlier calibration; anything else is refused."""
    if out.exists() and not out.is_dir():
        raise CalibrationError(f"--out {out}: exists and is not a folder")
    if out.is_dir():
        others = [p.name for p in out.iterdir() if p.name not in FILES]
        if others:
            raise CalibrationError(f"--out {out}: holds other files ({', '.join(others[:3])}"
                                   f"{', ...' if len(others) > 3 else ''}); give a new or "
                                   "empty folder, or an earlier calibration's")


def write_calibration(out: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file by its writer into a temporary folder, then move it to ``out``.

    :param writers: file name -> function writing that file at the path it is given.
    """
    out = Path(out)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, write in writers.items():
            write(tmp / name)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def json_writer(data: dict) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    return write


def text_writer(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")
    return write
