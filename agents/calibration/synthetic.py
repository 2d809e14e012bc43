"""Synthetic accounts with a known truth, to check that a fit recovers it.

An account's parameters are drawn from the fit's own prior around a base scenario
(:mod:`.prior`, plus the order value, basket noise, refund rate and kernel), it is run by
the simulator from its launch for ``days`` days under an operator that moves the target as
real ones do (the playbook's rules, :mod:`agents.policies.playbook`), and its dashboard is
written as a daily report. Seeds come from :data:`envs.seeds.CALIBRATION_SEED` (60000 on).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.calibration.account import AccountHistory, account_history
from agents.calibration.learning_rules import RULES
from agents.calibration.orders import Estimate
from agents.calibration.prior import WEEKDAYS, bounds, market_parameters, weekday_log_effects
from agents.calibration.refunds import PROMO_MULT_PRIOR_LOG_SD, PROMO_MULT_RANGE, refund_prior_sd
from agents.calibration.scenario import size_scaled
from agents.policies import make_policy
from agents.serving.inputs import parse_promotions
from agents.serving.report import read_report, write_report
from envs.actions import plan_names
from envs.config import ScenarioConfig
from envs.seeds import CALIBRATION_SEED
from envs.simulator import Simulator

LAUNCH_DATE = dt.date(2025, 3, 3)  # account i launches in the week from i days later
AOV_PRIOR_SD = 0.5  # log-sd of the order value around the base's (assumption)
BASKET_PRIOR_SD = 0.5  # log-sd of the basket noise around the base's (assumption)
KERNEL_PRIOR_LOG_SD = 0.3  # log-sd of each kernel share before renormalising (assumption)


@dataclass
class SyntheticAccount:
    """A simulated report and the truth behind it.

    :param truth: every fitted parameter's true value, by ``fit.json`` name; the per-account
        bidder bias is the one the simulator drew.
    """

    seed: int
    config: ScenarioConfig
    truth: dict[str, float]
    dates: list[dt.date]
    columns: dict[str, list]
    promo_dates: str

    def write(self, path: str | Path) -> Path:
        write_report(path, self.dates, self.columns)
        return Path(path)

    def history(self, base: ScenarioConfig, path: str | Path) -> AccountHistory:
        """The report written to ``path`` and read back as a user's would be (the report
        reader, the promotion dates), against ``base``."""
        return account_history(read_report(self.write(path)), base,
                               parse_promotions(self.promo_dates, base.promo_peak_length_days))


def draw_config(base: ScenarioConfig, rng: np.random.Generator
                ) -> tuple[ScenarioConfig, dict[str, float]]:
    """A scenario drawn from the fit's prior around ``base``, and its true values."""
    params = market_parameters(base)
    z = np.array([np.clip(rng.normal(p.prior_mean, p.prior_sd), p.lower, p.upper)
                  for p in params])
    value = {p.name: float(p.value(z[i])) for i, p in enumerate(params)}
    effects = weekday_log_effects(z, [p.name for p in params].index("weekday_mon"))
    rate_sd, _ = refund_prior_sd()
    r = min(max(base.refund_rate, 1e-3), 0.95)
    refund_rate = 1.0 / (1.0 + math.exp(-(math.log(r / (1 - r)) + rate_sd * rng.normal())))
    kernel = np.asarray(base.refund_kernel) * np.exp(KERNEL_PRIOR_LOG_SD * rng.normal(size=7))
    kernel = kernel / kernel.sum()
    size = value["pool_cost_cny"] / base.pool_cost_cny  # the launch budget scales with it
    cfg = base.replace(
        pool_cost_cny=value["pool_cost_cny"], pool_mean_roi=value["pool_mean_roi"],
        pool_sigma=value["pool_sigma"],
        weekday_traffic=tuple(float(w) for w in np.asarray(base.weekday_traffic)
                              * np.exp(effects)),
        traffic_shock_sd=value["traffic_shock_sd"], traffic_shock_ar=value["traffic_shock_ar"],
        drift_cost_sd=value["drift_cost_sd"], bidder_noise_sd=value["bidder_noise_sd"],
        drift_roi_sd=value["drift_roi_sd"], roi_shock_sd=value["roi_shock_sd"],
        learning_traffic_mult=value["learning_traffic_mult"],
        learning_roi_mult=value["learning_roi_mult"],
        aov_cny=float(base.aov_cny * math.exp(AOV_PRIOR_SD * rng.normal())),
        basket_noise_sd=float(base.basket_noise_sd * math.exp(BASKET_PRIOR_SD * rng.normal())),
        refund_rate=refund_rate, refund_kernel=tuple(float(k) for k in kernel),
        launch_budget_cny=max(base.launch_budget_cny * size, 300.0),
        **size_scaled(base, value["pool_cost_cny"]))
    # drawn last: the other parameters' draws are those of the accounts before it was fitted
    cfg = cfg.replace(promo_refund_mult=float(np.clip(
        base.promo_refund_mult * math.exp(PROMO_MULT_PRIOR_LOG_SD * rng.normal()),
        *PROMO_MULT_RANGE)))
    truth = {name: v for name, v in value.items()
             if not name.startswith("weekday_") and name != "bidder_bias"}
    truth.update({f"weekday_{d}": float(e) for d, e in zip(WEEKDAYS, effects, strict=True)})
    truth.update(aov_cny=cfg.aov_cny, basket_noise_sd=cfg.basket_noise_sd,
                 refund_rate=cfg.refund_rate, promo_refund_mult=cfg.promo_refund_mult,
                 **{f"refund_kernel_{k + 1}": float(v) for k, v in enumerate(kernel)})
    return cfg, truth


def fit_at_truth(fit, truth: dict[str, float]):
    """``fit`` (an :class:`agents.calibration.fit.Fit`) with every parameter at its true
    value and no uncertainty: the forecaster of the noise floor (the same forecast made
    from the true parameters; the latent state at the report's end is still inferred from
    the report, as a forecaster who knew the parameters would have to)."""
    params = fit.parameters
    z = np.clip([p.z_of(truth[p.name]) for p in params], *bounds(params))
    estimates = {name: Estimate(truth[name], truth[name], truth[name], e.unit, e.identified,
                                "truth") if name in truth else e
                 for name, e in fit.estimates.items()}
    return dataclasses.replace(fit, z=z, cov=np.eye(len(params)) * 1e-12,
                               estimates=estimates)


def truth_names(parameters) -> list[str]:
    """The market parameters (of ``parameters``, :func:`market_parameters`) whose truth
    :func:`fit_given_truth` can be told: all but the weekday effects."""
    return [p.name for p in parameters if not p.name.startswith("weekday_")]


def fit_given_truth(fit, truth: dict[str, float], names: list[str]):
    """``fit`` told the true values of the market parameters ``names``: the normal
    approximation conditioned on them (their mode at the truth, the others' moved to their
    conditional mean given it, the covariance the conditional one), the estimates following.
    A diagnostic of what one parameter's error costs a decision
    (``scripts/decision_value.py --known``).

    :raises ValueError: a name that is not one of the fit's market parameters (the weekday
        effects excepted).
    """
    from agents.calibration.fit import market_estimates

    params = fit.parameters
    position = {p.name: i for i, p in enumerate(params)}
    wrong = [n for n in names if n not in truth_names(params)]
    if wrong:
        raise ValueError(f"not a market parameter a truth can be given for: {wrong}")
    known = np.array([position[n] for n in names])
    rest = np.array([i for i in range(len(params)) if i not in set(known.tolist())])
    told = np.array([params[i].z_of(truth[params[i].name]) for i in known])
    gain = fit.cov[np.ix_(rest, known)] @ np.linalg.inv(fit.cov[np.ix_(known, known)])
    z = fit.z.copy()
    z[rest] += gain @ (told - fit.z[known])
    z[known] = told
    z = np.clip(z, *bounds(params))
    cov = np.eye(len(params)) * 1e-12
    cov[np.ix_(rest, rest)] = fit.cov[np.ix_(rest, rest)] - gain @ fit.cov[np.ix_(known, rest)]
    estimates = {**fit.estimates, **market_estimates(params, z, cov)}
    return dataclasses.replace(fit, z=z, cov=cov, estimates=estimates)


def synthetic_account(base: ScenarioConfig, index: int, days: int,
                      operator: str = "playbook",
                      overrides: dict | None = None) -> SyntheticAccount:
    """Account ``index`` (seed ``CALIBRATION_SEED + index``) of ``base``, ``days`` days from
    its launch, run by ``operator`` (a registered policy's name).

    :param overrides: scenario keys set after the draw (e.g. mechanics switched off).
    """
    seed = CALIBRATION_SEED + index
    rng = np.random.default_rng(seed)
    cfg, truth = draw_config(base, rng)
    cfg = cfg.replace(episode_days=max(cfg.episode_days, days), **(overrides or {}))
    policy = make_policy(operator, cfg)
    cfg = policy.config
    sim = Simulator(cfg, n=1)
    obs = sim.reset(seeds=[seed])
    truth["bidder_bias"] = float(sim.params.bidder_bias[0])
    truth.update({name: float(getattr(cfg, name)) for name in RULES})
    rows: dict[str, list] = {name: [] for name in (
        "spend", "gmv", "orders", "refunds", "settled_gmv", "target_roi", "budget", "balance",
        "learning", "learn_failed", "interrupted")}
    shares, refreshed = [], []
    # dated so that the launch's weekday is the one the simulator drew for the account
    start = LAUNCH_DATE + dt.timedelta(days=index)
    launch = start + dt.timedelta(days=(int(sim.params.start_weekday[0]) - start.weekday()) % 7)
    dates = [launch + dt.timedelta(days=d) for d in range(days)]
    last_refresh = launch
    for d in range(days):
        action = policy.predict(obs, deterministic=True)[0]
        obs, _, _, info = sim.step(action)
        for name in rows:
            value = float(np.asarray(info[name])[0])
            rows[name].append(int(value) if name in ("learning", "learn_failed",
                                                     "interrupted") else value)
        shares.append(np.asarray(info["shares"])[0].copy())
        if bool(np.asarray(info["refresh"])[0]):
            last_refresh = dates[d]
        refreshed.append(last_refresh)
    columns = dict(rows)
    share = np.array(shares)
    for i, plan in enumerate(plan_names(cfg)):
        columns[f"share_{plan}"] = [float(x) for x in share[:, i]]
    columns["plan_launch_date"] = [launch] * days
    columns["creative_date"] = refreshed
    peaks = cfg.promo_peak_days if cfg.promotions_enabled else ()
    promo = ",".join((launch + dt.timedelta(days=p)).isoformat() for p in peaks
                     if p < days + 7)
    return SyntheticAccount(seed, cfg, truth, dates, columns, promo)
