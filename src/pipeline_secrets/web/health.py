"""The health check behind ``/api/v1/info/creds``, cached so that polling does not cost one AWS
call per poll: within ``ttl`` seconds every caller gets the last result, and callers arriving
while a check runs wait for that one check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Check = Callable[[], Awaitable[dict[str, Any]]]


class CachedHealth:
    def __init__(self, check: Check, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._check = check
        self._ttl = ttl
        self._clock = clock
        self._result: dict[str, Any] | None = None
        self._until = 0.0
        self._lock: asyncio.Lock | None = None

    async def get(self) -> dict[str, Any]:
        if self._result is not None and self._clock() < self._until:
            return self._result
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._result is None or self._clock() >= self._until:
                result = await self._check()
                self._result, self._until = result, self._clock() + self._ttl
            return self._result
