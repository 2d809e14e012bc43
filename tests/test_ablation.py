"""The playbook's rule ablation: each rule dropped in turn, paired on the same seeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation.ablation import PlaybookWithout, ablate, markdown_table, rule_names
from agents.evaluation.rollout import episode_value
from agents.policies.playbook import PlaybookPolicy
from envs.config import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_dropping_a_rule_keeps_the_others_in_order():
    config = load_scenario("3c")
    names = rule_names()
    assert len(names) == len(set(names)) == 10
    without = PlaybookWithout(config, "LadderRule")
    assert [type(r).__name__ for r in without.rules] == [n for n in names if n != "LadderRule"]
    with pytest.raises(ValueError, match="no rule 'MoonRule'"):
        PlaybookWithout(config, "MoonRule")


@pytest.mark.parametrize("objective", ["profit", "gmv_floor"])
def test_contributions_are_paired_differences(objective):
    seeds = np.arange(10000, 10004)
    values = ablate("food", objective, seeds, seed=10000, reps=200)
    assert [v.rule for v in values] == rule_names()
    config = load_scenario("food", objective=objective)
    full = episode_value(config, PlaybookPolicy(config), seeds)
    ladder = next(v for v in values if v.rule == "LadderRule")
    direct = full - episode_value(config, PlaybookWithout(config, "LadderRule"), seeds)
    assert ladder.contribution == pytest.approx(direct.mean())
    assert ladder.playbook == pytest.approx(full.mean())
    for v in values:
        assert v.ci_low <= v.contribution <= v.ci_high, v.rule
    table = markdown_table(values, objective)
    assert table.count("\n") == len(values) + 2 and "LadderRule" in table


def test_script_rejects_bad_input():
    done = subprocess.run([sys.executable, "scripts/ablate_playbook.py", "--scenarios",
                           "atlantis", "--episodes", "2"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "atlantis" in done.stderr
    assert "Traceback" not in done.stderr
