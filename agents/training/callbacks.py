"""Training callbacks: business metrics, validation against baselines, checkpoints, progress.

Validation plays the model and every baseline of ``training.baselines`` (``[static,
playbook]`` by default) on the same validation seeds (from 20000) and compares them paired,
on the run's objective and on profit. An episode's *value* is its worth under the scenario's
objective in CNY (:func:`agents.evaluation.rollout.objective_values`: the profit of a
``profit`` run, the summed ``gmv_floor`` reward x ``reward_scale_cny`` of a ``gmv_floor``
run). The first baseline is the verdict's (and tuning's score); the others are compared the same
way.

TensorBoard tags written here (contracts), besides SB3's ``rollout/`` and ``train/``:

- ``market/<metric>``: mean episode metric of the training episodes that just ended
  (``envs.metrics.EPISODE_METRICS``), ``market/reward_terms/<term>``: their reward terms in
  CNY per episode;
- ``eval/ppo/<metric>`` and ``eval/<baseline>/<metric>`` for every baseline
  (``eval/static/profit``, ``eval/playbook/profit``, ...) at the same step: means over the
  validation seeds, plus ``return`` (reward units) and ``value`` (CNY, the run's objective);
- ``eval/ppo_vs_<baseline>/value_diff`` with ``value_diff_ci_low`` / ``value_diff_ci_high``
  and ``eval/ppo_vs_<baseline>/profit_diff`` with ``profit_diff_ci_low`` /
  ``profit_diff_ci_high``, for every baseline: the paired difference per episode (CNY) and its
  95% t-interval;
- ``eval/verdict`` (text): the comparison in words, naming the baseline and the objective.

A cross-scenario run validates on each of its scenarios (the same seeds in each): the ``eval/``
tags above are then means over the scenarios (the differences' intervals stratified by
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

from agents.evaluation.rollout import RolloutResult, objective_values, rollout
from agents.policies import make_policy
from agents.run_folder import (
    CHECKPOINTS_DIR,
    EVAL_FILE,
    save_model_dir,
    update_run_json,
)
from envs.config import ScenarioConfig
from envs.metrics import EPISODE_METRICS
from envs.reward import TERMINAL_VALUE

VALIDATION_SEED_START = 20000  # contracts: validation during training and tuning
CONFIDENCE = 0.95
VALUE = "value"  # the mean key and tag of an episode's value under the run's objective (CNY)
QUANTITIES = (VALUE, "profit")  # what PPO and each baseline are compared on, paired
VERDICT_WORDS = {"better": "better than", "worse": "worse than",
                 "not distinguishable": "not distinguishable from"}


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


def comparison_tags(baseline: str, prefix: str = "eval",
                    quantity: str = "profit") -> dict[str, str]:
    """Tags of the paired comparison against ``baseline`` on ``quantity`` (``value`` or
    ``profit``); prefix ``eval_<scenario>``: one scenario of a cross-scenario run."""
    group = f"{prefix}/ppo_vs_{baseline}"
    return {"diff": f"{group}/{quantity}_diff", "low": f"{group}/{quantity}_diff_ci_low",
            "high": f"{group}/{quantity}_diff_ci_high"}


def analyst_layout(baselines: tuple[str, ...], scenarios: tuple[str, ...] = (),
                   objective: str = "profit") -> dict[str, dict[str, list]]:
    """CUSTOM SCALARS charts that put PPO and the baselines on the same axes.

    A run's lines share its colour; the baselines' are the flat ones (the same deterministic
    policies on the same seeds at every validation).

    :param baselines: the first is the verdict's (its charts come first).
    :param scenarios: the scenarios of a cross-scenario run (charts for each).
    :param objective: the run's objective, for the titles (the tags do not depend on it).
    """
    first, names = baselines[0], " and ".join(baselines)

    def lines(metric: str, prefix: str = "eval") -> list:
        return ["Multiline", [f"^{prefix}/{who}/{metric}$" for who in ("ppo", *baselines)]]

    def margin(baseline: str, quantity: str, prefix: str = "eval") -> list:
        tags = comparison_tags(baseline, prefix, quantity)
        return ["Margin", [tags["diff"], tags["low"], tags["high"]]]

    value = f"{objective} value per episode, CNY"
    charts: dict[str, list] = {}
    for baseline in baselines:
        charts[f"PPO minus {baseline}: {value}, 95% CI (above 0: PPO better)"] = margin(
            baseline, VALUE)
    charts[f"{value}: PPO (curve) vs {names} (flat lines)"] = lines(VALUE)
    for baseline in baselines:
        charts[f"PPO minus {baseline}: profit per episode, CNY, 95% CI"] = margin(
            baseline, "profit")
    charts[f"profit per episode, CNY: PPO (curve) vs {names} (flat lines)"] = lines("profit")
    for metric in ("settlement_roi", "gmv", "spend", "roi_floor_violation_days"):
        charts[f"{metric}: PPO (curve) vs {names} (flat lines)"] = lines(metric)
    training = {
        "profit per training episode, CNY": ["Multiline", ["^market/profit$"]],
        "settlement ROI of training episodes": ["Multiline", ["^market/settlement_roi$"]],
        "reward terms per training episode, CNY": ["Multiline", ["^market/reward_terms/"]],
    }
    layout = {f"Does PPO beat {first}? ({objective}, validation seeds 20000..)": charts,
              "Training episodes": training}
    if scenarios:
        per: dict[str, list] = {}
        for name in scenarios:
            prefix = f"eval_{name}"
            for baseline in baselines:
                per[f"{name}: PPO minus {baseline}, {value}, 95% CI"] = margin(
                    baseline, VALUE, prefix)
            per[f"{name}: {value}: PPO vs {names}"] = lines(VALUE, prefix)
            per[f"{name}: profit per episode, CNY: PPO vs {names}"] = lines("profit", prefix)
        layout[f"Per scenario (the charts above: means over {len(scenarios)} scenarios)"] = per
    return layout


# ---------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """PPO against one baseline on the same validation seeds: paired differences per episode
    (CNY) with their 95% intervals, on the run's objective (``value``) and on profit."""

    baseline: str
    reference: dict[str, float]  # the baseline's mean episode metrics, return and value
    value_diff: float  # mean paired PPO - baseline value (the run's objective), CNY per episode
    value_diff_ci_low: float
    value_diff_ci_high: float
    profit_diff: float  # mean paired PPO - baseline profit, CNY per episode
    profit_diff_ci_low: float
    profit_diff_ci_high: float

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``not distinguishable``: the value's 95% interval vs 0."""
        if self.value_diff_ci_low > 0:
            return "better"
        if self.value_diff_ci_high < 0:
            return "worse"
        return "not distinguishable"

    def interval(self, quantity: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` of the paired difference on ``value`` or ``profit``."""
        ends = ("", "_ci_low", "_ci_high")
        return tuple(getattr(self, f"{quantity}_diff{end}") for end in ends)

    def clause(self, objective: str | None = None) -> str:
        """``better than static (+1,234 CNY per episode, 95% CI [...], objective profit)``;
        the objective only when given."""
        diff, low, high = self.interval(VALUE)
        tail = f", objective {objective}" if objective else ""
        return (f"{VERDICT_WORDS[self.verdict]} {self.baseline} ({diff:+,.0f} CNY per "
                f"episode, {CONFIDENCE:.0%} CI [{low:+,.0f}, {high:+,.0f}]{tail})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class ValidationResult:
    """PPO and the baselines on the same validation seeds at one training step.

    ``comparisons`` holds one :class:`Comparison` per baseline in ``training.baselines``
    order; the first (:attr:`primary`) is the one the verdict, tuning's score and
    :meth:`to_dict`'s top-level ``reference`` / ``value_diff*`` / ``profit_diff*`` /
    ``verdict`` are about.
    """

    step: int
    objective: str  # the scenario's objective: what "value" means (profit or gmv_floor)
    n_seeds: int
    ppo: dict[str, float]  # mean episode metrics (CNY, ROI, days), return and value
    comparisons: dict[str, Comparison]
    per_scenario: dict[str, ValidationResult] | None = None  # a cross-scenario run's parts

    @property
    def primary(self) -> Comparison:
        """The comparison against the first baseline (the verdict's)."""
        return next(iter(self.comparisons.values()))

    @property
    def baseline(self) -> str:
        return self.primary.baseline

    @property
    def verdict(self) -> str:
        return self.primary.verdict

    def sentence(self) -> str:
        """The verdict in words: against the first baseline, then the others, then the
        means."""
        main, others = self.primary, list(self.comparisons.values())[1:]
        text = f"step {self.step:,}: PPO is {main.clause(self.objective)}"
        if others:
            text += "; " + "; ".join(c.clause() for c in others)
        values = ", ".join(f"{c.baseline} {c.reference[VALUE]:,.0f}"
                           for c in self.comparisons.values())
        label = "profit" if self.objective == "profit" else f"{self.objective} value"
        text += (f". Over {self.n_seeds} validation seeds, {label} per episode (CNY): "
                 f"PPO {self.ppo[VALUE]:,.0f}, {values}")
        if self.objective != "profit":
            profits = ", ".join(
                f"{c.baseline} {c.reference['profit']:,.0f} (PPO - {c.baseline} "
                f"{c.profit_diff:+,.0f} [{c.profit_diff_ci_low:+,.0f}, "
                f"{c.profit_diff_ci_high:+,.0f}])" for c in self.comparisons.values())
            text += f"; profit: PPO {self.ppo['profit']:,.0f}, {profits}"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``eval.json``, ``run.json``'s ``final_eval``): ``step``,
        ``objective``, ``n_seeds``, ``baseline`` (the first), ``baselines``, ``ppo``, the
        first comparison's ``reference``, ``value_diff*``, ``profit_diff*`` and ``verdict``,
        ``comparisons`` (every baseline's, same keys) and, across scenarios,
        ``per_scenario`` (each scenario's, same structure)."""
        main = self.primary.to_dict()
        main.pop("baseline")
        out = {"step": self.step, "objective": self.objective, "n_seeds": self.n_seeds,
               "baseline": self.baseline, "baselines": list(self.comparisons), "ppo": self.ppo,
               **main, "comparisons": {k: c.to_dict() for k, c in self.comparisons.items()}}
        if self.per_scenario is not None:
            out["per_scenario"] = {k: v.to_dict() for k, v in self.per_scenario.items()}
        return out


def _means(config: ScenarioConfig, result: RolloutResult) -> dict[str, float]:
    """Mean episode metrics, return and value (``config``'s objective, CNY) over the seeds."""
    out = {k: float(np.mean(result.metrics[k])) for k in EPISODE_METRICS}
    if TERMINAL_VALUE in result.metrics:  # the final state's value (terminal_value_days > 0)
        out[TERMINAL_VALUE] = float(np.mean(result.metrics[TERMINAL_VALUE]))
    out["return"] = float(np.mean(result.returns))
    out[VALUE] = float(np.mean(objective_values(config, result)))
    return out


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def _comparison(baseline: str, reference: dict[str, float],
                diffs: list[dict[str, np.ndarray]]) -> Comparison:
    """A comparison from the per-seed differences of each stratum (scenario): the mean over
    strata and its stratified interval (one stratum: the paired t-interval)."""
    out: list[float] = []
    for quantity in QUANTITIES:
        out += stratified_difference([d[quantity] for d in diffs])
    return Comparison(baseline, reference, *out)


class Validator:
    """Runs a model (with its frozen observation normaliser) and the baseline policies on the
    validation seeds of one scenario. The baselines' episodes do not change during training:
    each runs once.

    :raises agents.policies.baseline_store.BaselineError: a tuned baseline (``static``) has
        no settings for the scenario and objective (made when the validator is, before any rollout).
    """

    def __init__(self, scenario: ScenarioConfig, baselines: tuple[str, ...], n_episodes: int,
                 anchored: bool = False):
        self.scenario = scenario
        self.anchored = anchored  # the model outputs residuals on static (agents.policies.anchored)
        self.baselines = tuple(baselines)
        self.seeds = validation_seeds(n_episodes)
        self._policies = {name: make_policy(name, scenario) for name in self.baselines}
        self._references: dict[str, RolloutResult] = {}

    def reference(self, baseline: str) -> RolloutResult:
        """A baseline's episodes (it acts through its own action space if it has one)."""
        if baseline not in self._references:
            policy = self._policies[baseline]
            self._references[baseline] = rollout(
                policy, getattr(policy, "config", self.scenario), self.seeds)
        return self._references[baseline]

    def rollout_model(self, model, vecnormalize) -> RolloutResult:
        """Deterministic PPO actions on raw observations normalised by frozen statistics."""
        if self.anchored:
            from agents.policies.anchored import AnchoredPolicy, sb3_predictor

            policy = AnchoredPolicy(sb3_predictor(model), self.scenario,
                                    observation_filter=vecnormalize.normalize_obs)
            return rollout(policy, policy.config, self.seeds)
        return rollout(model, self.scenario, self.seeds,
                       observation_filter=vecnormalize.normalize_obs)

    def differences(self, ppo: RolloutResult) -> dict[str, dict[str, np.ndarray]]:
        """Per baseline, per quantity (``value``, ``profit``): PPO - baseline per seed."""
        mine = {VALUE: objective_values(self.scenario, ppo), "profit": ppo.metrics["profit"]}
        out = {}
        for name in self.baselines:
            ref = self.reference(name)
            theirs = {VALUE: objective_values(self.scenario, ref),
                      "profit": ref.metrics["profit"]}
            out[name] = {q: np.asarray(mine[q], float) - np.asarray(theirs[q], float)
                         for q in QUANTITIES}
        return out

    def result(self, ppo: RolloutResult, step: int) -> ValidationResult:
        """PPO's episodes against every baseline's."""
        diffs = self.differences(ppo)
        comparisons = {name: _comparison(name, _means(self.scenario, self.reference(name)),
                                         [diffs[name]]) for name in self.baselines}
        return ValidationResult(step, self.scenario.objective, len(self.seeds),
                                _means(self.scenario, ppo), comparisons)

    def evaluate(self, model, vecnormalize, step: int) -> ValidationResult:
        """PPO against the baselines on the validation seeds."""
        return self.result(self.rollout_model(model, vecnormalize), step)


class ScenarioValidators:
    """Validation of a cross-scenario run: PPO and the baselines on the validation seeds of
    each scenario; the result is the mean over the scenarios (differences with intervals
    stratified by scenario), with each scenario's own result in
    :attr:`ValidationResult.per_scenario`."""

    def __init__(self, scenarios: list[ScenarioConfig], baselines: tuple[str, ...],
                 n_episodes: int, anchored: bool = False):
        self.baselines = tuple(baselines)
        self.validators = [Validator(sc, baselines, n_episodes, anchored) for sc in scenarios]

    def evaluate(self, model, vecnormalize, step: int) -> ValidationResult:
        parts: dict[str, ValidationResult] = {}
        diffs: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in self.baselines}
        for validator in self.validators:
            ppo = validator.rollout_model(model, vecnormalize)
            parts[validator.scenario.name] = validator.result(ppo, step)
            for name, diff in validator.differences(ppo).items():
                diffs[name].append(diff)
        comparisons = {name: _comparison(
            name, _mean_dicts([p.comparisons[name].reference for p in parts.values()]),
            diffs[name]) for name in self.baselines}
        return ValidationResult(
            step, self.validators[0].scenario.objective,
            sum(len(v.seeds) for v in self.validators),
            _mean_dicts([p.ppo for p in parts.values()]), comparisons, parts)


def make_validator(scenarios: list[ScenarioConfig], baselines: tuple[str, ...],
                   n_episodes: int, anchored: bool = False) -> Validator | ScenarioValidators:
    """A :class:`Validator` for one scenario, :class:`ScenarioValidators` for several
    (``anchored``: the model outputs residuals on ``static``, :mod:`agents.policies.anchored`)."""
    if len(scenarios) == 1:
        return Validator(scenarios[0], baselines, n_episodes, anchored)
    return ScenarioValidators(scenarios, baselines, n_episodes, anchored)


def _write_scalars(writer, result: ValidationResult, prefix: str) -> None:
    step = result.step
    for key, value in result.ppo.items():
        writer.add_scalar(f"{prefix}/ppo/{key}", value, step)
    for name, comparison in result.comparisons.items():
        for key, value in comparison.reference.items():
            writer.add_scalar(f"{prefix}/{name}/{key}", value, step)
        for quantity in QUANTITIES:
            tags = comparison_tags(name, prefix, quantity)
            for end, value in zip(("diff", "low", "high"), comparison.interval(quantity),
                                  strict=True):
                writer.add_scalar(tags[end], value, step)


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
    the last validation's value (the run's objective) next to the first baseline's."""

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
            parts.append(f"val {last.objective}: PPO {_short_cny(last.ppo[VALUE])} vs "
                         f"{last.baseline} {_short_cny(last.primary.reference[VALUE])}")
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
