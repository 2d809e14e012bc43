"""Training callbacks: business metrics, periodic validation with the best model kept,
checkpoints, and the Lagrangian floor multiplier.

Validation (:mod:`agents.training.validation`) and checkpoints run at the start of a rollout,
when the model has learnt from every step counted so far, so ``step_<N>`` holds the model
after ``N`` steps. The tags they write are listed in :mod:`agents.training.tensorboard`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.run_folder import CHECKPOINTS_DIR, save_model_dir, update_run_json
from agents.training.tensorboard import tb_writer, write_validation
from agents.training.validation import ValidationResult, Validator
from envs.metrics import EPISODE_METRICS


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class ValidationCallback(BaseCallback):
    """Every ``eval_freq`` steps: validate, log, and keep the best model (by mean return on
    the validation seeds) in ``best/`` with its own normalisation statistics.

    :param on_validation: optional, called with each periodic result; it may stop training
        by raising (e.g. ``optuna.TrialPruned``: the exception leaves ``train()``).
    """

    def __init__(self, validator: Validator, eval_freq: int, run_dir: Path,
                 best_score: float = -math.inf,
                 on_validation: Callable[[ValidationResult], None] | None = None):
        super().__init__()
        self.validator = validator
        self.eval_freq = eval_freq
        self.run_dir = Path(run_dir)
        self.best_score = best_score
        self.on_validation = on_validation
        self.last: ValidationResult | None = None
        self._next = 0

    def _init_callback(self) -> None:
        self._next = _next_multiple(self.model.num_timesteps, self.eval_freq)

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self._next:
            result = self.validate()
            self._next = _next_multiple(self.model.num_timesteps, self.eval_freq)
            if self.on_validation is not None:
                self.on_validation(result)

    def _on_step(self) -> bool:
        return True

    def validate(self) -> ValidationResult:
        """Validate the current model now (also called once more after training)."""
        vecnormalize = self.model.get_vec_normalize_env()
        result = self.validator.evaluate(self.model, vecnormalize, self.model.num_timesteps)
        write_validation(tb_writer(self.logger), result)
        score = result.ppo["return"]
        if score > self.best_score:
            self.best_score = score
            save_model_dir(self.run_dir / "best", self.model, vecnormalize,
                           {**result.to_dict(), "selected_by": "mean validation return"})
        self.last = result
        return result


class CheckpointCallback(BaseCallback):
    """Every ``checkpoint_freq`` steps: ``checkpoints/step_<N>/`` (model + its statistics),
    written atomically; ``run.json`` records the step."""

    def __init__(self, checkpoint_freq: int, run_dir: Path):
        super().__init__()
        self.checkpoint_freq = checkpoint_freq
        self.run_dir = Path(run_dir)
        self._next = 0

    def _init_callback(self) -> None:
        self._next = _next_multiple(self.model.num_timesteps, self.checkpoint_freq)

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self._next:
            self.save()
            self._next = _next_multiple(self.model.num_timesteps, self.checkpoint_freq)

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        """Checkpoint the current model now."""
        step = self.model.num_timesteps
        path = save_model_dir(self.run_dir / CHECKPOINTS_DIR / f"step_{step}", self.model,
                              self.model.get_vec_normalize_env())
        update_run_json(self.run_dir, num_timesteps=step, last_checkpoint=f"step_{step}")
        return path


class MarketMetricsCallback(BaseCallback):
    """At each training episode's end: ``market/<metric>`` and ``market/reward_terms/<term>``
    (means over the accounts that finished at this step)."""

    def _on_step(self) -> bool:
        ended = [info for info in self.locals["infos"] if "episode_metrics" in info]
        if not ended:
            return True
        writer = tb_writer(self.logger)
        step = self.model.num_timesteps
        for key in EPISODE_METRICS:
            value = float(np.mean([info["episode_metrics"][key] for info in ended]))
            writer.add_scalar(f"market/{key}", value, step)
        terms = [info["episode_reward_terms"] for info in ended
                 if "episode_reward_terms" in info]
        for key in terms[0] if terms else ():
            writer.add_scalar(f"market/reward_terms/{key}",
                              float(np.mean([t[key] for t in terms])), step)
        writer.flush()
        return True


class FloorMultiplierCallback(BaseCallback):
    """Dual ascent on the settlement-ROI floor's Lagrange multiplier (the training env's
    ``sim.floor_multiplier``, CNY of reward per CNY of settled GMV short of the floor).

    After each rollout: ``multiplier += lr x (mean violation days of the episodes that ended -
    target_violation_days)``, clipped to ``[0, max_multiplier]``; logged as
    ``train/floor_multiplier`` and recorded in ``run.json`` (``floor_multiplier``), where a
    resumed run picks it up.
    """

    def __init__(self, target_violation_days: float, lr: float, max_multiplier: float,
                 multiplier: float, run_dir: Path):
        super().__init__()
        self.target = target_violation_days
        self.lr = lr
        self.max_multiplier = max_multiplier
        self.multiplier = float(np.clip(multiplier, 0.0, max_multiplier))
        self.run_dir = Path(run_dir)
        self._days: list[float] = []

    def _apply(self) -> None:
        self.training_env.unwrapped.sim.floor_multiplier = self.multiplier

    def _on_training_start(self) -> None:
        self._apply()

    def _on_step(self) -> bool:
        self._days.extend(info["episode_metrics"]["roi_floor_violation_days"]
                          for info in self.locals["infos"] if "episode_metrics" in info)
        return True

    def _on_rollout_end(self) -> None:
        if not self._days:
            return
        days = float(np.mean(self._days))
        self._days = []
        step = self.model.num_timesteps
        self.multiplier = float(np.clip(self.multiplier + self.lr * (days - self.target), 0.0,
                                        self.max_multiplier))
        self._apply()
        writer = tb_writer(self.logger)
        writer.add_scalar("train/floor_multiplier", self.multiplier, step)
        writer.add_scalar("train/floor_violation_days", days, step)
        update_run_json(self.run_dir, floor_multiplier=self.multiplier)
