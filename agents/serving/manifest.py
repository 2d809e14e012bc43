"""The exported policy's manifest (``export/policy.json``) and its verification.

The manifest (contracts, "Exported policy") holds the feature names in order, the action
space and bounds, the scenario and its config, the normalisation constants baked into the
graph, ``history_days_required``, the env version, package versions, the sha256 of
``policy.onnx``, and the run and checkpoint it came from. Any mismatch between manifest,
model and this code is a :class:`ServingError` (the CLI exits 2).

**Integrity** (format 2). Export copies every field of the manifest but ``onnx_sha256``
into the ONNX file's metadata (:data:`EMBEDDED_KEY`, canonical JSON), so the sha256 of
``policy.onnx`` covers them; serving compares the manifest with that copy
(:func:`check_embedded`) and names the first field that differs;
:class:`agents.serving.onnx_policy.OnnxPolicy` also recomputes ``scenario_hash`` from
``scenario_config``. An edited ``policy.json`` (a margin, a step size,
an anchor) is therefore refused. This catches accidents and naive edits, not a forger: who
rewrites the ONNX metadata, then both hashes, is not detected (nothing here is signed).
Before any of that, :func:`check_schema` checks each field's type, so a malformed manifest
is a named error, not a traceback.

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
from collections.abc import Mapping
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
MANIFEST_VERSION = 2  # 2: the manifest's fields are embedded in the graph and checked
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
EMBEDDED_KEY = "qianchuan_rl.manifest"  # ONNX metadata_props key: the manifest's fields
UNEMBEDDED_FIELDS = ("onnx_sha256",)  # not copied into the graph: it is the graph's hash


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


def read_manifest(onnx_path: str | Path) -> dict[str, Any]:
    """Read the manifest beside ``onnx_path``, check its schema and the model's sha256.

    :raises ServingError: missing or unreadable manifest, another format or version, a field
        of the wrong type (:func:`check_schema`), or a different sha256.
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
    version = manifest["format_version"]
    if version != MANIFEST_VERSION or isinstance(version, bool):
        why = (" (format 1 predates the integrity check: re-export the run with "
               "scripts/export.py)" if version == 1 else "")
        raise ServingError(f"manifest format_version {_short(version)}; this code reads "
                           f"{MANIFEST_VERSION}{why}", path)
    check_schema(manifest, path)
    if manifest["onnx_sha256"] != (actual := file_sha256(onnx_path)):
        raise ServingError(f"manifest does not match the model: onnx_sha256 is "
                           f"{_short(manifest['onnx_sha256'])}, sha256 of {onnx_path.name} is "
                           f"{_short(actual)}", path)
    return manifest


def check_against_code(manifest: dict[str, Any], path: Path) -> None:
    """The manifest's feature set, history length, env version and anchored mapping are this
    code's.

    :raises ServingError: a different feature set, history length or env version; an
        anchored manifest without anchors, with a malformed one or with another mapping.
    """
    anchored = anchor_kind(manifest, path) != "none"
    features = list(feature_names_of(_whole_site(manifest)))
    if anchored:
        missing = [k for k in ANCHORED_KEYS if k not in manifest]
        if missing:
            raise ServingError(f"manifest of an anchored policy lacks {', '.join(missing)}",
                               path)
        features += ANCHOR_FEATURES
    checks = (
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


# ------------------------------------------------------------------------------ schema
def _list_of(kind: type, what: str):
    def check(value: Any) -> str | None:
        ok = isinstance(value, list) and all(
            isinstance(x, kind) and not isinstance(x, bool) for x in value)
        return None if ok else f"a list of {what}"
    return check


def _of_type(kind: type | tuple[type, ...], what: str):
    def check(value: Any) -> str | None:
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        return None if ok else what
    return check


# field -> its check (None when the value is right, else what it must be); the anchored
# fields (anchor, anchors, residual_names, anchored_mapping) have their own checks.
SCHEMA = {
    "format_version": _of_type(int, "a whole number"),
    "onnx_file": _of_type(str, "a file name"),
    "onnx_sha256": _of_type(str, "a hex sha256"),
    "feature_names": _list_of(str, "names"),
    "action_space": _of_type(dict, "an object"),
    "action_space.shape": _list_of(int, "whole numbers"),
    "scenario": _of_type(str, "a scenario name"),
    "scenario_hash": _of_type(str, "a hash (text)"),
    "scenario_config": _of_type(dict, "an object (scenario field -> value)"),
    "normalisation": _of_type(dict, "an object"),
    "history_days_required": _of_type(int, "a whole number of days"),
    "env_id": _of_type(str, "an env id"),
    "env_version": _of_type(int, "a whole number"),
    "package_versions": _of_type(dict, "an object (package -> version)"),
    "source": _of_type(dict, "an object (run_name, checkpoint, ...)"),
    "source.run_name": _of_type(str, "a run name"),
    "source.checkpoint": _of_type(str, "a checkpoint name"),
    "input": _of_type(dict, "an object"),
    "output": _of_type(dict, "an object"),
    "acts_while_learning": _of_type(bool, "true or false"),
}
OPTIONAL_FIELDS = ("source.run_name", "source.checkpoint", "acts_while_learning")


def check_schema(manifest: dict[str, Any], path: str | Path | None = None) -> None:
    """Each field of :data:`SCHEMA` has its type (``a.b``: field ``b`` of object ``a``);
    ``action_space.shape`` is one positive whole number.

    :raises ServingError: naming the field, what it must be and what it is.
    """
    for name, check in SCHEMA.items():
        parent, _, child = name.rpartition(".")
        holder = manifest[parent] if parent else manifest
        if not isinstance(holder, dict) or child not in holder:
            if name in OPTIONAL_FIELDS or not isinstance(holder, dict):
                continue
            raise ServingError(f"manifest lacks {name}", path)
        must = check(holder[child])
        if must is not None:
            raise ServingError(f"manifest field {name} must be {must}, got "
                               f"{_short(holder[child])}", path)
    shape = manifest["action_space"]["shape"]
    if len(shape) != 1 or shape[0] < 1:
        raise ServingError(f"manifest field action_space.shape must be [n] with n >= 1, got "
                           f"{_short(shape)}", path)


# --------------------------------------------------------------------------- integrity
def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces (what the graph embeds)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def embedded_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's fields the graph embeds: all but :data:`UNEMBEDDED_FIELDS`."""
    return {k: v for k, v in manifest.items() if k not in UNEMBEDDED_FIELDS}


def embedded_text(manifest: dict[str, Any]) -> str:
    """The value export stores under :data:`EMBEDDED_KEY` in the graph's metadata."""
    return canonical_json(embedded_fields(manifest))


def check_embedded(manifest: dict[str, Any], metadata: Mapping[str, str],
                   path: str | Path | None = None) -> None:
    """The manifest's fields equal the copy embedded in the graph (whose bytes the checked
    ``onnx_sha256`` covers).

    :param metadata: the graph's custom metadata (onnxruntime's ``custom_metadata_map``).
    :raises ServingError: no embedded copy, or the first field that differs, by its path
        (``scenario_config.margin``).
    """
    text = metadata.get(EMBEDDED_KEY)
    if text is None:
        raise ServingError(f"the policy file has no embedded manifest ({EMBEDDED_KEY}) to "
                           "check policy.json against; re-export the run", path)
    try:
        embedded = json.loads(text)
    except json.JSONDecodeError:
        raise ServingError(f"the policy file's embedded manifest ({EMBEDDED_KEY}) is not "
                           "JSON; re-export the run", path) from None
    where = _first_difference(embedded, embedded_fields(manifest), "")
    if where is not None:
        raise ServingError(f"manifest field {where} was edited after export: it differs "
                           "from the copy embedded in policy.onnx (covered by onnx_sha256). "
                           "Re-export the run rather than editing policy.json", path)


def _first_difference(expected: Any, actual: Any, where: str) -> str | None:
    """The path of the first place ``actual`` differs from ``expected`` (None: equal)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            inner = f"{where}.{key}" if where else str(key)
            if key not in expected or key not in actual:
                return inner
            found = _first_difference(expected[key], actual[key], inner)
            if found is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            found = _first_difference(a, b, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return None if canonical_json(expected) == canonical_json(actual) else (where or "(root)")


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
