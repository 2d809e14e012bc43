"""A frozen policy: ``policy.onnx`` + its manifest behind SB3's ``predict()``.

The graph maps the env's raw observation (float32, (batch, F)) to the deterministic action
in [-1, 1]: the checkpoint's observation normalisation, the policy network's mean action and
SB3's clipping are all inside it. Only onnxruntime runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from agents.serving.errors import ServingError
from agents.serving.manifest import INPUT_NAME, OUTPUT_NAME, load_manifest
from envs.actions import action_dim
from envs.config import ConfigError, ScenarioConfig, from_dict


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
        self.manifest = load_manifest(self.path)
        try:
            self.config: ScenarioConfig = from_dict(self.manifest["scenario_config"])
        except (ConfigError, TypeError) as exc:
            raise ServingError(f"manifest scenario_config is not a valid scenario ({exc})",
                               self.path.with_name("policy.json")) from None
        self.session = ort_session(self.path, threads)
        self.n_features = len(self.manifest["feature_names"])
        self.action_dim = int(self.manifest["action_space"]["shape"][0])
        self._check_graph()
        source = self.manifest["source"]
        self.name = f"{source.get('run_name', 'policy')}:{source.get('checkpoint', '?')}"
        self.acts_while_learning = bool(self.manifest.get("acts_while_learning", False))

    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        where = self.path
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
        if outputs[0].shape[-1] != self.action_dim:
            raise ServingError(f"model returns {outputs[0].shape[-1]} action components, the "
                               f"manifest's action space has {self.action_dim}", where)

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Actions in [-1, 1] for raw observations (n, F) or (F,) (SB3's signature)."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs.reshape(-1, obs.shape[-1])
        actions = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return (actions[0] if single else actions), state
