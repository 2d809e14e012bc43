"""A frozen policy: ``policy.onnx`` + its manifest behind SB3's ``predict()``.

The graph maps the env's raw observation (float32, (batch, F)) to the deterministic action
in [-1, 1]: the checkpoint's observation normalisation, the policy network's mean action and
SB3's clipping are all inside it. Only onnxruntime runs it.

An anchored policy's graph maps the env's observation and the anchor features
(:func:`envs.anchored.anchored_features`) to a residual in [-1, 1], which
:func:`envs.anchored.anchored_action` maps to the env's action on the anchor chosen with
:meth:`OnnxPolicy.select_anchor`, as :class:`agents.policies.anchored.AnchoredPolicy` does in
the env: it needs the dashboard first (:meth:`OnnxPolicy.see_dashboard`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from agents.serving.errors import ServingError
from agents.serving.manifest import (
    INPUT_NAME,
    MANIFEST_NAME,
    OUTPUT_NAME,
    anchor_kind,
    check_against_code,
    check_embedded,
    manifest_anchors,
    read_manifest,
)
from envs.actions import action_dim
from envs.anchored import StaticSettings, anchored_action, anchored_features, residual_names
from envs.config import ConfigError, ScenarioConfig, from_dict, load_scenario


def ort_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session using ``threads`` threads (1: one core, no thread pool)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ServingError(f"onnxruntime cannot load the model ({exc})", path) from None


class OnnxPolicy:
    """An exported policy, checked against its manifest on load.

    :param path: ``runs/<run>/export/policy.onnx`` (``policy.json`` beside it).
    :param threads: onnxruntime intra-op threads.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        manifest_path = self.path.with_name(MANIFEST_NAME)
        self.manifest = read_manifest(self.path)  # schema, format version, sha256
        check_against_code(self.manifest, manifest_path)
        try:
            self.config: ScenarioConfig = from_dict(self.manifest["scenario_config"])
        except (ConfigError, TypeError, ValueError) as exc:
            raise ServingError(f"manifest scenario_config is not a valid scenario ({exc})",
                               manifest_path) from None
        self.trained_config = self.config
        self.anchor_kind = anchor_kind(self.manifest)
        self.anchors: dict[str, StaticSettings] = (
            manifest_anchors(self.manifest, manifest_path) if self.anchored else {})
        self.anchor_name: str | None = None
        self.anchor: StaticSettings | None = None
        self.residual: np.ndarray | None = None  # the last residuals (anchored)
        self._history: np.ndarray | None = None
        self._launch: np.ndarray | None = None
        self.session = ort_session(self.path, threads)
        self.n_features = len(self.manifest["feature_names"])
        self.action_dim = int(self.manifest["action_space"]["shape"][0])
        self._check_graph()
        # every field the answer depends on is the one exported (the graph's embedded copy)
        check_embedded(self.manifest, self.session.get_modelmeta().custom_metadata_map,
                       manifest_path)
        if self.config.hash() != self.manifest["scenario_hash"]:
            raise ServingError(f"manifest field scenario_hash is "
                               f"{self.manifest['scenario_hash']!r}, the hash of its "
                               f"scenario_config is {self.config.hash()!r}", manifest_path)
        source = self.manifest["source"]
        self.name = f"{source.get('run_name', 'policy')}:{source.get('checkpoint', '?')}"
        self.acts_while_learning = bool(self.manifest.get("acts_while_learning", False))
        if self.anchored and self.manifest["scenario"] in self.anchors:
            self.select_anchor(None)  # the trained scenario's, until another is selected

    @property
    def anchored(self) -> bool:
        """The graph outputs residuals on an anchor (:mod:`envs.anchored`)."""
        return self.anchor_kind != "none"

    @property
    def needs_dashboard(self) -> bool:
        """An anchored policy reads the dashboard history and the launch budget."""
        return self.anchored

    @property
    def output_dim(self) -> int:
        """The graph's output width: the action's, or an anchored policy's residual's."""
        return len(self.manifest["residual_names"]) if self.anchored else self.action_dim

    def select_anchor(self, scenario: str | None,
                      account: ScenarioConfig | None = None) -> None:
        """Play an anchored policy on ``scenario``'s anchor (None: the manifest's scenario):
        its settings from the manifest, its config (break-even, launch shares, the operator's
        step rules) the manifest's for the trained scenario, else the named preset's, as
        :meth:`agents.policies.ppo.TrainedPolicy.playing` plays another scenario.

        :param account: play the anchor in this config instead (a calibrated account's,
            ``recommend --fit``), with the policy's objective and the full action space.
        :raises ServingError: no anchor for ``scenario`` (naming those there are), or a
            scenario whose features differ from the graph's.
        """
        if not self.anchored:
            return
        where = self.path.with_name(MANIFEST_NAME)
        trained = self.manifest["scenario"]
        name = trained if scenario is None else scenario
        if name not in self.anchors:
            raise ServingError(f"--scenario {name!r}: the anchored policy has no anchor for "
                               f"it; its anchors: {', '.join(sorted(self.anchors))}", where)
        config, what = self.trained_config, f"--scenario {name!r}"
        try:
            if account is not None:
                what = f"the account's scenario {account.name!r}"
                config = account.replace(objective=config.objective, action_space="full")
            elif name != trained:
                config = load_scenario(name, objective=config.objective, action_space="full")
        except ConfigError as exc:
            raise ServingError(f"{what}: {exc}") from None
        if config.whole_site_enabled != self.trained_config.whole_site_enabled:
            raise ServingError(f"{what}: its features differ from the policy's "
                               f"(whole_site_enabled {config.whole_site_enabled})", where)
        self.config, self.anchor_name, self.anchor = config, name, self.anchors[name]

    def see_dashboard(self, history: np.ndarray, launch_budget_cny: np.ndarray) -> None:
        """The accounts' dashboard (n, days, :data:`envs.history.COLUMNS`; the last row
        yesterday) and their plans' launch budgets (n,), for the next :meth:`predict`."""
        self._history = np.asarray(history, dtype=np.float64)
        self._launch = np.asarray(launch_budget_cny, dtype=np.float64)

    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        where = self.path
        manifest_path = self.path.with_name(MANIFEST_NAME)
        if self.anchored:
            names = list(residual_names(self.config))
            if self.manifest["residual_names"] != names:
                raise ServingError(f"manifest residual_names {self.manifest['residual_names']}"
                                   f" are not its scenario's {names} (envs/anchored.py)",
                                   manifest_path)
            if self.config.action_space != "full":
                raise ServingError("an anchored policy acts in the full action space; the "
                                   f"manifest's scenario has {self.config.action_space!r}",
                                   manifest_path)
        if [i.name for i in inputs] != [INPUT_NAME] or outputs[0].name != OUTPUT_NAME:
            raise ServingError(f"graph inputs/outputs {[i.name for i in inputs]} -> "
                               f"{[o.name for o in outputs]}, expected [{INPUT_NAME!r}] -> "
                               f"[{OUTPUT_NAME!r}]", where)
        if inputs[0].shape[-1] != self.n_features:
            raise ServingError(f"model takes {inputs[0].shape[-1]} features, the manifest "
                               f"lists {self.n_features}", where)
        if action_dim(self.config) != self.action_dim:
            raise ServingError(f"manifest action space has {self.action_dim} components, its "
                               f"scenario's {self.config.action_space!r} space has "
                               f"{action_dim(self.config)}",
                               self.path.with_name("policy.json"))
        if outputs[0].shape[-1] != self.output_dim:
            what = "residual" if self.anchored else "action"
            raise ServingError(f"model returns {outputs[0].shape[-1]} {what} components, the "
                               f"manifest's {what} has {self.output_dim}", where)

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Actions in [-1, 1] for raw observations (n, F) or (F,) (SB3's signature); an
        anchored policy's, through :func:`envs.anchored.anchored_action` on the dashboard
        last seen (:attr:`residual` then holds the graph's output)."""
        if self.anchored:
            return self._anchored_predict(observation), state
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs.reshape(-1, obs.shape[-1])
        actions = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return (actions[0] if single else actions), state

    def _anchored_predict(self, observation: np.ndarray) -> np.ndarray:
        if self.anchor is None:
            raise ServingError(f"the anchored policy has no anchor for its scenario "
                               f"{self.manifest['scenario']!r}: choose one with --scenario "
                               f"({', '.join(sorted(self.anchors))})",
                               self.path.with_name(MANIFEST_NAME))
        if self._history is None or self._launch is None:
            raise RuntimeError("an anchored policy needs the dashboard: see_dashboard() first")
        single = np.ndim(observation) == 1
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float64))
        if self._history.shape[0] != obs.shape[0]:
            raise RuntimeError(f"dashboard of {self._history.shape[0]} accounts for "
                               f"{obs.shape[0]} observations")
        x = anchored_features(self.config, self.anchor, obs, self._history, self._launch)
        self.residual = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        action = anchored_action(self.config, self.anchor, self.residual, obs, self._history,
                                 self._launch)
        return action[0] if single else action
