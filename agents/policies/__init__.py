"""Policies behind one ``predict()`` interface; see :mod:`agents.policies.base`."""

from agents.policies.base import POLICIES, ConstantPolicy, Policy, make_policy, register_policy

__all__ = ["POLICIES", "ConstantPolicy", "Policy", "make_policy", "register_policy"]
