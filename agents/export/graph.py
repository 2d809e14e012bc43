"""The checkpoint as one frozen ONNX graph: raw observation -> deterministic action.

The graph normalises with the checkpoint's statistics (in float64, as ``VecNormalize``
does), runs the policy network's mean action and clips to [-1, 1], as SB3's ``predict``
does for a Box action space; the batch axis is dynamic. :func:`embed_manifest` then copies
the manifest's fields into the file's metadata, so the file's sha256 covers them
(:func:`agents.serving.manifest.check_embedded`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.export.checkpoint import LoadedCheckpoint
from agents.policies.ppo import TrainedPolicy
from agents.serving.manifest import EMBEDDED_KEY, INPUT_NAME, OUTPUT_NAME, embedded_text


class FrozenPolicy(torch.nn.Module):
    """Raw observation -> deterministic action in [-1, 1] (what gets exported; anchored:
    the anchored features -> the residual)."""

    def __init__(self, trained: TrainedPolicy):
        super().__init__()
        self.policy = trained.model.policy
        self.register_buffer("obs_mean", torch.as_tensor(trained.obs_mean, dtype=torch.float64))
        self.register_buffer("obs_std", torch.as_tensor(
            np.sqrt(trained.obs_var + trained.epsilon), dtype=torch.float64))
        self.clip_obs = trained.clip_obs

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        x = (observation.to(torch.float64) - self.obs_mean) / self.obs_std
        x = torch.clamp(x, -self.clip_obs, self.clip_obs).to(torch.float32)
        features = self.policy.extract_features(x, self.policy.pi_features_extractor)
        latent = self.policy.mlp_extractor.forward_actor(features)
        return torch.clamp(self.policy.action_net(latent), -1.0, 1.0)


def write_onnx(ck: LoadedCheckpoint, path: Path) -> None:
    """Export :class:`FrozenPolicy` with a dynamic batch axis to one self-contained file."""
    module = FrozenPolicy(ck.policy).eval()
    example = torch.zeros((2, len(ck.input_names)), dtype=torch.float32)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations
        torch.onnx.export(module, (example,), str(path), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_shapes=({0: torch.export.Dim("batch")},),
                          dynamo=True, external_data=False, verbose=False)


def embed_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Store the manifest's fields (all but ``onnx_sha256``) in the graph's metadata under
    :data:`agents.serving.manifest.EMBEDDED_KEY`, rewriting ``path`` (the computation is
    unchanged; the file's sha256 is taken after this)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != EMBEDDED_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = EMBEDDED_KEY, embedded_text(manifest)
    onnx.save(model, str(path))
