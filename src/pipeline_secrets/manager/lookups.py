"""The lookup rules over the reader stack: candidate paths in rounds, remembered positions, budgets,
the hot path; the public ``Manager``."""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..aws import SecretReader, SecretsManagerBackend
from ..config import Settings
from ..errors import ConfigError, LimitError, LookupFailed, PipelineSecretsError, UndefinedVarsError, VarNameError
from ..metrics import Metrics
from ..pure import vars as vars_
from ..pure.limits import MAX_VARS_FLAG
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
        return self.value is not None


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

_parse_var = functools.lru_cache(maxsize=4096)(vars_.parse_var)


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


class Manager:
    """Resolves vars for a team and an optional pipeline. Thread-safe; close it when done.

    All the names a call needs are resolved together, in rounds: every name's first candidate
    path in one batched read, then the next candidate of the names not found, and so on, so a
    document costs at most one round trip per template level, not one per var and path. Every
    name is checked before the first round, so a refused name costs no AWS call at all.
    """

    def __init__(
        self,
        settings: Settings,
        backend: SecretsManagerBackend,
        stacks: ReaderStacks,
        *,
        uncached: SecretReader,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._stacks = stacks
        self._uncached = uncached
        self._metrics = metrics or Metrics()
        self._candidates = functools.lru_cache(maxsize=8192)(settings.rules.candidate_paths)

    def lookup(self, var: str, *, team: str, pipeline: str | None = None, trace: Trace | None = None) -> Any:
        """The value of one var (the text inside ``((..))``), fields applied.

        Raises ``UndefinedVarsError`` when no candidate path holds the secret, ``LookupFailed``
        when AWS fails, ``VarSyntaxError``/``VarNameError``/``FieldError`` for the var itself.
        """
        ref = _parse_var(var)
        value = self._cached(ref.path, team, pipeline) if trace is None else None
        if value is None:
            result = self._resolve([ref.path], team, pipeline, trace)[ref.path]
            if result.error is not None:
                raise result.error
            if not result.found:
                raise UndefinedVarsError([str(ref)])
            value = result.value
        return copy.deepcopy(vars_.walk_fields(value, ref))

    def interpolate(
        self, document: Any, *, team: str, pipeline: str | None = None, allow_missing: bool = False
    ) -> Any:
        """A new document with every ``((var))`` replaced; each secret path is read once.

        Refused names fail the call before any AWS call; then the first failure (in name order)
        is raised: a refused name, then an AWS failure. ``LimitError`` when the document has more
        vars than ``max_document_vars``, needs more reads than ``max_secret_reads``, or would
        expand past ``max_expanded_bytes``.
        """
        limits = self.settings.limits
        refs = vars_.collect_vars(document)
        if len(refs) > limits.max_vars:
            raise LimitError(
                f"document has more than {limits.max_vars:,} distinct vars ({MAX_VARS_FLAG})"
            )
        names = [ref.path for ref in refs]
        resolved = self._resolve(names, team, pipeline, None, refuse_early=True)
        for name in sorted(resolved):
            if resolved[name].error is not None:
                raise resolved[name].error
        secrets = {name: r.value for name, r in resolved.items() if r.found}
        return vars_.interpolate(document, secrets, allow_missing=allow_missing, limits=limits)

    def resolve(self, names: Iterable[str], *, team: str, pipeline: str | None = None) -> dict[str, Resolved]:
        """Resolve secret names (var paths, without fields) to a ``Resolved`` each, never raising
        for one name's failure: a refused name or an AWS failure is that name's ``error``.
        ``LimitError`` when the names need more than ``max_secret_reads`` reads."""
        return self._resolve(names, team, pipeline, None)
    def probe(self, name: str, *, team: str, pipeline: str | None = None) -> list[PathProbe]:
        """Ask every candidate path of ``name``, bypassing the cache, and say for each whether it
        is readable, not found or failing. Values are read (that is what the permission is for)
        but never returned."""
        probes = []
        for level, path in self.settings.rules.candidate_paths(name, team, pipeline):
            try:
                found = self._uncached.get(path) is not None
            except LookupFailed as exc:
                probes.append(PathProbe(level, path, "error", exc))
            else:
                probes.append(PathProbe(level, path, "readable" if found else "not found"))
        return probes

    def put(
        self, name: str, value: str, *, team: str, pipeline: str | None = None, level: str = "pipeline"
    ) -> tuple[str, str]:
        """Store ``value`` as plaintext at the ``level`` path ("pipeline", "team" or "shared") a
        lookup of ``name`` reads; returns (path, ARN). The name is checked exactly as lookups
        check it, so nothing is written where no lookup finds it or into another team's or
        pipeline's scope. Raises ``ConfigError`` when that level has no path here (no pipeline,
        no shared template), ``LookupFailed`` when AWS refuses. This Manager's cache may serve
        the previous value until its entry expires."""
        paths = dict(self.settings.rules.candidate_paths(name, team, pipeline))
        if level not in paths:
            why = "give --pipeline" if level == "pipeline" else "no shared secret template is configured"
            raise ConfigError(f"no {level}-level path for '{name}': {why}")
        return paths[level], self._backend.put(paths[level], value)

    def lookup_paths(self, *, team: str, pipeline: str | None = None) -> list[str]:
        """The candidate path templates in lookup order, ``{{.Secret}}`` left in place."""
        return self.settings.rules.lookup_paths(team, pipeline)

    def candidate_paths(self, var: str, *, team: str, pipeline: str | None = None) -> list[str]:
        """The paths a lookup of ``var`` would try, in order (checked, not looked up)."""
        ref = _parse_var(var)
        return [path for _, path in self.settings.rules.candidate_paths(ref.path, team, pipeline)]

    def health(self) -> dict[str, Any]:
        """Spec 5: ``{"response": {"status": "UP"}, ...}`` or ``{"error": ..., ...}``."""
        return self._backend.health()

    def metrics(self) -> dict[str, Any]:
        """Counters of this manager: AWS calls by operation and outcome, cache hits, misses and
        stale serves, throttles, retries, lookups and their total time."""
        return self._metrics.snapshot()

    @property
    def metrics_registry(self) -> Any:
        """The prometheus-client registry behind ``metrics()``, for exporters."""
        return self._metrics.registry

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _resolve(
        self, names: Iterable[str], team: str, pipeline: str | None, trace: Trace | None,
        *, refuse_early: bool = False,
    ) -> dict[str, Resolved]:
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
        position = {name: self._remembered_position(readers, name, pipeline, plan, trace)
                    for name, plan in plans.items()}
        reads = _Reads(self.settings.max_secret_reads)
        while plans:
            wanted = {name: candidates[position[name]] for name, candidates in plans.items()}
            answers = self._read(readers, [path for _, path in wanted.values()], reads)
            for name, (level, path) in wanted.items():
                answer = answers[path]
                if trace:
                    trace(level, path, _outcome(answer))
                if isinstance(answer, LookupFailed):
                    results[name] = Resolved(name, error=answer)
                elif answer is not None:
                    results[name] = Resolved(name, value=answer, path=path)
                    if position[name] > 0:
                        self._remember_position(readers, name, pipeline, position[name])
                elif position[name] + 1 < len(plans[name]):
                    position[name] += 1
                    continue
                else:
                    results[name] = Resolved(name)
                del plans[name]
        self._metrics.lookup_seconds.observe(time.perf_counter() - started)
        return results

    def _cached(self, name: str, team: str, pipeline: str | None) -> Any | None:
        """The hot path: a value the cache answers whole (fresh misses, then a fresh value), or
        ``None`` to take the full path. A few dict lookups; no AWS, no allocation of results."""
        started = time.perf_counter()
        try:
            candidates = self._candidates(name, team, pipeline)
        except PipelineSecretsError:
            return None
        readers = self._stacks.for_team(team)
        if readers.cache is None:
            return None
        start = self._remembered_position(readers, name, pipeline, candidates, None)
        for _, path in candidates[start:]:
            entry = readers.cache.fresh(path)
            if entry is None:
                return None
            if entry.found:
                self._metrics.lookup_seconds.observe(time.perf_counter() - started)
                return entry.value
        return None

    def _read(self, readers: TeamReaders, paths: list[str], reads: _Reads) -> dict[str, Any]:
        """Fresh cache entries straight away; everything else down the reader stack at once."""
        answers: dict[str, Any] = {}
        if readers.cache is not None:
            for path in paths:
                entry = readers.cache.fresh(path)
                if entry is not None:
                    answers[path] = entry.value if entry.found else None
        misses = [path for path in paths if path not in answers]
        if misses:
            reads.spend(len(misses))
            answers.update(readers.reader.get_many(misses))
        return answers

    # Fallback-aware negative caching (Concourse issue 6052): a var found at team level after a
    # pipeline miss would otherwise cost a pipeline-path call every time the short not-found TTL
    # runs out. Where a name was found is remembered as long as the value itself is cached
    # (not at all when either cache duration is 0: that operator wants new secrets seen at once).

    def _remembered_position(
        self, readers: TeamReaders, name: str, pipeline: str | None, candidates: list[tuple[str, str]],
        trace: Trace | None,
    ) -> int:
        if readers.positions is None:
            return 0
        entry = readers.positions.get(_position_key(name, pipeline))
        if entry is None or entry.fresh_until <= time.time() or entry.value >= len(candidates):
            return 0
        if trace:
            for level, path in candidates[: entry.value]:
                trace(level, path, "not found (remembered from an earlier lookup)")
        return int(entry.value)

    def _remember_position(self, readers: TeamReaders, name: str, pipeline: str | None, position: int) -> None:
        if readers.positions is not None:
            until = time.time() + self.settings.cache_duration
            readers.positions.put(_position_key(name, pipeline), Entry(True, position, until, until))


def _position_key(name: str, pipeline: str | None) -> str:
    return f"{pipeline or ''}\0{name}"  # within the team's partition


def _outcome(answer: Any) -> str:
    if isinstance(answer, LookupFailed):
        return f"error: {answer}"
    return "not found" if answer is None else "found"
