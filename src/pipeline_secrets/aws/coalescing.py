"""Batches shared by concurrent callers: ids waiting from many callers go out together, 20 to a
BatchGetSecretValue call, instead of each caller's rounds in batches of their own.

No fixed waiting window: a full batch goes as soon as one of ``max_in_flight`` call slots is free;
a partial one goes at once while fewer than ``partial_in_flight`` calls are out (a lone caller pays
no latency for the sharing), else it waits for a call to come back, gathering the ids of other
callers meanwhile (as Nagle's algorithm does with small TCP segments). A caller that has waited
``patience`` seconds sends what it has anyway, so a call held up by a slow or throttled answer
does not hold the other callers' batches behind it. A batch is filled from the waiting callers in
turn (round-robin, a few ids each), so one caller's large document cannot hold the others' few ids
behind all of its own. Every caller gets back the answers of its own ids only; an id two callers
wait for goes out once.

Written here rather than taken from a library: the batching libraries on PyPI are asyncio
DataLoaders or time-window batchers; this one works with threads and waits only on other calls.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

BatchCall = Callable[[list[str], bool], dict[str, Any]]  # (ids, admitted by the rate budget) -> answers


class _Caller:
    def __init__(self, ids: list[str]) -> None:
        self.waiting: deque[str] = deque(ids)
        self.outstanding = set(ids)
        self.answers: dict[str, Any] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None


class Coalescer:
    """``read(ids)`` -> {id: answer} as ``call`` (one batch of at most ``batch_size`` ids) gives
    them; ids ``call`` leaves out of its answer are left out of the caller's too. Thread-safe.

    With ``admit`` (the rate budget: waits for a token, False when none comes in time), a call
    slot first waits for its token and only then takes its ids: whatever gathered during the wait
    goes in the same call, so waiting on the budget fills batches instead of multiplying them."""

    def __init__(
        self, call: BatchCall, pool: Executor, *, batch_size: int, max_in_flight: int, partial_in_flight: int = 2,
        patience: float = 0.2, admit: Callable[[], bool] | None = None,
    ) -> None:
        self._patience = patience
        self._admit = admit
        self._admitting = 0  # call slots waiting for their token, each to take up to batch_size ids
        self._call = call
        self._pool = pool
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight
        self._partial_in_flight = min(partial_in_flight, max_in_flight)
        self._pending = 0  # ids waiting to be sent, over all callers
        self._lock = threading.Lock()
        self._callers: OrderedDict[int, _Caller] = OrderedDict()  # callers with ids not yet sent
        self._in_flight = 0
        self.calls = 0  # for the benchmark and tests

    @property
    def pending(self) -> int:
        """Ids waiting to be taken into a call (for tests and metrics)."""
        with self._lock:
            return self._pending

    def read(self, ids: list[str]) -> dict[str, Any]:
        caller = _Caller(list(dict.fromkeys(ids)))
        if not caller.outstanding:
            return {}
        with self._lock:
            self._callers[id(caller)] = caller
            self._pending += len(caller.waiting)
        self._send()
        while not caller.done.wait(self._patience):
            self._send(impatient=True)
        if caller.error is not None:
            raise caller.error
        return caller.answers

    def _send(self, impatient: bool = False) -> None:
        """Send what waits, while call slots are free (``impatient``: partial batches too)."""
        while True:
            with self._lock:
                unclaimed = self._pending - self._admitting * self._batch_size
                full = unclaimed >= self._batch_size or (impatient and unclaimed > 0)
                if unclaimed <= 0 or self._in_flight >= (self._max_in_flight if full else self._partial_in_flight):
                    return
                self._in_flight += 1
                if self._admit is not None:
                    self._admitting += 1
                    batch = None
                else:
                    batch = self._take_batch()
                    if batch is None:
                        return
            try:
                self._pool.submit(self._run, batch)
            except RuntimeError as exc:  # the pool is shut down (closing)
                self._deliver(batch or {}, {}, exc)

    def _take_batch(self) -> dict[str, list[_Caller]] | None:
        """The next batch for a reserved slot, or None (the slot is given back) (lock held)."""
        batch = self._next_batch()
        if not batch:
            self._in_flight -= 1
            return None
        self.calls += 1
        return batch

    def _next_batch(self) -> dict[str, list[_Caller]]:
        """Up to ``batch_size`` distinct ids, a few from each waiting caller in turn (lock held)."""
        batch: dict[str, list[_Caller]] = {}
        share = max(1, self._batch_size // max(1, len(self._callers)))
        while len(batch) < self._batch_size and self._callers:
            for key, caller in list(self._callers.items()):
                taken = 0
                while caller.waiting and taken < share and len(batch) < self._batch_size:
                    path = caller.waiting.popleft()
                    batch.setdefault(path, []).append(caller)
                    taken += 1
                if not caller.waiting:
                    del self._callers[key]
                else:
                    self._callers.move_to_end(key)  # next batch starts with the next caller
                if len(batch) >= self._batch_size:
                    break
        # Callers still waiting for an id that this batch carries need not send it again.
        for caller in self._callers.values():
            if any(path in batch for path in caller.waiting):
                kept = deque()
                for path in caller.waiting:
                    if path in batch:
                        batch[path].append(caller)
                    else:
                        kept.append(path)
                caller.waiting = kept
        for key in [key for key, caller in self._callers.items() if not caller.waiting]:
            del self._callers[key]
        self._pending = sum(len(caller.waiting) for caller in self._callers.values())
        return batch

    def _run(self, batch: dict[str, list[_Caller]] | None) -> None:
        admitted = True
        if batch is None:  # a slot that takes its ids once the budget admits it
            admitted = self._admit() if self._admit is not None else True
            with self._lock:
                self._admitting -= 1
                batch = self._take_batch()
            if batch is None:
                self._send()
                return
        try:
            answers = self._call(list(batch), admitted)
        except BaseException as exc:  # delivered to the callers, who raise it
            self._deliver(batch, {}, exc)
        else:
            self._deliver(batch, answers, None)
        self._send()

    def _deliver(self, batch: dict[str, list[_Caller]], answers: dict[str, Any], error: BaseException | None) -> None:
        finished = []
        with self._lock:
            self._in_flight -= 1
            for path, callers in batch.items():
                for caller in callers:
                    if path in answers:
                        caller.answers[path] = answers[path]
                    if error is not None and caller.error is None:
                        caller.error = error
                    caller.outstanding.discard(path)
                    if not caller.outstanding:
                        finished.append(caller)
            for caller in finished:  # an error ends the caller's wait for its other ids too
                self._callers.pop(id(caller), None)
            for caller in [c for c in self._callers.values() if c.error is not None]:
                self._callers.pop(id(caller), None)
                finished.append(caller)
            self._pending = sum(len(caller.waiting) for caller in self._callers.values())
        for caller in finished:
            caller.done.set()
