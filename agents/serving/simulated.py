"""A simulated account's dashboard history, written as a daily report.

For the example reports in ``examples/`` and for the test that a report read back by
``recommend`` gives exactly the env's observation. Not part of the serving path: it runs
the simulator (SciPy) and any policy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.actions import PLANS, plan_names
from envs.config import ScenarioConfig
from envs.history import COLUMNS, DecisionContext
from envs.simulator import Simulator

FLAG_COLUMNS = ("learning", "learn_failed", "interrupted")


@dataclass
class SimulatedAccount:
    """One account after ``days`` days of a plan, seen as its dashboard shows it.

    :param history: (days, len(COLUMNS)) the last ``config.history_days`` days.
    :param observation: the env's observation (F,) for the day being decided.
    """

    config: ScenarioConfig
    dates: list[dt.date]
    history: np.ndarray
    context: DecisionContext
    observation: np.ndarray
    plan_launch_date: dt.date
    creative_date: dt.date
    promo_dates: str

    @property
    def decision_date(self) -> dt.date:
        return self.dates[-1] + dt.timedelta(days=1)

    def columns(self) -> dict[str, list[Any]]:
        """The report's columns (every history column, the plan's dates and shares)."""
        out: dict[str, list[Any]] = {}
        for i, name in enumerate(COLUMNS):
            values = self.history[:, i]
            out[name] = [int(v) for v in values] if name in FLAG_COLUMNS else list(values)
        n = len(self.dates)
        out["plan_launch_date"] = [self.plan_launch_date] * n
        out["creative_date"] = [self.creative_date] * n
        for plan in plan_names(self.config):  # share_whole_site only when the plan exists
            out[f"share_{plan}"] = [float(self.context.shares[0, PLANS.index(plan)])] * n
        out["breakeven_roi"] = [float(self.context.breakeven_roi[0])] * n
        return out


def simulate_account(config: ScenarioConfig, seed: int, days: int, policy: Any = None,
                     around: dt.date = dt.date(2025, 6, 1)) -> SimulatedAccount:
    """Run one seeded account ``days`` days after launch and date its history.

    :param policy: anything with SB3's ``predict`` acting in ``config``'s action space
        (None: hold every setting, the zero action).
    :param around: see :func:`dated_account`.
    """
    sim = Simulator(config, n=1)
    obs = sim.reset(seeds=[seed])
    for _ in range(days):
        action = (np.zeros((1, sim.action_dim)) if policy is None
                  else policy.predict(obs, deterministic=True)[0])
        obs, _, done, _ = sim.step(action)
        if done:
            raise ValueError(f"the episode ends after {config.episode_days} days: "
                             f"days={days} is too many")
    return dated_account(sim, around)


def dated_account(sim: Simulator, around: dt.date = dt.date(2025, 6, 1),
                  account: int = 0) -> SimulatedAccount:
    """One account of a simulator, as it stands, with calendar dates on its history.

    :param around: the day being decided is the first date from this one whose weekday is
        the simulated account's.
    """
    ctx = sim.context()
    ctx = type(ctx)(**{k: np.asarray(v)[account:account + 1] for k, v in vars(ctx).items()})
    weekday = int(ctx.weekday[0])
    decision = around + dt.timedelta(days=(weekday - around.weekday()) % 7)
    launch = decision - dt.timedelta(days=int(sim.state.day[account]))
    creative = decision - dt.timedelta(days=int(ctx.creative_age_days[0]))
    history = sim.history[account].copy()  # (days, columns), oldest first
    rows = history.shape[0]
    dates = [decision - dt.timedelta(days=rows - i) for i in range(rows)]
    cfg = sim.cfg
    peaks = cfg.promo_peak_days if cfg.promotions_enabled else ()
    promo = ",".join((launch + dt.timedelta(days=p)).isoformat() for p in peaks)
    return SimulatedAccount(cfg, dates, history, ctx, sim.observe()[account], launch, creative,
                            promo)
