"""Policies behind one ``predict()`` interface; see :mod:`agents.policies.base`.

Importing this package registers every rule-based policy and the oracle by name.
"""

from agents.policies import (  # noqa: F401  (registers)
    controllers,
    operator,
    oracle,
    playbook,
    static,
    tuned,
)
from agents.policies.base import POLICIES, ConstantPolicy, Policy, make_policy, register_policy

__all__ = ["POLICIES", "ConstantPolicy", "Policy", "make_policy", "register_policy"]
