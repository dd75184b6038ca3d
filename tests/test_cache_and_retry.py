"""Spec 6: caching and retrying, over the wire (call counts from the proxy) and with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import get_calls

from pipeline_secrets import LookupFailed, UndefinedVarsError
from pipeline_secrets.resilience import CachingReader, Entry, MemoryStore, RetryingReader

TEAM = "main"


# -- over the wire ------------------------------------------------------------------------------


def test_found_values_are_cached(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    manager = connect()
    for _ in range(3):
        assert manager.lookup("token", team=TEAM) == "v"
    assert get_calls(proxy) == ["/concourse/main/token"]


def test_not_found_answers_are_cached_too(seed, connect, proxy):
    seed("/concourse/main/token", "team")
    manager = connect()
    for _ in range(3):
        assert manager.lookup("token", team=TEAM, pipeline="p") == "team"
    assert get_calls(proxy) == ["/concourse/main/p/token", "/concourse/main/token"]


def test_cache_disabled_asks_every_time(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    manager = connect(cache_enabled=False)
    for _ in range(3):
        manager.lookup("token", team=TEAM)
    assert len(get_calls(proxy)) == 3


PIPELINE_MISS, TEAM_HIT = "/concourse/main/p/token", "/concourse/main/token"


@pytest.mark.parametrize(
    ("option", "expected_calls"),
    [
        # found values not cached: the team path every time, the pipeline miss once
        ("cache_duration", [PIPELINE_MISS, TEAM_HIT, TEAM_HIT, TEAM_HIT]),
        # not-found answers not cached: the pipeline path every time, the team value once
        ("cache_duration_notfound", [PIPELINE_MISS, TEAM_HIT, PIPELINE_MISS, PIPELINE_MISS]),
    ],
)
def test_zero_duration_disables_that_kind_of_caching(seed, connect, proxy, option, expected_calls):
    seed(TEAM_HIT, "v")
    manager = connect(**{option: "0"})
    for _ in range(3):
        assert manager.lookup("token", team=TEAM, pipeline="p") == "v"
    assert get_calls(proxy) == expected_calls


def test_errors_are_not_cached(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    manager = connect(retry_attempts=1)
    proxy.fail(status=500, error_type="InternalServiceError", count=1)
    with pytest.raises(LookupFailed, match="InternalServiceError"):
        manager.lookup("token", team=TEAM)
    assert manager.lookup("token", team=TEAM) == "v"
    assert len(get_calls(proxy)) == 2


def test_throttling_is_retried_until_success(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    proxy.throttle(count=2)
    assert connect(retry_attempts=5).lookup("token", team=TEAM) == "v"
    assert [r.error_type for r in proxy.calls("GetSecretValue")] == ["ThrottlingException"] * 2 + [None]


@pytest.mark.parametrize("fault", ["throttle", "fail", "drop"])
def test_after_the_last_attempt_the_error_says_how_many(seed, connect, proxy, fault):
    seed("/concourse/main/token", "v")
    {"throttle": proxy.throttle, "fail": proxy.fail, "drop": proxy.drop_connections}[fault]()
    with pytest.raises(LookupFailed) as failure:
        connect(retry_attempts=3).lookup("token", team=TEAM)
    assert failure.value.attempts == 3
    assert "(after 3 attempts)" in str(failure.value)
    assert failure.value.retryable
    assert len(proxy.calls("GetSecretValue")) == 3


def test_access_denied_is_never_retried(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    proxy.set_policy({"Version": "2012-10-17", "Statement": []})
    with pytest.raises(LookupFailed) as failure:
        connect(retry_attempts=5).lookup("token", team=TEAM)
    assert failure.value.kind == "access-denied"
    assert failure.value.attempts == 1
    assert len(proxy.calls("GetSecretValue")) == 1


def test_not_found_is_never_retried(connect, proxy):
    with pytest.raises(UndefinedVarsError):
        connect(retry_attempts=5).lookup("token", team=TEAM)
    assert len(proxy.calls("GetSecretValue")) == 1


def test_botocore_does_not_retry_behind_our_back(seed, connect, proxy):
    """One attempt of ours is one HTTP request: attempts never multiply."""
    seed("/concourse/main/token", "v")
    proxy.fail(status=503, error_type="ServiceUnavailable")
    with pytest.raises(LookupFailed):
        connect(retry_attempts=2).lookup("token", team=TEAM)
    assert len(proxy.log) == 2


def test_health_is_up_when_found_or_not_found_and_never_retried(seed, connect, proxy):
    manager = connect(retry_attempts=5)
    up = {"response": {"status": "UP"}, "method": "GetSecretValue"}
    assert manager.health() == up  # not found
    seed("__concourse-health-check", "ok")
    assert manager.health() == up
    proxy.throttle(count=1)
    result = manager.health()
    assert result["method"] == "GetSecretValue"
    assert result["error"].startswith("ThrottlingException")
    assert get_calls(proxy) == ["__concourse-health-check"] * 3


def test_health_reports_access_denied(connect, proxy):
    proxy.set_policy({"Version": "2012-10-17", "Statement": []})
    result = connect().health()
    assert set(result) == {"error", "method"}
    assert "AccessDeniedException" in result["error"]


def test_unreachable_endpoint_fails_after_the_attempts_with_a_clear_error(unused_port):
    import pipeline_secrets

    with pipeline_secrets.connect(
        environ={}, endpoint_url=f"http://127.0.0.1:{unused_port}", region="us-east-1",
        access_key="a", secret_key="b", retry_attempts=2, retry_interval="10ms",
    ) as manager, pytest.raises(LookupFailed) as failure:
        manager.lookup("token", team=TEAM)
    assert failure.value.kind == "network"
    assert "(after 2 attempts)" in str(failure.value)
    assert "Could not connect to the endpoint URL" in str(failure.value)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the wrappers alone -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingReader:
    """A reader with fixed answers (a value, None, or a LookupFailed) that counts its calls."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def get(self, path: str) -> Any:
        answer = self.get_many([path])[path]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_many(self, paths):
        self.calls.extend(paths)
        return {path: self.answers.get(path) for path in paths}


def caching(inner, clock, **options):
    options = {"found_ttl": 60, "notfound_ttl": 10, **options}
    return CachingReader(inner, MemoryStore(600, clock=clock), clock=clock, **options)


def test_cache_entries_expire_after_their_ttl():
    clock = FakeClock()
    inner = CountingReader({"/found": "v"})
    reader = caching(inner, clock)
    reader.get("/found"), reader.get("/missing")
    clock.now += 9
    reader.get("/found"), reader.get("/missing")
    assert inner.calls == ["/found", "/missing"]
    clock.now += 2  # 11 s: the not-found answer expired, the value did not
    reader.get("/found"), reader.get("/missing")
    assert inner.calls == ["/found", "/missing", "/missing"]
    clock.now += 50  # 61 s
    assert reader.get("/found") == "v"
    assert inner.calls[-1] == "/found"


def test_rotation_new_value_is_served_after_the_ttl():
    clock = FakeClock()
    inner = CountingReader({"/s": "old"})
    reader = caching(inner, clock)
    assert reader.get("/s") == "old"
    inner.answers["/s"] = "new"
    clock.now += 59
    assert reader.get("/s") == "old"
    clock.now += 2
    assert reader.get("/s") == "new"


def test_expired_entries_are_purged_every_purge_interval():
    clock = FakeClock()
    store = MemoryStore(purge_interval=300, clock=clock)
    store.put("/a", Entry(True, "v", clock.now + 10, clock.now + 10))
    store.put("/b", Entry(True, "v", clock.now + 1000, clock.now + 1000))
    clock.now += 100
    store.get("/b")
    assert len(store) == 2  # expired, but the purge is not due yet
    clock.now += 200
    store.get("/b")
    assert len(store) == 1


def test_the_store_is_bounded_least_recently_used_first():
    clock = FakeClock()
    store = MemoryStore(purge_interval=300, max_entries=2, clock=clock)
    keep = Entry(True, "v", clock.now + 60, clock.now + 60)
    store.put("/a", keep)
    store.put("/b", keep)
    store.get("/a")  # /b is now the least recently used
    store.put("/c", keep)
    assert (store.get("/a"), store.get("/b"), store.get("/c")) == (keep, None, keep)


def test_stale_value_is_served_when_aws_throttles_within_the_bound():
    clock = FakeClock()
    inner = CountingReader({"/s": "v1"})
    reader = caching(inner, clock, stale_if_error=300)
    assert reader.get("/s") == "v1"
    clock.now += 61  # expired
    inner.answers["/s"] = LookupFailed("/s", "throttled", "Rate exceeded", code="ThrottlingException", retryable=True)
    assert reader.get("/s") == "v1"  # stale, served
    clock.now += 240  # 301 s after the fetch: past the bound
    with pytest.raises(LookupFailed, match="Rate exceeded"):
        reader.get("/s")


@pytest.mark.parametrize(
    "failure",
    [
        LookupFailed("/s", "access-denied", "denied", code="AccessDeniedException"),
        LookupFailed("/s", "decryption", "kms", code="DecryptionFailure"),
    ],
)
def test_stale_values_never_mask_access_denied_or_other_answers_about_the_secret(failure):
    clock = FakeClock()
    inner = CountingReader({"/s": "v1"})
    reader = caching(inner, clock, stale_if_error=300)
    reader.get("/s")
    clock.now += 61
    inner.answers["/s"] = failure
    with pytest.raises(LookupFailed):
        reader.get("/s")
    inner.answers["/s"] = None  # not found now: the secret was deleted
    assert reader.get("/s") is None


def test_stale_if_error_works_even_when_found_values_are_not_cached():
    clock = FakeClock()
    inner = CountingReader({"/s": "v1"})
    reader = caching(inner, clock, found_ttl=0, stale_if_error=300)
    reader.get("/s"), reader.get("/s")
    assert inner.calls == ["/s", "/s"]  # never fresh
    inner.answers["/s"] = LookupFailed("/s", "unavailable", "boom", code="InternalServiceError", retryable=True)
    assert reader.get("/s") == "v1"


def test_retry_waits_the_interval_and_grows_with_jitter_under_throttling():
    waits: list[float] = []
    failures = {
        "/throttled": LookupFailed("/throttled", "throttled", "Rate exceeded", code="ThrottlingException",
                                   retryable=True),
        "/down": LookupFailed("/down", "unavailable", "boom", code="InternalServiceError", retryable=True),
    }
    reader = RetryingReader(CountingReader(failures), attempts=4, interval=1.0, sleep=waits.append,
                            jitter=lambda: 1.0)
    with pytest.raises(LookupFailed):
        reader.get("/down")
    assert waits == [1.0, 1.0, 1.0]
    waits.clear()
    with pytest.raises(LookupFailed):
        reader.get("/throttled")
    assert waits == [2.0, 4.0, 8.0]  # the ceiling doubles from twice the interval; jitter=1.0 takes it
    low = RetryingReader(CountingReader(failures), attempts=4, interval=1.0, sleep=waits.append,
                         jitter=lambda: 0.0)
    waits.clear()
    with pytest.raises(LookupFailed):
        low.get("/throttled")
    assert waits == [1.0, 1.0, 1.0]  # never below the interval


def test_retry_gives_up_at_the_deadline_instead_of_waiting_past_it():
    clock = FakeClock()
    failing = {"/down": LookupFailed("/down", "unavailable", "boom", code="InternalServiceError", retryable=True)}
    inner = CountingReader(failing)

    def sleep(seconds: float) -> None:
        clock.now += seconds

    reader = RetryingReader(inner, attempts=100, interval=2.0, deadline=5.0, sleep=sleep, clock=clock)
    with pytest.raises(LookupFailed) as failure:
        reader.get("/down")
    assert len(inner.calls) == 3  # at 0 s, 2 s, 4 s; the next would start at 6 s > 5 s
    assert "5s lookup deadline" in str(failure.value)
    assert failure.value.attempts == 3


def test_retry_of_a_batch_asks_again_only_for_the_retryable_paths():
    inner = CountingReader({
        "/ok": "v",
        "/denied": LookupFailed("/denied", "access-denied", "no", code="AccessDeniedException"),
        "/busy": LookupFailed("/busy", "throttled", "slow down", code="ThrottlingException", retryable=True),
    })
    reader = RetryingReader(inner, attempts=3, interval=0.0, sleep=lambda s: None)
    answers = reader.get_many(["/ok", "/denied", "/busy", "/missing"])
    assert answers["/ok"] == "v" and answers["/missing"] is None
    assert answers["/denied"].attempts == 1
    assert answers["/busy"].attempts == 3
    assert inner.calls == ["/ok", "/denied", "/busy", "/missing", "/busy", "/busy"]
