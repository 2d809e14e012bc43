"""qianchuan-rl environments: the market model, scenarios and the Gymnasium env.

``import envs`` registers ``QianchuanBidding-v1``::

    import gymnasium as gym
    import envs  # noqa: F401
    env = gym.make("QianchuanBidding-v1", scenario="3c")

The names below load on first use, so light submodules (``envs.history``, used by the
recommendation CLI) do not pull in SciPy or the env. Nor Gymnasium: the env is registered
at once if Gymnasium is already imported, else the moment it is (in either order,
``gymnasium.make(ENV_ID)`` finds it), so serving, which never imports Gymnasium, never
loads it.
"""

import sys
from importlib import import_module
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec

from envs.version import ENV_VERSION

ENV_ID = f"QianchuanBidding-v{ENV_VERSION}"  # the version goes up when the dynamics change


def _register() -> None:
    from gymnasium.envs.registration import register, registry

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="envs.qianchuan_env:QianchuanBiddingEnv")


class _RegisterWhenGymnasiumLoads(MetaPathFinder):
    """Finds ``gymnasium`` by the other finders, and registers the env once it has loaded."""

    def find_spec(self, name, path=None, target=None) -> ModuleSpec | None:
        if name != "gymnasium":
            return None
        spec = next((found for finder in sys.meta_path
                     if finder is not self and hasattr(finder, "find_spec")
                     and (found := finder.find_spec(name, path, target)) is not None), None)
        if spec is None or spec.loader is None:
            return spec
        loader, run_module = spec.loader, spec.loader.exec_module

        def exec_module(module) -> None:
            run_module(module)
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            _register()

        loader.exec_module = exec_module
        return spec


if "gymnasium" in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())

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
