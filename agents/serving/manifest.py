"""The exported policy's manifest (``export/policy.json``) and its verification.

The manifest (contracts, "Exported policy") holds the feature names in order, the action
space and bounds, the scenario and its config, the normalisation constants baked into the
graph, ``history_days_required``, the env version, package versions, the sha256 of
``policy.onnx``, and the run and checkpoint it came from. Any mismatch between manifest,
model and this code is a :class:`ServingError` (the CLI exits 2).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agents.serving.errors import ServingError
from envs.history import HISTORY_DAYS_REQUIRED, feature_names_of

MANIFEST_FORMAT = "qianchuan-rl/policy-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "policy.json"
ONNX_NAME = "policy.onnx"
INPUT_NAME = "observation"  # float32 (batch, len(feature_names)): the env's raw observation
OUTPUT_NAME = "action"  # float32 (batch, action_dim) in [-1, 1]
REQUIRED_KEYS = ("format", "format_version", "onnx_file", "onnx_sha256", "feature_names",
                 "action_space", "scenario", "scenario_config", "normalisation",
                 "history_days_required", "env_id", "env_version", "package_versions",
                 "source", "input", "output")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_env_version() -> int:
    """The env version of this code (imports the env module: the market model and SciPy)."""
    from envs.version import ENV_VERSION

    return ENV_VERSION


def load_manifest(onnx_path: str | Path) -> dict[str, Any]:
    """Read the manifest beside ``onnx_path`` and check it against the model and this code.

    :raises ServingError: missing or unreadable manifest, a different sha256, feature set,
        history length or env version.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ServingError("no such policy file", onnx_path)
    path = onnx_path.with_name(MANIFEST_NAME)
    if not path.is_file():
        raise ServingError(f"no manifest {MANIFEST_NAME} beside the policy (export writes "
                           "both)", path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServingError(f"not valid JSON ({exc})", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ServingError(f"not a policy manifest (format {MANIFEST_FORMAT!r} expected)", path)
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ServingError(f"manifest lacks {', '.join(missing)}", path)
    if manifest["format_version"] != MANIFEST_VERSION:
        raise ServingError(f"manifest format_version {manifest['format_version']!r}; this "
                           f"code reads {MANIFEST_VERSION}", path)
    checks = (
        ("onnx_sha256", file_sha256(onnx_path), f"sha256 of {onnx_path.name}"),
        ("feature_names", list(feature_names_of(_whole_site(manifest))),
         "this code's feature set for the manifest's scenario (envs/history.py)"),
        ("history_days_required", HISTORY_DAYS_REQUIRED, "this code's history length"),
        ("env_version", current_env_version(), "this code's env version"),
    )
    for key, actual, what in checks:
        if manifest[key] != actual:
            raise ServingError(f"manifest does not match the model: {key} is "
                               f"{_short(manifest[key])}, {what} is {_short(actual)}", path)
    return manifest


def _whole_site(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's scenario has the whole-site plan (its features then end with
    ``share_whole_site``, :func:`envs.history.feature_names`)."""
    scenario = manifest.get("scenario_config")
    return isinstance(scenario, dict) and scenario.get("whole_site_enabled") is True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
