"""Cache of lookup answers, keyed by the full secret path (spec 6), with stale-if-error.

The store sits behind a two-method interface (``get``/``put`` of an ``Entry``) so that a shared
tier (Redis) can take the place of ``MemoryStore`` when one web node is not enough; entries carry
wall-clock times for that reason.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..aws import SecretReader, first_answer
from ..errors import LookupFailed
from ..metrics import Metrics

# Failures under which a recent value may be served: AWS is slow, down or rate-limiting us.
# Access denied and not found are answers about the secret itself and are never masked.
STALE_SERVABLE = frozenset({"throttled", "unavailable", "network"})


@dataclass(frozen=True)
class Entry:
    found: bool
    value: Any
    fresh_until: float  # answer the lookup from the cache until then
    keep_until: float  # after fresh_until, keep the value for stale-if-error until then


class CacheStore(Protocol):
    def get(self, key: str) -> Entry | None:
        """The entry while it is kept, else ``None``."""
        ...

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        """The entries kept of ``keys`` (a store in another process answers in one round trip)."""
        ...

    def put(self, key: str, entry: Entry) -> None: ...


def remembered(value: Any | None, now: float, found_ttl: float, notfound_ttl: float,
               stale_if_error: float) -> Entry | None:
    """The entry to keep for an answer (``None``: not found), or None when that kind of answer
    is not cached (its TTL is 0). A found value is kept past its TTL for stale-if-error."""
    found = value is not None
    ttl = found_ttl if found else notfound_ttl
    keep = max(ttl, stale_if_error) if found else ttl
    return Entry(found, value, now + ttl, now + keep) if keep > 0 else None


def fresh_entry(store: CacheStore, path: str, now: float, metrics: Metrics) -> Entry | None:
    """The fresh entry of ``path`` in ``store``, counted as a hit, or None."""
    entry = store.get(path)
    if entry is not None and entry.fresh_until > now:
        metrics.cache_hit.inc()
        return entry
    return None


def split_fresh(
    entries: dict[str, Entry], paths: Sequence[str], now: float, metrics: Metrics
) -> tuple[dict[str, Any], list[str], dict[str, Entry]]:
    """(answers of the fresh entries, the paths without one, the stale found entries of those),
    hits and misses counted."""
    answers: dict[str, Any] = {}
    missing: list[str] = []
    stale: dict[str, Entry] = {}
    for path in dict.fromkeys(paths):
        entry = entries.get(path)
        if entry is not None and entry.fresh_until > now:
            metrics.cache_hit.inc()
            answers[path] = entry.value if entry.found else None
            continue
        metrics.cache_miss.inc()
        missing.append(path)
        if entry is not None and entry.found:
            stale[path] = entry
    return answers, missing, stale


def served(answer: Any, path: str, stale: dict[str, Entry], metrics: Metrics) -> Any:
    """``answer``, or the stale value of ``path`` when the failure allows serving one."""
    if isinstance(answer, LookupFailed) and answer.kind in STALE_SERVABLE and path in stale:
        metrics.cache_stale.inc()
        return stale[path].value
    return answer


class MemoryStore:
    """A thread-safe LRU dict with expiry, in partitions (one per team); expired entries are
    dropped every ``purge_interval``.

    At most ``max_entries`` entries in all. When full, the entry that goes is the least recently
    used of the *largest* partition (of the one being written to, when it is as large), so a team
    that floods the cache with new paths evicts its own entries first and never those of a team
    that holds fewer than it does: no team can flush the others' warm entries.
    """

    def __init__(
        self, purge_interval: float, max_entries: int = 10000, clock: Callable[[], float] = time.time
    ) -> None:
        self._partitions: dict[str, OrderedDict[str, Entry]] = {}
        self._size = 0
        self._lock = threading.Lock()
        self._clock = clock
        self._purge_interval = purge_interval
        self._max_entries = max_entries
        self._next_purge = clock() + purge_interval

    def partition(self, name: str, prefix: str = "") -> CacheStore:
        """The ``CacheStore`` of one partition; with ``prefix``, its keys are the store's
        ``prefix + key`` (one identity's entries beside another's, in the same partition)."""
        return _Partition(self, name, prefix)

    def get(self, key: str, partition: str = "") -> Entry | None:
        now = self._clock()
        with self._lock:
            if now >= self._next_purge:
                self._purge(now)
            entries = self._partitions.get(partition)
            entry = entries.get(key) if entries is not None else None
            if entry is None or entry.keep_until <= now:
                return None
            entries.move_to_end(key)  # type: ignore[union-attr]
            return entry

    def get_many(self, keys: Sequence[str], partition: str = "") -> dict[str, Entry]:
        return {key: entry for key in keys if (entry := self.get(key, partition)) is not None}

    def delete(self, key: str, partition: str = "") -> None:
        with self._lock:
            entries = self._partitions.get(partition)
            if entries is not None and entries.pop(key, None) is not None:
                self._size -= 1

    def delete_ending(self, suffixes: Sequence[str], partition: str = "") -> int:
        """Drop the entries of ``partition`` whose key is one of ``suffixes`` or ends with
        NUL + one of them (the same name under any prefix: every identity's entry). Returns how
        many went. Scans the partition: for invalidations, not for the hot path."""
        wanted = set(suffixes)
        with self._lock:
            entries = self._partitions.get(partition)
            if not entries or not wanted:
                return 0
            gone = [key for key in entries if key in wanted or key.rpartition("\0")[2] in wanted
                    or any(key.endswith("\0" + suffix) for suffix in wanted if "\0" in suffix)]
            for key in gone:
                del entries[key]
            self._size -= len(gone)
            return len(gone)

    def put(self, key: str, entry: Entry, partition: str = "") -> None:
        now = self._clock()
        with self._lock:
            if now >= self._next_purge:
                self._purge(now)
            entries = self._partitions.setdefault(partition, OrderedDict())
            if key not in entries:
                self._size += 1
            entries[key] = entry
            entries.move_to_end(key)
            while self._size > self._max_entries:
                self._evict_one(entries)

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def partition_sizes(self) -> dict[str, int]:
        with self._lock:
            return {name: len(entries) for name, entries in self._partitions.items() if entries}

    def _evict_one(self, writing: OrderedDict[str, Entry]) -> None:
        largest = max(self._partitions.values(), key=len)
        victim = writing if len(writing) >= len(largest) else largest
        victim.popitem(last=False)
        self._size -= 1

    def _purge(self, now: float) -> None:
        self._next_purge = now + self._purge_interval
        for name, entries in list(self._partitions.items()):
            for key in [key for key, entry in entries.items() if entry.keep_until <= now]:
                del entries[key]
                self._size -= 1
            if not entries:
                del self._partitions[name]


class _Partition:
    def __init__(self, store: MemoryStore, name: str, prefix: str) -> None:
        self._store = store
        self._name = name
        self._prefix = prefix

    def get(self, key: str) -> Entry | None:
        return self._store.get(self._prefix + key, self._name)

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        return {key: entry for key in keys if (entry := self.get(key)) is not None}

    def put(self, key: str, entry: Entry) -> None:
        self._store.put(self._prefix + key, entry, self._name)

    def delete(self, key: str) -> None:
        self._store.delete(self._prefix + key, self._name)


class CachingReader:
    """Answers from the store while fresh: found values for ``found_ttl``, not-found answers for
    ``notfound_ttl`` seconds (0 disables that kind: Concourse reads 0 as "forever", a trap).

    With ``stale_if_error`` > 0, a found value stays in the store that long after it was fetched;
    when AWS then throttles, times out or fails with 5xx, that value is served (and counted as a
    stale serve) instead of the failure. Failures are never stored as answers.
    """

    def __init__(
        self,
        inner: SecretReader,
        store: CacheStore,
        *,
        found_ttl: float,
        notfound_ttl: float,
        stale_if_error: float = 0.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._store = store
        self._found_ttl = found_ttl
        self._notfound_ttl = notfound_ttl
        self._stale_if_error = stale_if_error
        self._metrics = metrics or Metrics()
        self._clock = clock

    def get(self, path: str) -> Any | None:
        return first_answer(self, path)

    def fresh(self, path: str) -> Entry | None:
        """The fresh entry for ``path``, if any: the hot path of a cached lookup."""
        return fresh_entry(self._store, path, self._clock(), self._metrics)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(paths))
        answers, misses, stale = split_fresh(self._store.get_many(unique), unique, self._clock(), self._metrics)
        if not misses:
            return answers
        fetched = self._inner.get_many(misses)
        now = self._clock()
        for path in misses:
            answer = fetched[path]
            if not isinstance(answer, LookupFailed):
                self._remember(path, answer, now)
            answers[path] = served(answer, path, stale, self._metrics)
        return answers

    def _remember(self, path: str, value: Any | None, now: float) -> None:
        entry = remembered(value, now, self._found_ttl, self._notfound_ttl, self._stale_if_error)
        if entry is not None:
            self._store.put(path, entry)
