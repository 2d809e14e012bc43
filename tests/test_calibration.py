"""Calibration sanity (market brief §10), per scenario on 32 report seeds: no straw men."""

from __future__ import annotations

import pytest

from envs.config import list_scenarios, load_scenario

N_SEEDS = 32  # the report seeds 10000..10031 (the baseline_profits fixture, tests/conftest.py)


@pytest.mark.parametrize("name", list_scenarios())
def test_typical_target_buys_a_meaningful_share_and_breakeven_is_near_it(name):
    cfg = load_scenario(name)
    assert 0.3 <= cfg.typical_pool_share <= 0.8
    assert abs(cfg.breakeven_roi / cfg.typical_target_roi - 1.0) <= 0.2


@pytest.mark.slow
@pytest.mark.parametrize("name", list_scenarios())
def test_playbook_scores_between_half_and_almost_the_oracle(name, baseline_profits):
    runs = baseline_profits(name)  # every policy on the 32 report seeds, shared
    assert all(len(v) == N_SEEDS for v in runs.values())
    profit = {p: runs[p].mean() for p in ("constant", "playbook", "oracle")}
    score = (profit["playbook"] - profit["constant"]) / (profit["oracle"] - profit["constant"])
    assert 0.5 <= score <= 0.98, (name, score, profit)
