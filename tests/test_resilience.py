"""Surviving AWS rate limits, over the wire: batched reads, single-flight, remembered fallback
positions, stale-if-error, deadlines, resets, rotation and purge races. Counts come from the
fault proxy's log."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import SEED_POLICY, get_calls, read_ids

from pipeline_secrets import LookupFailed

TEAM, PIPELINE = "main", "deploy"


def pipeline_doc(pipeline_vars: int, team_vars: int) -> dict:
    return {
        "pipeline": [f"((p{i}))" for i in range(pipeline_vars)],
        "team": [f"((t{i}.user))" for i in range(team_vars)],
    }


def seed_doc(seed, pipeline_vars: int, team_vars: int) -> None:
    for i in range(pipeline_vars):
        seed(f"/concourse/main/deploy/p{i}", f"pv{i}")
    for i in range(team_vars):
        seed(f"/concourse/main/t{i}", {"user": f"tu{i}"})


def expected_doc(pipeline_vars: int, team_vars: int) -> dict:
    return {"pipeline": [f"pv{i}" for i in range(pipeline_vars)], "team": [f"tu{i}" for i in range(team_vars)]}


# -- batched reads --------------------------------------------------------------------------------


def test_a_document_costs_one_batch_call_per_template_level(seed, connect, proxy):
    seed_doc(seed, 10, 5)
    result = connect().interpolate(pipeline_doc(10, 5), team=TEAM, pipeline=PIPELINE)
    assert result == expected_doc(10, 5)
    batches = proxy.calls("BatchGetSecretValue")
    assert [len(b.secret_ids) for b in batches] == [15, 5]  # all pipeline paths, then the team misses
    assert set(batches[1].secret_ids) == {f"/concourse/main/t{i}" for i in range(5)}
    assert proxy.calls("GetSecretValue") == []


def test_batches_hold_at_most_20_ids(seed, connect, proxy):
    seed_doc(seed, 45, 0)
    assert connect().interpolate(pipeline_doc(45, 0), team=TEAM, pipeline=PIPELINE) == expected_doc(45, 0)
    assert sorted(len(b.secret_ids) for b in proxy.calls("BatchGetSecretValue")) == [5, 20, 20]


def test_batch_denied_falls_back_to_get_secret_value_and_remembers(seed, connect, proxy):
    seed_doc(seed, 10, 5)
    proxy.set_policy(SEED_POLICY)  # no secretsmanager:BatchGetSecretValue
    manager = connect()
    assert manager.interpolate(pipeline_doc(10, 5), team=TEAM, pipeline=PIPELINE) == expected_doc(10, 5)
    assert len(proxy.calls("BatchGetSecretValue")) == 1  # denied once...
    assert len(get_calls(proxy)) == 20
    proxy.clear_log()
    resolved = manager.resolve(["a", "b", "c"], team="other", pipeline=PIPELINE)
    assert [r.found for r in resolved.values()] == [False] * 3
    assert proxy.calls("BatchGetSecretValue") == []  # ...and not asked again
    assert len(get_calls(proxy)) == 6


def test_concurrent_cold_callers_learn_of_a_denied_batch_from_one_refused_call(seed, connect, proxy):
    seed_doc(seed, 0, 2)
    proxy.set_policy(SEED_POLICY)
    proxy.add_latency(0.1)
    manager = connect()
    start = threading.Barrier(8)

    def interpolate(caller: int) -> dict:
        start.wait()  # eight pipelines, so that no two callers share a path (and a single flight)
        return manager.interpolate(pipeline_doc(0, 2), team=TEAM, pipeline=f"pipeline-{caller}")

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(interpolate, range(8))) == [expected_doc(0, 2)] * 8
    assert len(proxy.calls("BatchGetSecretValue")) == 1


def test_batch_on_reports_the_missing_permission(seed, connect, proxy):
    seed_doc(seed, 2, 0)
    proxy.set_policy(SEED_POLICY)
    with pytest.raises(LookupFailed) as failure:
        connect(batch="on").interpolate(pipeline_doc(2, 0), team=TEAM, pipeline=PIPELINE)
    assert failure.value.kind == "access-denied"
    assert "grant secretsmanager:BatchGetSecretValue" in str(failure.value)
    assert get_calls(proxy) == []


def test_batch_off_uses_get_secret_value_only(seed, connect, proxy):
    seed_doc(seed, 3, 2)
    assert connect(batch="off").interpolate(pipeline_doc(3, 2), team=TEAM, pipeline=PIPELINE) == expected_doc(3, 2)
    assert proxy.calls("BatchGetSecretValue") == []
    assert len(get_calls(proxy)) == 7


def test_batch_answer_with_mixed_errors_keeps_the_lookup_rules(seed, connect, proxy):
    """A denied pipeline path still fails its var; a missing one falls through to the team."""
    seed("/concourse/main/deploy/found", "f")
    seed("/concourse/main/deploy/denied", "d")
    seed("/concourse/main/denied", "team-d")
    seed("/concourse/main/fallback", "team-fb")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"],
             "Resource": "*"},
            {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
             "Resource": "arn:aws:secretsmanager:*:*:secret:/concourse/main/deploy/denied-??????"},
        ],
    }
    proxy.set_policy(policy)
    resolved = connect().resolve(["found", "denied", "fallback", "nowhere"], team=TEAM, pipeline=PIPELINE)
    assert resolved["found"].value == "f"
    assert resolved["fallback"].value == "team-fb" and resolved["fallback"].path == "/concourse/main/fallback"
    assert resolved["nowhere"].found is False and resolved["nowhere"].error is None
    assert resolved["denied"].error.kind == "access-denied"
    assert "/concourse/main/denied" not in read_ids(proxy)  # no fall-through past the denial


# -- single-flight ------------------------------------------------------------------------------


def test_a_herd_of_64_concurrent_lookups_makes_one_aws_call(seed, connect, proxy):
    seed("/concourse/main/deploy/hot", "v")
    proxy.add_latency(0.2)  # keep the first call in flight while the others arrive
    manager = connect()
    start = threading.Barrier(64)

    def look() -> str:
        start.wait()
        return manager.lookup("hot", team=TEAM, pipeline=PIPELINE)

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda _: look(), range(64)))
    assert answers == ["v"] * 64
    assert read_ids(proxy) == ["/concourse/main/deploy/hot"]


def test_concurrent_callers_share_one_failure_too(seed, connect, proxy):
    seed("/concourse/main/deploy/hot", "v")
    proxy.add_latency(0.2)
    proxy.set_policy({"Version": "2012-10-17", "Statement": []})
    manager = connect()
    start = threading.Barrier(16)

    def look():
        start.wait()
        try:
            manager.lookup("hot", team=TEAM, pipeline=PIPELINE)
        except LookupFailed as exc:
            return exc.kind

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda _: look(), range(16))) == ["access-denied"] * 16
    assert len(proxy.log) == 1


# -- remembered fallback positions (Concourse issue 6052) ----------------------------------------


def test_a_team_level_var_does_not_cost_a_pipeline_call_every_build(seed, connect, proxy):
    seed("/concourse/main/token", "team-value")
    manager = connect(cache_duration="1m", cache_duration_notfound="50ms")
    assert manager.lookup("token", team=TEAM, pipeline=PIPELINE) == "team-value"
    time.sleep(0.1)  # the pipeline path's not-found answer has expired
    assert manager.lookup("token", team=TEAM, pipeline=PIPELINE) == "team-value"
    assert get_calls(proxy) == ["/concourse/main/deploy/token", "/concourse/main/token"]
    metrics = manager.metrics()
    assert metrics["aws_calls"]["GetSecretValue"] == {"not_found": 1, "found": 1}


# -- stale-if-error, deadlines, resets ------------------------------------------------------------


def test_stale_value_is_served_while_aws_throttles(seed, connect, proxy):
    seed("/concourse/main/token", "v1")
    manager = connect(cache_duration="50ms", cache_stale_if_error="5m", retry_attempts=2)
    assert manager.lookup("token", team=TEAM) == "v1"
    time.sleep(0.1)
    proxy.throttle()
    assert manager.lookup("token", team=TEAM) == "v1"
    assert manager.metrics()["cache"]["stale"] == 1
    assert len(proxy.calls("GetSecretValue")) == 3  # 1 fetch, then 2 throttled attempts


def test_without_stale_if_error_throttling_fails_the_lookup(seed, connect, proxy):
    seed("/concourse/main/token", "v1")
    manager = connect(cache_duration="50ms", retry_attempts=2)
    manager.lookup("token", team=TEAM)
    time.sleep(0.1)
    proxy.throttle()
    with pytest.raises(LookupFailed, match="ThrottlingException"):
        manager.lookup("token", team=TEAM)
    assert manager.metrics()["throttles"] == 2


def test_a_hanging_backend_is_cut_off_by_the_lookup_deadline(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    proxy.hang(30)
    with pytest.raises(LookupFailed) as failure:
        connect(lookup_timeout="1s", retry_attempts=5, retry_interval="100ms").lookup("token", team=TEAM)
    assert failure.value.kind == "network"
    assert "lookup deadline" in str(failure.value)


def test_a_connection_reset_mid_response_is_retried(seed, connect, proxy):
    seed("/concourse/main/token", "v")
    proxy.drop_connections(count=1, mode="mid")
    assert connect(retry_attempts=3).lookup("token", team=TEAM) == "v"
    assert len(proxy.calls("GetSecretValue")) == 2


def test_an_error_answer_cut_mid_way_is_retried(seed, connect, proxy):
    # A throttling answer whose body is cut: botocore cannot read it and names it by its status.
    seed("/concourse/main/token", "v")
    proxy.throttle(count=1)
    proxy.drop_connections(count=1, mode="mid")
    assert connect(retry_attempts=3).lookup("token", team=TEAM) == "v"
    assert len(proxy.calls("GetSecretValue")) == 2


def test_a_throttling_storm_is_absorbed_by_retries(seed, connect, proxy):
    for i in range(30):
        seed(f"/concourse/main/s{i}", f"v{i}")
    proxy.throttle_above(20)
    manager = connect(batch="off", retry_attempts=8, retry_interval="20ms", cache_enabled=False)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: manager.lookup(f"s{i}", team=TEAM), range(30)))
    assert answers == [f"v{i}" for i in range(30)]
    assert any(r.error_type == "ThrottlingException" for r in proxy.log)  # the storm did happen
    assert manager.metrics()["retries"] > 0


# -- rotation and races ----------------------------------------------------------------------------


def test_rotation_serves_the_new_value_after_the_ttl_and_never_a_mix(seed, aws, connect, proxy):
    seed("/concourse/main/db", {"user": "u0", "password": "p0"})
    manager = connect(cache_duration="20ms")
    stop = threading.Event()

    def rotate() -> None:
        version = 0
        while not stop.is_set():
            version += 1
            aws.put_secret_value(SecretId="/concourse/main/db",
                                 SecretString=f'{{"user": "u{version}", "password": "p{version}"}}')
            time.sleep(0.01)

    rotator = threading.Thread(target=rotate)
    rotator.start()
    try:
        seen = set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            doc = manager.interpolate({"u": "((db.user))", "p": "((db.password))"}, team=TEAM)
            assert doc["u"][1:] == doc["p"][1:], doc  # both fields from one version
            seen.add(doc["u"])
    finally:
        stop.set()
        rotator.join()
    assert len(seen) > 1  # new values were served as the TTL ran out


def test_cache_purge_racing_lookups(seed, connect, proxy):
    for i in range(5):
        seed(f"/concourse/main/s{i}", f"v{i}")
    manager = connect(cache_duration="5ms", cache_duration_notfound="5ms", cache_purge_interval="1ms",
                      cache_max_entries=3)
    errors: list[BaseException] = []

    def hammer(worker: int) -> None:
        try:
            for n in range(60):
                i = (worker + n) % 5
                assert manager.lookup(f"s{i}", team=TEAM, pipeline=PIPELINE) == f"v{i}"
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_metrics_count_what_the_proxy_saw(seed, connect, proxy):
    seed_doc(seed, 3, 2)
    manager = connect(batch="off")
    manager.interpolate(pipeline_doc(3, 2), team=TEAM, pipeline=PIPELINE)
    manager.interpolate(pipeline_doc(3, 2), team=TEAM, pipeline=PIPELINE)
    metrics = manager.metrics()
    calls = metrics["aws_calls"]["GetSecretValue"]
    assert sum(calls.values()) == len(proxy.calls("GetSecretValue")) == 7
    assert calls == {"found": 5, "not_found": 2}
    assert metrics["cache"]["hit"] >= 5
    assert metrics["lookups"]["count"] == 2
