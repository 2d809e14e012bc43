"""The exported policy's manifest (``export/policy.json``) and its verification.

The manifest (contracts, "Exported policy") holds the feature names in order, the action
space and bounds, the scenario and its config, the normalisation constants baked into the
graph, ``history_days_required``, the env version, package versions, the sha256 of
``policy.onnx``, and the run and checkpoint it came from. Any mismatch between manifest,
model and this code is a :class:`ServingError` (the CLI exits 2).

An **anchored** policy (``"anchor": "static"``; :mod:`envs.anchored`) outputs residuals on
fixed settings: its manifest also holds the residuals' names (``residual_names``), the
mapping's constants (``anchored_mapping``, checked against this code) and the anchors it may
be served with (``anchors``: scenario name -> :func:`envs.anchored.settings_as_data`);
its ``feature_names`` are the env's then :data:`envs.anchored.ANCHOR_FEATURES`. A manifest
without ``anchor`` is a raw policy's (``"none"``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from agents.serving.errors import ServingError
from envs.anchored import (
    ANCHOR_FEATURES,
    BUDGET_SPAN,
    EDIT_CAP,
    SHARE_FLOOR,
    SHARE_LOG_SPAN,
    STATIC_FIELDS,
    STEP_MARGIN,
    TARGET_SPAN,
    StaticSettings,
)
from envs.history import HISTORY_DAYS_REQUIRED, feature_names_of

MANIFEST_FORMAT = "qianchuan-rl/policy-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "policy.json"
ONNX_NAME = "policy.onnx"
INPUT_NAME = "observation"  # float32 (batch, len(feature_names)): the env's raw observation
# (anchored: then the anchor features)
OUTPUT_NAME = "action"  # float32 (batch, action_dim) in [-1, 1] (anchored: the residual)
ANCHOR_KINDS = ("none", "static")  # "anchor": none (raw actions) or static's settings
ANCHOR_FIELDS = STATIC_FIELDS  # an anchor's keys: envs.anchored.settings_as_data's
ANCHORED_KEYS = ("anchors", "residual_names", "anchored_mapping")  # required when anchored
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
        history length or env version; an anchored manifest without anchors, with a
        malformed one or with another mapping than this code's.
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
    anchored = anchor_kind(manifest, path) != "none"
    features = list(feature_names_of(_whole_site(manifest)))
    if anchored:
        missing = [k for k in ANCHORED_KEYS if k not in manifest]
        if missing:
            raise ServingError(f"manifest of an anchored policy lacks {', '.join(missing)}",
                               path)
        features += ANCHOR_FEATURES
    checks = (
        ("onnx_sha256", file_sha256(onnx_path), f"sha256 of {onnx_path.name}"),
        ("feature_names", features,
         "this code's feature set for the manifest's scenario (envs/history.py"
         + (", envs/anchored.py)" if anchored else ")")),
        ("history_days_required", HISTORY_DAYS_REQUIRED, "this code's history length"),
        ("env_version", current_env_version(), "this code's env version"),
    )
    for key, actual, what in checks:
        if manifest[key] != actual:
            raise ServingError(f"manifest does not match the model: {key} is "
                               f"{_short(manifest[key])}, {what} is {_short(actual)}", path)
    if anchored:
        if manifest["anchored_mapping"] != mapping_constants():
            raise ServingError("manifest does not match this code: anchored_mapping is "
                               f"{_short(manifest['anchored_mapping'])}, this code's mapping "
                               f"(envs/anchored.py) is {_short(mapping_constants())}", path)
        names = manifest["residual_names"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ServingError(f"manifest residual_names must be a list of names, got "
                               f"{_short(names)}", path)
        manifest_anchors(manifest, path)
    return manifest


def anchor_kind(manifest: dict[str, Any], path: str | Path | None = None) -> str:
    """The manifest's ``anchor``: ``"none"`` (raw actions, also when absent) or ``"static"``.

    :raises ServingError: another value.
    """
    kind = manifest.get("anchor", "none")
    if not isinstance(kind, str) or kind not in ANCHOR_KINDS:
        raise ServingError(f"manifest anchor is {_short(kind)}; this code serves "
                           f"{' or '.join(repr(k) for k in ANCHOR_KINDS)}", path)
    return kind


def mapping_constants() -> dict[str, Any]:
    """The constants of this code's anchored mapping (:mod:`envs.anchored`), as an anchored
    manifest records them: a policy trained with other spans or caps would be mapped wrongly."""
    return {"step_margin": STEP_MARGIN, "target_span": TARGET_SPAN, "budget_span": BUDGET_SPAN,
            "share_log_span": SHARE_LOG_SPAN, "share_floor": SHARE_FLOOR, "edit_cap": EDIT_CAP}


def manifest_anchors(manifest: dict[str, Any],
                     path: str | Path | None = None) -> dict[str, StaticSettings]:
    """The anchors of an anchored manifest, scenario name -> settings, type-checked.

    :raises ServingError: no anchors, or a malformed one (naming it and the field).
    """
    anchors = manifest.get("anchors")
    if not isinstance(anchors, dict) or not anchors:
        raise ServingError("manifest of an anchored policy has no anchors (scenario name -> "
                           f"{', '.join(ANCHOR_FIELDS)}); re-export the run", path)
    out = {}
    for name, entry in anchors.items():
        where = f"manifest anchors[{name!r}]"
        if not isinstance(entry, dict):
            raise ServingError(f"{where} must be an object with {', '.join(ANCHOR_FIELDS)}, "
                               f"got {_short(entry)}", path)
        missing = [k for k in ANCHOR_FIELDS if k not in entry]
        unknown = sorted(set(entry) - set(ANCHOR_FIELDS))
        if missing or unknown:
            raise ServingError(f"{where}: " + "; ".join(
                part for part in (missing and f"lacks {', '.join(missing)}",
                                  unknown and f"unknown {', '.join(unknown)}") if part), path)
        shares = entry["shares"]
        if not (isinstance(shares, list) and len(shares) in (3, 4)
                and all(_is_number(x) for x in shares)):
            raise ServingError(f"{where}: shares must be a list of 3 or 4 numbers, got "
                               f"{_short(shares)}", path)
        for key in ("target_over_breakeven", "budget_over_launch"):
            if not _is_number(entry[key]):
                raise ServingError(f"{where}: {key} must be a number, got "
                                   f"{_short(entry[key])}", path)
        days = entry["refresh_days"]
        if isinstance(days, bool) or not isinstance(days, int):
            raise ServingError(f"{where}: refresh_days must be a whole number of days, got "
                               f"{_short(days)}", path)
        try:
            out[name] = StaticSettings(float(entry["target_over_breakeven"]),
                                       tuple(float(x) for x in shares),
                                       float(entry["budget_over_launch"]), days)
        except ValueError as exc:
            raise ServingError(f"{where}: {exc}", path) from None
    return out


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _whole_site(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's scenario has the whole-site plan (its features then end with
    ``share_whole_site``, :func:`envs.history.feature_names`)."""
    scenario = manifest.get("scenario_config")
    return isinstance(scenario, dict) and scenario.get("whole_site_enabled") is True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
