"""An end that is not free (#14 item 7): the ``terminal_value`` reward term, with the switch on.

Its size against an actual simulated continuation (Monte Carlo over the model's noise, holding
the final settings), its direction (a healthy final state is worth more than a wound-down
one), batch = singles, and that evaluation's value counts it.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents.evaluation.rollout import RolloutResult, objective_values
from envs.config import SECOND_VERSION_OFF, load_scenario
from envs.market import N_DRAWS, AccountParams, Decision
from envs.metrics import day_profit
from envs.reward import TERMINAL_VALUE, reward_args, term_names
from envs.simulator import Simulator

DAYS = 28  # the continuation the docs suggest (assumption)
SEEDS = np.arange(4)


def _config(**overrides):
    """3c in the first version's market with the end valued (each mechanic's own test)."""
    return load_scenario("3c", action_space="full",
                         **{**SECOND_VERSION_OFF, "terminal_value_days": DAYS, **overrides})


def _play(cfg, seeds, wind_down: bool = False):
    """A profitable hold (target raised to about 1.5 x break-even on days 0-1, all but a sliver
    of budget on the ROI plans, no refresh); ``wind_down``: on its last 4 days the budget is
    cut by a third daily (to a fifth) and the target raised 25% daily (learning restarts)."""
    sim = Simulator(cfg, n=len(seeds))
    sim.reset(seeds=seeds)
    day = 0
    while True:
        a = np.zeros((len(seeds), sim.action_dim))
        a[:, 0] = 1.0 if day < 2 else 0.0
        a[:, 2:5] = (1.0, 1.0, -1.0)
        a[:, 5] = -1.0
        if wind_down and day >= cfg.episode_days - 4:
            a[:, 0], a[:, 1] = 1.0, -1.0
        _, _, done, info = sim.step(a)
        day += 1
        if done:
            return sim, info


@pytest.fixture(scope="module")
def healthy():
    return _play(_config(), SEEDS)


def test_on_by_default_and_off_no_term():
    assert load_scenario("3c").terminal_value_days == DAYS
    assert TERMINAL_VALUE not in term_names(load_scenario("3c", terminal_value_days=0))
    assert term_names(_config())[-1] == TERMINAL_VALUE


def test_charged_on_the_last_day_only(healthy):
    sim, info = healthy
    assert np.all(info["reward_terms"][TERMINAL_VALUE] == sim.term_sums[TERMINAL_VALUE])
    np.testing.assert_array_equal(info["episode_metrics"][TERMINAL_VALUE],
                                  info["reward_terms"][TERMINAL_VALUE])


def test_size_and_sign_match_a_simulated_continuation(healthy):
    """The estimate is within 12% of the mean of 300 noisy continuations (holding the final
    settings, profit counted by envs.metrics.day_profit), account by account, and has its sign.
    (The noise-free roll is the median path: measured 0.5-10% below the mean here.)"""
    sim, info = healthy
    estimate = info["reward_terms"][TERMINAL_VALUE]
    k = 300
    for i in range(len(SEEDS)):
        state = sim.state.account(i).repeat(k)
        params = AccountParams(*(np.repeat(x[i:i + 1], k, axis=0) for x in sim.params))
        rng = np.random.default_rng(1000 + i)
        total = np.zeros(k)
        for _ in range(DAYS):
            hold = Decision(state.target_roi, state.budget_cny, state.shares,
                            np.zeros(k, dtype=bool))
            state, out = sim.model.step(state, params, hold, rng.standard_normal((k, N_DRAWS)))
            total += day_profit(reward_args(sim.cfg), params, out)
        mean, se = total.mean(), total.std() / np.sqrt(k)
        assert np.sign(estimate[i]) == np.sign(mean) and mean > 5 * se
        assert abs(estimate[i] - mean) <= 0.12 * abs(mean), (i, estimate[i], mean, se)


def test_healthy_final_state_worth_more_than_wound_down(healthy):
    """Same seeds, same first 80 days; left in learning with a tiny budget, the account's
    final state is worth much less (and evaluation's value counts it)."""
    sim, info = healthy
    low_sim, low_info = _play(_config(), SEEDS, wind_down=True)
    assert low_sim.state.learning.all() and (low_sim.state.budget_cny < 0.25
                                            * sim.state.budget_cny).all()
    good, bad = info["reward_terms"][TERMINAL_VALUE], low_info["reward_terms"][TERMINAL_VALUE]
    assert (good > 0).all() and (bad < 0.5 * good).all()
    for run_info, tv in ((info, good), (low_info, bad)):
        result = RolloutResult(SEEDS, run_info["episode_metrics"], np.zeros(len(SEEDS)))
        np.testing.assert_allclose(objective_values(_config(), result),
                                   run_info["episode_metrics"]["profit"] + tv)


def test_seeded_batch_equals_single_runs_with_the_term():
    cfg = _config(episode_days=10, randomize=0.3)
    seeds = [3, 4, 5]
    _, batch = _play(cfg, seeds)
    for i, seed in enumerate(seeds):
        _, one = _play(cfg, [seed])
        for name, value in one["reward_terms"].items():
            assert value[0] == batch["reward_terms"][name][i], (seed, name)
