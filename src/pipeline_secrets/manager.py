"""The public library API: settings -> AWS backend -> retry -> cache -> lookup rules -> vars."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import vars as vars_
from .backend import SecretReader, SecretsManagerBackend, make_client
from .errors import LookupFailed, PipelineSecretsError, UndefinedVarsError, VarNameError
from .resilience import CachingReader, MemoryStore, RetryingReader
from .settings import Settings, resolve_settings
from .templates import check_scope

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


class Manager:
    """Resolves vars for a team and an optional pipeline. Thread-safe; close it when done."""

    def __init__(
        self, settings: Settings, backend: SecretsManagerBackend, reader: SecretReader, uncached: SecretReader
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._reader = reader
        self._uncached = uncached

    def lookup(self, var: str, *, team: str, pipeline: str | None = None, trace: Trace | None = None) -> Any:
        """The value of one var (the text inside ``((..))``), fields applied.

        Raises ``UndefinedVarsError`` when no candidate path holds the secret, ``LookupFailed``
        when AWS fails, ``VarSyntaxError``/``VarNameError``/``FieldError`` for the var itself.
        """
        ref = vars_.parse_var(var)
        _, value = self._find(ref.path, team, pipeline, trace)
        if value is None:
            raise UndefinedVarsError([ref.path])
        return copy.deepcopy(vars_.walk_fields(value, ref))

    def interpolate(
        self, document: Any, *, team: str, pipeline: str | None = None, allow_missing: bool = False
    ) -> Any:
        """A new document with every ``((var))`` replaced; each secret path is read once.

        The first failure (in name order) is raised: a refused name, then an AWS failure.
        """
        names = [ref.path for ref in vars_.collect_vars(document)]
        resolved = self.resolve(names, team=team, pipeline=pipeline)
        for name in sorted(resolved):
            if resolved[name].error is not None:
                raise resolved[name].error
        secrets = {name: r.value for name, r in resolved.items() if r.found}
        return vars_.interpolate(document, secrets, allow_missing=allow_missing)

    def resolve(self, names: Iterable[str], *, team: str, pipeline: str | None = None) -> dict[str, Resolved]:
        """Resolve secret names (var paths, without fields) to a ``Resolved`` each, never raising
        for one name's failure: a refused name or an AWS failure is that name's ``error``."""
        check_scope(team, pipeline)
        results: dict[str, Resolved] = {}
        for name in dict.fromkeys(names):
            try:
                path, value = self._find(name, team, pipeline, None)
            except (VarNameError, LookupFailed) as exc:
                results[name] = Resolved(name, error=exc)
            else:
                results[name] = Resolved(name, value=value, path=path)
        return results

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

    def lookup_paths(self, *, team: str, pipeline: str | None = None) -> list[str]:
        """The candidate path templates in lookup order, ``{{.Secret}}`` left in place."""
        return self.settings.rules.lookup_paths(team, pipeline)

    def candidate_paths(self, var: str, *, team: str, pipeline: str | None = None) -> list[str]:
        """The paths a lookup of ``var`` would try, in order (checked, not looked up)."""
        ref = vars_.parse_var(var)
        return [path for _, path in self.settings.rules.candidate_paths(ref.path, team, pipeline)]

    def health(self) -> dict[str, Any]:
        """Spec 5: ``{"response": {"status": "UP"}, ...}`` or ``{"error": ..., ...}``."""
        return self._backend.health()

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _find(
        self, name: str, team: str, pipeline: str | None, trace: Trace | None
    ) -> tuple[str | None, Any | None]:
        rules = self.settings.rules
        candidates = rules.candidate_paths(name, team, pipeline)
        if trace:
            for level, template in rules.skipped(pipeline):
                trace(level, template.text, "skipped: no pipeline (one-off build)")
        for level, path in candidates:
            try:
                value = self._reader.get(path)
            except LookupFailed as exc:
                if trace:
                    trace(level, path, f"error: {exc}")
                raise
            if trace:
                trace(level, path, "not found" if value is None else "found")
            if value is not None:
                return path, value
        return None, None


def build_manager(settings: Settings) -> Manager:
    """Assemble the reader stack for ``settings``: backend, retry, then cache."""
    backend = SecretsManagerBackend(make_client(settings))
    retrying = RetryingReader(backend, attempts=settings.retry_attempts, interval=settings.retry_interval)
    reader: SecretReader = retrying
    if settings.cache_enabled:
        reader = CachingReader(
            retrying,
            MemoryStore(settings.cache_purge_interval),
            found_ttl=settings.cache_duration,
            notfound_ttl=settings.cache_duration_notfound,
        )
    return Manager(settings, backend, reader, retrying)


def connect(
    *, environ: Mapping[str, str] | None = None, endpoint_url: str | None = None, **options: Any
) -> Manager:
    """A ``Manager`` configured by keyword options named like the flags (``region``,
    ``cache_duration``...); unset options fall back to the ``CONCOURSE_*`` environment variables,
    then to the defaults. ``endpoint_url`` is for emulators; AWS users leave it to the SDK's
    ``AWS_ENDPOINT_URL*`` variables. Raises ``ConfigError`` for invalid options."""
    return build_manager(resolve_settings(options, environ, endpoint_url=endpoint_url))
