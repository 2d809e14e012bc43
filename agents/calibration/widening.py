"""How much wider than the normal approximation at the mode the market's intervals must be
to cover the truth as often as they say, measured on synthetic accounts of known truth.

The fit's covariance (:mod:`.fit`: the wider of the Laplace and the expected information)
is exact only for the model the likelihood writes down: the days' statistical
linearisation, the latent drift and regimes read as one joint normal, the budget-bound and
low-order days weighted as a composite likelihood. On synthetic accounts that the
simulator runs in full, some parameters' errors are wider than that curvature says: the
pool's daily ROI noise (standardised errors with sd 1.4, 75-78% of its 90% intervals
covering), the pool's spread, the learning throttle on short reports. The causes are
measured in ``docs/calibration.md``; the approximation's own share cannot be removed by
the fit without a second model of the market.

So the intervals are recalibrated by simulation: for each market parameter and report
length, ``k`` = the 90th percentile of ``|fit - truth| / sd`` (in the fit's space ``z``,
among synthetic accounts whose report identifies the parameter once its interval is ``k``
times as wide: a fixed point, :func:`measure`) over the normal's 1.645, so that an
interval ``k`` times as wide covers the truth on 90% of the accounts it calls identified. The
table is measured by ``scripts/interval_widening.py`` on accounts of their own seeds
(:data:`FIRST_INDEX` on: 61000 on, disjoint from the calibration benchmark's 60000-60119,
the tests' and the speed and decision-value benchmarks' 60400 on), kept in
``configs/calibration/interval_widening.json``, and checked out of sample by the
calibration benchmark. ``k`` is kept within :data:`FACTOR_RANGE`: the table only widens.
A quantile of a few dozen errors is uncertain by a sixth or so (at 30 accounts, the sd of
the estimated ``k`` is about 0.15; hence 720 accounts a length), so a ``k`` below 1 is
within its noise of 1, and narrowing on that evidence would risk the under-coverage the
table is there to remove. A length with fewer than :data:`MIN_CASES` identified accounts
takes the parameter's factor pooled over lengths; a parameter with fewer than that in all
keeps 1 (no evidence).
Between the measured lengths it is interpolated in log days, and held at the ends.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from agents.calibration.account import CalibrationError
from agents.calibration.likelihood import with_sds
from agents.calibration.records import fitted, refused
from envs.paths import config_dir, missing_folder_hint

FIRST_INDEX = 1000  # synthetic account indices measured (seeds CALIBRATION_SEED + 1000 on)
MIN_CASES = 30  # identified accounts a factor needs; fewer: pooled over lengths, else 1
FACTOR_RANGE = (1.0, 3.0)  # only widens (below); a factor above 3 says the model, not the
# width, is wrong
IDENTIFIED_RATIO = 0.5  # posterior sd / prior sd below this: the data identified it (the
# fit's rule, :func:`agents.calibration.fit.market_estimates`)
MAX_ROUNDS = 20  # re-measurements before the fixed point's search stops (it takes 2-4)
TABLE_NAME = "interval_widening.json"
FORMAT_VERSION = 1


def table_path() -> Path:
    """Where the measured table is kept: ``configs/calibration/interval_widening.json``."""
    return config_dir("calibration") / TABLE_NAME


@dataclass(frozen=True)
class WideningTable:
    """Factors by parameter at the measured report lengths (days)."""

    level: float  # the intervals' coverage the factors were measured for
    lengths: tuple[int, ...]
    factors: dict[str, tuple[float, ...]]

    def factor(self, name: str, days: int) -> float:
        """The factor of ``name`` for a report of ``days`` days (1 for a parameter the table
        does not hold): interpolated in log days between the measured lengths."""
        row = self.factors.get(name)
        if row is None:
            return 1.0
        return float(np.interp(math.log(max(days, 1)), np.log(self.lengths), row))

    def factors_for(self, names: Iterable[str], days: int) -> np.ndarray:
        return np.array([self.factor(name, days) for name in names])


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> WideningTable:
    if not path.is_file():
        hint = (missing_folder_hint(path.parent) if not path.parent.is_dir()
                else "rerun scripts/interval_widening.py")
        raise CalibrationError(f"the intervals' widening table {path} is missing ({hint})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        level = float(data["level"])
        lengths = tuple(int(d) for d in data["lengths"])
        factors = {str(name): tuple(float(k) for k in row)
                   for name, row in data["factors"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise CalibrationError(f"{path}: not a widening table ({exc})") from None
    low, high = FACTOR_RANGE
    for name, row in factors.items():
        if len(row) != len(lengths) or not all(low <= k <= high for k in row):
            raise CalibrationError(f"{path}: {name}'s factors {row} are not one per length "
                                   f"{lengths} within {low}-{high}")
    if list(lengths) != sorted(set(lengths)) or not lengths:
        raise CalibrationError(f"{path}: lengths {lengths} must be increasing")
    return WideningTable(level, lengths, factors)


def load_table(path: Path | None = None) -> WideningTable:
    """The measured table (cached per path)."""
    return _load(Path(path) if path is not None else table_path())


def widened(cov: np.ndarray, factors: np.ndarray, prior_sd: np.ndarray) -> np.ndarray:
    """``cov`` (P, P) with each parameter's sd multiplied by its factor (correlations kept),
    and no sd wider than its prior's."""
    sd = np.sqrt(np.diag(cov))
    return with_sds(cov, np.minimum(sd * factors, np.maximum(prior_sd, sd)))


def factor_of(standardised: Sequence[float], level: float) -> float:
    """The widening that makes two-sided ``level`` intervals cover ``level`` of these
    standardised errors (fit minus truth over the interval's sd): their ``level`` quantile
    of ``|z|`` over the normal's, within :data:`FACTOR_RANGE`."""
    z = np.abs(np.asarray(standardised, dtype=np.float64))
    q = float(np.quantile(z, level, method="inverted_cdf"))
    return float(np.clip(q / stats.norm.ppf(0.5 + level / 2.0), *FACTOR_RANGE))


def measure(records: Iterable[dict], lengths: Sequence[int], level: float) -> dict:
    """The table from per-account records ``{"days", "parameters": {name: {"identified",
    "z", "sd_ratio"}}}`` (standardised errors in the fit's space before widening; the sd
    over the prior's): per parameter and length, the factor and the accounts it rests on.

    The factor is measured on the accounts the widened interval still counts as identified
    (``sd_ratio x factor`` below the fit's :data:`IDENTIFIED_RATIO`), the population whose
    coverage a fit reports: widening drops the least sure accounts, and where the fit is
    biased the ones left miss by more of their (narrower) sds. So the factor is a fixed
    point, found by re-measuring on the accounts it leaves identified until it stops
    changing (the widest of the values it cycles through, should it cycle). Where a factor
    leaves fewer than :data:`MIN_CASES` accounts identified, the last factor measured on
    enough stands: a parameter the widening makes rare keeps the width its misses asked
    for. A record without ``sd_ratio`` counts as identified as its flag says, at any
    factor. A report ``calibrate`` refuses (:func:`.records.rejected_record`) is no
    evidence either way: it is skipped, and counted in ``refused``.
    """
    by_cell: dict[str, dict[int, list[tuple[float, float]]]] = {}
    records = list(records)
    for r in fitted(records):
        for name, x in r["parameters"].items():
            cell = by_cell.setdefault(name, {d: [] for d in lengths})
            if x["identified"] and x["z"] is not None and r["days"] in cell:
                ratio = x.get("sd_ratio")
                cell[r["days"]].append((float(x["z"]), 0.0 if ratio is None else float(ratio)))
    factors, cases = {}, {}
    for name, cell in by_cell.items():
        row = _row(cell, lengths, [1.0] * len(lengths), level)
        if row is None:
            continue  # no evidence: the table leaves it out, its factor is 1
        seen: list[tuple[list[float], list[int]]] = []
        while row not in seen and len(seen) < MAX_ROUNDS:
            seen.append(row)
            row = _row(cell, lengths, row[0], level) or row  # too few left: keep the last
        cycle = seen[seen.index(row):] if row in seen else seen
        factors[name], cases[name] = max(cycle, key=lambda r: sum(r[0]))
    return {"format_version": FORMAT_VERSION, "level": level, "lengths": list(lengths),
            "min_cases": MIN_CASES, "factor_range": list(FACTOR_RANGE),
            "identified_ratio": IDENTIFIED_RATIO, "factors": factors, "cases": cases,
            "refused": {str(d): sum(refused(r) and r["days"] == d for r in records)
                        for d in lengths}}


def _row(cell: dict[int, list[tuple[float, float]]], lengths: Sequence[int],
         factors: Sequence[float], level: float) -> tuple[list[float], list[int]] | None:
    """One parameter's factors per length measured on the accounts ``factors`` leave
    identified, and how many those are; None with fewer than :data:`MIN_CASES` in all."""
    kept = {d: [z for z, ratio in cell[d] if ratio * k < IDENTIFIED_RATIO]
            for d, k in zip(lengths, factors, strict=True)}
    pooled = [z for d in lengths for z in kept[d]]
    if len(pooled) < MIN_CASES:
        return None
    fallback = factor_of(pooled, level)
    return ([round(factor_of(kept[d], level), 3) if len(kept[d]) >= MIN_CASES
             else round(fallback, 3) for d in lengths], [len(kept[d]) for d in lengths])
