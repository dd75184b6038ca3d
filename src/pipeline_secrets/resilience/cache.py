"""In-memory cache of lookup answers, keyed by the full secret path (spec 6).

The store sits behind a two-method interface (``get``/``put``) so that a shared tier (Redis) can
take the place of ``MemoryStore`` when one web node is not enough.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..backend import SecretReader


class CacheStore(Protocol):
    def get(self, key: str) -> tuple[bool, Any] | None:
        """``(found, value)`` while the entry lives, else ``None``."""
        ...

    def put(self, key: str, found: bool, value: Any, ttl: float) -> None: ...


class MemoryStore:
    """A thread-safe dict with expiry; expired entries are dropped every ``purge_interval``."""

    def __init__(self, purge_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[float, bool, Any]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._purge_interval = purge_interval
        self._last_purge = clock()

    def get(self, key: str) -> tuple[bool, Any] | None:
        now = self._clock()
        with self._lock:
            self._purge_if_due(now)
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                return None
            return entry[1], entry[2]

    def put(self, key: str, found: bool, value: Any, ttl: float) -> None:
        now = self._clock()
        with self._lock:
            self._purge_if_due(now)
            self._entries[key] = (now + ttl, found, value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _purge_if_due(self, now: float) -> None:
        if now - self._last_purge < self._purge_interval:
            return
        self._last_purge = now
        for key in [k for k, (expires, _, _) in self._entries.items() if expires <= now]:
            del self._entries[key]


class CachingReader:
    """Caches found values for ``found_ttl`` and not-found answers for ``notfound_ttl`` seconds.

    A TTL of 0 disables that kind of caching (Concourse reads 0 as "forever"; we refuse that
    trap). Failures pass through and are never cached as answers.
    """

    def __init__(self, inner: SecretReader, store: CacheStore, *, found_ttl: float, notfound_ttl: float) -> None:
        self._inner = inner
        self._store = store
        self._found_ttl = found_ttl
        self._notfound_ttl = notfound_ttl

    def get(self, path: str) -> Any | None:
        cached = self._store.get(path)
        if cached is not None:
            found, value = cached
            return value if found else None
        value = self._inner.get(path)
        ttl = self._notfound_ttl if value is None else self._found_ttl
        if ttl > 0:
            self._store.put(path, value is not None, value, ttl)
        return value
