"""Hyperparameter tuning: an Optuna study whose trials are PPO runs scored against ``static``.

Each trial takes a slot from the study's queue (:mod:`agents.experiments.queue`), draws its values
from the search space (:mod:`agents.experiments.space`), trains with
:func:`agents.training.train.train` into the study's folder, and is scored by its final
validation's paired difference between PPO and the first of ``training.baselines`` (``static``: the
best fixed settings) on the run's objective: the value per episode in CNY (profit, or the
``gmv_floor`` reward in CNY) on the validation seeds (from 20000; higher is better). At every
periodic validation the same difference is reported to Optuna, whose pruner stops hopeless trials.
The trial's user attrs record the score's interval, both sides' value and profit, and the
comparison against every other baseline (``vs_playbook``).

::

    runs/tune__<study>/
      study.db           the default storage (SQLite); --storage points elsewhere
      study.json         the study's record: space, storage, command, package versions
      trial_<N>/         one run folder per trial (run.json, config.yaml, tb/, best/, final/)

Trial seeds: the trial in slot ``k`` trains with ``space.seed + k`` (a retried trial keeps
its slot's seed and parameters); its sampler is seeded from ``(space.seed, k)``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from agents.experiments.queue import SLOT_ATTR, HeartbeatSettings, QueueSpec, TuneError
from agents.experiments.space import SearchSpace
from agents.experiments.study import StudyRun, run_study, train_trial
from agents.run_folder import read_run_json, write_text_atomic
from agents.training.config import DEFAULT_PRESET, PPO_CONFIG_DIR, load_train_config
from agents.training.validation import ValidationResult
from envs.config import ConfigError

DEFAULT_N_TRIALS = 20
CONFIG_ATTR, PRESET_ATTR = "config", "preset_values"  # trial user attrs
SCORE_CI_ATTR = "value_diff_ci"  # trial user attr: the score's 95% interval [low, high]


def slot_seed(seed: int, slot: int) -> int:
    """The sampler seed of a slot (independent streams per slot)."""
    return int(np.random.SeedSequence([seed, slot, 0x7E57]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
def score_attrs(final: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's user attrs from its final validation (``final_eval``): the objective, the
    scored baseline, the score's interval, both sides' value and profit (CNY per episode), the
    verdict, and ``vs_<baseline>`` for every other baseline."""
    out: dict[str, Any] = {
        "objective": final["objective"], "baseline": final["baseline"],
        SCORE_CI_ATTR: [final["value_diff_ci_low"], final["value_diff_ci_high"]],
        "ppo_value": final["ppo"]["value"], "baseline_value": final["reference"]["value"],
        "ppo_profit": final["ppo"]["profit"], "baseline_profit": final["reference"]["profit"],
        "profit_diff": final["profit_diff"],
        "profit_diff_ci": [final["profit_diff_ci_low"], final["profit_diff_ci_high"]],
        "verdict": final["verdict"]}
    for name, c in final["comparisons"].items():
        if name != final["baseline"]:
            out[f"vs_{name}"] = {
                "value_diff": c["value_diff"],
                "value_diff_ci": [c["value_diff_ci_low"], c["value_diff_ci_high"]],
                "profit_diff": c["profit_diff"],
                "profit_diff_ci": [c["profit_diff_ci_low"], c["profit_diff_ci_high"]],
                "baseline_value": c["reference"]["value"],
                "baseline_profit": c["reference"]["profit"], "verdict": c["verdict"]}
    return out


class TuneObjective:
    """One trial: suggest, train (pruned at validations), score by the paired difference of
    the objective's value, PPO - static (the first of ``training.baselines``)."""

    def __init__(self, space: SearchSpace, folder: Path):
        self.space = space
        self.folder = folder

    def __call__(self, trial: optuna.Trial) -> float:
        slot = int(trial.user_attrs[SLOT_ATTR])
        values = self.space.suggest(trial)
        try:
            config = self.space.trial_config(values, self.space.seed + slot,
                                             f"{trial.study.study_name}-{slot}")
        except ConfigError as exc:  # a combination the space's checks could not rule out
            raise optuna.TrialPruned(f"invalid combination: {exc}") from None
        trial.set_user_attr(CONFIG_ATTR, config.to_dict())
        trial.set_user_attr(PRESET_ATTR, self.space.exported_values(values))

        def on_validation(result: ValidationResult) -> None:
            score = result.primary.value_diff
            trial.report(score, step=result.step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"step {result.step:,}: PPO - {result.baseline} {result.objective} value "
                    f"{score:+,.0f} CNY/episode, below the median of earlier trials")

        run_dir = train_trial(trial, config, self.folder, f"trial_{trial.number:04d}",
                              on_validation)
        final = read_run_json(run_dir)["final_eval"]
        for key, value in score_attrs(final).items():
            trial.set_user_attr(key, value)
        return float(final["value_diff"])


def tune(space: SearchSpace, study_name: str, storage_url: str | None = None,
         n_trials: int | None = None, runs_dir: str | Path = "runs",
         heartbeat: HeartbeatSettings | None = None, max_trials: int | None = None,
         log: Callable[[str], None] = print) -> StudyRun:
    """Create or join a tuning study and work on it until every trial is finished.

    :param space: the validated search space (every joining worker must pass the same).
    :param study_name: the study (``--study-name``); also its folder ``runs/tune__<name>/``.
    :param storage_url: any Optuna RDB URL; default SQLite ``runs/tune__<name>/study.db``.
    :param n_trials: trials the study asks for (default: the existing study's, or 20).
    :param max_trials: stop this worker after that many trials (the rest stay queued).
    :raises TuneError: bad storage, a name taken by another space, a different n_trials.
    """
    if n_trials is not None and n_trials < 1:
        raise TuneError(f"--n-trials: must be >= 1, got {n_trials}")
    spec = QueueSpec("tune", space.identity(), [{}] * (n_trials or DEFAULT_N_TRIALS),
                     strict_size=n_trials is not None, study_attrs={"base": space.base})

    def study_kwargs(slot: int) -> dict[str, Any]:
        return {"sampler": space.make_sampler(slot_seed(space.seed, slot)),
                "pruner": space.make_pruner()}

    return run_study(spec, study_name, lambda folder: TuneObjective(space, folder),
                     storage_url=storage_url, runs_dir=runs_dir, heartbeat=heartbeat,
                     study_kwargs=study_kwargs, record={"space": space.name},
                     max_trials=max_trials, log=log)


# ---------------------------------------------------------------------------------------------
def best_trial(study: optuna.Study) -> FrozenTrial:
    """The complete trial with the largest score (PPO - static, the objective's value)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise TuneError(f"study {study.study_name!r} has no complete trial yet")
    return max(done, key=lambda t: (t.value, -t.number))


def _nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        *sections, last = key.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def export_best(study: optuna.Study, name: str, config_dir: Path = PPO_CONFIG_DIR,
                force: bool = False) -> Path:
    """Write the best trial's values as a PPO preset ``configs/ppo/<name>.yaml`` (over the
    space's base preset, with the base's training budget), checked by the training config
    loader before it replaces anything.

    :raises TuneError: no complete trial, a bad name, or an existing preset without ``force``.
    """
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name) or "__" in name:
        raise TuneError(f"--export-best {name!r}: use letters, digits, '_', '.' or '-' "
                        "without '__'")
    if name == DEFAULT_PRESET:
        raise TuneError("--export-best: 'default' is the base of every preset; choose a name")
    path = Path(config_dir) / f"{name}.yaml"
    if path.exists() and not force:
        raise TuneError(f"{path} exists; pass --force to replace it")
    best = best_trial(study)
    base = study.user_attrs.get("base", DEFAULT_PRESET)
    data = {"base": base, "experiment": name, **_nest(best.user_attrs[PRESET_ATTR])}
    attrs = best.user_attrs  # a study made before training.baselines: PPO - playbook profit
    lo, hi = attrs.get(SCORE_CI_ATTR, attrs.get("profit_diff_ci", [float("nan")] * 2))
    score = f"{attrs['objective']} value" if "objective" in attrs else "profit"
    header = (f"# Tuned PPO preset, exported from study {study.study_name!r}, trial "
              f"{best.number} ({time.strftime('%Y-%m-%d')}).\n"
              f"# PPO - {attrs.get('baseline', 'playbook')} {score} on the validation seeds: "
              f"{best.value:+,.0f} CNY per episode (95% CI [{lo:+,.0f}, {hi:+,.0f}]).\n"
              f"# Over the preset {base!r}; the training budget is the preset's.\n")
    text = header + yaml.safe_dump(data, sort_keys=False)
    config_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp.yaml")
    write_text_atomic(tmp, text)
    try:
        load_train_config(tmp)
    except ConfigError as exc:
        tmp.unlink()
        raise TuneError(f"the best trial's values do not load as a preset: {exc}") from None
    tmp.replace(path)
    return path
