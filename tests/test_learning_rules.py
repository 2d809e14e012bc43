"""The learning period's rules read from a report's flags (agents/calibration/learning_rules.py):
the simulator's own learning stages, run along a synthetic report, reproduce its flags under
the rules that made it and not under others; a market stricter than its base is recognised
as such; a report that cannot show the rules leaves them to the base, and says so."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.calibration.learning_rules import (
    RULES,
    mismatched_days,
    rule_estimates,
    rule_values,
)
from agents.calibration.scenario import fitted_values
from agents.calibration.synthetic import synthetic_account
from envs.config import load_scenario


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """(market, base, history, true rules) of 56-day synthetic accounts: two of 3c, two of
    the unseen strict-learning market (50 orders to exit, failing after 5 days, re-learning
    from a 10% target change; its base, food, has 20, 7 and 15%)."""
    folder = tmp_path_factory.mktemp("rules")
    out = []
    for market_name, base_name in (("3c", "3c"), ("unseen/strict_learning", "food")):
        market, base = load_scenario(market_name), load_scenario(base_name)
        for index in (400, 401):
            acc = synthetic_account(market, index, 56)
            history = acc.history(base, folder / f"{base_name}_{index}.csv")
            out.append((market, base, history, {n: acc.truth[n] for n in RULES}))
    return out


def test_the_true_rules_reproduce_every_flag_and_others_do_not(reports):
    for _, base, history, truth in reports:
        assert history.learning.any()
        true = {n: np.array([truth[n]]) for n in RULES}
        assert mismatched_days(history, base, true)[0] == 0
        # a re-learning threshold four times the truth's lets edits through that restarted
        # learning in the report
        wrong = {**true, "relearn_target_change": true["relearn_target_change"] * 4}
        assert mismatched_days(history, base, wrong)[0] > 0


def test_a_stricter_market_than_its_base_is_recognised(reports):
    strict = [r for r in reports if r[0].name == "unseen_strict_learning"]
    identified = {n: 0 for n in RULES}
    for _, base, history, truth in strict:
        estimates, notes = rule_estimates(history, base)
        for name, e in estimates.items():
            assert e.low <= truth[name] <= e.high, name  # the truth always passes the flags
            if e.identified:
                identified[name] += 1
                assert not e.low < getattr(base, name) < e.high  # the base's is ruled out
                assert any(name in note for note in notes)
    assert identified["learning_exit_orders"] >= 1 and identified["relearn_target_change"] == 2
    _, base, history, truth = strict[0]
    values = rule_values(rule_estimates(history, base)[0])
    assert values["relearn_target_change"] == pytest.approx(truth["relearn_target_change"])
    assert isinstance(values["learning_fail_days"], int)


def test_rules_consistent_with_the_base_stay_the_base(reports):
    for market, base, history, _ in reports:
        if market.name != "3c":
            continue
        estimates, notes = rule_estimates(history, base)
        assert {n: e.value for n, e in estimates.items()} == {n: getattr(base, n)
                                                               for n in RULES}
        assert not notes


def test_a_report_that_cannot_show_the_rules_leaves_them_to_the_base(reports):
    _, base, history, _ = reports[2]
    hidden = dataclasses.replace(history, shown=history.shown - {"learning"})
    estimates, notes = rule_estimates(hidden, base)
    assert not any(e.identified for e in estimates.values())
    assert {n: e.value for n, e in estimates.items()} == {n: getattr(base, n) for n in RULES}
    assert "shows no learning period" in notes[0]
    gap = dataclasses.replace(history, day=np.where(history.day > 20, history.day + 1,
                                                    history.day))
    estimates, notes = rule_estimates(gap, base)
    assert not any(e.identified for e in estimates.values())
    assert "not consecutive" in notes[0]


def test_the_fitted_scenario_carries_the_rules(reports):
    """fitted_values puts the fitted rules in the scenario (scenario.yaml, the adapted
    anchor's markets, the forecasts)."""
    from agents.calibration.fit import fit_account

    _, base, history, truth = reports[2]
    fit = fit_account(history, base)
    values = fitted_values(fit)
    for name in RULES:
        e = fit.estimates[name]
        assert values[name] == pytest.approx(e.value)
        assert e.low <= truth[name] <= e.high
    assert values["relearn_target_change"] != base.relearn_target_change
