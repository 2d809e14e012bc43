"""The identification test recommend --fit proposes (agents/calibration/identification.py):
for a report whose target never moved, target moves under the simulator's re-learning rule
with the budget not binding, expected to narrow the pool's spread; none for a report that
identified the curve; the CLI's table and JSON carry it."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from agents.calibration.account import account_history
from agents.calibration.fit import fit_account
from agents.calibration.fit_io import load_fit
from agents.calibration.identification import (
    CAPPED_DAYS_OK,
    CURVE,
    SHAPES,
    check,
    largest_step,
    propose,
    schedule,
)
from agents.calibration.scenario import fitted_config
from agents.calibration.synthetic import draw_config, synthetic_account
from agents.serving.inputs import parse_promotions
from agents.serving.report import read_report
from envs.actions import edit_size
from envs.anchored import EDIT_CAP
from envs.config import load_scenario
from envs.seeds import CALIBRATION_SEED

ROOT = Path(__file__).resolve().parent.parent
DAYS = 42
HELD = 1  # a 3c account run at a held target with an ample budget (the curve left to the prior)
PLAYBOOK, PLAYBOOK_DAYS = 85, 56  # a 3c account run by the playbook whose 56 days identify
# the curve (few do, and no 42-day report of accounts 0-229 does since the widening was
# measured on the accounts it leaves identified: its three sds 0.15-0.44 of the prior's,
# widened, against the rule's 0.5)


calibrate = load_script("calibrate_cli_ident", "calibrate.py")
recommend = load_script("recommend_cli_ident", "recommend.py")


@pytest.fixture(scope="module")
def base():
    return load_scenario("3c")


def held_account(base, index: int):
    """Account ``index`` of 3c at its launch target every day, all its budget on the
    payment-ROI plan and that budget four times its pool (never binding)."""
    cfg, _ = draw_config(base, np.random.default_rng(CALIBRATION_SEED + index))
    return synthetic_account(base, index, DAYS, operator="constant", overrides={
        "launch_shares": (1.0, 0.0, 0.0), "launch_budget_cny": 4.0 * cfg.pool_cost_cny,
        "balance_enabled": False})


@pytest.fixture(scope="module")
def held(base, tmp_path_factory):
    """(report, calibration folder, fit read back) of the held account."""
    folder = tmp_path_factory.mktemp("ident")
    report = held_account(base, HELD).write(folder / "held.csv")
    fit_dir = folder / "fit"
    assert calibrate.main(["--history", str(report), "--out", str(fit_dir)]) == 0
    fit = load_fit(fit_dir, account_history(read_report(report), base))
    return report, fit_dir, fit


@pytest.fixture(scope="module")
def proposal(held):
    test, reason = propose(held[2])
    assert test is not None, reason
    return test


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = recommend.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_held_target_gets_a_test_under_the_relearning_rule(held, proposal, base):
    """Each move is below the one-day re-learning threshold, the edits of every window
    (the report's own last ones included) stay under the anchored policies' cap, one edit a
    day, and the test ends back at today's settings."""
    _, _, fit = held
    h = fit.history
    assert np.ptp(h.target) == 0 and not h.capped.any()
    cfg = fitted_config(fit)
    assert proposal["parameters"][0] == "pool_sigma"
    days = proposal["schedule"]
    target = np.array([h.target[-1]] * cfg.relearn_window_days
                      + [d["target_roi"] for d in days] + [proposal["end"]["target_roi"]])
    budget = np.array([h.budget[-1]] * cfg.relearn_window_days
                      + [d["budget_cny"] for d in days] + [proposal["end"]["budget_cny"]])
    moves = np.abs(np.diff(np.log(target)))
    assert moves.max() > 0.0
    assert np.all(moves < math.log1p(cfg.relearn_target_change))
    sizes = edit_size(cfg, target[:-1], target[1:], budget[:-1], budget[1:])
    window = cfg.relearn_window_days
    loads = np.convolve(sizes, np.ones(window))[:sizes.size]
    assert loads.max() <= EDIT_CAP + 1e-9
    assert proposal["rule"]["largest_window_edits"] == pytest.approx(loads.max())
    assert proposal["end"]["target_roi"] == h.target[-1]
    assert proposal["end"]["budget_cny"] == pytest.approx(h.budget[-1], abs=0.01)
    first = h.dates[-1].toordinal() + 1
    assert [d["date"] for d in days] == [
        type(h.dates[-1]).fromordinal(first + i).isoformat() for i in range(len(days))]
    assert 7 <= proposal["days"] <= 21


def test_the_test_is_not_budget_bound_and_narrows_the_spread(proposal):
    assert proposal["budget_bound_share"] <= CAPPED_DAYS_OK
    for name in CURVE:
        w = proposal["widths"][name]
        assert w["width_after"] <= w["width_now"] + 1e-9, name
        assert w["now"][0] <= w["now"][1] and w["after"][0] <= w["after"][1]
    sigma = proposal["widths"]["pool_sigma"]
    assert sigma["width_after"] < sigma["width_now"]
    assert not sigma["identified_now"]
    assert proposal["identifies"] == all(proposal["widths"][n]["identified_after"]
                                         for n in proposal["parameters"])
    cost = proposal["cost_cny"]
    assert cost["p10"] <= cost["p50"] <= cost["p90"]


def test_a_move_waits_for_the_window_the_report_used(held):
    """Edits the report made in its last days count in the window: the first move waits."""
    _, _, fit = held
    h = fit.history
    cfg = fitted_config(fit)
    target = h.target.copy()
    target[-2:] = target[-3] * (1.0 + 0.6 * cfg.relearn_target_change)  # 2 days ago
    busy = dataclasses.replace(h, target=target)
    step = largest_step(cfg)
    calm = schedule(cfg, h, step, 4)
    waited = schedule(cfg, busy, step, 4)
    assert calm.settings.target_roi[0] != h.target[-1]  # moves on the first day
    assert waited.settings.target_roi[0] == target[-1]  # holds first
    assert waited.window_loads.max() <= EDIT_CAP + 1e-9


@pytest.mark.parametrize("today", [0.3, 1.07, 3.0])
def test_rounding_to_two_decimals_never_enlarges_a_move(held, today):
    """Low targets: the platform's two decimals would push a 6.5% step's moves past the
    rule; levels are rounded towards today's target instead."""
    h = dataclasses.replace(held[2].history, target=np.full(held[2].history.days, today))
    cfg = fitted_config(held[2])
    for levels in SHAPES:
        design = schedule(cfg, h, largest_step(cfg), 4, 1.0, levels)
        assert design is not None, levels
        check(cfg, h, design)
        farthest = max(abs(k) for k in levels) * math.log1p(largest_step(cfg))
        assert np.abs(np.log(design.settings.target_roi / today)).max() <= farthest + 1e-12


def test_an_identified_curve_gets_no_test(base, tmp_path, capsys):
    """A playbook account whose report identified the curve: null, and the reason, in the
    table and the JSON."""
    acc = synthetic_account(base, PLAYBOOK, PLAYBOOK_DAYS)
    report = acc.write(tmp_path / "playbook.csv")
    fit_dir = tmp_path / "fit"
    promo = ["--promo-dates", acc.promo_dates] if acc.promo_dates else []
    assert calibrate.main(["--history", str(report), "--out", str(fit_dir), *promo]) == 0
    h = account_history(read_report(report), base,
                        parse_promotions(acc.promo_dates, base.promo_peak_length_days))
    fit = load_fit(fit_dir, h)
    assert all(fit.estimates[name].identified for name in CURVE)
    test, reason = propose(fit)
    assert test is None and "identified" in reason
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir, *promo)
    assert code == 0, err
    assert f"identification test: none ({reason})" in out
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir, "--json", *promo)
    assert code == 0, err
    data = json.loads(out)
    assert data["identification_test"] is None
    assert data["identification_test_reason"] == reason


def test_the_cli_shows_the_test_in_the_table_and_the_json(held, proposal, capsys):
    report, fit_dir, _ = held
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir)
    assert code == 0, err
    section = out.partition("identification test:")[2]
    assert section, out
    assert proposal["schedule"][0]["date"] in section
    assert f"target {proposal['schedule'][0]['target_roi']:.2f}" in section
    assert "back to target" in section and "expected cost:" in section
    assert "pool_sigma (log-sd)" in section and "->" in section
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir, "--json")
    assert code == 0, err
    data = json.loads(out)
    test = data["identification_test"]
    assert data["identification_test_reason"] is None
    assert test["schedule"] == proposal["schedule"]
    assert test["cost_cny"] == pytest.approx(proposal["cost_cny"])
    assert test["first_date"] == data["forecast"]["first_date"]
    assert "identification_test" not in data["forecast"]
    code, out, err = cli(capsys, "--history", report, "--fit", fit_dir, "--json",
                         "--no-identification-test")
    assert code == 0, err
    data = json.loads(out)
    assert data["identification_test"] is None
    assert "--no-identification-test" in data["identification_test_reason"]


def test_a_held_target_at_a_binding_budget_is_told_to_raise_the_budget(base, tmp_path):
    """The constant operator at the launch budget spends it every day: no target move
    within the rule shows the pool's spread, and the answer says why: no test, or one that
    says its capped days hide the curve and a higher budget first would be worth more."""
    acc = synthetic_account(base, 7, DAYS, operator="constant")
    h = account_history(read_report(acc.write(tmp_path / "capped.csv")), base)
    assert np.ptp(h.target) == 0 and h.capped.mean() > 0.9
    fit = fit_account(h, base)
    test, reason = propose(fit)
    if test is None:
        assert "whole budget" in reason and "raise" in reason
    else:
        assert not test["identifies"]
        assert not test["widths"]["pool_sigma"]["identified_after"]
        assert "whole budget" in test["verdict"] and "higher budget" in test["verdict"]
