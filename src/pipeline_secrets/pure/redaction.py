"""Redacting secret values from a stream of bytes: each value, its lines, and the forms it takes
when a program encodes it (base64, URL encoding, JSON strings), replaced by ``((redacted))``.

Bytes in, bytes out, no I/O: ``pipeline-secrets exec`` feeds it a command's output, and anyone
else (a web node, a runner) can feed it theirs.

The matching is Aho-Corasick from ``ahocorasick-rs`` rather than a loop of our own: it matches
every pattern in one pass over ``bytes`` (no decoding: binary output passes through, only exact
byte matches are replaced), every occurrence of every pattern, overlapping ones included. ``pyahocorasick``'s wheels are
its unicode build, which takes ``str`` only: bytes would have to be decoded as latin-1 first, and
measured here it ran at ~38 MB/s against ~330 MB/s for ``ahocorasick-rs`` on the same 20 MB.

Streaming is ours, because the matcher has no state to carry from one chunk to the next: a chunk
is scanned after the bytes held back from the previous one, and a tail is held back only from the
first position where it could still be the start of a pattern (a proper prefix of one), so at
most (longest pattern - 1) bytes, and none when the tail cannot start a pattern. The output of
``feed``s followed by ``flush`` is the same as ``redact`` of the whole stream, however it was cut.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import ahocorasick_rs

from ..errors import LimitError

REPLACEMENT = b"((redacted))"
DEFAULT_MIN_LENGTH = 4
_HEAD = 16  # the proper prefixes kept in a set are this long at most (memory); longer ones are checked in full
# What one Redactor may be built from: every value has ~30 forms, and the matcher and the prefix
# set grow with their bytes.
MAX_PATTERNS = 100_000
MAX_PATTERN_BYTES = 8 * 1024 * 1024
MAX_HELD_RUN = 1024 * 1024  # bytes of overlapping matches held back, waiting for more

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PERCENT = re.compile(rb"%[0-9A-F]{2}")
# Of base64 of (k unknown bytes + the value), the characters that depend on the value alone start
# at this index: 1 unknown byte spoils 2 characters, 2 spoil 3.
_SPOILED_HEAD = (0, 2, 3)


def value_forms(value: str, min_length: int = DEFAULT_MIN_LENGTH) -> set[bytes]:
    """The byte strings that stand for ``value`` in output, at least ``min_length`` bytes each:
    the value (UTF-8) and the value without surrounding whitespace, each of its lines when it has several (lines of at least ``min_length``
    characters), its base64 (standard and URL-safe, padded or not, encoded alone, and the part
    that does not depend on its neighbours when it sits at offset 1 or 2 mod 3 in a longer
    encoded stream), its URL encodings (``quote`` with and without '/' safe, ``quote_plus``, and
    lowercase hex), and its JSON string escapes (ASCII-only or not, without the quotes)."""
    raw = _utf8(value)
    forms = {raw, _utf8(value.strip())}  # a value stored with its newline, printed without
    lines = _LINE_BREAK.split(value)
    if len(lines) > 1:
        forms.update(_utf8(line) for line in lines if len(line) >= min_length)
    forms.update(_base64_forms(raw))
    # quote as Python's urllib, JavaScript's encodeURIComponent and Go's url.PathEscape leave them
    for url in (quote(raw, safe=""), quote(raw), quote_plus(raw), quote(raw, safe="!'()*"), quote(raw, safe="$&+:=@")):
        encoded = url.encode("ascii")
        forms.update((encoded, _PERCENT.sub(lambda m: m.group(0).lower(), encoded)))
    for ensure_ascii in (True, False):
        escaped = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
        go_html = escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # Go's encoding/json
        forms.update(_utf8(text) for text in (escaped, go_html, escaped.replace("/", "\\/"), go_html.replace("/", "\\/")))
    return {form for form in forms if len(form) >= min_length}


def short_forms(value: str, min_length: int = DEFAULT_MIN_LENGTH) -> bool:
    """Whether a form of ``value`` that output may hold on its own (the value without surrounding
    whitespace, one of its lines) is shorter than ``min_length``, and so not redacted."""
    parts = [value.strip(), *(_LINE_BREAK.split(value) if _LINE_BREAK.search(value) else [])]
    return any(0 < len(part.strip()) < min_length for part in parts)


def _utf8(text: str) -> bytes:
    """``text`` as a program's output holds it: UTF-8, with the bytes Python decoded as lone
    surrogates (``surrogateescape``, as ``os.fsencode`` does for an environment) given back; any
    other lone surrogate as its three bytes, so that no value makes the redactor fail."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _base64_forms(raw: bytes) -> Iterable[bytes]:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        alone = encode(raw)
        yield alone
        yield alone.rstrip(b"=")
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).rstrip(b"=")
            spoiled_tail = 1 if (len(raw) + offset) % 3 else 0  # the last character shares bits with what follows
            yield encoded[_SPOILED_HEAD[offset]:len(encoded) - spoiled_tail]


@dataclass(frozen=True)
class _Patterns:
    """The compiled patterns, shared by the streams of one ``Redactor`` and its forks."""

    matcher: ahocorasick_rs.BytesAhoCorasick | None  # None: nothing to redact
    longest: int
    heads: frozenset[bytes]  # every proper prefix of a pattern, up to _HEAD bytes
    long_patterns: Mapping[bytes, tuple[bytes, ...]]  # patterns longer than _HEAD, by their first _HEAD bytes

    @classmethod
    def compile(cls, patterns: set[bytes]) -> _Patterns:
        if not patterns:
            return cls(None, 0, frozenset(), {})
        heads = {pattern[:k] for pattern in patterns for k in range(1, min(len(pattern) - 1, _HEAD) + 1)}
        long_patterns: dict[bytes, list[bytes]] = {}
        for pattern in patterns:
            if len(pattern) > _HEAD:
                long_patterns.setdefault(pattern[:_HEAD], []).append(pattern)
        matcher = ahocorasick_rs.BytesAhoCorasick(sorted(patterns), matchkind=ahocorasick_rs.MatchKind.Standard)
        return cls(matcher, max(map(len, patterns)), frozenset(heads),
                   {head: tuple(group) for head, group in long_patterns.items()})

    def could_start(self, data: bytes, start: int) -> bool:
        """Whether ``data[start:]`` is a proper prefix of a pattern: more bytes could make it a
        match (or a longer one), so it cannot be decided yet."""
        if data[start:start + _HEAD] not in self.heads:
            return False
        if len(data) - start <= _HEAD:
            return True
        tail = data[start:]
        return any(len(pattern) > len(tail) and pattern.startswith(tail)
                   for pattern in self.long_patterns.get(tail[:_HEAD], ()))


class Redactor:
    """Replaces secret values in a stream of output: ``feed`` what arrives and write what it
    returns, ``flush`` at the end (or when the stream goes quiet); ``redact`` does a whole buffer.

    ``values`` maps a name (a var or an environment variable: what a warning may show) to its
    value. A value shorter than ``min_length`` characters is not redacted (it would replace
    innocent text everywhere) and its name is in ``skipped``; never the value.
    """

    def __init__(self, values: Mapping[str, str], min_length: int = DEFAULT_MIN_LENGTH,
                 replacement: bytes = REPLACEMENT) -> None:
        if min_length < 1:
            raise ValueError("min_length must be at least 1")
        patterns: set[bytes] = set()
        skipped = set()
        total = 0
        for name, value in values.items():
            if len(value) < min_length or short_forms(value, min_length):
                if value.strip():
                    skipped.add(name)  # wholly or partly: a part printed alone would not be redacted
            if len(value) >= min_length:
                forms = value_forms(value, min_length)
                total += sum(map(len, forms - patterns))
                patterns |= forms
                if len(patterns) > MAX_PATTERNS or total > MAX_PATTERN_BYTES:  # checked as it grows: stops early
                    raise LimitError(f"too much to redact: more than {MAX_PATTERNS:,} forms of the values or "
                                     f"{MAX_PATTERN_BYTES:,} bytes of them; resolve fewer vars, or give --no-redact")
        self.skipped: tuple[str, ...] = tuple(sorted(skipped))
        self.replacement = replacement
        self._patterns = _Patterns.compile(patterns)
        self._held = b""
        self._pending: list[int] = []  # positions in _held whose tail is a proper prefix of a pattern

    def fork(self) -> Redactor:
        """A redactor with the same patterns and a stream of its own (say, for stderr)."""
        twin = object.__new__(Redactor)
        twin.skipped, twin.replacement, twin._patterns = self.skipped, self.replacement, self._patterns
        twin._held, twin._pending = b"", []
        return twin

    @property
    def holding(self) -> bool:
        """Whether bytes are held back, waiting to see if they start a value."""
        return bool(self._held)

    def feed(self, chunk: bytes) -> bytes:
        """What of the stream so far can be written now, redacted; the rest is held back."""
        data = self._held + chunk if self._held else bytes(chunk)
        patterns = self._patterns
        if patterns.matcher is None:
            return data
        # A position whose tail was no prefix of a pattern stays none as bytes come: only the held
        # positions that could start a value, and the new ones, are looked at again. So a long
        # value written one byte at a time costs a few checks per byte, not (longest) of them.
        first = max(0, len(data) - patterns.longest + 1)
        candidates = [p for p in self._pending if p >= first]
        candidates += range(max(first, len(self._held)), len(data))
        pending = [start for start in candidates if patterns.could_start(data, start)]
        out, cut = self._scan(data, pending)
        self._held = data[cut:]
        self._pending = [p - cut for p in pending if p >= cut]
        return out

    def flush(self) -> bytes:
        """Everything held back, redacted as the end of the stream."""
        data, self._held, self._pending = self._held, b"", []
        return self._scan(data, [])[0]

    def redact(self, data: bytes) -> bytes:
        """``data`` as a whole stream, redacted (this redactor's own stream is left alone)."""
        return self._scan(bytes(data), [])[0]

    def _scan(self, data: bytes, pending: list[int]) -> tuple[bytes, int]:
        """(``data[:cut]`` redacted, ``cut``). Every occurrence of every pattern is found, and
        occurrences that overlap are replaced together (two values that share a part, as
        ``k3y-AAAA-BBBB`` and ``BBBB-CCCC-9z``, leave nothing of either). ``pending`` are the
        positions, in order, whose tail is a proper prefix of a pattern: more bytes could make an
        occurrence start there. ``cut`` is the first of them, or the start of the run of
        occurrences it lies in (a new occurrence there would join the run): nothing from ``cut``
        on is decided yet (``len(data)`` when nothing is pending). A run held longer than
        ``MAX_HELD_RUN`` is decided anyway, so that a flood of overlapping values cannot grow the
        held bytes without end."""
        patterns = self._patterns
        end = len(data)
        if patterns.matcher is None:
            return data, end
        runs = _runs(patterns.matcher.find_matches_as_indexes(data, overlapping=True))
        cut = end
        for position in pending:
            run = next(((start, stop) for start, stop in runs if start <= position < stop), None)
            if run is None:
                cut = position
                break
            if end - run[0] <= MAX_HELD_RUN:
                cut = run[0]
                break
        pieces: list[bytes] = []
        position = 0
        for start, stop in runs:
            if start >= cut:
                break
            pieces += (data[position:start], self.replacement)
            position = stop
        if not pieces:
            return data[:cut], cut
        pieces.append(data[position:cut])
        return b"".join(pieces), cut


def _runs(matches: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """The (start, stop) of each run of overlapping matches, in order."""
    runs: list[tuple[int, int]] = []
    for _, start, stop in sorted(matches, key=lambda match: (match[1], -match[2])):
        if runs and start < runs[-1][1]:
            if stop > runs[-1][1]:
                runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((start, stop))
    return runs
