"""Benchmark: a fleet of web nodes, independent vs sharing the Redis tier (issue 11).

    python -m pip install '.[bench]' && python bench/fleet.py           # updates docs/performance.md
    python bench/fleet.py --quick                                        # smaller, prints only

For N = 1, 3 and 6 web-node processes, the benchmark's pipeline documents are interpolated over
HTTP, spread round-robin over the nodes: one cold pass, then two warm passes. The fault proxy in
front of moto throttles above ``THROTTLE_RATE`` calls a second (as AWS would, per account) and
counts every AWS call. "independent" nodes run as a node does without Redis (no rate limit);
"shared" nodes use one redis-server and ``--aws-rate-limit`` at 80% of the throttling rate.
Reported per run: AWS calls, throttled calls, failed interpolations, p50/p99 request latency.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

import report  # noqa: E402
import run  # noqa: E402  (isolates the environment as the main benchmark does)
import workloads  # noqa: E402
from support.redisserver import RedisServer  # noqa: E402
from support.webclient import basic  # noqa: E402
from support.webserver import PASSWORDS, WebServer, clean_environ, start_web_server  # noqa: E402

from pipeline_secrets.config.keys import new_key_text  # noqa: E402

THROTTLE_RATE = 20.0  # AWS calls a second the proxy lets through, all nodes together
BUDGET = "16/s"  # the shared fleet's --aws-rate-limit: 80% of it
CALLERS = 12


def node_flags(access_key: str) -> list[str]:
    return ["--aws-secretsmanager-region", workloads.REGION, "--aws-secretsmanager-access-key", access_key,
            "--aws-secretsmanager-secret-key", workloads.SECRET_KEY, "--add-local-user", f"admin:{PASSWORDS['admin']}",
            "--main-team-local-user", "admin", "--team-concurrency", "8"]


def start_nodes(n: int, flags: list[str], proxy_url: str) -> list[WebServer]:
    env = clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy_url)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: start_web_server(flags, env, timeout=60), range(n)))


def one_pass(nodes: list[WebServer], jobs: list[workloads.Job], shift: int) -> tuple[list[float], int]:
    """Every document once, round-robin over the nodes; (latencies in s, failed interpolations)."""
    import httpx

    def one(index: int) -> tuple[float, bool]:
        job = jobs[index]
        node = nodes[(index + shift) % len(nodes)]
        started = time.perf_counter()
        with httpx.Client(base_url=node.url, trust_env=False, timeout=120) as client:
            response = client.post(f"/api/v1/teams/{job.team}/pipelines/{job.pipeline}/vars/interpolate",
                                   content=json.dumps(job.document),
                                   headers={**basic("admin"), "Content-Type": "application/json"})
        ok = response.status_code == 200 and "((" not in response.text
        return time.perf_counter() - started, ok

    with ThreadPoolExecutor(CALLERS) as pool:
        results = list(pool.map(one, range(len(jobs))))
    return [latency for latency, _ in results], sum(not ok for _, ok in results)


def measure(bench: workloads.Bench, n: int, shared: bool, redis: RedisServer, key_file: pathlib.Path) -> dict[str, Any]:
    bench.fresh_proxy(workloads.BATCH_POLICY)
    bench.proxy.throttle_above(THROTTLE_RATE)
    flags = node_flags(workloads.OURS_KEY)
    if shared:
        redis.client().flushall()
        flags += ["--redis-url", redis.url, "--redis-encryption-key-file", str(key_file), "--aws-rate-limit", BUDGET]
    nodes = start_nodes(n, flags, bench.proxy.url)
    try:
        bench.proxy.clear_log()
        latencies, failed = [], 0
        cold_latencies, cold_failed = one_pass(nodes, bench.jobs, 0)
        cold_calls = bench.calls(workloads.OURS_KEY)
        for shift in (1, 2):
            warm, warm_failed = one_pass(nodes, bench.jobs, shift)
            latencies += warm
            failed += warm_failed
        calls = bench.calls(workloads.OURS_KEY)
    finally:
        for node in nodes:
            node.close()
    everything = sorted(cold_latencies + latencies)
    return {
        "nodes": n, "mode": "shared" if shared else "independent",
        "cold_calls": cold_calls.total, "calls": calls.total, "throttled": calls.throttled,
        "failed": cold_failed + failed,
        "p50_ms": 1000 * statistics.median(everything),
        "p99_ms": 1000 * everything[min(len(everything) - 1, int(0.99 * len(everything)))],
    }


def table(rows: list[dict[str, Any]], documents: int) -> str:
    lines = [
        f"| nodes | tier | AWS calls, cold pass | AWS calls, cold + 2 warm passes | throttled | failed of {3 * documents} | "
        "p50 | p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['nodes']} | {row['mode']} | {row['cold_calls']} | {row['calls']} | {row['throttled']} | "
                     f"{row['failed']} | {row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 teams x 5 pipelines, N = 1 and 3; prints only")
    args = parser.parse_args(argv)
    scale = workloads.QUICK if args.quick else workloads.FULL
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    bench = workloads.Bench(scale, say)
    redis = RedisServer().start()
    key_file = pathlib.Path(tempfile.mkdtemp(prefix="bench-fleet-")) / "redis.key"
    key_file.write_text(new_key_text())
    rows = []
    try:
        for n in (1, 3) if args.quick else (1, 3, 6):
            for shared in (False, True):
                rows.append(measure(bench, n, shared, redis, key_file))
                say(f"N={n} {rows[-1]['mode']}: {rows[-1]}")
    finally:
        redis.close()
        bench.close()
    text = table(rows, len(bench.jobs))
    print(text)
    if not args.quick:
        section = (
            "## Fleet: independent nodes vs the shared Redis tier\n\n"
            f"`python bench/fleet.py` ({time.perf_counter() - started:.0f} s on {run.machine_note()}; "
            f"{time.strftime('%Y-%m-%d')}). {len(bench.jobs)} documents ({scale.teams} teams x {scale.pipelines} "
            f"pipelines, 15 vars each) interpolated over HTTP by {CALLERS} callers, spread round-robin over N web-node "
            f"processes: one cold pass, then two warm passes, each document on another node each time. The fault "
            f"proxy throttles above {THROTTLE_RATE:.0f} AWS calls a second (all nodes together, as AWS counts an "
            f"account); independent nodes run without Redis and without a rate limit, shared ones with one "
            f"redis-server and `--aws-rate-limit {BUDGET}`. Latency is per interpolation request, all passes; "
            "a loopback machine, so compare the rows, not the milliseconds.\n\n"
            f"{text}\n"
        )
        doc = ROOT / "docs" / "performance.md"
        report.write_section(doc, "fleet", section)
        print(f"updated {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
