"""Writing a document as YAML: PyYAML's safe dumper, fed a node graph built here.

About half of a ``yaml.dump`` is PyYAML's representer: each value goes through ``represent_data``
(an alias check, an MRO lookup, a representer, ``represent_scalar``) in Python, recursively. A
document is almost always made of dict, list, str, int, float, bool and None; for those,
``document_node`` builds the very nodes ``SafeRepresenter`` would (same tags, styles, flow styles
and texts) in one loop, about 2.5 times faster, and the dumper's emitter writes them as before (it
is the other half: libyaml, asking the resolver twice for every scalar, answered by ``yaml_tags``). Any other value is handed to
the dumper's own ``represent_data``. Whenever the loop cannot promise today's result (a document
deeper than ``MAX_FAST_DEPTH``, a tuple or set, or any error while building), the document is
dumped by PyYAML alone, so its output and its failures are exactly ``yaml.dump``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .yaml_tags import resolve_scalar

_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _SEQ, _MAP = (
    _YAML + name for name in ("str", "int", "float", "bool", "null", "seq", "map")
)
_INF = float("inf")
# PyYAML's recursive representer stops a deeper document (or a cycle) with a RecursionError, at
# about 330 levels from a shallow stack; libyaml's serializer, which recurses in C, crashes the
# process far deeper (~100,000). Past this depth the document is left to PyYAML: neither moves.
MAX_FAST_DEPTH = 256
# yaml.dump's options for a document: its own key order, UTF-8 as is, block style, no folding.
DUMP_OPTIONS: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "default_flow_style": False,
                                "width": 1 << 30}


class DocumentDumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Writes every value in full: no ``&id001`` anchors for values that happen to be shared."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode:  # the emitter asks twice for each scalar
            return resolve_scalar(value, implicit)
        return super().resolve(kind, value, implicit)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Multi-line values (keys, certificates) read best as literal blocks.
    return dumper.represent_scalar(_STR, text, style="|" if "\n" in text else None)


DocumentDumper.add_representer(str, _represent_str)


def write_yaml(document: Any, stream: Any) -> None:
    """Write ``document`` to ``stream`` exactly as ``yaml.dump(document, stream,
    Dumper=DocumentDumper, **DUMP_OPTIONS)`` does, in about three quarters of its time."""
    dumper = DocumentDumper(stream, **DUMP_OPTIONS)
    try:
        dumper.open()  # as yaml.dump_all: the stream starts before the document is represented
        try:
            node = document_node(document, dumper.represent_data)
        except Exception:  # PyYAML again, for its own error (or RecursionError) at its own point
            node = None
        if node is None:
            dumper.represent(document)
        else:
            dumper.serialize(node)
        dumper.close()
    finally:
        dumper.dispose()


def document_node(document: Any, represent_data: Callable[[Any], Node]) -> Node | None:
    """The node graph ``DocumentDumper`` would represent ``document`` as, built without recursion;
    ``represent_data`` (the dumper's) represents values of other types. None when PyYAML should
    dump the document itself: deeper than ``MAX_FAST_DEPTH``, or ``represent_data`` made a
    collection (a tuple, a set), whose own depth this loop does not see."""
    top: list[Node] = []
    # Each open collection: its items still to represent, the node list they go to, whether a dict.
    stack: list[tuple[Iterator[Any], list[Any], bool]] = [(iter((document,)), top, False)]
    while stack:
        items, out, is_dict = stack[-1]
        for item in items:
            if is_dict:
                key, value = item
                key_node = _scalar_node(key, represent_data)
                if key_node is None:
                    return None
            else:
                value = item
            kind = type(value)
            if kind is str:
                node: Node | None = ScalarNode(_STR, value, None, None, "|" if "\n" in value else None)
            elif kind is dict or kind is list:
                if len(stack) > MAX_FAST_DEPTH:
                    return None
                children: list[Any] = []
                if kind is dict:
                    node = MappingNode(_MAP, children, None, None, False)
                    stack.append((iter(value.items()), children, True))
                else:
                    node = SequenceNode(_SEQ, children, None, None, False)
                    stack.append((iter(value), children, False))
                out.append((key_node, node) if is_dict else node)
                break  # depth first, as PyYAML goes: the new collection's items come next
            else:
                node = _scalar_node(value, represent_data)
                if node is None:
                    return None
            out.append((key_node, node) if is_dict else node)
        else:
            stack.pop()
    return top[0]


def _scalar_node(value: Any, represent_data: Callable[[Any], Node]) -> Node | None:
    """``SafeRepresenter``'s node for a scalar (see its ``represent_*``), or None for a value
    whose node is a collection."""
    kind = type(value)
    if kind is str:
        return ScalarNode(_STR, value, None, None, "|" if "\n" in value else None)
    if kind is bool:
        return ScalarNode(_BOOL, "true" if value else "false")
    if kind is int:
        return ScalarNode(_INT, str(value))
    if kind is float:
        return ScalarNode(_FLOAT, _float_text(value))
    if value is None:
        return ScalarNode(_NULL, "null")
    node = represent_data(value)
    return node if type(node) is ScalarNode else None


def _float_text(value: float) -> str:
    """``SafeRepresenter.represent_float``'s text: YAML's ``.nan`` and ``.inf``, and an exponent
    always after a ``.0`` (``1e17`` is not a YAML float, ``1.0e17`` is)."""
    if value != value:
        return ".nan"
    if value == _INF:
        return ".inf"
    if value == -_INF:
        return "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text
