"""qianchuan-rl environments: the market model, scenarios and the Gymnasium env.

``import envs`` registers ``QianchuanBidding-v0``::

    import gymnasium as gym
    import envs  # noqa: F401
    env = gym.make("QianchuanBidding-v0", scenario="3c")
"""

from gymnasium.envs.registration import register, registry

from envs.config import ConfigError, ScenarioConfig, list_scenarios, load_scenario
from envs.history import FEATURE_NAMES, HISTORY_DAYS_REQUIRED
from envs.qianchuan_env import ENV_ID, ENV_VERSION, QianchuanBiddingEnv

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.qianchuan_env:QianchuanBiddingEnv",
             max_episode_steps=None)

__all__ = ["ConfigError", "ENV_ID", "ENV_VERSION", "FEATURE_NAMES", "HISTORY_DAYS_REQUIRED",
           "QianchuanBiddingEnv", "ScenarioConfig", "list_scenarios", "load_scenario"]
