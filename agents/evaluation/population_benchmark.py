"""Policies against ``static`` on a population of markets no policy was trained or tuned on.

The named scenarios and the eight unseen markets are 15 markets; a policy can be tuned to
them. This benchmark plays it on hundreds more: the synthetic accounts of
:mod:`agents.calibration.population`, each market drawn from the fit's prior around a named
scenario or an unseen market (pools from a tenth to twelve times their market's, other
curves, refund rates, learning rules). An anchored policy plays each account's true market
from launch on its base scenario's stored ``static`` settings (what ``recommend`` plays on a
new account of that kind), against those settings held (``static``) on the same report seeds:
the decision value's G and ``static`` arms, without the fit.

Per account and policy a record of per-seed values (CNY per launch) is kept as soon as it is
measured (:mod:`agents.calibration.records`), so a rerun goes on where one stopped and a
policy added later is measured alone. Accounts are the unit of the intervals (each account's
mean over its seeds is one observation); an account counts as *behind* ``static`` when its
paired 95% t-interval over seeds is below 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.calibration.population import account_market, off_scenario, true_launch
from agents.calibration.synthetic import synthetic_account
from agents.evaluation.intervals import CONFIDENCE, mean_interval, paired_difference
from agents.evaluation.rollout import episode_value
from agents.policies import make_policy
from agents.policies.baseline_store import load_static
from agents.policies.static import FixedSettingsPolicy
from envs.seeds import REPORT_SEED

STATIC = "static"  # the label of the anchor held as fixed settings
RULES = ("static_rule", "playbook")  # rules that need nothing stored per scenario
DRAW_DAYS = 1  # days simulated to draw an account (its market does not depend on them)


@dataclass(frozen=True)
class Contender:
    """A policy to play on the population: an anchored ONNX export, a rule of :data:`RULES`
    (on the account's own break-even), or ``static`` (the base's stored settings held).

    :param label: its name in tables, and its records' folder (a rule's is its name).
    :param path: the ``policy.onnx`` (None otherwise).
    """

    label: str
    path: Path | None = None

    @property
    def rule(self) -> str | None:
        """The registered rule's name, for a rule."""
        return self.label if self.label in RULES else None


def policy_label(path: Path) -> str:
    """A folder-safe label for an ONNX export: its parent folder's name and the first 10 hex
    digits of the graph's sha256 (so a re-export under the same name is measured anew)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return f"{path.parent.name}-{digest}"


def play_account(index: int, days: int, objective: str, contender: Contender,
                 seeds: int) -> dict:
    """Account ``index``'s record for ``contender``: its values on the account's true market
    for ``objective``, one per report seed (CNY per launch). ``days`` is the records' key
    (:data:`DRAW_DAYS`), not a report length."""
    from agents.serving.onnx_policy import OnnxPolicy  # onnxruntime only where it plays

    market, base = account_market(index)
    acc = synthetic_account(market, index, DRAW_DAYS)
    truth, _ = true_launch(acc, market, objective)
    anchor = load_static(base.replace(objective=objective))
    report_seeds = REPORT_SEED + np.arange(seeds)
    if contender.rule is not None:
        policy = make_policy(contender.rule, truth)
    elif contender.path is None:
        policy = FixedSettingsPolicy(truth, anchor)
    else:
        policy = OnnxPolicy(contender.path)
        policy.select_anchor(base.name, account=truth)
        policy.anchor = anchor
    values = episode_value(truth, policy, report_seeds)
    return {"index": index, "days": days, "seed": acc.seed, "market": market.name,
            "base": base.name, "objective": objective, "policy": contender.label,
            "pool_size_ratio": acc.config.pool_cost_cny / market.pool_cost_cny,
            "values": [float(v) for v in values]}


@dataclass(frozen=True)
class Comparison:
    """One policy against another over the same accounts (CNY per launch)."""

    accounts: int
    diff: tuple[float, float, float]  # mean over accounts, t-interval (accounts as clusters)
    ahead: int  # accounts whose paired interval over seeds is above 0
    behind: int  # ... below 0
    behind_2pct: int  # accounts behind by more than 2% of |the other's value|
    worst: tuple[int, float]  # (account index, its mean difference)


def compare(records: dict[int, dict], against: dict[int, dict],
            confidence: float = CONFIDENCE) -> Comparison:
    """``records``' policy against ``against``'s on the accounts both hold."""
    common = sorted(set(records) & set(against))
    if not common:
        raise ValueError("no account is measured for both policies")
    means, ahead, behind, behind_2pct = [], 0, 0, 0
    for i in common:
        a, b = np.asarray(records[i]["values"]), np.asarray(against[i]["values"])
        if len(a) != len(b):
            raise ValueError(f"account {i}: {len(a)} seeds against {len(b)}")
        mean, low, high = paired_difference(a, b, confidence)  # NaN bounds: one seed
        means.append(mean)
        ahead += bool(low > 0)
        behind += bool(high < 0)
        behind_2pct += bool(mean < -0.02 * abs(b.mean()))
    m = np.array(means)
    k = int(np.argmin(m))
    return Comparison(len(common), mean_interval(m, confidence), ahead, behind, behind_2pct,
                      (common[k], float(m[k])))


def subset(records: dict[int, dict], off: bool | None) -> dict[int, dict]:
    """The records of accounts off the named scenarios (``off``), on them, or all (None)."""
    return {i: r for i, r in records.items()
            if off is None or off_scenario(r["market"], r["base"]) == off}
