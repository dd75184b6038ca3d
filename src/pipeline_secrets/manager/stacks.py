"""The reader stack, per team: where the cache, its partition and single-flight are assembled."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..aws import SecretReader
from ..config import Settings
from ..metrics import Metrics
from ..resilience import CacheStore, CachingReader, MemoryStore, SingleFlightReader
from ..resilience.redis_tier import INVALIDATE, RedisTier
from ..resilience.shared_cache import Flights, SharedCachingReader, SharedEntries, SharedStore
from .identities import Identities, Namespace


@dataclass(frozen=True)
class Stores:
    """The stores of one manager, shared by every identity it reads with (the cluster's and its
    var sources'): one memory budget (``--secret-cache-max-entries``) in all, and with a Redis
    tier the fleet's shared entries and fetches behind it.

    Invalidation names secrets, not identities: a message says (team, paths, positions), and
    each node drops those entries under every identity it reads with (``namespaces``: with team
    roles, the team's own role), in its memory and in Redis. A node or the CLI reading
    as another identity than the nodes still reaches their entries."""

    answers: MemoryStore | None
    positions: MemoryStore | None
    tier: RedisTier | None = None
    flights: Flights | None = None
    namespaces: OrderedDict[Namespace, None] = field(default_factory=OrderedDict)
    pinned: list[Namespace] = field(default_factory=list)  # the cluster's: never let go

    MAX_NAMESPACES = 256  # var sources' identities (and templates) whose Redis entries a drop reaches

    @classmethod
    def for_settings(cls, settings: Settings, tier: RedisTier | None, metrics: Metrics) -> Stores:
        if not settings.cache_enabled:
            return cls(None, None)
        answers = MemoryStore(settings.cache_purge_interval, settings.cache_max_entries)
        keep_positions = settings.cache_duration > 0 and settings.cache_duration_notfound > 0
        positions = MemoryStore(settings.cache_purge_interval, settings.cache_max_entries) if keep_positions else None
        if tier is None:
            return cls(answers, positions)
        stores = cls(answers, positions, tier, Flights(tier, deadline=settings.lookup_timeout, metrics=metrics))
        tier.on(INVALIDATE, stores.dropped)
        return stores

    def register(self, namespace: Namespace, pinned: bool = False) -> None:
        """An identity this node reads with (or each team's role), under some templates."""
        if pinned:
            if namespace not in self.pinned:
                self.pinned.append(namespace)
            return
        self.namespaces[namespace] = None
        self.namespaces.move_to_end(namespace)
        while len(self.namespaces) > self.MAX_NAMESPACES:
            self.namespaces.popitem(last=False)

    def drop(self, team: str, paths: list[str], position_keys: list[str]) -> None:
        """Drop entries here (memory and Redis, every identity) and tell every node to."""
        self._drop_here(team, paths, position_keys)
        if self.tier is not None:
            self.tier.publish(INVALIDATE, self.tier.sealer.seal_message([team, paths, position_keys]))

    def dropped(self, message: bytes) -> None:
        """Another node's ``drop``: the message is sealed (it names secrets)."""
        opened = self.tier.sealer.open_message(message) if self.tier is not None else None
        if isinstance(opened, list) and len(opened) == 3 and all(isinstance(part, (str, list)) for part in opened):
            team, paths, position_keys = opened
            self._drop_here(str(team), [str(k) for k in paths], [str(k) for k in position_keys])

    def _drop_here(self, team: str, paths: list[str], position_keys: list[str]) -> None:
        if self.answers is not None:
            self.answers.delete_ending(paths, team)
        if self.positions is not None:
            self.positions.delete_ending(position_keys, team)
        if self.tier is not None:
            answers, positions = SharedEntries(self.tier, "answer"), SharedEntries(self.tier, "position")
            namespaces = dict.fromkeys(namespace.prefixes(team) for namespace in [*self.pinned, *list(self.namespaces)])
            for answers_prefix, positions_prefix in namespaces:
                answers.delete([f"{team}\0{answers_prefix}{path}" for path in paths])
                positions.delete([f"{team}\0{positions_prefix}{key}" for key in position_keys])


@dataclass(frozen=True)
class TeamReaders:
    """One team's view of the reader stack: its own cache partition and single-flight."""

    reader: SecretReader
    cache: CachingReader | SharedCachingReader | None
    positions: CacheStore | None
    positions_here: CacheStore | None = None  # this node's memory of them: never waits on Redis


class ReaderStacks:
    """The reader stack, shared by all teams where it holds no answers (backend, retry) and one
    per team where it does: each team's cached answers and remembered positions live in that
    team's partition of one store, so a team that floods the cache evicts its own entries, never
    another team's (see ``MemoryStore``).

    ``identities`` say whom each team reads as (the node, or the team's role); entries are kept
    under that identity, so that the store never gives one identity's answer to another.
    Remembered positions depend on the templates too, and are kept under the identity and the
    templates."""

    def __init__(
        self, settings: Settings, identities: Identities, metrics: Metrics, stores: Stores,
        team_share: Callable[[SecretReader, str], SecretReader] | None = None, pinned: bool = False,
    ) -> None:
        self._settings = settings
        self.identities = identities
        self._team_share = team_share  # wraps what a team's cache reads from (its share of the rate budget)
        self._metrics = metrics
        self._stores = stores
        self._teams: OrderedDict[str, TeamReaders] = OrderedDict()
        self._max_teams = identities.MAX_TEAMS  # views kept: a view holds its team's reader
        self._lock = threading.Lock()
        rules = settings.rules
        self._namespace = identities.namespace(f"{rules.pipeline.text}\0{rules.team.text}\0")
        stores.register(self._namespace, pinned=pinned)

    def prefixes(self, team: str) -> tuple[str, str]:
        """The prefixes of ``team``'s answer and position names: its identity's (and templates')."""
        return self._namespace.prefixes(team)

    def for_team(self, team: str) -> TeamReaders:
        with self._lock:
            readers = self._teams.get(team)
            if readers is None:
                readers = self._teams[team] = self._build(team)
                if len(self._teams) > self._max_teams:
                    self._teams.popitem(last=False)
            else:
                self._teams.move_to_end(team)
            return readers

    def invalidate(self, team: str, paths: list[str], position_keys: list[str]) -> None:
        """Drop the answers of ``paths`` and the remembered positions of ``position_keys`` of
        ``team``, under every identity: from Redis, from this node's memory, and (by a message)
        from every node's."""
        self._stores.drop(team, paths, position_keys)

    def _build(self, team: str) -> TeamReaders:
        settings, stores = self._settings, self._stores
        cache: CachingReader | SharedCachingReader | None = None
        answers_prefix, positions_prefix = self.prefixes(team)
        bottom = self.identities.reader(team)
        below = bottom if self._team_share is None else self._team_share(bottom, team)
        reader: SecretReader = below
        ttls = {"found_ttl": settings.cache_duration, "notfound_ttl": settings.cache_duration_notfound,
                "stale_if_error": settings.cache_stale_if_error}
        if stores.answers is not None:
            memory = stores.answers.partition(team, answers_prefix)
            if stores.tier is not None and stores.flights is not None:
                cache = SharedCachingReader(below, memory, SharedEntries(stores.tier, "answer"), stores.flights,
                                            f"{team}\0{answers_prefix}", metrics=self._metrics, **ttls)
            else:
                cache = CachingReader(below, memory, metrics=self._metrics, **ttls)
            reader = cache
        positions: CacheStore | None = None
        positions_here: CacheStore | None = None
        if stores.positions is not None:
            positions = positions_here = stores.positions.partition(team, positions_prefix)
            if stores.tier is not None:
                positions = SharedStore(positions, SharedEntries(stores.tier, "position"),
                                        f"{team}\0{positions_prefix}")
        return TeamReaders(SingleFlightReader(reader), cache, positions, positions_here)
