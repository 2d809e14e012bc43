"""Export a run's checkpoint as one frozen ONNX graph plus its manifest, with a parity check.

``runs/<run>/export/policy.onnx`` maps the env's raw observation (float32, dynamic batch
axis) to the deterministic action in [-1, 1], as ``model.predict`` computes it on a
``VecNormalize``-d observation:

1. normalise with the checkpoint's statistics, in float64 as ``VecNormalize`` does:
   ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, then float32;
2. the policy network's mean action (the deterministic action of a Gaussian policy);
3. clip to [-1, 1], as SB3's ``predict`` does for a Box action space.

``policy.json`` is the manifest of the contracts (:mod:`agents.serving.manifest`); its
fields (all but ``onnx_sha256``) are also embedded in the graph's metadata, so the graph's
sha256 covers them and serving refuses an edited manifest. Every
export checks parity against ``model.predict`` on recorded observations (the policy's own
episodes and random-action episodes on report seeds): the [-1, 1] action within
:data:`ACTION_ATOL` absolute, the settings in real units (target, budget, plan shares)
within :data:`REAL_RTOL` relative. A failure raises :class:`ExportError` and replaces
nothing in ``export/``.

An **anchored** run (``env.anchor: static``, :mod:`agents.policies.anchored`) exports the same way,
its graph mapping the network's input, the env's observation then the anchor features
(:func:`envs.anchored.anchored_features`, F + 6 wide), to the residual in [-1, 1]; serving
maps the residual with :func:`envs.anchored.anchored_action`. Its manifest says so
(``"anchor": "static"``) and holds the residuals' names, the mapping's constants and the
anchors it may be served with: every named scenario's tuned ``static`` settings for the
run's objective. Parity is checked on the anchored inputs of the policy's own episodes and
of random-residual ones: the residuals against ``model.predict``, and the settings in real
units through :func:`envs.anchored.anchored_action` against
:class:`agents.policies.anchored.AnchoredPolicy`.

One job a module: :mod:`agents.export.checkpoint` loads and checks the checkpoint,
:mod:`agents.export.graph` builds the graph, :mod:`agents.export.parity` records inputs and
checks parity, :mod:`agents.export.manifest` writes the manifest; :func:`export_run` here
runs them in order and replaces the export folder's files only when all pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agents.export.checkpoint import load_checkpoint
from agents.export.errors import ExportError
from agents.export.graph import embed_manifest, write_onnx
from agents.export.manifest import anchored_manifest, build_manifest
from agents.export.parity import (
    ACTION_ATOL,
    REAL_RTOL,
    check_anchored_parity,
    check_parity,
    record_anchored_inputs,
    record_observations,
)
from agents.run_folder import write_json_atomic
from agents.serving.errors import ServingError
from agents.serving.manifest import MANIFEST_NAME, ONNX_NAME, file_sha256
from agents.serving.onnx_policy import OnnxPolicy

EXPORT_DIR = "export"


def export_run(run: str | Path, checkpoint: str = "best", out_dir: str | Path | None = None,
               command: str | None = None) -> Path:
    """Export a run's checkpoint to ``<run>/export/`` (or ``out_dir``) and return the folder.

    :raises ExportError: no such run/checkpoint, an unsupported policy, or parity failed
        (then nothing in the export folder is replaced).
    """
    ck = load_checkpoint(run, checkpoint)
    out = Path(out_dir) if out_dir is not None else ck.policy.run_dir / EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ONNX_NAME}.tmp-{os.getpid()}"
    try:
        write_onnx(ck, tmp)
        if ck.anchored:
            parity = check_anchored_parity(ck, tmp, *record_anchored_inputs(ck))
            manifest = anchored_manifest(build_manifest(ck, parity, command), ck)
        else:
            parity = check_parity(ck, tmp, record_observations(ck))
            manifest = build_manifest(ck, parity, command)
        embed_manifest(tmp, manifest)  # the graph's sha256 now covers the manifest's fields
        manifest["onnx_sha256"] = file_sha256(tmp)
        os.replace(tmp, out / ONNX_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomic(out / MANIFEST_NAME, manifest)
    try:
        OnnxPolicy(out / ONNX_NAME)  # what recommend will load: verify it end to end
    except ServingError as exc:
        raise ExportError(f"the exported policy does not load: {exc}") from None
    return out


def describe_export(out: Path) -> str:
    """A short summary of an export (for the command line)."""
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    p, src = manifest["parity"], manifest["source"]
    anchored = manifest.get("anchor", "none") != "none"
    what = "residual" if anchored else "action"
    text = (f"exported {src['run_name']}:{src['checkpoint']} -> {out / ONNX_NAME} "
            f"(+ {MANIFEST_NAME})\nparity on {p['observations']} observations: max |{what} "
            f"diff| {p['max_abs_action_diff']:.2e} (<= {ACTION_ATOL:g}), max relative "
            f"real-unit diff {p['max_rel_real_diff']:.2e} (<= {REAL_RTOL:g})")
    if anchored:
        text += (f"\nanchored on {manifest['anchor']}'s settings; anchors for: "
                 f"{', '.join(manifest['anchors'])}")
    return text
