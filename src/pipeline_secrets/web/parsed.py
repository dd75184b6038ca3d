"""The documents a web node has parsed lately, kept per team, so that the same body is not
parsed again.

A CI system sends the same pipeline config again and again (every check, every build); once
parsed, a document's values only need their vars looked up and the result written, which is
what a cached interpolation costs on its own. Only small documents answered on the event loop
are kept (``app.ON_LOOP_MAX_BYTES``), keyed by their exact bytes (no digest: no collision can
give one document another's parse) and by whether they were read as JSON.

Nothing here holds a secret: a parse is of the text the client sent, before any var is
replaced, and the interpolation builds its answer in new containers, never touching the kept
document (``pure.vars.interpolate``'s contract).

Budgets: each team has its own partition of ``per_team_bytes``, so one team's documents evict
only its own (a team sending a new document each time cannot push another team's out); at most
``max_teams`` partitions are kept, the least recently used team's dropped first. What an entry
costs is bounded from the parse (``entry_cost``): the entry itself, the body (the key), the
values' strings (the body's length again, four times it when it is not ASCII: one wide character
makes a whole string four bytes a character) and ``NODE_BYTES`` per value, over-estimates of
what tracemalloc measures (tests/test_parsed_documents.py).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..pure.documents import Parsed

NODE_BYTES = 96  # measured with tracemalloc: 57-74 bytes per value of a parsed document
ENTRY_BYTES = 400  # the entry's own objects (key, bytes header, tuples, its place in the dict): 240-360
PER_TEAM_BYTES = 512 * 1024
MAX_TEAMS = 64

Key = tuple[bool, bytes]  # (read as JSON, the body)


class _Partition:
    def __init__(self) -> None:
        self.entries: OrderedDict[Key, tuple[Any, int]] = OrderedDict()
        self.bytes = 0


class ParsedDocuments:
    """Parsed documents by team and body; ``get`` answers ``(True, document)`` for a body kept,
    ``(False, None)`` otherwise. The documents given out are shared: nobody may change them."""

    def __init__(self, per_team_bytes: int = PER_TEAM_BYTES, max_teams: int = MAX_TEAMS) -> None:
        self.per_team_bytes = per_team_bytes
        self.max_teams = max_teams
        self._teams: OrderedDict[str, _Partition] = OrderedDict()

    def get(self, team: str, body: bytes, as_json: bool) -> tuple[bool, Any]:
        partition = self._teams.get(team)
        if partition is None:
            return False, None
        entry = partition.entries.get((as_json, body))
        if entry is None:
            return False, None
        partition.entries.move_to_end((as_json, body))
        self._teams.move_to_end(team)
        return True, entry[0]

    def put(self, team: str, body: bytes, as_json: bool, parsed: Parsed) -> None:
        cost = entry_cost(body, parsed)
        if cost > self.per_team_bytes:
            return
        partition = self._teams.get(team)
        if partition is None:
            partition = self._teams[team] = _Partition()
            while len(self._teams) > self.max_teams:
                self._teams.popitem(last=False)
        else:
            self._teams.move_to_end(team)
        key = (as_json, body)
        old = partition.entries.pop(key, None)
        if old is not None:
            partition.bytes -= old[1]
        partition.entries[key] = (parsed.value, cost)
        partition.bytes += cost
        while partition.bytes > self.per_team_bytes:
            _, (_, dropped) = partition.entries.popitem(last=False)
            partition.bytes -= dropped

    def stats(self) -> dict[str, int]:
        """Teams, documents and estimated bytes kept (for tests and the operator's eye)."""
        return {"teams": len(self._teams), "documents": sum(len(p.entries) for p in self._teams.values()),
                "bytes": sum(p.bytes for p in self._teams.values())}


def entry_cost(body: bytes, parsed: Parsed) -> int:
    """The bytes charged for keeping ``parsed``, the document of ``body``."""
    text = len(body) if body.isascii() else 4 * len(body)
    return ENTRY_BYTES + len(body) + text + NODE_BYTES * parsed.nodes
