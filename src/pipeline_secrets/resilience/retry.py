"""Retry of retryable AWS failures (spec 6): throttling, 5xx, connection errors and timeouts."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from ..backend import SecretReader
from ..errors import LookupFailed

MAX_THROTTLE_WAIT = 30.0


class RetryingReader:
    """Tries a retryable failure up to ``attempts`` times in all.

    Waits ``interval`` between attempts; under throttling the wait grows exponentially from
    ``interval`` with random jitter, so that many callers throttled together do not come back
    together. Access denied, not found, decryption and credential failures are never retried.
    """

    def __init__(
        self,
        inner: SecretReader,
        *,
        attempts: int,
        interval: float,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._inner = inner
        self._attempts = attempts
        self._interval = interval
        self._sleep = sleep
        self._jitter = jitter

    def get(self, path: str) -> Any | None:
        for attempt in range(1, self._attempts + 1):
            try:
                return self._inner.get(path)
            except LookupFailed as exc:
                if not exc.retryable or attempt == self._attempts:
                    raise (exc if attempt == 1 else exc.after_attempts(attempt)) from None
                self._sleep(self.wait_before(attempt + 1, exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def wait_before(self, attempt: int, failure: LookupFailed) -> float:
        """Seconds to wait before ``attempt`` (2 for the first retry)."""
        if failure.kind != "throttled":
            return self._interval
        ceiling = min(MAX_THROTTLE_WAIT, self._interval * 2 ** (attempt - 2))
        return self._interval + self._jitter() * max(0.0, ceiling - self._interval)
