"""A moving market (issue #14, item 5; switch ``market_drift_enabled``): the pool's mean ROI
and cost drift (a log AR(1) with the stated stationary sd and half-life) and shift with
competitor regimes (at the stated rate and step size), they move the pool the bidder buys
from, they stay hidden from the policy, and the switch off changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from envs.config import SECOND_VERSION_OFF, load_scenario
from envs.market import N_DRAWS, Decision, MarketModel, draw_count
from envs.simulator import Simulator, observe_window

# the first version's market, quiet: each test switches on what it measures
QUIET = dict(SECOND_VERSION_OFF, shocks_enabled=False, bidder_noise_enabled=False,
             weekday_enabled=False,
             promotions_enabled=False, fatigue_enabled=False, organic_enabled=False,
             learning_enabled=False)
NO_REGIMES = dict(regime_shift_interval_days=1e6, regime_roi_step_sd=0.0,
                  regime_cost_step_sd=0.0)
NO_DRIFT = dict(drift_roi_sd=0.0, drift_cost_sd=0.0)


def hold(state) -> Decision:
    """Keep the settings in force."""
    return Decision(state.target_roi.copy(), state.budget_cny.copy(), state.shares.copy(),
                    np.zeros(state.day.shape[0], dtype=bool))


def drift_path(cfg, n: int, days: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The drift state of ``n`` launched accounts over ``days`` days, (days + 1, n) per
    field, row 0 at launch."""
    model = MarketModel(cfg)
    rng = np.random.default_rng(seed)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    draws = rng.standard_normal((days, n, model.n_draws))
    fields = ("roi_drift", "cost_drift", "roi_regime", "cost_regime")
    path = {f: [getattr(state, f).copy()] for f in fields}
    for d in range(days):
        state, _ = model.step(state, params, hold(state), draws[d])
        for f in fields:
            path[f].append(getattr(state, f).copy())
    return {f: np.array(v) for f, v in path.items()}


def test_drift_has_the_stated_stationary_sd_and_half_life():
    cfg = load_scenario("3c", market_drift_enabled=True, **NO_REGIMES)
    half_life = int(cfg.drift_half_life_days)
    path = drift_path(cfg, n=4000, days=2 * half_life)
    for field, sd in (("roi_drift", cfg.drift_roi_sd), ("cost_drift", cfg.drift_cost_sd)):
        x = path[field]
        for day in (0, half_life, 2 * half_life):  # stationary from the start
            assert x[day].mean() == pytest.approx(0.0, abs=4 * sd / np.sqrt(4000))
            assert x[day].std() == pytest.approx(sd, rel=0.05), (field, day)
        # autocorrelation 1/2 over a half-life, 1/4 over two
        assert np.corrcoef(x[0], x[half_life])[0, 1] == pytest.approx(0.5, abs=0.04)
        assert np.corrcoef(x[0], x[2 * half_life])[0, 1] == pytest.approx(0.25, abs=0.04)
    assert not path["roi_regime"].any() and not path["cost_regime"].any()


def test_regime_shifts_occur_at_the_stated_rate_with_the_stated_steps():
    cfg = load_scenario("3c", market_drift_enabled=True, **NO_DRIFT)
    n, days = 3000, cfg.episode_days
    path = drift_path(cfg, n=n, days=days, seed=1)
    fade = 2.0 ** (-1.0 / cfg.regime_half_life_days)
    steps = {f: path[f][1:] - fade * path[f][:-1] for f in ("roi_regime", "cost_regime")}
    shifted = (np.abs(steps["roi_regime"]) > 1e-12) | (np.abs(steps["cost_regime"]) > 1e-12)
    counts = shifted.sum(axis=0)  # shifts per account over the episode
    p = -np.expm1(-1.0 / cfg.regime_shift_interval_days)
    expected = days * p  # about 2 per 84-day launch
    assert expected == pytest.approx(days / cfg.regime_shift_interval_days, rel=0.02)
    assert counts.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected / n))
    assert counts.var() / counts.mean() == pytest.approx(1.0 - p, abs=0.1)  # Poisson-like
    # between shifts a regime only fades: no step on the other days
    assert np.abs(steps["roi_regime"][~shifted]).max() < 1e-12
    assert steps["roi_regime"][shifted].std() == pytest.approx(cfg.regime_roi_step_sd,
                                                              rel=0.06)
    assert steps["cost_regime"][shifted].std() == pytest.approx(cfg.regime_cost_step_sd,
                                                               rel=0.06)
    assert not path["roi_drift"].any() and not path["cost_drift"].any()


def _mature(cfg, n: int = 1):
    model = MarketModel(cfg)
    rng = np.random.default_rng(0)
    params = model.sample_params(rng, n)
    state = model.launch(model.initial_state(params, rng), params)
    state.day[:] = 20
    state.balance_cny[:] = 1e9
    state.budget_cny[:] = 1e7  # the budget never binds
    state.shares[:] = (1.0, 0.0, 0.0, 0.0)
    return model, params, state


@pytest.mark.parametrize("roi_step, cost_step", [(1.25, 1.0), (1.0, 0.8), (0.8, 1.3)])
def test_drift_moves_the_pool_the_bidder_buys_from(roi_step, cost_step):
    """A drift of the pool's log mean ROI and cost by ``x`` is, to the bidder, exactly a pool
    ``e^x`` richer and larger (after a day's decay ``phi``): the same spend and GMV as an
    unmoving market with those economics. Direction: a richer pool qualifies more traffic
    at the same target (more spend), a larger one scales spend in proportion."""
    on_cfg = load_scenario("3c", **{**QUIET, "market_drift_enabled": True, **NO_DRIFT,
                                    **NO_REGIMES})
    off_cfg = load_scenario("3c", **QUIET)
    on, params, state = _mature(on_cfg)
    state.roi_drift[:] = np.log(roi_step)
    state.cost_drift[:] = np.log(cost_step)
    _, moved = on.step(state, params, hold(state), np.zeros((1, on.n_draws)))
    off, base_params, base_state = _mature(off_cfg)
    _, still = off.step(base_state, base_params, hold(base_state), np.zeros((1, N_DRAWS)))
    phi = 2.0 ** (-1.0 / on_cfg.drift_half_life_days)
    richer = base_params._replace(pool_mean_roi=base_params.pool_mean_roi * roi_step ** phi,
                                  pool_cost_cny=base_params.pool_cost_cny * cost_step ** phi)
    _, same = off.step(base_state, richer, hold(base_state), np.zeros((1, N_DRAWS)))
    for field in ("spend", "gmv", "pool_share"):
        np.testing.assert_allclose(getattr(moved, field), getattr(same, field), rtol=1e-12)
    if cost_step == 1.0:
        assert (moved.spend > still.spend) == (roi_step > 1.0)
    if roi_step == 1.0:  # the share bought is the same, of a pool cost_step^phi as large
        np.testing.assert_allclose(moved.spend / still.spend, cost_step ** phi, rtol=1e-9)


def test_drift_of_zero_size_is_the_unmoving_market_bit_for_bit():
    """The switch on with no drift and no regimes reduces exactly to the switch off, given
    the same first columns of draws (the extra columns come after them)."""
    on_cfg = load_scenario("3c", market_drift_enabled=True, **NO_DRIFT, **NO_REGIMES)
    off_cfg = load_scenario("3c", market_drift_enabled=False)
    assert draw_count(off_cfg) == N_DRAWS < draw_count(on_cfg)
    on, params, state = _mature(on_cfg, n=8)
    off = MarketModel(off_cfg)
    draws = np.random.default_rng(3).standard_normal((10, 8, on.n_draws))
    s_on, s_off = state, state.copy()
    for d in range(10):
        s_on, o_on = on.step(s_on, params, hold(s_on), draws[d])
        s_off, o_off = off.step(s_off, params, hold(s_off), draws[d, :, :N_DRAWS])
        for a, b in zip(o_on, o_off, strict=True):
            np.testing.assert_array_equal(a, b)


def test_switch_off_keeps_the_market_still_and_the_draws_as_they_were():
    sim = Simulator(load_scenario("3c", market_drift_enabled=False), n=3)
    sim.reset(seeds=[0, 1, 2])
    for _ in range(5):
        sim.step(np.zeros((3, sim.action_dim)))
    for field in ("roi_drift", "cost_drift", "roi_regime", "cost_regime"):
        assert not getattr(sim.state, field).any()
    assert sim.model.n_draws == N_DRAWS


def test_too_few_draws_for_a_moving_market_raise():
    model, params, state = _mature(load_scenario("3c", market_drift_enabled=True))
    with pytest.raises(ValueError, match="draw"):
        model.step(state, params, hold(state), np.zeros((1, N_DRAWS)))


def test_observation_does_not_reveal_the_drift_or_the_bidder_bias():
    """The policy sees the market's movement only through the dashboard: given the same
    dashboard history, other drift levels and another bidder bias give the same observation."""
    cfg = load_scenario("3c", market_drift_enabled=True)
    sim = Simulator(cfg, n=4)
    sim.reset(seeds=[5, 6, 7, 8])
    for _ in range(10):
        obs, *_ = sim.step(np.zeros((4, sim.action_dim)))
    days = np.ascontiguousarray(sim.history.transpose(1, 2, 0))
    tables = sim.model.inputs.tables
    seen = observe_window(days, cfg.history_days, sim.state, sim.params, tables,
                          cfg.whole_site_enabled)
    np.testing.assert_array_equal(seen, obs)
    state = sim.state._replace(roi_drift=sim.state.roi_drift + 0.5,
                               cost_drift=sim.state.cost_drift - 0.5,
                               roi_regime=sim.state.roi_regime + 0.3,
                               cost_regime=sim.state.cost_regime - 0.3)
    params = sim.params._replace(bidder_bias=sim.params.bidder_bias * 0.7)
    np.testing.assert_array_equal(observe_window(days, cfg.history_days, state, params,
                                                 tables, cfg.whole_site_enabled), obs)


def test_both_engines_move_the_market_alike():
    """Compiled and plain NumPy run the same source: the same drift path, to rounding."""
    cfg = load_scenario("3c", market_drift_enabled=True, regime_shift_interval_days=5.0)
    paths = []
    for engine in ("numba", "numpy"):
        sim = Simulator(cfg, n=4, engine=engine)
        sim.reset(seeds=[21, 22, 23, 24])
        rewards = []
        for _ in range(30):
            rewards.append(sim.step(np.zeros((4, sim.action_dim)))[1])
        paths.append((np.array(rewards), sim.state.roi_regime, sim.state.cost_drift))
    for a, b in zip(*paths, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())
    assert np.abs(paths[0][1]).max() > 0  # regimes did shift
