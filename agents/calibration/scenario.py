"""A fit as a scenario: the base scenario with the fitted values, as a config and as the
``scenario.yaml`` preset that ``train.py``, ``evaluate.py`` and ``tune.py`` accept.

What goes in: every fitted market parameter that is a scenario key (the pool, its weekday
pattern, noise and drift, the learning throttles, order value and basket noise, refund rate
and kernel, the promotion peaks' refund multiplier), the learning period's rules
(:mod:`.learning_rules`), the keys that scale with the account's size
(:func:`size_scaled`), the margin (given, or the base's), and the account's settings on the
report's last day as the launch settings. The per-account bidder bias is not a scenario key
(the simulator draws it per episode around 1); the top-ups the report's balance column shows
(:func:`observed_topups`); the base's promotions calendar and everything else the report
cannot show stay the base's.
"""

from __future__ import annotations

import re

import numpy as np

from agents.calibration.learning_rules import RULES, rule_values
from agents.calibration.prior import index_of, weekday_log_effects
from envs.actions import PLANS, WHOLE_SITE
from envs.config import ScenarioConfig

MARKET_KEYS = ("pool_cost_cny", "pool_mean_roi", "pool_sigma", "traffic_shock_sd",
               "traffic_shock_ar", "drift_cost_sd", "bidder_noise_sd", "roi_shock_sd",
               "drift_roi_sd", "learning_traffic_mult", "learning_roi_mult", "aov_cny",
               "basket_noise_sd", "refund_rate", "promo_refund_mult")


def fitted_values(fit, z: np.ndarray | None = None) -> dict:
    """The scenario keys a fit sets (plain values, YAML-friendly).

    :param fit: an :class:`agents.calibration.fit.Fit`.
    :param z: the market's parameters at this point of the fit's space (``fit.parameters``'
        order; a draw from its posterior) instead of the fitted values; keys outside that
        space (order value, basket noise, refunds) stay the fitted ones.
    """
    base, h = fit.base, fit.history
    values: dict = {key: float(fit.value(key)) for key in MARKET_KEYS}
    if z is not None:
        z = np.asarray(z, dtype=np.float64)
        values.update({p.name: float(p.value(z[i])) for i, p in enumerate(fit.parameters)
                       if p.name in MARKET_KEYS})
    effects = weekday_log_effects(fit.z if z is None else z,
                                  index_of(fit.parameters)["weekday_mon"])
    values["weekday_traffic"] = [round(float(w), 6) for w in
                                 np.asarray(base.weekday_traffic) * np.exp(effects)]
    kernel = np.array([fit.value(f"refund_kernel_{k}") for k in range(1, 8)])
    kernel = kernel / kernel.sum() if kernel.sum() > 0 else np.asarray(base.refund_kernel)
    values["refund_kernel"] = shares_summing_to_one(kernel)
    values.update(rule_values(fit.estimates))
    values.update(size_scaled(base, values["pool_cost_cny"]))
    values.update(observed_topups(h))
    values["margin"] = float(fit.margin)
    values["market_drift_enabled"] = True
    shares = h.shares[-1]
    count = len(PLANS) if shares[WHOLE_SITE] > 0 and base.whole_site_enabled else 3
    values["launch_shares"] = shares_summing_to_one(shares[:count] / shares[:count].sum())
    values["launch_target_roi"] = round(float(h.target[-1]), 2)
    values["launch_budget_cny"] = float(max(h.budget[-1], 300.0))
    values["name"] = scenario_name(h.account)
    return values


def size_scaled(base: ScenarioConfig, pool_cost_cny: float) -> dict[str, float]:
    """The market keys in CNY that a report cannot show and that scale with the account's
    size, for a pool of ``pool_cost_cny`` (CNY/day) in ``base``: the organic carryover's
    saturation, the opening balance and the scheduled top-up (assumption: an account whose
    pool is ``k`` times the base's saturates its organic lift at ``k`` times the stock, and
    keeps ``k`` times the money in its account). Synthetic accounts are drawn with it
    (:mod:`.synthetic`) and fitted markets are built with it; without it a fitted account
    many times the base's size had its organic lift saturate at the base's stock, which made
    spending look worth less than it was and the anchor adapted to the fit bid too high, and
    its balance could run dry within a forecast's fortnight while the account spent on (from
    the true parameters, the calibration benchmark's 28-day accounts' second held-out week
    held 66% of the days' spend in its 80% interval; with it, 82%)."""
    size = pool_cost_cny / base.pool_cost_cny
    return {"carryover_saturation_cny": base.carryover_saturation_cny * size,
            "initial_balance_cny": base.initial_balance_cny * size,
            "topup_cny": base.topup_cny * size}


def observed_topups(history) -> dict[str, float | int]:
    """The top-up keys the report's balance column shows (:meth:`.account.AccountHistory.
    topups`): the mean deposit as ``topup_cny`` and, from two deposits on, the mean days
    between them as ``topup_interval_days``; no deposit in the report: no top-up. Nothing
    without a balance column (the size-scaled assumption stands). The market tops up on the
    days since launch that the interval divides, so the report's own deposit days may fall
    a few days from the fitted schedule's."""
    seen = history.topups()
    if seen is None:
        return {}
    amount, gap = seen
    out: dict[str, float | int] = {"topup_cny": round(amount, 2)}
    if gap > 0:
        out["topup_interval_days"] = int(min(max(gap, 1), 365))
    return out


def shares_summing_to_one(values: np.ndarray) -> list[float]:
    """Shares rounded to 6 decimals that still sum to 1 (the largest takes the rounding)."""
    rounded = [round(float(v), 6) for v in values]
    top = int(np.argmax(rounded))
    rounded[top] = round(rounded[top] + 1.0 - sum(rounded), 6)
    return rounded


def fitted_config(fit, z: np.ndarray | None = None) -> ScenarioConfig:
    """The base scenario with :func:`fitted_values` (validated like any preset); at ``z``
    (a point of the fit's space, e.g. a posterior draw) when given."""
    return fit.base.replace(**fitted_values(fit, z))


def scenario_name(account: str) -> str:
    """A preset name for an account: ``fit_`` and its name's letters, digits and ``_``."""
    return "fit_" + (re.sub(r"[^0-9A-Za-z_]+", "_", account).strip("_") or "account")


def scenario_yaml(fit, base_name: str | None) -> str:
    """``scenario.yaml``: ``base:`` (when the base is a named preset) and the fitted keys,
    each with its 90% interval and whether the data identified it, as comments."""
    import yaml

    values = fitted_values(fit)
    lines = [f"# Calibrated from {fit.history.account}'s report ({fit.history.days} days, "
             f"{fit.history.dates[0]} .. {fit.history.dates[-1]}) by scripts/calibrate.py.",
             "# Each fitted key: value, then its 90% interval and whether the report identified"
             " it (else the prior, centred on the base, decided it); fit.json has them all."]
    if base_name is not None:
        lines.append(f"base: {base_name}")
    else:
        values = {**fit.base.to_dict(), **values}
    for key, value in values.items():
        text = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False).strip()
        text = text[1:-1] if text.startswith("{") else text
        estimate = fit.estimates.get(key)
        kind = "consistent" if key in RULES else "90%"  # a rule's: the set its flags pass
        note = (f"  # {kind}: {estimate.low:.4g} .. {estimate.high:.4g}, "
                f"{'identified' if estimate.identified else 'prior'}" if estimate else "")
        lines.append(text + note)
    return "\n".join(lines) + "\n"


def named_base(given: str) -> str | None:
    """The preset name to write as ``base:``: ``--base`` itself when it names a preset (it
    was loaded, so it exists), ``None`` when it was a file path (the preset then holds
    every key)."""
    return None if given.endswith((".yaml", ".yml")) or "/" in given else given
