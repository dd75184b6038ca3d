"""The ``((var))`` grammar, and interpolation of already-parsed documents.

Pure code: no I/O, no AWS, no YAML. Interpolation is two-phase so that a caller can read every
secret a document needs at once, between the phases::

    refs = collect_vars(document)                     # 1. parse every var (syntax errors here)
    secrets = read_all({ref.path for ref in refs})    #    the caller's batched lookups
    output = interpolate(document, secrets)           # 2. substitute

A placeholder is exactly what Concourse's interpolation finds (its ``vars`` package): ``((``, an
optional ``source:``, a name of letters, digits and ``_ - / . : @ "``, ``))``. Nothing else is one:
no spaces anywhere inside, so shell arithmetic (``$((count - 1))``) is left alone byte for byte.
``((.:name))`` is a build-local var (set at run time): always left as written. Messages print a var
as Concourse does (``Reference.String``): quotes only around segments that need them.

Error messages name vars, fields and types, never a secret's value, so they are safe to log.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import FieldError, LimitError, UndefinedVarsError, VarSourceError, VarSyntaxError
from .limits import MAX_EXPANDED_BYTES_FLAG, MAX_NODES_FLAG, MAX_SECONDS_FLAG, DocumentLimits

__all__ = [
    "VarRef",
    "collect_vars",
    "find_vars",
    "interpolate",
    "interpolate_text",
    "is_source_name",
    "parse_var",
    "placeholders",
    "walk_fields",
]

# Concourse's pattern: \(\((([-/\.\w\pL]+\:)?[-/\.:@"\w\pL]+)\)\). Go's \w is ASCII and \pL adds
# Unicode letters; Python's \w is every Unicode letter and digit, so a match holding a non-ASCII
# character that is not a letter (a non-ASCII digit, say) is no placeholder (``_concourse``). The
# classes hold no parentheses, so a match never runs past the first "))": "(((a)))" holds "a".
_SOURCE = r"[-/.\w]+"
_INNER = "(?:" + _SOURCE + r':)?[-/.:@"\w]+'
_VAR = re.compile(r"\(\((" + _INNER + r")\)\)")
_NAME = re.compile(_INNER)
_SOURCE_NAME = re.compile(_SOURCE)
LOCAL_SOURCE = "."  # ((.:name)): a build-local var, set at run time by load_var

_MISSING = object()
# Longer vars are refused before they are parsed: a secret's name is at most 512 characters, and
# parsed vars are cached.
MAX_VAR_LENGTH = 1024


@dataclass(frozen=True)
class VarRef:
    """One parsed ``((var))``: ``((source:path.field.field))``."""

    raw: str
    """The text between ``((`` and ``))``, as written."""
    source: str | None
    """The var source (declared in the document's ``var_sources``), ``"."`` for a build-local var,
    or None for the cluster-wide credential manager."""
    path: str
    """The secret's name, quotes removed: what gets looked up."""
    fields: tuple[str, ...]
    """Keys to walk into the secret's value, in order; may be empty."""

    def __str__(self) -> str:
        """The var as Concourse prints it: ``source:path.field``, segments quoted where needed."""
        text = ".".join(_segment(part) for part in (self.path, *self.fields))
        return f"{self.source}:{text}" if self.source else text

    @property
    def local(self) -> bool:
        """A build-local var (``((.:name))``): set at run time, never looked up."""
        return self.source == LOCAL_SOURCE

    @property
    def key(self) -> tuple[str | None, str]:
        """What a lookup reads: (source, path)."""
        return (self.source, self.path)


def parse_var(raw: str) -> VarRef:
    """Parse the text inside ``(( ))``, with Concourse's rules.

    The first unquoted ``:`` ends the source; unquoted ``.`` split the rest into the path and
    fields. Double quotes protect ``.`` and ``:`` and are then dropped; spaces around a segment
    are trimmed, those inside quotes are kept.
    """
    if not raw:
        raise _syntax(raw, "empty field")
    if len(raw) > MAX_VAR_LENGTH:
        raise VarSyntaxError(f"invalid var '{raw[:64]}...': longer than {MAX_VAR_LENGTH} characters")
    if not _NAME.fullmatch(raw) or not _concourse(raw):
        raise _syntax(raw, 'only letters, digits and _ - / . : @ " are allowed (no spaces)')
    if raw.count('"') % 2:
        raise _syntax(raw, "unterminated quote")

    source: str | None = None
    rest = raw
    colon = _find_unquoted(raw, ":")
    if colon >= 0:
        source, rest = raw[:colon], raw[colon + 1 :]
        if '"' in source:
            raise _syntax(raw, "source must not be quoted")
        source = source or None  # "((:name))": an empty source is no source, as in Concourse

    segments = []
    for segment in _split_unquoted(rest, "."):
        name = segment.strip(" ").replace('"', "")
        if not name:
            raise _syntax(raw, "empty field")
        segments.append(name)
    return VarRef(raw=raw, source=source, path=segments[0], fields=tuple(segments[1:]))


def placeholders(text: str) -> list[str]:
    """The raw text of every placeholder in ``text``, unparsed (cheap: for budgets)."""
    return [match[1] for match in _matches(text)]


def find_vars(text: str) -> list[VarRef]:
    """Every placeholder in one string, in order, repeats included."""
    return [parse_var(match[1]) for match in _matches(text)]


def _matches(text: str) -> list[re.Match[str]]:
    """The placeholders of ``text``, as Concourse's regex finds them (see ``_VAR``). A match this
    drops cannot hide one that Go would find inside it: it holds no "((", so none starts there."""
    return [match for match in _VAR.finditer(text) if _concourse(match[1])]


def _whole(text: str) -> re.Match[str] | None:
    """The match when ``text`` is exactly one placeholder."""
    match = _VAR.fullmatch(text)
    return match if match is not None and _concourse(match[1]) else None


def is_source_name(name: str) -> bool:
    """True when ``((name:var))`` can name a source called ``name``."""
    return _SOURCE_NAME.fullmatch(name) is not None and _concourse(name)


def _concourse(raw: str) -> bool:
    """True unless ``raw`` holds a non-ASCII character that is not a letter (outside Go's word class)."""
    return raw.isascii() or all(c.isascii() or c.isalpha() for c in raw)


def _segment(part: str) -> str:
    """A segment as Concourse's refSegmentString prints it (Go's %q: a quoted string)."""
    return json.dumps(part, ensure_ascii=False) if any(c in part for c in ",.:/ ") else part


def collect_vars(document: object) -> list[VarRef]:
    """The vars of a whole document, in keys and values at any depth, unique by raw text.

    Every var is parsed here, so a syntax error anywhere surfaces before any secret is read.
    """
    found: dict[str, VarRef] = {}
    _collect(document, found)
    return list(found.values())


def walk_fields(value: object, ref: VarRef) -> object:
    """Apply ``ref.fields`` to a secret's value: each field is a key of a mapping."""
    for field in ref.fields:
        if not isinstance(value, Mapping):
            raise FieldError(
                f"cannot access field '{field}' of non-map value ('{_type_name(value)}') "
                f"from var: {ref}"
            )
        if field not in value:
            raise FieldError(f"missing field '{field}' in var: {ref}")
        value = value[field]
    return value


def interpolate(
    document: object,
    secrets: Mapping[str, object],
    *,
    allow_missing: bool = False,
    limits: DocumentLimits | None = None,
    sourced: Mapping[str, Mapping[str, object]] | None = None,
    refs: list[VarRef] | None = None,
) -> object:
    """A new document with every ``((var))`` replaced, in keys and values at any depth.

    ``secrets`` maps a var's path to the secret's decoded value, ``sourced`` a declared var
    source's name to such a mapping (``((source:path))``); a path they lack is undefined, which
    is an error unless ``allow_missing``, in which case the var stays as written. Build-local vars
    (``((.:name))``) always stay as written. The
    input is never modified, and no container of the output is shared with the input, the
    secrets or another place of the output. With ``limits``, the output may not pass
    ``max_expanded_bytes`` of text (every string, and each value put in whole), ``max_nodes``
    values (those of each value put in whole included) nor ``max_seconds``: ``LimitError`` as
    soon as it would, before the output is built (a 64 KB secret placed 100,000 times).
    ``refs``: ``collect_vars(document)`` when the caller has it already (build-local ones may
    be left out: they stay as written either way).
    """
    values = _resolve(collect_vars(document) if refs is None else refs, secrets, allow_missing, sourced)
    return _Substitution(values, limits).node(document)


def interpolate_text(
    text: str, secrets: Mapping[str, object], *, allow_missing: bool = False
) -> object:
    """One string interpolated: a string that is a single var becomes that var's value,
    whatever its type; otherwise the result is a string.
    """
    refs = list({ref.raw: ref for ref in find_vars(text)}.values())
    return _Substitution(_resolve(refs, secrets, allow_missing, None), None).text(text)


def _syntax(raw: str, reason: str) -> VarSyntaxError:
    return VarSyntaxError(f"invalid var '{raw}': {reason}")


def _find_unquoted(text: str, char: str) -> int:
    quoted = False
    for index, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            return index
    return -1


def _split_unquoted(text: str, separator: str) -> list[str]:
    parts, start, quoted = [], 0, False
    for index, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


_PLAIN = (int, float, bool, type(None))  # scalars that hold no placeholder


def _collect(node: object, found: dict[str, VarRef]) -> None:
    # Exact types first and children that are plain strings looked at in place: most of a
    # document is strings without "((" in dicts and lists, and a call or an ABC isinstance
    # (Mapping) per value cost more than the rest of the walk.
    kind = type(node)
    if kind is str:
        if "((" in node:  # type: ignore[operator]
            _collect_text(node, found)  # type: ignore[arg-type]
    elif kind is dict:
        for key, value in node.items():  # type: ignore[attr-defined]
            if type(key) is str:
                if "((" in key:
                    _collect_text(key, found)
            else:
                _collect(key, found)
            if type(value) is str:
                if "((" in value:
                    _collect_text(value, found)
            elif type(value) not in _PLAIN:
                _collect(value, found)
    elif kind is list:
        for item in node:  # type: ignore[attr-defined]
            if type(item) is str:
                if "((" in item:
                    _collect_text(item, found)
            elif type(item) not in _PLAIN:
                _collect(item, found)
    elif kind in _PLAIN:
        return
    elif isinstance(node, str):
        _collect_text(node, found)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            _collect(key, found)
            _collect(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect(item, found)


def _collect_text(text: str, found: dict[str, VarRef]) -> None:
    for match in _matches(text):
        if match[1] not in found:
            found[match[1]] = _parse_var_cached(match[1])


# The same var names come back in every document of a pipeline: parsed once. Names are not
# secrets, and each is at most MAX_VAR_LENGTH characters (longer ones raise, and are not kept).
_parse_var_cached = functools.lru_cache(maxsize=4096)(parse_var)


def _resolve(
    refs: list[VarRef], secrets: Mapping[str, object], allow_missing: bool,
    sourced: Mapping[str, Mapping[str, object]] | None,
) -> dict[str, object]:
    """Map each defined var's raw text to its value, fields applied. Build-local vars stay as
    written; a source the caller was not given is an error (it is not declared)."""
    found: list[tuple[VarRef, object]] = []
    undefined = []
    read: dict[tuple[str | None, str], object] = {}  # each path of each source is read once
    for ref in refs:
        if ref.local:
            continue
        table = secrets if ref.source is None else (sourced or {}).get(ref.source)
        if table is None:
            raise VarSourceError(f"missing source '{ref.source}' in var: {ref}")
        if ref.key not in read:
            read[ref.key] = table.get(ref.path, _MISSING)
        value = read[ref.key]
        if value is _MISSING:
            undefined.append(str(ref))
        else:
            found.append((ref, value))
    if undefined and not allow_missing:
        raise UndefinedVarsError(undefined)
    return {ref.raw: walk_fields(value, ref) for ref, value in found}


class _Substitution:
    """Replaces vars in one document, counting what it produces against ``limits``."""

    def __init__(self, values: dict[str, object], limits: DocumentLimits | None) -> None:
        self.values = values
        self.limits = limits
        self.bytes_left = limits.max_expanded_bytes if limits else 0
        self.nodes_left = limits.max_nodes if limits else 0
        self.deadline = time.monotonic() + limits.max_seconds if limits else 0.0
        self._clock_at = self.nodes_left - 4096
        self._costs: dict[str, tuple[int, int]] = {}

    def node(self, node: object) -> object:
        self.spend(0, 1)
        kind = type(node)  # exact types first, as in _collect
        if kind is str or (kind is not dict and kind is not list and isinstance(node, str)):
            return self.text(node)  # type: ignore[arg-type]
        if kind is dict or (kind is not list and isinstance(node, Mapping)):
            return self.mapping(node)  # type: ignore[arg-type]
        if kind is list or isinstance(node, list):
            return self.sequence(node)  # type: ignore[arg-type]
        return node

    # Plain values (strings without "((", numbers, booleans, null) are counted in place and paid
    # for together before anything else of their collection can raise: the same checks in the same
    # order as one call per value, for a fraction of the cost. They add nothing the input does not
    # hold (the output shares those objects).

    def sequence(self, items: list[object]) -> list[object]:
        out = []
        size = nodes = 0
        for item in items:
            kind = type(item)
            if kind is str and "((" not in item:  # type: ignore[operator]
                size += len(item) if item.isascii() else utf8_size(item)  # type: ignore
                nodes += 1
                out.append(item)
            elif kind in _PLAIN:
                nodes += 1
                out.append(item)
            else:
                if size or nodes:
                    self.spend(size, nodes)
                    size = nodes = 0
                out.append(self.node(item))
        self.spend(size, nodes)
        return out

    def text(self, text: str) -> object:
        if "((" not in text:  # no placeholder: most strings
            self.spend(utf8_size(text), 0)
            return text
        whole = _whole(text)
        if whole:
            value = self.values.get(whole[1], _MISSING)
            if value is _MISSING:
                self.spend(utf8_size(text), 0)
                return text
            self.spend(*self.cost(whole[1], value))
            return _fresh(value)
        self.spend(utf8_size(text), 0)  # placeholders replaced in it count twice: a bound, not a tally

        def replace(match: re.Match[str]) -> str:
            value = self.values.get(match[1], _MISSING) if _concourse(match[1]) else _MISSING
            piece = match[0] if value is _MISSING else _as_text(value, match[1])
            self.spend(utf8_size(piece), 0)
            return piece

        return _VAR.sub(replace, text)

    def mapping(self, mapping: Mapping[object, object]) -> dict[object, object]:
        out: dict[object, object] = {}
        written: dict[object, object] = {}  # output key -> the key as the document wrote it
        size = nodes = 0
        for key, value in mapping.items():
            if type(key) is str and "((" not in key:  # type: ignore[operator]
                size += len(key) if key.isascii() else utf8_size(key)  # type: ignore
                new_key = key
            else:
                if size or nodes:
                    self.spend(size, nodes)
                    size = nodes = 0
                new_key = self.key(key)
            if new_key in out:
                self.spend(size, nodes)
                # Input keys are unique, so one of the two came from a var. Name that key as
                # written: the key it became may be the secret itself.
                culprit = key if _defined_var(key, self.values) else written[new_key]
                raise FieldError(
                    f"duplicate key '{culprit}' after interpolating var: "
                    f"{_defined_var(culprit, self.values)}"
                )
            written[new_key] = key
            kind = type(value)
            if kind is str and "((" not in value:  # type: ignore[operator]
                size += len(value) if value.isascii() else utf8_size(value)  # type: ignore
                nodes += 1
                out[new_key] = value
            elif kind in _PLAIN:
                nodes += 1
                out[new_key] = value
            else:
                if size or nodes:
                    self.spend(size, nodes)
                    size = nodes = 0
                out[new_key] = self.node(value)
        self.spend(size, nodes)
        return out

    def key(self, key: object) -> object:
        if not isinstance(key, str):
            return key
        if "((" not in key:
            return self.text(key)
        whole = _whole(key)
        if whole and whole[1] in self.values:
            value = self.values[whole[1]]
            if value is not None and not isinstance(value, (str, int, float, bool)):  # null: a null key
                raise _non_primitive(value, whole[1])
            self.spend(*self.cost(whole[1], value))
            return value
        return self.text(key)

    def cost(self, raw: str, value: object) -> tuple[int, int]:
        """(text, values) that a value put in whole adds to the output, once per var."""
        if self.limits is None:
            return 0, 0
        cost = self._costs.get(raw)
        if cost is None:
            cost = self._costs[raw] = _cost(value)
        return cost

    def spend(self, size: int, nodes: int) -> None:
        if self.limits is None:
            return
        self.bytes_left -= size
        self.nodes_left -= nodes
        if self.bytes_left < 0:
            raise LimitError(
                f"document too large after interpolation: its text would be more than "
                f"{self.limits.max_expanded_bytes:,} bytes ({MAX_EXPANDED_BYTES_FLAG})"
            )
        if self.nodes_left < 0:
            raise LimitError(
                f"document too large after interpolation: it would have more than {self.limits.max_nodes:,} "
                f"values ({MAX_NODES_FLAG})"
            )
        if self.nodes_left <= self._clock_at:  # the clock is read every 4,096 values
            self._clock_at = self.nodes_left - 4096
            if time.monotonic() > self.deadline:
                raise LimitError(f"document took longer than {self.limits.max_seconds:g}s to interpolate "
                                 f"({MAX_SECONDS_FLAG})")


def _cost(value: object) -> tuple[int, int]:
    """(UTF-8 bytes, values) of a secret's value, walked without recursion (a value may be deep)."""
    size = nodes = 0
    stack = [value]
    while stack:
        item = stack.pop()
        nodes += 1
        if isinstance(item, str):
            size += utf8_size(item)
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            size += 8  # a number, a boolean, null
    return size, nodes


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (what budgets count: a character may be four of them)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _defined_var(key: object, values: dict[str, object]) -> str | None:
    """The first var of a key that has a value, if any."""
    if isinstance(key, str):
        for match in _matches(key):
            if match[1] in values:
                return match[1]
    return None


def _as_text(value: object, raw: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise _non_primitive(value, raw)


def _non_primitive(value: object, raw: str) -> FieldError:
    if value is None:
        kind = "null"
    elif isinstance(value, Mapping):
        kind = "map"
    elif isinstance(value, list):
        kind = "list"
    else:
        kind = type(value).__name__
    return FieldError(f"cannot interpolate non-primitive value ({kind}) from var: {raw}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _fresh(value: object) -> object:
    """A copy of a secret's containers, so that no two places of the output share one (a YAML
    dumper would write anchors and aliases for them)."""
    if isinstance(value, Mapping):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value
