"""Whole-site promotion (全域推广) as its own plan (issue #14 item 4, switch
``whole_site_enabled``): the bidding stage's direction and size against the closed form, the
order of buying, the organic lift, exclusivity, the action and observation it adds, and the
off switch (and a whole-site share of 0) leaving the first version's numbers bit for bit."""

import numpy as np
import pytest

from agents.policies.playbook import PhaseRule, PromotionRule
from agents.policies.settings import DaySettings
from envs.actions import (
    PLANS,
    WHOLE_SITE,
    action_names,
    encode_action,
    plan_share_row,
    to_decision,
)
from envs.anchored import StaticSettings
from envs.config import SECOND_VERSION_OFF, ConfigError, load_scenario
from envs.history import FEATURE_NAMES, decode_features, feature_names
from envs.inputs import day_constants
from envs.pool import gmv_share, noisy_selection, qualifying_share, share_table
from envs.simulator import INFO_KEYS, Simulator
from envs.stages import Morning, Traffic, exclusive_shares, place_bids

M, SIGMA, V = 2.0, 0.7, 20000.0  # pool mean ROI, its log-sd, its cost (CNY)
PAYMENT, WHOLE = (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)


def _bids(cfg, shares, target, budget=1e9, balance=1e12):
    n = len(target)
    morning = Morning(target_roi=np.asarray(target, float), budget_cny=np.full(n, budget),
                      shares=np.tile(plan_share_row(shares), (n, 1)),
                      refresh=np.zeros(n, bool), creative_age_days=np.zeros(n),
                      in_protection=np.zeros(n, bool), protection_edits=np.zeros(n, np.int64),
                      balance_cny=np.full(n, balance))
    traffic = Traffic(traffic_shock=np.zeros(n), pool_cost=np.full(n, V),
                      pool_roi=np.full(n, M))
    return place_bids(day_constants(cfg), share_table(), np.full(n, SIGMA), morning, traffic,
                      np.ones(n, bool))


def _ad_gmv(bids):
    """Expected ad GMV of the ROI plans (standard and whole-site) and of the whole-site plan."""
    ws = bids.avg_roi * bids.ws_top + bids.ws_deep_gmv
    return bids.avg_roi * (bids.spend_pay + bids.spend_set) + ws, ws


# the first version's market with whole-site on (the mechanic alone)
ON = load_scenario("3c", **{**SECOND_VERSION_OFF, "whole_site_enabled": True})
LIFT = ON.whole_site_organic_lift
TARGETS = np.array([2.5, 3.0, 4.0, 5.0])


def test_whole_site_holds_the_target_on_total_gmv():
    """Budget not binding, same target: the whole-site plan buys the share of the effective
    ad target ``target / (1 + lift)``, so it spends more and earns more than a payment-ROI
    plan; its total GMV (ad + lift) / spend is the target, its ad ROI target / (1 + lift)."""
    pay, ws = _bids(ON, PAYMENT, TARGETS), _bids(ON, WHOLE, TARGETS)
    _, ws_ad = _ad_gmv(ws)
    pay_ad, _ = _ad_gmv(pay)
    np.testing.assert_allclose(ws.spend_ws, V * qualifying_share(TARGETS / (1 + LIFT), M, SIGMA),
                               rtol=1e-12)
    assert np.all(ws.spend > pay.spend) and np.all((1 + LIFT) * ws_ad > pay_ad)
    # the lift's sizing: at 3c's typical target, +17.5% GMV at the same (total) ROI, the
    # middle of the operators' +15-20% (the pool here is 3c's)
    typical = _bids(ON, WHOLE, [ON.typical_target_roi]), _bids(ON, PAYMENT,
                                                                [ON.typical_target_roi])
    gain = (1 + LIFT) * _ad_gmv(typical[0])[1] / _ad_gmv(typical[1])[0]
    assert gain == pytest.approx(1.175, abs=0.005)
    np.testing.assert_allclose((1 + LIFT) * ws_ad / ws.spend_ws, TARGETS, rtol=3e-3)
    np.testing.assert_allclose(ws_ad / ws.spend_ws, TARGETS / (1 + LIFT), rtol=3e-3)
    np.testing.assert_allclose(pay_ad / pay.spend, TARGETS, rtol=1e-12)


def test_whole_site_misses_its_target_under_estimation_noise():
    """Ranked on noisy estimates, whole-site falls short of its target like the ROI plans:
    its true total ROI is the noisy bidder's realised ROI at the effective target, x (1 +
    lift)."""
    noisy = ON.replace(estimation_noise_enabled=True)
    ws = _bids(noisy, WHOLE, TARGETS)
    _, ws_ad = _ad_gmv(ws)
    share, realised = noisy_selection(TARGETS / (1 + LIFT), M, SIGMA, noisy.estimation_noise_sd)
    np.testing.assert_allclose(ws.spend_ws, V * share, rtol=1e-12)
    np.testing.assert_allclose(ws_ad / ws.spend_ws, realised, rtol=3e-3)
    met = (1 + LIFT) * ws_ad / ws.spend_ws / TARGETS  # short, the more the higher the target
    assert np.all(met < 0.995) and np.all(np.diff(met) < 0)


def test_buying_order_standard_then_whole_site_then_volume():
    """The standard plans buy first (as without whole-site); whole-site buys the band below
    them down to its own depth (GMV by ``gmv_share`` differences), at most its budget; the
    volume plan buys the rest of the pool."""
    target = np.array([3.0, 4.0])
    alone = _bids(ON, PAYMENT, target)
    both = _bids(ON, (0.5, 0.0, 0.0, 0.5), target)
    np.testing.assert_array_equal(both.spend_pay, alone.spend_pay)
    q, q_ws = (qualifying_share(t, M, SIGMA) for t in (target, target / (1 + LIFT)))
    np.testing.assert_allclose(both.spend_ws, V * (q_ws - q), rtol=1e-12)
    np.testing.assert_allclose(both.ws_top, 0.0, atol=1e-9)  # payment took the top
    np.testing.assert_allclose(both.ws_deep_gmv, V * M * (gmv_share(q_ws, SIGMA)
                                                          - gmv_share(q, SIGMA)), rtol=3e-3)
    # a small whole-site budget binds: it buys what the payment plan left at the top first
    small = _bids(ON, (0.5, 0.0, 0.0, 0.5), target, budget=2000.0)
    np.testing.assert_allclose(small.spend_ws, 1000.0)
    top_left = np.maximum(V * q - small.spend_pay, 0.0)
    np.testing.assert_allclose(small.ws_top, np.minimum(1000.0, top_left), rtol=1e-12)
    # whole-site then volume: together they buy the whole pool, all its GMV
    rest = _bids(ON, (0.0, 0.0, 0.5, 0.5), target)
    total = rest.avg_roi * (rest.ws_top + rest.vol_top) + rest.ws_deep_gmv + rest.deep_gmv
    np.testing.assert_allclose(rest.spend, V, rtol=1e-9)
    np.testing.assert_allclose(total, V * M, rtol=3e-3)
    # an empty balance scales every plan's spend
    short = _bids(ON, (0.4, 0.0, 0.2, 0.4), target, balance=3000.0)
    assert np.all(short.interrupted)
    parts = short.spend_pay + short.spend_set + short.spend_ws + short.spend_vol
    np.testing.assert_allclose(parts, 3000.0, rtol=1e-9)


def test_organic_lift_and_cannibalisation():
    """A day of whole-site alone (exclusive) with the carry-over off: organic GMV is the lift,
    ``lift`` x its ad GMV, and the incremental GMV its ad GMV net of
    ``whole_site_cannibalisation``, plus the lift."""
    cfg = ON.replace(action_space="full", whole_site_exclusive=True, carryover_rate=0.0,
                     whole_site_cannibalisation=0.1)
    sim = Simulator(cfg, n=2, engine="numpy")
    sim.reset(seeds=[10000, 10001])
    action = encode_action(cfg, np.ones(2), np.ones(2), shares=np.array([WHOLE, WHOLE]))
    decision = to_decision(cfg, sim.state, action, engine="numpy")
    _, out = sim.model.step(sim.state, sim.params, decision, np.zeros((2, sim.model.n_draws)))
    assert np.all(out.gmv > 0)
    np.testing.assert_allclose(out.organic_gmv, LIFT * out.gmv, rtol=1e-12)
    np.testing.assert_allclose(out.incremental_gmv, (0.9 + LIFT) * out.gmv, rtol=1e-12)


def test_exclusivity_moves_every_share_to_whole_site():
    """``whole_site_exclusive``: a day with a whole-site share runs whole-site alone; a day
    without one is left as it is."""
    shares = np.array([[0.4, 0.0, 0.5, 0.1], [0.4, 0.1, 0.5, 0.0]])
    np.testing.assert_array_equal(exclusive_shares(shares), [[0, 0, 0, 1], shares[1]])
    cfg = ON.replace(action_space="full", whole_site_exclusive=True)
    sim = Simulator(cfg, n=2, engine="numpy")
    sim.reset(seeds=[10000, 10001])
    action = encode_action(cfg, np.ones(2), np.ones(2), shares=shares)
    obs, _, _, info = sim.step(action)
    np.testing.assert_array_equal(sim.state.shares, [[0, 0, 0, 1], info["shares"][1]])
    assert decode_features(obs)["share_whole_site"].tolist() == [1.0, 0.0]
    not_exclusive = Simulator(cfg.replace(whole_site_exclusive=False), n=2, engine="numpy")
    not_exclusive.reset(seeds=[10000, 10001])
    not_exclusive.step(action)
    assert 0 < not_exclusive.state.shares[0, WHOLE_SITE] < 1


def test_action_and_observation_gain_whole_site_only_when_enabled():
    full = load_scenario("3c", action_space="full", whole_site_enabled=False)
    assert "weight_whole_site" not in action_names(full)
    assert action_names(full.replace(whole_site_enabled=True))[-2:] == (
        "weight_whole_site", "creative_refresh")
    assert feature_names(full) == FEATURE_NAMES
    assert feature_names(ON) == (*FEATURE_NAMES, "share_whole_site")
    # the first version's observation decodes with no whole-site budget
    assert decode_features(np.zeros(len(FEATURE_NAMES)))["share_whole_site"] == 0.0
    with pytest.raises(ValueError, match="whole_site_enabled"):
        encode_action(full, np.ones(1), np.ones(1), shares=np.array([[0.5, 0, 0, 0.5]]))


@pytest.mark.parametrize("wanted", [(0.3, 0.2, 0.2, 0.3), (0.0, 0.0, 0.0, 1.0),
                                    (0.7, 0.0, 0.3, 0.0), (0.14, 0.56, 0.0, 0.3)])
def test_encoded_shares_round_trip(wanted):
    """A share of 0 on whole-site is exactly -1 (weight 0); reachable mixes come back."""
    cfg = ON.replace(action_space="full")
    sim = Simulator(cfg, n=1, engine="numpy")
    sim.reset(seeds=[10000])
    action = encode_action(cfg, np.ones(1), np.ones(1), shares=np.array([wanted]))
    got = to_decision(cfg, sim.state, action, engine="numpy").shares[0]
    if wanted[WHOLE_SITE] == 0:
        assert action[0, action_names(cfg).index("weight_whole_site")] == -1.0
        assert got[WHOLE_SITE] == 0.0
    reachable = min(w for w in wanted if w > 0) >= max(wanted) / cfg.share_range ** 2
    if reachable and min(wanted) > 0:
        np.testing.assert_allclose(got, wanted, rtol=1e-5)


def test_off_switch_and_a_zero_share_leave_the_first_version_unchanged():
    """With the switch on but no whole-site budget, every outcome equals the switch off,
    bit for bit (the observation gains only its last column)."""
    base = load_scenario("3c", action_space="full", randomize=0.3, whole_site_enabled=False)
    seeds = [10000, 10001, 10002]
    off, on = Simulator(base, n=3, engine="numpy"), Simulator(
        base.replace(whole_site_enabled=True), n=3, engine="numpy")
    obs_off, obs_on = off.reset(seeds=seeds), on.reset(seeds=seeds)
    rng = np.random.default_rng(3)
    for _ in range(25):
        a = rng.uniform(-1.2, 1.2, (3, off.action_dim))
        a_on = np.insert(a, action_names(on.cfg).index("weight_whole_site"), -1.0, axis=1)
        obs_off, r_off, _, i_off = off.step(a)
        obs_on, r_on, _, i_on = on.step(a_on)
        np.testing.assert_array_equal(obs_on[:, :-1], obs_off)
        np.testing.assert_array_equal(r_on, r_off)
        for key in INFO_KEYS:
            np.testing.assert_array_equal(i_on[key], i_off[key])
    assert np.all(obs_on[:, -1] == 0.0)


def test_launch_shares_and_static_settings_take_three_or_four():
    assert load_scenario("3c").launch_shares == (0.4, 0.0, 0.6)
    assert load_scenario("3c", whole_site_enabled=True,
                         launch_shares=(0.2, 0.0, 0.3, 0.5)).launch_shares[3] == 0.5
    with pytest.raises(ConfigError, match="whole_site_enabled"):
        load_scenario("3c", whole_site_enabled=False, launch_shares=(0.2, 0.0, 0.3, 0.5))
    with pytest.raises(ConfigError, match="launch_shares"):
        load_scenario("3c", launch_shares=(0.5, 0.5))
    assert StaticSettings(1.5, (1.0, 0.0, 0.0), 1.0, 28).shares == (1.0, 0.0, 0.0)
    assert StaticSettings(1.5, (0.5, 0.0, 0.0, 0.5), 1.0, 28).shares[3] == 0.5
    np.testing.assert_array_equal(plan_share_row((0.4, 0.0, 0.6)), [0.4, 0.0, 0.6, 0.0])
    assert len(PLANS) == 4


def _obs(**values):
    names = FEATURE_NAMES + ("share_whole_site",)
    base = {name: np.zeros(1) for name in names}
    base.update(plan_age_days=np.array([30.0]), target_roi=np.array([3.0]),
                share_payment_roi=np.array([0.4]), share_volume=np.array([0.6]))
    base.update({k: np.array([v], float) for k, v in values.items()})
    return base


def test_playbook_uses_whole_site_when_the_plan_exists():
    """The mature phase's 30% to whole-site (the 3C case) and the promotion's pacing through
    whole-site; without the plan, the first version's shares."""
    mature = _obs()
    np.testing.assert_allclose(PhaseRule()(mature, DaySettings.hold(mature)).shares[0],
                               [0.2, 0.8, 0.0, 0.0])
    np.testing.assert_allclose(PhaseRule(whole_site=True)(mature, DaySettings.hold(mature))
                               .shares[0], [0.14, 0.56, 0.0, 0.3])
    window = _obs(days_to_promo=3.0, days_after_promo=30.0, plan_age_days=15.0)
    held = DaySettings.hold(window)
    np.testing.assert_allclose(PromotionRule()(window, held).shares[0], [0.4, 0, 0.6, 0])
    np.testing.assert_allclose(PromotionRule(whole_site=True)(window, held).shares[0],
                               [0.4, 0, 0.0, 0.6])


def test_recommend_serves_a_whole_site_scenario(tmp_path):
    """A rule-based policy on a whole-site scenario reads a report, sees ``share_whole_site``
    (0 when the report has no such column) and answers with the whole-site share."""
    from pathlib import Path

    from agents.serving.loading import rule_policy
    from agents.serving.output import write_batch_csv
    from agents.serving.recommend import RecommendOptions, recommend_files

    report = Path(__file__).resolve().parent.parent / "examples" / "report_en.csv"
    policy = rule_policy("playbook", load_scenario("3c", whole_site_enabled=True))
    recs, _ = recommend_files(policy, [report], RecommendOptions(compare=None))
    answer = recs[0].to_dict()["policy"]["recommended"]
    assert set(answer) >= {f"share_{p}" for p in PLANS}
    assert sum(answer[f"share_{p}"] for p in PLANS) == pytest.approx(1.0)
    header = write_batch_csv(recs, tmp_path / "out.csv").read_text("utf-8-sig").splitlines()[0]
    assert "share_whole_site" in header
    first, _ = recommend_files(rule_policy("playbook", load_scenario(
        "3c", whole_site_enabled=False)), [report], RecommendOptions(compare=None))
    assert "share_whole_site" not in first[0].to_dict()["policy"]["recommended"]


def test_oracle_and_static_search_can_put_budget_on_whole_site():
    import optuna

    from agents.experiments.baseline_search import _trial_settings
    from agents.policies.oracle import share_options

    anchor = StaticSettings(1.5, (0.8, 0.2, 0.0), 1.0, 28)
    np.testing.assert_allclose(share_options(ON, anchor), [[0.8, 0.2, 0, 0], [0, 0.2, 0, 0.8]])
    off = load_scenario("3c", whole_site_enabled=False)
    assert share_options(off, anchor).shape == (1, 4)
    trial = optuna.trial.FixedTrial({"target_over_breakeven": 1.5, "settlement_weight": 0.5,
                                     "volume_weight": 0.2, "budget_over_launch": 1.0,
                                     "refresh_days": 28, "whole_site_weight": 0.5})
    assert _trial_settings(trial, ON).shares == pytest.approx((0.2, 0.2, 0.1, 0.5))
    assert len(_trial_settings(trial, off).shares) == 3


def test_report_of_a_whole_site_account_gives_the_env_observation(tmp_path):
    """A simulated whole-site account's report (with ``share_whole_site``) read back by
    ``recommend`` gives exactly the env's 44 features."""
    from agents.serving.inputs import (
        AccountDefaults,
        history_inputs,
        observations,
        parse_promotions,
    )
    from agents.serving.report import read_report, write_report
    from agents.serving.simulated import simulate_account

    class Mix:  # a full action with every plan weighted, whole-site included
        def predict(self, obs, deterministic=True):
            return np.array([[0.0, 0.0, 0.2, -0.5, -0.2, 0.6, -1.0]]), None

    cfg = ON.replace(action_space="full")
    account = simulate_account(cfg, seed=10009, days=20, policy=Mix())
    columns = account.columns()
    assert columns["share_whole_site"][-1] > 0
    path = write_report(tmp_path / "ws.csv", account.dates, columns)
    rows, ctx, _ = history_inputs(read_report(path), AccountDefaults(99.0, (1.0, 0.0, 0.0)),
                                  parse_promotions(account.promo_dates,
                                                   cfg.promo_peak_length_days))
    got = observations([rows], [ctx], whole_site=True)[0]
    assert got.shape == (len(FEATURE_NAMES) + 1,)
    np.testing.assert_allclose(got, account.observation, rtol=1e-6, atol=1e-6)
