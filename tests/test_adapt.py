"""The anchor adapted to a market (agents/calibration/adapt.py): on a pool much poorer or
richer than the base's, static's search moves the profit target (over break-even) the way
the market asks and beats the base's anchor on held-out training seeds; anchor.json
round-trips, and recommend --fit plays the shipped policy on it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from agents.calibration.account import CalibrationError, account_history
from agents.calibration.adapt import (
    ANCHOR_FILE,
    adapt_settings,
    anchor_writer,
    posterior_configs,
    posterior_draws,
    read_anchor,
)
from agents.calibration.fit import fit_account
from agents.calibration.outputs import fit_record, json_writer, text_writer, write_calibration
from agents.calibration.pipeline import ADAPT_MIN_REPORT_DAYS
from agents.calibration.prior import bounds
from agents.calibration.recommend_fit import load_fitted
from agents.calibration.scenario import scenario_yaml
from agents.calibration.synthetic import synthetic_account
from agents.experiments.baseline_search import (
    _params_of_settings,
    _settings_from_params,
    settings_value,
)
from agents.policies.baseline_store import load_static
from agents.serving.inputs import parse_promotions
from agents.serving.report import read_report
from envs.config import load_scenario

ROOT = Path(__file__).resolve().parent.parent

HELD_OUT = np.arange(5000, 5032)  # training seeds the search did not use (it uses 0..15)


@pytest.mark.parametrize("roi_mult, direction", [(0.6, -1), (1.6, +1)])
def test_adapted_target_follows_the_pool_and_beats_the_base_anchor(roi_mult, direction):
    """A poorer pool asks for a lower profit target over break-even, a richer one a higher
    (measured: 1.48 and 2.02 against 3c's 1.66); the adapted anchor is worth at least the
    base's on training seeds it was not tuned on."""
    config = load_scenario("3c", objective="profit")
    base = load_static(config)
    market = config.replace(pool_mean_roi=config.pool_mean_roi * roi_mult)
    found = adapt_settings([market, market], base, trials=24, seeds_per_market=8)
    move = found.settings.target_over_breakeven / base.target_over_breakeven
    assert direction * np.log(move) > 0.05
    assert found.value_cny >= found.base_value_cny
    assert (settings_value(market, found.settings, HELD_OUT)
            >= settings_value(market, base, HELD_OUT))


def test_a_search_guess_maps_back_to_its_settings():
    """The base's anchor enters the search as a trial whose settings are its own."""
    config = load_scenario("3c", objective="profit")
    base = load_static(config)
    back = _settings_from_params(_params_of_settings(base, config))
    assert back.target_over_breakeven == pytest.approx(base.target_over_breakeven)
    assert back.budget_over_launch == pytest.approx(base.budget_over_launch)
    assert back.shares == pytest.approx(base.shares, abs=1e-4)
    assert back.refresh_days == base.refresh_days


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_cli_adapt",
                                                  ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A fitted 3c account (synthetic account 3, 28 days), its report and its calibration
    folder (fit.json, scenario.yaml: what recommend --fit reads), and the fit read back as
    recommend --fit reads it."""
    folder = tmp_path_factory.mktemp("adapt")
    base = load_scenario("3c")
    acc = synthetic_account(base, 3, 28)
    report = acc.write(folder / "shop.csv")
    history = account_history(read_report(report), base,
                              parse_promotions(acc.promo_dates, base.promo_peak_length_days))
    fit = fit_account(history, base)
    fit_dir = folder / "fit"
    write_calibration(fit_dir, {
        "fit.json": json_writer(fit_record(fit, ["test"], "3c")),
        "scenario.yaml": text_writer(scenario_yaml(fit, "3c"))})
    account = load_fitted(fit_dir, read_report(report), None)
    return report, fit_dir, account.fit


def recommend_json(capsys, report: Path, fit_dir: Path) -> dict:
    """recommend --fit --json's policy answer (in this process)."""
    capsys.readouterr()
    code = _script("recommend").main(["--history", str(report), "--fit", str(fit_dir),
                                      "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)["policy"]


def test_posterior_draws_are_antithetic_around_the_mode(fitted):
    fit = fitted[2]
    z = posterior_draws(fit, 4)
    lower, upper = bounds(fit.parameters)
    assert z.shape == (4, fit.z.size) and np.all((z >= lower) & (z <= upper))
    inside = (z[:2] > lower) & (z[:2] < upper) & (z[2:] > lower) & (z[2:] < upper)
    assert np.allclose(((z[:2] + z[2:]) / 2)[inside], np.tile(fit.z, (2, 1))[inside])
    configs = posterior_configs(fit, "profit", 4, account={"launch_budget_cny": 5000.0})
    assert {c.launch_budget_cny for c in configs} == {5000.0}
    assert len({c.pool_cost_cny for c in configs}) == 4


def test_anchor_json_round_trips_and_recommend_fit_plays_it(fitted, capsys):
    """anchor.json holds the adapted anchor per objective (JSON only); recommend --fit plays
    the shipped policy on it, and on the base's anchor (saying so) without it."""
    report, fit_dir, fit = fitted
    without = recommend_json(capsys, report, fit_dir)
    assert "no anchor.json in the fit" in without["anchor"]["scenario"]
    anchor_writer(fit, objectives=("profit",), trials=6, seeds_per_market=4)(
        fit_dir / ANCHOR_FILE)
    data = json.loads((fit_dir / ANCHOR_FILE).read_text())
    entry = data["objectives"]["profit"]
    settings = read_anchor(fit_dir, "profit")
    assert settings.target_over_breakeven == entry["target_over_breakeven"]
    assert read_anchor(fit_dir, "gmv_floor") is None
    assert entry["chosen_by"] == "the shipped network on the anchor"
    assert entry["training_value_cny"] >= entry["base_training_value_cny"]
    # an anchor unlike the base's: recommend --fit answers on it
    entry["target_over_breakeven"] = 0.75
    (fit_dir / ANCHOR_FILE).write_text(json.dumps(data))
    answer = recommend_json(capsys, report, fit_dir)
    assert "adapted to the fit" in answer["anchor"]["scenario"]
    assert answer["anchor"]["settings"]["target_over_breakeven"] == 0.75
    assert without["anchor"]["settings"]["target_over_breakeven"] != 0.75
    assert answer["raw"]["target_roi"] != without["raw"]["target_roi"]
    (fit_dir / ANCHOR_FILE).write_text("{not json")
    with pytest.raises(CalibrationError, match="anchor"):
        read_anchor(fit_dir, "profit")
    (fit_dir / ANCHOR_FILE).unlink()


def test_calibrate_adapt_anchor_writes_it_and_a_plain_run_drops_it(fitted, tmp_path, capsys):
    """calibrate --adapt-anchor adds anchor.json to the folder (profit only: the measured
    default) and warns that a 28-day report is shorter than the default adapts on; a later
    calibration without it (by default, on a report that short) replaces the folder whole,
    the stale anchor gone with the rest, and says why."""
    report = fitted[0]
    out = tmp_path / "cal"
    calibrate = _script("calibrate")
    assert calibrate.main(["--history", str(report), "--out", str(out), "--adapt-anchor"]) == 0
    assert f"adapted on 28 days; anchors adapted on reports under {ADAPT_MIN_REPORT_DAYS}" \
        in capsys.readouterr().out
    data = json.loads((out / ANCHOR_FILE).read_text())
    assert set(data["objectives"]) == {"profit"}
    assert read_anchor(out, "profit") is not None
    assert calibrate.main(["--history", str(report), "--out", str(out)]) == 0
    assert not (out / ANCHOR_FILE).exists()
    said = capsys.readouterr().out
    assert ANCHOR_FILE not in said.split("wrote")[0]
    assert f"anchor: the base's (28 days are under the {ADAPT_MIN_REPORT_DAYS}" in said


def test_calibrate_adapts_the_anchor_by_default_on_a_long_enough_report(tmp_path, capsys):
    """From ADAPT_MIN_REPORT_DAYS days on, calibrate writes anchor.json unless told
    --no-adapt-anchor, and the fit records which was asked (a batch refits on a change)."""
    base = load_scenario("3c")
    acc = synthetic_account(base, 5, ADAPT_MIN_REPORT_DAYS)
    report = acc.write(tmp_path / "long.csv")
    calibrate = _script("calibrate")
    out = tmp_path / "cal"
    assert calibrate.main(["--history", str(report), "--out", str(out)]) == 0
    assert f"{ANCHOR_FILE}: the profit policy's anchor tuned" in capsys.readouterr().out
    assert read_anchor(out, "profit") is not None
    assert json.loads((out / "fit.json").read_text())["inputs"]["adapt_anchor"] is None
    assert calibrate.main(["--history", str(report), "--out", str(out),
                           "--no-adapt-anchor"]) == 0
    assert not (out / ANCHOR_FILE).exists()
    assert ANCHOR_FILE not in capsys.readouterr().out.split("wrote")[0]
    assert json.loads((out / "fit.json").read_text())["inputs"]["adapt_anchor"] is False


def test_a_base_of_ones_own_is_served_on_the_anchor_adapted_to_it(fitted, tmp_path, capsys):
    """The shipped policy holds anchors for the named scenarios only: a fit against a base of
    the user's own is refused by recommend --fit (exit 2, saying how to get an anchor), unless
    the fit carries its own adapted anchor, which it is then played on."""
    report = fitted[0]
    own = tmp_path / "my_shop.yaml"
    own.write_text("base: 3c\nmargin: 0.30\n")
    calibrate, recommend = _script("calibrate"), _script("recommend")
    plain, adapted = tmp_path / "plain", tmp_path / "adapted"
    assert calibrate.main(["--history", str(report), "--out", str(plain), "--base",
                           str(own)]) == 0
    capsys.readouterr()
    assert recommend.main(["--history", str(report), "--fit", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "no anchor for the fit's base scenario" in err and "--adapt-anchor" in err
    assert "Traceback" not in err
    assert calibrate.main(["--history", str(report), "--out", str(adapted), "--base",
                           str(own), "--adapt-anchor"]) == 0
    answer = recommend_json(capsys, report, adapted)
    assert "adapted to the fit" in answer["anchor"]["scenario"]
    stored = read_anchor(adapted, "profit")
    assert answer["anchor"]["settings"]["target_over_breakeven"] == pytest.approx(
        stored.target_over_breakeven, abs=1e-4)


def test_explain_swaps_each_fitted_value_alone_into_the_truth(fitted):
    """decision_value.py --explain's markets: the true market with one fitted key at a time,
    every key in which the fitted market differs (the advertiser's own keys excepted), each
    market differing from the truth in that key only."""
    from agents.calibration.scenario import fitted_config

    dv = _script("decision_value")
    fit = fitted[2]
    truth = synthetic_account(load_scenario("3c"), 3, 28).config
    fitted_market = fitted_config(fit)
    swapped = dv.swapped_markets(truth, fitted_market)
    t, f = truth.to_dict(), fitted_market.to_dict()
    differing = [k for k in f if k not in dv.NOT_SWAPPED and f[k] != t.get(k)]
    assert {"pool_cost_cny", "pool_mean_roi", "pool_sigma"} <= set(differing)
    assert [key for key, _ in swapped] == differing
    for key, market in swapped:
        assert market is not None, key
        d = market.to_dict()
        assert d[key] == f[key]
        assert [k for k in d if d[k] != t[k]] == [key]


def _fake_account(index, objectives, *rest):
    """decision_value's one_account, without the work: a record holding ``objectives``."""
    settings = {"target_over_breakeven": 1.5, "shares": [1.0, 0.0, 0.0],
                "budget_over_launch": 1.0, "refresh_days": 14}
    offsets = {"G": 0.0, "F": 1.0, "T": 2.0, "static": 0.0, "static_F": 1.0, "static_T": 2.0}
    values = {p: [index + k + extra for k in range(4)] for p, extra in offsets.items()}
    return {"index": index, "seed": 60000 + index, "market": "3c", "base": "3c", "days": 56,
            "fit_seconds": 0.1, "truth": {"pool_cost_cny": 1.0, "pool_mean_roi": 1.0,
                                          "pool_sigma": 0.5},
            "fitted": {"pool_cost_cny": 1.0, "pool_mean_roi": 1.0, "pool_sigma": 0.5},
            "objectives": {o: {"anchors": {a: settings for a in "GFT"},
                               "adapt_seconds": {"F": 1.0, "T": 1.0},
                               "values": values} for o in objectives}}


def test_decision_value_adds_an_objective_to_a_kept_account(tmp_path, monkeypatch):
    """A rerun for another objective measures only that objective and keeps the account's
    record of the first (it used to replace the record, losing what it held)."""
    dv = _script("decision_value")
    asked = []
    monkeypatch.setattr(dv, "one_account", lambda i, objectives, *rest: asked.append(
        list(objectives)) or _fake_account(i, objectives))
    args = ["--accounts", "2", "--seeds", "4", "--smoke", "--out", str(tmp_path)]
    assert dv.main(["--objectives", "profit", *args]) == 0
    assert dv.main(["--objectives", "profit", "gmv_floor", *args]) == 0
    assert asked == [["profit"], ["profit"], ["gmv_floor"], ["gmv_floor"]]
    for path in (tmp_path / "accounts").glob("account_*.json"):
        assert set(json.loads(path.read_text())["objectives"]) == {"profit", "gmv_floor"}
    assert dv.main(["--objectives", "gmv_floor", *args]) == 0
    assert len(asked) == 4  # both read from the kept records
