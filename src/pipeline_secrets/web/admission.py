"""Who gets served now, who waits and who is turned away: fairness between teams and clients.

Everything here runs on the event loop (asyncio primitives, no locks) and only decides; the work
itself happens elsewhere. Each refusal is an ``Overloaded`` error that the routes answer with its
status (429 for "you, slow down", 503 for "everyone, come back") and a ``Retry-After``.

- ``TeamGates``: at most ``concurrency`` requests of one team do AWS or document work at once; at
  most ``queue`` more wait. A team that floods the node fills its own queue, not the others'.
- ``Slots``: a small pool (documents being read and parsed: memory) of which one team may hold
  at most ``per_team``.
- ``AuthQueue``: password checks (bcrypt, CPU) waiting for a worker: at most ``capacity`` in all
  and ``per_client`` from one address.
- ``LoginThrottle``: failed logins take tokens from buckets per address and user, per address and
  per user; an empty bucket answers 429 before any bcrypt work, except to an address that logged
  in as that user before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass


class Overloaded(Exception):
    def __init__(self, status: int, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class _Gate:
    semaphore: asyncio.Semaphore
    waiting: int = 0
    users: int = 0  # holders and waiters: the gate goes when this drops to 0


class TeamGates:
    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self._gates: dict[str, _Gate] = {}

    @contextlib.asynccontextmanager
    async def enter(self, team: str) -> AsyncIterator[None]:
        gate = self._gates.get(team)
        if gate is None:
            gate = self._gates[team] = _Gate(asyncio.Semaphore(self.concurrency))
        if gate.waiting >= self.queue:
            raise Overloaded(429, f"too many requests of team '{team}' at once; try again shortly", 1)
        gate.users += 1
        gate.waiting += 1
        acquired = False
        try:
            await gate.semaphore.acquire()
            acquired = True
            gate.waiting -= 1
            yield
        finally:
            if acquired:
                gate.semaphore.release()
            else:
                gate.waiting -= 1
            gate.users -= 1
            if gate.users == 0:
                self._gates.pop(team, None)

    def busy(self) -> dict[str, int]:
        """team -> requests admitted or waiting (for tests and metrics)."""
        return {team: gate.users for team, gate in self._gates.items()}


class Slots:
    """``size`` slots; one team holds at most ``per_team``; waiters queue fairly (FIFO)."""

    def __init__(self, size: int, per_team: int) -> None:
        self._free = asyncio.Semaphore(size)
        self._per_team = per_team
        self._held: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, team: str) -> AsyncIterator[None]:
        mine = self._held.get(team)
        if mine is None:
            mine = self._held[team] = asyncio.Semaphore(self._per_team)
        self._users[team] = self._users.get(team, 0) + 1
        try:
            async with mine, self._free:
                yield
        finally:
            self._users[team] -= 1
            if not self._users[team]:
                del self._users[team]
                del self._held[team]


class AuthQueue:
    """Admission to the password checks: ``capacity`` in flight or waiting, ``per_client`` of one
    client address."""

    def __init__(self, capacity: int, per_client: int) -> None:
        self.capacity = capacity
        self.per_client = per_client
        self._pending = 0
        self._by_client: dict[str, int] = {}

    @contextlib.contextmanager
    def admit(self, client: str) -> Iterator[None]:
        if self._by_client.get(client, 0) >= self.per_client:
            raise Overloaded(429, "too many password checks from this address at once; try again shortly", 1)
        if self._pending >= self.capacity:
            raise Overloaded(503, "too many password checks waiting; try again shortly", 1)
        self._pending += 1
        self._by_client[client] = self._by_client.get(client, 0) + 1
        try:
            yield
        finally:
            self._pending -= 1
            left = self._by_client[client] - 1
            if left:
                self._by_client[client] = left
            else:
                del self._by_client[client]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class LoginThrottle:
    """Token buckets of failed logins: per client address and user name (guessing one user's
    password), per client address (trying many users), per user name (many addresses at one user).
    A failure takes a token from all three; a request is refused (429) before any password check
    when its pair's bucket is empty, or when the address's or the user's is, unless this address
    logged in as this user successfully in the last ``trusted_for`` seconds: an attack on a user, or
    from a shared address, cannot lock out those who logged in from there before.

    Buckets are kept for unknown names alike, so a refusal never tells whether a user exists.
    """

    MAX_KEYS = 10_000  # buckets and trusted pairs kept each (least recently used go)

    def __init__(
        self, *, per_pair: tuple[float, float] = (20, 1 / 3), per_client: tuple[float, float] = (100, 2.0),
        per_user: tuple[float, float] = (100, 1.0), trusted_for: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = {"pair": per_pair, "client": per_client, "user": per_user}
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._trusted_for = trusted_for
        self._clock = clock

    def check(self, client: str, user: str) -> None:
        """Raise ``Overloaded`` (429) when this attempt may not be checked now."""
        self._refuse_if_empty("pair", f"{client}\0{user}")
        trusted = self._trusted.get((client, user))
        if trusted is not None and self._clock() - trusted < self._trusted_for:
            return
        self._refuse_if_empty("client", client)
        self._refuse_if_empty("user", user)

    def failed(self, client: str, user: str) -> None:
        for kind, key in (("pair", f"{client}\0{user}"), ("client", client), ("user", user)):
            self._bucket(kind, key).tokens -= 1

    def succeeded(self, client: str, user: str) -> None:
        self._trusted[(client, user)] = self._clock()
        self._trusted.move_to_end((client, user))
        if len(self._trusted) > self.MAX_KEYS:
            self._trusted.popitem(last=False)

    def _refuse_if_empty(self, kind: str, key: str) -> None:
        bucket = self._bucket(kind, key)
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self._rules[kind][1]
            raise Overloaded(429, "too many failed logins; try again later", wait)

    def _bucket(self, kind: str, key: str) -> _Bucket:
        capacity, rate = self._rules[kind]
        now = self._clock()
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            bucket = self._buckets[(kind, key)] = _Bucket(capacity, now)
            if len(self._buckets) > self.MAX_KEYS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((kind, key))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        return bucket
