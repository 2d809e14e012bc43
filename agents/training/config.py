"""Typed PPO training config: YAML data in ``configs/ppo/`` validated into frozen dataclasses.

Every preset is merged over ``configs/ppo/default.yaml`` (which names every key), or over the
preset it names with ``base: <name>``. Unknown keys, wrong types and out-of-range values raise
:class:`envs.config.ConfigError` naming the dotted key (``ppo.n_steps``). Nothing is ever
``eval``-ed: the network is a list of layer widths, the activation a name from
:data:`ACTIVATIONS`.

``--set key=value`` overrides are parsed by the type of the field they name, so
``--set ppo.learning_rate=3e-4`` is a float and ``--set policy.net_arch=64,64`` a list of ints.

``env.scenario`` is one scenario, or a list of them for one policy trained across scenarios
(``--set env.scenario=3c,food``; ``env.overrides`` apply to each).

``training.baselines`` lists the registered policies a run is validated against (``[static,
playbook]`` by default; the first is the one the verdict and tuning's score are about). Configs
written before it had one ``training.baseline: <name>``; they still load, as ``baselines:
[static, <name>]`` (:func:`migrate_old_keys`); ``--set training.baseline=...`` is an error
naming the new key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from envs.config import SCENARIO_DIR, ScenarioConfig, is_unseen, load_scenario
from envs.excerpt import excerpt
from envs.paths import config_dir
from envs.presets import (
    ConfigError,
    build_dataclass,
    check_choice,
    check_positive,
    merge_sections,
    preset_path,
    read_preset,
    read_yaml_mapping,
)

PPO_CONFIG_DIR = config_dir("ppo")
DEFAULT_PRESET = "default"
ANCHORS = ("none", "static")  # env.anchor (agents.policies.anchored)

# Activation names a config may use -> torch.nn class names (resolved in training).
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "silu")
LR_SCHEDULES = ("constant", "linear")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?|mps)$")
MIX_NAME = "mix"  # the <scenario> part of a cross-scenario run's folder name
FIRST_BASELINE = "static"  # an old config's single baseline is validated after this one
RENAMED_KEYS = {"training.baseline": "training.baselines"}  # old dotted key -> new one


@dataclass(frozen=True)
class EnvSection:
    """The vectorised environment PPO trains on."""

    scenario: str | tuple[str, ...]  # preset name in configs/scenarios/ or a YAML path; or a
    # list of them: one batch of accounts split across the scenarios (cross-scenario training)
    overrides: Mapping[str, Any]  # scenario fields to override, in every scenario
    n_envs: int  # accounts simulated in parallel
    normalize_reward: bool  # VecNormalize also scales rewards (observations always are)
    clip_obs: float  # normalised observations are clipped to +-clip_obs
    anchor: str = "none"  # none: the env's raw actions; static: residuals on static's
    # settings (agents.policies.anchored; old runs without the key are raw)
    paired_reward: bool = False  # reward = the account's day - a twin's playing static on the
    # same market (needs anchor: static)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        if self.anchor not in ANCHORS:
            raise ConfigError(f"env.anchor: {excerpt(self.anchor)} is not one of "
                              f"{', '.join(ANCHORS)}")
        if self.paired_reward and self.anchor != "static":
            raise ConfigError("env.paired_reward: the twin plays the anchor, so it needs "
                              "env.anchor: static")
        if isinstance(self.scenario, tuple):
            if not self.scenario:
                raise ConfigError("env.scenario: an empty list names no scenario")
            if len(set(self.scenario)) != len(self.scenario):
                raise ConfigError(f"env.scenario: {list(self.scenario)} names a scenario twice")
            if self.n_envs < len(self.scenario):
                raise ConfigError(f"env.n_envs: {self.n_envs} accounts cannot cover "
                                  f"{len(self.scenario)} scenarios")
        check_positive("env.n_envs", self.n_envs)
        check_positive("env.clip_obs", self.clip_obs)
        for name in self.scenarios:
            if is_unseen(name):
                raise ConfigError(f"env.scenario: {excerpt(name)} is an unseen market "
                                  "(configs/scenarios/unseen/): nothing trains or tunes on one; "
                                  "play it with scripts/evaluate.py --unseen")

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenario names as a tuple (one for a single-scenario run)."""
        return self.scenario if isinstance(self.scenario, tuple) else (self.scenario,)


@dataclass(frozen=True)
class PPOSection:
    """stable-baselines3 PPO hyperparameters (same names as ``PPO(...)``)."""

    learning_rate: float
    lr_schedule: str  # "constant" or "linear" (decays to 0 at the last step)
    n_steps: int  # steps per env per rollout
    batch_size: int  # minibatch size
    n_epochs: int
    gamma: float  # discount per day
    gae_lambda: float
    clip_range: float
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    target_kl: float | None  # early stop of an update's epochs (null: off)

    def __post_init__(self) -> None:
        for key in ("learning_rate", "n_steps", "batch_size", "n_epochs", "clip_range",
                    "max_grad_norm"):
            check_positive(f"ppo.{key}", getattr(self, key))
        for key in ("gamma", "gae_lambda"):
            if not 0.0 < getattr(self, key) <= 1.0:
                raise ConfigError(f"ppo.{key}: must be in (0, 1], got {getattr(self, key)!r}")
        for key in ("ent_coef", "vf_coef"):
            if getattr(self, key) < 0:
                raise ConfigError(f"ppo.{key}: must be >= 0, got {excerpt(getattr(self, key))}")
        if self.batch_size < 2:
            raise ConfigError("ppo.batch_size: must be at least 2")
        if self.target_kl is not None:
            check_positive("ppo.target_kl", self.target_kl)
        check_choice("ppo.lr_schedule", self.lr_schedule, LR_SCHEDULES)


@dataclass(frozen=True)
class PolicySection:
    """The actor-critic network (separate actor and critic MLPs of the same widths)."""

    net_arch: tuple[int, ...]  # hidden layer widths
    activation: str  # one of ACTIVATIONS
    log_std_init: float  # initial log standard deviation of the Gaussian actions
    ortho_init: bool

    def __post_init__(self) -> None:
        if not self.net_arch:
            raise ConfigError("policy.net_arch: needs at least one layer width")
        for width in self.net_arch:
            check_positive("policy.net_arch", width)
        check_choice("policy.activation", self.activation, ACTIVATIONS)


@dataclass(frozen=True)
class TrainingSection:
    """Length, checkpoints, validation and machine settings of a run."""

    total_timesteps: int  # env steps (account-days) over all envs
    checkpoint_freq: int  # env steps between checkpoints (rounded up to whole rollouts)
    eval_freq: int  # env steps between validation runs (rounded up to whole rollouts)
    eval_episodes: int  # validation seeds, from 20000 (contracts)
    baselines: tuple[str, ...]  # registered policies played on the same validation seeds; the
    # first is the verdict's and tuning's (paired difference of the objective's value, CNY)
    device: str  # torch device: cpu, auto, cuda, cuda:N
    torch_threads: int  # torch CPU threads (1 is fastest for small MLPs on 2 cores)
    progress_bar: bool

    def __post_init__(self) -> None:
        for key in ("total_timesteps", "checkpoint_freq", "eval_freq", "torch_threads"):
            check_positive(f"training.{key}", getattr(self, key))
        if self.eval_episodes < 2:
            raise ConfigError("training.eval_episodes: needs at least 2 (for a confidence "
                              f"interval), got {self.eval_episodes}")
        if not _DEVICE.match(self.device):
            raise ConfigError(f"training.device: {excerpt(self.device)} is not cpu, auto, cuda, "
                              "cuda:N or mps")
        _check_baselines(self.baselines)

    @property
    def baseline(self) -> str:
        """The baseline the verdict and tuning's score are about (the first of ``baselines``)."""
        return self.baselines[0]


@dataclass(frozen=True)
class LagrangianSection:
    """The settlement-ROI floor as a constraint: dual ascent on its Lagrange multiplier.

    After each rollout the multiplier (CNY of reward per CNY of settled GMV short of the floor)
    moves by ``lr x (mean violation days of the rollout's episodes - target)``, within
    ``[0, max_multiplier]``; the simulator charges ``multiplier x shortfall`` as the reward
    term ``floor_lagrangian``. Missing from runs made before it existed: off.
    """

    enabled: bool = False
    target_violation_days: float = 0.0  # ROI-floor violation days per episode allowed
    lr: float = 0.0  # multiplier change per violation day above the target, per rollout
    max_multiplier: float = 0.0  # upper bound of the multiplier
    initial_multiplier: float = 0.0  # the multiplier of the first rollout

    def __post_init__(self) -> None:
        for key in ("target_violation_days", "lr", "max_multiplier", "initial_multiplier"):
            if getattr(self, key) < 0:
                raise ConfigError(f"lagrangian.{key}: must be >= 0, got {getattr(self, key)!r}")
        if self.initial_multiplier > self.max_multiplier:
            raise ConfigError(f"lagrangian.initial_multiplier: {self.initial_multiplier} "
                              f"exceeds lagrangian.max_multiplier ({self.max_multiplier})")
        if self.enabled and not (self.lr > 0 and self.max_multiplier > 0):
            raise ConfigError("lagrangian: enabled needs lr > 0 and max_multiplier > 0")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a PPO training run (the resolved ``config.yaml``)."""

    experiment: str  # the <exp> part of the run folder's name
    seed: int  # the run's seed: torch, the training env's draws
    env: EnvSection
    ppo: PPOSection
    policy: PolicySection
    training: TrainingSection
    lagrangian: LagrangianSection = LagrangianSection()  # off in runs made before it existed

    def __post_init__(self) -> None:
        if not _NAME.match(self.experiment) or "__" in self.experiment:
            raise ConfigError(f"experiment: {excerpt(self.experiment)} must be letters, digits, "
                              "'-', '_' or '.', without '__'")
        if self.seed < 0:
            raise ConfigError(f"seed: must be >= 0, got {self.seed}")
        rollout = self.env.n_envs * self.ppo.n_steps
        if self.ppo.batch_size > rollout:
            raise ConfigError(f"ppo.batch_size: {self.ppo.batch_size} exceeds the rollout "
                              f"(env.n_envs x ppo.n_steps = {rollout})")

    @property
    def is_mix(self) -> bool:
        """Whether the run trains across several scenarios."""
        return isinstance(self.env.scenario, tuple) and len(self.env.scenario) > 1

    @property
    def rollout_steps(self) -> int:
        """Env steps collected per PPO update (``n_envs * n_steps``)."""
        return self.env.n_envs * self.ppo.n_steps

    def scenario_config(self) -> ScenarioConfig:
        """The scenario this run trains on, with its overrides applied (the first one of a
        cross-scenario run)."""
        return self.scenario_configs()[0]

    def scenario_configs(self) -> list[ScenarioConfig]:
        """Every scenario this run trains on, in order, with the overrides applied."""
        return [load_scenario(name, **dict(self.env.overrides)) for name in self.env.scenarios]

    def run_label(self, scenarios: list[ScenarioConfig] | None = None) -> str:
        """The ``<scenario>`` part of the run folder's name (``mix`` across scenarios).

        :param scenarios: this config's :meth:`scenario_configs`, if the caller has them
            (else they are loaded)."""
        if self.is_mix:
            return MIX_NAME
        return (scenarios if scenarios is not None else self.scenario_configs())[0].name

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly data (tuples as lists), loadable again by :func:`from_dict`."""
        return _plain(self)

    def hash(self) -> str:
        """Short sha256 of the resolved values."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def with_values(self, **dotted: Any) -> TrainConfig:
        """A copy with dotted-key values replaced (``{"training.device": "cpu"}``)."""
        data = self.to_dict()
        for key, value in dotted.items():
            _set_dotted(data, key, value)
        return from_dict(data)


# ---------------------------------------------------------------------------------------------
def _check_baselines(names: tuple[str, ...]) -> None:
    """Baselines: at least one, each a registered policy, none twice."""
    from agents.policies import POLICIES  # registers every policy (light: no simulator)

    if not names:
        raise ConfigError("training.baselines: needs at least one policy (the first is the "
                          "verdict's), e.g. [static, playbook]")
    if len(set(names)) != len(names):
        raise ConfigError(f"training.baselines: {list(names)} names a policy twice")
    for name in names:
        if name not in POLICIES:
            raise ConfigError(f"training.baselines: {excerpt(name)} is not a registered policy "
                              f"(known: {', '.join(sorted(POLICIES))})")


def migrate_old_keys(data: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Config data with old keys in their new form: ``training.baseline: X`` (one policy, the
    only comparison before tuned baselines existed) becomes ``training.baselines: [static,
    X]`` (``[static]`` for ``X = static``), so older presets and run folders still load.

    :param where: the file, for the error when both keys are given.
    """
    training = data.get("training")
    if not isinstance(training, Mapping) or "baseline" not in training:
        return dict(data)
    if "baselines" in training:
        raise ConfigError(f"{where}training.baseline and training.baselines are both given; "
                          "training.baseline is the old name: keep only training.baselines")
    old = training["baseline"]
    if not isinstance(old, str):
        raise ConfigError(f"{where}training.baseline: expected a policy name, got {excerpt(old)} "
                          "(the old key; write training.baselines: [static, <name>])")
    new = {k: v for k, v in training.items() if k != "baseline"}
    new["baselines"] = list(dict.fromkeys([FIRST_BASELINE, old]))
    return {**data, "training": new}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A validated config from complete plain data (old keys migrated,
    :func:`migrate_old_keys`); also checks the scenario and overrides."""
    config = build_dataclass(TrainConfig, migrate_old_keys(data))
    try:
        configs = config.scenario_configs()
    except ConfigError as exc:
        raise ConfigError(f"env: {exc}") from None
    for cfg in configs[1:]:  # one batch steps the scenarios together (envs.simulator.ScenarioMix)
        for key in ("episode_days", "action_space", "objective"):
            if getattr(cfg, key) != getattr(configs[0], key):
                raise ConfigError(f"env.scenario: {configs[0].name!r} and {cfg.name!r} differ "
                                  f"in {key}; scenarios trained together must share it")
    return config


# ---------------------------------------------------------------------------------------------
def list_presets() -> list[str]:
    """Names of the presets in ``configs/ppo/``."""
    return sorted(p.stem for p in PPO_CONFIG_DIR.glob("*.yaml"))


def preset_for_scenario(scenario: str) -> str:
    """The PPO preset a scenario trains with by default: the one its file names with
    ``training_preset:`` (``configs/scenarios/promo_heavy.yaml``: ``promo_heavy``), else
    ``default``. The key is read from the scenario's own file, not inherited through its
    ``base:``; an unknown scenario gets the default (the config then names it as unknown).

    :raises ConfigError: ``training_preset`` does not name a preset in ``configs/ppo/``.
    """
    if not isinstance(scenario, (str, Path)):
        return DEFAULT_PRESET
    try:
        path = preset_path(scenario, SCENARIO_DIR, "scenario")
    except ConfigError:
        return DEFAULT_PRESET
    name = read_yaml_mapping(path).get("training_preset")
    if name is None:
        return DEFAULT_PRESET
    if not isinstance(name, str) or name not in list_presets():
        raise ConfigError(f"{path}: training_preset: {excerpt(name)} is not a preset in "
                          "configs/ppo/ "
                          f"(known: {', '.join(list_presets())})")
    return name


def _prepare(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    return migrate_old_keys(data, f"{path}: ")


def _resolve_preset(name_or_path: str | Path) -> dict[str, Any]:
    """A PPO preset's data over its base chain (every preset but ``default`` is based on
    ``default`` unless it names another ``base:``), section by section."""
    return read_preset(name_or_path, PPO_CONFIG_DIR, "PPO config", merge=merge_sections,
                       default_base=DEFAULT_PRESET, prepare=_prepare)


def _field_hint(dotted: str) -> Any:
    """The type of the field a dotted key names (``env.overrides.<x>`` is free-form)."""
    if dotted in RENAMED_KEYS:
        raise ConfigError(f"{dotted}: renamed {RENAMED_KEYS[dotted]}, a list whose first policy "
                          "is the verdict's (e.g. training.baselines=static,playbook)")
    parts = dotted.split(".")
    cls: Any = TrainConfig
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            break
        hints = get_type_hints(cls)
        if part not in hints:
            known = ", ".join(".".join(parts[:i] + [n]) for n in hints)
            raise ConfigError(f"unknown config key {excerpt(dotted)} (known: {known})")
        cls = hints[part]
        if get_origin(cls) is Mapping and i < len(parts) - 1:
            return Any  # a scenario override: typed by the scenario config
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"{dotted}: is a section; set one of its keys ({dotted}.<key>=...)")
    return cls


def parse_value(dotted: str, text: str) -> Any:
    """Parse ``--set`` text by the type of the field ``dotted`` names."""
    hint = _field_hint(dotted)
    raw = text.strip()
    if get_origin(hint) is UnionType and raw.lower() in ("null", "none", "~"):
        return None
    if get_origin(hint) is UnionType:  # X | None; str | tuple[str, ...]: a list if it looks so
        inner = [a for a in get_args(hint) if a is not NoneType]
        listed = raw.startswith("[") or "," in raw
        hint = next((a for a in inner if (get_origin(a) is tuple) == listed), inner[0])
    try:
        if hint is int:
            number = float(raw.replace("_", ""))
            if not number.is_integer():
                raise ValueError
            return int(number)
        if hint is float:
            return float(raw)
        if hint is bool:
            value = yaml.safe_load(raw)
            if not isinstance(value, bool):
                raise ValueError
            return value
        if hint is str:
            return raw
        if get_origin(hint) is tuple:
            items = yaml.safe_load(raw) if raw.startswith("[") else raw.split(",")
            item_type = get_args(hint)[0]
            return [item_type(str(v).strip()) for v in items]
    except (ValueError, TypeError, yaml.YAMLError):
        expected = {int: "a whole number", float: "a number", bool: "true or false"}
        raise ConfigError(f"{dotted}: expected {expected.get(hint, 'a list of whole numbers')}, "
                          f"got {excerpt(text)}") from None
    value = yaml.safe_load(raw)  # a scenario override: the scenario config checks its type
    if isinstance(value, str):
        try:
            return float(value)  # "3e-4" is a string to YAML 1.1
        except ValueError:
            return value
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    _field_hint(dotted)  # unknown keys are an error
    *sections, last = dotted.split(".")
    node = data
    for part in sections:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
    node[last] = value


def parse_sets(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["ppo.n_steps=64", ...]`` -> ``{"ppo.n_steps": 64}``, each value type-checked."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {excerpt(item)}: expected key=value (e.g. ppo.n_steps=128)")
        out[key.strip()] = parse_value(key.strip(), text)
    return out


def load_train_config(config: str | Path | None = None, *, scenario: str | None = None,
                      values: Mapping[str, Any] | None = None,
                      sets: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Load and validate a training config.

    :param config: preset name in ``configs/ppo/`` or a YAML path; by default the one the
        scenario's file names with ``training_preset:`` (:func:`preset_for_scenario`), else
        ``default``.
    :param scenario: the scenario to train on (replaces ``env.scenario``).
    :param values: dotted-key values already typed (the command line's named flags).
    :param sets: ``key=value`` strings, parsed by the type of the key they name (applied last).
    """
    if config is None:
        config = preset_for_scenario(scenario or _resolve_preset(DEFAULT_PRESET)["env"]
                                     ["scenario"])
    data = _resolve_preset(config)
    if scenario is not None:
        _set_dotted(data, "env.scenario", scenario)
    for key, value in {**(values or {}), **parse_sets(sets)}.items():
        _set_dotted(data, key, value)
    return from_dict(data)
