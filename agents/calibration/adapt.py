"""The anchor adapted to a fitted account: ``static``'s search run on the fitted market.

The shipped policies are residuals on an anchor, a scenario's tuned fixed settings
(:mod:`envs.anchored`). For a calibrated account, the base scenario's anchor was tuned on
another market; :func:`adapted_anchor` tunes it again on the fitted one, with its
uncertainty (conditioning the shipped network on the fit, not fine-tuning it):

1. the same search as the stored baselines'
   (:func:`agents.experiments.baseline_search.tune_settings`, Optuna TPE over the same
   space) maximises the mean value of fixed settings over a few markets drawn from the fit's
   posterior (:func:`posterior_draws`, antithetic pairs around the mode, each a config by
   :func:`agents.calibration.scenario.fitted_config`), each played from launch on its own
   training seeds, the base's anchor among the first trials;
2. the search's best few settings and the base's anchor are then played by the shipped
   network on the same markets and seeds (:func:`network_value`), and the best is the
   anchor: the network was trained on the named scenarios' anchors and plays some settings
   worse than they hold on their own, so the anchor is chosen for what will play it, and
   never below the base's on those markets.

The same procedure takes any configs (:func:`adapt_settings`): the decision-value benchmark
runs it on an account's true market too (``scripts/decision_value.py``).

``anchor.json`` in a calibration's folder (:func:`anchor_writer`, read by
:func:`read_anchor`; JSON only) holds the adapted anchor per objective, and
``recommend --fit`` plays the shipped policy on it
(:func:`agents.calibration.recommend_fit.fitted_policy`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.calibration.account import CalibrationError
from agents.calibration.scenario import fitted_config
from envs.anchored import StaticSettings, settings_as_data
from envs.config import ScenarioConfig
from envs.version import ENV_VERSION

ADAPT_DRAWS = 4  # markets drawn from the fit's posterior (antithetic pairs)
ADAPT_SEEDS = 12  # training seeds per drawn market (contracts: 0..9999)
ADAPT_TRIALS = 48  # Optuna trials: about 15-25 s per objective on one core
ADAPT_SEED = 0  # the draws' and the sampler's seed: the same fit gives the same anchor
# the objectives anchor.json adapts by default: on gmv_floor more fitted accounts lost to the
# base's anchor than gained (docs/calibration.md, "Decision value"), so recommend --fit keeps
# the base's for it (and says so)
OBJECTIVES = ("profit",)
ANCHOR_FILE = "anchor.json"
FORMAT = "qianchuan-rl/adapted-anchor"
FORMAT_VERSION = 1
RESCORED = 5  # the search's best settings re-scored with the network on them
MODELS = Path(__file__).resolve().parents[2] / "models"  # the shipped policies
SettingsValue = Callable[[ScenarioConfig, StaticSettings, np.ndarray], float]


@dataclass(frozen=True)
class AdaptedAnchor:
    """An anchor tuned on given markets, and what it was measured against.

    :param value_cny: mean value (CNY per launch, the objective's) of ``settings`` over the
        markets and their training seeds; ``base_value_cny`` the base anchor's on the same.
    :param seconds: wall time of the search (one core).
    """

    objective: str
    settings: StaticSettings
    base_settings: StaticSettings | None
    value_cny: float
    base_value_cny: float | None
    markets: int
    seeds_per_market: int
    trials: int
    seconds: float
    rescored: bool = False  # chosen by the network's value on the anchor (else static's)

    def to_data(self) -> dict[str, Any]:
        """Plain data for ``anchor.json``: the settings' fields, then the record."""
        return {**settings_as_data(self.settings, digits=4),
                "base_anchor": (None if self.base_settings is None
                                else settings_as_data(self.base_settings, digits=4)),
                "training_value_cny": round(self.value_cny, 1),
                "base_training_value_cny": (None if self.base_value_cny is None
                                            else round(self.base_value_cny, 1)),
                "markets": self.markets, "seeds_per_market": self.seeds_per_market,
                "training_seeds": f"0..{self.markets * self.seeds_per_market - 1}",
                "trials": self.trials, "chosen_by": ("the shipped network on the anchor"
                                                     if self.rescored else "static"),
                "seconds": round(self.seconds, 1)}


def posterior_draws(fit, n: int = ADAPT_DRAWS, seed: int = ADAPT_SEED,
                    spread: float = 1.0) -> np.ndarray:
    """``n`` points (n, P) of the fit's space from its Laplace posterior (``fit.z``,
    ``fit.cov``), as antithetic pairs ``z +- d`` (their mean is the mode; an odd ``n`` adds
    the mode itself), within the parameters' bounds.

    :param fit: an :class:`agents.calibration.fit.Fit`.
    :param spread: the draws' sd as a multiple of the posterior's (the pool's intervals are
        too narrow: ``docs/calibration.md``).
    """
    from agents.calibration.prior import bounds

    rng = np.random.default_rng(seed)
    pairs = n // 2
    offsets = rng.multivariate_normal(np.zeros(fit.z.size), fit.cov, size=pairs,
                                      method="cholesky") if pairs else np.zeros((0, fit.z.size))
    points = [fit.z[None, :]] if n % 2 else []
    points += [fit.z + spread * offsets, fit.z - spread * offsets]
    return np.clip(np.concatenate(points)[:n], *bounds(fit.parameters))


def posterior_configs(fit, objective: str, n: int = ADAPT_DRAWS, seed: int = ADAPT_SEED,
                      account: Mapping[str, Any] | None = None,
                      spread: float = 1.0) -> list[ScenarioConfig]:
    """The fitted market at :func:`posterior_draws`, as configs for ``objective`` played from
    launch (:func:`agents.calibration.scenario.fitted_config` at each point).

    :param account: the account's own keys set on every config (what the advertiser knows,
        not the market: ``launch_budget_cny``, the launch settings, balance and top-ups).
    """
    keys = dict(account or {})
    return [fitted_config(fit, z).replace(objective=objective, **keys)
            for z in posterior_draws(fit, n, seed, spread)]


def market_seeds(markets: int, seeds_per_market: int = ADAPT_SEEDS) -> list[np.ndarray]:
    """Training seeds (contracts: 0..9999), a disjoint block per market."""
    return [np.arange(k * seeds_per_market, (k + 1) * seeds_per_market)
            for k in range(markets)]


def adapt_settings(configs: Sequence[ScenarioConfig], base_settings: StaticSettings | None,
                   trials: int = ADAPT_TRIALS, seeds_per_market: int = ADAPT_SEEDS,
                   sampler_seed: int = ADAPT_SEED,
                   played: SettingsValue | None = None,
                   candidates: int = RESCORED) -> AdaptedAnchor:
    """The fixed settings with the highest mean value over ``configs`` (each played from
    launch on its own training seeds, :func:`market_seeds`): ``static``'s search
    (:func:`agents.experiments.baseline_search.tune_settings`), ``base_settings`` among the
    first trials. With ``played``, the search's ``candidates`` best distinct settings and
    ``base_settings`` are then scored by what will actually play them (the shipped network on
    that anchor, :func:`network_value`) on the same markets and seeds, and the best of those
    is the anchor.

    :param configs: markets of one objective (e.g. :func:`posterior_configs`, or one true
        config).
    :param played: value (CNY per launch) of the policy played on an anchor:
        ``played(config, settings, seeds)``.
    """
    from agents.experiments.baseline_search import (
        _settings_from_params,
        settings_value,
        tune_settings,
    )

    started = time.perf_counter()
    seeds = market_seeds(len(configs), seeds_per_market)
    guesses = () if base_settings is None else (base_settings,)
    found, study = tune_settings(configs, seeds, trials, sampler_seed,
                                 name=f"adapted__{configs[0].objective}", guesses=guesses)

    def mean_value(value: SettingsValue, settings: StaticSettings) -> float:
        return float(np.mean([value(c, settings, s)
                              for c, s in zip(configs, seeds, strict=True)]))

    value = float(study.best_value)
    base_value = None if base_settings is None else mean_value(settings_value, base_settings)
    if played is not None:
        done = sorted((t for t in study.trials if t.value is not None),
                      key=lambda t: -t.value)
        pool: list[StaticSettings] = [] if base_settings is None else [base_settings]
        for trial in done:
            settings = _settings_from_params(trial.params)
            if settings not in pool:
                pool.append(settings)
            if len(pool) >= candidates + (base_settings is not None):
                break
        scored = [(mean_value(played, settings), settings) for settings in pool]
        value, found = max(scored, key=lambda x: x[0])
        if base_settings is not None:
            base_value = scored[0][0]
    return AdaptedAnchor(configs[0].objective, found, base_settings, value, base_value,
                         len(configs), seeds_per_market, trials,
                         time.perf_counter() - started, played is not None)


def network_value(policy_path: str | Path, anchor_scenario: str) -> SettingsValue:
    """:func:`adapt_settings`' ``played``: the value (CNY per launch, the config's objective)
    of the anchored ONNX policy at ``policy_path`` played on an anchor in a config, as
    ``recommend --fit`` plays it (its anchor for ``anchor_scenario`` replaced)."""
    from agents.evaluation.rollout import episode_value
    from agents.serving.onnx_policy import OnnxPolicy

    policy = OnnxPolicy(policy_path)

    def value(config: ScenarioConfig, settings: StaticSettings, seeds: np.ndarray) -> float:
        policy.select_anchor(anchor_scenario, account=config)
        policy.anchor = settings
        return float(episode_value(policy.config, policy, seeds).mean())
    return value


def shipped_policy(objective: str) -> Path:
    """The shipped policy for ``objective``: ``models/<objective>/policy.onnx``."""
    return MODELS / objective / "policy.onnx"


def base_anchor(fit, objective: str) -> StaticSettings | None:
    """The fit's base scenario's stored ``static`` settings for ``objective`` (None when the
    base has none: a scenario of one's own)."""
    from agents.policies.baseline_store import BaselineError, load_static

    try:
        return load_static(fit.base.replace(objective=objective))
    except BaselineError:
        return None


def adapted_anchor(fit, objective: str, draws: int = ADAPT_DRAWS,
                   trials: int = ADAPT_TRIALS, seeds_per_market: int = ADAPT_SEEDS,
                   account: Mapping[str, Any] | None = None,
                   base_settings: StaticSettings | None = None,
                   policy: str | Path | None = None, spread: float = 1.0) -> AdaptedAnchor:
    """The anchor adapted to ``fit``'s market and its uncertainty for ``objective``:
    :func:`adapt_settings` on :func:`posterior_configs`, re-scored with ``policy`` on it.

    :param account: the account's own keys (see :func:`posterior_configs`); at least its
        launch budget, which the anchor's budget multiplies.
    :param base_settings: the anchor to start from (default: :func:`base_anchor`).
    :param policy: the anchored ONNX policy that will play the anchor (default: the shipped
        one for ``objective``, :func:`shipped_policy`; ``""``: none, static's choice).
    :param spread: :func:`posterior_draws`' spread.
    """
    from agents.policies.baseline_store import baseline_scenario

    configs = posterior_configs(fit, objective, draws, account=account, spread=spread)
    start = base_anchor(fit, objective) if base_settings is None else base_settings
    path = shipped_policy(objective) if policy is None else policy
    # the network plays the anchor in place of its base's (without one: static's choice)
    played = (network_value(path, baseline_scenario(fit.base))
              if path and start is not None else None)
    return adapt_settings(configs, start, trials, seeds_per_market, played=played)


# ------------------------------------------------------------------------- anchor.json
def anchor_record(fit, objectives: Sequence[str] = OBJECTIVES,
                  launch_budget_cny: float | None = None, **kwargs: Any) -> dict[str, Any]:
    """``anchor.json``'s content: the adapted anchor per objective, with its record.

    :param launch_budget_cny: the launch budget the anchor's budget multiplies, as
        ``recommend`` will read it (default: the report's earliest budget, its reading when
        the report does not show the day before the launch).
    :param kwargs: :func:`adapted_anchor`'s ``draws``, ``trials``, ``seeds_per_market``.
    """
    from agents.run_folder import package_versions

    launch = float(fit.history.budget[0] if launch_budget_cny is None else launch_budget_cny)
    account = {"launch_budget_cny": max(launch, 300.0)}
    found = {objective: adapted_anchor(fit, objective, account=account, **kwargs).to_data()
             for objective in objectives}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "env_version": ENV_VERSION,
            "base": fit.base.name, "launch_budget_cny": account["launch_budget_cny"],
            "method": (f"static's search (Optuna TPE) on {found[objectives[0]]['markets']} "
                       "markets drawn from the fit's posterior, played from launch on "
                       "training seeds; the base's anchor among the first trials"),
            "objectives": found, "package_versions": package_versions()}


def anchor_writer(fit, **kwargs: Any) -> Callable[[Path], None]:
    """A writer of ``anchor.json`` for :func:`agents.calibration.outputs.write_calibration`
    (the search runs now, not when the file is written; :func:`anchor_record`'s options)."""
    text = json.dumps(anchor_record(fit, **kwargs), indent=2, ensure_ascii=False) + "\n"

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")
    return write


def read_anchor(directory: str | Path, objective: str) -> StaticSettings | None:
    """The adapted anchor for ``objective`` in ``DIR/anchor.json`` (None: no such file, or
    no entry for ``objective``).

    :raises CalibrationError: an unreadable file, another format or env version, or bad
        settings (naming the file).
    """
    from agents.policies.baseline_store import settings_from_entry

    path = Path(directory) / ANCHOR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"--fit: cannot read the adapted anchor ({exc}): recalibrate",
                               path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError("--fit: not an adapted anchor: recalibrate", path)
    if data.get("env_version") != ENV_VERSION:
        raise CalibrationError(f"--fit: the anchor was adapted for env version "
                               f"{data.get('env_version')!r}, this is {ENV_VERSION}: "
                               "recalibrate", path)
    entry = (data.get("objectives") or {}).get(objective)
    if entry is None:
        return None
    try:
        return settings_from_entry(entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"--fit: bad adapted anchor for {objective!r} ({exc}): "
                               "recalibrate", path) from None
