"""Redaction throughput (issue 14): 100 MB of log-like output with 100 secrets sprinkled in (raw,
base64, URL-encoded and inside JSON), through ``pipeline-secrets exec -- cat FILE`` (redacting)
side by side with ``cat FILE`` alone, in alternating runs, both read from a pipe by this process;
``exec --no-redact`` shows what starting the command through us costs without redaction. Then the
``Redactor`` alone, in process, on the same bytes in 64 KiB chunks.

``exec`` resolves its 100 vars through the ``--dev`` emulator (moto, in process), whose start-up
is part of every exec run: it is measured on its own (``exec -- cat /dev/null``) and the
throughput is given with and without it.

    python bench/redaction.py [--mb 100] [--runs 3] [--write]   # --write: into docs/performance.md
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import ahocorasick_rs

from pipeline_secrets import Redactor
from pipeline_secrets.pure.redaction import REPLACEMENT

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench")]
import report  # noqa: E402

SECRETS = 100
EVERY_N_LINES = 100  # about one line in this many carries a secret
READ_BYTES = 1 << 20
CHUNK_BYTES = 64 * 1024


def make_secrets(rng: random.Random) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + "-_+/=!@#%"
    return {f"secret-{i:03d}": "".join(rng.choice(alphabet) for _ in range(rng.randrange(16, 48)))
            for i in range(SECRETS)}


def form_of(value: str, rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.7:
        return value
    if kind < 0.8:
        return base64.b64encode(value.encode()).decode()
    if kind < 0.9:
        return quote(value, safe="")
    return json.dumps({"token": value})


def write_output(path: Path, megabytes: int, values: list[str], rng: random.Random) -> int:
    """Log lines up to ``megabytes`` MB; returns how many carry a secret."""
    target, written, inserted, n = megabytes * 1_000_000, 0, 0, 0
    levels = ["INFO ", "DEBUG", "WARN ", "INFO ", "INFO "]
    with path.open("wb") as out:
        while written < target:
            lines = []
            for _ in range(10_000):
                n += 1
                line = (f"2026-12-01T{n // 3600000 % 24:02d}:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z "
                        f"{levels[n % 5]} [worker-{n % 7}] step {n}: processed {n * 7 % 1000} items in "
                        f"{n * 13 % 997} ms path=/api/v1/things/{n * 31 % 100003}")
                if rng.randrange(EVERY_N_LINES) == 0:
                    line += " auth=" + form_of(rng.choice(values), rng)
                    inserted += 1
                lines.append(line)
            data = ("\n".join(lines) + "\n").encode()
            out.write(data)
            written += len(data)
    return inserted


def timed_read(argv: list[str], env: dict[str, str], size: int) -> tuple[float, float, int]:
    """Wall seconds, seconds from the first byte read to byte ``size`` (the stream itself: start-up
    and the interpreter's exit left out; EOF comes only when our process has exited), and the
    bytes read from the command's stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    total, first, ended = 0, None, None
    while chunk := process.stdout.read1(READ_BYTES):
        if first is None:
            first = time.perf_counter()
        total += len(chunk)
        if total >= size and ended is None:
            ended = time.perf_counter()
    status = process.wait()
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{argv[:4]}... exited {status}")
    return elapsed, (ended or elapsed) - (first or 0.0), total


def check_output(argv: list[str], env: dict[str, str], values: list[str], expected: int) -> tuple[int, int]:
    """Run once, scanning everything read for any form of a value; returns the replacements seen
    and the bytes read."""
    forms = sorted({form.encode() for value in values for form in
                    (value, base64.b64encode(value.encode()).decode(), quote(value, safe=""))})
    matcher = ahocorasick_rs.BytesAhoCorasick(forms)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    carry, replaced, leaked, total = b"", 0, 0, 0
    while chunk := process.stdout.read1(READ_BYTES):
        total += len(chunk)
        data = carry + chunk
        replaced += data.count(REPLACEMENT) - carry.count(REPLACEMENT)
        leaked += len(matcher.find_matches_as_indexes(data)) - len(matcher.find_matches_as_indexes(carry))
        carry = data[-64:]
    process.wait()
    if leaked or replaced != expected:
        raise SystemExit(f"redaction check failed: {leaked} values seen, {replaced} replaced of {expected}")
    return replaced, total


def redactor_alone(path: Path, values: dict[str, str], runs: int) -> float:
    data = path.read_bytes()
    rates = []
    for _ in range(runs):
        redactor = Redactor(values)
        started = time.perf_counter()
        view = memoryview(data)
        for start in range(0, len(data), CHUNK_BYTES):
            redactor.feed(view[start:start + CHUNK_BYTES])
        redactor.flush()
        rates.append(len(data) / (time.perf_counter() - started) / 1e6)
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rng = random.Random(14)
    secrets = make_secrets(rng)
    with tempfile.TemporaryDirectory(prefix="redaction-bench-") as tmp:
        work = Path(tmp)
        output = work / "output.log"
        inserted = write_output(output, args.mb, list(secrets.values()), rng)
        size = output.stat().st_size
        (work / "secrets.yml").write_text(json.dumps({f"/concourse/main/bench/{name}": value
                                                      for name, value in secrets.items()}))
        (work / "env.yml").write_text("".join(f"S{i:03d}: (({name}))\n" for i, name in enumerate(secrets)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIPELINE_SECRETS_", "CONCOURSE_"))}
        ours = [sys.executable, "-m", "pipeline_secrets", "exec", "--dev", "--dev-secrets", str(work / "secrets.yml"),
                "--team", "main", "--pipeline", "bench", "--env-file", str(work / "env.yml")]
        arms = {
            "cat": ["cat", str(output)],
            "exec (redacting)": [*ours, "--", "cat", str(output)],
            "exec --no-redact": [*ours, "--no-redact", "--", "cat", str(output)],
            "exec start-up (cat /dev/null)": [*ours, "--", "cat", "/dev/null"],
        }
        replaced, redacted_size = check_output(arms["exec (redacting)"], env, list(secrets.values()), inserted)
        sizes = {"cat": size, "exec (redacting)": redacted_size, "exec --no-redact": size,
                 "exec start-up (cat /dev/null)": 0}
        times: dict[str, list[float]] = {name: [] for name in arms}
        streams: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(args.runs):  # alternating: each run of each arm under the same machine load
            for name, argv in arms.items():
                elapsed, streaming, total = timed_read(argv, env, sizes[name])
                streams[name].append(streaming)
                if total != sizes[name]:
                    raise SystemExit(f"{name}: read {total:,} bytes")
                times[name].append(elapsed)
        alone = redactor_alone(output, {f"S{i}": v for i, v in enumerate(secrets.values())}, args.runs)
    wall = {name: statistics.median(values) for name, values in times.items()}
    startup = wall["exec start-up (cat /dev/null)"]
    mb = size / 1e6
    rate = {name: mb / wall[name] for name in ("cat", "exec (redacting)", "exec --no-redact")}
    steady = {name: mb / statistics.median(streams[name]) for name in ("cat", "exec (redacting)", "exec --no-redact")}
    lines = [
        f"{mb:,.1f} MB, {SECRETS} secrets, {inserted:,} of them in the output ({replaced:,} replaced, none left), "
        f"median of {args.runs} alternating runs, output read from a pipe:",
        "",
        "| run | wall (s) | MB/s, wall | ratio to cat | MB/s, first byte to last | ratio to cat |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("cat", "exec (redacting)", "exec --no-redact"):
        shown = "`cat FILE`" if name == "cat" else f"`pipeline-secrets {name} -- cat FILE`"
        lines.append(f"| {shown} | {wall[name]:.2f} | {rate[name]:,.0f} | {rate[name] / rate['cat']:.3f} | "
                     f"{steady[name]:,.0f} | {steady[name] / steady['cat']:.3f} |")
    lines += [
        f"| exec's start-up alone (`--dev` emulator, 100 vars resolved, `cat /dev/null`) | {startup:.2f} | — | — | — "
        "| — |",
        "",
        f"The `Redactor` alone, in process, 64 KiB chunks: **{alone:,.0f} MB/s**.",
        "",
        f"Start-up (here the `--dev` emulator; with AWS, the batched lookup's round trips) is most of "
        f"an exec's wall time. The redacted stream itself runs at {steady['exec (redacting)']:,.0f} MB/s, "
        f"{steady['exec (redacting)'] / steady['cat']:.3f} of `cat`'s, bounded by the matcher's pass over the "
        f"bytes and the copies through our process: a 10 MB build log costs about "
        f"{10 / steady['exec (redacting)'] * 1000:,.0f} ms of redaction. \"MB/s, first byte to last\" stops "
        "the clock at the last byte, before our interpreter's exit (the pipe's EOF comes only after it).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        report.write_section(ROOT / "docs" / "performance.md", "redaction", (
            "## Redaction throughput (`exec`)\n\n"
            f"`python bench/redaction.py --mb {args.mb} --runs {args.runs} --write` ({os.cpu_count()} CPUs, "
            "shared): " + text + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
