"""Cross-scenario training (a config naming several scenarios), the Lagrangian ROI floor and
the ``make results`` pipeline, on tiny budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.evaluation.intervals import paired_difference, stratified_difference
from agents.run_folder import write_json_atomic
from agents.training.callbacks import FloorMultiplierCallback
from agents.training.config import from_dict, load_train_config
from agents.training.validation import ScenarioValidators, validation_seeds
from envs.config import ConfigError, list_scenarios
from envs.simulator import ScenarioMix

ROOT = Path(__file__).resolve().parent.parent
MIX = ("3c", "food")
# 4 accounts (2 per scenario) x 42 days per rollout: an episode (84 days) ends every second
# rollout, so the floor multiplier moves twice in 672 steps.
TINY_MIX_SETTINGS = (
    "experiment=tinymix", "seed=3", "env.scenario=3c,food", "env.anchor=none",
    "env.paired_reward=false", "env.n_envs=4", "ppo.n_steps=42",
    "ppo.batch_size=84", "ppo.n_epochs=1", "policy.net_arch=16",
    "training.total_timesteps=672", "training.eval_freq=336", "training.checkpoint_freq=336",
    "training.eval_episodes=2", "training.progress_bar=false", "lagrangian.enabled=true",
    "lagrangian.target_violation_days=0", "lagrangian.lr=0.002",
    "lagrangian.max_multiplier=1.0",
)
TINY_RESULTS_SETTINGS = (
    "env.n_envs=4", "ppo.n_steps=32", "ppo.batch_size=64", "ppo.n_epochs=1",
    "policy.net_arch=8", "training.total_timesteps=128", "training.eval_freq=128",
    "training.checkpoint_freq=128", "training.eval_episodes=2",
)


def scalars(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


# ------------------------------------------------------------------------------ config
def test_a_list_of_scenarios_is_one_cross_scenario_config():
    config = load_train_config(sets=["env.scenario=3c,food", "env.overrides.randomize=0.2"])
    assert config.env.scenario == MIX and config.is_mix and config.run_label() == "mix"
    cfgs = config.scenario_configs()
    assert [c.name for c in cfgs] == list(MIX)
    assert all(c.randomize == 0.2 and c.action_space == "full" for c in cfgs)
    assert config.scenario_config() == cfgs[0]
    assert load_train_config(sets=["env.scenario=[3c, food]"]) == config.with_values(
        **{"env.overrides": {"action_space": "full"}})
    again = from_dict(config.to_dict())
    assert again == config and again.hash() == config.hash()
    single = load_train_config(scenario="beauty")
    assert single.env.scenario == "beauty" and not single.is_mix and single.run_label() == "beauty"


def test_the_all_scenarios_preset_covers_every_named_scenario():
    config = load_train_config("all_scenarios")
    assert sorted(config.env.scenario) == list_scenarios()
    assert config.scenario_configs()[0].randomize > 0
    assert load_train_config("all_scenarios", scenario="food").env.scenario == "food"


@pytest.mark.parametrize("sets,message", [
    (["env.scenario=3c,3c"], "twice"),
    (["env.scenario=[]"], "empty"),
    (["env.scenario=3c,atlantis"], "atlantis"),
    (["env.scenario=3c,food", "env.n_envs=1"], "env.n_envs"),
    (["lagrangian.enabled=true", "lagrangian.lr=0"], "lagrangian"),
    (["lagrangian.max_multiplier=-1"], "lagrangian.max_multiplier"),
    (["lagrangian.initial_multiplier=5", "lagrangian.max_multiplier=1"],
     "lagrangian.initial_multiplier"),
])
def test_bad_cross_scenario_and_lagrangian_settings_name_the_key(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(sets=sets)


def test_scenarios_trained_together_must_share_the_episode_length(tmp_path):
    short = tmp_path / "short.yaml"
    short.write_text("base: food\nname: short\nepisode_days: 56\n")
    with pytest.raises(ConfigError, match="episode_days"):
        load_train_config(sets=[f"env.scenario=3c,{short}"])


def test_configs_of_older_runs_load_with_the_lagrangian_off():
    data = load_train_config().to_dict()
    del data["lagrangian"]
    assert from_dict(data).lagrangian.enabled is False


def test_cross_scenario_validation_compares_each_scenario_on_its_value():
    """ScenarioValidators on a gmv_floor mix, a fixed rule in PPO's place (no training): each
    scenario's comparison is the paired one on that scenario's value (the numbers
    episode_value gives), the mean's interval is stratified by scenario, for every baseline."""
    from agents.evaluation.rollout import episode_value
    from agents.policies import make_policy
    from envs.config import load_scenario

    configs = [load_scenario(n, objective="gmv_floor", action_space="full") for n in MIX]
    validators = ScenarioValidators(configs, ("static", "playbook"), n_episodes=3)
    identity = SimpleNamespace(normalize_obs=lambda obs: obs)
    rule = make_policy("static_rule", configs[0])
    model = SimpleNamespace(predict=rule.predict)  # a deterministic stand-in for PPO
    result = validators.evaluate(model, identity, step=7)
    seeds = validation_seeds(3)
    ours = {c.name: episode_value(c, model, seeds) for c in configs}  # on each scenario
    assert result.objective == "gmv_floor" and result.baseline == "static"
    assert list(result.per_scenario) == list(MIX) and result.n_seeds == 6
    for name in ("static", "playbook"):
        diffs = []
        for config in configs:
            theirs = episode_value(config, make_policy(name, config), seeds)
            part = result.per_scenario[config.name].comparisons[name]
            assert part.reference["value"] == pytest.approx(theirs.mean())
            assert list(part.interval("value")) == pytest.approx(
                list(paired_difference(ours[config.name], theirs)))
            diffs.append(ours[config.name] - theirs)
        whole = result.comparisons[name]
        assert list(whole.interval("value")) == pytest.approx(list(stratified_difference(diffs)))
        assert whole.reference["value"] == pytest.approx(np.mean(
            [result.per_scenario[n].comparisons[name].reference["value"] for n in MIX]))
    assert "objective gmv_floor" in result.sentence() and "static (" in result.sentence()
    assert result.to_dict()["per_scenario"]["food"]["baseline"] == "static"


def test_stratified_difference_combines_the_strata():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 3, 40), rng.normal(-5, 1, 40)
    assert stratified_difference([a]) == pytest.approx(paired_difference(a, np.zeros(40)))
    mean, low, high = stratified_difference([a, b])
    assert mean == pytest.approx((a.mean() + b.mean()) / 2)
    se = np.sqrt(a.var(ddof=1) / 40 + b.var(ddof=1) / 40) / 2
    assert (high - low) / 2 == pytest.approx(se * 1.99, rel=0.01)  # t(0.975, 78) = 1.99


# ------------------------------------------------------------------------------ Lagrangian
def _floor_callback(tmp_path: Path, multiplier: float) -> FloorMultiplierCallback:
    write_json_atomic(tmp_path / "run.json", {"status": "running"})
    callback = FloorMultiplierCallback(target_violation_days=10.0, lr=0.01, max_multiplier=1.0,
                                       multiplier=multiplier, run_dir=tmp_path)
    env = SimpleNamespace(unwrapped=SimpleNamespace(sim=SimpleNamespace(floor_multiplier=0.0)))
    logger = Logger(str(tmp_path / "tb"), [TensorBoardOutputFormat(str(tmp_path / "tb"))])
    callback.model = SimpleNamespace(num_timesteps=100, get_env=lambda: env, logger=logger)
    return callback


def _rollout_with_violation_days(callback: FloorMultiplierCallback, days: list[float]) -> float:
    callback.locals = {"infos": [{"episode_metrics": {"roi_floor_violation_days": d}}
                                 for d in days] + [{}]}
    callback.on_step()
    callback.on_rollout_end()
    return callback.training_env.unwrapped.sim.floor_multiplier


def test_dual_ascent_moves_the_multiplier_toward_the_target(tmp_path):
    callback = _floor_callback(tmp_path, multiplier=0.5)
    callback.on_training_start({}, {})
    assert callback.training_env.unwrapped.sim.floor_multiplier == 0.5
    assert _rollout_with_violation_days(callback, [30.0, 50.0]) == pytest.approx(0.8)  # +0.01x30
    assert _rollout_with_violation_days(callback, [80.0]) == 1.0  # clipped at the maximum
    assert _rollout_with_violation_days(callback, [0.0]) == pytest.approx(0.9)  # below target
    for _ in range(100):
        last = _rollout_with_violation_days(callback, [0.0])
    assert last == 0.0  # never negative
    assert json.loads((tmp_path / "run.json").read_text())["floor_multiplier"] == 0.0


# ------------------------------------------------------------------------------ a mix run
@pytest.fixture(scope="module")
def mix_run(tmp_path_factory) -> Path:
    from agents.training.train import train

    runs = tmp_path_factory.mktemp("mixruns")
    return train(load_train_config(sets=TINY_MIX_SETTINGS), runs_dir=runs, run_name="mix",
                 command=["pytest", "mix_run"])


def test_the_training_env_splits_its_batch_across_the_scenarios():
    from agents.training.factory import make_training_env

    config = load_train_config(sets=TINY_MIX_SETTINGS)
    env = make_training_env(config, config.scenario_configs())
    sim = env.unwrapped.sim
    assert isinstance(sim, ScenarioMix)
    assert [(s.cfg.name, s.n) for s in sim.sims] == [("3c", 2), ("food", 2)]


@pytest.mark.slow
def test_a_mix_run_validates_on_each_scenario_and_logs_the_mean(mix_run):
    from agents.training.summary import describe_run

    info = json.loads((mix_run / "run.json").read_text())
    assert info["status"] == "finished" and info["scenario"] == "mix"
    assert info["scenarios"] == list(MIX) and len(info["scenario_configs"]) == 2
    final = json.loads((mix_run / "final" / "eval.json").read_text())
    parts = final["per_scenario"]
    assert list(parts) == list(MIX) and final["n_seeds"] == 4
    assert final["baseline"] == "static" and final["objective"] == "profit"
    for baseline in ("static", "playbook"):
        for key in ("value_diff", "profit_diff"):
            assert final["comparisons"][baseline][key] == pytest.approx(np.mean(
                [p["comparisons"][baseline][key] for p in parts.values()]))
    assert final["value_diff"] == final["comparisons"]["static"]["value_diff"]
    assert final["ppo"]["profit"] == pytest.approx(np.mean([p["ppo"]["profit"]
                                                            for p in parts.values()]))
    assert parts["3c"]["reference"]["profit"] != parts["food"]["reference"]["profit"]
    acc = scalars(mix_run)
    tags = set(acc.Tags()["scalars"])
    for name in MIX:
        assert {f"eval_{name}/ppo/profit", f"eval_{name}/playbook/profit",
                f"eval_{name}/ppo_vs_playbook/profit_diff_ci_low", f"eval_{name}/static/value",
                f"eval_{name}/ppo_vs_static/value_diff_ci_low"} <= tags
    steps = [e.step for e in acc.Scalars("eval/ppo/profit")]
    assert steps == [e.step for e in acc.Scalars("eval_food/ppo/profit")] == [336, 672]
    mean = [e.value for e in acc.Scalars("eval/ppo/profit")]
    each = [[e.value for e in acc.Scalars(f"eval_{n}/ppo/profit")] for n in MIX]
    np.testing.assert_allclose(mean, np.mean(each, axis=0), rtol=1e-5)
    assert "food" in describe_run(mix_run) and "3c" in describe_run(mix_run)


@pytest.mark.slow
def test_the_floor_multiplier_rises_with_violations_and_enters_the_reward(mix_run):
    acc = scalars(mix_run)
    multipliers = [e.value for e in acc.Scalars("train/floor_multiplier")]
    assert len(multipliers) == 2 and 0 < multipliers[0] < multipliers[1] <= 1.0
    days = acc.Scalars("train/floor_violation_days")[0].value
    assert multipliers[0] == pytest.approx(0.002 * days, rel=1e-5)  # target 0, from 0
    info = json.loads((mix_run / "run.json").read_text())
    assert info["floor_multiplier"] == pytest.approx(multipliers[-1], rel=1e-5)
    # the second training episode ran with a positive multiplier: the term was charged
    lagrangian = acc.Scalars("market/reward_terms/floor_lagrangian")
    assert [e.step for e in lagrangian] == [672] and lagrangian[0].value < 0


@pytest.mark.slow
def test_a_mix_run_resumes_with_its_scenarios_and_multiplier(mix_run, tmp_path):
    import shutil

    from agents.training.train import resume

    copy = shutil.copytree(mix_run, tmp_path / "mix")
    before = json.loads((copy / "run.json").read_text())["floor_multiplier"]
    resume(copy, total_timesteps=1008, command=["pytest", "resume"])  # one more episode
    info = json.loads((copy / "run.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] == 1008
    assert info["scenarios"] == list(MIX)
    multipliers = scalars(copy).Scalars("train/floor_multiplier")
    assert [e.step for e in multipliers] == [336, 672, 1008]
    assert multipliers[-1].value > before > 0  # continued from the recorded multiplier
    assert multipliers[-1].value == pytest.approx(info["floor_multiplier"], rel=1e-5)


def test_validation_judges_the_scenarios_without_randomisation():
    from agents.training.factory import validation_scenarios

    config = load_train_config("all_scenarios")
    trained = config.scenario_configs()
    validated = validation_scenarios(trained)
    assert all(c.randomize == 0.2 for c in trained)
    assert [c.replace(randomize=0.2) for c in validated] == trained
    assert all(c.randomize == 0.0 for c in validated)


@pytest.mark.slow
def test_a_mix_policy_is_judged_on_the_named_scenarios(mix_run):
    from agents.evaluation.evaluate import PolicySource
    from agents.evaluation.results import CHECKPOINT
    from envs.actions import action_dim
    from envs.config import load_scenario

    source = PolicySource("mix_s3", run_dir=mix_run, checkpoint=CHECKPOINT)
    food = load_scenario("food")
    policy, config = source.build(food)
    assert config.name == "food" and config.randomize == 0.0 and config.action_space == "full"
    assert policy.predict(np.zeros((2, len(policy.feature_names))))[0].shape == (
        2, action_dim(config))  # the full space, whole-site's weight in
    assert action_dim(config) == 7


def test_single_scenario_runs_are_unchanged(tiny_run):
    info = json.loads((tiny_run / "run.json").read_text())
    assert "scenarios" not in info and "floor_multiplier" not in info
    assert "per_scenario" not in json.loads((tiny_run / "final" / "eval.json").read_text())
    tags = set(scalars(tiny_run).Tags()["scalars"])
    assert "eval/ppo/profit" in tags
    assert not any(t.startswith("eval_") or t == "train/floor_multiplier" for t in tags)


# ------------------------------------------------------------------------------ make results
@pytest.mark.slow
def test_results_pipeline_trains_evaluates_and_reports(tmp_path):
    from agents.evaluation.results import plan_runs, train_runs

    out = tmp_path / "docs" / "results.md"
    runs = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "scripts" / "results.py"), "--scenarios", *MIX,
           "--seeds", "0", "--workers", "1", "--episodes", "3", "--bootstrap-reps", "100",
           "--runs-dir", str(runs), "--out", str(out), "--no-unseen"]
    for item in TINY_RESULTS_SETTINGS:
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    for needle in ("| 3c |", "| food |", "PPO, one across all scenarios", "ppo_s0", "mix_s0",
                   "oracle", "playbook", "static", "img/learning_curves.png",
                   "objective `profit`", "objective `gmv_floor`", "### food, gmv_floor"):
        assert needle in text
    assert "Unseen markets" not in text  # --no-unseen
    png = out.parent / "img" / "learning_curves.png"
    assert png.is_file() and png.stat().st_size < 200_000
    record = json.loads((runs / "results.json").read_text())
    assert sorted(record["families"]) == sorted(f"{s}/{o}" for s in MIX
                                                for o in ("profit", "gmv_floor"))
    assert {(p["family"], p["objective"]) for p in record["plans"]} == {
        (f, o) for f in ("ppo", "mix") for o in ("profit", "gmv_floor")}
    assert len(record["plans"]) == 6
    fam = record["families"]["food/gmv_floor"]["ppo"]
    assert fam["n_runs"] == 1 and fam["value_diff_vs_static"][1] <= fam["value_diff_vs_static"][0]
    # PPO's value is the objective's: the gmv_floor return, not the profit
    assert fam["value"][0] != fam["profit"][0]
    # finished runs are reused: nothing is trained again
    plans = plan_runs(list(MIX), (0,), sets=TINY_RESULTS_SETTINGS)
    logged: list[str] = []
    again = train_runs(plans, runs, workers=2, log=logged.append)
    assert all(r["status"].startswith("skipped") for r in again) and len(again) == 6
    assert logged == [f"6 run(s) already finished in {runs}: skipped"]


def test_unseen_markets_are_played_by_their_base_scenarios_runs(tmp_path):
    """Every unseen market whose base is planned becomes a case on seeds from 30000, played
    by its base's runs of the same objective; no market without a planned base."""
    from agents.evaluation.results import Case, plan_runs, runs_by_case
    from envs.config import list_unseen
    from envs.seeds import UNSEEN_SEED

    plans = plan_runs(list(MIX), (0, 1), sets=TINY_RESULTS_SETTINGS)
    cases = runs_by_case(plans, tmp_path)
    for market in list_unseen():
        for objective in ("profit", "gmv_floor"):
            case = Case(market.preset, objective, UNSEEN_SEED)
            if market.base in MIX:
                assert cases[case] == cases[Case(market.base, objective)]
                assert {label for label, _ in cases[case]} == {"ppo_s0", "ppo_s1", "mix_s0",
                                                                "mix_s1"}
                assert all(f"{market.base}" in path.name or "mix" in path.name
                           for _, path in cases[case])
            else:
                assert case not in cases
    assert not any(c.scenario.startswith("unseen/")
                   for c in runs_by_case(plans, tmp_path, unseen=False))


def test_training_jobs_cross_process_boundaries():
    """``--workers 2`` hands each job to a spawned process: its arguments must pickle (a
    spawned pool costs seconds of imports, so the pool itself runs in ``make results``)."""
    import pickle

    from agents.evaluation.results import plan_runs
    from agents.training.config import from_dict

    for plan in plan_runs(list(MIX), (0, 1), sets=TINY_RESULTS_SETTINGS):
        name, data = pickle.loads(pickle.dumps((plan.name, plan.config.to_dict())))
        assert name == plan.name and from_dict(data) == plan.config


@pytest.mark.parametrize("args,message", [
    (["--workers", "0"], "--workers"),
    (["--scenarios", "atlantis"], "atlantis"),
    (["--seeds", "1", "1"], "repeats"),
    (["--set", "ppo.n_stepz=3"], "ppo.n_stepz"),
])
def test_results_cli_rejects_bad_input_with_exit_code_2(args, message, capsys, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from results import main

    assert main([*args, "--runs-dir", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r.md").exists()
