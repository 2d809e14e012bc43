"""The population of synthetic accounts the decision value and the population benchmark use:
which market account ``i`` is drawn around, the named base it is fitted against or played on,
and its true market as a launch is played on it.

Account ``i`` (seed :data:`envs.seeds.CALIBRATION_SEED` + ``i``) is drawn from the fit's prior
around :data:`MARKETS` ``[i % 8]`` (:func:`agents.calibration.synthetic.synthetic_account`):
four named scenarios and four unseen markets, so half the accounts are off the named
scenarios. Their pools range from a tenth to twelve times their market's (5th to 95th
percentile of the first 384; 0.02 to 62 at the extremes), far wider than any training
market's +-20%.
"""

from __future__ import annotations

from agents.calibration.synthetic import SyntheticAccount
from agents.policies.baseline_store import baseline_scenario
from envs.config import ScenarioConfig, load_scenario

# where accounts are drawn around: named scenarios and unseen markets (an unseen market's
# base is its named base scenario); account i draws around MARKETS[i % len(MARKETS)]
MARKETS = ("3c", "beauty", "food", "apparel_live", "unseen/poorer_pool", "unseen/richer_pool",
           "unseen/high_refunds", "unseen/strict_learning")
FIRST_INDEX = 400  # account indices 400.. (seeds 60400..): apart from the calibration tests'
ACCOUNT_KEYS = ("launch_budget_cny", "launch_target_roi", "launch_shares",
                "initial_balance_cny", "topup_cny")  # the advertiser's own, known to it


def account_market(index: int) -> tuple[ScenarioConfig, ScenarioConfig]:
    """The market account ``index`` is drawn around (:data:`MARKETS`) and its named base."""
    market = load_scenario(MARKETS[index % len(MARKETS)])
    return market, load_scenario(baseline_scenario(market))


def true_launch(acc: SyntheticAccount, market: ScenarioConfig, objective: str
                ) -> tuple[ScenarioConfig, dict[str, object]]:
    """The account's true market for ``objective`` as a launch is played on it, and the
    account's own keys (:data:`ACCOUNT_KEYS`). A report longer than the launch stretched the
    account's episode to hold it; the launch is the market's own length."""
    return (acc.config.replace(objective=objective, episode_days=market.episode_days),
            {k: getattr(acc.config, k) for k in ACCOUNT_KEYS})


def off_scenario(market: str, base: str) -> bool:
    """Whether an account drawn around ``market`` is off the named scenarios (an unseen
    market's, played or fitted against its named ``base``)."""
    return market != base
