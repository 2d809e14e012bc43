"""Validation during training: the model and every baseline of ``training.baselines``
(``[static, playbook]`` by default) on the same validation seeds (from 20000), compared
paired on the run's objective and on profit.

An episode's *value* is its worth under the scenario's objective in CNY
(:func:`agents.evaluation.rollout.objective_values`: the profit of a ``profit`` run, the
summed ``gmv_floor`` reward x ``reward_scale_cny`` of a ``gmv_floor`` run). The first baseline
is the verdict's (and tuning's score); the others are compared the same way. A
cross-scenario run validates on each of its scenarios (the same seeds in each); its result
is the mean over the scenarios, the differences' intervals stratified by scenario.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from agents.evaluation.intervals import CONFIDENCE, stratified_difference
from agents.evaluation.rollout import RolloutResult, objective_values, rollout
from agents.policies import make_policy
from envs.config import ScenarioConfig
from envs.metrics import EPISODE_METRICS
from envs.reward import TERMINAL_VALUE
from envs.seeds import VALIDATION_SEED

VALUE = "value"  # the mean key and tag of an episode's value under the run's objective (CNY)
QUANTITIES = (VALUE, "profit")  # what PPO and each baseline are compared on, paired
VERDICT_WORDS = {"better": "better than", "worse": "worse than",
                 "not distinguishable": "not distinguishable from"}


def validation_seeds(n: int) -> np.ndarray:
    """The first ``n`` validation seeds (20000, 20001, ...)."""
    return np.arange(VALIDATION_SEED, VALIDATION_SEED + n)


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
