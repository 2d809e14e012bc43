"""The training pipeline: config validation, the run folder, TensorBoard tags, trained-policy
loading, determinism, kill-and-resume, the command line and RL Zoo."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.evaluation.intervals import paired_difference
from agents.evaluation.rollout import episode_value, rollout
from agents.policies.ppo import load_trained_policy
from agents.run_folder import RunError, checkpoint_steps, model_dir, restore_model_dirs
from agents.training.config import from_dict, load_train_config
from agents.training.validation import VERDICT_WORDS, validation_seeds
from envs.config import ConfigError
from envs.metrics import EPISODE_METRICS

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]
TINY_N_ENVS = 4
BASELINES = ("static", "playbook")  # configs/ppo/default.yaml: the first is the verdict's


def events(run_dir: Path) -> EventAccumulator:
    """A run's TensorBoard events (scalars, text and layout)."""
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def steps(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def obs_count(folder: Path) -> float:
    with open(folder / "vecnormalize.pkl", "rb") as f:
        return float(pickle.load(f).obs_rms.count)


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize("sets,key", [
    (["ppo.n_stepz=64"], "ppo.n_stepz"),
    (["ppo.n_steps=12.5"], "ppo.n_steps"),
    (["ppo.gamma=1.5"], "ppo.gamma"),
    (["ppo.learning_rate=fast"], "ppo.learning_rate"),
    (["policy.net_arch=64,wide"], "policy.net_arch"),
    (["policy.activation=__import__('os')"], "policy.activation"),
    (["training.progress_bar=maybe"], "training.progress_bar"),
    (["training.eval_episodes=1"], "training.eval_episodes"),
    (["ppo.batch_size=100000"], "ppo.batch_size"),
    (["env.overrides.margn=0.3"], "margn"),
    (["env.overrides.margin=high"], "margin"),
    (["env.scenario=atlantis"], "atlantis"),
    (["env.scenario=unseen/noisy"], "unseen market"),
    (["env.scenario=3c,unseen/richer_pool"], "unseen market"),
    (["env.clip_obs=0"], "env.clip_obs"),
    (["env.clip_obs=-5"], "env.clip_obs"),
    (["env.n_envs=0"], "env.n_envs"),
    (["experiment=a/b"], "experiment"),
    (["ppo=3"], "ppo"),
    (["nonsense"], "key=value"),
    (["training.baselines=playbook,atlantis"], "training.baselines: 'atlantis'"),
    (["training.baselines=static,static"], "training.baselines"),
    (["training.baselines=[]"], "training.baselines"),
    (["training.baseline=playbook"], "renamed training.baselines"),
    # non-finite numbers used to be accepted and crash mid-training
    (["ppo.learning_rate=inf"], "ppo.learning_rate: must be a finite number"),
    (["ppo.ent_coef=nan"], "ppo.ent_coef: must be a finite number"),
    (["ppo.vf_coef=-inf"], "ppo.vf_coef: must be a finite number"),
    (["policy.log_std_init=inf"], "policy.log_std_init: must be a finite number"),
    (["ppo.target_kl=inf"], "ppo.target_kl: must be a finite number"),
    (["lagrangian.lr=inf"], "lagrangian.lr: must be a finite number"),
    (["env.overrides.margin=inf"], "margin: must be a finite number"),
])
def test_bad_settings_raise_naming_the_key(sets, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")):
        load_train_config(sets=sets)


def test_bad_yaml_files_raise_naming_the_key(tmp_path):
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("ppo:\n  n_steps: 64\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="ppo.learning_rat"):
        load_train_config(unknown)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("policy:\n  net_arch: '[64, 64]'\n")  # a string, never evaluated
    with pytest.raises(ConfigError, match="policy.net_arch"):
        load_train_config(wrong)
    with pytest.raises(ConfigError, match="unknown PPO config"):
        load_train_config(tmp_path / "missing.yaml")


def test_a_scenario_trains_with_the_preset_its_file_names(tmp_path):
    """The PPO preset is chosen by the scenario file's ``training_preset:`` key, not by a PPO
    preset whose file name happens to match the scenario."""
    from agents.training.config import preset_for_scenario

    assert preset_for_scenario("promo_heavy") == "promo_heavy"  # configs/scenarios/ names it
    assert load_train_config(scenario="promo_heavy").experiment == "promo_heavy"
    assert preset_for_scenario("3c") == "default"
    assert load_train_config(scenario="3c").experiment == "default"
    named = tmp_path / "promo_heavy.yaml"  # the name matches a PPO preset; no key: default
    named.write_text("base: promo_heavy\n")
    assert preset_for_scenario(str(named)) == "default"
    assert load_train_config(scenario=str(named)).experiment == "default"
    keyed = tmp_path / "food_long.yaml"  # no PPO preset of that name; the key picks one
    keyed.write_text("base: food\ntraining_preset: promo_heavy\n")
    assert preset_for_scenario(str(keyed)) == "promo_heavy"
    config = load_train_config(scenario=str(keyed))
    assert config.experiment == "promo_heavy" and config.training.total_timesteps == 1_000_000
    assert config.scenario_config().name == "food_long"
    keyed.write_text("base: food\ntraining_preset: atlantis\n")
    with pytest.raises(ConfigError, match="training_preset: 'atlantis'"):
        load_train_config(scenario=str(keyed))


def test_settings_are_typed_and_layered(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("experiment: mine\nppo:\n  n_steps: 64\nenv:\n  overrides: {randomize: "
                      "0.2}\n")
    config = load_train_config(preset, scenario="beauty",
                               values={"training.total_timesteps": 1000},
                               sets=["ppo.learning_rate=3e-4", "policy.net_arch=[32, 16]",
                                     "ppo.target_kl=null", "env.overrides.margin=0.4"])
    assert config.experiment == "mine" and config.ppo.n_steps == 64
    assert config.ppo.learning_rate == pytest.approx(3e-4)
    assert config.policy.net_arch == (32, 16) and config.ppo.target_kl is None
    assert config.training.total_timesteps == 1000
    assert config.ppo.gamma == load_train_config().ppo.gamma  # the rest from default.yaml
    scenario = config.scenario_config()
    assert (scenario.name, scenario.randomize, scenario.margin) == ("beauty", 0.2, 0.4)
    again = load_train_config(_dump(tmp_path / "again.yaml", config.to_dict()))
    assert again == config and again.hash() == config.hash()


def test_old_configs_with_one_baseline_still_load(tmp_path):
    """Run folders and presets written before ``training.baselines`` name one
    ``training.baseline``: it is validated after static (documented migration)."""
    data = load_train_config().to_dict()
    assert data["training"]["baselines"] == list(BASELINES)
    del data["training"]["baselines"]
    data["training"]["baseline"] = "playbook"
    assert from_dict(data).training.baselines == BASELINES
    data["training"]["baseline"] = "static"
    assert from_dict(data).training.baselines == ("static",)
    preset = _dump(tmp_path / "old.yaml", {"training": {"baseline": "constant"}})
    assert load_train_config(preset).training.baselines == ("static", "constant")
    both = _dump(tmp_path / "both.yaml", {"training": {"baseline": "constant",
                                                       "baselines": ["static"]}})
    with pytest.raises(ConfigError, match="both given"):
        load_train_config(both)


def test_a_scenario_without_tuned_static_settings_stops_before_training(tmp_path, capsys):
    from agents.training.factory import check_baselines
    from agents.training.train import train

    own = tmp_path / "own.yaml"
    own.write_text("base: food\nname: own\n")
    config = load_train_config(scenario=str(own))
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="static cannot play scenario 'own'.*static_rule"):
        train(config, runs_dir=runs)
    assert not runs.exists()
    check_baselines(config.with_values(**{"training.baselines": ["static_rule", "playbook"]}))
    code, err = _train_main(["--scenario", str(own), "--runs-dir", str(runs)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "--set training.baselines=static_rule,playbook" in err and not runs.exists()


def _dump(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------------ the run
def test_run_folder_follows_the_contracts(tiny_run):
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["status"] == "finished" and info["seed"] == 7 and info["scenario"] == "3c"
    assert info["num_timesteps"] == 512 and info["command"] == "pytest tiny_run"
    assert {"torch", "stable_baselines3", "numpy", "python"} <= set(info["package_versions"])
    assert set(info["code"]) == {"git_commit", "git_dirty"}
    machine = info["machine"]  # what decides whether the figures repeat elsewhere
    assert machine["cpu"] and machine["engine"] in ("numba", "numpy")
    assert machine["torch_cpu_capability"] and isinstance(machine["variables"], dict)
    assert machine["engine"] == "numpy" or machine["numba_cpu"]
    config = load_train_config(tiny_run / "config.yaml")
    assert config.hash() == info["config_hash"]
    assert checkpoint_steps(tiny_run) == [256, 512]
    for name in ("best", "final", "checkpoints/step_256", "checkpoints/step_512"):
        assert (tiny_run / name / "model.zip").is_file()
        assert (tiny_run / name / "vecnormalize.pkl").is_file()
    final = info["final_eval"]
    assert final["step"] == 512 and final["objective"] == "profit"
    assert final["baseline"] == "static" and final["baselines"] == list(BASELINES)
    assert list(final["comparisons"]) == list(BASELINES)
    for key in ("reference", "value_diff", "value_diff_ci_low", "profit_diff",
                "profit_diff_ci_high", "verdict"):  # the top level: the verdict's baseline
        assert final[key] == final["comparisons"]["static"][key], key


def test_each_model_folder_keeps_its_own_statistics(tiny_run):
    # VecNormalize counts every observation it saw: one reset (n_envs) plus n_envs per step
    for step in (256, 512):
        count = obs_count(tiny_run / "checkpoints" / f"step_{step}")
        assert count == pytest.approx(step + TINY_N_ENVS, abs=1e-3)
    best = json.loads((tiny_run / "best" / "eval.json").read_text())
    assert obs_count(tiny_run / "best") == pytest.approx(best["step"] + TINY_N_ENVS, abs=1e-3)
    assert obs_count(tiny_run / "final") == pytest.approx(512 + TINY_N_ENVS, abs=1e-3)


def last(acc: EventAccumulator, tag: str) -> float:
    return acc.Scalars(tag)[-1].value


def test_events_hold_market_and_eval_tags(tiny_run):
    acc = events(tiny_run)
    tags = set(acc.Tags()["scalars"])
    for metric in (*EPISODE_METRICS, "return", "value"):
        assert metric in ("return", "value") or f"market/{metric}" in tags
        for who in ("ppo", *BASELINES):
            assert steps(acc, f"eval/{who}/{metric}") == [256, 512], (who, metric)
    assert {"market/reward_terms/spend", "market/reward_terms/gmv_value"} <= tags
    assert {"rollout/ep_rew_mean", "train/value_loss"} <= tags
    final = json.loads((tiny_run / "final" / "eval.json").read_text())
    for name in BASELINES:  # paired differences and intervals against every baseline
        comparison = final["comparisons"][name]
        for quantity in ("value", "profit"):
            group = f"eval/ppo_vs_{name}/{quantity}_diff"
            diff, low, high = (last(acc, group + s) for s in ("", "_ci_low", "_ci_high"))
            assert low <= diff <= high
            assert diff == pytest.approx(comparison[f"{quantity}_diff"], rel=1e-5)
            assert diff == pytest.approx(last(acc, f"eval/ppo/{quantity}")
                                         - last(acc, f"eval/{name}/{quantity}"), rel=1e-4,
                                         abs=1.0)
    # a profit run's value is its profit and its final state's value (on by default)
    for who in ("ppo", *BASELINES):
        value, profit, end = (np.array([e.value for e in acc.Scalars(f"eval/{who}/{q}")])
                              for q in ("value", "profit", "terminal_value"))
        np.testing.assert_allclose(value, profit + end, rtol=1e-5, atol=1.0)
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
    assert "custom_scalars__config__" in acc.Tags()["tensors"]
    text = verdicts(acc)[-1]
    assert text.startswith(f"step 512: PPO is {VERDICT_WORDS[final['verdict']]} static (")
    assert "objective profit" in text and "playbook" in text


def verdicts(acc: EventAccumulator) -> list[str]:
    """The ``eval/verdict`` texts in step order."""
    return [e.tensor_proto.string_val[0].decode()
            for e in acc.Tensors("eval/verdict/text_summary")]


def test_the_layout_charts_every_baseline_on_value_and_profit():
    from agents.training.tensorboard import analyst_layout

    layout = analyst_layout(BASELINES, ("3c", "food"), objective="gmv_floor")
    first = next(iter(layout))
    assert "static" in first and "gmv_floor" in first
    charts = layout[first]
    tags = [t for chart in charts.values() for t in chart[1]]
    for name in BASELINES:
        assert f"eval/ppo_vs_{name}/value_diff_ci_low" in tags
        assert f"eval/ppo_vs_{name}/profit_diff" in tags
        assert f"^eval/{name}/value$" in tags and f"^eval/{name}/profit$" in tags
    per = [t for chart in list(layout.values())[-1].values() for t in chart[1]]
    assert "eval_food/ppo_vs_static/value_diff" in per and "^eval_3c/playbook/value$" in per


# ------------------------------------------------------------------------------ gmv_floor
@pytest.fixture(scope="module")
def gmv_run(tmp_path_factory) -> Path:
    """A tiny run on the gmv_floor objective: one validation (the final one) on 4 seeds."""
    from conftest import TINY_RUN_SETTINGS

    from agents.training.train import train

    config = load_train_config(sets=(*TINY_RUN_SETTINGS, "env.overrides.objective=gmv_floor",
                                     "training.total_timesteps=256"))
    return train(config, runs_dir=tmp_path_factory.mktemp("gmv"), run_name="gmv",
                 command=["pytest", "gmv_run"])


def test_a_gmv_floor_run_is_validated_on_its_value_against_static(gmv_run):
    from agents.policies import make_policy
    from agents.training.summary import describe_run

    final = json.loads((gmv_run / "run.json").read_text())["final_eval"]
    assert final["objective"] == "gmv_floor" and final["baseline"] == "static"
    policy = load_trained_policy(gmv_run, "final")
    config = policy.scenario
    assert config.objective == "gmv_floor" and final["step"] == 256
    seeds = validation_seeds(final["n_seeds"])
    ppo = episode_value(config, policy, seeds)
    assert final["ppo"]["value"] == pytest.approx(ppo.mean())
    for name in BASELINES:
        theirs = episode_value(config, make_policy(name, config), seeds)
        comparison = final["comparisons"][name]
        assert comparison["reference"]["value"] == pytest.approx(theirs.mean())
        assert [comparison[f"value_diff{s}"] for s in ("", "_ci_low", "_ci_high")] == \
            pytest.approx(list(paired_difference(ppo, theirs)))
        # profit is kept for both sides (operators care), paired on the same seeds
        assert comparison["profit_diff"] == pytest.approx(
            final["ppo"]["profit"] - comparison["reference"]["profit"])
    assert final["value_diff"] == final["comparisons"]["static"]["value_diff"]
    assert final["ppo"]["value"] != pytest.approx(final["ppo"]["profit"])  # not profit here
    acc = events(gmv_run)
    assert last(acc, "eval/static/value") == pytest.approx(
        final["comparisons"]["static"]["reference"]["value"], rel=1e-5)
    assert last(acc, "eval/ppo_vs_static/value_diff_ci_high") == pytest.approx(
        final["value_diff_ci_high"], rel=1e-5)
    (text,) = verdicts(acc)
    words = VERDICT_WORDS[final["verdict"]]
    assert text.startswith(f"step 256: PPO is {words} static (")
    assert "objective gmv_floor)" in text and "playbook" in text and "profit: PPO" in text
    summary = describe_run(gmv_run)
    assert f"PPO final - static: gmv_floor value {final['value_diff']:+,.0f}" in summary
    assert f"-> {words} static" in summary


def test_paired_difference_interval():
    a, b = np.array([3.0, 5.0, 4.0, 6.0]), np.array([1.0, 2.0, 2.0, 3.0])
    mean, low, high = paired_difference(a, b)
    assert mean == pytest.approx(2.5)
    assert low < mean < high and high - mean == pytest.approx(mean - low)


def test_trained_policy_answers_on_raw_observations(tiny_run):
    policy = load_trained_policy(tiny_run, "final")
    assert policy.num_timesteps == 512 and policy.scenario.name == "3c"
    final = json.loads((tiny_run / "final" / "eval.json").read_text())
    result = rollout(policy, policy.scenario, validation_seeds(final["n_seeds"]))
    assert float(np.mean(result.metrics["profit"])) == pytest.approx(final["ppo"]["profit"])
    raw = np.random.default_rng(0).normal(size=(3, len(policy.feature_names))) * 5
    actions, _ = policy.predict(raw)
    expected, _ = policy.model.predict(policy.normalize(raw), deterministic=True)
    np.testing.assert_array_equal(actions, expected)
    assert np.all(np.abs(actions) <= 1)
    manual = np.clip((raw - policy.obs_mean) / np.sqrt(policy.obs_var + policy.epsilon),
                     -policy.clip_obs, policy.clip_obs)
    np.testing.assert_allclose(policy.normalize(raw), manual)
    for checkpoint in ("best", "latest", "step_256"):
        shape = load_trained_policy(tiny_run, checkpoint).predict(raw[0])[0].shape
        assert shape == (7,)  # the default config: the full action space, whole-site in
    with pytest.raises(RunError, match="step_999"):
        load_trained_policy(tiny_run, "step_999")


def test_an_interrupted_swap_is_repaired(tmp_path):
    run = tmp_path / "run"
    (run / ".best.old").mkdir(parents=True)
    (run / ".best.old" / "model.zip").write_text("x")
    (run / ".final.tmp-123").mkdir()
    restore_model_dirs(run)
    assert (run / "best" / "model.zip").is_file() and not (run / ".final.tmp-123").exists()


def test_same_seed_same_first_rollout():
    from agents.training.factory import make_model, make_training_env

    config = load_train_config(sets=["env.n_envs=4", "ppo.n_steps=16", "ppo.batch_size=32",
                                     "ppo.n_epochs=1", "policy.net_arch=8"])

    def first_rollout(cfg):
        model = make_model(cfg, make_training_env(cfg, cfg.scenario_config()))
        model.learn(total_timesteps=cfg.rollout_steps)
        buf = model.rollout_buffer
        return buf.observations.copy(), buf.actions.copy(), buf.rewards.copy()

    one, two = first_rollout(config), first_rollout(config)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    other = first_rollout(config.with_values(seed=1))
    assert not np.array_equal(one[1], other[1])


# ------------------------------------------------------------------------------ command line
def _train_main(argv, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train as train_script
    finally:
        sys.path.pop(0)
    code = train_script.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--set", "ppo.n_stepz=3"], "ppo.n_stepz"),
    (["--scenario", "atlantis"], "unknown scenario 'atlantis'"),
    (["--config", "nope"], "unknown PPO config 'nope'"),
    (["--timesteps", "-5"], "training.total_timesteps"),
    (["--n-envs", "0"], "env.n_envs"),
])
def test_cli_bad_input_exits_2(argv, message, capsys, tmp_path):
    code, err = _train_main([*argv, "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_config_files_are_one_short_line_and_exit_2(capsys, tmp_path):
    """A binary --config raised UnicodeDecodeError, an empty one trained with the defaults,
    an alias bomb printed 17 MB: each is now one named line, exit code 2, nothing written."""
    from conftest import alias_bomb

    runs = tmp_path / "runs"
    files = {"binary.yaml": bytes(range(256)), "empty.yaml": b"",
             "twice.yaml": b"ppo:\n  n_steps: 64\nppo:\n  n_steps: 32\n",
             "bomb.yaml": alias_bomb(7).encode(), "small_bomb.yaml": alias_bomb(5).encode(),
             "inf.yaml": b"ppo:\n  learning_rate: .inf\n"}
    expected = {"binary.yaml": "not a YAML text file", "empty.yaml": "empty (no keys)",
                "twice.yaml": "key 'ppo' is given twice (lines 1 and 3)",
                "bomb.yaml": "policy.net_arch: aliases (*name) expand it",
                "small_bomb.yaml": "policy.net_arch: expected a whole number",
                "inf.yaml": "ppo.learning_rate: must be a finite number"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        code, err = _train_main(["--config", str(tmp_path / name), "--runs-dir", str(runs)],
                                capsys)
        assert code == 2 and expected[name] in err and "Traceback" not in err, (name, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert len(err) < 500, (name, len(err))
    assert not runs.exists()


def test_cli_existing_run_or_non_run_is_an_error(capsys, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("keep me")
    code, err = _train_main(["--runs-dir", str(tmp_path), "--run-name", "taken"], capsys)
    assert code == 2 and "already exists" in err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    code, err = _train_main(["--runs-dir", str(tmp_path), "--resume", "taken"], capsys)
    assert code == 2 and "is not a run" in err
    code, err = _train_main(["--resume", str(tmp_path / "absent")], capsys)
    assert code == 2 and "no run folder" in err
    assert (taken / "notes.txt").read_text() == "keep me"


def test_cli_exit_code_is_2_in_a_real_process(tmp_path):
    proc = subprocess.run([*TRAIN, "--runs-dir", str(tmp_path), "--set", "policy.activation=x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "policy.activation" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ resume
@pytest.mark.slow
def test_sigkill_then_resume_continues_one_stream(tmp_path):
    settings = ["--set", "env.n_envs=4", "--set", "ppo.n_steps=32", "--set", "ppo.batch_size=64",
                "--set", "ppo.n_epochs=1", "--set", "policy.net_arch=8",
                "--set", "training.checkpoint_freq=256", "--set", "training.eval_freq=512",
                "--set", "training.eval_episodes=2", "--set", "training.progress_bar=false"]
    rollout_steps = 4 * 32
    proc = subprocess.Popen([*TRAIN, "--runs-dir", str(tmp_path), "--run-name", "r",
                             "--timesteps", "1000000", *settings],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "r"
    deadline = time.monotonic() + 120
    while len(checkpoint_steps(run)) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no second checkpoint within 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    last = checkpoint_steps(run)[-1]
    last_dir = model_dir(run, f"step_{last}")
    stats_at_kill = obs_count(last_dir)
    killed_stream = steps(events(run), "time/fps")
    assert killed_stream[-1] >= last

    target = last + 3 * rollout_steps
    done = subprocess.run([*TRAIN, "--runs-dir", str(tmp_path), "--resume", "r",
                           "--timesteps", str(target)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] == target
    assert info["sessions"][-1]["start_step"] == last
    assert load_trained_policy(run, "final").num_timesteps == target
    # the resumed normaliser is the checkpoint's: it went on counting from there
    assert obs_count(run / "final") == pytest.approx(stats_at_kill + (target - last)
                                                     + TINY_N_ENVS, abs=1e-3)
    assert obs_count(last_dir) == stats_at_kill
    # one stream: every rollout's point exactly once, old points up to the checkpoint kept
    acc = events(run)
    assert steps(acc, "time/fps") == list(range(rollout_steps, target + 1, rollout_steps))
    for tag in ("market/profit", "eval/ppo/profit", "train/value_loss"):
        s = steps(acc, tag)
        assert s == sorted(set(s)), tag
    assert steps(acc, "eval/ppo/profit")[-1] == target
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")


# ------------------------------------------------------------------------------ RL Zoo
@pytest.mark.slow
def test_rl_zoo_trains_the_env(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "QianchuanBidding-v1",
         "--gym-packages", "envs", "-conf", str(ROOT / "configs" / "rl_zoo" / "ppo.yml"),
         "-n", "256", "-params", "n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:1",
         "-f", str(tmp_path), "--eval-freq", "-1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = tmp_path / "ppo" / "QianchuanBidding-v1_1"
    assert (saved / "QianchuanBidding-v1.zip").is_file()
    assert (saved / "QianchuanBidding-v1" / "vecnormalize.pkl").is_file()
