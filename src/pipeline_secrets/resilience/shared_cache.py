"""The fleet's cache: each node's memory (L1) in front of one shared store in Redis (L2), and a
fetch of a cold path made once for the whole fleet.

``SharedCachingReader`` has the interface of ``CachingReader`` and its rules (TTLs, stale-if-error,
errors never stored). A read asks memory first, then Redis for every path it still lacks in one
round trip (MGET), and only then AWS. Before fetching, a node takes a short lock per path in Redis
(SET NX PX): the node that gets it fetches and fills L2, then tells the others on a channel; the
others wait for that message (no polling) and read the filled entry. When the holder dies, its
lock expires and a waiter takes over; every wait is bounded by the lookup deadline, after which a
waiter fetches for itself. When Redis is down (``RedisTier``), all of this degrades to the node's
own memory, its own single-flight and AWS.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ..aws import SecretReader, first_answer
from ..errors import LookupFailed
from ..metrics import Metrics
from .cache import CacheStore, Entry, fresh_entry, remembered, served, split_fresh
from .redis_tier import FILLED, INVALIDATE, RedisTier

# Releases a lock only if this node still holds it (it may have expired and been taken).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class SharedEntries:
    """Cache entries of one kind in Redis, sealed; names are the callers' (team, identity, path)."""

    def __init__(self, tier: RedisTier, kind: str) -> None:
        self.tier = tier
        self.kind = kind

    def key(self, name: str) -> str:
        """The Redis key ``name`` is written under."""
        return self.tier.sealer.name(self.kind, name)

    def get_many(self, names: Sequence[str], now: float) -> dict[str, Entry]:
        """The live entries of ``names``, in one round trip; a missing, foreign or garbled value
        is simply absent."""
        if not names:
            return {}
        sealer = self.tier.sealer
        keys = {name: sealer.names(self.kind, name) for name in dict.fromkeys(names)}
        flat = [key for per_name in keys.values() for key in per_name]
        values = self.tier.call(lambda r: r.mget(flat), None)
        if not isinstance(values, list) or len(values) != len(flat):
            return {}
        found: dict[str, Entry] = {}
        at = 0
        for name, per_name in keys.items():
            for index, key in enumerate(per_name):
                if name not in found:
                    entry = _entry(sealer.open(key, values[at], index))
                    if entry is not None and entry.keep_until > now:
                        found[name] = entry
                at += 1
        return found

    def put(self, name: str, entry: Entry, now: float) -> None:
        self.put_many({name: entry}, now)

    def put_many(self, entries: dict[str, Entry], now: float) -> None:
        """Write ``entries`` (name -> entry) in one round trip, each expiring with its entry."""
        writes = []
        for name, entry in entries.items():
            ttl_ms = int((entry.keep_until - now) * 1000)
            if ttl_ms > 0:
                key = self.key(name)
                sealed = self.tier.sealer.seal(key, [entry.found, entry.value, entry.fresh_until, entry.keep_until])
                writes.append((key, sealed, ttl_ms))
        if not writes:
            return

        def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            for key, sealed, ttl_ms in writes:
                pipe.set(key, sealed, px=ttl_ms)
            pipe.execute()

        self.tier.call(write, None)

    def delete(self, names: Sequence[str]) -> None:
        keys = [key for name in names for key in self.tier.sealer.names(self.kind, name)]
        if keys:
            self.tier.call(lambda r: r.delete(*keys), None)


def _entry(value: Any) -> Entry | None:
    if (isinstance(value, list) and len(value) == 4 and isinstance(value[0], bool)
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in value[2:])):
        return Entry(value[0], value[1], float(value[2]), float(value[3]))
    return None  # not one of ours: a miss


class SharedStore:
    """A ``CacheStore`` of memory before Redis: for the remembered fallback positions."""

    def __init__(self, memory: CacheStore, shared: SharedEntries, namespace: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._memory = memory
        self._shared = shared
        self._namespace = namespace
        self._clock = clock

    def get(self, key: str) -> Entry | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        found = self._memory.get_many(keys)
        missing = [key for key in keys if key not in found]
        if missing:
            shared = self._shared.get_many([self._namespace + key for key in missing], self._clock())
            for key in missing:
                entry = shared.get(self._namespace + key)
                if entry is not None:
                    self._memory.put(key, entry)
                    found[key] = entry
        return found

    def put(self, key: str, entry: Entry) -> None:
        self._memory.put(key, entry)
        self._shared.put(self._namespace + key, entry, self._clock())


class Flights:
    """Fetches made once for the fleet: per-path locks in Redis, and waiting for another node's
    fill by its message on the ``FILLED`` channel."""

    def __init__(self, tier: RedisTier, *, deadline: float, metrics: Metrics) -> None:
        self._tier = tier
        self._deadline = deadline
        self._lock_ttl_ms = int(max(1.0, min(5.0, deadline / 3)) * 1000)
        self._metrics = metrics
        self._waiting: dict[str, list[threading.Event]] = {}
        self._guard = threading.Lock()
        tier.on(FILLED, self._filled)

    def fetch(
        self, keys: dict[str, str], fetch: Callable[[list[str]], dict[str, Any]],
        remember: Callable[[dict[str, Any]], None], read: Callable[[list[str]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Answers for the paths of ``keys`` (path -> the Redis key its entry is written under):
        fetched here (``fetch``, then ``remember`` writes them, then the others are told) for the
        paths whose lock this node takes, read (``read``: the filled entries) for the others."""
        give_up_at = time.monotonic() + self._deadline
        answers: dict[str, Any] = {}
        pending = list(keys)
        while pending:
            token, mine, theirs = self._lock(pending, keys)
            if mine and self._tier.connected:
                # Filled between our read and our lock? (its holder may have just let go)
                filled = read(mine)
                answers.update(filled)
                self._release([path for path in mine if path in filled], keys, token, tell=False)
                mine = [path for path in mine if path not in filled]
            if mine:
                answers.update(self._fetch_and_tell(mine, keys, token, fetch, remember))
            if not theirs:
                break
            waited, orphans = self._wait(theirs, keys, read, give_up_at)
            answers.update(waited)
            if time.monotonic() >= give_up_at and orphans:
                answers.update(fetch(orphans))  # waited our whole deadline: fetch for ourselves
                break
            if orphans:
                self._metrics.flights.labels("took_over").inc(len(orphans))
            pending = orphans
        return answers

    def _lock(self, paths: list[str], keys: dict[str, str]) -> tuple[str, list[str], list[str]]:
        """(this attempt's token, the paths it locked, the paths others hold)."""
        token = uuid.uuid4().hex

        def take(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for path in paths:
                pipe.set(_lock_key(keys[path]), token, nx=True, px=self._lock_ttl_ms)
            return pipe.execute()

        taken = self._tier.call(take, None)
        if not isinstance(taken, list):  # no Redis: this node fetches everything itself
            return token, paths, []
        mine = [path for path, ok in zip(paths, taken) if ok]
        return token, mine, [path for path, ok in zip(paths, taken) if not ok]

    def _fetch_and_tell(self, paths: list[str], keys: dict[str, str], token: str,
                        fetch: Callable[[list[str]], dict[str, Any]],
                        remember: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        try:
            fetched = fetch(paths)
            remember(fetched)
        finally:
            self._release(paths, keys, token, tell=True)
        self._metrics.flights.labels("fetched").inc(len(paths))
        return fetched

    def _release(self, paths: list[str], keys: dict[str, str], token: str, *, tell: bool) -> None:
        """Let go of this node's locks of ``paths``; ``tell``: and say they are filled."""
        if not paths:
            return

        def release(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            for path in paths:
                pipe.eval(_RELEASE, 1, _lock_key(keys[path]), token)
                if tell:
                    pipe.publish(FILLED, keys[path])
            pipe.execute()

        self._tier.call(release, None)

    def _wait(self, paths: list[str], keys: dict[str, str], read: Callable[[list[str]], dict[str, Any]],
              give_up_at: float) -> tuple[dict[str, Any], list[str]]:
        """Wait for other nodes' fills: (answers read, paths whose holder let go without filling)."""
        started = time.monotonic()
        event = threading.Event()
        with self._guard:
            for path in paths:
                self._waiting.setdefault(keys[path], []).append(event)
        answers: dict[str, Any] = {}
        left = list(paths)
        try:
            while left and time.monotonic() < give_up_at:
                event.clear()
                answers.update(read(left))
                left = [path for path in left if path not in answers]
                if not left:
                    break
                held = self._held(left, keys)
                if held is None:  # Redis went away: fetch for ourselves
                    return answers, left
                # Gone, or not one of ours (no expiry, or longer than we ever set): fetch ourselves.
                orphans = [path for path, ttl in zip(left, held) if ttl <= 0 or ttl > self._lock_ttl_ms]
                if orphans:
                    answers.update(read(orphans))  # filled just before the lock went?
                    return answers, [path for path in left if path not in answers]
                event.wait(min(give_up_at - time.monotonic(), max(held) / 1000))
        finally:
            with self._guard:
                for path in paths:
                    waiters = self._waiting.get(keys[path], [])
                    if event in waiters:
                        waiters.remove(event)
                    if not waiters:
                        self._waiting.pop(keys[path], None)
            self._metrics.flight_wait_seconds.inc(time.monotonic() - started)
        self._metrics.flights.labels("waited").inc(len(answers))
        return answers, left

    def _held(self, paths: list[str], keys: dict[str, str]) -> list[int] | None:
        """Milliseconds each lock has left (<= 0: nobody holds it), or None without Redis."""
        def ttls(r: Any) -> list[int]:
            pipe = r.pipeline(transaction=False)
            for path in paths:
                pipe.pttl(_lock_key(keys[path]))
            return pipe.execute()

        held = self._tier.call(ttls, None)
        return [int(ttl) for ttl in held] if isinstance(held, list) else None

    def _filled(self, key: bytes) -> None:
        with self._guard:
            waiters = list(self._waiting.get(key.decode("ascii", "replace"), ()))
        for event in waiters:
            event.set()


def _lock_key(entry_key: str) -> str:
    return "ps:lock:" + entry_key.rpartition(":")[2]


class SharedCachingReader:
    """``CachingReader`` with a shared L2 in Redis and fleet-wide fetches (see the module)."""

    def __init__(
        self,
        inner: SecretReader,
        memory: CacheStore,
        shared: SharedEntries,
        flights: Flights,
        namespace: str,
        *,
        found_ttl: float,
        notfound_ttl: float,
        stale_if_error: float = 0.0,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._memory = memory
        self._shared = shared
        self._flights = flights
        self._namespace = namespace
        self._found_ttl = found_ttl
        self._notfound_ttl = notfound_ttl
        self._stale_if_error = stale_if_error
        self._metrics = metrics
        self._clock = clock

    def get(self, path: str) -> Any | None:
        return first_answer(self, path)

    def fresh(self, path: str) -> Entry | None:
        """The fresh entry in this node's memory: the hot path never waits on Redis."""
        return fresh_entry(self._memory, path, self._clock(), self._metrics)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(paths))
        answers, missing, stale = split_fresh(self._memory.get_many(unique), unique, self._clock(), self._metrics)
        answers.update(self._read_shared(missing, stale))
        misses = [path for path in missing if path not in answers]
        if not misses:
            return answers
        keys = {path: self._shared.key(self._namespace + path) for path in misses}
        fetched = self._flights.fetch(keys, self._inner.get_many, self._remember_all, lambda ps: self._read_shared(ps, {}))
        for path in misses:
            answers[path] = served(fetched[path], path, stale, self._metrics)
        return answers

    def _read_shared(self, paths: list[str], stale: dict[str, Entry]) -> dict[str, Any]:
        """Fresh entries of Redis for ``paths`` (kept in memory too); stale ones noted in ``stale``."""
        if not paths:
            return {}
        now = self._clock()
        shared = self._shared.get_many([self._namespace + path for path in paths], now)
        answers = {}
        for path in paths:
            entry = shared.get(self._namespace + path)
            if entry is None:
                self._metrics.shared_cache.labels("miss").inc()
                continue
            self._memory.put(path, entry)
            if entry.fresh_until > now:
                self._metrics.shared_cache.labels("hit").inc()
                answers[path] = entry.value if entry.found else None
            elif entry.found:
                stale.setdefault(path, entry)
        return answers

    def _remember_all(self, fetched: dict[str, Any]) -> None:
        now = self._clock()
        shared = {}
        for path, answer in fetched.items():
            if not isinstance(answer, LookupFailed):
                entry = remembered(answer, now, self._found_ttl, self._notfound_ttl, self._stale_if_error)
                if entry is not None:
                    self._memory.put(path, entry)
                    shared[self._namespace + path] = entry
        self._shared.put_many(shared, now)


__all__ = ["Flights", "SharedCachingReader", "SharedEntries", "SharedStore", "INVALIDATE"]
