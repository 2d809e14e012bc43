"""Fixed-settings baselines: how they move, where their settings come from, what refuses."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import agents.experiments.baseline_search as baseline_search
import agents.policies.baseline_store as baseline_store
from agents.evaluation.rollout import rollout
from agents.experiments.baseline_search import search_static, search_static_rule
from agents.policies import make_policy
from agents.policies.baseline_store import BaselineError, load_static, load_static_rule, write_entry
from agents.policies.static import FixedSettingsPolicy
from envs.anchored import StaticSettings, target_step
from envs.config import list_scenarios, load_scenario
from envs.version import ENV_VERSION


def test_settings_are_reached_in_steps_that_do_not_restart_learning():
    config = load_scenario("3c")
    settings = StaticSettings(1.6, (0.7, 0.3, 0.0), 1.8, 21)
    policy = FixedSettingsPolicy(config, settings)
    result = rollout(policy, policy.config, [10000, 10001], record_daily=True)
    target, budget = result.daily["target_roi"], result.daily["budget"]
    wanted = 1.6 * config.breakeven_roi
    assert np.allclose(target[:, -1], wanted, atol=0.01)
    steps = target[:, 1:] / target[:, :-1]
    assert steps.max() < 1.0 + config.relearn_target_change
    assert steps.max() <= 1.0 + target_step(config) + 0.01  # targets are rounded to 0.01
    assert np.allclose(budget[:, -1], 1.8 * config.launch_budget_cny, rtol=1e-6)
    assert (budget[:, 1:] / budget[:, :-1]).max() < 1.0 + config.relearn_budget_jump
    # no move restarted learning: it starts when holding the launch settings does (at
    # launch and at each creative refresh)
    def onsets(daily):
        learning = daily["learning"].astype(int)
        return (np.diff(learning, axis=1) == 1).sum(axis=1)

    hold = FixedSettingsPolicy(config, StaticSettings(
        config.launch_target_roi / config.breakeven_roi, (0.7, 0.3, 0.0), 1.0, 21))
    held = rollout(hold, hold.config, [10000, 10001], record_daily=True)
    assert (onsets(result.daily) == onsets(held.daily)).all()


@pytest.mark.parametrize("objective", ["profit", "gmv_floor"])
def test_every_named_scenario_has_tuned_settings_of_this_env_version(objective):
    for name in list_scenarios():
        settings = load_static(load_scenario(name, objective=objective))
        assert 0.5 < settings.target_over_breakeven < 3.0 and sum(settings.shares) > 0
    assert 0.5 < load_static_rule(objective) < 3.0
    unseen = load_scenario("unseen/noisy", objective=objective)  # played with its base's
    assert load_static(unseen) == load_static(load_scenario("3c", objective=objective))


def _copy_baselines(tmp_path, monkeypatch, edit=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for path in baseline_store.BASELINE_DIR.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if edit is not None:
            edit(path.stem, data)
        (tmp_path / path.name).write_text(yaml.safe_dump(data))
    monkeypatch.setattr(baseline_store, "BASELINE_DIR", tmp_path)


def test_a_file_of_another_env_version_or_without_the_objective_is_refused(tmp_path,
                                                                          monkeypatch):
    def older(stem, data):
        if stem == "3c":
            data["env_version"] = ENV_VERSION - 1
        if stem == "food":
            del data["objectives"]["gmv_floor"]

    _copy_baselines(tmp_path, monkeypatch, older)
    with pytest.raises(BaselineError, match="made for env version"):
        make_policy("static", load_scenario("3c"))
    with pytest.raises(BaselineError, match="no settings for the objective 'gmv_floor'"):
        make_policy("static", load_scenario("food", objective="gmv_floor"))
    make_policy("static", load_scenario("food"))  # the other objective is still there
    (tmp_path / "beauty.yaml").unlink()
    with pytest.raises(BaselineError, match="search_baselines.py --scenarios beauty"):
        make_policy("static", load_scenario("beauty"))


def test_evaluate_refuses_a_mismatched_file_and_skips_static_where_none_exists(
        tmp_path, monkeypatch, capsys):
    from tests.test_evaluate import cli

    def older(stem, data):
        data["env_version"] = ENV_VERSION + 1

    _copy_baselines(tmp_path / "baselines", monkeypatch, older)
    code, err = cli(capsys, "--policies", "static", "--scenarios", "3c", "--episodes", "2",
                    "--out", str(tmp_path / "out"))
    assert code == 2 and "static on 3c" in err and "env version" in err
    assert "Traceback" not in err
    # by default, a scenario without tuned files is played without static (with a note)
    custom = tmp_path / "custom.yaml"
    custom.write_text("base: food\npool_mean_roi: 1.9\n")
    monkeypatch.setattr(baseline_store, "BASELINE_DIR", tmp_path / "none")
    code, err = cli(capsys, "--scenarios", str(custom), "--episodes", "2", "--no-plots",
                    "--bootstrap-reps", "200", "--out", str(tmp_path / "custom_out"))
    assert code == 0, err
    assert "note: static left out" in err and "note: static_rule left out" in err


def test_a_search_writes_a_file_that_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(baseline_store, "BASELINE_DIR", tmp_path)
    entry = search_static("food", "profit", trials=6, seeds=4)
    assert entry["trials"] == 6 and entry["seeds"] == "0..3"
    write_entry("food", "profit", entry, "pytest", "# test\n")
    loaded = load_static(load_scenario("food"))
    assert loaded.target_over_breakeven == pytest.approx(entry["target_over_breakeven"])
    with pytest.raises(BaselineError, match="objective 'gmv_floor'"):
        load_static(load_scenario("food", objective="gmv_floor"))
    rule = search_static_rule("profit", scenarios=["food", "3c"], seeds=2)
    assert rule["target_over_breakeven"] in baseline_search.RULE_GRID
    assert set(rule["training_value_cny"]) == {"food", "3c"}


@pytest.mark.parametrize("objective", ["profit", "gmv_floor"])
def test_tuned_controllers_load_for_every_named_scenario(objective):
    from agents.policies.tuned import SPACES

    for name in list_scenarios():
        config = load_scenario(name, objective=objective)
        for policy in ("step_tuned", "pid_tuned"):
            tuned = make_policy(policy, config)
            assert set(tuned.params) == set(SPACES[policy])
            for key, (low, high, _) in SPACES[policy].items():
                assert low <= tuned.params[key] <= high, (name, policy, key)
            assert tuned.fixed == load_static(config)  # on the static mix


def test_a_controller_search_keeps_the_static_entry(tmp_path, monkeypatch):
    _copy_baselines(tmp_path, monkeypatch)
    before = load_static(load_scenario("food"))
    entry = baseline_search.search_controller("food", "profit", "pid_tuned", trials=4, seeds=4)
    write_entry("food", "profit", entry, "pytest", "# test\n", controller="pid_tuned")
    assert load_static(load_scenario("food")) == before
    loaded = make_policy("pid_tuned", load_scenario("food"))
    assert loaded.params == pytest.approx(entry["params"])
    with pytest.raises(ValueError, match="unknown parameter"):
        make_policy("pid_tuned", load_scenario("food")).__class__(
            load_scenario("food"), params={"gain": 1.0})


def test_a_file_without_controllers_names_the_command(tmp_path, monkeypatch):
    def bare(stem, data):
        data.pop("controllers", None)

    _copy_baselines(tmp_path, monkeypatch, bare)
    with pytest.raises(BaselineError, match="no step_tuned parameters"):
        make_policy("step_tuned", load_scenario("3c"))
    with pytest.raises(BaselineError, match="no playbook_tuned parameters"):
        make_policy("playbook_tuned", load_scenario("3c"))


@pytest.mark.parametrize("objective", ["profit", "gmv_floor"])
def test_the_tuned_playbook_loads_for_every_named_scenario(objective):
    from agents.policies.playbook import PlaybookNumbers
    from agents.policies.tuned import SPACES

    for name in list_scenarios():
        config = load_scenario(name, objective=objective)
        tuned = make_policy("playbook_tuned", config)
        stored = baseline_store.load_controller(config, "playbook_tuned")
        assert set(tuned.params) == set(SPACES["playbook_tuned"]) and tuned.params == stored
        for key, (low, high, _) in SPACES["playbook_tuned"].items():
            assert low <= tuned.params[key] <= high, (name, key)
        assert tuned.numbers == PlaybookNumbers.from_params(stored)  # the rules' numbers
    unseen = make_policy("playbook_tuned", load_scenario("unseen/noisy", objective=objective))
    assert unseen.numbers == make_policy(
        "playbook_tuned", load_scenario("3c", objective=objective)).numbers  # its base's


def test_the_playbook_search_writes_numbers_that_load(tmp_path, monkeypatch):
    """The controllers' generic search runs the playbook too (its ``fixed`` mix unused)."""
    _copy_baselines(tmp_path, monkeypatch)
    before = load_static(load_scenario("food"))
    entry = baseline_search.search_controller("food", "profit", "playbook_tuned", trials=4, seeds=4)
    write_entry("food", "profit", entry, "pytest", "# test\n", controller="playbook_tuned")
    assert load_static(load_scenario("food")) == before
    loaded = make_policy("playbook_tuned", load_scenario("food"))
    assert loaded.params == pytest.approx(entry["params"])
    assert make_policy("pid_tuned", load_scenario("food")).params  # the others are kept
