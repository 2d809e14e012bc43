"""recommend with an anchored policy (envs.anchored): the report's dashboard and launch budget
give the env's own mapping of the graph's residual; the manifest's anchors are checked; the
serving path stays light."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agents.serving.guards import Settings, raw_settings
from agents.serving.inputs import launch_budget
from agents.serving.report import read_report, write_report
from agents.serving.simulated import dated_account
from envs.anchored import anchored_action
from envs.history import COL
from envs.simulator import Simulator
from tests.test_recommend import (
    EN,
    HEAVY,
    ZH,
    cli,
    example_reports,
    recommend_in_fresh_process,
)

# ---------------------------------------------------------------------- launch budget
LAUNCH = dt.date(2025, 4, 17)  # report_en.csv's plan_launch_date (its rows: 04-27..05-16)


def en_report(launch: dt.date | None, budgets: list[float] | None = None):
    report = read_report(EN)
    values = dict(report.values)
    if budgets is not None:
        values["budget"] = np.asarray(budgets, dtype=float)
    return dataclasses.replace(report, plan_launch_date=launch, values=values)


def test_launch_budget_is_the_budget_the_plan_launched_from():
    budgets = [9000.0 + 100 * i for i in range(20)]
    first = read_report(EN).dates[0]
    # the report shows the day before the launch: its budget, whatever the option says
    got = launch_budget(en_report(first + dt.timedelta(days=3), budgets))
    assert got.cny == budgets[2] and got.note is None and "the day before" in got.source
    got = launch_budget(en_report(first + dt.timedelta(days=3), budgets), given=5000.0)
    assert got.cny == budgets[2] and "--launch-budget 5,000.00 not used" in got.note
    # launched on the first day shown (or before it): the option, else the earliest budget
    for launch in (first, LAUNCH):
        got = launch_budget(en_report(launch, budgets), given=5000.0)
        assert (got.cny, got.source, got.note) == (5000.0, "--launch-budget", None)
        got = launch_budget(en_report(launch, budgets))
        assert got.cny == budgets[0] and "assumed" in got.source
        assert "earliest budget" in got.note and "--launch-budget" in got.note
    got = launch_budget(en_report(None, budgets))
    assert got.cny == budgets[0] and "no plan_launch_date" in got.note


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_bad_launch_budget_exits_2(capsys, value):
    code, _, err = cli(capsys, "--policy", "playbook", "--history", EN, "--launch-budget",
                       value)
    assert code == 2 and "--launch-budget must be a finite amount > 0" in err, err


# ---------------------------------------------------------------------------- serving
@pytest.fixture(scope="module")
def exported_anchored(tiny_anchored_run, tmp_path_factory) -> Path:
    from agents.export.exporter import export_run

    return export_run(tiny_anchored_run, "best", out_dir=tmp_path_factory.mktemp("anchored"))


@pytest.fixture(scope="module")
def played(tiny_anchored_run):
    """The run's model played in the env through the mapping (agents.policies.anchored)."""
    from agents.policies.ppo import load_trained_policy
    from envs.config import load_scenario

    policy, _ = load_trained_policy(tiny_anchored_run, "best").playing(load_scenario("3c"))
    return policy


def play(policy, seed: int, days: int) -> Simulator:
    """One account ``days`` days into its plan, played by ``policy`` (an AnchoredPolicy)."""
    sim = Simulator(policy.config, n=1)
    obs = sim.reset(seeds=[seed])
    for _ in range(days):
        policy.see_dashboard(sim.history, sim.params.launch_budget_cny)
        obs, _, _, _ = sim.step(policy.predict(obs)[0])
    return sim


@pytest.mark.slow
@pytest.mark.parametrize("days, launch_option", [
    (3, False),   # launch week, learning: edits not capped
    (11, False),  # past the launch week: the edit cap reads the dashboard
    (30, True),   # the report no longer shows the launch: --launch-budget
])
def test_recommend_maps_residuals_as_the_env_does(tmp_path, exported_anchored, played, days,
                                                  launch_option):
    from agents.serving.onnx_policy import OnnxPolicy
    from agents.serving.recommend import RecommendOptions, recommend_files

    sim = play(played, seed=10100 + days, days=days)
    account = dated_account(sim)
    launch = float(sim.params.launch_budget_cny[0])
    path = write_report(tmp_path / "shop.csv", account.dates, account.columns())
    options = RecommendOptions(promo_dates=account.promo_dates, compare=None,
                               launch_budget=launch if launch_option else None)
    policy = OnnxPolicy(exported_anchored / "policy.onnx")
    rec = recommend_files(policy, [path], options)[0][0].to_dict()
    answer = rec["policy"]
    assert answer["anchored"] and answer["anchor"]["scenario"] == "3c"
    assert answer["anchor"]["launch_budget_cny"] == launch  # exactly the env's
    if days < 14:  # the launch day's row holds its decision, not the launch budget
        row = account.dates.index(account.plan_launch_date)
        assert account.history[row, COL["budget"]] != launch
    cfg, anchor = played.config, played.anchor
    history, obs = sim.history.copy(), account.observation[None]
    # the env's mapping of serving's residual is serving's action, to rounding
    residual = np.array([answer["residual"]])
    env_action = anchored_action(cfg, anchor, residual, obs, history, sim.params.launch_budget_cny)
    np.testing.assert_allclose(answer["action"], env_action[0], rtol=0, atol=1e-9)
    state = sim.state
    current = Settings(state.target_roi.copy(), state.budget_cny.copy(), state.shares.copy(),
                       np.zeros(1, dtype=bool))
    env_raw = raw_settings(cfg, env_action, current)
    got = answer["raw"]
    np.testing.assert_allclose([got["target_roi"], got["budget_cny"]],
                               [env_raw.target_roi[0], env_raw.budget_cny[0]], rtol=1e-12)
    np.testing.assert_allclose([got[f"share_{p}"] for p in ("payment_roi", "settlement_roi",
                                                             "volume", "whole_site")],
                               env_raw.shares[0], rtol=1e-9, atol=1e-12)
    assert got["creative_refresh"] == bool(env_raw.refresh[0])
    # and the residual is the model's on the env's own inputs (AnchoredPolicy)
    played.see_dashboard(history, sim.params.launch_budget_cny)
    np.testing.assert_allclose(answer["residual"], played.residuals(obs)[0], atol=1e-5)
    np.testing.assert_allclose(answer["action"], played.predict(obs)[0][0], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("days", [3, 30])
def test_anchored_recommendation_enters_the_envs_decision(tmp_path, exported_anchored, played,
                                                          days):
    """The settings recommended for an anchored policy's action are the env's decision."""
    from agents.serving.onnx_policy import OnnxPolicy
    from envs.actions import to_decision
    from tests.test_serving_env_parity import assert_is_env_decision, recommend_account

    sim = play(played, seed=10300 + days, days=days)
    policy = OnnxPolicy(exported_anchored / "policy.onnx")
    answer = recommend_account(policy, dated_account(sim), tmp_path,
                               launch_budget=float(sim.params.launch_budget_cny[0]))
    decision = to_decision(played.config, sim.state, np.array([answer["action"]]))
    assert_is_env_decision(answer, decision)


@pytest.mark.slow
def test_anchored_output_names_the_anchor_in_json_table_and_csv(tmp_path, capsys,
                                                                exported_anchored):
    onnx = exported_anchored / "policy.onnx"
    manifest = json.loads((exported_anchored / "policy.json").read_text())
    code, out, err = cli(capsys, "--policy", onnx, "--history", EN, "--json", "--scenario",
                         "beauty")
    assert code == 0, err
    answer = json.loads(out)["policy"]
    assert answer["anchored"] and len(answer["residual"]) == 6 and len(answer["action"]) == 7
    assert answer["anchor"]["scenario"] == "beauty" and answer["anchor"]["kind"] == "static"
    assert answer["anchor"]["settings"] == manifest["anchors"]["beauty"]
    assert answer["anchor"]["launch_budget_source"].startswith("assumed")
    assert any("earliest budget" in note for note in json.loads(out)["notes"])
    code, table, _ = cli(capsys, "--policy", onnx, "--history", ZH, "--launch-budget", "8000")
    assert code == 0
    assert "anchor : anchored on static's settings for 3c" in table
    assert "launch budget 8,000.00 (--launch-budget)" in table
    reports = example_reports(tmp_path)
    code, _, err = cli(capsys, "--policy", onnx, "--batch", reports, "--out",
                       tmp_path / "recs.csv", "--launch-budget", "9000")
    assert code == 0, err
    with (tmp_path / "recs.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["anchor"], r["launch_budget_cny"]) for r in rows] == [("static:3c", "9000.00")] * 2
    # a raw policy's CSV has no such columns
    code, _, _ = cli(capsys, "--policy", "playbook", "--batch", reports, "--out",
                     tmp_path / "raw.csv")
    with (tmp_path / "raw.csv").open(encoding="utf-8-sig") as f:
        assert "anchor" not in next(csv.reader(f))


@pytest.mark.slow
def test_anchored_serving_imports_neither_torch_nor_sb3_nor_the_simulator(exported_anchored):
    done = recommend_in_fresh_process(exported_anchored / "policy.onnx", ZH, (
        *HEAVY, "scipy", "envs.simulator", "envs.market", "envs.qianchuan_env",
        "agents.policies.anchored", "agents.training.paired_env",
        "agents.policies.baseline_store", "agents.experiments.baseline_search"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"heavy": []}
    assert json.loads(done.stdout)["policy"]["anchored"] is True


def _set(manifest, key, value):
    manifest[key] = value


def _anchor(manifest, field, value):
    if value is None:
        del manifest["anchors"]["3c"][field]
    else:
        manifest["anchors"]["3c"][field] = value


BAD_MANIFESTS = {
    "no anchors": (lambda m: m.pop("anchors"), "anchored policy lacks anchors"),
    "empty anchors": (lambda m: _set(m, "anchors", {}), "has no anchors"),
    "anchors not a mapping": (lambda m: _set(m, "anchors", ["3c"]), "has no anchors"),
    "anchor not an object": (lambda m: m["anchors"].update({"3c": 1.5}),
                             "anchors['3c'] must be an object"),
    "missing field": (lambda m: _anchor(m, "refresh_days", None), "lacks refresh_days"),
    "unknown field": (lambda m: _anchor(m, "budget", 2.0), "unknown budget"),
    "shares not numbers": (lambda m: _anchor(m, "shares", ["a", "b", "c"]),
                           "shares must be a list of 3 or 4 numbers"),
    "two shares": (lambda m: _anchor(m, "shares", [0.5, 0.5]), "3 or 4 numbers"),
    "negative target": (lambda m: _anchor(m, "target_over_breakeven", -1.0), "must be > 0"),
    "text budget": (lambda m: _anchor(m, "budget_over_launch", "1.0"),
                    "budget_over_launch must be a number"),
    "fractional refresh": (lambda m: _anchor(m, "refresh_days", 1.5),
                           "refresh_days must be a whole number"),
    "unknown anchor kind": (lambda m: _set(m, "anchor", "oracle"), "manifest anchor is"),
    "residual names": (lambda m: _set(m, "residual_names", ["a", "b"]), "residual_names"),
    "other mapping": (lambda m: m["anchored_mapping"].update(edit_cap=0.5),
                      "anchored_mapping"),
    "raw features": (lambda m: _set(m, "feature_names", m["feature_names"][:-6]),
                     "feature_names"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_bad_anchored_manifest_exits_2(tmp_path, capsys, exported_anchored, case):
    edit, expected = BAD_MANIFESTS[case]
    copy = tmp_path / "export"
    shutil.copytree(exported_anchored, copy)
    manifest = json.loads((copy / "policy.json").read_text())
    edit(manifest)
    (copy / "policy.json").write_text(json.dumps(manifest))
    code, out, err = cli(capsys, "--policy", copy / "policy.onnx", "--history", EN)
    assert code == 2 and out == ""
    assert expected in err and "policy.json" in err, err


@pytest.mark.slow
def test_scenario_without_an_anchor_exits_2_naming_those_there_are(capsys, exported_anchored):
    code, _, err = cli(capsys, "--policy", exported_anchored / "policy.onnx", "--history", EN,
                       "--scenario", "unseen/no_such")
    assert code == 2
    assert "no anchor for it" in err and "3c, apparel_live, beauty" in err, err
