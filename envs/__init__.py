"""qianchuan-rl environments: the market model, scenarios and the Gymnasium env.

``import envs`` registers ``QianchuanBidding-v1``::

    import gymnasium as gym
    import envs  # noqa: F401
    env = gym.make("QianchuanBidding-v1", scenario="3c")

The names below load on first use, so light submodules (``envs.history``, used by the
recommendation CLI) do not pull in SciPy or the env.
"""

from importlib import import_module

from gymnasium.envs.registration import register, registry

from envs.version import ENV_VERSION

ENV_ID = f"QianchuanBidding-v{ENV_VERSION}"  # the version goes up when the dynamics change
if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.qianchuan_env:QianchuanBiddingEnv")

_LAZY = {
    "ConfigError": "envs.config", "ScenarioConfig": "envs.config",
    "list_scenarios": "envs.config", "load_scenario": "envs.config",
    "FEATURE_NAMES": "envs.history", "HISTORY_DAYS_REQUIRED": "envs.history",
    "ENV_VERSION": "envs.version", "QianchuanBiddingEnv": "envs.qianchuan_env",
}
__all__ = ["ENV_ID", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
