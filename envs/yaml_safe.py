"""The one YAML loader of the presets: ``yaml.safe_load``'s, refusing a key given twice.

Imported by :func:`envs.presets.read_yaml_mapping` when a file is read, so code that reads
no preset (serving an exported policy) never loads PyYAML.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(yaml.YAMLError):
    """A YAML mapping gives a key twice."""

    def __init__(self, key: Any, first_line: int, again_line: int) -> None:
        super().__init__(f"key {key!r} is given twice (lines {first_line} and {again_line})")


class PresetLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a mapping that gives a key twice (the safe loader
    keeps the last one silently). Merge keys (``<<``) may still be overridden."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = lines.get(key)
                except TypeError:  # unhashable: the safe loader says so below
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKey(key, first, line)
                lines[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The YAML document in ``text``, read with :class:`PresetLoader` (never an unsafe
    loader: a config cannot run code).

    :raises DuplicateKey: a mapping gives a key twice.
    :raises yaml.YAMLError: not valid YAML.
    """
    return yaml.load(text, Loader=PresetLoader)
