"""Reading and writing pipeline documents (YAML, and so JSON) within a budget.

A document is built straight from the parser's event stream, and every budget is checked as each
event arrives, before the value it stands for is allocated:

- ``max_bytes``: the text itself;
- ``max_expanded_bytes``: the text of every scalar once aliases are expanded (``*x`` of a 1 MB
  string counts 1 MB each time), and the same bound for the interpolated output;
- ``max_nodes``: scalars and collections, aliases expanded (a "billion laughs" is refused
  however small it is written);
- ``max_depth``: nesting, aliases included (deep nesting would otherwise exhaust the stack);
- ``max_vars``: distinct ``((var))`` placeholders, each of which may cost AWS calls.

Why our own builder and not ``yaml.load``: PyYAML composes the whole node graph first (with a
position object per node, several times the size of the result) and only then constructs it; a
check between the two comes after the large allocation. Scalars are still resolved and built by
PyYAML's own resolver and safe constructors, so values mean exactly what they mean to PyYAML.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ..errors import DocumentError, LimitError
from .limits import (
    DEFAULT_LIMITS,
    MAX_BYTES_FLAG,
    MAX_DEPTH_FLAG,
    MAX_EXPANDED_BYTES_FLAG,
    MAX_NODES_FLAG,
    MAX_SECONDS_FLAG,
    MAX_VARS_FLAG,
    DocumentLimits,
)
from .vars import placeholders, utf8_size
from .yaml_tags import resolve_scalar
from .yaml_writer import write_yaml

try:
    from yaml._yaml import CParser as _Parser  # libyaml's parser, when PyYAML was built with it
except ImportError:  # pragma: no cover
    _Parser = None
_YAML = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE, _VALUE = (_YAML + name for name in ("str", "seq", "map", "merge", "value"))
# The tags a scalar may have: PyYAML's other safe constructors build collections or generators.
_SCALAR_TAGS = frozenset(_YAML + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary"))
_NUMBER_TAGS = frozenset({_YAML + "int", _YAML + "float"})
# Longer numbers are refused: PyYAML builds base-60 ints in quadratic time, and a long int cannot be
# written back in decimal (Python refuses ints of more than 4,300 digits).
MAX_NUMBER_CHARS = 128
# A longer plain scalar is decided without PyYAML's resolver, whose int and float patterns keep a
# backtracking record per repetition (``1:1:1...`` of 10 MB: 0.6 GB and seconds of held GIL). Only
# int, float and timestamp can be that long, and each starts with a sign, a digit or a dot; one that
# has the shape of one of them is refused, any other is a string, as PyYAML would say.
_NUMBERISH = re.compile(r"[-+]?(?:0x[0-9a-fA-F_]*|0o[0-7_]*|0b[01_]*|[0-9.][0-9_:.eE+\-tTzZ \t]*)")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# A JSON text's tokens: strings (possessive, so an unterminated one costs one scan, not one per
# quote), brackets, and runs of anything else (numbers, literals).
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+(")?|[\[{]|[\]}]|[^\s\[\]{},:"]+', re.DOTALL)


@dataclass(frozen=True)
class Parsed:
    """A document as read, and how many values it holds (scalars and collections, aliases
    expanded): with the text's length, a bound of the memory it takes to keep (PyYAML's values
    take 60-75 bytes each, measured with tracemalloc)."""

    value: Any
    nodes: int


def load_document(text: str, limits: DocumentLimits = DEFAULT_LIMITS) -> Any:
    """Parse one YAML document within ``limits``; raises ``LimitError`` past a limit and
    ``DocumentError`` for invalid YAML."""
    return parse_document(text, limits).value


def load_json_document(text: str, limits: DocumentLimits = DEFAULT_LIMITS) -> Any:
    """Parse a JSON document within ``limits``: its structure is measured token by token first,
    so ``json.loads`` only ever builds a document within the budget."""
    return parse_document(text, limits, as_json=True).value


def parse_document(text: str, limits: DocumentLimits = DEFAULT_LIMITS, *, as_json: bool = False) -> Parsed:
    """``load_document`` (or, ``as_json``, ``load_json_document``) with the count of values read."""
    check_size(len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text), limits)
    return _parse_json(text, limits) if as_json else _parse_yaml(text, limits)


def _parse_yaml(text: str, limits: DocumentLimits) -> Parsed:
    builder = _Builder(text, limits)
    try:
        return Parsed(builder.build(), builder.nodes)
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid YAML: {exc}") from None
    except UnicodeEncodeError:
        raise DocumentError("invalid YAML: the text holds characters that are not valid Unicode") from None
    except (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError) as exc:
        # PyYAML's constructors raise plain errors for scalars they resolve but cannot build:
        # an impossible date (2024-13-45), `!!int abc`, `!!timestamp foo`.
        raise DocumentError(f"invalid YAML: cannot construct a value: {exc}") from None


def _parse_json(text: str, limits: DocumentLimits) -> Parsed:
    meter = _Meter(limits)
    for token in _JSON_TOKEN.finditer(text):
        first = token[0][0]
        if first in "]}":
            meter.depth -= 1
            continue
        if first == '"' and token[1] is None:
            raise DocumentError("invalid JSON: a string is not terminated")
        meter.node(len(token[0]), token[0] if first == '"' else None)
        if first in "[{":
            meter.enter(1)
    try:
        document = json.loads(text, parse_constant=_not_json)
    except RecursionError:  # the meter's depth check comes first; this is a second wall
        raise LimitError(_depth_message(limits)) from None
    except ValueError as exc:
        raise DocumentError(f"invalid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and has_lone_surrogates(document):
        raise DocumentError("invalid JSON: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return Parsed(document, meter.nodes)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def check_size(size: int, limits: DocumentLimits) -> None:
    """``LimitError`` when a document of ``size`` bytes is over ``limits.max_bytes``."""
    if size > limits.max_bytes:
        raise LimitError(
            f"document too large: {size:,} bytes, more than {limits.max_bytes:,} bytes ({MAX_BYTES_FLAG})"
        )


def dump_document(document: Any, limits: DocumentLimits | None = None) -> str:
    """YAML text in the document's own key order. With ``limits``, the text written (indentation
    included) may not pass ``max_expanded_bytes``: ``LimitError`` as soon as it would."""
    return encode_document(document, limits).decode("utf-8")


def dump_json_document(document: Any, limits: DocumentLimits | None = None) -> str:
    """JSON text (one line and a newline), within ``limits`` as ``dump_document``; NaN and the
    infinities are not JSON and are refused."""
    return encode_document(document, limits, as_json=True).decode("utf-8")


def encode_document(document: Any, limits: DocumentLimits | None = None, *, as_json: bool = False) -> bytes:
    """``dump_document`` (or, ``as_json``, ``dump_json_document``) as UTF-8, built as UTF-8 from
    the start: one byte per ASCII character while it is written, not four."""
    out = _Output(limits)
    if as_json:
        try:
            for chunk in json.JSONEncoder(ensure_ascii=False, allow_nan=False).iterencode(document):
                out.write(chunk)
        except (ValueError, TypeError) as exc:
            raise DocumentError(f"the document cannot be written as JSON: {exc}") from None
        out.write("\n")
        return out.bytes()
    try:
        write_yaml(document, out)
    except (UnicodeEncodeError, yaml.YAMLError) as exc:
        raise DocumentError(f"the document cannot be written as YAML: {type(exc).__name__}") from None
    return out.bytes()


class _Output:
    """A text stream, kept as UTF-8, that counts what is written against the budget and the clock."""

    def __init__(self, limits: DocumentLimits | None) -> None:
        self._data = bytearray()
        self._left = limits.max_expanded_bytes if limits else None
        self._limits = limits
        self._deadline = time.monotonic() + limits.max_seconds if limits else None

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        if self._left is not None:
            self._left -= len(data)
            if self._left < 0:
                raise LimitError(
                    f"document too large after interpolation: its text would be more than "
                    f"{self._limits.max_expanded_bytes:,} bytes ({MAX_EXPANDED_BYTES_FLAG})"  # type: ignore[union-attr]
                )
            if time.monotonic() > self._deadline:  # type: ignore[operator]
                raise LimitError(_time_message(self._limits))  # type: ignore[arg-type]
        self._data += data

    def bytes(self) -> bytes:
        return bytes(self._data)


def has_lone_surrogates(value: Any) -> bool:
    """True when a string anywhere in ``value`` holds half a UTF-16 pair (JSON can escape one,
    "\\ud800"; no UTF-8 text can hold it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def value_depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar: 0), walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _time_message(limits: DocumentLimits) -> str:
    return f"document took longer than {limits.max_seconds:g}s to handle ({MAX_SECONDS_FLAG})"


def _depth_message(limits: DocumentLimits) -> str:
    return f"document too deep: nested more than {limits.max_depth} levels ({MAX_DEPTH_FLAG})"


class _Meter:
    """Counts nodes, expanded bytes, depth and distinct vars; raises past a limit."""

    def __init__(self, limits: DocumentLimits) -> None:
        self.limits = limits
        self.nodes = 0
        self.bytes = 0
        self.depth = 0
        self.vars: set[str] = set()
        self._deadline = time.monotonic() + limits.max_seconds
        # Look at the clock every so many nodes: an eighth of the budget's nodes, so that a small
        # budget (the web node's loop: 1,024) is timed too, and at most every 4,096.
        self._clock_every = min(4096, max(64, limits.max_nodes // 8))
        self._next_clock = self._clock_every

    def node(self, size: int, text: str | None = None) -> None:
        self.add(1, size)
        if text is not None and "((" in text:
            self.vars.update(placeholders(text))
            if len(self.vars) > self.limits.max_vars:
                raise LimitError(
                    f"document has more than {self.limits.max_vars:,} distinct vars ({MAX_VARS_FLAG})"
                )

    def add(self, nodes: int, size: int) -> None:
        self.nodes += nodes
        self.bytes += size
        if self.nodes >= self._next_clock:
            self._next_clock = self.nodes + self._clock_every
            if time.monotonic() > self._deadline:
                raise LimitError(_time_message(self.limits))
        if self.nodes > self.limits.max_nodes:
            raise LimitError(
                f"document too large: it expands to more than {self.limits.max_nodes:,} nodes "
                f"(YAML aliases included; {MAX_NODES_FLAG})"
            )
        if self.bytes > self.limits.max_expanded_bytes:
            raise LimitError(
                f"document too large: its text expands to more than {self.limits.max_expanded_bytes:,} "
                f"bytes (YAML aliases included; {MAX_EXPANDED_BYTES_FLAG})"
            )

    def enter(self, height: int) -> None:
        """A collection (or an alias of one) ``height`` levels high starts here."""
        self.depth += 1
        if self.depth + height - 1 > self.limits.max_depth:
            raise LimitError(_depth_message(self.limits))


@dataclass
class _Anchored:
    value: Any
    nodes: int
    bytes: int
    height: int


@dataclass
class _Open:
    """A collection being built."""

    value: list[Any] | dict[Any, Any]
    anchor: str | None
    nodes: int  # the meter's counts when it started
    bytes: int
    depth: int
    height: int = 1  # levels below and including this one, so far
    key: Any = None  # a mapping's pending key
    has_key: bool = False
    merges: list[Any] | None = None  # a mapping's `<<` values, in order


class _Builder:
    """Builds one document from the event stream, metering every event first."""

    def __init__(self, text: str, limits: DocumentLimits) -> None:
        if _Parser is None:  # PyYAML without libyaml: the pure-Python parser has the same events
            self._parser: Any = yaml.SafeLoader(text)
        else:
            self._parser = _Parser(text)
        self._meter = _Meter(limits)
        self._constructor = SafeConstructor()
        self._anchors: dict[str, _Anchored] = {}
        self._open_anchors: set[str] = set()
        self._stack: list[_Open] = []

    @property
    def nodes(self) -> int:
        return self._meter.nodes

    def build(self) -> Any:
        try:
            return self._build()
        finally:
            dispose: Callable[[], None] | None = getattr(self._parser, "dispose", None)
            if dispose is not None:
                dispose()

    def _build(self) -> Any:
        get_event = self._parser.get_event
        documents, root, done = 0, None, False
        while True:
            event = get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                done = self._deliver(self._scalar(event), event.anchor, 1, len(event.value), 0)
            elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                self._start(event, kind is yaml.MappingStartEvent)
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                done = self._end()
            elif kind is yaml.AliasEvent:
                done = self._alias(event)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise DocumentError("invalid YAML: expected a single document in the stream, "
                                        "but found another document")
            elif kind is yaml.StreamEndEvent:
                return root
            if done:
                root, done = self._root, False

    # A finished value goes into the collection being built, or becomes the root.

    def _deliver(self, value: Any, anchor: str | None, nodes: int, size: int, height: int) -> bool:
        if anchor is not None:
            self._anchor(anchor, _Anchored(value, nodes, size, height))
        if not self._stack:
            self._root = value
            return True
        parent = self._stack[-1]
        parent.height = max(parent.height, height + 1)
        if isinstance(parent.value, list):
            parent.value.append(value)
        elif not parent.has_key:
            try:
                hash(value)
            except TypeError:
                raise DocumentError("invalid YAML: a mapping key must be a scalar, found a collection") from None
            parent.key, parent.has_key = value, True
        else:
            key, parent.key, parent.has_key = parent.key, None, False
            if key is _MERGE_KEY:
                (parent.merges if parent.merges is not None else self._new_merges(parent)).append(value)
            else:
                parent.value[key] = value
        return False

    def _new_merges(self, parent: _Open) -> list[Any]:
        parent.merges = []
        return parent.merges

    def _anchor(self, anchor: str, anchored: _Anchored) -> None:
        if anchor in self._anchors:
            raise DocumentError(f"invalid YAML: found duplicate anchor '{anchor}'")
        self._anchors[anchor] = anchored

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        value = event.value
        self._meter.node(utf8_size(value), value)
        tag = event.tag
        if (tag is None or tag == "!") and event.implicit[0] and len(value) > MAX_NUMBER_CHARS:
            if _NUMBERISH.fullmatch(value):
                raise DocumentError(f"invalid YAML: a number or timestamp of more than {MAX_NUMBER_CHARS} "
                                    "characters (quote it to make it a string)")
            tag = _STR
        elif tag is None or tag == "!":
            tag = resolve_scalar(value, event.implicit)
        if tag == _STR:
            return value
        if tag in (_MERGE, _VALUE) and self._stack and isinstance(self._stack[-1].value, dict) \
                and not self._stack[-1].has_key:
            if tag == _MERGE and event.anchor is not None:
                raise DocumentError("invalid YAML: a merge key '<<' cannot have an anchor")
            return _MERGE_KEY if tag == _MERGE else value  # `=` as a key is the string '=', as in PyYAML
        if tag not in _SCALAR_TAGS:
            raise DocumentError(f"invalid YAML: cannot construct a value: unsupported tag '{tag}' on a scalar")
        if tag in _NUMBER_TAGS and len(value) > MAX_NUMBER_CHARS:
            raise DocumentError(f"invalid YAML: a number of more than {MAX_NUMBER_CHARS} characters "
                                "(quote it to make it a string)")
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)
        return self._constructor.yaml_constructors[tag](self._constructor, node)

    def _start(self, event: Any, mapping: bool) -> None:
        tag = event.tag
        if tag not in (None, "!", _MAP if mapping else _SEQ):
            raise DocumentError(f"invalid YAML: cannot construct a value: unsupported tag '{tag}'")
        meter = self._meter
        meter.add(1, 0)
        meter.enter(1)
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        self._stack.append(_Open({} if mapping else [], event.anchor, meter.nodes - 1, meter.bytes, meter.depth))

    def _end(self) -> bool:
        done = self._stack.pop()
        meter = self._meter
        meter.depth -= 1
        value = done.value
        if done.merges is not None:
            value = _merged(value, done.merges)  # type: ignore[arg-type]
        if done.anchor is not None:
            self._open_anchors.discard(done.anchor)
        return self._deliver(value, done.anchor, meter.nodes - done.nodes, meter.bytes - done.bytes, done.height)

    def _alias(self, event: yaml.AliasEvent) -> bool:
        anchor = event.anchor
        if anchor in self._open_anchors:
            raise DocumentError("invalid YAML: a recursive alias refers to itself")
        anchored = self._anchors.get(anchor)
        if anchored is None:
            raise DocumentError(f"invalid YAML: found undefined alias '{anchor}'")
        meter = self._meter
        meter.add(anchored.nodes, anchored.bytes)
        if anchored.height:
            meter.enter(anchored.height)
            meter.depth -= 1
        return self._deliver(anchored.value, None, anchored.nodes, anchored.bytes, anchored.height)


_MERGE_KEY = object()  # a `<<` key, until its mapping ends


def _merged(explicit: dict[Any, Any], merges: list[Any]) -> dict[Any, Any]:
    """YAML's merge keys: merged keys come first; explicit keys win over merged ones, and of a
    list of merged mappings the earlier wins (the merge key spec)."""
    result: dict[Any, Any] = {}
    for merge in merges:
        items = merge if isinstance(merge, list) else [merge]
        if not all(isinstance(item, dict) for item in items):
            raise DocumentError("invalid YAML: '<<' expects a mapping or a list of mappings to merge")
        for item in items:
            for key, value in item.items():
                result.setdefault(key, value)
    result.update(explicit)
    return result
