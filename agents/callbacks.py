"""Training callbacks: business metrics, validation against the playbook, checkpoints, progress.

TensorBoard tags written here (contracts), besides SB3's ``rollout/`` and ``train/``:

- ``market/<metric>``: mean episode metric of the training episodes that just ended
  (``envs.metrics.EPISODE_METRICS``), ``market/reward_terms/<term>``: their reward terms in
  CNY per episode;
- ``eval/ppo/<metric>`` and ``eval/<baseline>/<metric>`` (``eval/playbook/profit``, ...) at
  the same step: means over the validation seeds (from 20000), plus ``return``;
- ``eval/ppo_vs_<baseline>/profit_diff`` with ``profit_diff_ci_low`` / ``profit_diff_ci_high``:
  the paired profit difference per episode (CNY) and its 95% t-interval;
- ``eval/verdict`` (text): the comparison in words.

A cross-scenario run validates on each of its scenarios (the same seeds in each): the ``eval/``
tags above are then means over the scenarios (the difference's interval stratified by
scenario), and ``eval_<scenario>/...`` carries the same tags for each scenario alone. With the
Lagrangian floor on, ``train/floor_multiplier`` is the multiplier after each rollout and
``train/floor_violation_days`` the rollout's mean violation days per episode.

Validation and checkpoints run at the start of a rollout, when the model has learnt from
every step counted so far, so ``step_<N>`` holds the model after ``N`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from agents.policies import make_policy
from agents.rollout import RolloutResult, rollout
from agents.run_folder import (
    CHECKPOINTS_DIR,
    EVAL_FILE,
    save_model_dir,
    update_run_json,
)
from envs.config import ScenarioConfig
from envs.metrics import EPISODE_METRICS

VALIDATION_SEED_START = 20000  # contracts: validation during training and tuning
CONFIDENCE = 0.95


def tb_writer(logger: Logger):
    """The TensorBoard ``SummaryWriter`` behind an SB3 logger."""
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            return fmt.writer
    raise ValueError("the logger has no TensorBoard output")


def validation_seeds(n: int) -> np.ndarray:
    """The first ``n`` validation seeds (20000, 20001, ...)."""
    return np.arange(VALIDATION_SEED_START, VALIDATION_SEED_START + n)


def paired_difference(a: np.ndarray, b: np.ndarray,
                      confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired episodes and its t-interval ``(mean, low, high)``."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    mean = float(diff.mean())
    if len(diff) < 2 or not np.isfinite(diff).all():
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(diff) - 1) * diff.std(ddof=1)
                 / math.sqrt(len(diff)))
    return mean, mean - half, mean + half


def comparison_tags(baseline: str, prefix: str = "eval") -> dict[str, str]:
    """Tags of the paired profit comparison against ``baseline`` (``eval_<scenario>`` prefix:
    one scenario of a cross-scenario run)."""
    group = f"{prefix}/ppo_vs_{baseline}"
    return {"diff": f"{group}/profit_diff", "low": f"{group}/profit_diff_ci_low",
            "high": f"{group}/profit_diff_ci_high"}


def analyst_layout(baseline: str, scenarios: tuple[str, ...] = ()) -> dict[str, dict[str, list]]:
    """CUSTOM SCALARS charts that put PPO and the baseline on the same axes.

    Both lines of a chart share their run's colour; the baseline's is the flat one (the same
    deterministic policy on the same seeds at every validation).

    :param scenarios: the scenarios of a cross-scenario run (a margin and a profit chart each).
    """
    tags = comparison_tags(baseline)

    def pair(metric: str) -> list:
        return ["Multiline", [f"^eval/ppo/{metric}$", f"^eval/{baseline}/{metric}$"]]

    charts: dict[str, list] = {
        f"PPO minus {baseline}: profit per episode, CNY, 95% CI (above 0: PPO earns more)":
            ["Margin", [tags["diff"], tags["low"], tags["high"]]],
        f"profit per episode, CNY: PPO (curve) vs {baseline} (flat line)": pair("profit"),
    }
    for metric in ("settlement_roi", "gmv", "spend", "roi_floor_violation_days"):
        charts[f"{metric}: PPO (curve) vs {baseline} (flat line)"] = pair(metric)
    training = {
        "profit per training episode, CNY": ["Multiline", ["^market/profit$"]],
        "settlement ROI of training episodes": ["Multiline", ["^market/settlement_roi$"]],
        "reward terms per training episode, CNY": ["Multiline", ["^market/reward_terms/"]],
    }
    layout = {f"Does PPO beat the {baseline}? (validation seeds 20000..)": charts,
              "Training episodes": training}
    if scenarios:
        per: dict[str, list] = {}
        for name in scenarios:
            own = comparison_tags(baseline, f"eval_{name}")
            per[f"{name}: PPO minus {baseline}, profit per episode, CNY, 95% CI"] = [
                "Margin", [own["diff"], own["low"], own["high"]]]
            per[f"{name}: profit per episode, CNY: PPO vs {baseline}"] = [
                "Multiline", [f"^eval_{name}/ppo/profit$", f"^eval_{name}/{baseline}/profit$"]]
        layout[f"Per scenario (the charts above: means over {len(scenarios)} scenarios)"] = per
    return layout


# ---------------------------------------------------------------------------------------------
@dataclass
class ValidationResult:
    """PPO and the baseline on the same validation seeds at one training step."""

    step: int
    baseline: str
    n_seeds: int
    ppo: dict[str, float]  # mean episode metrics (CNY, ROI, days) and mean return
    reference: dict[str, float]  # the baseline's, same keys
    profit_diff: float  # mean paired PPO - baseline profit, CNY per episode
    profit_diff_ci_low: float
    profit_diff_ci_high: float
    per_scenario: dict[str, ValidationResult] | None = None  # a cross-scenario run's parts

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``not distinguishable`` (95% interval vs 0)."""
        if self.profit_diff_ci_low > 0:
            return "better"
        if self.profit_diff_ci_high < 0:
            return "worse"
        return "not distinguishable"

    def sentence(self) -> str:
        return (f"step {self.step:,}: PPO earns {self.ppo['profit']:,.0f} CNY per episode vs "
                f"{self.reference['profit']:,.0f} for the {self.baseline} "
                f"(difference {self.profit_diff:+,.0f}, {CONFIDENCE:.0%} CI "
                f"[{self.profit_diff_ci_low:+,.0f}, {self.profit_diff_ci_high:+,.0f}] over "
                f"{self.n_seeds} validation seeds): {self.verdict} than the {self.baseline}")

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "verdict": self.verdict}
        out.pop("per_scenario")
        if self.per_scenario is not None:
            out["per_scenario"] = {k: v.to_dict() for k, v in self.per_scenario.items()}
        return out


def _means(result: RolloutResult) -> dict[str, float]:
    out = {k: float(np.mean(result.metrics[k])) for k in EPISODE_METRICS}
    out["return"] = float(np.mean(result.returns))
    return out


class Validator:
    """Runs a model (with its frozen observation normaliser) and the baseline policy on the
    validation seeds. The baseline's episodes do not change during training: run once."""

    def __init__(self, scenario: ScenarioConfig, baseline: str, n_episodes: int):
        self.scenario = scenario
        self.baseline = baseline
        self.seeds = validation_seeds(n_episodes)
        self._baseline_policy = make_policy(baseline, scenario)
        self._reference: RolloutResult | None = None

    def reference(self) -> RolloutResult:
        if self._reference is None:
            policy = self._baseline_policy  # acts through its own action space if it has one
            self._reference = rollout(policy, getattr(policy, "config", self.scenario),
                                      self.seeds)
        return self._reference

    def rollout_model(self, model, vecnormalize) -> RolloutResult:
        """Deterministic PPO actions on raw observations normalised by frozen statistics."""
        return rollout(model, self.scenario, self.seeds,
                       observation_filter=vecnormalize.normalize_obs)

    def evaluate(self, model, vecnormalize, step: int) -> ValidationResult:
        """PPO against the baseline on the validation seeds."""
        ppo, ref = self.rollout_model(model, vecnormalize), self.reference()
        diff, low, high = paired_difference(ppo.metrics["profit"], ref.metrics["profit"])
        return ValidationResult(step, self.baseline, len(self.seeds), _means(ppo), _means(ref),
                                diff, low, high)


def stratified_difference(diffs: list[np.ndarray],
                          confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean over strata of the mean paired difference, and its t-interval ``(mean, low,
    high)``: variance ``sum(var_s / n_s) / S^2``, degrees of freedom ``sum(n_s - 1)``."""
    means = [float(np.mean(d)) for d in diffs]
    mean = float(np.mean(means))
    dof = sum(len(d) - 1 for d in diffs)
    if dof < 1 or any(len(d) < 2 or not np.isfinite(d).all() for d in diffs):
        return mean, math.nan, math.nan
    se = math.sqrt(sum(np.var(d, ddof=1) / len(d) for d in diffs)) / len(diffs)
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * se)
    return mean, mean - half, mean + half


class ScenarioValidators:
    """Validation of a cross-scenario run: PPO and the baseline on the validation seeds of each
    scenario; the result is the mean over the scenarios, with each scenario's own result in
    :attr:`ValidationResult.per_scenario`."""

    def __init__(self, scenarios: list[ScenarioConfig], baseline: str, n_episodes: int):
        self.baseline = baseline
        self.validators = [Validator(sc, baseline, n_episodes) for sc in scenarios]

    def evaluate(self, model, vecnormalize, step: int) -> ValidationResult:
        parts, diffs = {}, []
        for validator in self.validators:
            ppo, ref = validator.rollout_model(model, vecnormalize), validator.reference()
            diffs.append(ppo.metrics["profit"] - ref.metrics["profit"])
            diff, low, high = paired_difference(ppo.metrics["profit"], ref.metrics["profit"])
            parts[validator.scenario.name] = ValidationResult(
                step, self.baseline, len(validator.seeds), _means(ppo), _means(ref), diff, low,
                high)
        diff, low, high = stratified_difference(diffs)
        return ValidationResult(
            step, self.baseline, sum(len(v.seeds) for v in self.validators),
            _mean_dicts([p.ppo for p in parts.values()]),
            _mean_dicts([p.reference for p in parts.values()]), diff, low, high, parts)


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def make_validator(scenarios: list[ScenarioConfig], baseline: str,
                   n_episodes: int) -> Validator | ScenarioValidators:
    """A :class:`Validator` for one scenario, :class:`ScenarioValidators` for several."""
    if len(scenarios) == 1:
        return Validator(scenarios[0], baseline, n_episodes)
    return ScenarioValidators(scenarios, baseline, n_episodes)


def _write_scalars(writer, result: ValidationResult, prefix: str) -> None:
    step = result.step
    for key, value in result.ppo.items():
        writer.add_scalar(f"{prefix}/ppo/{key}", value, step)
    for key, value in result.reference.items():
        writer.add_scalar(f"{prefix}/{result.baseline}/{key}", value, step)
    tags = comparison_tags(result.baseline, prefix)
    writer.add_scalar(tags["diff"], result.profit_diff, step)
    writer.add_scalar(tags["low"], result.profit_diff_ci_low, step)
    writer.add_scalar(tags["high"], result.profit_diff_ci_high, step)


def write_validation(writer, result: ValidationResult) -> None:
    """The ``eval/`` tags and the verdict text of one validation (and ``eval_<scenario>/``
    tags for each scenario of a cross-scenario run)."""
    _write_scalars(writer, result, "eval")
    text = result.sentence()
    for name, part in (result.per_scenario or {}).items():
        _write_scalars(writer, part, f"eval_{name}")
        text += f"  \n{name}: {part.sentence()}"
    if result.per_scenario:
        text = f"mean over {len(result.per_scenario)} scenarios: {text}"
    writer.add_text("eval/verdict", text, result.step)
    writer.flush()


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


class StopOnRequest(BaseCallback):
    """Stops training at the next step once :attr:`requested` is set (SIGINT/SIGTERM)."""

    def __init__(self):
        super().__init__()
        self.requested = False

    def _on_step(self) -> bool:
        return not self.requested


def _short_cny(value: float) -> str:
    """12345 -> '12.3k', -1234567 -> '-1.23M' (CNY)."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


class ProgressBarCallback(BaseCallback):
    """A rich progress bar: steps, elapsed time, ETA, steps/s, the recent episode reward and
    the last validation's profit next to the baseline's."""

    def __init__(self, total_timesteps: int, validation: ValidationCallback):
        super().__init__()
        self.total = total_timesteps
        self.validation = validation
        self.progress = None
        self._task = None

    def _on_training_start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        fixed = Column(no_wrap=True)  # the numbers stay on one line; the text wraps
        self.progress = Progress(
            BarColumn(bar_width=24), MofNCompleteColumn(table_column=fixed),
            TextColumn("steps"), TimeElapsedColumn(table_column=Column(no_wrap=True)),
            TextColumn("ETA"), TimeRemainingColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[info]}", table_column=Column(overflow="fold", ratio=1)))
        self.progress.start()
        self._task = self.progress.add_task("train", total=self.total,
                                            completed=self.model.num_timesteps, info="")

    def _describe(self) -> str:
        parts = []
        rewards = [ep["r"] for ep in self.model.ep_info_buffer or ()]
        if rewards:
            parts.append(f"reward {np.mean(rewards):.2f}")
        last = self.validation.last
        if last is not None:
            parts.append(f"val profit: PPO {_short_cny(last.ppo['profit'])} vs "
                         f"{last.baseline} {_short_cny(last.reference['profit'])}")
        return " | ".join(parts)

    def _on_rollout_start(self) -> None:
        if self.progress is not None:
            self.progress.update(self._task, completed=self.model.num_timesteps,
                                 info=self._describe())

    def _on_step(self) -> bool:
        if self.progress is not None and self.n_calls % 16 == 0:
            self.progress.update(self._task, completed=self.model.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        if self.progress is not None:
            done = self.model.num_timesteps  # the last rollout may pass the total
            self.progress.update(self._task, total=max(done, self.total), completed=done,
                                 info=self._describe())
            self.progress.stop()
            self.progress = None


def read_eval(folder: Path) -> dict[str, Any] | None:
    """The validation record saved with a model folder (``best/``, ``final/``), if any."""
    import json

    path = Path(folder) / EVAL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
