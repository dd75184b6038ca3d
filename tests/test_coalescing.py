"""Batches shared by concurrent callers (issue 12), on their own: a fake batch call that holds
its answer until the test lets it go."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline_secrets.aws.coalescing import Coalescer


class HeldCalls:
    """A batch call that records its ids and answers only when released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Semaphore(0)
        self.fail_with: BaseException | None = None
        self._lock = threading.Lock()

    def __call__(self, ids: list[str], admitted: bool = True) -> dict[str, object]:
        with self._lock:
            self.batches.append(list(ids))
        self.release.acquire()
        if self.fail_with is not None:
            raise self.fail_with
        return {path: f"value-of-{path}" for path in ids if not path.startswith("denied")}

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.batches) < count:
            assert time.monotonic() < deadline, self.batches
            time.sleep(0.005)


@pytest.fixture
def pool():
    with ThreadPoolExecutor(8) as executor:
        yield executor


def start(pool_, coalescer, ids):
    return pool_.submit(coalescer.read, ids)


def test_a_lone_caller_goes_at_once_and_gets_its_answers(pool):
    calls = HeldCalls()
    coalescer = Coalescer(calls, pool, batch_size=20, max_in_flight=4, partial_in_flight=1, patience=60)
    calls.release.release()
    assert coalescer.read([f"/a/{i}" for i in range(15)]) == {f"/a/{i}": f"value-of-/a/{i}" for i in range(15)}
    assert [len(b) for b in calls.batches] == [15]


def test_callers_waiting_behind_a_call_share_the_next_batch(pool):
    calls = HeldCalls()
    coalescer = Coalescer(calls, pool, batch_size=20, max_in_flight=4, partial_in_flight=1, patience=60)
    with ThreadPoolExecutor(4) as callers:
        first = start(callers, coalescer, [f"/a/{i}" for i in range(15)])
        calls.wait_for(1)
        second = start(callers, coalescer, ["/b/1", "/b/2", "/shared"])
        third = start(callers, coalescer, [f"/c/{i}" for i in range(9)] + ["/shared"])
        time.sleep(0.05)
        assert len(calls.batches) == 1  # partial batches wait while a call is out
        for _ in range(3):
            calls.release.release()
        results = [first.result(10), second.result(10), third.result(10)]
    assert len(calls.batches) == 2
    assert sorted(calls.batches[1]) == sorted(["/b/1", "/b/2", "/shared"] + [f"/c/{i}" for i in range(9)])
    assert set(results[1]) == {"/b/1", "/b/2", "/shared"}  # each caller gets its own ids only
    assert set(results[2]) == {f"/c/{i}" for i in range(9)} | {"/shared"}
    assert results[2]["/shared"] == "value-of-/shared"


def test_full_batches_go_at_once_and_a_partial_one_waits_for_the_calls_out(pool):
    calls = HeldCalls()
    coalescer = Coalescer(calls, pool, batch_size=4, max_in_flight=3, partial_in_flight=1, patience=60)
    with ThreadPoolExecutor(4) as callers:
        big = start(callers, coalescer, [f"/big/{i}" for i in range(12)])
        calls.wait_for(3)  # three full batches at once, up to max_in_flight
        small = start(callers, coalescer, ["/small/1"])
        calls.release.release()
        calls.release.release()
        time.sleep(0.05)
        assert len(calls.batches) == 3  # one call still out: the partial batch waits
        for _ in range(2):
            calls.release.release()
        assert set(small.result(10)) == {"/small/1"}
        assert len(big.result(10)) == 12
    assert calls.batches[3] == ["/small/1"]
    assert [len(b) for b in calls.batches] == [4, 4, 4, 1]


def test_ids_a_call_leaves_out_are_left_out_and_errors_reach_only_that_batchs_callers(pool):
    calls = HeldCalls()
    coalescer = Coalescer(calls, pool, batch_size=20, max_in_flight=2, partial_in_flight=2)
    calls.release.release()
    assert coalescer.read(["/ok", "denied-1"]) == {"/ok": "value-of-/ok"}
    calls.fail_with = RuntimeError("boom")
    calls.release.release()
    with pytest.raises(RuntimeError, match="boom"):
        coalescer.read(["/x"])
    calls.fail_with = None
    calls.release.release()
    assert coalescer.read(["/y"]) == {"/y": "value-of-/y"}  # nothing left over from the failure


def test_a_caller_stuck_behind_a_slow_call_sends_its_batch_after_its_patience(pool):
    calls = HeldCalls()
    coalescer = Coalescer(calls, pool, batch_size=20, max_in_flight=4, partial_in_flight=1, patience=0.05)
    with ThreadPoolExecutor(2) as callers:
        slow = start(callers, coalescer, ["/slow"])
        calls.wait_for(1)
        behind = start(callers, coalescer, ["/behind"])
        calls.wait_for(2)  # sent while the first call is still out (no release yet)
        calls.release.release()
        calls.release.release()
        assert behind.result(10) == {"/behind": "value-of-/behind"}
        assert slow.result(10) == {"/slow": "value-of-/slow"}
    assert calls.batches == [["/slow"], ["/behind"]]


def test_a_slot_waiting_for_the_rate_budget_takes_the_ids_that_gathered_meanwhile(pool):
    calls = HeldCalls()
    token = threading.Event()
    admitted: list[bool] = []

    def admit() -> bool:
        token.wait(10)
        admitted.append(True)
        return True

    coalescer = Coalescer(calls, pool, batch_size=20, max_in_flight=4, partial_in_flight=1, patience=60, admit=admit)
    with ThreadPoolExecutor(3) as callers:
        first = start(callers, coalescer, ["/a/1", "/a/2"])  # its slot waits for a token...
        second = start(callers, coalescer, ["/b/1"])  # ... while two more callers arrive
        third = start(callers, coalescer, ["/c/1", "/c/2"])
        deadline = time.monotonic() + 10
        while coalescer.pending < 5:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        token.set()
        calls.release.release()
        results = [first.result(10), second.result(10), third.result(10)]
    assert calls.batches == [["/a/1", "/a/2", "/b/1", "/c/1", "/c/2"]]  # one call, one token
    assert admitted == [True]
    assert set(results[1]) == {"/b/1"} and set(results[2]) == {"/c/1", "/c/2"}
