"""The reader stack, per team: where the cache, its partition and single-flight are assembled."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..aws import SecretReader
from ..config import Settings
from ..metrics import Metrics
from ..resilience import CacheStore, CachingReader, MemoryStore, SingleFlightReader
from ..resilience.redis_tier import INVALIDATE, RedisTier
from ..resilience.shared_cache import Flights, SharedCachingReader, SharedEntries, SharedStore


@dataclass(frozen=True)
class Stores:
    """The stores of one manager, shared by every identity it reads with (the cluster's and its
    var sources'): one memory budget (``--secret-cache-max-entries``) in all, and with a Redis
    tier the fleet's shared entries and fetches behind it."""

    answers: MemoryStore | None
    positions: MemoryStore | None
    tier: RedisTier | None = None
    flights: Flights | None = None

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

    def drop(self, team: str, answer_keys: list[str], position_keys: list[str]) -> None:
        """Drop entries from this node's memory and, with a tier, tell every node to."""
        self._drop_here(team, answer_keys, position_keys)
        if self.tier is not None:
            self.tier.publish(INVALIDATE, self.tier.sealer.seal_message([team, answer_keys, position_keys]))

    def dropped(self, message: bytes) -> None:
        """Another node's ``drop``: the message is sealed (it names secrets)."""
        opened = self.tier.sealer.open_message(message) if self.tier is not None else None
        if isinstance(opened, list) and len(opened) == 3 and all(isinstance(part, (str, list)) for part in opened):
            team, answer_keys, position_keys = opened
            self._drop_here(str(team), [str(k) for k in answer_keys], [str(k) for k in position_keys])

    def _drop_here(self, team: str, answer_keys: list[str], position_keys: list[str]) -> None:
        for store, keys in ((self.answers, answer_keys), (self.positions, position_keys)):
            if store is not None:
                for key in keys:
                    store.delete(key, team)


@dataclass(frozen=True)
class TeamReaders:
    """One team's view of the reader stack: its own cache partition and single-flight."""

    reader: SecretReader
    cache: CachingReader | SharedCachingReader | None
    positions: CacheStore | None


class ReaderStacks:
    """The reader stack, shared by all teams where it holds no answers (backend, retry) and one
    per team where it does: each team's cached answers and remembered positions live in that
    team's partition of one store, so a team that floods the cache evicts its own entries, never
    another team's (see ``MemoryStore``).

    ``identity`` names whom the backend reads as; entries are kept under it, so that the store
    never gives one identity's answer to another. Remembered positions depend on the templates
    too, and are kept under ``identity`` and the templates."""

    MAX_TEAMS = 4096  # views kept; a view is cheap to make again, its entries stay in the store

    def __init__(
        self, settings: Settings, retrying: SecretReader, metrics: Metrics, stores: Stores, identity: str = "",
        team_share: Callable[[SecretReader, str], SecretReader] | None = None,
    ) -> None:
        self._settings = settings
        self._retrying = retrying
        self._team_share = team_share  # wraps what a team's cache reads from (its share of the rate budget)
        self._metrics = metrics
        self._stores = stores
        self.answers_prefix = f"{identity}\0" if identity else ""
        rules = settings.rules
        self.positions_prefix = f"{identity}\0{rules.pipeline.text}\0{rules.team.text}\0" if identity else ""
        self._teams: OrderedDict[str, TeamReaders] = OrderedDict()
        self._lock = threading.Lock()

    def for_team(self, team: str) -> TeamReaders:
        with self._lock:
            readers = self._teams.get(team)
            if readers is None:
                readers = self._teams[team] = self._build(team)
                if len(self._teams) > self.MAX_TEAMS:
                    self._teams.popitem(last=False)
            else:
                self._teams.move_to_end(team)
            return readers

    def invalidate(self, team: str, paths: list[str], position_keys: list[str]) -> None:
        """Drop the answers of ``paths`` and the remembered positions of ``position_keys`` of
        ``team``: from Redis, from this node's memory, and (by a message) from every node's."""
        readers = self.for_team(team)
        if readers.cache is not None:
            readers.cache.invalidate(paths)
        if isinstance(readers.positions, SharedStore):
            readers.positions.invalidate(position_keys)
        self._stores.drop(team, [self.answers_prefix + path for path in paths],
                          [self.positions_prefix + key for key in position_keys])

    def _build(self, team: str) -> TeamReaders:
        settings, stores = self._settings, self._stores
        cache: CachingReader | SharedCachingReader | None = None
        below = self._retrying if self._team_share is None else self._team_share(self._retrying, team)
        reader: SecretReader = below
        ttls = {"found_ttl": settings.cache_duration, "notfound_ttl": settings.cache_duration_notfound,
                "stale_if_error": settings.cache_stale_if_error}
        if stores.answers is not None:
            memory = stores.answers.partition(team, self.answers_prefix)
            if stores.tier is not None and stores.flights is not None:
                cache = SharedCachingReader(below, memory, SharedEntries(stores.tier, "answer"), stores.flights,
                                            f"{team}\0{self.answers_prefix}", metrics=self._metrics, **ttls)
            else:
                cache = CachingReader(below, memory, metrics=self._metrics, **ttls)
            reader = cache
        positions: CacheStore | None = None
        if stores.positions is not None:
            positions = stores.positions.partition(team, self.positions_prefix)
            if stores.tier is not None:
                positions = SharedStore(positions, SharedEntries(stores.tier, "position"),
                                        f"{team}\0{self.positions_prefix}")
        return TeamReaders(SingleFlightReader(reader), cache, positions)
