"""Single-flight: concurrent requests for the same path share one AWS call."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from ..aws import SecretReader, first_answer


class SingleFlightReader:
    """However many threads ask for a cold path at once, one asks the inner reader; all get its
    answer (or its failure). A caller first fetches the paths no one else is fetching, then waits
    for the others, so two callers with overlapping paths can never wait on each other."""

    def __init__(self, inner: SecretReader) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[Any]] = {}

    def get(self, path: str) -> Any | None:
        return first_answer(self, path)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        futures: dict[str, Future[Any]] = {}
        mine: list[str] = []
        with self._lock:
            for path in dict.fromkeys(paths):
                future = self._in_flight.get(path)
                if future is None:
                    future = self._in_flight[path] = Future()
                    mine.append(path)
                futures[path] = future
        if mine:
            self._fetch(mine, futures)
        return {path: future.result() for path, future in futures.items()}

    def _fetch(self, paths: list[str], futures: dict[str, Future[Any]]) -> None:
        try:
            answers = self._inner.get_many(paths)
        except BaseException as exc:
            for path in paths:
                futures[path].set_exception(exc)
            raise
        finally:
            with self._lock:
                for path in paths:
                    del self._in_flight[path]
        for path in paths:
            futures[path].set_result(answers[path])
