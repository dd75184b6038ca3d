"""Retry of retryable AWS failures (spec 6): throttling, 5xx, connection errors and timeouts."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..aws import SecretReader, first_answer
from ..errors import LookupFailed
from ..metrics import Metrics

MAX_THROTTLE_WAIT = 30.0


class RetryingReader:
    """Tries a retryable failure up to ``attempts`` times in all, within ``deadline`` seconds.

    Waits ``interval`` between attempts; under throttling the wait is drawn at random between
    ``interval`` and a ceiling that starts at twice the interval and doubles each attempt (capped
    at 30 s), so that callers throttled together do not come back together, not even the first
    time. Access denied, not found, decryption and
    credential failures are never retried. A retry that would end past the deadline is not made:
    the caller gets the failure, saying so, rather than hanging.
    """

    def __init__(
        self,
        inner: SecretReader,
        *,
        attempts: int,
        interval: float,
        deadline: float = 30.0,
        metrics: Metrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._attempts = attempts
        self._interval = interval
        self._deadline = deadline
        self._metrics = metrics or Metrics()
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock

    def get(self, path: str) -> Any | None:
        return first_answer(self, path)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        give_up_at = self._clock() + self._deadline
        answers: dict[str, Any] = {}
        pending = list(dict.fromkeys(paths))
        attempt = 1
        while pending:
            fetched = self._inner.get_many(pending)
            retry = [p for p in pending if _retryable(fetched[p]) and attempt < self._attempts]
            for path in pending:
                if path not in retry:
                    answers[path] = _counted(fetched[path], attempt)
            if not retry:
                break
            wait = max(self.wait_before(attempt + 1, fetched[path]) for path in retry)
            if self._clock() + wait >= give_up_at:
                for path in retry:
                    answers[path] = _past_deadline(fetched[path], attempt, self._deadline)
                break
            self._sleep(wait)
            self._metrics.retries.inc(len(retry))
            pending, attempt = retry, attempt + 1
        return answers

    def wait_before(self, attempt: int, failure: LookupFailed) -> float:
        """Seconds to wait before ``attempt`` (2 for the first retry)."""
        if failure.kind != "throttled":
            return self._interval
        ceiling = min(MAX_THROTTLE_WAIT, self._interval * 2 ** (attempt - 1))
        return self._interval + self._jitter() * max(0.0, ceiling - self._interval)


def _retryable(answer: Any) -> bool:
    return isinstance(answer, LookupFailed) and answer.retryable


def _counted(answer: Any, attempts: int) -> Any:
    if isinstance(answer, LookupFailed) and attempts > 1:
        return answer.after_attempts(attempts)
    return answer


def _past_deadline(failure: LookupFailed, attempts: int, deadline: float) -> LookupFailed:
    return LookupFailed(
        failure.path, failure.kind, f"{failure.detail}; gave up at the {deadline:g}s lookup deadline",
        code=failure.code, retryable=True, attempts=attempts,
    )
