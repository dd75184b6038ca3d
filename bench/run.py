"""Benchmark: pipeline-secrets vs a model of Concourse's AWS Secrets Manager lookups.

    python -m pip install '.[bench]' && python bench/run.py            # writes docs/performance.{md,png}
    python bench/run.py --quick                                         # a small smoke run, prints only

Runs moto's server mode in a subprocess behind the test suite's fault proxy (which counts every
request, and adds latency and throttling), seeds it, runs workloads W1-W6 with ours and with
``concourse_model.ConcourseModel`` in the same process, prints the table and writes it, with a
chart, to docs/performance.md. See docs/performance.md for what each workload does.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys
import tempfile
import time
from importlib.metadata import version

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]  # concourse_model; support.*, conftest


def _isolate_environment() -> None:
    """No AWS or CONCOURSE_* settings of this machine reach either side, nor an HTTP proxy."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "CONCOURSE_", "PIPELINE_SECRETS_")) or name.lower().endswith("_proxy"):
            del os.environ[name]
    empty = tempfile.mkdtemp(prefix="bench-no-aws-config-")
    os.environ["AWS_CONFIG_FILE"] = os.path.join(empty, "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(empty, "credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"


_isolate_environment()

import report  # noqa: E402
import workloads  # noqa: E402


def machine_note() -> str:
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("pipeline-secrets", "boto3", "moto", "aws-secretsmanager-caching")
    )
    return f"{report.machine()}; {versions}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small smoke run (4 teams x 5 pipelines, shorter W6); prints the table only")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="the Markdown file to write (default: docs/performance.md; none with --quick); "
                             "the chart goes beside it as .png")
    args = parser.parse_args(argv)
    scale = workloads.QUICK if args.quick else workloads.FULL
    out = args.out if args.out is not None else None if args.quick else ROOT / "docs" / "performance.md"

    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    bench = workloads.Bench(scale, say)
    try:
        results = {
            "w1": workloads.w1_cold(bench),
            "w2": workloads.w2_warm(bench),
            "w3": workloads.w3_herd(bench),
            "w4": workloads.w4_latency(bench),
            "w5": workloads.w5_throttling(bench),
            "w6": workloads.w6_hot_path(bench),
        }
        errors = list(bench.proxy.errors)
    finally:
        bench.close()
    if errors:
        raise SystemExit(f"fault proxy errors: {errors}")
    elapsed = time.perf_counter() - started
    rows = report.build_rows(results, scale)
    print(report.text_table(rows))
    if results["w6"]["profile"]:
        print("\nW6 missed its target; cProfile of our cached lookup:\n" + results["w6"]["profile"])
    missed = [f"{row.workload}: {row.metric}" for row in rows if row.met is False]
    print(f"\n{'all targets met' if not missed else 'MISSED: ' + '; '.join(missed)} ({elapsed:.0f}s in all)")
    if out is not None:
        chart_path = out.with_suffix(".png")
        report.chart(results, scale, str(chart_path))
        text = report.markdown(results, scale, rows, machine=machine_note(), elapsed=elapsed,
                               date=datetime.date.today().isoformat(), chart=chart_path.name)
        text = text.rstrip("\n") + "\n" + report.kept_sections(out.read_text() if out.exists() else "")
        out.write_text(text)
        print(f"wrote {out} and {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
