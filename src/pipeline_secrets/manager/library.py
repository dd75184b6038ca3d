"""The public library API: ``Manager``, over the cluster-wide ``Lookups`` and the var sources."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from ..aws import HEALTH_CHECK_SECRET, SecretsManagerBackend
from ..config import Settings
from ..errors import ConfigError, LookupFailed, UndefinedVarsError, VarSourceError
from ..metrics import Metrics
from ..pure import vars as vars_
from ..pure.limits import DocumentLimits
from ..resilience.redis_tier import RedisTier
from ..resilience.shared_tokens import SharedTokens
from .documents import DocumentVars, resolve_document
from .identities import Identities, TeamRoleIdentities
from .lookups import Lookups, NotInMemory, PathProbe, Resolved, Trace, parse_var
from .sources import SourceFactory
from .stacks import Stores


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
        cluster: Lookups,
        *,
        sources: SourceFactory,
        identities: Identities,
        metrics: Metrics,
        stores: Stores,
        tier: RedisTier | None = None,
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._cluster = cluster
        self._sources = sources
        self._identities = identities
        self._metrics = metrics
        self._stores = stores
        self._tier = tier

    def lookup(self, var: str, *, team: str, pipeline: str | None = None, trace: Trace | None = None) -> Any:
        """The value of one var (the text inside ``((..))``), fields applied. ``pipeline=""`` is
        a one-off build (no pipeline), as in Concourse.

        Raises ``UndefinedVarsError`` when no candidate path holds the secret, ``LookupFailed``
        when AWS fails, ``VarSyntaxError``/``VarNameError``/``FieldError`` for the var itself,
        ``VarSourceError`` for a var with a source (only a document can declare one).
        """
        ref = parse_var(var)
        if ref.source is not None:
            raise VarSourceError(
                f"var '{ref}' is build-local, set at run time by load_var: it is never looked up" if ref.local
                else f"missing source '{ref.source}' in var: {ref}"
            )
        pipeline = pipeline or None
        value = self._cluster.cached(ref.path, team, pipeline) if trace is None else None
        if value is None:
            result = self._cluster.resolve([ref.path], team, pipeline, trace)[ref.path]
            if result.error is not None:
                raise result.error
            if not result.found:
                raise UndefinedVarsError([str(ref)])
            value = result.value
        return copy.deepcopy(vars_.walk_fields(value, ref))

    def lookup_cached(self, var: str, *, team: str, pipeline: str | None = None) -> tuple[bool, Any]:
        """(True, value) when this process's memory answers ``lookup`` whole, else (False, None);
        never blocks (no AWS, no Redis, no lock held for long), so an event loop may call it. The
        errors of the var itself (syntax, fields) are raised as ``lookup`` raises them."""
        ref = parse_var(var)
        if ref.source is not None:
            return False, None
        value = self._cluster.cached(ref.path, team, pipeline or None)
        if value is None:
            return False, None
        return True, copy.deepcopy(vars_.walk_fields(value, ref))

    def interpolate(
        self, document: Any, *, team: str, pipeline: str | None = None, allow_missing: bool = False,
        drop_var_sources: bool = False, trace: Trace | None = None,
    ) -> Any:
        """A new document with every ``((var))`` replaced; each secret path is read once.

        The document's ``var_sources`` are honoured: ``((name:var))`` reads through the source it
        declares (its block is kept in the output, unless ``drop_var_sources``); build-local vars
        ``((.:name))`` stay as written. Refused vars fail the call before any AWS call; then the
        first failure (in var order) is raised: a refused var, then an AWS failure.
        ``LimitError`` when the document has more vars than ``max_document_vars``, needs more
        reads than ``max_secret_reads``, or would expand past ``max_expanded_bytes``.
        """
        limits = self.settings.limits
        resolution = self.resolve_document(document, team=team, pipeline=pipeline, refuse_early=True, trace=trace)
        resolution.raise_first()
        out = vars_.interpolate(resolution.body, resolution.secrets, sourced=resolution.sourced,
                                allow_missing=allow_missing, limits=limits, refs=resolution.refs)
        return resolution.reassemble(out, drop_var_sources=drop_var_sources)

    def interpolate_cached(
        self, document: Any, *, team: str, pipeline: str | None = None, allow_missing: bool = False,
        drop_var_sources: bool = False, limits: DocumentLimits | None = None,
    ) -> tuple[bool, Any]:
        """(True, ``interpolate``'s answer) when this process's memory answers every var of
        ``document``, else (False, None); as ``lookup_cached``, never blocks, so an event loop may
        call it. ``limits`` (default: the settings') bound what it builds: the web node passes
        tighter ones than the settings' so that its loop is never held long. Errors are raised
        as ``interpolate`` raises them."""
        limits = limits or self.settings.limits
        try:
            resolution = resolve_document(self._cluster, self._sources, document, team=team, pipeline=pipeline or None,
                                          limits=limits, refuse_early=True, memory_only=True)
        except NotInMemory:
            return False, None
        resolution.raise_first()
        out = vars_.interpolate(resolution.body, resolution.secrets, sourced=resolution.sourced,
                                allow_missing=allow_missing, limits=limits, refs=resolution.refs)
        return True, resolution.reassemble(out, drop_var_sources=drop_var_sources)

    def resolve_document(
        self, document: Any, *, team: str, pipeline: str | None = None, refuse_early: bool = False,
        trace: Trace | None = None,
    ) -> DocumentVars:
        """Every var of ``document``, resolved (through its var sources too), without raising for
        one var's failure unless ``refuse_early`` (see ``manager.documents``)."""
        return resolve_document(self._cluster, self._sources, document, team=team, pipeline=pipeline or None,
                                limits=self.settings.limits, refuse_early=refuse_early, trace=trace)

    def resolve(self, names: Iterable[str], *, team: str, pipeline: str | None = None) -> dict[str, Resolved]:
        """Resolve secret names (var paths, without fields) to a ``Resolved`` each, never raising
        for one name's failure: a refused name or an AWS failure is that name's ``error``.
        ``LimitError`` when the names need more than ``max_secret_reads`` reads."""
        return self._cluster.resolve(names, team, pipeline or None)

    def probe(self, name: str, *, team: str, pipeline: str | None = None) -> list[PathProbe]:
        """Ask every candidate path of ``name``, bypassing the cache, and say for each whether it
        is readable, not found or failing. Values are read (that is what the permission is for)
        but never returned. With team roles, the paths are read as ``team``'s role."""
        probes = []
        reader = self._identities.reader(team)
        for level, path in self.settings.rules.candidate_paths(name, team, pipeline):
            try:
                found = reader.get(path) is not None
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
        arn = self._backend.put(paths[level], value)
        self._cluster.invalidate(name, team, pipeline or None)  # what it wrote is seen at once, fleet-wide
        return paths[level], arn

    def invalidate(self, var: str, *, team: str, pipeline: str | None = None) -> list[str]:
        """Forget what every node has cached of ``var`` (its candidate paths, and where it was
        last found) for ``team``/``pipeline``: from Redis and, by pub/sub, from each node's memory
        (without Redis: this manager's memory only). Returns the paths forgotten."""
        ref = parse_var(var)
        if ref.source is not None:
            raise VarSourceError(f"var '{ref}': only the cluster-wide manager's cache can be invalidated")
        return self._cluster.invalidate(ref.path, team, pipeline or None)

    def shared_tokens(self, per_user: int) -> SharedTokens | None:
        """Bearer tokens shared through the fleet's Redis tier, or None without one."""
        return None if self._tier is None else SharedTokens(self._tier, per_user=per_user)

    def tier(self) -> dict[str, Any] | None:
        """The shared tier as this node sees it (for info endpoints), or None without Redis."""
        if self._tier is None:
            return None
        snapshot = self._metrics.snapshot()
        return {"connected": self._tier.connected, "url": self._tier.url,
                "shared_cache": snapshot.get("shared_cache", {}), "fleet": snapshot.get("fleet", {}),
                "rate_budget_waits": snapshot.get("rate_budget_waits", {}),
                "breaker": "open" if self._tier.breaker.is_open else "closed"}

    def lookup_paths(self, *, team: str, pipeline: str | None = None) -> list[str]:
        """The candidate path templates in lookup order, ``{{.Secret}}`` left in place."""
        return self.settings.rules.lookup_paths(team, pipeline)

    def candidate_paths(self, var: str, *, team: str, pipeline: str | None = None) -> list[str]:
        """The paths a lookup of ``var`` would try, in order (checked, not looked up)."""
        ref = parse_var(var)
        return [path for _, path in self.settings.rules.candidate_paths(ref.path, team, pipeline)]

    def roles(self, probe_team: str | None = None) -> dict[str, Any] | None:
        """The team roles as this node sees them (for info endpoints), None without roles. With
        ``probe_team``, whether its role session can be had (an AssumeRole when it has none yet)."""
        roles = self.settings.roles
        if not roles.enabled:
            return None
        info: dict[str, Any] = {"template": roles.template.text if roles.template else None,
                                "teams_with_own_role": len(roles.overrides),
                                "session_duration_seconds": int(self.settings.team_role_duration)}
        if probe_team is not None and isinstance(self._identities, TeamRoleIdentities):
            probe: dict[str, Any] = {"team": probe_team}
            try:
                probe["role"] = self._identities.role_of(probe_team).arn
                session = self._identities.session(probe_team)
                assert session is not None
                session.credentials(HEALTH_CHECK_SECRET)
                probe["assume_role"] = "ok"
            except ValueError as exc:
                probe["assume_role"] = str(exc)
            except LookupFailed as exc:
                probe["assume_role"] = exc.reason
            info["probe"] = probe
        return info

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
        self._sources.close()
        if isinstance(self._identities, TeamRoleIdentities):
            self._identities.close()
        self._backend.close()
        if self._tier is not None:
            self._tier.close()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
