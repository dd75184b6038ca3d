"""The load and fault soak (issue 8): hundreds of concurrent clients of several teams against a real
web node, while the fault proxy injects throttling, 5xx, latency spikes and connection resets.
Every successful answer must carry exactly the asking team's value.

Used by ``tests/test_soak.py`` (a short run) and ``bench/soak.py`` (the full minute, which writes
docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import base64
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .attack import peak_rss_mb
from .faultproxy import FaultProxy
from .webserver import aws_flags, clean_environ, start_web_server

PIPELINES = ("build", "deploy")
VARS = tuple(f"v{i}" for i in range(12))


def value_of(team: str, pipeline: str | None, var: str) -> str:
    """Each secret's value names its scope, so a wrong team's or pipeline's answer is seen."""
    return f"{team}/{pipeline or '-'}/{var}/value"


@dataclass
class SoakResult:
    seconds: float
    clients: int
    teams: int
    served: int = 0
    ok: int = 0
    wrong: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    aws_calls: int = 0
    peak_rss_mb: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1), "clients": self.clients, "teams": self.teams,
            "served": self.served, "ok": self.ok, "wrong_values": self.wrong,
            "errors": dict(sorted(self.errors.items())), "p50_ms": round(self.percentile(50), 1),
            "p99_ms": round(self.percentile(99), 1), "faults_injected": dict(sorted(self.faults.items())),
            "aws_calls": self.aws_calls, "peak_rss_mb": round(self.peak_rss_mb),
        }


def seed_secrets(aws: Any, teams: list[str]) -> None:
    for team in teams:
        for var in VARS:
            aws.create_secret(Name=f"/concourse/{team}/{var}", SecretString=value_of(team, None, var))
            for pipeline in PIPELINES:
                aws.create_secret(Name=f"/concourse/{team}/{pipeline}/{var}",
                                  SecretString=value_of(team, pipeline, var))


class FaultStorm:
    """Every ``period`` seconds, one burst of faults of a kind picked at random."""

    def __init__(self, proxy: FaultProxy, period: float, rng: random.Random) -> None:
        self.proxy = proxy
        self.period = period
        self.rng = rng
        self.injected: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FaultStorm:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            kind = self.rng.choice(["throttle", "5xx", "latency", "reset"])
            self.injected[kind] += 1
            if kind == "throttle":
                self.proxy.throttle(count=15)
            elif kind == "5xx":
                self.proxy.fail(status=503, error_type="ServiceUnavailable", count=6)
            elif kind == "latency":
                self.proxy.add_latency(0.4, count=25)
            else:
                self.proxy.drop_connections(count=3, mode=self.rng.choice(["before", "mid"]))


def run_soak(
    proxy: FaultProxy, aws: Any, *, seconds: float, clients: int, teams: int = 6, seed: int = 1,
    log: Any = None,
) -> SoakResult:
    team_names = [f"team{t}" for t in range(teams)]
    seed_secrets(aws, team_names)
    users = {team: (f"user{t}", f"pw-{t}-soak-Xy") for t, team in enumerate(team_names)}
    with tempfile.TemporaryDirectory() as tmp:
        teams_file = Path(tmp) / "teams.yml"
        teams_file.write_text("teams:\n" + "".join(
            f"  {team}:\n    local_users: [{users[team][0]}]\n" for team in team_names))
        flags = [*aws_flags(), "--teams-file", str(teams_file), "--secret-cache-duration", "2s",
                 "--secret-cache-duration-notfound", "1s", "--secret-retry-interval", "50ms"]
        for user, password in users.values():
            flags += ["--add-local-user", f"{user}:{password}"]
        server = start_web_server(flags, clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.url))
        try:
            proxy.clear_log()
            rng = random.Random(seed)
            storm = FaultStorm(proxy, 0.5, rng).start()
            result = SoakResult(seconds, clients, teams)
            started = time.monotonic()
            asyncio.run(_drive(server.url, users, clients, seconds, result))
            storm.stop()
            result.seconds = time.monotonic() - started
            result.faults = storm.injected
            result.aws_calls = len(proxy.log)
            result.peak_rss_mb = peak_rss_mb(server.process.pid)
        finally:
            server.close()
    if log:
        log(result.summary())
    return result


async def _drive(url: str, users: dict[str, tuple[str, str]], clients: int, seconds: float,
                 result: SoakResult) -> None:
    deadline = time.monotonic() + seconds
    teams = list(users)
    headers = {team: {"Authorization": "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()}
               for team, (u, p) in users.items()}

    async def one_client(n: int) -> None:
        team = teams[n % len(teams)]
        local = random.Random(n)  # one stream of choices per client: the run can be repeated
        # Spread over loopback addresses, as many hosts would be (the per-client connection cap).
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.{1 + n // 100}.{1 + n % 100}")
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=60, trust_env=False) as http:
            while time.monotonic() < deadline:
                pipeline = local.choice((*PIPELINES, None))
                var = local.choice(VARS)
                base = f"/api/v1/teams/{team}" + (f"/pipelines/{pipeline}" if pipeline else "")
                began = time.perf_counter()
                try:
                    if local.random() < 0.7:
                        response = await http.get(f"{base}/vars/lookup", params={"var": var}, headers=headers[team])
                        got = response.json().get("value") if response.status_code == 200 else None
                    else:
                        body = '{"a": "((%s))", "b": ["x-((%s))"]}' % (var, var)
                        response = await http.post(f"{base}/vars/interpolate", content=body,
                                                   headers={**headers[team], "Content-Type": "application/json"})
                        got = response.json()["a"] if response.status_code == 200 else None
                except httpx.HTTPError as exc:
                    result.served += 1
                    result.errors[type(exc).__name__] += 1
                    continue
                result.served += 1
                if response.status_code == 200:
                    result.latencies_ms.append((time.perf_counter() - began) * 1000)
                    if got == value_of(team, pipeline, var):
                        result.ok += 1
                    else:
                        result.wrong += 1
                else:
                    result.errors[f"{response.status_code} {_kind(response)}"] += 1
                    if response.status_code == 429:  # a well-behaved runner waits as told
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    await asyncio.gather(*(one_client(n) for n in range(clients)))


def _kind(response: httpx.Response) -> str:
    try:
        error = str(response.json().get("error", ""))
    except ValueError:
        return "not json"
    if response.status_code == 502:
        return error.rsplit(": ", 1)[-1]  # the kind: throttled, unavailable, network...
    if response.status_code == 429 and error.startswith("too many requests of team"):
        return "team over its queue"
    return error[:40]
