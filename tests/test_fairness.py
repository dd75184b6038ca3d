"""One team cannot spend another team's budget (issue 8, defect 6), over the wire: the cache is
fair between teams, a document's cost is capped, and a refused var costs no AWS call at all."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import read_ids

from pipeline_secrets import LimitError, VarNameError
from pipeline_secrets.aws import SecretsManagerBackend
from pipeline_secrets.resilience import Entry, MemoryStore


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(clock: Clock) -> Entry:
    return Entry(True, "v", clock.now + 60, clock.now + 60)


# --- the store: max-min fair eviction --------------------------------------------------------


def test_a_flooding_partition_evicts_its_own_entries_first():
    clock = Clock()
    store = MemoryStore(600, max_entries=10, clock=clock)
    for i in range(3):
        store.put(f"/b/{i}", entry(clock), "beta")
    for i in range(100):
        store.put(f"/a/{i}", entry(clock), "alpha")
    assert len(store) == 10
    assert all(store.get(f"/b/{i}", "beta") is not None for i in range(3))
    assert store.partition_sizes() == {"alpha": 7, "beta": 3}
    # alpha keeps its most recent entries
    assert store.get("/a/99", "alpha") is not None and store.get("/a/0", "alpha") is None


def test_the_largest_partition_pays_when_a_small_one_grows():
    clock = Clock()
    store = MemoryStore(600, max_entries=6, clock=clock)
    for i in range(6):
        store.put(f"/a/{i}", entry(clock), "alpha")
    store.put("/b/0", entry(clock), "beta")
    assert store.partition_sizes() == {"alpha": 5, "beta": 1}
    assert store.get("/a/0", "alpha") is None  # alpha's least recently used went


def test_partitions_do_not_see_each_other():
    clock = Clock()
    store = MemoryStore(600, clock=clock)
    store.partition("alpha").put("/shared/x", entry(clock))
    assert store.partition("beta").get("/shared/x") is None
    assert store.partition("alpha").get("/shared/x") is not None


# --- over the wire ------------------------------------------------------------------------------


def test_one_teams_unknown_vars_do_not_evict_another_teams_warm_entries(seed, connect, proxy):
    seed("/concourse/beta/db", "beta-db")
    manager = connect(cache_max_entries=50)
    assert manager.lookup("db", team="beta") == "beta-db"
    proxy.clear_log()
    for round_ in range(4):  # alpha floods: 4 x 40 unknown vars, each a not-found entry
        document = {f"k{i}": f"((flood-{round_}-{i}))" for i in range(40)}
        manager.interpolate(document, team="alpha", allow_missing=True)
    proxy.clear_log()
    assert manager.lookup("db", team="beta") == "beta-db"
    assert read_ids(proxy) == []  # still cached: beta's entry survived the flood


def test_a_document_with_one_refused_var_makes_no_aws_call(seed, connect, proxy):
    manager = connect()
    document = {f"k{i}": f"((unknown-{i}))" for i in range(300)}
    document["bad"] = "((other-pipeline/x))"
    with pytest.raises(VarNameError, match="other-pipeline/x"):
        manager.interpolate(document, team="main", pipeline="deploy")
    assert proxy.log == []


def test_too_many_vars_is_refused_before_any_aws_call(connect, proxy):
    manager = connect(max_document_vars=100)
    document = [f"((v{i}))" for i in range(101)]
    with pytest.raises(LimitError, match="more than 100 distinct vars .*--max-document-vars"):
        manager.interpolate(document, team="main", pipeline="deploy")
    assert proxy.log == []
    assert manager.interpolate(document[:100], team="main", pipeline="deploy", allow_missing=True) == document[:100]


def test_secret_reads_are_capped_per_call(connect, proxy):
    manager = connect(max_secret_reads=150)
    document = [f"((v{i}))" for i in range(100)]  # 100 pipeline paths, then 100 team paths
    with pytest.raises(LimitError, match="more than 150 secret reads .*--max-secret-reads"):
        manager.interpolate(document, team="main", pipeline="deploy", allow_missing=True)
    assert len(read_ids(proxy)) == 100  # the second round was never asked
    with pytest.raises(LimitError):
        manager.resolve([f"v{i}" for i in range(200)], team="main")


def test_the_output_is_capped_too(seed, connect):
    seed("/concourse/main/big", "x" * 60_000)
    manager = connect(max_expanded_bytes="1MiB")
    with pytest.raises(LimitError, match="after interpolation"):
        manager.interpolate(["((big))"] * 100, team="main")


class SlowClient:
    """Stands in for boto3's client in a unit test of the pool's sharing (no AWS semantics): each
    call takes a little while, and the client records how many calls of each caller overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def get_secret_value(self, SecretId: str) -> dict:
        caller = SecretId.split("/")[1]
        with self.lock:
            self.now[caller] = self.now.get(caller, 0) + 1
            others_running = any(n for c, n in self.now.items() if c != caller)
            key = caller + (" while others ran" if others_running else "")
            self.peak[key] = max(self.peak.get(key, 0), self.now[caller])
        time.sleep(0.02)
        with self.lock:
            self.now[caller] -= 1
        return {"SecretString": "v"}

    def close(self) -> None:
        pass


def test_concurrent_callers_share_the_aws_threads():
    client = SlowClient()
    backend = SecretsManagerBackend(client, batch="off", workers=8)
    alone = backend.get_many([f"/solo/{i}" for i in range(40)])
    assert len(alone) == 40 and client.peak["solo"] == 8  # alone: every thread
    finished: list[str] = []

    def read(caller: str, count: int) -> None:
        backend.get_many([f"/{caller}/{i}" for i in range(count)])
        finished.append(caller)

    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(read, "big", 200)
        time.sleep(0.05)
        small = pool.submit(read, "small", 40)
        small.result(), big.result()
    # The newcomer got its half while the big one was still running, not what was left after it:
    # it finished first.
    assert finished == ["small", "big"]
    assert client.peak["small while others ran"] == 4
    backend.close()
