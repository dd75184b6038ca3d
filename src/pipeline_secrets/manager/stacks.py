"""The reader stack, per team: where the cache, its partition and single-flight are assembled."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..aws import SecretReader
from ..config import Settings
from ..metrics import Metrics
from ..resilience import CacheStore, CachingReader, MemoryStore, SingleFlightReader


@dataclass(frozen=True)
class TeamReaders:
    """One team's view of the reader stack: its own cache partition and single-flight."""

    reader: SecretReader
    cache: CachingReader | None
    positions: CacheStore | None


class ReaderStacks:
    """The reader stack, shared by all teams where it holds no answers (backend, retry) and one
    per team where it does: each team's cached answers and remembered positions live in that
    team's partition of one store, so a team that floods the cache evicts its own entries, never
    another team's (see ``MemoryStore``)."""

    MAX_TEAMS = 4096  # views kept; a view is cheap to make again, its entries stay in the store

    def __init__(self, settings: Settings, retrying: SecretReader, metrics: Metrics) -> None:
        self._settings = settings
        self._retrying = retrying
        self._metrics = metrics
        self._store = self._positions = None
        if settings.cache_enabled:
            self._store = MemoryStore(settings.cache_purge_interval, settings.cache_max_entries)
            if settings.cache_duration > 0 and settings.cache_duration_notfound > 0:
                self._positions = MemoryStore(settings.cache_purge_interval, settings.cache_max_entries)
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

    def _build(self, team: str) -> TeamReaders:
        settings = self._settings
        cache = None
        reader: SecretReader = self._retrying
        if self._store is not None:
            cache = CachingReader(
                self._retrying, self._store.partition(team),
                found_ttl=settings.cache_duration, notfound_ttl=settings.cache_duration_notfound,
                stale_if_error=settings.cache_stale_if_error, metrics=self._metrics,
            )
            reader = cache
        positions = self._positions.partition(team) if self._positions is not None else None
        return TeamReaders(SingleFlightReader(reader), cache, positions)
