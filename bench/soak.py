"""The load and fault soak: a real web node, moto behind the fault proxy, hundreds of clients.

    python -m pip install '.[test]' && python bench/soak.py            # one minute; writes docs/reliability.md
    python bench/soak.py --seconds 10 --clients 100 --out -             # shorter; prints only

Each client is one of several teams and asks lookups and interpolations of its own pipelines,
through its own loopback address, while the proxy injects throttling, 5xx, latency spikes and
connection resets every half second. Every successful answer is checked against the value of the
asking team's own secret. ``tests/test_soak.py`` runs the same, shorter, in CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

for name in list(os.environ):  # no AWS settings of this machine reach the node or the client
    if name.startswith(("AWS_", "CONCOURSE_", "PIPELINE_SECRETS_")):
        del os.environ[name]
_empty = tempfile.mkdtemp(prefix="soak-no-aws-config-")
os.environ.update({"AWS_CONFIG_FILE": os.path.join(_empty, "c"), "AWS_SHARED_CREDENTIALS_FILE": os.path.join(_empty, "k"),
                   "AWS_EC2_METADATA_DISABLED": "true"})

import boto3  # noqa: E402
from support.faultproxy import FaultProxy  # noqa: E402
from support.motoserver import start_moto_server  # noqa: E402
from support.soak import run_soak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--teams", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"), help="'-': print only")
    args = parser.parse_args(argv)
    moto = start_moto_server()
    proxy = FaultProxy(moto.url).start()
    aws = boto3.client("secretsmanager", endpoint_url=moto.url, region_name="us-east-1",
                       aws_access_key_id="seeder", aws_secret_access_key="seeder")
    try:
        result = run_soak(proxy, aws, seconds=args.seconds, clients=args.clients, teams=args.teams)
    finally:
        proxy.stop()
        moto.stop()
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    if args.out != "-":
        pathlib.Path(args.out).write_text(render(summary, " ".join(["python bench/soak.py", *(argv or sys.argv[1:])])))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0 if result.wrong == 0 else 1


def render(summary: dict, command: str) -> str:
    errors = "\n".join(f"| {kind} | {count} |" for kind, count in summary["errors"].items()) or "| none | 0 |"
    faults = ", ".join(f"{kind} x{count}" for kind, count in summary["faults_injected"].items())
    return f"""# Reliability: the load and fault soak

One web node process, moto's server behind the fault proxy, {summary['clients']} concurrent clients of
{summary['teams']} teams (each from its own loopback address) asking lookups (70%) and interpolations
(30%) of their own pipelines for {summary['seconds']} s, while the proxy injected a burst of faults every
half second ({faults}). Cache: found values 2 s, not found 1 s, so AWS is asked all along; retries
every 50 ms, 5 attempts.

Command: `{command}` (the test suite runs a 6-second version: `tests/test_soak.py`).
Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};
the clients, moto and the proxy ran on the same machine. Run on {datetime.date.today().isoformat()}.

| figure | value |
|---|---|
| requests served | {summary['served']} |
| answered 200 with the asking team's own value | {summary['ok']} |
| answered 200 with any other value | **{summary['wrong_values']}** |
| p50 / p99 of the 200 answers | {summary['p50_ms']} ms / {summary['p99_ms']} ms |
| AWS calls seen by the proxy | {summary['aws_calls']} |
| peak RSS of the web node | {summary['peak_rss_mb']} MiB |

Errors by kind (status and the error kind of the body):

| kind | count |
|---|---|
{errors}

A 502 is a lookup that still failed after its retries while faults were being injected (it names
the path and the kind only); a 429 is a team over its own queue (`--team-concurrency`,
`--team-queue`), answered with `Retry-After`. {_verdict(summary)}
"""


def _verdict(summary: dict) -> str:
    kinds = summary["errors"]
    fives = sum(n for kind, n in kinds.items() if kind.startswith("5") and not kind.startswith("502 "))
    dropped = sum(n for kind, n in kinds.items() if not kind[:1].isdigit())
    return (f"Answers with another 5xx status: {fives}; client connections that failed (no HTTP answer): "
            f"{dropped}.")


if __name__ == "__main__":
    sys.exit(main())
