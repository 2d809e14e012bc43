"""History -> features on hand-made dashboards, and the simulator's day-major history buffer."""

from __future__ import annotations

import numpy as np
import pytest

from envs.config import load_scenario
from envs.history import (
    COL,
    COLUMNS,
    FEATURE_INDEX,
    HISTORY_DAYS_REQUIRED,
    OBS_BOUND,
    DecisionContext,
    HistoryTable,
    build_features,
    decode_features,
)
from envs.simulator import Simulator

DAYS = HISTORY_DAYS_REQUIRED


def _table(n: int = 1, days: int = DAYS) -> np.ndarray:
    """A steady account: 1,000 CNY a day at ROI 3, target 3, budget 2,000, settled days 2,700."""
    v = np.zeros((n, days, len(COLUMNS)))
    v[..., COL["spend"]] = 1000.0
    v[..., COL["gmv"]] = 3000.0
    v[..., COL["orders"]] = 30.0
    v[..., COL["refunds"]] = 300.0
    v[..., COL["target_roi"]] = 3.0
    v[..., COL["budget"]] = 2000.0
    v[..., COL["balance"]] = 50_000.0
    v[..., COL["settled_gmv"]] = 2700.0
    v[:, -7:, COL["settled_gmv"]] = np.nan  # the 7 newest days are not settled yet
    return v


def _context(n: int = 1) -> DecisionContext:
    return DecisionContext(
        plan_age_days=np.full(n, 56.0), creative_age_days=np.full(n, 14.0),
        days_to_promo=np.full(n, 30.0), days_after_promo=np.full(n, 30.0),
        in_promo=np.zeros(n), weekday=np.zeros(n), breakeven_roi=np.full(n, 2.5),
        shares=np.tile([0.5, 0.2, 0.3], (n, 1)))


def _features(values: np.ndarray) -> dict[str, np.ndarray]:
    return decode_features(build_features(HistoryTable(values), _context(values.shape[0])))


def test_steady_account_reads_as_its_dashboard():
    f = _features(_table())
    assert f["roi_d1"][0] == pytest.approx(3.0)
    assert f["roi_7d"][0] == pytest.approx(3.0)
    assert f["spend_to_budget_d1"][0] == pytest.approx(0.5)
    assert f["log_budget_to_spend_7d"][0] == pytest.approx(np.log(2001.0 / 1001.0), rel=1e-6)
    assert f["settlement_roi_d7"][0] == pytest.approx(2.7)
    assert f["settlement_roi_7d"][0] == pytest.approx(2.7)
    assert f["refund_rate_7d"][0] == pytest.approx(0.1)
    assert f["days_since_target_change"][0] == pytest.approx(DAYS)  # capped at the window
    assert f["plan_age_days"][0] == pytest.approx(56.0)
    assert f["balance_days"][0] == pytest.approx(50.0)
    assert f["log_gmv_trend"][0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("changed_days_ago", [1, 3, 13])
def test_days_since_target_change_counts_back_to_the_edit(changed_days_ago):
    v = _table()
    v[0, :-changed_days_ago, COL["target_roi"]] = 2.5  # the new target since then
    assert _features(v)["days_since_target_change"][0] == pytest.approx(changed_days_ago)


def test_no_spend_gives_no_roi_and_extremes_are_clipped():
    v = _table(n=2)
    v[0, -1, COL["spend"]] = 0.0  # yesterday without spend: ROI shows 0, not inf
    v[1, :, COL["gmv"]] = 1e9  # absurd GMV: ROI features clip at OBS_BOUND, log ratios at 5
    v[1, :, COL["budget"]] = 1e12
    obs = build_features(HistoryTable(v), _context(2))
    assert obs[0, FEATURE_INDEX["roi_d1"]] == 0.0
    assert obs[1, FEATURE_INDEX["roi_d1"]] == OBS_BOUND
    assert obs[1, FEATURE_INDEX["log_budget_to_spend_7d"]] == 5.0
    assert np.isfinite(obs).all()


def test_accounts_are_independent_and_only_the_last_days_count():
    one = _table()
    one[0, -5:, COL["gmv"]] = 4000.0
    longer = np.concatenate([np.full((1, 10, len(COLUMNS)), 7.0), one], axis=1)
    batch = np.concatenate([_table(), one])
    obs_batch = build_features(HistoryTable(batch), _context(2))
    np.testing.assert_array_equal(obs_batch[1:], build_features(HistoryTable(one), _context()))
    np.testing.assert_array_equal(build_features(HistoryTable(longer), _context()),
                                  obs_batch[1:])
    with pytest.raises(ValueError, match="needs"):
        build_features(HistoryTable(one[:, 1:]), _context())


@pytest.mark.parametrize("history_days", [14, 20])
def test_simulator_history_is_the_shifted_dashboard(history_days):
    """Across many days (the buffer wraps several times), the simulator's history equals a
    plain shift register of each day's dashboard row, with settled GMV filled in 7 days late."""
    cfg = load_scenario("3c", history_days=history_days, action_space="full")
    sim = Simulator(cfg, n=3)
    rng = np.random.default_rng(4)
    sim.reset(rng)
    expected = sim.history.copy()
    for _ in range(60):
        action = rng.uniform(-0.3, 0.3, (3, sim.action_dim))
        _, _, done, info = sim.step(action, rng=rng)
        row = np.full((3, 1, len(COLUMNS)), np.nan)
        for name in ("spend", "gmv", "orders", "refunds", "target_roi", "budget", "balance",
                     "interrupted"):
            row[:, 0, COL[name]] = info[name]
        for name in ("learning", "learn_failed"):  # the state the next morning sees
            row[:, 0, COL[name]] = sim.history[:, -1, COL[name]]
        expected = np.concatenate([expected[:, 1:], row], axis=1)
        expected[:, -8, COL["settled_gmv"]] = info["settled_gmv"]
        assert not done
        np.testing.assert_array_equal(sim.history, expected)
    assert sim.history.shape == (3, history_days, len(COLUMNS))
    np.testing.assert_array_equal(sim.observe(),
                                  build_features(HistoryTable(expected), sim.context(),
                                                 sim.cfg.whole_site_enabled))
