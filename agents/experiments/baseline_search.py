"""Searches of the tuned baselines, on training seeds: ``static`` (Optuna TPE over fixed
settings), the static rule's one k, and the tuned controllers' free numbers.

Searches use training seeds only (contracts: 0..9999; here the first 128), never the report,
validation or unseen-market seeds. Their entries are stored by
:func:`agents.policies.baseline_store.write_entry` (``scripts/search_baselines.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.policies.baseline_store import load_static
from agents.policies.static import FixedSettingsPolicy, rule_settings
from envs.anchored import StaticSettings, settings_as_data
from envs.config import ScenarioConfig, list_scenarios, load_scenario
from envs.version import ENV_VERSION

SEARCH_SEEDS = 128  # training seeds 0..127 (contracts: baseline searches use 0..9999)
SEARCH_TRIALS = 300
RULE_GRID = tuple(round(0.8 + 0.05 * i, 2) for i in range(29))  # k = 0.80 .. 2.20


def training_seeds(n: int = SEARCH_SEEDS) -> np.ndarray:
    """The first ``n`` training seeds."""
    return np.arange(n)


def settings_value(config: ScenarioConfig, settings: StaticSettings,
                   seeds: np.ndarray) -> float:
    """Mean value (CNY per launch, the config's objective) of holding ``settings``."""
    from agents.evaluation.rollout import episode_value  # the simulator: searches only, not loading

    return float(episode_value(config, FixedSettingsPolicy(config, settings), seeds).mean())


def _study(name: str, sampler_seed: int):
    """A seeded, quiet Optuna TPE study maximising a baseline's value (in memory)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction="maximize", study_name=f"{name}__v{ENV_VERSION}",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed, multivariate=True,
                                           n_startup_trials=30))


def _found(study, seeds: int) -> dict[str, Any]:
    """What a finished study's entry records besides the settings."""
    return {"training_value_cny": round(float(study.best_value), 1),
            "trials": len(study.trials), "seeds": f"0..{seeds - 1}"}


def search_static(scenario: str, objective: str, trials: int = SEARCH_TRIALS,
                  seeds: int = SEARCH_SEEDS, sampler_seed: int = 0,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Optuna (TPE) search of the best fixed settings on training seeds; returns the entry
    to store: the settings, the value found, trials and seeds.

    :param overrides: config overrides on top of the scenario (measurements such as
        ``scripts/mechanic_effects.py``; the stored baselines use none)."""
    config = load_scenario(scenario, objective=objective, **dict(overrides or {}))
    found, study = tune_settings([config], training_seeds(seeds), trials, sampler_seed,
                                 name=f"static__{scenario}__{objective}")
    return {**settings_as_data(found, digits=4), **_found(study, seeds)}


def tune_settings(configs: Sequence[ScenarioConfig], seeds: np.ndarray | Sequence[np.ndarray],
                  trials: int, sampler_seed: int = 0, name: str = "static",
                  guesses: Sequence[StaticSettings] = ()) -> tuple[StaticSettings, Any]:
    """The fixed settings that maximise the mean value (CNY per launch, each config's
    objective) over ``configs``, each played on its training seeds: Optuna TPE over
    :func:`_trial_settings`' space, the static rule's neighbourhood tried first, then
    ``guesses``. One config is ``static``'s search (:func:`search_static`); several are a
    market known up to its uncertainty (:mod:`agents.calibration.adapt`).

    :param seeds: one array of training seeds for every config, or one array per config.
    :return: the best settings and the finished study (its ``best_value`` in CNY).
    """
    if not configs:
        raise ValueError("tune_settings needs at least one config")
    per_config = (list(seeds) if len(seeds) == len(configs) and np.ndim(seeds[0]) == 1
                  else [np.asarray(seeds)] * len(configs))
    first = configs[0]
    study = _study(name, sampler_seed)
    study.enqueue_trial(_first_guess(first))
    for settings in guesses:
        study.enqueue_trial(_params_of_settings(settings, first))

    def value(trial) -> float:
        settings = _trial_settings(trial, first)
        return float(np.mean([settings_value(config, settings, s)
                              for config, s in zip(configs, per_config, strict=True)]))

    study.optimize(value, n_trials=trials)
    return _settings_from_params(study.best_params), study


def _first_guess(config: ScenarioConfig) -> dict[str, Any]:
    """The static rule's neighbourhood as a first trial (launch budget, payment plans
    only)."""
    first = {"target_over_breakeven": 1.5, "settlement_weight": 0.0, "volume_weight": 0.0,
             "budget_over_launch": 1.0, "refresh_days": int(config.scheduled_refresh_days)}
    if config.whole_site_enabled:
        first["whole_site_weight"] = 0.0
    return first


def search_controller(scenario: str, objective: str, policy: str,
                      trials: int = SEARCH_TRIALS, seeds: int = SEARCH_SEEDS,
                      sampler_seed: int = 0,
                      fixed: StaticSettings | None = None) -> dict[str, Any]:
    """Optuna (TPE) search of a controller's free numbers (:data:`SPACES`) on training
    seeds, on the scenario's static mix; returns the entry to store.

    :param fixed: the static settings to run on (default: the stored ones).
    """
    from agents.evaluation.rollout import episode_value
    from agents.policies import POLICIES
    from agents.policies.tuned import SPACES

    config = load_scenario(scenario, objective=objective)
    fixed = load_static(config) if fixed is None else fixed
    seed_array = training_seeds(seeds)
    space = SPACES[policy]

    def objective_fn(trial) -> float:
        params = {k: trial.suggest_float(k, lo, hi, log=log) for k, (lo, hi, log)
                  in space.items()}
        policy_obj = POLICIES[policy](config, params=params, fixed=fixed)
        return float(episode_value(config, policy_obj, seed_array).mean())

    study = _study(f"{policy}__{scenario}__{objective}", sampler_seed)
    study.optimize(objective_fn, n_trials=trials)
    return {"params": {k: round(float(v), 4) for k, v in study.best_params.items()},
            **_found(study, seeds)}


REFRESH_CHOICES = (0, 14, 21, 28, 35, 42, 56)


def _trial_settings(trial, config: ScenarioConfig) -> StaticSettings:
    """A trial's settings; with ``whole_site_enabled`` the space gains the whole-site plan's
    share of the budget (``whole_site_weight``, 0-1)."""
    params = {
        "target_over_breakeven": trial.suggest_float("target_over_breakeven", 0.7, 2.6,
                                                     log=True),
        "settlement_weight": trial.suggest_float("settlement_weight", 0.0, 1.0),
        "volume_weight": trial.suggest_float("volume_weight", 0.0, 0.6),
        "budget_over_launch": trial.suggest_float("budget_over_launch", 0.3, 3.0, log=True),
        "refresh_days": trial.suggest_categorical("refresh_days", REFRESH_CHOICES)}
    if config.whole_site_enabled:
        params["whole_site_weight"] = trial.suggest_float("whole_site_weight", 0.0, 1.0)
    return _settings_from_params(params)


def _settings_from_params(p: dict[str, Any]) -> StaticSettings:
    """Budget shares from the search's weights: ``whole_site_weight`` (if searched) of the
    budget to whole-site, ``volume_weight`` of the rest to volume, the ROI plans' part split
    by ``settlement_weight``; three shares without whole-site, four with it."""
    whole_site = p.get("whole_site_weight")
    rest = 1.0 - (whole_site or 0.0)
    roi = 1.0 - p["volume_weight"]
    shares = (rest * roi * (1.0 - p["settlement_weight"]), rest * roi * p["settlement_weight"],
              rest * p["volume_weight"]) + (() if whole_site is None else (whole_site,))
    return StaticSettings(float(p["target_over_breakeven"]),
                          tuple(round(float(x), 4) for x in shares),
                          float(p["budget_over_launch"]), int(p["refresh_days"]))


def _params_of_settings(settings: StaticSettings, config: ScenarioConfig) -> dict[str, Any]:
    """A trial's parameters for ``settings`` (the inverse of :func:`_settings_from_params`,
    clipped to :func:`_trial_settings`' space; the refresh interval the nearest choice)."""
    share = list(settings.shares) + [0.0] * (4 - len(settings.shares))
    rest = max(sum(share[:3]), 1e-12)
    roi = share[0] + share[1]
    params = {
        "target_over_breakeven": float(np.clip(settings.target_over_breakeven, 0.7, 2.6)),
        "settlement_weight": float(share[1] / roi) if roi > 0 else 0.0,
        "volume_weight": float(min(share[2] / rest, 0.6)),
        "budget_over_launch": float(np.clip(settings.budget_over_launch, 0.3, 3.0)),
        "refresh_days": min(REFRESH_CHOICES, key=lambda d: abs(d - settings.refresh_days))}
    if config.whole_site_enabled:
        params["whole_site_weight"] = float(share[3] / max(sum(share), 1e-12))
    return params


def search_static_rule(objective: str, scenarios: list[str] | None = None,
                       seeds: int = SEARCH_SEEDS) -> dict[str, Any]:
    """The one k (from :data:`RULE_GRID`) that maximises the mean over the named scenarios
    of each scenario's value relative to its best k (so no scenario's scale dominates)."""
    scenarios = scenarios or list_scenarios()
    seed_array = training_seeds(seeds)
    table = np.zeros((len(scenarios), len(RULE_GRID)))
    for i, name in enumerate(scenarios):
        config = load_scenario(name, objective=objective)
        for j, k in enumerate(RULE_GRID):
            table[i, j] = settings_value(config, rule_settings(config, k), seed_array)
    spread = np.maximum(table.max(axis=1, keepdims=True) - table.min(axis=1, keepdims=True),
                        1e-9)
    relative = (table - table.max(axis=1, keepdims=True)) / spread
    best = int(np.argmax(relative.mean(axis=0)))
    return {"target_over_breakeven": RULE_GRID[best],
            "training_value_cny": {name: round(float(table[i, best]), 1)
                                   for i, name in enumerate(scenarios)},
            "grid": f"{RULE_GRID[0]}..{RULE_GRID[-1]} step 0.05", "seeds": f"0..{seeds - 1}"}
