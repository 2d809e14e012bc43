"""recommend --fit DIR: the fitted account's recommendation with a 7-day forecast of three
settings (recommended, current, static), read from a calibration without refitting; a fit
of another report, a missing fit, and --batch with a single calibration's folder are refused
with exit code 2 (tests/test_recommend_batch.py: --batch with a folder of calibrations)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from agents.calibration.account import CalibrationError, account_history
from agents.calibration.fit_io import load_fit
from agents.calibration.synthetic import synthetic_account
from agents.serving.report import read_report, write_report
from envs.config import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DAYS = 42
SETTINGS = ("recommended", "current", "static")
SHOWN = ("profit", "gmv", "spend", "settled_roi")


calibrate = load_script("calibrate_cli_fit", "calibrate.py")
recommend = load_script("recommend_cli_fit", "recommend.py")


def calibrated(index: int, folder: Path) -> tuple[object, Path, Path]:
    """Synthetic account ``index`` of 3c (42 days), its report and its calibration."""
    acc = synthetic_account(load_scenario("3c"), index, DAYS)
    report = acc.write(folder / f"shop{index}.csv")
    fit_dir = folder / f"fit{index}"
    assert calibrate.main(["--history", str(report), "--out", str(fit_dir)]) == 0
    return acc, report, fit_dir


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """Account 3: (synthetic account, report, calibration folder)."""
    return calibrated(3, tmp_path_factory.mktemp("fit"))


@pytest.fixture(scope="module")
def big_shop(tmp_path_factory):
    """Account 5, about ten times account 3's spend."""
    return calibrated(5, tmp_path_factory.mktemp("fit_big"))


def cli(capsys, *args) -> tuple[int, str, str]:
    """scripts/recommend.py in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()  # not what a fixture printed (calibrate's summary)
    code = recommend.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def forecast_json(capsys, report: Path, fit_dir: Path, *extra) -> dict:
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


CELL = re.compile(r"(-?[\d,.]+) \[(-?[\d,.]+) \.\. (-?[\d,.]+)\]")


def test_fit_prints_the_forecast_of_three_settings(shop, capsys):
    _, report, fit_dir = shop
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir)
    assert code == 0, err
    head, _, table = out.partition("7-day forecast")
    assert "Recommendation for" in head and table, out
    lines = table.splitlines()
    header = next(line for line in lines if "recommended" in line)
    assert header.split() == list(SETTINGS)
    for label in ("profit (CNY)", "GMV (CNY)", "spend (CNY)", "settled ROI"):
        row = next(line for line in lines if line.strip().startswith(label))
        cells = CELL.findall(row)
        assert len(cells) == 3, row
        for median, low, high in cells:
            p50, p10, p90 = (float(x.replace(",", "")) for x in (median, low, high))
            assert p10 <= p50 <= p90, row


def test_json_carries_the_forecast_the_settings_and_the_fit(shop, capsys):
    _, report, fit_dir = shop
    data = forecast_json(capsys, report, fit_dir)
    fc = data["forecast"]
    assert fc["days"] == 7 and fc["copies"] == 400
    assert fc["first_date"] == data["decision_date"]
    assert set(fc["settings"]) == set(SETTINGS)
    for run in fc["settings"].values():
        for metric in SHOWN:
            q = run["summary"][metric]
            assert q["p10"] <= q["p50"] <= q["p90"], (metric, q)
        assert sum(run["settings"]["shares"].values()) == pytest.approx(1.0)
    # the forecast's settings are the answer's and the report's
    recommended, current = fc["settings"]["recommended"]["settings"], data["current"]
    assert recommended["target_roi"] == data["policy"]["recommended"]["target_roi"]
    assert recommended["budget_cny"] == data["policy"]["recommended"]["budget_cny"]
    assert fc["settings"]["current"]["settings"]["target_roi"] == current["target_roi"]
    assert fc["settings"]["current"]["settings"]["budget_cny"] == current["budget_cny"]
    stored = json.loads((fit_dir / "fit.json").read_text())
    assert fc["fit"]["dir"] == str(fit_dir)
    assert fc["fit"]["identified"] == stored["identified"]
    assert fc["fit"]["prior_decided"] == stored["prior_decided"]
    assert fc["fit"]["breakeven_roi"] == pytest.approx(stored["breakeven_roi"], rel=1e-6)
    assert any("from the fit" in note for note in data["notes"])


def test_static_plays_the_base_settings_on_the_break_even_given(shop, capsys):
    """--breakeven-roi replaces the fitted one: static's target is its multiple of it."""
    _, report, fit_dir = shop
    data = forecast_json(capsys, report, fit_dir, "--breakeven-roi", "5")
    k = float(re.search(r"target ([\d.]+) x --breakeven-roi break-even 5\.000",
                        data["forecast"]["static_description"]).group(1))
    assert data["forecast"]["settings"]["static"]["settings"]["target_roi"] == pytest.approx(
        round(k * 5.0, 2), abs=0.011)
    assert not any("from the fit" in note for note in data["notes"])


def test_the_forecast_is_reproducible(shop, capsys):
    _, report, fit_dir = shop
    first = cli(capsys, "--history", report, "--fit", fit_dir)
    assert first[0] == 0 and first == cli(capsys, "--history", report, "--fit", fit_dir)


@pytest.mark.parametrize("which", ["shop", "big_shop"])
def test_current_settings_forecast_spend_like_last_week(which, request, capsys):
    """Held, the current settings spend over the next week about what they spent over the
    last (median within a factor 2 of it), and never more than the budget allows."""
    _, report, fit_dir = request.getfixturevalue(which)
    spend = read_report(report).values["spend"]
    budget = read_report(report).values["budget"][-1]
    last_week = float(spend[-7:].sum())
    q = forecast_json(capsys, report, fit_dir)["forecast"]["settings"]["current"][
        "summary"]["spend"]
    assert last_week / 2 <= q["p50"] <= 2 * last_week, (q, last_week)
    assert q["p90"] <= 7 * budget * (1 + 1e-9), (q, budget)


def test_a_fit_of_another_period_is_refused(shop, tmp_path, capsys):
    acc, _, fit_dir = shop
    shorter = write_report(tmp_path / "shop3.csv", acc.dates[:-1],
                           {k: v[:-1] for k, v in acc.columns.items()})
    code, out, err = cli(capsys, "--history", shorter, "--fit", fit_dir)
    assert code == 2 and not out
    assert "another report or period" in err and "Traceback" not in err
    assert acc.dates[-1].isoformat() in err and acc.dates[-2].isoformat() in err, err


@pytest.mark.parametrize("setup", ["missing", "empty", "corrupt"])
def test_a_missing_or_corrupt_fit_is_refused_naming_the_file(shop, tmp_path, capsys, setup):
    _, report, _ = shop
    folder = tmp_path / "fit"
    if setup != "missing":
        folder.mkdir()
    if setup == "corrupt":
        (folder / "fit.json").write_text("{not json", encoding="utf-8")
    code, out, err = cli(capsys, "--history", report, "--fit", folder)
    named = folder if setup == "missing" else folder / "fit.json"
    assert code == 2 and not out and str(named) in err, err


def test_fit_of_another_version_is_refused(shop, tmp_path):
    _, report, fit_dir = shop
    data = json.loads((fit_dir / "fit.json").read_text())
    data["posterior"]["parameters"][0] = "pool_size"
    other = tmp_path / "old"
    other.mkdir()
    (other / "fit.json").write_text(json.dumps(data))
    base = load_scenario("3c")
    history = account_history(read_report(report), base)
    with pytest.raises(CalibrationError, match="another version: recalibrate"):
        load_fit(other, history)
    fit = load_fit(fit_dir, history)  # the folder's own: read back as written
    np.testing.assert_array_equal(fit.z, data["posterior"]["mode"])
    assert fit.value("pool_cost_cny") == data["parameters"]["pool_cost_cny"]["value"]


@pytest.mark.parametrize("extra, message", [
    (["--batch", "examples"], "holds a single calibration"),  # --batch takes FITS/<account>/
    (["--history", "{report}", "--scenario", "3c"], "drop --scenario"),
])
def test_fit_with_batch_or_scenario_is_refused(shop, capsys, extra, message):
    _, report, fit_dir = shop
    code, out, err = cli(capsys, "--fit", fit_dir,
                         *(a.replace("{report}", str(report)) for a in extra))
    assert code == 2 and message in err and not out, err
