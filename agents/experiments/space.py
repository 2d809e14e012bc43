"""The search space of a tuning study: YAML data in ``configs/tune/`` validated into a
:class:`SearchSpace` (never ``eval``-ed).

A space names a PPO preset (``base``), the values every trial shares (``fixed``: usually the
per-trial budget), the sampler and pruner, and one entry per tuned config key (``params``,
dotted keys of :class:`agents.training.config.TrainConfig`, including the reward and observation
options ``env.normalize_reward``, ``env.clip_obs`` and ``env.overrides.<scenario field>``)::

    params:
      ppo.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}   # float (the field's type)
      ppo.n_epochs: {low: 3, high: 10}                            # int
      policy.net_arch: {choices: [[64, 64], [128, 128]]}          # categorical

Every bound and every choice is checked against the real config loader when the space is
loaded, so a bad space fails before any trial starts, naming the key; so does a scenario that
a baseline of ``training.baselines`` cannot play (``static`` without tuned settings for it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from agents.training.config import TrainConfig, load_train_config, parse_sets
from envs.excerpt import excerpt
from envs.paths import config_dir
from envs.presets import (
    ConfigError,
    check_choice,
    coerce_value,
    preset_path,
    read_yaml_mapping,
    require_mapping,
)

TUNE_CONFIG_DIR = config_dir("tune")
DEFAULT_SPACE = "default"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
_SPACE_KEYS = ("base", "seed", "fixed", "sampler", "pruner", "params")
_SAMPLER_KEYS = ("name", "n_startup_trials")
_PRUNER_KEYS = ("name", "n_startup_trials", "n_warmup_steps")
_PARAM_KEYS = ("type", "low", "high", "log", "step", "choices")
PARAM_TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class ParamSpec:
    """One tuned config key: a float or int range, or a list of choices."""

    key: str  # dotted config key, e.g. ppo.learning_rate
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()  # config values (lists allowed, e.g. net_arch)

    @property
    def labels(self) -> tuple[Any, ...]:
        """Optuna's categorical values: the choices, lists written as JSON text."""
        return tuple(json.dumps(c) if isinstance(c, list) else c for c in self.choices)

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw (or read back, for a retried or enqueued trial) this key's config value."""
        if self.kind == "categorical":
            label = trial.suggest_categorical(self.key, self.labels)
            return self.choices[self.labels.index(label)]
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"type": self.kind, "choices": list(self.choices)}
        out = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space (see the module docstring for the YAML)."""

    name: str  # file stem, for messages
    base: str  # PPO preset (configs/ppo/) or YAML path every trial starts from
    seed: int  # trial of slot k trains with seed + k
    fixed: Mapping[str, Any]  # dotted config values every trial shares
    sampler: str  # tpe | random
    sampler_startup_trials: int  # TPE: random trials before modelling
    pruner: str  # median | none
    pruner_startup_trials: int  # no pruning until this many trials finished
    pruner_warmup_steps: int  # no pruning before this many env steps of a trial
    params: tuple[ParamSpec, ...]
    base_config: TrainConfig  # base with the fixed values applied

    def trial_config(self, values: Mapping[str, Any], seed: int, experiment: str) -> TrainConfig:
        """The resolved training config of one trial."""
        return self.base_config.with_values(seed=seed, experiment=experiment, **dict(values))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per tuned key (dotted key -> config value)."""
        return {p.key: p.suggest(trial) for p in self.params}

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(n_startup_trials=self.sampler_startup_trials,
                                          seed=seed)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(n_startup_trials=self.pruner_startup_trials,
                                           n_warmup_steps=self.pruner_warmup_steps)

    def identity(self) -> dict[str, Any]:
        """What joining workers must share: the resolved base config, the tuned keys and
        their ranges, the seed, sampler and pruner."""
        return {"base_config": self.base_config.to_dict(), "seed": self.seed,
                "sampler": [self.sampler, self.sampler_startup_trials],
                "pruner": [self.pruner, self.pruner_startup_trials, self.pruner_warmup_steps],
                "params": {p.key: p.to_dict() for p in self.params}}

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def exported_values(self, tuned: Mapping[str, Any]) -> dict[str, Any]:
        """What a tuned preset keeps: the fixed values except the training budget
        (``training.*``, the preset's own), then the tuned values."""
        kept = {k: v for k, v in self.fixed.items() if not k.startswith("training.")}
        return {**kept, **dict(tuned)}


# ---------------------------------------------------------------------------------------------
def list_spaces() -> list[str]:
    """Names of the search spaces in ``configs/tune/``."""
    return sorted(p.stem for p in TUNE_CONFIG_DIR.glob("*.yaml"))


def space_path(name_or_path: str | Path) -> Path:
    """A space given by name (``configs/tune/<name>.yaml``) or path."""
    return preset_path(name_or_path, TUNE_CONFIG_DIR, "search space")


def load_space(name_or_path: str | Path = DEFAULT_SPACE,
               sets: list[str] | tuple[str, ...] = ()) -> SearchSpace:
    """Load and validate a search space.

    :param name_or_path: a space in ``configs/tune/`` or a YAML path.
    :param sets: ``key=value`` strings added to ``fixed`` (typed like ``train.py --set``).
    :raises ConfigError: naming the file and the key that is wrong.
    """
    path = space_path(name_or_path)
    data = read_yaml_mapping(path)
    try:
        return _build_space(path.stem, data, sets)
    except ConfigError as exc:
        raise ConfigError(f"search space {path}: {exc}") from None


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    return {} if value is None else require_mapping(key, value)


def _known(section: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) in {section}: {', '.join(unknown)} "
                          f"(known: {', '.join(known)})")


def _whole(key: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: expected a whole number >= {minimum}, got {excerpt(value)}")
    return value


def _build_space(name: str, data: Any, sets: list[str] | tuple[str, ...]) -> SearchSpace:
    data = _mapping("the space", data)
    _known("the space", data, _SPACE_KEYS)
    base = data.get("base", "default")
    if not isinstance(base, str):
        raise ConfigError(f"base: expected a PPO preset name or path, got {excerpt(base)}")
    fixed = {str(k): v for k, v in _mapping("fixed", data.get("fixed")).items()}
    fixed.update(parse_sets(sets))
    base_config = load_train_config(base, values=fixed)  # names a bad fixed key
    from agents.training.factory import check_baselines  # the trials' baselines play it

    check_baselines(base_config, fix="--set training.baselines=static_rule,playbook (or "
                    "training.baselines in the space's fixed values)")

    sampler = _mapping("sampler", data.get("sampler"))
    _known("sampler", sampler, _SAMPLER_KEYS)
    pruner = _mapping("pruner", data.get("pruner"))
    _known("pruner", pruner, _PRUNER_KEYS)
    check_choice("sampler.name", sampler.get("name", "tpe"), SAMPLERS)
    check_choice("pruner.name", pruner.get("name", "median"), PRUNERS)

    raw_params = _mapping("params", data.get("params"))
    if not raw_params:
        raise ConfigError("params: needs at least one config key to tune")
    params = tuple(_param(str(key), spec, base_config, fixed) for key, spec in
                   raw_params.items())
    _check_batch_fits(params, base_config)
    return SearchSpace(
        name=name, base=base, seed=_whole("seed", data.get("seed", 0)), fixed=fixed,
        sampler=sampler.get("name", "tpe"),
        sampler_startup_trials=_whole("sampler.n_startup_trials",
                                      sampler.get("n_startup_trials", 5)),
        pruner=pruner.get("name", "median"),
        pruner_startup_trials=_whole("pruner.n_startup_trials",
                                     pruner.get("n_startup_trials", 3)),
        pruner_warmup_steps=_whole("pruner.n_warmup_steps", pruner.get("n_warmup_steps", 0)),
        params=params, base_config=base_config)


def _current_value(config: TrainConfig, key: str) -> Any:
    """The value ``key`` has in ``config`` (a scenario field's for ``env.overrides.<x>``)."""
    if key.startswith("env.overrides."):
        field = key.removeprefix("env.overrides.")
        scenario = config.scenario_config().to_dict()
        if field not in scenario:
            raise ConfigError(f"{key}: {excerpt(field)} is not a scenario field")
        return scenario[field]
    node: Any = config.to_dict()
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{key}: not a config key")
        node = node[part]
    return node


def _param(key: str, spec: Any, base: TrainConfig, fixed: Mapping[str, Any]) -> ParamSpec:
    where = f"params.{key}"
    if key in fixed:
        raise ConfigError(f"{where}: also in fixed; a key is either fixed or tuned")
    if key in ("seed", "experiment"):
        raise ConfigError(f"{where}: set by the study for each trial, cannot be tuned")
    spec = _mapping(where, spec)
    _known(where, spec, _PARAM_KEYS)
    current = _current_value(base, key)
    if "choices" in spec:
        kind = spec.get("type", "categorical")
        if kind != "categorical" or any(k in spec for k in ("low", "high", "log", "step")):
            raise ConfigError(f"{where}: choices go alone (type: categorical)")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: expected a non-empty list, got {excerpt(choices)}")
        for choice in choices:
            if not isinstance(choice, (bool, int, float, str, list)) and choice is not None:
                raise ConfigError(f"{where}.choices: {excerpt(choice)} is not a number, string, "
                                  "true/false, null or list")
        labels = [json.dumps(c) if isinstance(c, list) else c for c in choices]
        if len(set(map(repr, labels))) != len(labels):
            raise ConfigError(f"{where}.choices: repeated values")
        param = ParamSpec(key, "categorical", choices=tuple(choices))
        candidates = list(choices)
    else:
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{where}: needs either choices or low and high")
        default_kind = "int" if isinstance(current, int) and not isinstance(current, bool) \
            else "float"
        kind = spec.get("type", default_kind)
        if kind not in ("float", "int"):
            raise ConfigError(f"{where}.type: {excerpt(kind)} is not float or int for a range")
        bounds = []
        for end in ("low", "high"):
            value = coerce_value(f"{where}.{end}", spec[end], float)  # a finite number
            if kind == "int" and not value.is_integer():
                raise ConfigError(f"{where}.{end}: expected a whole number, got "
                                  f"{excerpt(spec[end])}")
            bounds.append(int(value) if kind == "int" else value)
        low, high = bounds
        if not low < high:
            raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log: expected true or false, got {excerpt(log)}")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
        step = spec.get("step")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
                raise ConfigError(f"{where}.step: expected a number > 0, got {excerpt(step)}")
            if kind == "int" and not float(step).is_integer():
                raise ConfigError(f"{where}.step: an int range needs a whole step, got "
                                  f"{excerpt(step)}")
            if log:
                raise ConfigError(f"{where}: step and log cannot be combined")
        param = ParamSpec(key, kind, low=low, high=high, log=log, step=step)
        candidates = [low, high]
    for value in candidates:
        try:
            base.with_values(**{**fixed, key: value})
        except ConfigError as exc:
            raise ConfigError(f"{where}: value {excerpt(value)} is not valid ({exc})") from None
    return param


def _extremes(params: tuple[ParamSpec, ...], base: TrainConfig, key: str) -> tuple[float, float]:
    for p in params:
        if p.key == key:
            values = p.choices if p.kind == "categorical" else (p.low, p.high)
            return min(values), max(values)
    value = _current_value(base, key)
    return value, value


def _check_batch_fits(params: tuple[ParamSpec, ...], base: TrainConfig) -> None:
    """The largest minibatch must fit the smallest rollout (``n_envs x n_steps``)."""
    n_envs, _ = _extremes(params, base, "env.n_envs")
    n_steps, _ = _extremes(params, base, "ppo.n_steps")
    _, batch = _extremes(params, base, "ppo.batch_size")
    if batch > n_envs * n_steps:
        raise ConfigError(f"params: ppo.batch_size up to {batch} exceeds the smallest rollout "
                          f"(env.n_envs x ppo.n_steps = {n_envs} x {n_steps})")
