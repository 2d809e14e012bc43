"""Parity of an exported graph with the model it came from (contracts, "Exported policy").

Observations are recorded on report seeds, the policy's own episodes then random actions
(so parity holds beyond the policy's own states); the graph must give ``model.predict``'s
[-1, 1] output within :data:`ACTION_ATOL` absolute, and the settings it asks for in real
units (target, budget, plan shares; :func:`agents.serving.guards.raw_settings`, the
serving path's mapping) within :data:`REAL_RTOL` relative. An anchored graph's residuals
are compared the same way, its settings mapped by :func:`envs.anchored.anchored_action`
(what serving does) against :class:`agents.policies.anchored.AnchoredPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.export.checkpoint import LoadedCheckpoint
from agents.export.errors import ExportError
from agents.serving.guards import Settings, raw_settings
from agents.serving.manifest import INPUT_NAME, OUTPUT_NAME
from agents.serving.onnx_policy import ort_session
from envs.actions import PLANS
from envs.anchored import anchored_action, anchored_features
from envs.config import ScenarioConfig
from envs.history import decode_features
from envs.seeds import REPORT_SEED
from envs.simulator import Simulator

ACTION_ATOL = 1e-5  # contracts: the [-1, 1] action, absolute
REAL_RTOL = 1e-6  # contracts: target, budget (and plan shares), relative
# report seeds (contracts): the policy's episodes, then random-action episodes
PARITY_SEEDS = tuple(range(REPORT_SEED, REPORT_SEED + 8))
RANDOM_SEEDS = tuple(range(REPORT_SEED + 8, REPORT_SEED + 12))


def record_observations(ck: LoadedCheckpoint) -> np.ndarray:
    """Observations of whole episodes on report seeds: the policy's own, then random
    actions (so parity is checked beyond the policy's own states). Shape (n, F)."""
    out = []
    rng = np.random.default_rng(0)
    for seeds, own in ((PARITY_SEEDS, True), (RANDOM_SEEDS, False)):
        sim = Simulator(ck.scenario, n=len(seeds))
        obs = sim.reset(seeds=list(seeds))
        while True:
            out.append(obs)
            action = (ck.predict(obs) if own
                      else rng.uniform(-1.0, 1.0, (len(seeds), sim.action_dim)))
            obs, _, done, _ = sim.step(action)
            if done:
                break
    return np.concatenate(out).astype(np.float32)


def real_units(cfg: ScenarioConfig, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The settings an action asks for, in real units: target, budget (from a 10,000-CNY
    budget) and, in ``full``, the plan shares. Shape (n, k)."""
    n = obs.shape[0]
    named = decode_features(obs)
    target = np.maximum(named["target_roi"], 0.01)
    shares = np.stack([named[f"share_{p}"] for p in PLANS], axis=1)
    s = raw_settings(cfg, action, Settings(target, np.full(n, 1e4), shares,
                                           np.zeros(n, dtype=bool)))
    cols = [s.target_roi, s.budget_cny]
    if cfg.action_space == "full":
        cols += list(s.shares.T)
    return np.stack(cols, axis=1)


@dataclass
class AnchoredInputs:
    """An anchored policy's recorded inputs: what its network saw, what the mapping reads."""

    features: np.ndarray  # (n, F + 6) float32: envs.anchored.anchored_features
    observations: np.ndarray  # (n, F) the env's raw observations
    histories: np.ndarray  # (n, days, columns) the dashboards (envs.history.COLUMNS)
    launch_budgets: np.ndarray  # (n,) CNY


def record_anchored_inputs(ck: LoadedCheckpoint) -> tuple[AnchoredInputs, Any]:
    """Anchored inputs of whole episodes on report seeds: the policy's own (played through
    the mapping by :class:`agents.policies.anchored.AnchoredPolicy`), then random residuals. Returns
    them and the policy (the reference of the real-unit parity)."""
    cfg = ck.scenario
    policy, _ = ck.policy.playing(cfg)
    rng = np.random.default_rng(0)
    parts: dict[str, list[np.ndarray]] = {"features": [], "observations": [], "histories": [],
                                          "launch_budgets": []}
    for seeds, own in ((PARITY_SEEDS, True), (RANDOM_SEEDS, False)):
        sim = Simulator(cfg, n=len(seeds))
        obs = sim.reset(seeds=list(seeds))
        launch = sim.params.launch_budget_cny.copy()
        while True:
            history = sim.history.copy()
            parts["features"].append(anchored_features(cfg, policy.anchor, obs, history,
                                                       launch))
            parts["observations"].append(obs)
            parts["histories"].append(history)
            parts["launch_budgets"].append(launch)
            if own:
                policy.see_dashboard(history, launch)
                action = policy.predict(obs)[0]
            else:
                residual = rng.uniform(-1.0, 1.0, (len(seeds), ck.output_dim))
                action = anchored_action(cfg, policy.anchor, residual, obs, history, launch)
            obs, _, done, _ = sim.step(action)
            if done:
                break
    return AnchoredInputs(**{k: np.concatenate(v) for k, v in parts.items()}), policy


def check_parity(ck: LoadedCheckpoint, onnx_path: Path, obs: np.ndarray) -> dict[str, Any]:
    """Compare the graph with ``model.predict``; :class:`ExportError` beyond tolerance."""
    reference = np.asarray(ck.predict(obs), dtype=np.float64)
    exported = graph_output(onnx_path, obs, reference)
    return verdict(reference, exported, real_units(ck.scenario, obs, reference),
                   real_units(ck.scenario, obs, exported), "observations", "action")


def check_anchored_parity(ck: LoadedCheckpoint, onnx_path: Path, inputs: AnchoredInputs,
                          policy: Any) -> dict[str, Any]:
    """An anchored graph against the model: its residuals against ``model.predict`` on the
    recorded inputs, and the settings they map to (:func:`envs.anchored.anchored_action`,
    what serving does) against ``policy``'s (:class:`agents.policies.anchored.AnchoredPolicy`), in
    real units; :class:`ExportError` beyond tolerance."""
    cfg = ck.scenario
    x = inputs.features
    reference = np.asarray(ck.predict(x), dtype=np.float64)
    exported = graph_output(onnx_path, x, reference)
    obs, hist, launch = inputs.observations, inputs.histories, inputs.launch_budgets
    policy.see_dashboard(hist, launch)
    ref_real = real_units(cfg, obs, policy.predict(obs)[0])
    exp_real = real_units(cfg, obs, anchored_action(cfg, policy.anchor, exported, obs, hist,
                                                    launch))
    return verdict(reference, exported, ref_real, exp_real, "anchored inputs", "residual",
                   compared="residuals (graph vs model.predict on the anchored inputs); "
                            "settings mapped by envs.anchored.anchored_action vs "
                            "agents.policies.anchored.AnchoredPolicy",
                   anchor_scenario=cfg.name)


def graph_output(onnx_path: Path, x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The graph's output on ``x`` (float64), shaped as ``reference`` (else
    :class:`ExportError`)."""
    session = ort_session(onnx_path)
    exported = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0].astype(np.float64)
    if exported.shape != reference.shape:
        raise ExportError(f"parity: graph returns {exported.shape}, model {reference.shape}")
    return exported


def verdict(reference: np.ndarray, exported: np.ndarray, ref_real: np.ndarray,
            exp_real: np.ndarray, inputs: str, output: str, **extra: Any) -> dict[str, Any]:
    """The parity record of the manifest (``extra`` appended), or :class:`ExportError` when
    the graph's output (``output``: action or residual) or its settings in real units are
    beyond tolerance.

    :param inputs: what the rows are, for the message (``observations``, ``anchored
        inputs``).
    """
    output_diff = np.abs(exported - reference)
    real_diff = np.abs(exp_real - ref_real) / np.maximum(np.abs(ref_real), 1e-12)
    rows = reference.shape[0]
    result = {
        "observations": int(rows), "policy_seeds": list(PARITY_SEEDS),
        "random_action_seeds": list(RANDOM_SEEDS),
        "max_abs_action_diff": float(output_diff.max()),
        "max_rel_real_diff": float(real_diff.max()),
        "tolerances": {"action_abs": ACTION_ATOL, "real_rel": REAL_RTOL},
        **extra,
    }
    if result["max_abs_action_diff"] > ACTION_ATOL or result["max_rel_real_diff"] > REAL_RTOL:
        i = int(np.unravel_index(np.argmax(output_diff), output_diff.shape)[0])
        raise ExportError(
            f"parity check failed on {rows} {inputs}: max |{output} diff| "
            f"{result['max_abs_action_diff']:.3g} (tolerance {ACTION_ATOL}), max relative "
            f"real-unit diff {result['max_rel_real_diff']:.3g} (tolerance {REAL_RTOL}); "
            f"worst row {i}: graph {exported[i].tolist()} vs model {reference[i].tolist()}")
    return result
