"""One account's calibration from its report to its folder: what ``scripts/calibrate.py``
runs, and what ``recommend --batch DIR --fit FITS`` runs for each account
(:mod:`.batch`). One source of truth: both call :func:`calibrate_report`.

The folder (:mod:`.outputs`: ``fit.json``, ``scenario.yaml``, ``validation.json``,
``validation.png``) is written all or nothing. ``fit.json`` also records what the fit was
made from (:data:`INPUTS_KEY`: the report's sha256 and the options), so that a batch can
tell a fit of this very report, made with these options, from a stale one
(:func:`fit_is_current`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.calibration.account import AccountHistory, CalibrationError, account_history
from agents.calibration.fit import Fit, fit_account
from agents.calibration.fit_io import read_fit_json
from agents.calibration.outputs import (
    FORMAT_VERSION,
    check_out_dir,
    fit_record,
    json_writer,
    text_writer,
    write_calibration,
)
from agents.calibration.scenario import named_base, scenario_yaml
from agents.calibration.validation import plot_validation, validate
from agents.serving.inputs import parse_promotions
from agents.serving.report import AccountReport, read_report
from envs.config import load_scenario

INPUTS_KEY = "inputs"  # fit.json: what the fit was made from (CalibrationInputs + sha256)
DEFAULT_BASE = "3c"
# the shortest report calibrate adapts the anchor on unless told otherwise (and warns below
# it when told): a caution, not a measured threshold. On 192 synthetic accounts anchors
# adapted on 28-, 56- and 90-day reports all beat the base's on average (+98k / +103k /
# +113k per launch); 28 days lost most against adapting on the truth (26% / 22% / 14%)
# and left the most accounts behind the base's anchor (31 / 24 / 26 by over 1k)
# (docs/calibration.md, "Decision value")
ADAPT_MIN_REPORT_DAYS = 56


@dataclass(frozen=True)
class CalibrationInputs:
    """What a calibration is made from besides the report (``calibrate``'s options).

    :param base: the scenario supplying what the report cannot show, and the prior's centre
        (a preset's name or a YAML path).
    :param margin: the contribution margin on settled GMV, 0-1 (None: see ``breakeven_roi``).
    :param breakeven_roi: the break-even payment ROI, GMV/spend (None with ``margin`` None:
        the base's margin).
    :param promo_dates: promotion peaks in the report (``--promo-dates``).
    :param seed: the validation forecast's draws.
    :param adapt_anchor: whether to also write ``anchor.json``, the shipped profit policy's
        anchor tuned on the fitted market (:mod:`.adapt`, about 10 s), which
        ``recommend --fit`` then plays. None (the default): when the report has at least
        :data:`ADAPT_MIN_REPORT_DAYS` days (docs/calibration.md, Decision value).
    """

    base: str = DEFAULT_BASE
    margin: float | None = None
    breakeven_roi: float | None = None
    promo_dates: str | None = None
    seed: int = 0
    adapt_anchor: bool | None = None

    def check(self) -> None:
        """:raises CalibrationError: a margin outside (0, 1), a break-even ROI outside
        (0, 1000), or both given."""
        if self.margin is not None and self.breakeven_roi is not None:
            raise CalibrationError("--margin and --breakeven-roi: give one (the other follows "
                                   "from the fitted refund rate)")
        if self.margin is not None and not 0.0 < self.margin < 1.0:
            raise CalibrationError(f"--margin {self.margin}: a share between 0 and 1")
        if self.breakeven_roi is not None and not 0.0 < self.breakeven_roi < 1000.0:
            raise CalibrationError(f"--breakeven-roi {self.breakeven_roi}: a ROI above 0")

    def adapts(self, days: int) -> bool:
        """Whether a calibration of a ``days``-day report writes ``anchor.json``."""
        if self.adapt_anchor is not None:
            return self.adapt_anchor
        return days >= ADAPT_MIN_REPORT_DAYS

    def record(self, report_sha256: str) -> dict[str, Any]:
        """``fit.json``'s :data:`INPUTS_KEY` entry."""
        return {"report_sha256": report_sha256, **asdict(self)}


@dataclass
class Calibration:
    """A calibration written to ``out``: the fit of the whole report, the history it read
    and the held-out validation's summary (``validation.json``)."""

    out: Path
    fit: Fit
    history: AccountHistory
    validation: dict[str, Any]
    anchor_adapted: bool = False  # anchor.json written (CalibrationInputs.adapts)

    def summary_lines(self) -> list[str]:
        """What ``calibrate`` prints: the fit, its notes, the held-out coverage, the files."""
        h, fit = self.history, self.fit
        identified = [n for n, e in fit.estimates.items() if e.identified]
        lines = [f"{h.account}: {h.days} days fitted in {fit.seconds:.1f} s; "
                 f"{len(identified)} of {len(fit.estimates)} parameters identified by the "
                 "report"]
        lines += [f"  note: {note}" for note in fit.notes]
        lines.append(f"  held-out 14 days: {self.validation['coverage_80']:.0%} of actual "
                     "values inside the 80% forecast intervals")
        from agents.calibration.adapt import ANCHOR_FILE

        if self.anchor_adapted:
            lines.append(f"  {ANCHOR_FILE}: the profit policy's anchor tuned on markets drawn "
                         "from the fit (recommend --fit plays it; --no-adapt-anchor keeps "
                         "the base's)")
            if h.days < ADAPT_MIN_REPORT_DAYS:
                lines.append(
                    f"  note: {ANCHOR_FILE} is adapted on {h.days} days; anchors adapted on "
                    f"reports under {ADAPT_MIN_REPORT_DAYS} days pin the market's curve more "
                    "loosely, and calibrate keeps the base's on them unless told "
                    "(docs/calibration.md, Decision value); --no-adapt-anchor keeps the "
                    "base's")
        elif h.days < ADAPT_MIN_REPORT_DAYS:
            lines.append(f"  anchor: the base's ({h.days} days are under the "
                         f"{ADAPT_MIN_REPORT_DAYS} from which calibrate adapts it: a shorter "
                         "report pins the market's curve loosely; --adapt-anchor adapts it "
                         "all the same)")
        lines.append(f"wrote {self.out}/fit.json, scenario.yaml, validation.json, "
                     "validation.png")
        return lines


def report_sha256(path: str | Path) -> str:
    """The sha256 of a report file's bytes (hex): what a fit records of its report."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibrate_report(report: str | Path | AccountReport, out: str | Path,
                     inputs: CalibrationInputs, command: list[str]) -> Calibration:
    """Fit the market to ``report``, validate it on its last 14 days, and write the folder
    ``out`` (all or nothing; a new, empty or earlier calibration's folder).

    :param report: the report's path, or the report already read from its path.
    :param command: the command line recorded in ``fit.json``.
    :raises CalibrationError: bad options, an ``out`` holding other files, or a report a fit
        cannot use (too few days, no orders, ...), before anything is written.
    :raises ServingError: a report that cannot be read (file, row and column named).
    :raises ConfigError: a base scenario that does not load.
    """
    inputs.check()
    out = Path(out)
    check_out_dir(out)  # refuse before the work, not after
    base = load_scenario(inputs.base)
    if not isinstance(report, AccountReport):
        report = read_report(report)
    history = account_history(report, base, parse_promotions(inputs.promo_dates,
                                                            base.promo_peak_length_days))
    fit = fit_account(history, base, inputs.margin, inputs.breakeven_roi)
    summary, _, _ = validate(history, base, inputs.margin, inputs.breakeven_roi,
                             seed=inputs.seed)
    record = {**fit_record(fit, command, inputs.base),
              INPUTS_KEY: inputs.record(report_sha256(report.path))}
    writers = {
        "fit.json": json_writer(record),
        "scenario.yaml": text_writer(scenario_yaml(fit, named_base(inputs.base))),
        "validation.json": json_writer(summary),
        "validation.png": lambda path: plot_validation(summary, history, path),
    }
    adapt = inputs.adapts(history.days)
    if adapt:
        from agents.calibration.adapt import ANCHOR_FILE, anchor_writer
        from agents.serving.inputs import launch_budget

        writers[ANCHOR_FILE] = anchor_writer(fit, launch_budget_cny=launch_budget(report).cny)
    write_calibration(out, writers)
    return Calibration(out, fit, history, summary, anchor_adapted=adapt)


def fit_is_current(directory: str | Path, report_path: str | Path,
                   inputs: CalibrationInputs) -> tuple[bool, str]:
    """Whether ``directory`` holds a calibration of this very report (same bytes) made with
    these inputs, so that it can be used without refitting.

    :return: ``(current, why)``: why it is current, or why it is not (missing, unreadable,
        another version, another report, other options).
    """
    directory = Path(directory)
    if not (directory / "fit.json").is_file():
        return False, "no fit yet"
    try:
        data = read_fit_json(directory)
    except CalibrationError as exc:
        return False, f"unreadable fit ({exc.message})"
    if data.get("format_version") != FORMAT_VERSION:
        return False, "a fit of another version"
    if not (directory / "scenario.yaml").is_file():
        return False, "an incomplete calibration (no scenario.yaml)"
    stored = data.get(INPUTS_KEY)
    if not isinstance(stored, dict):
        return False, "a fit that does not record its report"
    wanted = inputs.record(report_sha256(report_path))
    if stored.get("report_sha256") != wanted["report_sha256"]:
        return False, "a fit of another report (or another version of it)"
    changed = sorted(k for k in wanted if k != "report_sha256" and stored.get(k) != wanted[k])
    if changed:
        return False, f"a fit made with other options ({', '.join(changed)})"
    return True, "a fit of this report with these options"
