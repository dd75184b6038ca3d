"""Var sources a pipeline declares (``pure.var_sources``), made into something that resolves names.

- ``dummy``: a fixed mapping from the document itself (``config.vars``).
- ``secretsmanager``: our lookup rules (rounds, batching, cache, retry) through its own templates,
  region and credentials, as a ``Lookups`` of its own.

Isolation, stricter than Concourse: a source without credentials of its own reads with the node's
identity (with team roles: the team's role, whatever the source's region), so each of its candidate paths must be a path the *node's* templates make for the
pipeline's own team (its pipeline path or its team path), and no other team's or pipeline's by any
reading; anything else is refused before any AWS call, naming the source and whose path it would
be. A source with its own credentials may use any templates: IAM governs what they may read.

The cache never serves one identity's answer to another: each source reads through reader stacks
keyed by its identity (region, endpoint, credentials), in the manager's one store. Sources with the
same identity and templates are built once and kept (a bounded number of them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from ..aws import SecretReader, SecretsManagerBackend, identity_of, make_client
from ..config import Settings
from ..config.settings import check_credentials
from ..errors import ConfigError, VarNameError, VarSourceConfigError
from ..metrics import Metrics
from ..pure.templates import LookupRules, SecretTemplate
from ..pure.var_sources import VarSourceSpec
from ..resilience import RetryingReader
from .identities import Identities, NodeIdentity, TeamRoleIdentities
from .lookups import Lookups, NotInMemory, Resolved, Trace
from .stacks import ReaderStacks, Stores

# Concourse's defaults for a secretsmanager var source's templates.
DEFAULT_TEMPLATES = {
    "pipeline_secret_template": "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}",
    "team_secret_template": "/concourse/{{.Team}}/{{.Secret}}",
    "shared_secret_template": "",
}


class Source(Protocol):
    """What a declared var source does: resolve secret names for a team and pipeline."""

    kind: str

    def refusals(self, names: Iterable[str], team: str, pipeline: str | None) -> dict[str, Resolved]: ...

    def resolve(
        self, names: Iterable[str], team: str, pipeline: str | None, trace: Trace | None = None,
        *, refuse_early: bool = False, memory_only: bool = False,
    ) -> dict[str, Resolved]: ...


class DummySource:
    """``type: dummy``: the values are in the document (examples and tests)."""

    kind = "dummy"

    def __init__(self, name: str, values: Mapping[str, Any], metrics: Metrics) -> None:
        self.name = name
        self._values = values
        self._metrics = metrics

    def refusals(self, names: Iterable[str], team: str, pipeline: str | None) -> dict[str, Resolved]:
        return {}

    def resolve(
        self, names: Iterable[str], team: str, pipeline: str | None, trace: Trace | None = None,
        *, refuse_early: bool = False, memory_only: bool = False,
    ) -> dict[str, Resolved]:
        out = {}
        names = list(dict.fromkeys(names))
        self._metrics.var_source_lookup(self.name, self.kind, len(names))
        for name in names:
            found = name in self._values
            if trace:
                trace(self.name, f"{self.name}:{name}", "found" if found else "not found")
            out[name] = Resolved(name, value=self._values[name], path=f"{self.name}:{name}") if found else Resolved(name)
        return out


class SecretsManagerSource:
    """``type: secretsmanager``: our lookup rules with the source's own settings."""

    kind = "secretsmanager"

    def __init__(self, name: str, lookups: Lookups, metrics: Metrics) -> None:
        self.name = name
        self._lookups = lookups
        self._metrics = metrics

    def refusals(self, names: Iterable[str], team: str, pipeline: str | None) -> dict[str, Resolved]:
        return self._lookups.refusals(names, team, pipeline)

    def resolve(
        self, names: Iterable[str], team: str, pipeline: str | None, trace: Trace | None = None,
        *, refuse_early: bool = False, memory_only: bool = False,
    ) -> dict[str, Resolved]:
        def named(level: str, path: str, outcome: str) -> None:
            assert trace is not None
            trace(f"{self.name}:{level}", path, outcome)

        names = list(dict.fromkeys(names))
        self._metrics.var_source_lookup(self.name, self.kind, len(names))
        return self._lookups.resolve(names, team, pipeline, named if trace else None, refuse_early=refuse_early,
                                     memory_only=memory_only)


class SourceFactory:
    """Builds the sources a document declares, for the cluster-wide settings it is given."""

    MAX_KEPT = 32  # secretsmanager sources kept (by identity and templates) between documents

    def __init__(
        self, cluster: Settings, cluster_identities: Identities, stores: Stores, metrics: Metrics,
        team_share: Callable[[SecretReader, str], SecretReader] | None = None,
    ) -> None:
        self._cluster = cluster
        self._team_share = team_share  # a team's share of the rate budget covers its var sources too
        self._cluster_identity = identity_of(cluster)
        self._cluster_identities = cluster_identities
        self._stores = stores
        self._metrics = metrics
        self._kept: OrderedDict[tuple[str, str, str], tuple[Lookups, SecretsManagerBackend | None]] = OrderedDict()
        self._lock = threading.Lock()

    def build(self, spec: VarSourceSpec, config: Mapping[str, Any], *, memory_only: bool = False) -> Source:
        """The source of ``spec``, whose config's ``((vars))`` the caller has resolved (``config``).
        ``memory_only``: ``NotInMemory`` rather than build a new AWS client."""
        if spec.type == "dummy":
            values = config.get("vars", {})
            if not isinstance(values, Mapping):
                raise VarSourceConfigError(f"var source '{spec.name}': config.vars must be a mapping")
            return DummySource(spec.name, values, self._metrics)
        return SecretsManagerSource(spec.name, self._secretsmanager(spec.name, config, memory_only), self._metrics)

    def close(self) -> None:
        with self._lock:
            for _, backend in self._kept.values():
                if backend is not None:
                    backend.close()
            self._kept.clear()

    def _secretsmanager(self, name: str, config: Mapping[str, Any], memory_only: bool = False) -> Lookups:
        settings = self._settings(name, config)
        # Its own credentials are the config's, not those it ends up with (the node's, without).
        own_credentials = bool(config.get("access_key"))
        identity = identity_of(settings)
        key = (identity, str(own_credentials), "\0".join(t.text for _, t in settings.rules.configured()))
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept[0]
        if memory_only:
            raise NotInMemory
        backend: SecretsManagerBackend | None = None
        identities: Identities
        if identity == self._cluster_identity:  # the node's identity: with team roles, the team's role
            identities = self._cluster_identities
        elif not own_credentials and isinstance(self._cluster_identities, TeamRoleIdentities):
            # the node's credentials in another region: still each team's role, never the node's
            identities = self._cluster_identities.for_region(settings)
        else:
            backend = SecretsManagerBackend(make_client(settings), batch=settings.batch, metrics=self._metrics)
            reader = RetryingReader(backend, attempts=settings.retry_attempts, interval=settings.retry_interval,
                                    deadline=settings.lookup_timeout, metrics=self._metrics)
            identities = NodeIdentity(reader, identity, backend)
        stacks = ReaderStacks(settings, identities, self._metrics, self._stores, team_share=self._team_share)
        candidates = settings.rules.rendered_paths if own_credentials else self._within_team(name, settings.rules)
        lookups = Lookups(settings, stacks, candidates, self._metrics)
        with self._lock:
            self._kept[key] = (lookups, backend)
            while len(self._kept) > self.MAX_KEPT:
                self._kept.popitem(last=False)  # in use elsewhere maybe: let it go, do not close it
        return lookups

    def _settings(self, name: str, config: Mapping[str, Any]) -> Settings:
        where = f"var source '{name}'"
        values = {key: config.get(key) for key in ("access_key", "secret_key", "session_token", "region")}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise VarSourceConfigError(f"{where}: config.{key} must be a string")
        if not values["region"]:
            raise VarSourceConfigError(f"{where}: config.region is required")
        try:
            check_credentials(values, where=lambda key: f"{where}: config.{key}")
        except ConfigError as exc:
            raise VarSourceConfigError(str(exc)) from None
        templates = {}
        for key, default in DEFAULT_TEMPLATES.items():
            text = config.get(key, default)
            if not isinstance(text, str):
                raise VarSourceConfigError(f"{where}: config.{key} must be a string")
            try:
                templates[key] = SecretTemplate.parse(text) if text else None
            except ValueError as exc:
                raise VarSourceConfigError(f"{where}: config.{key}: {exc}") from None
        if templates["pipeline_secret_template"] is None or templates["team_secret_template"] is None:
            raise VarSourceConfigError(f"{where}: the pipeline and team templates may not be empty")
        rules = LookupRules(templates["pipeline_secret_template"], templates["team_secret_template"],
                            templates["shared_secret_template"])
        if values["access_key"]:
            credentials = {k: values[k] for k in ("access_key", "secret_key", "session_token")}
        else:  # the node's own identity: its flags, or the SDK's chain
            credentials = {k: getattr(self._cluster, k) for k in ("access_key", "secret_key", "session_token")}
        return replace(self._cluster, region=values["region"], rules=rules, **credentials)

    def _within_team(self, name: str, rules: LookupRules) -> Callable[[str, str, str | None], list[tuple[str, str]]]:
        cluster_rules = self._cluster.rules

        def candidates(secret: str, team: str, pipeline: str | None) -> list[tuple[str, str]]:
            paths = rules.rendered_paths(secret, team, pipeline)
            for level, path in paths:
                owner = cluster_rules.foreign_owner(path, team, pipeline)
                if owner is None and cluster_rules.in_own_scope(path, team, pipeline):
                    continue
                whose = f"the path of {owner}" if owner else f"not a path of team '{team}'"
                raise VarNameError(
                    f"var '{name}:{secret}' refused: var source '{name}' has no credentials of its own, so it "
                    f"may only read team '{team}''s paths, and its {level} path '{path}' is {whose}"
                )
            return paths

        return candidates
