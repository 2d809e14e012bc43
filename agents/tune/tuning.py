"""Hyperparameter tuning: an Optuna study whose trials are PPO runs scored against the playbook.

Each trial takes a slot from the study's queue (:mod:`agents.tune.queue`), draws its values
from the search space (:mod:`agents.tune.space`), trains with :func:`agents.training.train`
into the study's folder, and is scored by the paired profit difference between PPO and the
playbook on the validation seeds (from 20000, CNY per episode; higher is better). At every
periodic validation the difference is reported to Optuna, whose pruner stops hopeless trials.

::

    runs/tune__<study>/
      study.db           the default storage (SQLite); --storage points elsewhere
      study.json         the study's record: space, storage, command, package versions
      trial_<N>/         one run folder per trial (run.json, config.yaml, tb/, best/, final/)

Trial seeds: the trial in slot ``k`` trains with ``space.seed + k`` (a retried trial keeps
its slot's seed and parameters); its sampler is seeded from ``(space.seed, k)``.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from agents.callbacks import ValidationResult
from agents.ppo_config import DEFAULT_PRESET, PPO_CONFIG_DIR, load_train_config
from agents.run_folder import (
    RUN_JSON,
    command_line,
    package_versions,
    read_run_json,
    update_run_json,
    write_json_atomic,
    write_text_atomic,
)
from agents.training import InterruptedTrainingError, train
from agents.tune.queue import (
    SLOT_ATTR,
    HeartbeatSettings,
    QueueSpec,
    TrialQueue,
    TuneError,
    WorkerReport,
    create_or_join,
    describe_url,
    open_storage,
    queue_size,
    slot_trials,
)
from agents.tune.space import SearchSpace
from envs.config import ConfigError

STUDY_DB = "study.db"
STUDY_JSON = "study.json"
DEFAULT_N_TRIALS = 20
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# trial user attrs
SEED_ATTR, RUN_ATTR, CONFIG_ATTR, PRESET_ATTR = "seed", "run_dir", "config", "preset_values"


def check_study_name(name: str) -> str:
    """A study name usable in a folder name: letters, digits, ``_.-``, no ``__``."""
    if not _STUDY_NAME.match(name) or "__" in name:
        raise TuneError(f"--study-name {name!r}: use up to 64 letters, digits, '_', '.' or "
                        "'-', without '__'")
    return name


def study_dir(runs_dir: str | Path, kind: str, study_name: str) -> Path:
    """``runs/<kind>__<study>/``: the study's folder on this machine."""
    return Path(runs_dir) / f"{kind}__{check_study_name(study_name)}"


def default_storage_url(folder: Path) -> str:
    """The embedded default: a SQLite file in the study's folder."""
    return f"sqlite:///{(folder / STUDY_DB).resolve()}"


def slot_seed(seed: int, slot: int) -> int:
    """The sampler seed of a slot (independent streams per slot)."""
    return int(np.random.SeedSequence([seed, slot, 0x7E57]).generate_state(1)[0])


def write_study_record(folder: Path, record: Mapping[str, Any]) -> None:
    """``study.json`` on this machine (first worker writes it; later ones add themselves)."""
    path = folder / STUDY_JSON
    workers = []
    if path.is_file():
        try:
            workers = json.loads(path.read_text(encoding="utf-8")).get("workers", [])
        except (OSError, ValueError):
            workers = []
    workers.append({"command": shlex.join(command_line()),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    write_json_atomic(path, {**record, "package_versions": package_versions(),
                             "workers": workers})


def mark_abandoned(user_attrs: Mapping[str, Any], retry_number: int) -> None:
    """A killed attempt's run folder (if on this machine) says it was retried: a retried
    trial starts with the user attrs of the attempt it replaces."""
    old = user_attrs.get(RUN_ATTR)
    if old and (Path(old) / RUN_JSON).is_file():
        info = read_run_json(Path(old))
        if info.get("status") in ("running", "failed"):
            update_run_json(Path(old), status="abandoned",
                            note=f"its worker died; retried as trial {retry_number}")


# ---------------------------------------------------------------------------------------------
class TuneObjective:
    """One trial: suggest, train (pruned at validations), score by PPO - playbook profit."""

    def __init__(self, space: SearchSpace, folder: Path, study_name: str):
        self.space = space
        self.folder = folder
        self.study_name = study_name

    def __call__(self, trial: optuna.Trial) -> float:
        slot = int(trial.user_attrs[SLOT_ATTR])
        mark_abandoned(trial.user_attrs, trial.number)  # a retry carries the dead attempt's
        seed = self.space.seed + slot
        values = self.space.suggest(trial)
        try:
            config = self.space.trial_config(values, seed, f"{self.study_name}-{slot}")
        except ConfigError as exc:  # a combination the space's checks could not rule out
            raise optuna.TrialPruned(f"invalid combination: {exc}") from None
        run_name = f"trial_{trial.number:04d}"
        run_dir = self.folder / run_name
        for key, value in ((SEED_ATTR, seed), (RUN_ATTR, str(run_dir)),
                           (CONFIG_ATTR, config.to_dict()),
                           (PRESET_ATTR, self.space.exported_values(values))):
            trial.set_user_attr(key, value)

        def on_validation(result: ValidationResult) -> None:
            trial.report(result.profit_diff, step=result.step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"step {result.step:,}: PPO - {result.baseline} profit "
                    f"{result.profit_diff:+,.0f} CNY/episode, below the median of earlier "
                    "trials")

        try:
            train(config, runs_dir=self.folder, run_name=run_name,
                  command=[*command_line(), f"# trial {trial.number} of {self.study_name}"],
                  on_validation=on_validation)
        except optuna.TrialPruned:
            update_run_json(run_dir, status="pruned")
            raise
        except InterruptedTrainingError as exc:
            raise KeyboardInterrupt(str(exc)) from exc
        final = read_run_json(run_dir)["final_eval"]
        trial.set_user_attr("profit_diff_ci", [final["profit_diff_ci_low"],
                                               final["profit_diff_ci_high"]])
        trial.set_user_attr("ppo_profit", final["ppo"]["profit"])
        trial.set_user_attr("baseline_profit", final["reference"]["profit"])
        trial.set_user_attr("verdict", final["verdict"])
        return float(final["profit_diff"])


@dataclass
class TuneResult:
    """What a tuning worker leaves: its report and the study's state."""

    study: optuna.Study
    folder: Path
    storage: str  # the URL, password hidden
    report: WorkerReport


def tune(space: SearchSpace, study_name: str, storage_url: str | None = None,
         n_trials: int | None = None, runs_dir: str | Path = "runs",
         heartbeat: HeartbeatSettings | None = None, max_trials: int | None = None,
         log: Callable[[str], None] = print) -> TuneResult:
    """Create or join a tuning study and work on it until every trial is finished.

    :param space: the validated search space (every joining worker must pass the same).
    :param study_name: the study (``--study-name``); also its folder ``runs/tune__<name>/``.
    :param storage_url: any Optuna RDB URL; default SQLite ``runs/tune__<name>/study.db``.
    :param n_trials: trials the study asks for (default: the existing study's, or 20).
    :param max_trials: stop this worker after that many trials (the rest stay queued).
    :raises TuneError: bad storage, a name taken by another space, a different n_trials.
    """
    heartbeat = heartbeat or HeartbeatSettings()
    if n_trials is not None and n_trials < 1:
        raise TuneError(f"--n-trials: must be >= 1, got {n_trials}")
    folder = study_dir(runs_dir, "tune", study_name)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage_url or default_storage_url(folder)
    storage = open_storage(url, heartbeat)
    spec = QueueSpec("tune", space.identity(), [{}] * (n_trials or DEFAULT_N_TRIALS),
                     strict_size=n_trials is not None)
    study, created = create_or_join(storage, study_name, spec)
    if created:
        study.set_user_attr("base", space.base)
    log(f"{'created' if created else 'joined'} study {study_name!r} ({queue_size(study)} "
        f"trials) in {describe_url(url)}")
    write_study_record(folder, {"study_name": study_name, "kind": "tune",
                                "storage": describe_url(url), "space": space.name,
                                "n_trials": queue_size(study), "identity": space.identity()})

    def make_study(slot: int) -> optuna.Study:
        return optuna.load_study(study_name=study_name, storage=storage,
                                 sampler=space.make_sampler(slot_seed(space.seed, slot)),
                                 pruner=space.make_pruner())

    queue = TrialQueue(storage, study_name, make_study, heartbeat, log)
    report = queue.work(TuneObjective(space, folder, study_name), max_trials=max_trials)
    return TuneResult(queue.study, folder, describe_url(url), report)


# ---------------------------------------------------------------------------------------------
def load_study(study_name: str, storage_url: str | None, runs_dir: str | Path = "runs",
               kind: str = "tune") -> tuple[optuna.Study, RDBStorage]:
    """An existing study (for export or aggregation), without working on it."""
    folder = study_dir(runs_dir, kind, study_name)
    url = storage_url or default_storage_url(folder)
    if storage_url is None and not (folder / STUDY_DB).is_file():
        raise TuneError(f"no study {study_name!r} in {folder} (pass its --storage URL)")
    storage = open_storage(url, HeartbeatSettings())
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise TuneError(f"no study {study_name!r} in {describe_url(url)}") from None
    return study, storage


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The complete trial with the largest PPO - playbook profit difference."""
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
    lo, hi = best.user_attrs.get("profit_diff_ci", [float("nan")] * 2)
    header = (f"# Tuned PPO preset, exported from study {study.study_name!r}, trial "
              f"{best.number} ({time.strftime('%Y-%m-%d')}).\n"
              f"# PPO - playbook profit on the validation seeds: {best.value:+,.0f} CNY per "
              f"episode (95% CI [{lo:+,.0f}, {hi:+,.0f}]).\n"
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


def summarize(study: optuna.Study, top: int = 5,
              value: str = "PPO - playbook profit, CNY per validation episode") -> str:
    """The study in a few lines: trials by state, the best ones, retried slots."""
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    lines = [f"study {study.study_name!r}: {queue_size(study)} trials asked; "
             + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    retried = [t for t in trials if "failed_trial" in t.system_attrs]
    if retried:
        lines.append("retried after a worker died: " + ", ".join(
            f"trial {t.system_attrs['failed_trial']} -> {t.number}" for t in retried))
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                  key=lambda t: -t.value)[:top]
    if done:
        lines.append(f"best trials ({value}):")
    for t in done:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in t.params.items())
        lines.append(f"  trial {t.number:4d} (slot {t.user_attrs.get('slot')}, seed "
                     f"{t.user_attrs.get(SEED_ATTR)}): {t.value:+12,.0f}   {params}")
    unfinished = [s for s, t in slot_trials(study).items() if not t.state.is_finished()]
    if unfinished:
        lines.append(f"slots not finished yet: {unfinished}")
    return "\n".join(lines)
