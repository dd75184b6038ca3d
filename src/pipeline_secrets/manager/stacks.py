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
class Stores:
    """The stores of one manager, shared by every identity it reads with (the cluster's and its
    var sources'): one memory budget (``--secret-cache-max-entries``) in all."""

    answers: MemoryStore | None
    positions: MemoryStore | None

    @classmethod
    def for_settings(cls, settings: Settings) -> Stores:
        if not settings.cache_enabled:
            return cls(None, None)
        answers = MemoryStore(settings.cache_purge_interval, settings.cache_max_entries)
        keep_positions = settings.cache_duration > 0 and settings.cache_duration_notfound > 0
        positions = MemoryStore(settings.cache_purge_interval, settings.cache_max_entries) if keep_positions else None
        return cls(answers, positions)


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
    another team's (see ``MemoryStore``).

    ``identity`` names whom the backend reads as; entries are kept under it, so that the store
    never gives one identity's answer to another. Remembered positions depend on the templates
    too, and are kept under ``identity`` and the templates."""

    MAX_TEAMS = 4096  # views kept; a view is cheap to make again, its entries stay in the store

    def __init__(
        self, settings: Settings, retrying: SecretReader, metrics: Metrics, stores: Stores, identity: str = ""
    ) -> None:
        self._settings = settings
        self._retrying = retrying
        self._metrics = metrics
        self._stores = stores
        self._answers_prefix = f"{identity}\0" if identity else ""
        rules = settings.rules
        self._positions_prefix = f"{identity}\0{rules.pipeline.text}\0{rules.team.text}\0" if identity else ""
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
        settings, stores = self._settings, self._stores
        cache = None
        reader: SecretReader = self._retrying
        if stores.answers is not None:
            cache = CachingReader(
                self._retrying, stores.answers.partition(team, self._answers_prefix),
                found_ttl=settings.cache_duration, notfound_ttl=settings.cache_duration_notfound,
                stale_if_error=settings.cache_stale_if_error, metrics=self._metrics,
            )
            reader = cache
        positions = stores.positions.partition(team, self._positions_prefix) if stores.positions is not None else None
        return TeamReaders(SingleFlightReader(reader), cache, positions)
