"""The benchmark's data set, its six workloads, and the counting of AWS calls from the proxy log.

Every workload runs ours (a fresh ``pipeline_secrets.Manager``, cold cache) and the Concourse
model (``concourse_model.ConcourseModel``, fresh, cold) against the same moto server through the
same fault proxy. Each side signs with its own access key id, so the proxy's log says which side
made each call.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from concourse_model import ConcourseModel
from conftest import SEED_POLICY
from support.faultproxy import CallRecord, FaultProxy
from support.motoserver import MotoServer, start_moto_server

import pipeline_secrets

REGION = "us-east-1"
SECRET_KEY = "bench-secret-key"
OURS_KEY = "AKIABENCHOURS0000001"
MODEL_KEY = "AKIABENCHCONCOURSE01"
CACHING_LIB_KEY = "AKIABENCHCACHINGLIB1"

FOUND_TTL, NOTFOUND_TTL = 60.0, 10.0  # both sides' defaults

# The seed's policy plus BatchGetSecretValue (which AWS authorises on "*"; each id is then checked
# against GetSecretValue): what an operator grants to let us batch.
BATCH_POLICY: dict[str, Any] = json.loads(json.dumps(SEED_POLICY))
BATCH_POLICY["Statement"].append(
    {"Sid": "AllowBatchGet", "Effect": "Allow", "Action": ["secretsmanager:BatchGetSecretValue"], "Resource": "*"}
)

PIPELINE_VARS = 10  # /concourse/TEAM/PIPELINE/var0..9
TEAM_VARS = 5  # /concourse/TEAM/team0..4
JSON_PIPELINE_VARS = frozenset({0, 1})  # JSON objects: the document uses their fields
JSON_TEAM_VARS = frozenset({0})


@dataclass(frozen=True)
class Scale:
    teams: int = 20
    pipelines: int = 10
    callers: int = 16
    herd: int = 64
    repeats: int = 5
    repeat_spacing: float = 2.5  # seconds between W2's passes
    latency: float = 0.020
    latency_runs: int = 3
    # W4's round trips are counted in one more run with this much latency added: each call costs a
    # few ms of CPU in this process, and 15 parallel calls can spread over ~20 ms, which a 20 ms
    # latency could not tell from a round trip.
    count_latency: float = 0.100
    throttle_rate: float = 50.0
    hot_calls: int = 100_000
    hot_rounds: int = 3
    # W5: ours runs with the default retry settings (5 attempts in all, 1s interval, growing and
    # jittered under throttling), then again with this shorter interval, to show its sensitivity.
    w5_short_retry_interval: str = "50ms"


FULL = Scale()
# A smoke run: fewer documents, so a lower rate limit to be throttled at all.
QUICK = Scale(teams=4, pipelines=5, repeat_spacing=0.5, latency_runs=1, throttle_rate=10.0, hot_calls=20_000,
              hot_rounds=1)


# -- data ------------------------------------------------------------------------------------------


def team_name(i: int) -> str:
    return f"team{i:02d}"


def pipeline_name(j: int) -> str:
    return f"pipeline{j}"


def pipeline_secret(team: str, pipeline: str, i: int) -> tuple[str, Any]:
    path = f"/concourse/{team}/{pipeline}/var{i}"
    if i in JSON_PIPELINE_VARS:
        return path, {"user": f"user-{team}-{pipeline}-{i}", "password": f"pw-{team}-{pipeline}-{i}"}
    return path, f"value-{team}-{pipeline}-{i}"


def team_secret(team: str, i: int) -> tuple[str, Any]:
    path = f"/concourse/{team}/team{i}"
    if i in JSON_TEAM_VARS:
        return path, {"user": f"robot-{team}", "token": f"token-{team}"}
    return path, f"team-value-{team}-{i}"


def pipeline_document(team: str, pipeline: str) -> dict[str, Any]:
    """A pipeline config with 10 pipeline-level and 5 team-level vars (some with fields)."""
    return {
        "resources": [
            {"name": "repo", "type": "git", "source": {
                "uri": "https://git.example.com/((var2))/app.git", "private_key": "((var3))",
                "username": "((var0.user))", "password": "((var0.password))"}},
            {"name": "image", "type": "registry-image", "source": {
                "repository": f"registry.example.com/{team}/{pipeline}",
                "username": "((team0.user))", "password": "((team0.token))"}},
            {"name": "artifacts", "type": "s3", "source": {
                "bucket": "((var4))", "access_key_id": "((var1.user))", "secret_access_key": "((var1.password))"}},
        ],
        "jobs": [{"name": "deploy", "plan": [
            {"get": "repo", "trigger": True},
            {"task": "deploy", "file": "repo/ci/deploy.yml", "params": {
                "DB_HOST": "((var5))", "DB_PORT": "((var6))", "API_TOKEN": "((var7))", "FEATURE": "((var8))",
                "SLACK_WEBHOOK": "((team1))", "PAGER_KEY": "((team2))", "ACCOUNT": "((team4))",
                "BANNER": "build ((var9)) in ((team3))"}},
            {"put": "image", "params": {"build": "repo"}},
        ]}],
    }


@dataclass(frozen=True)
class Job:
    team: str
    pipeline: str
    document: dict[str, Any]


def jobs_of(scale: Scale) -> list[Job]:
    """Team by team, pipeline by pipeline: the order the callers take them in."""
    return [
        Job(team_name(t), pipeline_name(p), pipeline_document(team_name(t), pipeline_name(p)))
        for t in range(scale.teams) for p in range(scale.pipelines)
    ]


def seed_secrets(aws: Any, scale: Scale) -> set[str]:
    """Create every secret straight on moto (not through the proxy); returns the paths."""
    secrets: list[tuple[str, Any]] = []
    for t in range(scale.teams):
        team = team_name(t)
        secrets += [team_secret(team, i) for i in range(TEAM_VARS)]
        for p in range(scale.pipelines):
            secrets += [pipeline_secret(team, pipeline_name(p), i) for i in range(PIPELINE_VARS)]

    for path, value in secrets:  # one at a time: moto's CreateSecret is not safe to call concurrently
        aws.create_secret(Name=path, SecretString=value if isinstance(value, str) else json.dumps(value))
    return {path for path, _ in secrets}


# -- counting AWS calls ---------------------------------------------------------------------------

READS = ("GetSecretValue", "BatchGetSecretValue")


@dataclass
class Calls:
    """The AWS calls of one side, from the proxy log."""

    get: int = 0
    batch: int = 0
    ids_read: int = 0  # ids in calls AWS answered (not throttled or denied as a whole)
    throttled: int = 0
    denied: int = 0  # calls refused as a whole (AccessDenied)
    duplicates: int = 0  # reads of a path again within the TTL of its previous answer
    duplicate_paths: int = 0

    @property
    def total(self) -> int:
        return self.get + self.batch


def count_calls(records: Iterable[CallRecord], access_key: str, existing: set[str]) -> Calls:
    calls = Calls()
    answered: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.access_key_id != access_key or record.operation not in READS:
            continue
        if record.operation == "GetSecretValue":
            calls.get += 1
        else:
            calls.batch += 1
        if record.error_type == "ThrottlingException":
            calls.throttled += 1
        elif record.error_type == "AccessDeniedException":
            calls.denied += 1
        elif record.status == 200 or record.error_type == "ResourceNotFoundException":
            calls.ids_read += len(record.secret_ids)
            for secret_id in record.secret_ids:
                answered[secret_id].append(record.timestamp)
    for path, times in answered.items():
        ttl = FOUND_TTL if path in existing else NOTFOUND_TTL
        times.sort()
        dups = sum(1 for earlier, later in zip(times, times[1:]) if later - earlier < ttl)
        calls.duplicates += dups
        calls.duplicate_paths += dups > 0
    return calls


def sequential_rounds(records: Iterable[CallRecord], access_key: str, latency: float) -> int:
    """Round trips that cannot have overlapped: the longest chain of calls given the added latency,
    each reaching the proxy at least ``latency`` (less 10% for timer slack) after the one before.

    The proxy answers a call denied by the policy before it adds latency; against AWS such a call
    is a round trip of its own, so calls answered at once before the first delayed call (the
    batch call that finds BatchGetSecretValue denied) count as one more round.
    """
    calls = sorted((r for r in records if r.access_key_id == access_key and r.operation in READS),
                   key=lambda r: r.timestamp)
    delayed = [r.timestamp for r in calls if r.fault == "latency"]
    depth: list[int] = []
    for i, t in enumerate(delayed):
        depth.append(1 + max((depth[j] for j in range(i) if t - delayed[j] >= 0.9 * latency), default=0))
    rounds = max(depth, default=0)
    if delayed and any(r.fault != "latency" and r.timestamp < delayed[0] for r in calls):
        rounds += 1
    return rounds


# -- the bench harness ----------------------------------------------------------------------------


class Bench:
    """moto server + fault proxy + the seeded data set."""

    def __init__(self, scale: Scale, log: Callable[[str], None] = print) -> None:
        self.scale = scale
        self.say = log
        self.moto: MotoServer = start_moto_server()
        self.proxy = FaultProxy(self.moto.url).start()
        self.aws = boto3.client(
            "secretsmanager", endpoint_url=self.moto.url, region_name=REGION,
            aws_access_key_id="seeder", aws_secret_access_key="seeder",
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=16),
        )
        started = time.perf_counter()
        self.existing = seed_secrets(self.aws, scale)
        self.jobs = jobs_of(scale)
        self.say(f"seeded {len(self.existing)} secrets on moto in {time.perf_counter() - started:.1f}s; "
                 f"{len(self.jobs)} pipeline documents")

    def close(self) -> None:
        self.proxy.stop()
        self.moto.stop()

    def fresh_proxy(self, policy: dict[str, Any] | None) -> None:
        self.proxy.reset()  # no faults, empty log
        self.proxy.set_policy(policy)

    def ours(self, **options: Any) -> pipeline_secrets.Manager:
        return pipeline_secrets.connect(
            environ={}, endpoint_url=self.proxy.url, region=REGION, access_key=OURS_KEY, secret_key=SECRET_KEY,
            **options,
        )

    def model(self, **options: Any) -> ConcourseModel:
        return ConcourseModel(self.proxy.url, region=REGION, access_key=MODEL_KEY, secret_key=SECRET_KEY, **options)

    def calls(self, access_key: str) -> Calls:
        return count_calls(self.proxy.log, access_key, self.existing)


@dataclass
class Pass:
    wall: float
    failed: int
    outputs: dict[tuple[str, str], Any] = field(repr=False)
    errors: list[str] = field(default_factory=list, repr=False)


def interpolate_all(side: Any, jobs: list[Job], callers: int) -> Pass:
    """Interpolate every document once, ``callers`` at a time."""

    def one(job: Job) -> Any:
        return side.interpolate(job.document, team=job.team, pipeline=job.pipeline)

    with ThreadPoolExecutor(callers) as pool:
        started = time.perf_counter()
        futures = [pool.submit(one, job) for job in jobs]
        outputs, errors = {}, []
        for job, future in zip(jobs, futures):
            try:
                outputs[job.team, job.pipeline] = future.result()
            except Exception as exc:  # a failed interpolation: counted, not fatal
                errors.append(f"{job.team}/{job.pipeline}: {type(exc).__name__}: {exc}")
        wall = time.perf_counter() - started
    return Pass(wall, len(errors), outputs, errors)


def check_outputs(*passes: Pass) -> None:
    """Both sides must produce the same, fully resolved documents."""
    reference: dict[tuple[str, str], Any] = {}
    for run in passes:
        for key, output in run.outputs.items():
            if "((" in json.dumps(output):
                raise AssertionError(f"unresolved placeholder in {key}")
            if reference.setdefault(key, output) != output:
                raise AssertionError(f"the two sides disagree on {key}")


# -- W1 cold / W5 throttling ------------------------------------------------------------------------


def w1_cold(bench: Bench) -> dict[str, Any]:
    jobs, callers = bench.jobs, bench.scale.callers
    out: dict[str, Any] = {}
    for label, policy in (("batch", BATCH_POLICY), ("denied", SEED_POLICY)):
        bench.fresh_proxy(policy)
        with bench.ours() as manager:
            run = interpolate_all(manager, jobs, callers)
            counted = sum(n for outcomes in manager.metrics()["aws_calls"].values() for n in outcomes.values())
        out[f"ours_{label}"] = (run, bench.calls(OURS_KEY))
        if counted != out[f"ours_{label}"][1].total:  # our own metrics must agree with the wire
            bench.say(f"WARNING: Manager.metrics() counted {counted} AWS calls, the proxy "
                      f"{out[f'ours_{label}'][1].total}")
        bench.say(f"W1 ours, batch {'permitted' if label == 'batch' else 'denied'}: {run.wall:.2f}s, "
                  f"{out[f'ours_{label}'][1]}")
    bench.fresh_proxy(SEED_POLICY)  # the policy Concourse documents; the model reads with GetSecretValue only
    model = bench.model()
    run = interpolate_all(model, jobs, callers)
    model.close()
    out["model"] = (run, bench.calls(MODEL_KEY))
    bench.say(f"W1 Concourse model: {run.wall:.2f}s, {out['model'][1]}")
    check_outputs(out["ours_batch"][0], out["ours_denied"][0], run)
    for key in out:
        if out[key][0].failed:
            raise AssertionError(f"W1 {key}: {out[key][0].errors[:3]}")
    return out


def w5_throttling(bench: Bench) -> dict[str, Any]:
    scale = bench.scale
    out: dict[str, Any] = {}
    sides: dict[str, tuple[Callable[[], Any], str]] = {
        "ours": (lambda: bench.ours(), OURS_KEY),  # default retry settings
        "ours_short": (lambda: bench.ours(retry_interval=scale.w5_short_retry_interval), OURS_KEY),
        "model": (lambda: bench.model(), MODEL_KEY),
    }
    for name, (make, key) in sides.items():
        bench.fresh_proxy(BATCH_POLICY)
        bench.proxy.throttle_above(scale.throttle_rate)  # the bucket starts full each time
        runner = make()
        run = interpolate_all(runner, bench.jobs, scale.callers)
        runner.close()
        out[name] = (run, bench.calls(key))
        bench.say(f"W5 {name}: {run.wall:.2f}s, {run.failed} failed, {out[name][1]}"
                  + (f"; first failure: {run.errors[0]}" if run.errors else ""))
    check_outputs(*(run for run, _ in out.values()))
    return out


# -- W2 warm ------------------------------------------------------------------------------------------


def w2_warm(bench: Bench) -> dict[str, Any]:
    """A cold pass, then ``repeats`` passes ``repeat_spacing`` seconds apart, for each side. The
    passes of the two sides are interleaved (never concurrent); calls are told apart by key."""
    scale = bench.scale
    bench.fresh_proxy(BATCH_POLICY)
    sides: dict[str, Any] = {"ours": bench.ours(), "model": bench.model()}
    keys = {"ours": OURS_KEY, "model": MODEL_KEY}
    cold_end: dict[str, float] = {}
    cold_calls: dict[str, int] = {}
    for name, side in sides.items():
        interpolate_all(side, bench.jobs, scale.callers)
        cold_end[name] = time.monotonic()
        cold_calls[name] = bench.calls(keys[name]).total
    schedule = sorted(
        (cold_end[name] + k * scale.repeat_spacing, name, k) for name in sides for k in range(1, scale.repeats + 1)
    )
    walls: dict[str, list[float]] = defaultdict(list)
    calls_per_pass: dict[str, list[int]] = defaultdict(list)
    for due, name, _ in schedule:
        time.sleep(max(0.0, due - time.monotonic()))
        before = bench.calls(keys[name]).total
        run = interpolate_all(sides[name], bench.jobs, scale.callers)
        if run.failed:
            raise AssertionError(f"W2 {name}: {run.errors[:3]}")
        walls[name].append(run.wall)
        calls_per_pass[name].append(bench.calls(keys[name]).total - before)
    for side in sides.values():
        side.close()
    out = {
        name: {"cold_calls": cold_calls[name], "calls_per_pass": calls_per_pass[name],
               "repeat_calls": sum(calls_per_pass[name]), "wall_median": statistics.median(walls[name])}
        for name in sides
    }
    bench.say(f"W2: {out}")
    return out


# -- W3 herd ------------------------------------------------------------------------------------------


def w3_herd(bench: Bench) -> dict[str, Any]:
    scale = bench.scale
    team, pipeline = team_name(0), pipeline_name(0)
    out: dict[str, Any] = {}
    for name in ("ours", "model"):
        bench.fresh_proxy(BATCH_POLICY)
        side: Any = bench.ours() if name == "ours" else bench.model()
        barrier = threading.Barrier(scale.herd + 1)
        results: list[Any] = [None] * scale.herd

        def caller(i: int) -> None:
            barrier.wait()
            try:
                results[i] = side.lookup("var0.password", team=team, pipeline=pipeline)
            except Exception as exc:
                results[i] = exc

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(scale.herd)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        side.close()
        expected = pipeline_secret(team, pipeline, 0)[1]["password"]
        if any(r != expected for r in results):
            raise AssertionError(f"W3 {name}: wrong answers {set(map(repr, results))}")
        out[name] = {"calls": bench.calls(OURS_KEY if name == "ours" else MODEL_KEY), "wall": wall}
        bench.say(f"W3 {name}: {wall * 1000:.1f} ms, {out[name]['calls']}")
    return out


# -- W4 latency --------------------------------------------------------------------------------------


def w4_latency(bench: Bench) -> dict[str, Any]:
    """One 15-var pipeline document, cold, with and without ``latency`` added to every call;
    the median of ``latency_runs`` runs, each with a fresh side. Round trips are counted in one
    more run with ``count_latency`` added."""
    scale = bench.scale
    job = bench.jobs[0]
    variants = {
        "ours_batch": (BATCH_POLICY, lambda: bench.ours(), OURS_KEY),
        "ours_denied": (SEED_POLICY, lambda: bench.ours(), OURS_KEY),  # cold: learns it on the 1st call
        "model": (SEED_POLICY, lambda: bench.model(), MODEL_KEY),
    }

    def run(policy: dict[str, Any], make: Callable[[], Any], latency: float) -> float:
        bench.fresh_proxy(policy)
        if latency:
            bench.proxy.add_latency(latency)
        side = make()
        started = time.perf_counter()
        side.interpolate(job.document, team=job.team, pipeline=job.pipeline)
        wall = time.perf_counter() - started
        side.close()
        return wall

    out: dict[str, Any] = {}
    for name, (policy, make, key) in variants.items():
        walls: dict[float, list[float]] = defaultdict(list)
        for _ in range(scale.latency_runs):
            for latency in (0.0, scale.latency):
                walls[latency].append(run(policy, make, latency))
        calls = bench.calls(key)
        run(policy, make, scale.count_latency)
        rounds = sequential_rounds(bench.proxy.log, key, scale.count_latency)
        with_latency = statistics.median(walls[scale.latency])
        without = statistics.median(walls[0.0])
        out[name] = {
            "wall": with_latency, "wall_no_latency": without, "rounds": rounds, "calls": calls,
            "wall_rt": with_latency / scale.latency, "excess_rt": (with_latency - without) / scale.latency,
        }
        bench.say(f"W4 {name}: {out[name]}")
    return out


# -- W6 hot path -------------------------------------------------------------------------------------


def w6_hot_path(bench: Bench) -> dict[str, Any]:
    """``hot_calls`` cached lookups, ours vs aws-secretsmanager-caching's SecretCache (and the
    Concourse model, for reference), same moto, same process; best of ``hot_rounds``."""
    from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

    scale = bench.scale
    team, pipeline = team_name(0), pipeline_name(0)
    path = pipeline_secret(team, pipeline, 0)[0]
    bench.fresh_proxy(BATCH_POLICY)
    ours = bench.ours()
    model = bench.model()
    client = boto3.client(
        "secretsmanager", endpoint_url=bench.proxy.url, region_name=REGION,
        aws_access_key_id=CACHING_LIB_KEY, aws_secret_access_key=SECRET_KEY,
    )
    theirs = SecretCache(SecretCacheConfig(), client=client)
    contenders: dict[str, Callable[[], Any]] = {
        "ours": lambda: ours.lookup("var0.password", team=team, pipeline=pipeline),
        "ours_team_level": lambda: ours.lookup("team0.token", team=team, pipeline=pipeline),
        "theirs": lambda: theirs.get_secret_string(path),
        "model": lambda: model.lookup("var0.password", team=team, pipeline=pipeline),
    }
    for call in contenders.values():  # warm: fill the caches, then a few thousand calls
        for _ in range(2000):
            call()
    calls_before = len(bench.proxy.log)
    per_call: dict[str, list[float]] = defaultdict(list)
    n = scale.hot_calls
    for _ in range(scale.hot_rounds):
        for name, call in contenders.items():
            started = time.perf_counter()
            for _ in range(n):
                call()
            per_call[name].append((time.perf_counter() - started) / n * 1e6)
    aws_calls_during = len(bench.proxy.log) - calls_before
    out: dict[str, Any] = {name: min(times) for name, times in per_call.items()}
    out["all_rounds"] = dict(per_call)
    out["aws_calls_during"] = aws_calls_during
    out["ratio"] = out["ours"] / out["theirs"]
    out["profile"] = None
    if out["theirs"] / out["ours"] < 5:
        out["profile"] = profile_top(contenders["ours"], min(n, 50_000))
    ours.close()
    model.close()
    client.close()
    bench.say(f"W6: {({k: v for k, v in out.items() if k != 'profile'})}")
    return out


def profile_top(call: Callable[[], Any], n: int, top: int = 20) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        call()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()
