"""The one YAML loader of the presets: ``yaml.safe_load``'s, refusing a key given twice and
a document whose aliases (``*name``) expand it beyond :data:`MAX_EXPANDED_VALUES` values.

Imported by :func:`envs.presets.read_yaml_mapping` when a file is read, so code that reads
no preset (serving an exported policy) never loads PyYAML.
"""

from __future__ import annotations

from typing import Any

import yaml

from envs.excerpt import excerpt, key_text

# The most values (scalars, lists and mappings, counted with aliases expanded) a YAML file
# may hold: the largest preset holds a few hundred; a 300-byte alias bomb expands to millions.
MAX_EXPANDED_VALUES = 100_000


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, again_line: int) -> None:
        super().__init__(f"key {excerpt(key)} is given twice (lines {first_line} and {again_line})")


class PresetLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a mapping that gives a key twice (the safe loader
    keeps the last one silently; merge keys, ``<<``, may still be overridden) and a document
    that aliases expand beyond :data:`MAX_EXPANDED_VALUES` values (an alias bomb: a few
    hundred bytes that nest lists of lists nine wide and many deep)."""

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

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)  # before anything is built: an alias bomb stays a small graph
        return super().construct_document(node)


class TooLarge(yaml.YAMLError):
    """A document that aliases expand beyond :data:`MAX_EXPANDED_VALUES`, or that holds
    itself."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases (``*name``) expand it beyond
    :data:`MAX_EXPANDED_VALUES` values, or make it hold itself (``&a [*a]``). An alias is the
    same node again, so sizes are counted once per distinct node (linear in the file)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise TooLarge(f"{_where(root, node)[0]}: an alias (*name) inside its own anchor "
                            "(&name) makes the value hold itself")
        open_nodes.add(key)
        sizes[key] = 1 + sum(size(child) for child in _children(node))
        open_nodes.discard(key)
        return sizes[key]

    if size(root) > MAX_EXPANDED_VALUES:
        where, node = _where(root, None, sizes)
        raise TooLarge(f"{where}: aliases (*name) expand it to {sizes[id(node)]:,} values, "
                        f"more than the {MAX_EXPANDED_VALUES:,} a preset may hold")


def _where(root: yaml.Node, target: yaml.Node | None, sizes: dict[int, int] | None = None
           ) -> tuple[str, yaml.Node]:
    """The dotted key, through mappings from ``root``, of ``target`` (found depth first), or
    with ``sizes`` of the largest value at each level ("the document" at the top), and the
    node it names."""
    path: list[str] = []
    node = root
    while isinstance(node, yaml.MappingNode) and node.value:
        if sizes is not None:
            key_node, node = max(node.value, key=lambda pair: sizes.get(id(pair[1]), 0))
        else:
            found = next(((k, v) for k, v in node.value if _reaches(v, target, set())), None)
            if found is None:
                break
            key_node, node = found
        path.append(key_text(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?")
        if node is target:
            break
    return ".".join(path) or "the document", node


def _reaches(node: yaml.Node, target: yaml.Node | None, seen: set[int]) -> bool:
    if node is target:
        return True
    if id(node) in seen:
        return False
    seen.add(id(node))
    return any(_reaches(child, target, seen) for child in _children(node))


def load_yaml(text: str) -> Any:
    """The YAML document in ``text``, read with :class:`PresetLoader` (never an unsafe
    loader: a config cannot run code).

    :raises DuplicateKey: a mapping gives a key twice.
    :raises TooLarge: aliases expand it beyond :data:`MAX_EXPANDED_VALUES` values, or make a
        value hold itself.
    :raises yaml.YAMLError: not valid YAML.
    """
    return yaml.load(text, Loader=PresetLoader)
