"""The policy ``recommend`` serves: an exported ONNX policy or a rule-based one by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.serving.errors import ServingError
from envs.config import ConfigError, ScenarioConfig, load_scenario

DEFAULT_SCENARIO = "3c"  # a rule-based policy's scenario when none is named


def load_policy(spec: str, scenario: str | None = None, threads: int = 1) -> Any:
    """A policy from ``--policy``: a path to ``policy.onnx`` or a rule-based policy's name.

    :param scenario: the scenario a rule-based policy is built for (None:
        :data:`DEFAULT_SCENARIO`); for an anchored ONNX policy, the scenario whose anchor it
        plays (None: the one it was trained on); a raw ONNX policy carries its own in the
        manifest.
    """
    if spec.endswith(".onnx") or Path(spec).is_file():
        from agents.serving.onnx_policy import OnnxPolicy

        policy = OnnxPolicy(spec, threads=threads)
        if policy.anchored:
            policy.select_anchor(scenario)
        return policy
    return rule_policy(spec, scenario_config(scenario or DEFAULT_SCENARIO))


def scenario_config(scenario: str) -> ScenarioConfig:
    """The scenario by preset name or YAML path, as a :class:`ServingError` if unknown."""
    try:
        return load_scenario(scenario)
    except ConfigError as exc:
        raise ServingError(f"--scenario: {exc}") from None


def rule_policy(name: str, config: ScenarioConfig) -> Any:
    """A registered rule-based policy (``playbook``, ``pid``, ...) that reads only the report."""
    from agents.policies import POLICIES, make_policy

    usable = sorted(n for n, cls in POLICIES.items() if not getattr(cls, "needs_simulator", False))
    if name not in usable:
        why = ("needs the simulator's hidden state" if name in POLICIES
               else "is not a policy file or a known policy")
        raise ServingError(f"--policy {name!r} {why}; use runs/<run>/export/policy.onnx or "
                           f"one of: {', '.join(usable)}")
    try:
        return make_policy(name, config)
    except ValueError as exc:
        # a tuned rule with no baseline for a custom scenario; the store is loaded by then
        # (imported here, not above: the playbook beside every answer must not load it)
        from agents.policies.baseline_store import BaselineError

        if isinstance(exc, BaselineError):
            raise ServingError(f"--policy {name!r} on scenario {config.name!r}: {exc}"
                               ) from None
        raise
