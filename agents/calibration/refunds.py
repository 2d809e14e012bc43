"""Refund rate and landing kernel, from refunds landed against the GMV of the days before.

In the simulator a day's order cohort has refunds ``gmv x rate_s`` (the account's
``refund_rate`` times the day's shape: deeper buying, promotions and settlement-ROI plans
move it, :func:`envs.stages.draw_refunds`), landing ``kernel_k`` of them ``k`` = 1..7 days
later (:func:`envs.stages.book_refunds`). So the refunds landed on day ``t`` are linear in
the past week's ``x_s = gmv_s x shape_s``: ``refunds_t = sum_k c_k x_(t-k)`` with ``c_k =
refund_rate x kernel_k`` (for cohorts of few orders, the share's draw clipped at 0 lifts
its mean above the rate: :func:`envs.stages.refund_share_moments`, so ``x_s`` is taken at
the fitted rate, refitted until it settles). The shapes come from the replay at the fitted
market (:meth:`.replay.Replay.predict`); ``c`` is a non-negative weighted least-squares fit, its
covariance a sandwich with the landed days' covariance (each cohort's noise shared by the 7
days it lands on), and rate and kernel follow by the delta method.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from agents.calibration.account import AccountHistory
from agents.calibration.orders import Estimate
from envs.config import ScenarioConfig, describe_parameters
from envs.stages import refund_share, refund_share_moments

KERNEL_DAYS = 7
# days with a full week of cohorts before them, needed to fit: twice the kernel's 7
# coefficients (with 7 the least squares passes through every day, and the residuals that
# scale its covariance are all 0; on a 14-day report of an account that sold on 3 of its
# first 7 days it put the rate at 86)
MIN_REFUND_DAYS = 2 * KERNEL_DAYS
# the order cohorts a forecast draws given the report's last week of landed refunds: the
# week still landing and the week before, whose refunds also landed in that week
PENDING_WINDOW_DAYS = 2 * KERNEL_DAYS


def refund_estimates(history: AccountHistory, base: ScenarioConfig, shapes: np.ndarray,
                     level: float = 0.9, peak: np.ndarray | None = None
                     ) -> tuple[dict[str, Estimate], list[str]]:
    """``refund_rate``, ``refund_kernel_1`` .. ``_7`` (shares of a cohort's refunds landing
    1..7 days after its order day) and ``promo_refund_mult`` (the promotion peaks' refund
    multiplier).

    :param shapes: each day's cohort refund rate at the base's ``refund_rate`` (K, T), from
        the replay at the fitted market (first row) and at draws from the fit's uncertainty
        (the others); NaN where it booked no order (the base's rate stands in). The shape
        moves with how deep the account buys into its pool, so an uncertain pool makes an
        uncertain rate: the intervals add the spread of the draws' estimates to each fit's
        own (the law of total variance); the values are the first row's.
    :param peak: bool (T,), the promotion peak days (:func:`.replay.peak_days`), whose shapes
        carry the base's ``promo_refund_mult``; their cohorts' refunds measure the account's
        own (a prior, :data:`PROMO_MULT_PRIOR_LOG_SD`, pulls it towards the base's). None,
        or no peak cohort with refunds landing in the report: the base's, as a prior.
    :return: the estimates, and notes on what the data could not decide.
    """
    notes: list[str] = []
    prior = _prior(base, level)
    if history.refunds is None:
        return prior, ["refund rate and kernel: no refunds column, the base's values"]
    rows = np.arange(KERNEL_DAYS, history.days)
    if rows.size < MIN_REFUND_DAYS or history.gmv.sum() <= 0:
        return prior, [f"refund rate and kernel: fewer than {MIN_REFUND_DAYS} days with a "
                       "week of orders before them, the base's values"]
    if not np.any(history.refunds[rows] > 0):
        notes.append("no refund landed on any day: the refund rate is fitted as (near) 0")
    peak_cohorts = _peak_cohorts(history, rows, peak)
    peak = peak if peak_cohorts else None
    shapes = np.atleast_2d(shapes)
    fits = [_landing_fit(history, base, rows, shapes[0], peak=peak)]
    start = float(fits[0][0][:KERNEL_DAYS].sum()) or None  # the draws start from its rate
    fits += [_landing_fit(history, base, rows, shape, start, peak) for shape in shapes[1:]]
    theta, cov = fits[0]
    coef = theta[:KERNEL_DAYS]
    if float(coef.sum()) > MAX_REFUND_RATE:
        return prior, [f"refund rate and kernel: the refunds landed are more than "
                       f"{MAX_REFUND_RATE:.0%} of the week's GMV before them (refunds of "
                       "orders from before the report?), the base's values"]
    if len(fits) > 1:  # the draws' spread, on top of the mean of their own covariances
        thetas = np.array([t for t, _ in fits])
        cov = np.mean([v for _, v in fits], axis=0) + np.cov(thetas, rowvar=False)
    total = float(coef.sum())
    z = stats.norm.ppf(0.5 + level / 2.0)
    coef_cov = cov[:KERNEL_DAYS, :KERNEL_DAYS]
    total_sd = math.sqrt(max(float(coef_cov.sum()), 0.0))
    source = f"refunds against the week's GMV before them, {rows.size} days"
    out = {"refund_rate": Estimate(total, max(total - z * total_sd, 0.0),
                                   min(total + z * total_sd, MAX_REFUND_RATE), "share of GMV", True,
                                   source)}
    out["promo_refund_mult"] = prior["promo_refund_mult"]
    if total <= 1e-9:
        for k in range(KERNEL_DAYS):
            out[f"refund_kernel_{k + 1}"] = prior[f"refund_kernel_{k + 1}"]
        notes.append("refund kernel: no refunds to time, the base's values")
        return out, notes
    if peak is not None:
        out["promo_refund_mult"] = _promo_estimate(
            base, float(theta[KERNEL_DAYS]), math.sqrt(max(float(cov[-1, -1]), 0.0)), z,
            f"refunds of the promotion peaks' {peak_cohorts} cohorts against the other days'")
    share = coef / total
    for k in range(KERNEL_DAYS):
        grad = -share[k] / total * np.ones(KERNEL_DAYS)
        grad[k] += 1.0 / total
        sd_k = math.sqrt(max(float(grad @ coef_cov @ grad), 0.0))
        out[f"refund_kernel_{k + 1}"] = Estimate(
            float(share[k]), max(share[k] - z * sd_k, 0.0), min(share[k] + z * sd_k, 1.0),
            "share", sd_k < 0.5 * _KERNEL_PRIOR_SD, source)
    return out, notes


def _peak_cohorts(history: AccountHistory, rows: np.ndarray, peak: np.ndarray | None) -> int:
    """The peak days' cohorts with orders whose refunds land on a fitted row (count)."""
    if peak is None:
        return 0
    days = np.flatnonzero(peak & (history.gmv > 0))
    return int(np.sum((days + KERNEL_DAYS >= rows[0]) & (days + 1 <= rows[-1])))


def _promo_estimate(base: ScenarioConfig, log_ratio: float, sd: float, z: float,
                    source: str) -> Estimate:
    """``promo_refund_mult`` from its log ratio to the base's and that ratio's sd (normal in
    logs, within the simulator's range); identified where the data at least halved the
    prior's sd."""
    lo, hi = PROMO_MULT_RANGE
    mult = base.promo_refund_mult
    return Estimate(float(np.clip(mult * math.exp(log_ratio), lo, hi)),
                    float(np.clip(mult * math.exp(log_ratio - z * sd), lo, hi)),
                    float(np.clip(mult * math.exp(log_ratio + z * sd), lo, hi)), "multiplier",
                    sd < 0.5 * PROMO_MULT_PRIOR_LOG_SD, source)


def _landing_fit(history: AccountHistory, base: ScenarioConfig, rows: np.ndarray,
                 shape: np.ndarray, start: float | None = None,
                 peak: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The non-negative weighted least-squares fit of ``c`` (7,) for one shape (T,), with the
    log ratio of the peaks' refund multiplier to the base's when ``peak`` is given, and
    their covariance: ``theta`` (7,) or (8,) and (7, 7) or (8, 8).

    A cohort's expected refunds are its GMV times the mean share
    (:func:`envs.stages.refund_share_moments`) at its rate ``R x shape`` (``R = sum c``, the
    refund rate; on a peak day the shape times the ratio): above the rate for cohorts of few
    orders, so the basis depends on ``R`` and is refitted until ``R`` settles
    (:data:`BASIS_ITERATIONS`), from ``start`` when given (a rate, share of GMV). The ratio
    is profiled: for each ratio the same least squares in ``c``, the weighted residual sum
    (over-dispersion removed) plus the prior's ``(log ratio / sd)^2`` minimised over the
    ratio by SciPy's bounded scalar search; then ``c`` refitted at it.

    The noise is the cohorts' own: each cohort's refund share is drawn once and lands over
    the next 7 days, so the landed days' covariance is ``K V K'`` (``K`` the loadings of
    cohorts on landing days, at a kernel between the fitted and the base's,
    :data:`FITTED_KERNEL_WEIGHT`; ``V`` the drawn shares' variances at the fitted rate).
    Days are weighted by its diagonal; the covariance is the sandwich with the
    full ``K V K'``, scaled up by any over-dispersion of the residuals, its derivative
    including the basis's own dependence on ``R`` (the ratio's prior counts as one more
    observation, in the bread and in the meat: in the bread alone, a ratio the data say
    nothing of would get a variance of 0). A
    fit that treats the days as independent counts each cohort's noise several times over
    (its intervals were about half as wide as they should be); whitening by ``K V K'`` (full
    generalised least squares) is exact at the true kernel but breaks down at a wrong one,
    ``K V K'`` being nearly singular.
    """
    base_shape = np.where(np.isfinite(shape), shape, base.refund_rate) / max(
        base.refund_rate, 1e-6)
    y = history.refunds[rows]
    within, lag_index = landing_lags(rows, np.arange(history.days))
    nugget = rounding_variance(y)

    def rate_shape(ratio: float) -> np.ndarray:
        """Each cohort's rate per unit of refund rate, the peaks' at ``exp(ratio)`` times
        the base's multiplier."""
        return base_shape if peak is None else base_shape * np.where(peak, math.exp(ratio), 1.0)

    cohort_days = rows[:, None] - np.arange(1, KERNEL_DAYS + 1)[None, :]  # (T_rows, 7)
    at_rate: dict[float, np.ndarray] = {}  # each cohort's expected share at a rate (the
    # ratio's profile moves only the peak days' cohorts: the others are computed once)

    def design(total: float | None, ratio: float) -> np.ndarray:
        """Each row's cohorts (T_rows, 7): GMV times the expected share per unit of rate."""
        if total is None:
            x = history.gmv * rate_shape(ratio)
        else:
            if total not in at_rate:
                at_rate.clear()
                at_rate[total] = history.gmv * refund_share_moments(
                    total * base_shape, history.orders)[0] / total
            x = at_rate[total]
            if peak is not None and ratio != 0.0:
                x = x.copy()
                x[peak] = history.gmv[peak] * refund_share_moments(
                    total * base_shape[peak] * math.exp(ratio), history.orders[peak])[0] / total
        return x[cohort_days]

    def landed_covariance(total: float, kernel: np.ndarray, ratio: float,
                          full: bool = True) -> np.ndarray:
        """The landed days' covariance (T_rows, T_rows), CNY^2; only its diagonal (T_rows,)
        unless ``full``."""
        rate = np.clip(total * rate_shape(ratio), 0.01, 0.9)
        cohort_var = history.gmv ** 2 * refund_share_moments(rate, history.orders)[1]
        loads = np.where(within, kernel[lag_index], 0.0)
        if not full:
            return (loads * loads) @ cohort_var + nugget
        cov = (loads * cohort_var) @ loads.T
        cov[np.diag_indices_from(cov)] += nugget
        return cov

    def blended(coef: np.ndarray, total: float) -> np.ndarray:
        """The kernel the covariance is built with (:data:`FITTED_KERNEL_WEIGHT`)."""
        return (FITTED_KERNEL_WEIGHT * coef / total
                + (1.0 - FITTED_KERNEL_WEIGHT) * base_kernel)

    def settle(total: float | None, ratio: float, var_y: np.ndarray
               ) -> tuple[np.ndarray, float | None, np.ndarray, np.ndarray]:
        """``c`` refitted with its basis until the rate settles: (c, rate, basis, var)."""
        for _ in range(BASIS_ITERATIONS):
            x = design(total, ratio)
            w = 1.0 / np.sqrt(var_y)
            coef, _ = optimize.nnls(x * w[:, None], y * w)
            moved = float(coef.sum())
            if moved <= 1e-9:
                break
            settled = total is not None and abs(moved - total) <= SETTLED * moved
            total = moved
            var_y = landed_covariance(total, blended(coef, total), ratio, full=False)
            if settled:
                break
        return coef, total, x, var_y

    base_kernel = np.asarray(base.refund_kernel, dtype=np.float64)
    ratio = 0.0
    coef, total, x, var_y = settle(start, ratio, landed_covariance(
        start or base.refund_rate, base_kernel, ratio, full=False))
    fitted = total is not None and total > 1e-9
    if peak is not None and fitted:
        weight = 1.0 / var_y
        # the residuals' over-dispersion on the days no peak cohort lands on (the ratio
        # moves the others), never below the binomial's
        calm = ~np.any(within & peak[None, :], axis=1)
        spread = (float(weight[calm] @ (y - x @ coef)[calm] ** 2) / (calm.sum() - KERNEL_DAYS)
                  if calm.sum() > 2 * KERNEL_DAYS else 1.0)
        spread = max(spread, 1.0)
        def objective(r: float) -> float:
            xr = design(total, r) * np.sqrt(weight)[:, None]
            _, norm = optimize.nnls(xr, y * np.sqrt(weight))
            return norm ** 2 / spread + (r / PROMO_MULT_PRIOR_LOG_SD) ** 2

        lo, hi = (math.log(b / max(base.promo_refund_mult, 1e-9)) for b in PROMO_MULT_RANGE)
        ratio = float(optimize.minimize_scalar(objective, bounds=(lo, hi), method="bounded",
                                               options={"xatol": 1e-3}).x)
        coef, total, x, var_y = settle(total, ratio, var_y)
        fitted = total is not None and total > 1e-9
    if fitted:  # d refunds / d c_j = x_j + sum_k c_k dx_k / dR
        h = 1e-4 * total
        jac = x + (((design(total + h, ratio) - design(total - h, ratio)) / (2.0 * h))
                   @ coef)[:, None]
        if peak is not None:  # d refunds / d log ratio
            dr = 1e-4
            jac = np.column_stack([jac, (design(total, ratio + dr) - design(total, ratio - dr))
                                   / (2.0 * dr) @ coef])
        cov_y = landed_covariance(total, blended(coef, total), ratio)
    else:  # no refunds: a linear basis at the base's rate and kernel
        jac, cov_y = x, landed_covariance(base.refund_rate, base_kernel, ratio)
        if peak is not None:
            jac = np.column_stack([jac, np.zeros(rows.size)])
    w = 1.0 / np.sqrt(np.diag(cov_y))
    resid = (y - x @ coef) * w
    dof = max(rows.size - KERNEL_DAYS, 1)
    scale = max(float(resid @ resid) / dof, 1.0)  # over-dispersion, never below the binomial
    wj = jac * (w ** 2)[:, None]
    information = jac.T @ wj / scale
    meat = wj.T @ cov_y @ wj / scale
    if peak is not None:  # the prior, a pseudo-observation of the ratio, in both
        information[-1, -1] += 1.0 / PROMO_MULT_PRIOR_LOG_SD ** 2
        meat[-1, -1] += 1.0 / PROMO_MULT_PRIOR_LOG_SD ** 2
    bread = np.linalg.pinv(information)
    theta = coef if peak is None else np.append(coef, ratio)
    return theta, bread @ meat @ bread


def landing_lags(landing_days: np.ndarray, cohort_days: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Which cohorts land on which days: ``within`` (L, C), the cohort's refunds land on that
    day (1..7 days after its order day), and ``lag_index`` (L, C), the kernel share's index
    there (clipped to 0..6 elsewhere, to be masked by ``within``)."""
    lag = landing_days[:, None] - cohort_days[None, :]  # landing day minus cohort day
    return (lag >= 1) & (lag <= KERNEL_DAYS), np.clip(lag, 1, KERNEL_DAYS) - 1


def rounding_variance(landed: np.ndarray) -> float:
    """The report's rounding of refunds landed (``landed`` CNY per day) as a variance (CNY^2):
    a cent-free report is off by up to about 1% of a typical day plus 1 CNY."""
    return float((0.01 * np.mean(landed) + 1.0) ** 2)


def pending_cohorts(gmv: np.ndarray, orders: np.ndarray, landed: np.ndarray | None,
                    rates: np.ndarray, kernel: np.ndarray, kernel_sd: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Draws of the refunds (W, n) of the report's last ``W`` = min(:data:`PENDING_WINDOW_DAYS`,
    T) order cohorts (oldest first; CNY), given the refunds that landed on its last 7 days.

    Each cohort's refunds are its GMV times a share drawn around its rate
    (:func:`envs.stages.draw_refunds`: mean and variance from
    :func:`envs.stages.refund_share_moments`), and a day's landed refunds are the kernel's
    shares of the week's cohorts before it (:func:`envs.stages.book_refunds`). So the
    cohorts and the last week's landed days are jointly normal (to the moments' accuracy),
    and each copy is drawn as the cohorts' normal conditional on what landed would be: a draw
    from their own distribution (the market's clipped normal share) moved by the gain of the
    normal with their moments (Matheron's rule, exact for a normal; an ensemble Kalman
    update otherwise). A day's landed refunds carry, besides the report's rounding, the
    error of the kernel's shares (``kernel_sd``) times the cohorts' expected refunds, as
    independent noise. Without a refunds column, or before any refund could land, the
    cohorts' own distribution. The drawn shares stay in [0, 1].

    :param gmv: (T,) the report's GMV per day (CNY), ``orders`` (T,) its orders and
        ``landed`` (T,) its refunds landed per day (CNY; None: no refunds column).
    :param rates: (T, n) each day's cohort refund rate per copy (share of its GMV), with the
        day's depth, promotion and plan mix already applied.
    :param kernel: (7,) the shares of a cohort's refunds landing 1..7 days after its order
        day; ``kernel_sd`` (7,) their sds.
    """
    days = gmv.shape[0]
    cohort_days = np.arange(max(days - PENDING_WINDOW_DAYS, 0), days)
    gmv = gmv[cohort_days]
    rate = np.clip(rates[cohort_days], 0.0, 1.0)
    count = orders[cohort_days, None]
    share_mean, share_var = refund_share_moments(rate, count)
    mean = gmv[:, None] * share_mean
    var = gmv[:, None] ** 2 * share_var
    # the cohorts' own draws, as the market draws them
    draws = gmv[:, None] * refund_share(rate, count, rng.standard_normal(rate.shape))
    # landed days whose cohorts all lie in the window (none before the report's first day)
    first = cohort_days[0] + KERNEL_DAYS if cohort_days[0] > 0 else 1
    landed_days = np.arange(max(days - KERNEL_DAYS, first), days)
    if landed is not None and landed_days.size:
        within, lag_index = landing_lags(landed_days, cohort_days)
        loads = np.where(within, kernel[lag_index], 0.0)  # (O, W)
        kernel_var = np.where(within, kernel_sd[lag_index] ** 2, 0.0)
        landed = landed[landed_days]
        noise_var = rounding_variance(landed) + kernel_var @ (mean ** 2)  # (O, n)
        noise = np.sqrt(noise_var) * rng.standard_normal(noise_var.shape)
        gain_rhs = loads[None] * var.T[:, None, :]  # (n, O, W): A V per copy
        innovation_cov = gain_rhs @ loads.T[None] + np.eye(landed_days.size)[None] \
            * noise_var.T[:, :, None]  # (n, O, O)
        residual = landed[:, None] - loads @ draws - noise  # (O, n)
        solved = np.linalg.solve(innovation_cov, residual.T[:, :, None])[:, :, 0]  # (n, O)
        draws = draws + np.einsum("now,no->wn", gain_rhs, solved)
    return np.clip(draws, 0.0, gmv[:, None])


# the simulator's largest refund rate (its range in envs.config): a fitted rate above it
# is not a measurement
def _simulator_range(name: str) -> tuple[float, float]:
    """A scenario key's range in the simulator (``envs.config``): (lo, hi)."""
    return next((row["lo"], row["hi"]) for row in describe_parameters() if row["name"] == name)


MAX_REFUND_RATE = _simulator_range("refund_rate")[1]
BASIS_ITERATIONS = 6  # refits of the basis at the refund rate (it settles in 2-4)
SETTLED = 1e-4  # relative change of the rate at which it has settled
# the kernel the landed days' covariance is built with: the fitted one, half-way to the
# base's (a fitted kernel of few orders is noisy; on 300 simulated reports of 2 and 40
# orders a day, either alone gave 85-93% coverage, the blend 87-93%)
FITTED_KERNEL_WEIGHT = 0.5

# the promotion peaks' refund multiplier: the presets' are 1.4-1.8 and the market brief
# says only that refunds rise on peak days (impulse buying), so a log-normal prior around
# the base's with a log-sd of 0.2 (90% within x0.72 .. x1.39; assumption), within the
# simulator's range
PROMO_MULT_PRIOR_LOG_SD = 0.2
PROMO_MULT_RANGE = _simulator_range("promo_refund_mult")
_KERNEL_PRIOR_SD = 0.1  # a kernel share is known to about +-0.1 before data (assumption)
_RATE_PRIOR_LOGIT_SD = 0.5  # the refund rate within about x1.6 of the base's (assumption)


def _prior(base: ScenarioConfig, level: float) -> dict[str, Estimate]:
    """The base's values with prior intervals (assumptions above), marked not identified."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    r = min(max(base.refund_rate, 1e-3), 0.95)
    logit = math.log(r / (1 - r))

    def inv(v):
        return 1.0 / (1.0 + math.exp(-v))

    out = {"refund_rate": Estimate(r, inv(logit - z * _RATE_PRIOR_LOGIT_SD),
                                   inv(logit + z * _RATE_PRIOR_LOGIT_SD), "share of GMV",
                                   False, "prior (base scenario)")}
    for k, share in enumerate(base.refund_kernel):
        out[f"refund_kernel_{k + 1}"] = Estimate(
            float(share), max(share - z * _KERNEL_PRIOR_SD, 0.0),
            min(share + z * _KERNEL_PRIOR_SD, 1.0), "share", False, "prior (base scenario)")
    out["promo_refund_mult"] = _promo_estimate(base, 0.0, PROMO_MULT_PRIOR_LOG_SD, z,
                                               "prior (base scenario)")
    return out


def refund_prior_sd() -> tuple[float, float]:
    """Prior sds: the refund rate's logit, a kernel share (for synthetic accounts)."""
    return _RATE_PRIOR_LOGIT_SD, _KERNEL_PRIOR_SD
