"""PPO training: ``train(config) -> Path`` (a new run folder) and ``resume(run) -> Path``.

PPO (stable-baselines3) learns on the native batched env (:class:`envs.vec_env.
QianchuanVecEnv`) behind ``VecNormalize`` (observations normalised; rewards optionally).
The run folder follows the contracts (:mod:`agents.run_folder`); the callbacks
(:mod:`agents.training.callbacks`) write the business metrics, validate against the baselines of
``training.baselines`` (``static`` and the playbook by default) on the validation seeds, on
the run's objective and on profit, keep the best model (by mean validation return) and
checkpoint atomically. Before any file is written, :func:`check_baselines` makes sure every
baseline can play every scenario: ``static`` needs the scenario's tuned settings
(``configs/baselines/<scenario>.yaml``); a run on a scenario without them stops with a message
saying how to make them, or to validate against ``static_rule`` (untuned, plays any scenario).

A config naming several scenarios trains one policy across them (one batch of accounts split
across the scenarios, :class:`envs.simulator.ScenarioMix`) and validates on each. Validation
runs on the scenarios without per-episode parameter randomisation (``randomize``), which only
widens what training sees.

Resume continues from the last complete checkpoint with the same step counter and its own
normalisation statistics; TensorBoard events after that checkpoint's step are dropped, so
the curves continue as one stream.
"""

from __future__ import annotations

import hashlib
import math
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.utils import LinearSchedule, set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from agents.policies import make_policy
from agents.run_folder import (
    CONFIG_YAML,
    MODEL_FILE,
    RUN_JSON,
    TB_DIR,
    VECNORMALIZE_FILE,
    RunError,
    checkpoint_steps,
    code_version,
    command_line,
    create_run_dir,
    default_run_name,
    machine_context,
    model_dir,
    package_versions,
    read_run_json,
    resolve_run,
    restore_model_dirs,
    save_model_dir,
    update_run_json,
    write_json_atomic,
    write_text_atomic,
)
from agents.training.callbacks import (
    VALUE,
    VERDICT_WORDS,
    CheckpointCallback,
    FloorMultiplierCallback,
    MarketMetricsCallback,
    ProgressBarCallback,
    StopOnRequest,
    ValidationCallback,
    ValidationResult,
    analyst_layout,
    comparison_tags,
    make_validator,
    read_eval,
    tb_writer,
)
from agents.training.config import TrainConfig
from agents.training.config import from_dict as config_from_dict
from envs.config import ConfigError, ScenarioConfig, list_scenarios
from envs.config import from_dict as scenario_from_dict
from envs.vec_env import QianchuanVecEnv
from envs.version import ENV_VERSION

ACTIVATION_CLASSES = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU,
                      "leaky_relu": torch.nn.LeakyReLU, "silu": torch.nn.SiLU}


class InterruptedTrainingError(RuntimeError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; ``run_dir`` resumes."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"training interrupted at step {step}; continue with "
                         f"--resume {run_dir}")
        self.run_dir = run_dir
        self.step = step


# ---------------------------------------------------------------------------------------------
def session_seed(seed: int, session: int) -> int:
    """The training env's generator seed for a session of a run (0: the first).

    Derived through ``SeedSequence`` so training draws never coincide with the per-account
    generators of the report (10000+) or validation (20000+) seeds.
    """
    return int(np.random.SeedSequence([seed, session, 0x5151]).generate_state(1)[0])


def make_training_env(config: TrainConfig, scenario: ScenarioConfig | list[ScenarioConfig],
                      session: int = 0, vecnormalize_path: Path | None = None) -> VecNormalize:
    """The batched training env behind ``VecNormalize`` (fresh, or with saved statistics);
    a list of scenarios splits the batch across them. With ``env.anchor: static`` the accounts
    act through anchored actions beside twins playing ``static``
    (:mod:`agents.training.paired_env`)."""
    if config.env.anchor == "static":
        from agents.training.paired_env import PairedVecEnv

        names = scenario if isinstance(scenario, list) else [scenario]
        venv = PairedVecEnv(names, config.env.n_envs, session_seed(config.seed, session),
                            paired_reward=config.env.paired_reward)
    else:
        venv = QianchuanVecEnv(scenario, config.env.n_envs, session_seed(config.seed, session))
    if vecnormalize_path is not None:
        env = VecNormalize.load(str(vecnormalize_path), venv)
        env.training = True
        return env
    return VecNormalize(venv, norm_obs=True, norm_reward=config.env.normalize_reward,
                        clip_obs=config.env.clip_obs, gamma=config.ppo.gamma)


def validation_scenarios(scenarios: list[ScenarioConfig]) -> list[ScenarioConfig]:
    """The scenarios a run validates on: its own, without per-episode parameter randomisation
    (``randomize``: a training device; validation, like the report, judges the scenario)."""
    return [s.replace(randomize=0.0) if s.randomize else s for s in scenarios]


def check_baselines(config: TrainConfig, scenarios: list[ScenarioConfig] | None = None,
                    fix: str = "--set training.baselines=static_rule,playbook") -> None:
    """Every baseline of ``training.baselines`` can play every scenario the run validates on
    (a tuned one, ``static``, needs settings for the scenario and objective of this env
    version in ``configs/baselines/``), checked before any work.

    :param scenarios: the run's scenarios (default: the config's).
    :param fix: how to choose other baselines, for the message.
    :raises ConfigError: naming the baseline and the scenario, and how to go on.
    """
    from agents.policies.baseline_store import BaselineError, baseline_scenario

    for scenario in validation_scenarios(scenarios or config.scenario_configs()):
        for name in config.training.baselines:
            try:
                make_policy(name, scenario)
            except BaselineError as exc:
                if baseline_scenario(scenario) in list_scenarios():
                    why = f"{exc}; or"
                else:
                    why = (f"{scenario.name!r} is a scenario of your own and "
                           "scripts/search_baselines.py tunes the named ones "
                           "(configs/scenarios/); instead")
                raise ConfigError(f"training.baselines: {name} cannot play scenario "
                                  f"{scenario.name!r}: {why} validate against the one-line "
                                  f"rule, which plays any scenario untuned: {fix}") from None


def make_model(config: TrainConfig, env: VecNormalize) -> PPO:
    """A new PPO model; torch is seeded with the run's seed first (same seed, same weights)."""
    set_random_seed(config.seed)
    p, net = config.ppo, config.policy
    lr = (LinearSchedule(p.learning_rate, 0.0, 1.0) if p.lr_schedule == "linear"
          else p.learning_rate)
    return PPO(
        "MlpPolicy", env, learning_rate=lr, n_steps=p.n_steps, batch_size=p.batch_size,
        n_epochs=p.n_epochs, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
        ent_coef=p.ent_coef, vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
        target_kl=p.target_kl, device=config.training.device, verbose=0,
        policy_kwargs={"net_arch": {"pi": list(net.net_arch), "vf": list(net.net_arch)},
                       "activation_fn": ACTIVATION_CLASSES[net.activation],
                       "log_std_init": net.log_std_init, "ortho_init": net.ortho_init})


# ---------------------------------------------------------------------------------------------
def _is_hparams(event) -> bool:
    return any(v.metadata.plugin_data.plugin_name == "hparams" for v in event.summary.value)


def truncate_events(tb_dir: Path, last_step: int) -> int:
    """Drop events with ``step > last_step`` from the event files in ``tb_dir`` (each file
    rewritten atomically in place), so a resumed run continues one stream; also the HPARAMS
    session of an earlier finish (a run writes it when it finishes). Returns the number of
    events dropped."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in sorted(Path(tb_dir).glob("events.out.tfevents.*")):
        kept = []
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            if event.step > last_step or _is_hparams(event):
                dropped += 1
            else:
                kept.append(record)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for record in kept:
                writer.write(record)
        tmp.replace(path)
    return dropped


def scenarios_hash(scenarios: list[ScenarioConfig]) -> str:
    """A scenario's hash, or for several a short sha256 of theirs in order."""
    if len(scenarios) == 1:
        return scenarios[0].hash()
    return hashlib.sha256(" ".join(s.hash() for s in scenarios).encode()).hexdigest()[:12]


def _hparams(config: TrainConfig, scenarios: list[ScenarioConfig]) -> dict[str, Any]:
    """Flat hyperparameters for the HPARAMS tab (lists and mappings as text)."""
    flat: dict[str, Any] = {"scenario": config.run_label(),
                            "scenario_hash": scenarios_hash(scenarios)}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and not prefix.endswith("overrides"):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        elif isinstance(node, (list, dict)):
            flat[prefix] = yaml.safe_dump(node, default_flow_style=True).strip()
        elif node is None:
            flat[prefix] = "none"
        else:
            flat[prefix] = node

    walk("", config.to_dict())
    return flat


def _hparam_metrics(baselines: tuple[str, ...]) -> dict[str, float]:
    """The HPARAMS tab's metric tags: PPO's and every baseline's value and profit, the paired
    differences with their intervals, PPO's ROI, violation days and return."""
    keys = ["eval/ppo/value", "eval/ppo/profit"]
    for name in baselines:
        keys += [f"eval/{name}/value", f"eval/{name}/profit"]
        for quantity in (VALUE, "profit"):
            keys += comparison_tags(name, quantity=quantity).values()
    keys += ["eval/ppo/settlement_roi", "eval/ppo/roi_floor_violation_days", "eval/ppo/return",
             "rollout/ep_rew_mean"]
    return dict.fromkeys(keys, 0.0)


def _write_hparams(writer, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """The HPARAMS tab's session: the config and the tags of its metrics (their values are
    the scalars' last points). Written directly, not through a logger dump, so the last
    update's ``train/`` values do not land on an already used step."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    for summary in hparams_summaries(hparams, metrics):
        writer.file_writer.add_summary(summary)
    writer.flush()


@contextmanager
def _stop_on_signals(stop: StopOnRequest) -> Iterator[None]:
    """SIGINT/SIGTERM ask training to stop at the next step (then it checkpoints)."""
    def handler(signum, frame):  # noqa: ARG001
        stop.requested = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _session(run_dir: Path, config: TrainConfig, scenarios: list[ScenarioConfig], session: int,
             checkpoint: Path | None, command: list[str],
             on_validation: Callable[[ValidationResult], None] | None = None) -> Path:
    """Train until ``config.training.total_timesteps``, from ``checkpoint`` if given."""
    t = config.training
    torch.set_num_threads(t.torch_threads)
    validator = make_validator(validation_scenarios(scenarios), t.baselines, t.eval_episodes,
                               anchored=config.env.anchor == "static")
    scenario = scenarios if len(scenarios) > 1 else scenarios[0]
    tb_dir = run_dir / TB_DIR
    if checkpoint is None:
        env = make_training_env(config, scenario, session)
        model = make_model(config, env)
        best_score = -math.inf
    else:
        set_random_seed(session_seed(config.seed, session) % 2**31)
        env = make_training_env(config, scenario, session, checkpoint / VECNORMALIZE_FILE)
        model = PPO.load(checkpoint / MODEL_FILE, env=env, device=t.device)
        model._last_obs = None  # start a fresh rollout on the new env (reset in learn())
        truncate_events(tb_dir, model.num_timesteps)
        best = read_eval(run_dir / "best")
        best_score = best["ppo"]["return"] if best else -math.inf
    start = model.num_timesteps
    logger = Logger(str(tb_dir), [TensorBoardOutputFormat(str(tb_dir))])
    model.set_logger(logger)
    writer = tb_writer(logger)
    writer.add_custom_scalars(analyst_layout(
        t.baselines, tuple(s.name for s in scenarios) if len(scenarios) > 1 else (),
        scenarios[0].objective))

    market = MarketMetricsCallback()
    validation = ValidationCallback(validator, t.eval_freq, run_dir, best_score, on_validation)
    checkpoints = CheckpointCallback(t.checkpoint_freq, run_dir)
    stop = StopOnRequest()
    callbacks = [market, validation, checkpoints, stop]
    info = read_run_json(run_dir)
    lag = config.lagrangian
    if lag.enabled:
        callbacks.insert(1, FloorMultiplierCallback(
            lag.target_violation_days, lag.lr, lag.max_multiplier,
            info.get("floor_multiplier", lag.initial_multiplier), run_dir))
    if t.progress_bar:
        callbacks.append(ProgressBarCallback(t.total_timesteps, validation))

    sessions = info.get("sessions", [])
    sessions.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "start_step": start,
                     "command": shlex.join(command), "env_seed": session_seed(config.seed,
                                                                               session)})
    update_run_json(run_dir, status="running", sessions=sessions)
    began = time.perf_counter()
    try:
        with _stop_on_signals(stop):
            if start < t.total_timesteps:
                model.learn(total_timesteps=t.total_timesteps - start, callback=CallbackList(
                    callbacks), reset_num_timesteps=False, progress_bar=False)
    except BaseException:
        update_run_json(run_dir, status="failed")
        logger.close()
        raise
    seconds = time.perf_counter() - began
    sessions[-1].update(end_step=model.num_timesteps, seconds=round(seconds, 1),
                        steps_per_second=round((model.num_timesteps - start) / max(seconds,
                                                                                     1e-9), 1))
    if start >= t.total_timesteps:  # killed after its last step, before finishing
        for callback in (validation, checkpoints):
            callback.init_callback(model)
    if stop.requested:
        checkpoints.save()
        sessions[-1]["ended"] = "interrupted"
        update_run_json(run_dir, status="interrupted", sessions=sessions)
        logger.close()
        raise InterruptedTrainingError(run_dir, model.num_timesteps)

    if validation.last is None or validation.last.step != model.num_timesteps:
        validation.validate()
    final = validation.last
    save_model_dir(run_dir / "final", model, env, {**final.to_dict(), "selected_by": "final"})
    if model.num_timesteps not in checkpoint_steps(run_dir):
        checkpoints.save()
    _write_hparams(writer, _hparams(config, scenarios), _hparam_metrics(t.baselines))
    logger.close()
    sessions[-1]["ended"] = "finished"
    update_run_json(run_dir, status="finished", num_timesteps=model.num_timesteps,
                    sessions=sessions, final_eval=final.to_dict(),
                    best_eval=read_eval(run_dir / "best"))
    return run_dir


# ---------------------------------------------------------------------------------------------
def train(config: TrainConfig, runs_dir: str | Path = "runs", run_name: str | None = None,
          command: list[str] | None = None,
          on_validation: Callable[[ValidationResult], None] | None = None) -> Path:
    """Train PPO into a new run folder and return it.

    :param runs_dir: where run folders live.
    :param run_name: replaces the whole default name ``<scenario>__<exp>__<seed>__<time>``;
        an existing name is an error (:class:`RunError`).
    :param command: the command line to record (default: this process's).
    :param on_validation: called with each periodic :class:`ValidationResult` (tuning's
        pruning hook); an exception it raises stops training (run status ``failed``) and
        leaves ``train()``.
    """
    scenarios = config.scenario_configs()
    check_baselines(config, scenarios)  # before any I/O
    scenario = scenarios[0]
    name = run_name or default_run_name(config.run_label(), config.experiment, config.seed)
    run_dir = create_run_dir(Path(runs_dir), name)
    command = command or command_line()
    write_text_atomic(run_dir / CONFIG_YAML, yaml.safe_dump(config.to_dict(), sort_keys=False))
    mix = {"scenarios": [s.name for s in scenarios],
           "scenario_configs": [s.to_dict() for s in scenarios]} if config.is_mix else {}
    write_json_atomic(run_dir / RUN_JSON, {
        "run_name": name, "status": "running", "seed": config.seed,
        "scenario": config.run_label(), "scenario_hash": scenarios_hash(scenarios),
        "config_hash": config.hash(), "experiment": config.experiment,
        "command": shlex.join(command), "package_versions": package_versions(),
        "machine": machine_context(), "code": code_version(),
        "env_version": ENV_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "num_timesteps": 0, "scenario_config": scenario.to_dict(), **mix, "sessions": [],
        "anchor": config.env.anchor,
    })
    return _session(run_dir, config, scenarios, 0, None, command, on_validation)


def load_run_config(run_dir: Path) -> tuple[TrainConfig, ScenarioConfig]:
    """A run's training config (``config.yaml``) and the exact scenario it trained on (stored
    in ``run.json``, so later edits of the preset do not change the run; the first scenario
    of a cross-scenario run: :func:`load_run_scenarios` has them all)."""
    try:
        data = yaml.safe_load((Path(run_dir) / CONFIG_YAML).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"{run_dir}: cannot read {CONFIG_YAML} ({exc})") from None
    config = config_from_dict(data)
    return config, scenario_from_dict(read_run_json(run_dir)["scenario_config"])


def load_run_scenarios(run_dir: Path) -> list[ScenarioConfig]:
    """Every scenario a run trained on, exactly as stored in its ``run.json``."""
    info = read_run_json(run_dir)
    return [scenario_from_dict(d) for d in info.get("scenario_configs",
                                                    [info["scenario_config"]])]


def resume(run: str | Path, runs_dir: str | Path = "runs", total_timesteps: int | None = None,
           device: str | None = None, command: list[str] | None = None) -> Path:
    """Continue a run from its last complete checkpoint (after any kill, even SIGKILL).

    :param run: run folder, or its name under ``runs_dir``.
    :param total_timesteps: a new training length (default: the run's own).
    :param device: another torch device (default: the run's own).
    """
    run_dir = resolve_run(run, Path(runs_dir))
    restore_model_dirs(run_dir)
    config, _ = load_run_config(run_dir)
    scenarios = load_run_scenarios(run_dir)
    check_baselines(config, scenarios, fix=f"training.baselines: [static_rule, playbook] in "
                    f"{run_dir / CONFIG_YAML}")
    changes = {}
    if total_timesteps is not None:
        changes["training.total_timesteps"] = total_timesteps
    if device is not None:
        changes["training.device"] = device
    if changes:
        config = config.with_values(**changes)
        write_text_atomic(run_dir / CONFIG_YAML,
                          yaml.safe_dump(config.to_dict(), sort_keys=False))
        update_run_json(run_dir, config_hash=config.hash())
    steps = checkpoint_steps(run_dir)
    info = read_run_json(run_dir)
    if info.get("status") == "finished" and steps and steps[-1] >= (
            config.training.total_timesteps):
        raise RunError(f"{run_dir} already finished {steps[-1]} steps; pass a larger "
                       "--timesteps to train it further")
    checkpoint = model_dir(run_dir, f"step_{steps[-1]}") if steps else None
    if checkpoint is None:
        truncate_events(run_dir / TB_DIR, -1)
    return _session(run_dir, config, scenarios, len(info.get("sessions", [])), checkpoint,
                    command or command_line())


def describe_run(run_dir: Path, runs_root: Path | None = None) -> str:
    """What a run ends with: where it is, how to look at it, PPO next to the baselines on the
    run's objective (value, CNY per episode) and the other metrics, and the paired
    differences against each baseline."""
    run_dir = Path(run_dir)
    info = read_run_json(run_dir)
    final, best = info.get("final_eval"), info.get("best_eval")
    root = runs_root if runs_root is not None else run_dir.parent
    lines = [f"run folder: {run_dir}",
             f"TensorBoard: tensorboard --logdir {root}   then open "
             "http://localhost:6006/#custom_scalars (PPO vs the baselines; verdicts in #text)"]
    if final is None:
        return "\n".join(lines)
    objective, comparisons = final["objective"], final["comparisons"]
    sessions = info.get("sessions", [])
    if sessions and "seconds" in sessions[-1]:
        s = sessions[-1]
        lines.append(f"trained {s['end_step'] - s['start_step']:,} steps in {s['seconds']:.0f} s "
                     f"({s['steps_per_second']:,.0f} steps/s)")
    lines.append(f"validation: {final['n_seeds']} episodes on seeds 20000.. (scenario "
                 f"{info['scenario']}, objective {objective}), means per episode")
    cols = [("PPO final", final["ppo"])]
    if best is not None:
        cols.append((f"PPO best (step {best['step']:,})", best["ppo"]))
    cols += [(name, c["reference"]) for name, c in comparisons.items()]
    lines.append(f"  {'metric':26s}" + "".join(f"{name:>24s}" for name, _ in cols))
    money = (VALUE, "profit", "gmv", "settled_gmv", "spend")
    for key in (VALUE, "profit", "gmv", "settled_gmv", "spend", "payment_roi",
                "settlement_roi", "refund_rate", "learning_days", "interruptions",
                "roi_floor_violation_days"):
        fmt = "{:>24,.0f}" if key in money else "{:>24.3f}"
        label = f"value ({objective}), CNY" if key == VALUE else key
        lines.append(f"  {label:26s}" + "".join(fmt.format(v.get(key, math.nan))
                                                 for _, v in cols))
    label = "profit" if objective == "profit" else f"{objective} value"
    for name, c in comparisons.items():
        profit = "" if objective == "profit" else (
            f"; profit {c['profit_diff']:+,.0f} [{c['profit_diff_ci_low']:+,.0f}, "
            f"{c['profit_diff_ci_high']:+,.0f}]")
        lines.append(
            f"  PPO final - {name}: {label} {c['value_diff']:+,.0f} CNY/episode, 95% CI "
            f"[{c['value_diff_ci_low']:+,.0f}, {c['value_diff_ci_high']:+,.0f}]{profit} -> "
            f"{VERDICT_WORDS[c['verdict']]} {name}")
    for scenario, part in (final.get("per_scenario") or {}).items():
        for name, c in part["comparisons"].items():
            lines.append(f"    {scenario:14s} PPO {part['ppo'][VALUE]:>13,.0f}  {name:>11s} "
                         f"{c['reference'][VALUE]:>13,.0f}  difference {c['value_diff']:+,.0f} "
                         f"[{c['value_diff_ci_low']:+,.0f}, {c['value_diff_ci_high']:+,.0f}]")
    return "\n".join(lines)
