"""The market's interval widening (agents/calibration/widening.py): the factor that makes
intervals cover what they say, the table the fit reads, and the fit's use of it. The
coverage it gives is measured out of sample by scripts/calibration_benchmark.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.calibration.account import CalibrationError
from agents.calibration.fit import LEVEL, fit_account
from agents.calibration.prior import market_parameters
from agents.calibration.records import rejected_record
from agents.calibration.speed import FIRST_INDEX as SPEED_FIRST_INDEX
from agents.calibration.synthetic import synthetic_account
from agents.calibration.widening import (
    FACTOR_RANGE,
    FIRST_INDEX,
    MIN_CASES,
    factor_of,
    load_table,
    measure,
    widened,
)
from envs.config import load_scenario
from envs.seeds import CALIBRATION_SEED


@pytest.mark.parametrize("sd", [1.0, 1.5, 2.0])
def test_the_factor_makes_intervals_cover_their_level(sd):
    """Standardised errors with sd ``sd`` (intervals ``sd`` times too narrow) give a factor of
    about ``sd``, and intervals widened by it cover 90% of the errors."""
    z = np.random.default_rng(0).normal(0.0, sd, 20_000)
    k = factor_of(z, LEVEL)
    assert abs(k - sd) < 0.05 * sd, (k, sd)
    assert abs(np.mean(np.abs(z) <= 1.6448536 * k) - LEVEL) < 0.01


def test_a_bias_widens_as_much_as_coverage_needs():
    z = np.random.default_rng(1).normal(1.0, 1.0, 20_000)  # biased, not too narrow
    k = factor_of(z, LEVEL)
    assert abs(np.mean(np.abs(z) <= 1.6448536 * k) - LEVEL) < 0.01
    assert k > 1.2


def test_the_factor_stays_in_its_range_and_never_narrows():
    assert factor_of(np.full(50, 30.0), LEVEL) == FACTOR_RANGE[1]
    assert factor_of(np.random.default_rng(3).normal(0.0, 0.7, 5000), LEVEL) == 1.0
    assert FACTOR_RANGE[0] == 1.0


def test_measure_pools_thin_cells_and_leaves_out_the_unmeasured():
    rng = np.random.default_rng(2)
    records = []
    for i in range(200):
        for days, sd in ((28, 2.0), (56, 1.0)):
            records.append({"days": days, "parameters": {
                "often": {"identified": True, "z": float(rng.normal(0, sd))},
                # identified on 28-day reports only, 40 times: pooled for 56 days
                "thin": {"identified": days == 28 and i < 40, "z": float(rng.normal(0, 1.5))},
                "rare": {"identified": i < MIN_CASES // 4, "z": 1.0}}})
    table = measure(records, [28, 56], LEVEL)
    often, thin = table["factors"]["often"], table["factors"]["thin"]
    assert abs(often[0] - 2.0) < 0.35 and abs(often[1] - 1.0) < 0.2, often
    assert thin[0] == thin[1] and table["cases"]["thin"] == [40, 0]
    assert "rare" not in table["factors"]


def test_a_refused_report_is_counted_not_measured():
    """A report calibrate refuses (a record saying why, no parameters) leaves the factors as
    they were and is counted as refused at its length."""
    rng = np.random.default_rng(3)
    records = [{"days": 28, "parameters": {"p": {"identified": True,
                                                 "z": float(rng.normal(0, 1.5))}}}
               for _ in range(100)]
    refused = rejected_record(7, 28, "food", CalibrationError("orders on only 1 day(s)"))
    plain, with_refused = measure(records, [28], LEVEL), measure(records + [refused], [28],
                                                                  LEVEL)
    assert with_refused["factors"] == plain["factors"]
    assert with_refused["cases"] == plain["cases"]
    assert plain["refused"] == {"28": 0} and with_refused["refused"] == {"28": 1}


def test_the_factor_is_measured_on_the_accounts_it_leaves_identified():
    """A biased parameter: the fit misses by about the same amount whatever its sd, so
    the surer accounts miss by more of their sds. Widening drops the least sure ones from
    "identified"; the factor must cover 90% of the accounts it leaves, not of all."""
    rng = np.random.default_rng(4)
    records = []
    for _ in range(4000):
        ratio = float(rng.uniform(0.05, 0.5))  # sd over the prior's: identified, unwidened
        miss = float(rng.normal(0.15, 0.2))  # in the prior's sds: a bias
        records.append({"days": 56, "parameters": {"biased": {
            "identified": True, "z": miss / ratio, "sd_ratio": ratio}}})
    k = measure(records, [56], LEVEL)["factors"]["biased"][0]
    naive = factor_of([r["parameters"]["biased"]["z"] for r in records], LEVEL)
    kept = [r["parameters"]["biased"] for r in records
            if r["parameters"]["biased"]["sd_ratio"] * k < 0.5]
    covered = np.mean([abs(x["z"]) <= 1.6448536 * k for x in kept])
    assert abs(covered - LEVEL) < 0.02, (covered, k)
    assert k > naive + 0.1, (k, naive)
    # without the sds' ratios the flags decide, as before
    flagged = [{"days": 56, "parameters": {"biased": {
        k2: v for k2, v in r["parameters"]["biased"].items() if k2 != "sd_ratio"}}}
        for r in records]
    assert measure(flagged, [56], LEVEL)["factors"]["biased"][0] == round(naive, 3)


def test_widening_scales_sds_keeps_correlations_and_never_passes_the_prior():
    cov = np.array([[0.04, 0.018, 0.0], [0.018, 0.09, 0.0], [0.0, 0.0, 0.25]])
    out = widened(cov, np.array([1.5, 2.0, 3.0]), prior_sd=np.array([1.0, 1.0, 0.6]))
    sd, new_sd = np.sqrt(np.diag(cov)), np.sqrt(np.diag(out))
    np.testing.assert_allclose(new_sd, [0.3, 0.6, 0.6])
    np.testing.assert_allclose(out / np.outer(new_sd, new_sd), cov / np.outer(sd, sd))
    # an sd already wider than the prior's (it never is, but) is not narrowed
    np.testing.assert_allclose(widened(cov, np.ones(3), np.full(3, 0.1)), cov)


def test_the_shipped_table_is_measured_on_accounts_of_its_own():
    table = load_table()
    assert table.level == LEVEL
    names = {p.name for p in market_parameters(load_scenario("3c"))}
    assert table.factors and set(table.factors) <= names
    for row in table.factors.values():
        assert all(FACTOR_RANGE[0] <= k <= FACTOR_RANGE[1] for k in row)
    # its accounts are not the benchmark's (60000 on, 120 a length), the tests' (up to
    # 60230) nor the speed and decision-value benchmarks' (60400 on, a few dozen)
    assert FIRST_INDEX >= max(SPEED_FIRST_INDEX + 100, 300)
    from envs.paths import config_dir
    data = json.loads((config_dir("calibration") / "interval_widening.json").read_text())
    first = int(data["seeds"].split("-")[0])
    assert first == CALIBRATION_SEED + FIRST_INDEX
    assert data["command"].startswith("python scripts/interval_widening.py")


def test_the_table_interpolates_in_log_days_and_holds_at_the_ends():
    table = load_table()
    name, row = next(iter(table.factors.items()))
    assert table.factor(name, 10) == pytest.approx(row[0])
    assert table.factor(name, 400) == pytest.approx(row[-1])
    mid = table.factor(name, int(round(np.sqrt(table.lengths[0] * table.lengths[1]))))
    assert min(row[:2]) - 1e-3 <= mid <= max(row[:2]) + 1e-3
    assert table.factor("not_a_parameter", 56) == 1.0


@pytest.mark.parametrize("text", [None, "{", '{"level": 0.9, "lengths": [28], '
                                  '"factors": {"pool_sigma": [9.0]}}'])
def test_a_missing_or_broken_table_is_refused_by_name(tmp_path, text):
    path = tmp_path / "interval_widening.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(CalibrationError, match="interval_widening.json"):
        load_table(path)


def test_the_fit_widens_its_market_intervals_by_the_table(tmp_path):
    """Same mode, each market sd multiplied by its factor (capped at the prior's), and the
    identification judged on the widened sd; fit.json's record carries the factors."""
    base = load_scenario("beauty")
    acc = synthetic_account(base, 9, 42)
    history = acc.history(base, tmp_path / "a.csv")
    plain = fit_account(history, base, widen=False)
    wide = fit_account(history, base)
    np.testing.assert_array_equal(plain.z, wide.z)
    factors = load_table().factors_for([p.name for p in plain.parameters], history.days)
    assert sorted(wide.widening) == sorted(p.name for p in plain.parameters)
    np.testing.assert_allclose([wide.widening[p.name] for p in plain.parameters], factors)
    assert np.any(factors > 1.05)  # the table widens something on a 42-day report
    prior_sd = np.array([p.prior_sd for p in plain.parameters])
    expect = np.minimum(np.sqrt(np.diag(plain.cov)) * factors,
                        np.maximum(prior_sd, np.sqrt(np.diag(plain.cov))))
    np.testing.assert_allclose(np.sqrt(np.diag(wide.cov)), expect, rtol=1e-9)
    for i, p in enumerate(plain.parameters):
        assert wide.estimates[p.name].identified == (expect[i] < 0.5 * p.prior_sd)
        e, f = wide.estimates[p.name], plain.estimates[p.name]
        assert e.low <= f.low + 1e-12 and e.high >= f.high - 1e-12
    from agents.calibration.outputs import fit_record
    record = fit_record(wide, ["calibrate"], "beauty")
    assert record["interval_widening"] == wide.widening
