"""Calibration (scripts/calibrate.py, agents/calibration): the replay is the simulator's own
day, the order value's intervals are exact, the CLI writes every file or none, and bad
reports are refused naming what is missing. The recovery and coverage figures are
measured by scripts/calibration_benchmark.py, not here."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import yaml
from conftest import load_script

from agents.calibration.account import MIN_FIT_DAYS, account_history
from agents.calibration.fit import fit_account
from agents.calibration.orders import order_value
from agents.calibration.outputs import write_calibration
from agents.calibration.prior import index_of, market_parameters
from agents.calibration.records import run_records
from agents.calibration.refunds import KERNEL_DAYS, pending_cohorts, refund_estimates
from agents.calibration.replay import Replay
from agents.calibration.synthetic import draw_config, synthetic_account
from agents.serving.inputs import parse_promotions
from agents.serving.report import read_report, write_report
from envs.config import load_scenario
from envs.inputs import day_constants
from envs.seeds import CALIBRATION_SEED
from envs.stages import Orders, draw_refunds

calibrate = load_script("calibrate_cli", "calibrate.py")

DAYS = 42  # a short report: 28 days fitted + 14 held out in the validation


@pytest.fixture(scope="module")
def base():
    return load_scenario("3c")


@pytest.fixture(scope="module")
def account(base, tmp_path_factory):
    acc = synthetic_account(base, 3, DAYS)
    path = acc.write(tmp_path_factory.mktemp("calibration") / "shop.csv")
    return acc, path


def history_of(acc, path, base):
    return account_history(read_report(path), base,
                           parse_promotions(acc.promo_dates, base.promo_peak_length_days))


def true_z(acc, parameters):
    return np.array([p.z_of(acc.truth[p.name]) if not p.name.startswith("weekday_")
                     else acc.truth[p.name] for p in parameters])


def test_replay_is_the_simulators_day(base, tmp_path):
    """Without the day's noise, the report's spend is exactly what the replay of its settings
    and states gives at the true parameters, on every day (budget-bound or not)."""
    quiet = {"shocks_enabled": False, "market_drift_enabled": False,
             "bidder_noise_enabled": False}
    acc = synthetic_account(base, 5, 60, overrides=quiet)
    path = acc.write(tmp_path / "quiet.csv")
    h = history_of(acc, path, base)
    replay = Replay.of(h, acc.config)
    z = true_z(acc, market_parameters(acc.config))
    z[[index_of(market_parameters(acc.config))[f"weekday_{d}"]
       for d in ("mon", "tue", "wed", "thu", "fri", "sat")]] = 0.0  # in the truth's config
    days = replay.predict(z[None, :])
    assert h.learning.any() and h.capped.any() and not h.capped.all()
    np.testing.assert_allclose(days.spend[0], h.spend, rtol=1e-9)
    # orders are Poisson around the expected GMV / AOV: their total within 4 sd of it
    expected = days.gmv[0].sum() / acc.truth["aov_cny"]
    assert abs(h.orders.sum() - expected) < 4 * np.sqrt(expected)


def test_the_likelihoods_replay_leaves_out_only_rows_it_never_reads(base, tmp_path):
    """The likelihood's replay runs a day as run only where its budget bound: those days'
    as-run rows and every demand row are the full replay's to the last bit, the other days'
    as-run rows are NaN, and the likelihood's value is the full replay's."""
    from agents.calibration.likelihood import Posterior

    acc = synthetic_account(base, 7, 56)
    h = history_of(acc, acc.write(tmp_path / "r.csv"), base)
    assert h.capped.any() and not h.capped.all()
    z = true_z(acc, market_parameters(base))[None, :] + np.array([[0.0], [0.1]])
    full = Replay.of(h, base).predict(z)
    pruned = Replay.of(h, base, run_days=h.capped).predict(z)
    assert np.array_equal(pruned.demand, full.demand)
    assert np.array_equal(pruned.demand_gmv, full.demand_gmv)
    assert np.array_equal(pruned.spend[:, h.capped], full.spend[:, h.capped])
    assert np.array_equal(pruned.gmv[:, h.capped], full.gmv[:, h.capped])
    assert np.isnan(pruned.spend[:, ~h.capped]).all()
    orders = order_value(h)
    aov, basket = orders["aov_cny"].value, orders["basket_noise_sd"].value
    whole = Posterior(Replay.of(h, base), aov, basket)
    assert np.array_equal(Posterior.of(h, base, aov, basket).values(z), whole.values(z))


def test_a_latent_path_moves_each_replayed_day_as_the_market_moves_the_pool(base, tmp_path):
    """A replay along a path of latent log deviations (:meth:`Replay.predict`'s per-day
    ``cost_shift`` and ``roi_shift``) is the simulator's day on a pool moved by as much: a
    quiet account on a pool e^-0.2 the size and e^0.1 the mean ROI of its drawn one is
    replayed exactly by the drawn parameters along those shifts; and along a path that
    differs day by day, each day is the replay of its own day's shift alone."""
    quiet = {"shocks_enabled": False, "market_drift_enabled": False,
             "bidder_noise_enabled": False}
    drawn, _ = draw_config(base, np.random.default_rng(CALIBRATION_SEED + 5))
    moved = {**quiet, "pool_cost_cny": drawn.pool_cost_cny * np.exp(-0.2),
             "pool_mean_roi": drawn.pool_mean_roi * np.exp(0.1)}
    acc = synthetic_account(base, 5, 60, overrides=moved)
    h = history_of(acc, acc.write(tmp_path / "moved.csv"), base)
    replay = Replay.of(h, acc.config)
    z = true_z(acc, market_parameters(acc.config))
    z[[index_of(market_parameters(acc.config))[f"weekday_{d}"]
       for d in ("mon", "tue", "wed", "thu", "fri", "sat")]] = 0.0  # in the truth's config
    ones = np.ones((1, h.days))
    days = replay.predict(z[None, :], roi_shift=0.1 * ones, cost_shift=-0.2 * ones)
    assert h.capped.any() and not h.capped.all()
    np.testing.assert_allclose(days.spend[0], h.spend, rtol=1e-9)
    path = np.random.default_rng(0).normal(0.0, 0.2, (2, h.days))
    along = replay.predict(z[None, :], roi_shift=path[:1], cost_shift=path[1:])
    for t in range(h.days):
        alone = replay.predict(z[None, :], roi_shift=np.full((1, h.days), path[0, t]),
                               cost_shift=np.full((1, h.days), path[1, t]))
        for name in ("spend", "demand", "refund_rate"):
            assert getattr(along, name)[0, t] == getattr(alone, name)[0, t], (name, t)


def test_the_latent_path_ends_where_the_latent_state_does(account, base):
    """:meth:`Posterior.latent_path` and :meth:`Posterior.latent_end` condition the same joint
    normal: the path's last day's pool-size deviation has the mean and variance of the end
    state's traffic shock plus slow cost deviation, and conditioning narrows every day."""
    from agents.calibration.likelihood import DayBlock

    acc, path = account
    post = _posterior(acc, path, base)
    z = true_z(acc, post.parameters)
    mean, cov = post.latent_path(z)
    end_mean, end_cov = post.latent_end(z)
    last = post.replay.history.days - 1
    assert mean[last] == pytest.approx(end_mean[0] + end_mean[1], rel=1e-9, abs=1e-12)
    assert cov[last, last] == pytest.approx(end_cov[:2, :2].sum(), rel=1e-9, abs=1e-12)
    days = np.arange(post.lag.shape[0])
    size, roi = DayBlock.of(post, days).covariances(post.noise(z))
    prior = np.concatenate([np.diag(size), np.diag(roi)])
    assert np.all(np.diag(cov) <= prior + 1e-12) and np.all(np.diag(cov) > 0)
    assert np.diag(cov).sum() < 0.9 * prior.sum()


def _posterior(acc, path, base):
    from agents.calibration.likelihood import Posterior

    h = history_of(acc, path, base)
    orders = order_value(h)
    return Posterior.of(h, base, orders["aov_cny"].value, orders["basket_noise_sd"].value)


@pytest.mark.parametrize("index, days", [(3, DAYS), (0, 56)])
def test_likelihood_gradient_matches_finite_differences(base, tmp_path, index, days):
    """The closed-form gradient the optimiser uses (noise levels through the covariance, the
    replay's per-day responses chained; weekday and learning effects through the days they
    act on) agrees with central differences of the likelihood itself, on a report with
    budget-bound days and one with low-order days (a negative binomial per day)."""
    acc = synthetic_account(base, index, days)
    post = _posterior(acc, acc.write(tmp_path / "g.csv"), base)
    assert post.obs.count_days.size > 0 or post.obs.capped_days.size > 0
    rng = np.random.default_rng(index)
    checked = 0
    for _ in range(3):
        z = post.mean + 0.3 * post.sd * rng.standard_normal(post.mean.size)
        load = post.loadings(z)
        value, grad = post.value_and_gradient(z, load)
        assert value == pytest.approx(post.values(z[None], load)[0], rel=1e-12)
        step = 1e-5
        moved = np.repeat(z[None], 2 * z.size, axis=0)
        moved[np.arange(z.size), np.arange(z.size)] += step
        moved[z.size + np.arange(z.size), np.arange(z.size)] -= step
        values = post.values(moved, load)
        numeric = (values[:z.size] - values[z.size:]) / (2 * step)
        # a kink of the replay (a budget, the pool's end) within a step may move one slope
        close = np.abs(grad - numeric) <= 1e-3 * (np.abs(numeric) + 1.0)
        assert close.mean() >= 0.9, (grad, numeric)
        assert close[post.noise_index].all()  # the noise levels' part is exact
        checked += int(close.sum())
    assert checked >= 0.9 * 3 * post.mean.size


def test_bound_days_count_once_per_independent_stretch(base, tmp_path):
    """Days at the budget are correlated through the pool's slow drift: together they count
    for fewer independent days than there are (weight n_eff / n below 1), and fewer still
    when more of the pool's day-to-day movement is slow drift."""
    acc = synthetic_account(base, 7, 56)
    post = _posterior(acc, acc.write(tmp_path / "b.csv"), base)
    n = post.obs.capped_days.size
    assert n >= 2
    load = post.loadings(post.mean)
    assert 1.0 / n <= load.capped_weight < 1.0
    slower = post.mean.copy()
    slower[post.ix["drift_cost_sd"]] += 1.0  # a larger share of slow drift: more correlated
    assert post.loadings(slower).capped_weight < load.capped_weight


def test_order_value_intervals_are_exact():
    """The AOV's and basket noise's 90% intervals cover the truth 90% of the time (400
    simulated reports of 30 days: within 3 binomial sds)."""
    rng = np.random.default_rng(0)
    covered = {"aov_cny": 0, "basket_noise_sd": 0}
    trials = 400
    for _ in range(trials):
        aov, sd = rng.uniform(50, 900), rng.uniform(0.02, 0.3)
        orders = rng.integers(1, 60, size=30).astype(float)
        gmv = orders * aov * np.exp(sd * rng.standard_normal(30) - sd * sd / 2)
        h = type("H", (), {"orders": orders, "gmv": gmv})()
        est = order_value(h)
        covered["aov_cny"] += est["aov_cny"].low <= aov <= est["aov_cny"].high
        covered["basket_noise_sd"] += est["basket_noise_sd"].low <= sd <= est[
            "basket_noise_sd"].high
    band = 3 * np.sqrt(0.9 * 0.1 / trials)
    for name, count in covered.items():
        assert abs(count / trials - 0.9) < band, (name, count / trials)


def refunds_report(rng: np.random.Generator, days: int, orders_per_day: float):
    """A report's orders and refunds as the market makes them: a refund rate in 0.05-0.45,
    a kernel, Poisson orders; each cohort's share drawn by :func:`envs.stages.draw_refunds`
    and landed by the kernel. Returns rate, kernel, orders, GMV, cohort refunds and the
    refunds landed per day."""
    constants = day_constants(load_scenario("3c", shocks_enabled=False))
    rate, aov = rng.uniform(0.05, 0.45), rng.uniform(100, 800)
    kernel = rng.dirichlet(np.full(KERNEL_DAYS, 2.0))
    orders = rng.poisson(orders_per_day, size=days).astype(float)
    gmv = orders * aov
    flat, none = np.full(days, 0.5), np.zeros(days)
    cohorts = draw_refunds(constants, np.full(days, rate), np.ones(days), flat, flat,
                           Orders(orders, gmv, none, none, none, none, gmv),
                           rng.standard_normal(days)).cohort_refunds
    landed = np.zeros(days)
    for k in range(1, KERNEL_DAYS + 1):
        landed[k:] += kernel[k - 1] * cohorts[:-k]
    return rate, kernel, orders, gmv, cohorts, landed


@pytest.mark.parametrize("orders_per_day", [2.0, 40.0])
def test_refund_rate_intervals_are_calibrated(base, orders_per_day):
    """The refund rate's 90% interval covers the truth 90% of the time (300 reports of 56
    days, within 3 binomial sds), and its error is centred, for cohorts of few orders (each
    cohort's share drawn by the market's own :func:`envs.stages.draw_refunds`, clipped at
    0, so its mean lies above the rate) and of many; refunds land by the market's kernel."""
    rng = np.random.default_rng(1)
    days, trials, covered, errors = 56, 300, 0, []
    for _ in range(trials):
        rate, kernel, orders, gmv, _, landed = refunds_report(rng, days, orders_per_day)
        h = type("H", (), {"orders": orders, "gmv": gmv, "refunds": landed, "days": days})()
        est = refund_estimates(h, base, np.full((1, days), base.refund_rate))[0]["refund_rate"]
        covered += est.low <= rate <= est.high
        errors.append((est.value - rate) / (est.high - est.low))
    assert abs(covered / trials - 0.9) < 3 * np.sqrt(0.9 * 0.1 / trials), covered / trials
    assert abs(np.mean(errors)) < 0.05, np.mean(errors)  # bias under 5% of the interval


def test_the_peaks_refund_multiplier_is_measured_with_calibrated_intervals(base):
    """Where a report has a promotion peak, its cohorts' refunds measure the peaks' refund
    multiplier (the market's ``promo_refund_mult``): over 300 reports of 56 days with a
    3-day peak (traffic x3.5) and a multiplier drawn from the fit's prior, the 90% interval
    covers the truth 90% of the time (within 3 binomial sds); at 200 orders a day the data
    identify it on most reports, and its error is centred. Without a peak it is the base's,
    marked as the prior's."""
    from agents.calibration.refunds import PROMO_MULT_PRIOR_LOG_SD, PROMO_MULT_RANGE

    rng = np.random.default_rng(2)
    days, trials, covered, identified, errors = 56, 300, 0, 0, []
    cfg = load_scenario("3c", shocks_enabled=False)
    constants = day_constants(cfg)
    peak = np.zeros(days, dtype=bool)
    peak[40:43] = True
    shape = np.atleast_2d(np.where(peak, base.refund_rate * base.promo_refund_mult,
                                   base.refund_rate))
    for _ in range(trials):
        mult = float(np.clip(base.promo_refund_mult * np.exp(
            PROMO_MULT_PRIOR_LOG_SD * rng.standard_normal()), *PROMO_MULT_RANGE))
        rate, aov = rng.uniform(0.05, 0.3), rng.uniform(100, 800)
        kernel = rng.dirichlet(np.full(KERNEL_DAYS, 2.0))
        orders = rng.poisson(np.where(peak, 3.5, 1.0) * 200.0).astype(float)
        gmv = orders * aov
        flat, none = np.full(days, 0.5), np.zeros(days)
        cohorts = draw_refunds(constants, np.full(days, rate), np.where(peak, mult, 1.0),
                               flat, flat, Orders(orders, gmv, none, none, none, none, gmv),
                               rng.standard_normal(days)).cohort_refunds
        landed = np.zeros(days)
        for k in range(1, KERNEL_DAYS + 1):
            landed[k:] += kernel[k - 1] * cohorts[:-k]
        h = type("H", (), {"orders": orders, "gmv": gmv, "refunds": landed, "days": days})()
        est = refund_estimates(h, base, shape, peak=peak)[0]["promo_refund_mult"]
        covered += est.low <= mult <= est.high
        identified += est.identified
        errors.append((np.log(est.value) - np.log(mult)) / np.log(est.high / est.low))
    assert abs(covered / trials - 0.9) < 3 * np.sqrt(0.9 * 0.1 / trials), covered / trials
    assert identified > 0.8 * trials, identified
    assert abs(np.mean(errors)) < 0.05, np.mean(errors)
    without = refund_estimates(h, base, shape)[0]["promo_refund_mult"]
    assert without.value == base.promo_refund_mult and not without.identified
    # a peak of one order says next to nothing: the prior's interval, near enough
    few = type("H", (), {"orders": np.where(peak, 1.0, 200.0), "gmv": h.gmv, "days": days,
                         "refunds": h.refunds})()
    few.gmv = few.orders * aov
    est = refund_estimates(few, base, shape, peak=peak)[0]["promo_refund_mult"]
    prior = np.log(without.high / without.low)
    assert not est.identified and np.log(est.high / est.low) > 0.8 * prior, (est, without)


def test_normal_draws_do_not_depend_on_the_eigenvectors_lapack_returns():
    """Two covariances equal up to rounding, one built from another basis of a repeated
    eigenvalue's space (as another CPU's LAPACK may return it), give the same draws;
    NumPy's ``method="eigh"`` does not (its factor's columns follow the basis)."""
    from agents.calibration.likelihood import normal_draws

    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    values = np.array([0.0, 1e-3, 2.0, 2.0, 2.0])  # singular, a triple eigenvalue
    turn, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    other = basis.copy()
    other[:, 2:] = basis[:, 2:] @ turn
    covs = [(v * values) @ v.T for v in (basis, other)]
    assert np.allclose(covs[0], covs[1], atol=1e-12)
    mean = np.arange(5.0)
    ours = [normal_draws(np.random.default_rng(0), mean, c, 4000) for c in covs]
    assert np.allclose(ours[0], ours[1], atol=1e-9)
    assert np.allclose(np.cov(ours[0], rowvar=False), covs[0], atol=0.15)
    assert np.allclose(ours[0].mean(axis=0), mean, atol=0.1)


def test_calibrate_writes_fit_scenario_and_validation(account, tmp_path):
    acc, path = account
    out = tmp_path / "fit"
    assert calibrate.main(["--history", str(path), "--out", str(out),
                           "--promo-dates", acc.promo_dates or "2025-01-01"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    for name, p in fit["parameters"].items():
        assert set(p) >= {"value", "ci_low", "ci_high", "unit", "identified"}, name
        assert p["ci_low"] <= p["value"] <= p["ci_high"], name
    assert fit["parameters"]["aov_cny"]["identified"]
    aov = fit["parameters"]["aov_cny"]
    assert aov["ci_low"] <= acc.truth["aov_cny"] * 1.05 and aov["ci_high"] >= acc.truth[
        "aov_cny"] * 0.95
    # the preset loads where a scenario is accepted and carries the fitted values
    cfg = load_scenario(out / "scenario.yaml")
    assert cfg.pool_mean_roi == pytest.approx(fit["parameters"]["pool_mean_roi"]["value"])
    assert cfg.refund_rate == pytest.approx(fit["parameters"]["refund_rate"]["value"])
    assert cfg.promo_refund_mult == pytest.approx(
        fit["parameters"]["promo_refund_mult"]["value"])
    assert yaml.safe_load((out / "scenario.yaml").read_text())["base"] == "3c"
    val = json.loads((out / "validation.json").read_text())
    assert val["holdout_days"] == 14 and val["fitted_days"] == DAYS - 14
    for m in ("spend", "gmv", "orders", "refunds"):
        assert 0.0 <= val["metrics"][m]["coverage_80"] <= 1.0
        assert len(val["metrics"][m]["p50"]) == 14
    assert (out / "validation.png").stat().st_size > 10_000
    # a second run replaces the first whole
    assert calibrate.main(["--history", str(path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["fit.json", "scenario.yaml", "validation.json", "validation.png"])


def test_too_short_a_report_is_refused_and_nothing_written(account, tmp_path, capsys):
    acc, path = account
    short = tmp_path / "short.csv"
    rows = path.read_text().splitlines()
    short.write_text("\n".join(rows[:MIN_FIT_DAYS]) + "\n")  # header + MIN_FIT_DAYS - 1 days
    out = tmp_path / "out"
    assert calibrate.main(["--history", str(short), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"at least {MIN_FIT_DAYS}" in err and "Traceback" not in err
    assert not out.exists()


def test_a_report_without_orders_is_refused(account, tmp_path, capsys):
    acc, path = account
    report = read_report(path)
    columns = {k: list(v) for k, v in report.values.items()}
    columns["orders"] = [0.0] * len(report.dates)
    bad = tmp_path / "no_orders.csv"
    write_report(bad, report.dates, columns)
    assert calibrate.main(["--history", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "orders" in capsys.readouterr().err


def test_refunds_no_week_of_sales_could_return_are_not_read_as_a_rate(base):
    """Refunds far above what the week's GMV before them could return (orders from before
    the report) leave the rate and kernel to the prior, saying why, rather than a rate above
    the market's largest; and a report with fewer than two weeks of days after its first
    week keeps the prior too (its least squares would pass through every day)."""
    days = 28
    orders = np.r_[np.zeros(7), np.ones(days - 7)] * 20.0
    orders[[1, 5, 6]] = 1.0
    gmv = orders * 20.0  # 400 CNY a day from day 7
    refunds = np.full(days, 1500.0)  # a steady 1,500 CNY a day: older cohorts'
    h = type("H", (), {"orders": orders, "gmv": gmv, "refunds": refunds, "days": days})()
    est, notes = refund_estimates(h, base, np.full((1, days), base.refund_rate))
    assert est["refund_rate"].value <= 0.9 and est["refund_rate"].high <= 0.9
    assert not est["refund_rate"].identified
    assert any("more than" in note for note in notes)
    short = type("H", (), {"orders": orders[:20], "gmv": gmv[:20],
                           "refunds": 0.1 * gmv[:20], "days": 20})()
    est, notes = refund_estimates(short, base, np.full((1, 20), base.refund_rate))
    assert not est["refund_rate"].identified and any("fewer than" in n for n in notes)


def test_missing_refunds_are_left_to_the_prior(account, base, tmp_path):
    acc, path = account
    report = read_report(path)
    columns = {k: list(v) for k, v in report.values.items() if k not in (
        "refunds", "settled_gmv")}
    bare = tmp_path / "no_refunds.csv"
    write_report(bare, report.dates, columns)
    fit = fit_account(account_history(read_report(bare), base), base)
    assert not fit.estimates["refund_rate"].identified
    assert fit.estimates["refund_rate"].value == pytest.approx(base.refund_rate)
    assert any("refunds" in note for note in fit.notes)


def test_a_target_that_never_moved_leaves_the_curve_to_the_prior(base, tmp_path):
    """Held settings cannot tell the pool's spread: the fit says the prior decided it."""
    acc = synthetic_account(base, 7, DAYS, operator="constant")
    path = acc.write(tmp_path / "held.csv")
    h = history_of(acc, path, base)
    assert np.ptp(h.target) == 0
    fit = fit_account(h, base)
    assert not fit.estimates["pool_sigma"].identified
    assert any("never moved" in note for note in fit.notes)


def test_out_folder_of_other_files_is_refused(account, tmp_path, capsys):
    acc, path = account
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert calibrate.main(["--history", str(path), "--out", str(out)]) == 2
    assert "other files" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failed_write_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "fit"
    write_calibration(out, {"fit.json": lambda p: p.write_text("{}")})

    def broken(p):
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_calibration(out, {"fit.json": lambda p: p.write_text('{"new": 1}'),
                                "validation.png": broken})
    assert [p.name for p in out.iterdir()] == ["fit.json"]
    assert (out / "fit.json").read_text() == "{}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fit")]


def test_bad_margin_is_refused(account, tmp_path, capsys):
    acc, path = account
    assert calibrate.main(["--history", str(path), "--out", str(tmp_path / "o"),
                           "--margin", "1.5"]) == 2
    assert "--margin" in capsys.readouterr().err


def test_a_budget_bound_every_day_bounds_the_pool_from_below_only(account, base, tmp_path):
    """Spend at the budget on every day says only that the pool is at least that big: the
    pool's size is not reported as identified, and the fit says why."""
    acc, path = account
    report = read_report(path)
    columns = {k: list(v) for k, v in report.values.items()}
    columns["spend"] = list(report.values["budget"])
    capped = tmp_path / "capped.csv"
    write_report(capped, report.dates, columns)
    h = account_history(read_report(capped), base)
    assert h.capped.all()
    fit = fit_account(h, base)
    assert not fit.estimates["pool_cost_cny"].identified
    assert any("from below only" in note for note in fit.notes)


def test_the_fitted_market_scales_what_grows_with_the_account(account, base):
    """Keys a report cannot show that grow with the account (the organic lift's saturation)
    follow the fitted pool as the synthetic accounts' truth follows theirs: at the true
    parameters the fitted market has the true market's, not the base's."""
    from agents.calibration.scenario import fitted_config, size_scaled

    acc, path = account
    fit = fit_account(history_of(acc, path, base), base)
    pool = acc.truth["pool_cost_cny"]
    assert abs(np.log(pool / base.pool_cost_cny)) > 0.2  # an account off the base's size
    assert acc.config.carryover_saturation_cny == pytest.approx(
        size_scaled(base, pool)["carryover_saturation_cny"])
    at_truth = fitted_config(fit, true_z(acc, fit.parameters))
    assert at_truth.pool_cost_cny == pytest.approx(pool)
    assert at_truth.carryover_saturation_cny == pytest.approx(
        acc.config.carryover_saturation_cny)
    assert fitted_config(fit).carryover_saturation_cny == pytest.approx(
        base.carryover_saturation_cny * fit.value("pool_cost_cny") / base.pool_cost_cny)


def test_the_fitted_market_tops_up_as_the_report_shows(account, base):
    """The balance column's deposits (its rises plus the day's spend) set the fitted
    market's top-ups: the synthetic account's own amount and interval; a report without
    the column keeps the size-scaled top-up, and one whose balance only falls has none."""
    import dataclasses

    from agents.calibration.scenario import fitted_config, size_scaled

    acc, path = account
    history = history_of(acc, path, base)
    fit = fit_account(history, base)
    assert acc.config.topup_cny != pytest.approx(base.topup_cny, rel=0.2)  # not the base's
    for cfg in (fitted_config(fit), fitted_config(fit, true_z(acc, fit.parameters))):
        assert cfg.topup_cny == pytest.approx(acc.config.topup_cny, rel=0.01)
        assert cfg.topup_interval_days == acc.config.topup_interval_days
    unseen = dataclasses.replace(fit, history=dataclasses.replace(history, balance=None))
    assert fitted_config(unseen).topup_cny == pytest.approx(
        size_scaled(base, fit.value("pool_cost_cny"))["topup_cny"])
    falling = dataclasses.replace(history, balance=1e9 - np.cumsum(history.spend))
    assert fitted_config(dataclasses.replace(fit, history=falling)).topup_cny == 0.0


def test_a_fit_told_a_truth_is_conditioned_on_it(account, base):
    """``fit_given_truth`` (the decision value's ``--known``): the told parameter sits at
    its truth with no uncertainty left, every other parameter moves by its regression on it
    (the normal's conditional mean) and is no less certain than before; the weekday
    effects, and names that are not market parameters, are refused."""
    from agents.calibration.synthetic import fit_given_truth

    acc, path = account
    fit = fit_account(history_of(acc, path, base), base)
    told = fit_given_truth(fit, acc.truth, ["pool_mean_roi"])
    ix = index_of(fit.parameters)
    i, j = ix["pool_mean_roi"], ix["pool_cost_cny"]
    truth_z = fit.parameters[i].z_of(acc.truth["pool_mean_roi"])
    assert told.estimates["pool_mean_roi"].value == pytest.approx(acc.truth["pool_mean_roi"])
    assert told.cov[i, i] < 1e-10
    assert told.z[j] == pytest.approx(fit.z[j] + fit.cov[j, i] / fit.cov[i, i]
                                      * (truth_z - fit.z[i]))
    assert told.estimates["pool_cost_cny"].value == pytest.approx(
        fit.parameters[j].value(told.z[j]))
    assert np.all(np.diag(told.cov) <= np.diag(fit.cov) + 1e-12)
    assert told.estimates["aov_cny"] == fit.estimates["aov_cny"]  # outside the market's space
    for wrong in (["weekday_mon"], ["refund_rate"]):
        with pytest.raises(ValueError, match="not a market parameter"):
            fit_given_truth(fit, acc.truth, wrong)


def test_the_calibration_benchmark_keeps_each_account_and_goes_on(tmp_path, monkeypatch):
    """Each account's record is written as it finishes; a rerun with the same ``--out`` reads
    them instead of fitting again and measures only the accounts it lacks."""
    bench = load_script("calibration_benchmark_cli", "calibration_benchmark.py")
    out = tmp_path / "bench"
    args = ["--days", "28", "--smoke", "--out", str(out)]
    assert bench.main(["--accounts", "1", *args]) == 0
    first = json.loads(bench.record_path(out / "accounts", 0, 28).read_text())
    fitted = []
    real = bench.one_account
    monkeypatch.setattr(bench, "one_account",
                        lambda i, d, *rest: fitted.append(i) or real(i, d, *rest))
    assert bench.main(["--accounts", "2", *args]) == 0
    assert fitted == [1]  # account 0 was read, not fitted again
    results = json.loads((out / "benchmark.json").read_text())
    assert [r["index"] for r in results] == [0, 1] and results[0] == first


def test_the_calibration_benchmark_counts_a_report_calibrate_refuses(tmp_path):
    """A synthetic account whose report calibrate refuses (account 616's 28 days: orders on
    one day, too few to fit the order value) is kept as refused, with calibrate's message,
    and the tables count it apart instead of the run stopping at it."""
    bench = load_script("calibration_benchmark_cli", "calibration_benchmark.py")
    refused = bench.one_account(616, 28, tmp_path)
    assert "parameters" not in refused and "orders" in refused["rejected"]
    assert "order value" in refused["rejected"]
    text = bench.tables([refused], [28])
    assert "Reports `calibrate` refuses" in text and "28 days: 1" in text
    assert "account 616 (" in text and str(tmp_path) not in text


def _record_or_fail(index: int, days: int) -> dict:
    """A job for run_records: job 1 fails at once, the others take a moment."""
    if index == 1:
        raise ValueError("job 1 failed")
    time.sleep(0.5)
    return {"index": index, "days": days}


def test_records_keep_what_finished_and_stop_at_a_failed_job(tmp_path):
    """Over a pool, a failed job raises its error after the jobs running beside it finish
    and are kept; the jobs not yet started are cancelled, not run."""
    todo = [(i, 28) for i in range(24)]
    with pytest.raises(ValueError, match="job 1 failed"):
        for _ in run_records(_record_or_fail, todo, tmp_path, 2):
            pass
    kept = sorted(int(p.stem.split("_")[-1]) for p in tmp_path.glob("account_28d_*.json"))
    assert 0 in kept and 1 not in kept  # job 0 ran beside the failed one and was kept
    assert len(kept) < len(todo) // 2, kept  # the rest were cancelled, not run


def test_the_calibration_benchmark_changes_only_the_truth_as_told(tmp_path, capsys):
    """``--truth-overrides`` sets keys in the synthetic markets only and is kept with each
    record: a bad key exits 2 naming it, and a folder of accounts run with other overrides
    is not mixed in."""
    bench = load_script("calibration_benchmark_cli", "calibration_benchmark.py")
    out = tmp_path / "bench"
    args = ["--days", "28", "--smoke", "--accounts", "1", "--out", str(out)]
    with pytest.raises(SystemExit) as stop:
        bench.main(["--truth-overrides", "{pool_sigmaa: 0.5}", *args])
    assert stop.value.code == 2 and "pool_sigmaa" in capsys.readouterr().err
    quiet = "{market_drift_enabled: false}"
    assert bench.main(["--truth-overrides", quiet, *args]) == 0
    record = json.loads(bench.record_path(out / "accounts", 0, 28).read_text())
    assert record["truth_overrides"] == {"market_drift_enabled": False}
    assert all(x["z"] is None or np.isfinite(x["z"]) for x in record["parameters"].values())
    with pytest.raises(SystemExit) as stop:
        bench.main(args)  # the same folder, the truth as drawn
    assert stop.value.code == 2 and "other --truth-overrides" in capsys.readouterr().err


@pytest.mark.parametrize("orders_per_day", [2.0, 40.0])
def test_refunds_still_to_land_are_drawn_given_those_that_landed(orders_per_day):
    """The refunds still to land after a report's last day (what the kernel has yet to land
    of its last week's cohorts), drawn given the refunds the report saw land: their 80%
    interval holds the truth 80% of the time (300 reports of 28 days, within 3 binomial
    sds; each cohort's share drawn by the market's own :func:`envs.stages.draw_refunds`,
    landed by its kernel), and it is narrower than drawn without them."""
    rng = np.random.default_rng(2)
    days, trials, copies = 28, 300, 400
    inside, widths = {True: 0, False: 0}, {True: [], False: []}
    for _ in range(trials):
        rate, kernel, orders, gmv, cohorts, landed = refunds_report(rng, days, orders_per_day)
        # the cohort of ``age`` days before the next dawn has landed its shares 1..age-1
        still = np.array([kernel[age - 1:].sum() for age in range(KERNEL_DAYS, 0, -1)])
        truth = float(still @ cohorts[-KERNEL_DAYS:])
        for given in (True, False):
            drawn = pending_cohorts(gmv, orders, landed if given else None,
                                    np.full((days, copies), rate), kernel,
                                    np.zeros(KERNEL_DAYS), rng)[-KERNEL_DAYS:]
            low, high = np.quantile(still @ drawn, [0.1, 0.9])
            inside[given] += bool(low <= truth <= high)
            widths[given].append(high - low)
    band = 3 * np.sqrt(0.8 * 0.2 / trials)
    for given, count in inside.items():
        assert abs(count / trials - 0.8) < band, (given, count / trials)
    assert np.median(np.array(widths[True]) / np.array(widths[False])) < 0.9
