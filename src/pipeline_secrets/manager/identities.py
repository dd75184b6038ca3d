"""Whom each team's lookups read as: the node's own identity, or (with team roles) the team's role.

With a role template or a teams-file ``role_arn``, no secret is ever read with the node's identity:
each team reads through its own role session (``aws.roles``), with a backend (and so batches) of
its own, behind its own retry. The cache keys what it was answered by the identity it read as,
so a secret one team's role may read is never served from the cache to a team whose role may not.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..aws import SecretReader, SecretsManagerBackend, identity_of, make_client
from ..aws.backend import CallBudget, calls_for_mode
from ..aws.credentials import make_sts_client
from ..aws.roles import AssumedRole, RoleReader
from ..config import Settings
from ..config.roles import TeamRole, TeamRoles, session_tags
from ..errors import LookupFailed
from ..metrics import Metrics
from ..resilience import RetryingReader


@dataclass(frozen=True)
class RoleNaming:
    """The name of whom a team reads as when it reads as its role: worked out from settings
    alone (no client, no session), so that invalidation can name any team's role entries."""

    region: str
    endpoint: str
    roles: TeamRoles

    def identity(self, team: str) -> str:
        try:
            role = self.roles.role_of(team)
        except ValueError:
            role = None
        return f"refused|{team}" if role is None else f"{self.region}|{self.endpoint}|{role.identity}"


@dataclass(frozen=True)
class Namespace:
    """Whose cache entries are whose: the prefixes of a team's answer and position names, for one
    identity (``fixed``) or each team's role (``roles``), under some templates. Small and
    hashable: the stores keep these (not the readers) to reach every identity's entries."""

    templates: str
    fixed: str | None = None
    roles: RoleNaming | None = None

    def prefixes(self, team: str) -> tuple[str, str]:
        identity = self.fixed if self.fixed is not None else self.roles.identity(team) if self.roles else ""
        return f"{identity}\0", f"{identity}\0{self.templates}"


class Identities(Protocol):
    """A team's reader, and the namespace of whom it reads as (the cache's keys). ``MAX_TEAMS``:
    how many teams' readers are worth keeping (a reader stack's view holds its team's reader)."""

    MAX_TEAMS: int

    def namespace(self, templates: str) -> Namespace: ...

    def reader(self, team: str) -> SecretReader: ...

    def calls_for(self, team: str, paths: int) -> int: ...


class NodeIdentity:
    """Every team reads with the node's identity (no roles configured)."""

    MAX_TEAMS = 4096  # one reader for all: a view is cheap to make again, its entries stay in the store

    def __init__(self, reader: SecretReader, name: str, backend: SecretsManagerBackend) -> None:
        self._reader = reader
        self._name = name
        self._backend = backend

    def namespace(self, templates: str) -> Namespace:
        return Namespace(templates, fixed=self._name)

    def reader(self, team: str) -> SecretReader:
        return self._reader

    def calls_for(self, team: str, paths: int) -> int:
        return self._backend.calls_for(paths)


class _Refused:
    """The reader of a team the role template cannot name a role for: every path fails, no call."""

    def __init__(self, why: str) -> None:
        self._why = why

    def get(self, path: str) -> Any | None:
        raise LookupFailed(path, "assume-role", self._why)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        return {path: LookupFailed(path, "assume-role", self._why) for path in paths}


class TeamRoleIdentities:
    """Each team reads as its role (``settings.roles``): a session and a backend per team, made on
    the team's first lookup and kept for the most recent ``MAX_TEAMS`` teams (a client is about
    0.3 MB; a team that comes back after eviction assumes its role again). The backends share one
    pool of threads and the node's rate budget (the account's quota is one)."""

    MAX_TEAMS = 256
    MAX_REGIONS = 16  # other regions or endpoints (var sources) read from

    def __init__(self, settings: Settings, sts: Any, metrics: Metrics, budget: CallBudget | None = None,
                 workers: int = 32, pool: ThreadPoolExecutor | None = None) -> None:
        self._settings = settings
        self._naming = RoleNaming(settings.region, settings.endpoint_url or "", settings.roles)
        self._sts = sts
        self._metrics = metrics
        self._budget = budget
        self._workers = workers
        self._owns_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(workers, thread_name_prefix="pipeline-secrets-aws-roles")
        self._teams: OrderedDict[str, tuple[SecretReader, RoleReader | None]] = OrderedDict()
        self._siblings: OrderedDict[str, TeamRoleIdentities] = OrderedDict()
        self._lock = threading.Lock()

    def role_of(self, team: str) -> TeamRole:
        """``team``'s role; ``ValueError`` when the template cannot make one for it."""
        role = self._settings.roles.role_of(team)
        if role is None:  # a teams file names roles for some teams, and there is no template
            raise ValueError(f"team '{team}' has no role: set --aws-secretsmanager-team-role-template, or a "
                             "role_arn for it in the teams file (with team roles, no team reads as the node)")
        return role

    def namespace(self, templates: str) -> Namespace:
        return Namespace(templates, roles=self._naming)

    def for_region(self, settings: Settings) -> TeamRoleIdentities:
        """The teams' roles read from another region or endpoint (a var source's): one per
        region, endpoint and node credentials, sharing this one's pool and rate budget."""
        key = identity_of(settings)
        with self._lock:
            sibling = self._siblings.get(key)
            if sibling is None:
                sibling = self._siblings[key] = TeamRoleIdentities(
                    settings, make_sts_client(settings), self._metrics, self._budget, pool=self._pool)
                while len(self._siblings) > self.MAX_REGIONS:
                    self._siblings.popitem(last=False)  # maybe in use: let it go
            else:
                self._siblings.move_to_end(key)
            return sibling

    def reader(self, team: str) -> SecretReader:
        return self._entry(team)[0]

    def calls_for(self, team: str, paths: int) -> int:
        with self._lock:  # never makes a session: the rate budget's count only
            entry = self._teams.get(team)
        backend = entry[1].backend if entry is not None and entry[1] is not None else None
        return backend.calls_for(paths) if backend is not None else calls_for_mode(self._settings.batch, paths)

    def session(self, team: str) -> AssumedRole | None:
        """The team's role session (for probes), None when it has no role."""
        role_reader = self._entry(team)[1]
        return None if role_reader is None else role_reader.session

    def close(self) -> None:
        with self._lock:
            siblings = list(self._siblings.values())
            self._siblings.clear()
            for _, role_reader in self._teams.values():
                if role_reader is not None:
                    role_reader.close()
            self._teams.clear()
        for sibling in siblings:
            sibling.close()
        if self._owns_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _entry(self, team: str) -> tuple[SecretReader, RoleReader | None]:
        with self._lock:
            entry = self._teams.get(team)
            if entry is not None:
                self._teams.move_to_end(team)
                return entry
        entry = self._make(team)  # no AWS call yet: the session's first AssumeRole is on first read
        with self._lock:
            entry = self._teams.setdefault(team, entry)
            while len(self._teams) > self.MAX_TEAMS:
                self._teams.popitem(last=False)  # maybe in use: let it go, do not close it
        return entry

    def _make(self, team: str) -> tuple[SecretReader, RoleReader | None]:
        settings = self._settings
        try:
            role = self.role_of(team)
            session_tags(team)  # a team IAM cannot tag is refused here, not in the middle of a read
        except ValueError as exc:
            return _Refused(str(exc)), None
        session = AssumedRole(self._sts, role, team, settings.team_role_duration, self._metrics, self._budget)

        def backend(credentials: Any) -> SecretsManagerBackend:
            return SecretsManagerBackend(make_client(settings, credentials), batch=settings.batch,
                                         metrics=self._metrics, budget=self._budget, pool=self._pool,
                                         workers=self._workers)

        role_reader = RoleReader(session, backend)
        retrying = RetryingReader(role_reader, attempts=settings.retry_attempts, interval=settings.retry_interval,
                                  deadline=settings.lookup_timeout, metrics=self._metrics)
        return retrying, role_reader
