"""The lookup rules over a reader stack: candidate paths in rounds, remembered positions, the read
budget, the hot path (``Lookups``), and what a lookup answers (``Resolved``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import (
    LimitError,
    LookupFailed,
    PipelineSecretsError,
    VarNameError,
)
from ..metrics import Metrics
from ..pure import vars as vars_
from ..pure.templates import check_scope
from ..resilience import Entry
from .stacks import ReaderStacks, TeamReaders


@dataclass(frozen=True)
class Resolved:
    """What one secret name resolved to: a value found at ``path``, nothing, or an ``error``."""

    name: str
    value: Any | None = None
    path: str | None = None
    error: PipelineSecretsError | None = None

    @property
    def found(self) -> bool:
        return self.path is not None  # a found value always says where it was found


@dataclass(frozen=True)
class PathProbe:
    """One candidate path as the configured credentials see it."""

    level: str
    path: str
    outcome: str  # "readable", "not found" or "error"
    error: LookupFailed | None = None


# Called for each candidate path a lookup considers: (level, path, outcome) where outcome is
# "found", "not found", "skipped: ..." or "error: ...". Never given the value.
Trace = Callable[[str, str, str], None]

_parse_short_var = functools.lru_cache(maxsize=4096)(vars_.parse_var)
CACHED_VAR_CHARS = 128  # longer vars (up to 1,024 characters) are parsed each time: a bounded cache


def parse_var(raw: str) -> vars_.VarRef:
    """``vars.parse_var``, remembered for the vars pipelines really use (short ones)."""
    return _parse_short_var(raw) if len(raw) <= CACHED_VAR_CHARS else vars_.parse_var(raw)



class NotInMemory(Exception):
    """Raised by a ``memory_only`` resolution that would have to ask AWS or Redis: the caller
    takes the full path (in a worker thread) instead."""


class _Reads:
    """What one call may still ask AWS for: ``--max-secret-reads`` secret paths over all rounds."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise LimitError(
                f"this lookup needs more than {self.limit:,} secret reads from AWS (--max-secret-reads)"
            )


class Lookups:
    """The lookup rules over one reader stack: candidate paths in rounds, remembered positions,
    the read budget, the hot path. The cluster-wide manager has one; so has each var source of
    type ``secretsmanager`` (its own templates, identity and candidate-path policy)."""

    def __init__(
        self,
        settings: Settings,
        stacks: ReaderStacks,
        candidates: Callable[[str, str, str | None], list[tuple[str, str]]],
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self._stacks = stacks
        self._candidates = functools.lru_cache(maxsize=8192)(candidates)
        self._metrics = metrics

    def candidates(self, name: str, team: str, pipeline: str | None) -> list[tuple[str, str]]:
        """(level, path) a lookup of ``name`` tries; ``VarNameError`` when the name is refused."""
        return self._candidates(name, team, pipeline)

    def refusals(self, names: Iterable[str], team: str, pipeline: str | None) -> dict[str, Resolved]:
        """The names these rules refuse (name rules, scope), each with its error; nothing is read."""
        refused = {}
        for name in dict.fromkeys(names):
            try:
                self._candidates(name, team, pipeline)
            except VarNameError as exc:
                refused[name] = Resolved(name, error=exc)
        return refused

    def resolve(
        self, names: Iterable[str], team: str, pipeline: str | None, trace: Trace | None = None,
        *, refuse_early: bool = False, memory_only: bool = False,
    ) -> dict[str, Resolved]:
        """A ``Resolved`` for each name. With ``refuse_early``, when any name is refused only
        the refusals are returned, and nothing is read. With ``memory_only``, ``NotInMemory``
        as soon as this node's memory cannot answer (never blocks: an event loop may call it)."""
        started = time.perf_counter()
        check_scope(team, pipeline)
        readers = self._stacks.for_team(team)
        if trace:
            for level, template in self.settings.rules.skipped(pipeline):
                trace(level, template.text, "skipped: no pipeline (one-off build)")
        results: dict[str, Resolved] = {}
        plans: dict[str, list[tuple[str, str]]] = {}
        for name in dict.fromkeys(names):
            try:
                plans[name] = self._candidates(name, team, pipeline)
            except VarNameError as exc:
                results[name] = Resolved(name, error=exc)
        if refuse_early and results:
            return results
        remembered = self._remembered(readers, list(plans), pipeline, memory_only)
        position = {name: self._remembered_position(remembered.get(name), plan, trace) for name, plan in plans.items()}
        started_at = dict(position) if memory_only else {}  # memory only: a fresh remembered position is not put again
        reads = _Reads(self.settings.max_secret_reads)
        while plans:
            wanted = {name: candidates[position[name]] for name, candidates in plans.items()}
            answers = self._read(readers, [path for _, path in wanted.values()], reads, memory_only)
            for name, (level, path) in wanted.items():
                answer = answers[path]
                if trace:
                    trace(level, path, _outcome(answer))
                if isinstance(answer, LookupFailed):
                    results[name] = Resolved(name, error=answer)
                elif answer is not None:
                    results[name] = Resolved(name, value=answer, path=path)
                    if position[name] > 0 and not (memory_only and position[name] == started_at[name]):
                        self._remember_position(readers, name, pipeline, position[name], memory_only)
                elif position[name] + 1 < len(plans[name]):
                    position[name] += 1
                    continue
                else:
                    results[name] = Resolved(name)
                del plans[name]
        self._metrics.lookup_seconds.observe(time.perf_counter() - started)
        return results

    def invalidate(self, name: str, team: str, pipeline: str | None) -> list[str]:
        """Forget what is cached of ``name`` (every candidate path, and where it was found) for
        ``team``/``pipeline``, on every node; returns the paths."""
        paths = [path for _, path in self._candidates(name, team, pipeline)]
        self._stacks.invalidate(team, paths, [position_key(name, pipeline)])
        return paths

    def cached(self, name: str, team: str, pipeline: str | None) -> Any | None:
        """The hot path: a value this node's memory answers whole (fresh misses, then a fresh
        value), or ``None`` to take the full path. A few dict lookups; no AWS, no Redis, never
        blocks: the web node calls it on its event loop."""
        started = time.perf_counter()
        try:
            candidates = self._candidates(name, team, pipeline)
        except PipelineSecretsError:
            return None
        readers = self._stacks.for_team(team)
        if readers.cache is None:
            return None
        remembered = None
        if readers.positions_here is not None:
            remembered = readers.positions_here.get(position_key(name, pipeline))
        start = self._remembered_position(remembered, candidates, None)
        for _, path in candidates[start:]:
            entry = readers.cache.fresh(path)
            if entry is None:
                return None
            if entry.found:
                self._metrics.lookup_seconds.observe(time.perf_counter() - started)
                return entry.value
        return None

    def _read(self, readers: TeamReaders, paths: list[str], reads: _Reads, memory_only: bool) -> dict[str, Any]:
        """Fresh cache entries straight away; everything else down the reader stack at once."""
        answers: dict[str, Any] = {}
        if readers.cache is not None:
            for path in paths:
                entry = readers.cache.fresh(path)
                if entry is not None:
                    answers[path] = entry.value if entry.found else None
        misses = [path for path in paths if path not in answers]
        if misses and memory_only:
            raise NotInMemory
        if misses:
            reads.spend(len(misses))
            answers.update(readers.reader.get_many(misses))
        return answers

    # Fallback-aware negative caching (Concourse issue 6052): a var found at team level after a
    # pipeline miss would otherwise cost a pipeline-path call every time the short not-found TTL
    # runs out. Where a name was found is remembered as long as the value itself is cached
    # (not at all when either cache duration is 0: that operator wants new secrets seen at once).

    def _remembered(self, readers: TeamReaders, names: list[str], pipeline: str | None,
                    memory_only: bool = False) -> dict[str, Entry]:
        """The remembered positions of ``names``, asked at once (one round trip with Redis; with
        ``memory_only``, this node's memory of them only)."""
        positions = readers.positions_here if memory_only else readers.positions
        if positions is None or not names:
            return {}
        keys = {position_key(name, pipeline): name for name in names}
        return {keys[key]: entry for key, entry in positions.get_many(list(keys)).items()}

    @staticmethod
    def _remembered_position(entry: Entry | None, candidates: list[tuple[str, str]], trace: Trace | None) -> int:
        if entry is None or entry.fresh_until <= time.time() or not isinstance(entry.value, int) \
                or not 0 <= entry.value < len(candidates):
            return 0
        if trace:
            for level, path in candidates[: entry.value]:
                trace(level, path, "not found (remembered from an earlier lookup)")
        return int(entry.value)

    def _remember_position(self, readers: TeamReaders, name: str, pipeline: str | None, position: int,
                           memory_only: bool = False) -> None:
        positions = readers.positions_here if memory_only else readers.positions  # memory only: no Redis write
        if positions is not None:
            until = time.time() + self.settings.cache_duration
            positions.put(position_key(name, pipeline), Entry(True, position, until, until))




def position_key(name: str, pipeline: str | None) -> str:
    """Where a name's remembered fallback position is kept, within its team's partition."""
    return f"{pipeline or ''}\0{name}"


def _outcome(answer: Any) -> str:
    if isinstance(answer, LookupFailed):
        return f"error: {answer}"
    return "not found" if answer is None else "found"
