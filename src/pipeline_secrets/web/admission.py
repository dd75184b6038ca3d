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
import hashlib
import math
import secrets
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
    client address. Capacity is kept for the likely logins: an attempt with a user name that is not
    configured may use only half of it, one with a known name three quarters, and one from an
    address that logged in as that user before all of it. A flood of made-up names cannot crowd
    out the real users."""

    UNKNOWN, KNOWN, TRUSTED = 0.5, 0.75, 1.0  # shares of the capacity each kind may fill

    def __init__(self, capacity: int, per_client: int) -> None:
        self.capacity = capacity
        self.per_client = per_client
        self._pending = 0
        self._by_client: dict[str, int] = {}

    @contextlib.contextmanager
    def admit(
        self, client: str, share: float = TRUSTED, on_refused: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Hold a place while the check runs; ``on_refused`` is called before a refusal is raised."""
        refusal = None
        if self._by_client.get(client, 0) >= self.per_client:
            refusal = Overloaded(429, "too many password checks from this address at once; try again shortly", 1)
        elif self._pending >= max(1, int(self.capacity * share)):
            refusal = Overloaded(503, "too many password checks waiting; try again shortly", 1)
        if refusal is not None:
            if on_refused is not None:
                on_refused()
            raise refusal
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

    Only failures create buckets (``check`` reads them), so refused attempts leave no state, and
    names are kept as a keyed hash of fixed size. A full table forgets only buckets that have
    refilled (the same as none); when none has, the least recently used goes. Buckets are kept for
    unknown names alike, so a refusal never tells whether a user exists.
    """

    MAX_KEYS = 30_000  # buckets and trusted pairs kept each

    def __init__(
        self, *, per_pair: tuple[float, float] = (20, 1 / 3), per_client: tuple[float, float] = (100, 2.0),
        per_user: tuple[float, float] = (100, 1.0), trusted_for: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rules = {"pair": per_pair, "client": per_client, "user": per_user}
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()
        self._trusted: OrderedDict[bytes, float] = OrderedDict()
        self._trusted_for = trusted_for
        self._clock = clock
        self._salt = secrets.token_bytes(16)

    def check(self, client: str, user: str) -> None:
        """Raise ``Overloaded`` (429) when this attempt may not be checked now."""
        self._refuse_if_empty("pair", client, user)
        if self.trusted(client, user):
            return
        self._refuse_if_empty("client", client, "")
        self._refuse_if_empty("user", "", user)

    @property
    def size(self) -> int:
        """Buckets kept now."""
        return len(self._buckets)

    def trusted(self, client: str, user: str) -> bool:
        """True when this address logged in as this user within ``trusted_for`` seconds."""
        since = self._trusted.get(self._key("trusted", client, user))
        return since is not None and self._clock() - since < self._trusted_for

    def failed(self, client: str, user: str, *, of_user: bool = True) -> None:
        """A failed check: a token from the pair's, the address's and (``of_user``) the user's bucket."""
        self.spend("pair", client, user)
        self.spend("client", client, "")
        if of_user:
            self.spend("user", "", user)

    def spend(self, kind: str, client: str, user: str) -> None:
        """One token from one bucket (an attempt refused for lack of capacity costs its address one)."""
        key = self._key(kind, client, user)
        bucket = self._refilled(kind, key)
        if bucket is None:
            bucket = _Bucket(self._rules[kind][0], self._clock())
            self._make_room()
            self._buckets[key] = bucket
        bucket.tokens -= 1

    def succeeded(self, client: str, user: str) -> None:
        key = self._key("trusted", client, user)
        self._trusted[key] = self._clock()
        self._trusted.move_to_end(key)
        if len(self._trusted) > self.MAX_KEYS:
            self._trusted.popitem(last=False)

    def _refuse_if_empty(self, kind: str, client: str, user: str) -> None:
        bucket = self._refilled(kind, self._key(kind, client, user))
        if bucket is not None and bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self._rules[kind][1]
            raise Overloaded(429, "too many failed logins; try again later", wait)

    def _refilled(self, kind: str, key: bytes) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            capacity, rate = self._rules[kind]
            now = self._clock()
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        return bucket

    def _make_room(self) -> None:
        if len(self._buckets) < self.MAX_KEYS:
            return
        now = self._clock()
        for key in [key for key, bucket in self._buckets.items() if self._full(key, bucket, now)]:
            del self._buckets[key]
        while len(self._buckets) >= self.MAX_KEYS:
            self._buckets.popitem(last=False)

    def _full(self, key: bytes, bucket: _Bucket, now: float) -> bool:
        capacity, rate = self._rules[self._kinds[key[:1]]]
        return bucket.tokens + (now - bucket.updated) * rate >= capacity

    _kinds = {b"p": "pair", b"c": "client", b"u": "user", b"t": "trusted"}

    def _key(self, kind: str, client: str, user: str) -> bytes:
        data = client.encode("utf-8", "surrogatepass") + b"\0" + user.encode("utf-8", "surrogatepass")
        return kind[:1].encode() + hashlib.blake2b(data, key=self._salt, digest_size=16).digest()
