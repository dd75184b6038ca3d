"""One node's link to the shared tier: a Redis client with short timeouts, a circuit breaker, and
a pub/sub listener.

No lookup ever fails because Redis did. Every call goes through ``call``, which answers its
default when Redis errs, times out (``--redis-timeout``) or the breaker is open: the node then
goes on with its own memory and AWS. After a failure the breaker stays open for a while (1 s,
doubling to 30 s), then lets one call through to try Redis again. The outage is logged once when
it starts and once when it ends, never per call.

The listener (one thread, its own connection) hears what other nodes publish: a filled cache entry
(waiters wake up instead of polling) and invalidations (sealed: they name secrets).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis

from ..metrics import Metrics
from .sealing import Sealer

T = TypeVar("T")
log = logging.getLogger("pipeline_secrets.redis")

FILLED = "ps:filled"  # channel: a cache entry was written (message: its Redis key)
INVALIDATE = "ps:invalidate"  # channel: entries to drop from memory (a sealed message)


def safe_url(url: str) -> str:
    """The URL with its password (and user) replaced, for logs and info."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Breaker:
    """Closed (Redis used), open (skipped until ``retry_at``), then one trial call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open = False
        self._retry_at = 0.0
        self._pause = 1.0
        self._trial = False

    @property
    def is_open(self) -> bool:
        return self._open

    def admit(self) -> bool:
        with self._lock:
            if not self._open:
                return True
            if self._trial or self._clock() < self._retry_at:
                return False
            self._trial = True  # one call tries Redis again
            return True

    def succeeded(self) -> bool:
        """Record a success; True when this closes an open breaker."""
        with self._lock:
            reopened = self._open
            self._open, self._trial, self._pause = False, False, 1.0
            return reopened

    def failed(self) -> bool:
        """Record a failure; True when this opens a closed breaker (an outage starts)."""
        with self._lock:
            opened = not self._open
            if not opened:
                self._pause = min(30.0, self._pause * 2)
            self._open, self._trial = True, False
            self._retry_at = self._clock() + self._pause
            return opened


class RedisTier:
    """The shared tier as one node sees it. Thread-safe."""

    def __init__(self, url: str, keys: tuple[bytes, ...], *, timeout: float, metrics: Metrics,
                 client: redis.Redis | None = None) -> None:
        self.url = safe_url(url)
        self.sealer = Sealer(keys)
        self.breaker = Breaker()
        self._metrics = metrics
        self._raw_url = url
        self._timeout = timeout
        self.client = client or redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0,
            retry_on_timeout=False, max_connections=64,
        )
        self._handlers: dict[str, list[Callable[[bytes], None]]] = {FILLED: [], INVALIDATE: []}
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        metrics.redis_up.set(1)

    def call(self, what: Callable[[redis.Redis], T], default: T) -> T:
        """``what(client)``, or ``default`` when Redis fails or the breaker is open."""
        if not self.breaker.admit():
            return default
        try:
            result = what(self.client)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return default
        if self.breaker.succeeded():
            self._metrics.redis_up.set(1)
            log.warning("redis is back: the shared tier is used again", extra={"fields": {"redis": self.url}})
        return result

    def _failed(self, exc: BaseException) -> None:
        self._metrics.redis_errors.inc()
        if self.breaker.failed():
            self._metrics.redis_up.set(0)
            self._metrics.redis_outages.inc()
            log.warning("redis unavailable: going on with this node's memory and AWS",
                        extra={"fields": {"redis": self.url, "error_type": type(exc).__name__}})

    @property
    def connected(self) -> bool:
        return not self.breaker.is_open

    # --- pub/sub ---------------------------------------------------------------------------------

    def on(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Call ``handler(message)`` for each message on ``channel`` (from the listener thread)."""
        self._handlers[channel].append(handler)
        if self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="pipeline-secrets-redis", daemon=True)
            self._listener.start()

    def publish(self, channel: str, message: bytes) -> None:
        self.call(lambda r: r.publish(channel, message), None)

    def _listen(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            client = redis.Redis.from_url(self._raw_url, socket_connect_timeout=self._timeout, health_check_interval=0)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(*self._handlers)
                pause = 0.1
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                        for handler in self._handlers.get(channel, ()):
                            try:
                                handler(message["data"])
                            except Exception as exc:  # a handler's bug must not stop the listener
                                log.error("redis message handler failed",
                                          extra={"fields": {"error_type": type(exc).__name__}})
            except (redis.RedisError, OSError):
                self._stop.wait(pause)
                pause = min(5.0, pause * 2)
            finally:
                client.close()

    def close(self) -> None:
        self._stop.set()
        self.client.close()
