"""A batch of simulated accounts: the model, each account's dashboard history, rewards.

Both the Gymnasium env (``n = 1``) and the vectorised env (``n`` accounts) drive this class,
so there is one source of truth for what an episode is: reset simulates the account's
pre-launch history (a mature plan at the typical target) and launches a new plan; each step
is one day; the episode ends (truncated) after ``episode_days`` days, charging refunds still
pending.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.actions import action_dim, check_action, to_decision
from envs.config import ScenarioConfig
from envs.history import COL, COLUMNS, SETTLED_NEWEST, DecisionContext, HistoryTable, build_features
from envs.market import N_DRAWS, AccountParams, Decision, MarketModel, MarketState
from envs.metrics import EpisodeTally
from envs.reward import reward_terms

# The per-day info keys (contracts), all arrays of shape (n,).
INFO_KEYS = ("gmv", "spend", "orders", "refunds", "payment_roi", "settled_gmv", "target_roi",
             "budget", "balance", "learning", "learn_failed", "interrupted", "promo")


class Simulator:
    """``n`` accounts of one scenario, stepped together one day at a time."""

    def __init__(self, config: ScenarioConfig, n: int = 1):
        self.cfg = config
        self.n = n
        self.model = MarketModel(config)
        self.action_dim = action_dim(config.action_space)
        # Day-major history (days, columns, n) with room for as many days again, so a new
        # day is one row written after the window, and the window moves back only once per
        # ``history_days`` days (feature reductions over days are then contiguous rows).
        self._days = np.zeros((2 * config.history_days, len(COLUMNS), n))
        self._end = config.history_days  # the window is _days[_end - history_days:_end]
        self.params = None
        self.state = None
        self.tally = EpisodeTally(n)
        self.term_sums: dict[str, np.ndarray] = {}
        self._rngs: list[np.random.Generator] | None = None
        # Lagrange multiplier of the settlement-ROI floor (CNY per CNY of shortfall), adapted
        # by training when the floor is treated as a constraint; 0: plain objective.
        self.floor_multiplier = 0.0

    # ----------------------------------------------------------------------
    def reset(self, rng: np.random.Generator | None = None,
              seeds: list[int] | np.ndarray | None = None) -> np.ndarray:
        """Draw new accounts, simulate their pre-launch history, launch the plan.

        :param rng: one generator for the whole batch (fast; what training uses), or
        :param seeds: one seed per account: each account then draws from its own generator,
            so its episode does not depend on the batch it runs in, and two policies run on
            the same seeds face the same market draws (paired comparisons).
        :return: observations (n, F) for launch day.
        """
        cfg, n = self.cfg, self.n
        if (rng is None) == (seeds is None):
            raise ValueError("pass exactly one of rng or seeds")
        if seeds is not None:
            if len(seeds) != n:
                raise ValueError(f"{len(seeds)} seeds for {n} accounts")
            self._rngs = [np.random.default_rng(int(s)) for s in seeds]
            parts = [self.model.sample_params(r, 1) for r in self._rngs]
            self.params = AccountParams.stack(parts)
            self.state = MarketState.stack([self.model.initial_state(p, r)
                                            for p, r in zip(parts, self._rngs, strict=True)])
        else:
            self._rngs = None
            self.params = self.model.sample_params(rng, n)
            self.state = self.model.initial_state(self.params, rng)
        self._days[:] = 0.0
        self._end = cfg.history_days
        for _ in range(cfg.history_days):
            s = self.state
            hold = Decision(s.target_roi, s.budget_cny, s.shares, np.zeros(n, dtype=bool))
            self._advance(hold, self._draws(rng))
        self.state = self.model.launch(self.state, self.params)
        self.tally = EpisodeTally(n)
        self.term_sums = {}
        return self.observe()

    def _draws(self, rng: np.random.Generator | None) -> np.ndarray:
        """The day's standard normals (n, N_DRAWS), per account when seeded per account."""
        if self._rngs is not None:
            return np.stack([r.standard_normal(N_DRAWS) for r in self._rngs])
        if rng is None:
            raise ValueError("this batch was reset with one generator: pass rng to step()")
        return rng.standard_normal((self.n, N_DRAWS))

    def _advance(self, decision: Decision, draws: np.ndarray):
        """Run the model one day and append the day's dashboard row."""
        before = self.state
        self.state, out = self.model.step(before, self.params, decision, draws)
        keep = self.cfg.history_days - 1
        if self._end == self._days.shape[0]:  # full: move the newest days to the front
            self._days[:keep] = self._days[self._end - keep:self._end]
            self._end = keep
        row = self._days[self._end]
        for name, values in (("spend", out.spend), ("gmv", out.gmv), ("orders", out.orders),
                             ("refunds", out.refunds), ("settled_gmv", np.nan),
                             ("target_roi", decision.target_roi),
                             ("budget", decision.budget_cny), ("balance", out.balance),
                             ("learning", self.state.learning),
                             ("learn_failed", self.state.learn_failed),
                             ("interrupted", out.interrupted)):
            row[COL[name]] = values
        self._end += 1
        self._days[self._end + SETTLED_NEWEST, COL["settled_gmv"]] = out.settled_gmv
        return out

    @property
    def history(self) -> np.ndarray:
        """The dashboard history (n, history_days, columns), oldest day first: a view that
        the next step overwrites, so copy it to keep it."""
        return self._days[self._end - self.cfg.history_days:self._end].transpose(2, 0, 1)

    def context(self) -> DecisionContext:
        """The decision day's context, as the advertiser knows it."""
        s, cal = self.state, self.model.calendar
        idx = cal.index(s.day)
        return DecisionContext(
            plan_age_days=s.day.astype(float),
            creative_age_days=s.creative_age_days,
            days_to_promo=cal.days_to_peak[idx].astype(float),
            days_after_promo=cal.days_after_peak[idx].astype(float),
            in_promo=cal.in_peak[idx].astype(float),
            weekday=((self.params.start_weekday + s.day) % 7).astype(float),
            breakeven_roi=self.params.breakeven_roi,
            shares=s.shares,
        )

    def observe(self) -> np.ndarray:
        """Observations (n, F) for the coming day."""
        return build_features(HistoryTable(self.history), self.context())

    # ----------------------------------------------------------------------
    def step(self, action: np.ndarray, rng: np.random.Generator | None = None,
             draws: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool,
                                                        dict[str, Any]]:
        """One day for every account.

        :param action: (n, action_dim) in [-1, 1] (clipped); NaN or inf raises ValueError.
        :param rng: the batch's generator when reset with one (per-account generators are
            used when reset with seeds), or pass ``draws`` (n, N_DRAWS) directly.
        :return: observations, rewards (n,), whether the episode ended (truncated), and a
            dict of arrays: the per-day info keys, ``reward_terms`` and, on the last day,
            ``episode_metrics`` and ``episode_reward_terms`` (the episode's terms, CNY).
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        cfg = self.cfg
        a = check_action(action, self.action_dim)
        if draws is None:
            draws = self._draws(rng)
        decision = to_decision(cfg, self.state, a)
        out = self._advance(decision, draws)
        done = bool(self.state.day[0] >= cfg.episode_days)
        pending = self.model.pending_incremental_refunds(self.state) if done else None
        terms = reward_terms(cfg, self.params, out, pending, self.floor_multiplier)
        reward = sum(terms.values()) / cfg.reward_scale_cny
        self.tally.add(cfg, self.params, out)
        for key, value in terms.items():
            self.term_sums[key] = self.term_sums.get(key, 0.0) + value
        info: dict[str, Any] = {
            "gmv": out.gmv, "spend": out.spend, "orders": out.orders, "refunds": out.refunds,
            "payment_roi": out.payment_roi, "settled_gmv": out.settled_gmv,
            "target_roi": decision.target_roi, "budget": decision.budget_cny,
            "balance": out.balance, "learning": out.learning, "learn_failed": out.learn_failed,
            "interrupted": out.interrupted, "promo": out.promo, "reward_terms": terms,
            "shares": decision.shares, "refresh": decision.refresh,
        }
        if done:
            info["episode_metrics"] = self.tally.result()
            info["episode_reward_terms"] = self.term_sums
        return self.observe(), reward, done, info


class ScenarioMix:
    """Accounts of several scenarios side by side, stepped as one batch.

    ``n`` accounts are split as evenly as possible across ``configs`` (the first ones get one
    more). Each scenario runs its own :class:`Simulator`; observations, rewards and infos are
    concatenated in that order. The scenarios must share the episode length, action space
    and objective, so episodes stay in step and rewards are comparable.
    """

    def __init__(self, configs: list[ScenarioConfig], n: int):
        first = configs[0]
        for cfg in configs[1:]:
            for key in ("episode_days", "action_space", "objective"):
                if getattr(cfg, key) != getattr(first, key):
                    raise ValueError(f"scenarios {first.name!r} and {cfg.name!r} differ in "
                                     f"{key}: a mix needs the same value")
        if n < len(configs):
            raise ValueError(f"{n} accounts cannot cover {len(configs)} scenarios")
        sizes = [n // len(configs) + (i < n % len(configs)) for i in range(len(configs))]
        self.cfg = first
        self.n = n
        self.sims = [Simulator(cfg, k) for cfg, k in zip(configs, sizes, strict=True)]
        self.action_dim = self.sims[0].action_dim

    @property
    def floor_multiplier(self) -> float:
        return self.sims[0].floor_multiplier

    @floor_multiplier.setter
    def floor_multiplier(self, value: float) -> None:
        for sim in self.sims:
            sim.floor_multiplier = value

    def reset(self, rng: np.random.Generator | None = None,
              seeds: list[int] | np.ndarray | None = None) -> np.ndarray:
        if seeds is not None:
            bounds = np.cumsum([0] + [sim.n for sim in self.sims])
            return np.concatenate([sim.reset(seeds=seeds[a:b])
                                   for sim, a, b in zip(self.sims, bounds, bounds[1:],
                                                        strict=False)])
        return np.concatenate([sim.reset(rng) for sim in self.sims])

    def step(self, action: np.ndarray, rng: np.random.Generator | None = None):
        a = np.asarray(action)
        results, start = [], 0
        for sim in self.sims:
            results.append(sim.step(a[start:start + sim.n], rng=rng))
            start += sim.n
        obs = np.concatenate([r[0] for r in results])
        reward = np.concatenate([r[1] for r in results])
        done = results[0][2]
        info = _concat_info([r[3] for r in results])
        return obs, reward, done, info


def _concat_info(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-scenario info dicts of arrays (nested dicts key by key)."""
    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        if isinstance(first, dict):
            out[key] = _concat_info([p[key] for p in parts])
        else:
            out[key] = np.concatenate([np.asarray(p[key]) for p in parts])
    return out
