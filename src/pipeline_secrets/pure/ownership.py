"""Whose secret a path is: every reading a template can make of a path, not just one.

A template whose fields are not delimited by ``/`` can read one path in several ways. With
``/concourse/{{.Team}}-{{.Pipeline}}/{{.Secret}}``, ``/concourse/alpha-x-deploy/db`` is secret
``db`` of pipeline ``x-deploy`` of team ``alpha`` *and* of pipeline ``deploy`` of team ``alpha-x``.
Scope safety must weigh every reading, so a regex (which finds one) will not do, and listing every
reading is exponential in the number of fields. Instead, for each boundary between the template's
parts, we compute with bit sets over the path's positions where that boundary can fall in *some*
complete reading (reachable from the start and able to reach the end). A field's possible values
are then the spans between its two boundaries, which is linear work per field.

Fields that appear twice are treated as independent here, which can only find more readings than
exist: the check stays on the safe side (it may refuse, never wrongly allow).
"""

from __future__ import annotations

from dataclasses import dataclass

Parts = tuple[tuple[str, str], ...]  # a template's ("text", literal) and ("field", name) parts

# Team and pipeline names never hold '/'; a secret name may.
_SCOPE_FIELDS = ("Team", "Pipeline")


@dataclass(frozen=True)
class Reading:
    """One way a template reads a path: the scope it makes the path belong to."""

    team: str | None  # None when the template has no {{.Team}}
    pipeline: str | None  # None when the template has no {{.Pipeline}}
    secret: str


def foreign_reading(parts: Parts, path: str, team: str, pipeline: str | None) -> Reading | None:
    """A reading of ``path`` by the template of ``parts`` that gives it to another team or
    pipeline than ``team``/``pipeline`` (a one-off build, ``pipeline=None``, owns no pipeline's
    path), or ``None`` when every reading is the caller's own (or the template cannot read it)."""
    if not any(part in parts for part in (("field", "Team"), ("field", "Pipeline"))):
        return None
    grid = _Grid(path, parts)
    if not grid.parses:
        return None
    own = {"Team": team, "Pipeline": pipeline}
    for index, (kind, name) in enumerate(parts):
        if kind == "field" and name in own:
            span = grid.foreign_span(index, own[name])
            if span is not None:
                return grid.reading(index, span)
    return None


def reads_as(parts: Parts, path: str, team: str, pipeline: str | None) -> bool:
    """True when the template of ``parts`` can read ``path`` as a path of ``team`` (and of
    ``pipeline``, when the template names one; never for a one-off build) for some secret."""
    if ("field", "Pipeline") in parts and pipeline is None:
        return False
    bound = {"Team": team, "Pipeline": pipeline or ""}
    fixed = tuple(("text", bound[value]) if kind == "field" and value in bound else (kind, value)
                  for kind, value in parts)
    return _Grid(path, fixed).parses


class _Grid:
    """Bit set ``reach[i]`` (bit j: boundary i can sit at position j, coming from the start) and
    ``finish[i]`` (from position j the parts from i on can read the rest) for each boundary."""

    def __init__(self, path: str, parts: Parts) -> None:
        self.path = path
        self.parts = parts
        n = len(path)
        self.scope_end = _run_ends(path)  # scope_end[j]: first '/' at or after j (or n)
        self.all_mask = (1 << n) - 1
        self.scope_mask = int("".join("0" if c == "/" else "1" for c in reversed(path)) or "0", 2)
        reach = [1]
        for kind, value in parts:
            reach.append(self._forward(reach[-1], kind, value))
        finish = [1 << n]
        for kind, value in reversed(parts):
            finish.append(self._backward(finish[-1], kind, value))
        finish.reverse()
        self.reach, self.finish = reach, finish
        self.parses = bool(reach[-1] >> n & 1)

    def _chars(self, name: str) -> int:
        return self.scope_mask if name in _SCOPE_FIELDS else self.all_mask

    def _forward(self, starts: int, kind: str, value: str) -> int:
        if kind == "text":
            return (starts & _occurrences(self.path, value)) << len(value)
        chars, ends = self._chars(value), 0
        step = (starts & chars) << 1
        while step:
            ends |= step
            step = ((step & chars) << 1) & ~ends
        return ends

    def _backward(self, ends: int, kind: str, value: str) -> int:
        if kind == "text":
            return (ends >> len(value)) & _occurrences(self.path, value)
        chars, starts = self._chars(value), 0
        step = (ends >> 1) & chars
        while step:
            starts |= step
            step = ((step >> 1) & chars) & ~starts
        return starts

    def _limit(self, name: str, start: int) -> int:
        """The furthest end of a value of field ``name`` that starts at ``start``."""
        return self.scope_end[start] if name in _SCOPE_FIELDS else len(self.path)

    def _ends(self, index: int, start: int) -> int:
        """Where field ``index`` may end in a complete reading when it starts at ``start``."""
        limit = self._limit(self.parts[index][1], start)
        span = ((1 << (limit + 1)) - 1) & ~((1 << (start + 1)) - 1)
        return span & self.finish[index + 1]

    def foreign_span(self, index: int, own: str | None) -> tuple[int, int] | None:
        """(start, end) of a value of field ``index`` other than ``own`` in a complete reading."""
        starts = self.reach[index] & self.finish[index]
        for start in _bits(starts):
            ends = self._ends(index, start)
            if own is not None and self.path.startswith(own, start):
                ends &= ~(1 << (start + len(own)))
            if ends:
                return start, _lowest(ends)
        return None

    def reading(self, index: int, span: tuple[int, int]) -> Reading:
        """A complete reading in which field ``index`` spans ``span``, for messages."""
        bounds = {index: span[0], index + 1: span[1]}
        for i in range(index - 1, -1, -1):  # back to the start
            kind, value = self.parts[i]
            end = bounds[i + 1]
            if kind == "text":
                bounds[i] = end - len(value)
            else:
                bounds[i] = next(s for s in range(end - 1, -1, -1)
                                 if self.reach[i] >> s & 1 and self._limit(value, s) >= end)
        for i in range(index + 1, len(self.parts)):  # on to the end
            kind, value = self.parts[i]
            start = bounds[i]
            bounds[i + 1] = start + len(value) if kind == "text" else _lowest(self._ends(i, start))
        values: dict[str, str] = {}
        for i, (kind, value) in enumerate(self.parts):
            if kind == "field":
                values.setdefault(value, self.path[bounds[i]:bounds[i + 1]])
        return Reading(values.get("Team"), values.get("Pipeline"), values.get("Secret", ""))


def _occurrences(text: str, literal: str) -> int:
    mask, at = 0, text.find(literal)
    while at >= 0:
        mask |= 1 << at
        at = text.find(literal, at + 1)
    return mask


def _run_ends(path: str) -> list[int]:
    ends = [len(path)] * (len(path) + 1)
    for j in range(len(path) - 1, -1, -1):
        ends[j] = j if path[j] == "/" else ends[j + 1]
    return ends


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1
