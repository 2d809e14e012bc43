"""The value of the account's state at the episode's end: an end that is not free (#14 item 7).

An account goes on after the episode's last day. With ``terminal_value_days = N > 0`` the
last day's reward carries one more term, ``terminal_value`` (CNY): what the account earns,
under the run's objective, over ``N`` more days holding its final settings (target, budget,
plan shares; no creative refresh) from its final state (learning, organic stock, traffic
shock, balance, creative age), undiscounted. It is estimated by one noise-free roll of the
model's day (every standard normal draw 0: no random numbers, so a batch equals its accounts
run one by one) inside the last day's compiled call. It is the median path, not the mean:
against 300 noisy continuations it measured 0.5-10% low on profitable holds of ``3c`` and
4-9% more negative on loss-making ones (``tests/test_terminal_value.py``). Continuation days
past the calendar read its last row (no promotion). The continuation's cohorts are charged
their refunds on their order day; the episode's own cohorts were charged by the episode.
"""

from __future__ import annotations

import numpy as np

from envs.compiled import helper
from envs.inputs import DayConstants, DayTables
from envs.market import (
    N_DRAWS,
    N_DRIFT_DRAWS,
    AccountParams,
    Decision,
    MarketState,
    simulate_day,
)
from envs.reward import RewardSettings, reward_rows


@helper
def continuation_value(c: DayConstants, t: DayTables, state: MarketState,
                       params: AccountParams, settings: RewardSettings, days: int) -> np.ndarray:
    """Value (CNY, under ``settings``' objective) of ``days`` more days holding the settings
    in force in ``state``, by a noise-free roll of :func:`envs.market.simulate_day`.

    :param state: the state after the episode's last day.
    :param settings: the run's :func:`envs.reward.reward_args` (its refund charging is
        replaced by ``on_order``: each continuation cohort's refunds in full, once).
    :return: (n,) CNY per account.
    """
    n = state.day.shape[0]
    no_refresh = np.zeros(n, dtype=np.bool_)
    on_order = RewardSettings(settings.gmv_floor, True, settings.floor_roi,
                              settings.floor_penalty, settings.floor_multiplier,
                              settings.peak_discount, settings.return_handling_cny)
    no_pending = np.zeros(n)
    no_noise = np.zeros((n, N_DRAWS + N_DRIFT_DRAWS))  # every column any mechanic reads
    total = np.zeros(n)
    now = state
    for _ in range(days):
        hold = Decision(now.target_roi, now.budget_cny, now.shares, no_refresh)
        now, out = simulate_day(c, t, now, params, hold, no_noise)
        rows = reward_rows(on_order, params, out, no_pending, False)
        for term in range(rows.shape[0]):
            total += rows[term]
    return total


@helper
def with_terminal_value(c: DayConstants, t: DayTables, state: MarketState,
                        params: AccountParams, settings: RewardSettings, rows: np.ndarray,
                        last_day: bool) -> np.ndarray:
    """The day's reward terms ``rows`` (terms, n) with the ``terminal_value`` row appended
    (CNY): :func:`continuation_value` over ``c.terminal_value_days`` days on the last day,
    0 before.

    :param state: the state after the day.
    """
    terms = np.zeros((rows.shape[0] + 1, rows.shape[1]))
    terms[:rows.shape[0]] = rows
    if last_day:
        terms[rows.shape[0]] = continuation_value(c, t, state, params, settings,
                                                  c.terminal_value_days)
    return terms
