"""Presets: YAML files read safely into typed configs, one reader for every kind of config.

Scenario presets (:mod:`envs.config`), PPO presets (:mod:`agents.training.config`), tuning
search spaces (:mod:`agents.experiments.space`) and the tuned baselines
(:mod:`agents.policies.baseline_store`) all read their YAML here:

- :func:`read_yaml_mapping`: one file's top-level mapping, with ``yaml.safe_load``'s loader
  (never an unsafe one: a config cannot run code); a key given twice, an empty or binary file,
  and aliases that expand the file beyond :data:`envs.yaml_safe.MAX_EXPANDED_VALUES` values
  are errors, not silent overrides, defaults or hangs;
- :func:`preset_path`: a preset by name in its folder, or by path;
- :func:`read_preset`: a preset with its ``base:`` chain resolved (each file over its base),
  a loop in the chain an error;
- the typed-validation helpers: :func:`coerce_value` (a scalar or a tuple against its type),
  :func:`build_dataclass` (nested frozen dataclasses from plain data, naming the dotted key),
  :func:`check_choice`, :func:`check_positive`, :func:`check_finite` (every float
  :func:`coerce_value` reads: NaN and inf are refused), :func:`require_mapping`.

Every error is a :class:`ConfigError` naming the file or the key, and quoting a value only
through :func:`envs.excerpt.excerpt` (a bounded excerpt, however large the value). This module
imports nothing of the simulator (the standard library; PyYAML only once a file is read,
through :mod:`envs.yaml_safe`), so serving may use it without loading a YAML parser.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, get_args, get_origin, get_type_hints

from envs.excerpt import excerpt, key_text
from envs.paths import missing_folder_hint

Data = dict[str, Any]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def read_yaml_mapping(path: Path) -> Data:
    """A YAML file's top-level mapping, read safely; a clear :class:`ConfigError` otherwise:
    not UTF-8 text, not valid YAML, empty (no keys: nothing would be configured), a key given
    twice, aliases that expand beyond :data:`envs.yaml_safe.MAX_EXPANDED_VALUES` values or
    make a value hold itself, nested too deeply, unreadable, or not a mapping."""
    import yaml  # only here: serving reads no preset file on its default path

    from envs.yaml_safe import DuplicateKey, TooLarge, load_yaml

    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (DuplicateKey, TooLarge) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML text file (byte {exc.start} is not UTF-8)"
                          ) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a preset") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if data is None:
        raise ConfigError(f"{path}: empty (no keys): a preset names at least one key; to use "
                          "another preset as it is, write base: <its name>")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got "
                          f"{type(data).__name__}")
    return data


def preset_path(name_or_path: str | Path, folder: Path, what: str) -> Path:
    """The YAML file of a preset given by name (``<folder>/<name>.yaml``) or by path.

    :param what: what a preset is, for the error (e.g. "scenario").
    :raises ConfigError: no such file; the message lists the presets in ``folder``.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        if not folder.is_dir():
            raise ConfigError(f"unknown {what} {str(name_or_path)!r}: no such file, and "
                              f"{missing_folder_hint(folder)}")
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"unknown {what} {str(name_or_path)!r}: no such file, and not one "
                          f"in {folder.parent.name}/{folder.name}/; known: "
                          f"{', '.join(known) or 'none'}")
    return path


def merge_flat(base: Mapping[str, Any], top: Mapping[str, Any]) -> Data:
    """``top``'s keys over ``base``'s (a scenario preset over its base)."""
    return {**base, **top}


def merge_sections(base: Mapping[str, Any], top: Mapping[str, Any]) -> Data:
    """``top`` over ``base``, section by section: nested mappings merge key by key (a PPO
    preset over its base; ``env.overrides`` too)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_sections(dict(out[key]), value)
        else:
            out[key] = value
    return out


def read_preset(name_or_path: str | Path, folder: Path, what: str, *,
                merge: Callable[[Data, Data], Data] = merge_flat,
                default_base: str | None = None,
                prepare: Callable[[Path, Data], Data] | None = None) -> Data:
    """A preset's data with its ``base:`` chain resolved: each file merged over its base.

    :param name_or_path: a preset in ``folder`` by name, or a YAML path.
    :param what: what a preset is, for errors ("scenario", "PPO config").
    :param merge: how a file's data goes over its base's (:func:`merge_flat`,
        :func:`merge_sections`).
    :param default_base: the base of a file that names none (every one but that preset
        itself); ``None``: a file without ``base:`` stands alone.
    :param prepare: applied to each file's data as read (``base`` still in it), e.g. to pop
        documentation keys or migrate old ones.
    :raises ConfigError: an unknown preset, a bad file, a ``base`` that is not a name, or a
        chain that loops.
    """
    return _read_chain(name_or_path, folder, what, merge, default_base, prepare, ())


def _read_chain(name_or_path: str | Path, folder: Path, what: str,
                merge: Callable[[Data, Data], Data], default_base: str | None,
                prepare: Callable[[Path, Data], Data] | None, seen: tuple[str, ...]) -> Data:
    path = preset_path(name_or_path, folder, what)
    where = str(path.resolve())
    if where in seen:
        raise ConfigError(f"{what} {path.stem!r}: 'base' chain loops")
    data = read_yaml_mapping(path)
    if prepare is not None:
        data = prepare(path, data)
    is_root = default_base is None or where == str((folder / f"{default_base}.yaml").resolve())
    base = data.pop("base", None if is_root else default_base)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a preset name, got {excerpt(base)}")
    return merge(_read_chain(base, folder, what, merge, default_base, prepare, seen + (where,)),
                 data)


# ---------------------------------------------------------------------------------------------
def check_positive(key: str, value: float) -> None:
    """``value > 0``, else a :class:`ConfigError` naming ``key``."""
    if not value > 0:
        raise ConfigError(f"{key}: must be > 0, got {excerpt(value)}")


def check_finite(key: str, value: float) -> None:
    """``value`` is a finite number (not NaN, inf or -inf), else a :class:`ConfigError`
    naming ``key``: every float a config reads passes here (:func:`coerce_value`)."""
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        finite = False
    if not finite:
        raise ConfigError(f"{key}: must be a finite number, got {excerpt(value)}")


def check_choice(key: str, value: Any, choices: tuple[Any, ...]) -> None:
    """``value`` is one of ``choices``, else a :class:`ConfigError` naming ``key``."""
    if value not in choices:
        raise ConfigError(f"{key}: {excerpt(value)} is not one of {list(choices)}")


def require_mapping(key: str, value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else a :class:`ConfigError` naming ``key``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping of keys to values, got {excerpt(value)}")
    return value


def coerce_value(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type ``hint`` (bool, int, float, str or a tuple of them);
    ints are accepted for floats, and a float must be finite (:func:`check_finite`). Raises
    :class:`ConfigError` naming ``key``."""
    if get_origin(hint) is tuple:
        (item_type, _) = get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {item_type.__name__}, got "
                              f"{type(value).__name__}")
        return tuple(coerce_value(key, v, item_type) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {excerpt(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {excerpt(value)}")
        check_finite(key, value)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {excerpt(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {excerpt(value)}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover


def coerce_typed(key: str, value: Any, hint: Any) -> Any:
    """:func:`coerce_value`, plus nested dataclasses (sections), optional values (``X |
    None``), one item or a list (``str | tuple[str, ...]``) and free-form mappings."""
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, prefix=f"{key}.")
    origin = get_origin(hint)
    if origin is UnionType:  # X | None, or str | tuple[str, ...] (one item or a list)
        if value is None and NoneType in get_args(hint):
            return None
        inner = [a for a in get_args(hint) if a is not NoneType]
        listed = [a for a in inner if get_origin(a) is tuple]
        if listed and len(inner) > 1:
            inner = listed if isinstance(value, (list, tuple)) else [a for a in inner
                                                                     if a not in listed]
        return coerce_typed(key, value, inner[0])
    if origin is Mapping:
        return dict(require_mapping(key, value))
    return coerce_value(key, value, hint)


def build_dataclass(cls: type, data: Any, prefix: str = "") -> Any:
    """A frozen dataclass (and its nested sections) from plain data, every value checked
    against its field's type; unknown and missing keys are errors naming the dotted key
    (``ppo.n_steps``); fields with a default may be left out."""
    section = prefix.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{section}: expected a mapping of keys to values, got "
                          f"{excerpt(data)}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        shown = ", ".join(prefix + key_text(k) for k in unknown)
        raise ConfigError(f"unknown config key(s): {shown} (known in {section}: "
                          f"{', '.join(names)})")
    optional = {f.name for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING}
    missing = [n for n in names if n not in data and n not in optional]
    if missing:
        raise ConfigError(f"missing config key(s): {', '.join(prefix + k for k in missing)}")
    return cls(**{n: coerce_typed(prefix + n, data[n], hints[n]) for n in names if n in data})
