"""The tuned baselines' store: ``configs/baselines/``, read and written as checked data.

``configs/baselines/<scenario>.yaml`` holds the best fixed settings (``static``) of a named
scenario per objective; ``configs/baselines/static_rule.yaml`` the one target multiple k per
objective of ``static_rule``. Each entry records the env version, the search's command, its
trials and seeds and the value it found. Loading refuses a file made for another env version
or without the objective asked for: settings tuned on other dynamics are not the strongest
baseline any more. The searches that fill it live in :mod:`agents.experiments.baseline_search`
(``scripts/search_baselines.py`` re-makes the files). Loading imports neither the simulator
nor Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from agents.run_folder import write_text_atomic
from envs.anchored import StaticSettings
from envs.config import ScenarioConfig, is_unseen, list_unseen
from envs.paths import config_dir
from envs.presets import ConfigError, read_yaml_mapping
from envs.version import ENV_VERSION

BASELINE_DIR = config_dir("baselines")
RULE_FILE = "static_rule"


class BaselineError(ValueError):
    """A tuned baseline is missing, or was made for another env version or objective."""


def baseline_scenario(config: ScenarioConfig) -> str:
    """The named scenario whose tuned baselines ``config`` is played with: itself, or the
    base of an unseen market."""
    if is_unseen(config):
        for market in list_unseen():
            if market.name == config.name:
                return market.base
    return config.name


def _entry(name: str, objective: str) -> dict[str, Any]:
    path = BASELINE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise BaselineError(f"no tuned baseline {path.name} in configs/baselines/: make it with "
                            f"python scripts/search_baselines.py --scenarios {name}")
    try:
        data = read_yaml_mapping(path)
    except ConfigError as exc:
        raise BaselineError(str(exc)) from None
    if data.get("env_version") != ENV_VERSION:
        raise BaselineError(f"{path}: made for env version {data.get('env_version')!r}, this "
                            f"is version {ENV_VERSION}: search again "
                            "(python scripts/search_baselines.py)")
    entry = (data.get("objectives") or {}).get(objective)
    if not isinstance(entry, dict):
        raise BaselineError(f"{path}: no settings for the objective {objective!r} (it has "
                            f"{', '.join(sorted(data.get('objectives') or {})) or 'none'})")
    return entry


def load_static(config: ScenarioConfig) -> StaticSettings:
    """The stored best fixed settings for ``config``'s scenario and objective."""
    name = baseline_scenario(config)
    entry = _entry(name, config.objective)
    try:
        return settings_from_entry(entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"configs/baselines/{name}.yaml, {config.objective}: "
                            f"bad settings ({exc})") from None


def settings_from_entry(entry: Mapping[str, Any]) -> StaticSettings:
    """The fixed settings a ``static`` entry holds (a stored file's, or a search's result).

    :raises KeyError, TypeError, ValueError: a missing or malformed field.
    """
    return StaticSettings(float(entry["target_over_breakeven"]),
                          tuple(float(x) for x in entry["shares"]),
                          float(entry["budget_over_launch"]), int(entry["refresh_days"]))


def load_controller(config: ScenarioConfig, policy: str) -> dict[str, float]:
    """The stored parameters of a tuned controller (a key of
    :data:`agents.policies.tuned.SPACES`: ``step_tuned``, ``pid_tuned``, ``playbook_tuned``) for
    ``config``'s scenario and objective."""
    name = baseline_scenario(config)
    _entry(name, config.objective)  # the file, its env version and objective: checked
    data = read_yaml_mapping(BASELINE_DIR / f"{name}.yaml")
    entry = ((data.get("controllers") or {}).get(policy) or {}).get(config.objective)
    if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
        raise BaselineError(f"configs/baselines/{name}.yaml: no {policy} parameters for the "
                            f"objective {config.objective!r}: make them with python "
                            f"scripts/search_baselines.py --scenarios {name}")
    return {k: float(v) for k, v in entry["params"].items()}


def load_static_rule(objective: str) -> float:
    """The static rule's target multiple k for ``objective``."""
    entry = _entry(RULE_FILE, objective)
    k = entry.get("target_over_breakeven")
    if not isinstance(k, (int, float)) or not k > 0:
        raise BaselineError(f"configs/baselines/{RULE_FILE}.yaml, {objective}: "
                            f"target_over_breakeven must be > 0, got {k!r}")
    return float(k)


def write_entry(name: str, objective: str, entry: dict[str, Any], command: str,
                header: str, controller: str | None = None,
                baseline_dir: Path | None = None) -> Path:
    """Store ``entry`` for ``objective`` in ``<baseline_dir>/<name>.yaml`` (default
    ``configs/baselines/``; the static settings, or a tuned ``controller``'s parameters),
    keeping the file's other entries when it is of this env version; atomically (one writer
    at a time: the read-modify-write is not locked here)."""
    path = (BASELINE_DIR if baseline_dir is None else Path(baseline_dir)) / f"{name}.yaml"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = read_yaml_mapping(path)
        except ConfigError:
            data = {}
    if data.get("env_version") != ENV_VERSION:
        data = {}
    objectives = dict(data.get("objectives") or {})
    controllers = {k: dict(v) for k, v in (data.get("controllers") or {}).items()}
    if controller is None:
        objectives[objective] = {**entry, "command": command}
    else:
        controllers.setdefault(controller, {})[objective] = {**entry, "command": command}
    data = {"scenario": name, "env_version": ENV_VERSION, "objectives": objectives}
    if controllers:
        data["controllers"] = controllers
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path
