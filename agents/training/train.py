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

Resume continues from the newest checkpoint whose files read back, with the same step
counter and its own normalisation statistics; TensorBoard events after that checkpoint's step
are dropped, so the curves continue as one stream. An interrupted run's checkpoint is at a
rollout boundary (:mod:`agents.training.interrupt`). Training and resuming hold the run's
lock (:mod:`agents.run_lock`): one writer per run folder.
"""

from __future__ import annotations

import hashlib
import math
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import set_random_seed

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
    newest_intact_checkpoint,
    package_versions,
    read_eval,
    read_run_json,
    resolve_run,
    restore_model_dirs,
    save_model_dir,
    update_run_json,
    write_json_atomic,
    write_text_atomic,
)
from agents.run_lock import RunLock
from agents.training.callbacks import (
    CheckpointCallback,
    FloorMultiplierCallback,
    MarketMetricsCallback,
    ValidationCallback,
)
from agents.training.config import TrainConfig
from agents.training.config import from_dict as config_from_dict
from agents.training.factory import (
    check_baselines,
    make_model,
    make_training_env,
    session_seed,
    validation_scenarios,
)
from agents.training.interrupt import InterruptedTrainingError, StopOnRequest, stop_on_signals
from agents.training.progress import ProgressBarCallback
from agents.training.tensorboard import (
    analyst_layout,
    hparam_metrics,
    run_hparams,
    tb_writer,
    tensorboard_output,
    truncate_events,
    write_hparams,
)
from agents.training.validation import ValidationResult, make_validator
from envs.config import ScenarioConfig
from envs.config import from_dict as scenario_from_dict
from envs.version import ENV_VERSION


# ---------------------------------------------------------------------------------------------
def scenarios_hash(scenarios: list[ScenarioConfig]) -> str:
    """A scenario's hash, or for several a short sha256 of theirs in order."""
    if len(scenarios) == 1:
        return scenarios[0].hash()
    return hashlib.sha256(" ".join(s.hash() for s in scenarios).encode()).hexdigest()[:12]


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
    logger = Logger(str(tb_dir), [tensorboard_output(tb_dir)])
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
        with stop_on_signals(stop):
            if start < t.total_timesteps:
                model.learn(total_timesteps=t.total_timesteps - start, callback=CallbackList(
                    callbacks), reset_num_timesteps=False, progress_bar=False)
    except BaseException:
        update_run_json(run_dir, status="failed")
        logger.close()
        raise
    seconds = time.perf_counter() - began
    collected = model.num_timesteps - start  # steps this session collected (for steps/s)
    recollected = stop.rewind() if stop.requested else 0  # back to the rollout's start
    sessions[-1].update(end_step=model.num_timesteps, seconds=round(seconds, 1),
                        steps_per_second=round(collected / max(seconds, 1e-9), 1))
    if start >= t.total_timesteps:  # killed after its last step, before finishing
        for callback in (validation, checkpoints):
            callback.init_callback(model)
    if stop.requested:
        checkpoints.save()
        sessions[-1].update(ended="interrupted", recollected_on_resume=recollected)
        update_run_json(run_dir, status="interrupted", sessions=sessions)
        logger.close()
        raise InterruptedTrainingError(run_dir, model.num_timesteps, recollected)

    if validation.last is None or validation.last.step != model.num_timesteps:
        validation.validate()
    final = validation.last
    save_model_dir(run_dir / "final", model, env, {**final.to_dict(), "selected_by": "final"})
    if model.num_timesteps not in checkpoint_steps(run_dir):
        checkpoints.save()
    write_hparams(writer, run_hparams(config, info["scenario"], scenarios_hash(scenarios)),
                  hparam_metrics(t.baselines))
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
    name = run_name or default_run_name(config.run_label(scenarios), config.experiment,
                                        config.seed)
    run_dir = create_run_dir(Path(runs_dir), name)
    with RunLock(run_dir):  # one writer per run folder (agents.run_lock)
        return _first_session(run_dir, name, config, scenarios, command or command_line(),
                              on_validation)


def _first_session(run_dir: Path, name: str, config: TrainConfig,
                   scenarios: list[ScenarioConfig], command: list[str],
                   on_validation: Callable[[ValidationResult], None] | None) -> Path:
    """Write a new run's ``config.yaml`` and ``run.json``, then train its first session."""
    scenario = scenarios[0]
    label = config.run_label(scenarios)
    write_text_atomic(run_dir / CONFIG_YAML, yaml.safe_dump(config.to_dict(), sort_keys=False))
    mix = {"scenarios": [s.name for s in scenarios],
           "scenario_configs": [s.to_dict() for s in scenarios]} if config.is_mix else {}
    write_json_atomic(run_dir / RUN_JSON, {
        "run_name": name, "status": "running", "seed": config.seed,
        "scenario": label, "scenario_hash": scenarios_hash(scenarios),
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

    A damaged newest checkpoint (a file cut short) is moved aside and the newest intact one
    used, saying so on stderr (:func:`agents.run_folder.newest_intact_checkpoint`).

    :param run: run folder, or its name under ``runs_dir``.
    :raises agents.run_lock.RunBusyError: another process is writing the run.
    :param total_timesteps: a new training length (default: the run's own).
    :param device: another torch device (default: the run's own).
    """
    run_dir = resolve_run(run, Path(runs_dir))
    with RunLock(run_dir):  # one writer per run folder (agents.run_lock)
        return _resume_locked(run_dir, total_timesteps, device, command or command_line())


def _resume_locked(run_dir: Path, total_timesteps: int | None, device: str | None,
                   command: list[str]) -> Path:
    """:func:`resume`'s work, under the run's lock."""
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
    info = read_run_json(run_dir)
    checkpoint = newest_intact_checkpoint(run_dir, log=_warn)
    step = int(checkpoint.name.removeprefix("step_")) if checkpoint is not None else -1
    if info.get("status") == "finished" and step >= config.training.total_timesteps:
        raise RunError(f"{run_dir} already finished {step} steps; pass a larger "
                       "--timesteps to train it further")
    if checkpoint is None:
        truncate_events(run_dir / TB_DIR, -1)
    return _session(run_dir, config, scenarios, len(info.get("sessions", [])), checkpoint,
                    command)


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


