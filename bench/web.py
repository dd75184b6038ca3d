"""Benchmark: the web node against a bare Starlette app on the same uvicorn settings (issue 12).

    python bench/web.py            # updates docs/performance.md (the web section)
    python bench/web.py --quick    # shorter runs, prints only

Both servers run as processes on loopback: ``pipeline-secrets web --dev`` (its embedded emulator;
every answer measured comes from its cache, warmed first) and ``bench/bare_app.py``, which does
the minimum the endpoint must do (parse the request, check a Basic credential against a memory
cache, answer from a dict; for interpolation a YAML load and dump of the same document). The same
load generator drives both (wrk when installed, else a Python client), with the same connection
count, runs alternating ours / bare. Reported: requests/s, p50 and p99 latency, and the ratio.

Interpolation is measured twice: the same document each time (what a CI system does: the node
keeps a team's documents parsed, so only the vars and the writing are left), and a new document
each time (a counter in a trailing comment: every request is parsed, on both sides).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
import report  # noqa: E402
from support.redisserver import free_port  # noqa: E402

USER, PASSWORD = "bench", "bench-pw-Tq48"
LOOKUP = "/api/v1/teams/main/pipelines/hello/vars/lookup?var=database.password"
INTERPOLATE = "/api/v1/teams/main/pipelines/hello/vars/interpolate"
EXAMPLE = ROOT / "src" / "pipeline_secrets" / "examples" / "hello-pipeline.yml"
CONNECTIONS = 32
ENDPOINTS = [  # (row, path, body, a new body each request)
    ("cached lookup", LOOKUP, None, False),
    ("cached interpolate, the same document", INTERPOLATE, EXAMPLE, False),
    ("cached interpolate, a new document each time", INTERPOLATE, EXAMPLE, True),
]
# From py-spy profiles of the node under this load (py-spy record -p PID while wrk runs).
WHERE_THE_TIME_GOES = """Where the time goes (py-spy on the node under this load, cProfile and timeit in process, and
the CPU per request above, read from /proc for both processes: the figure least moved by wrk
sharing the two cores).

**Cached lookup.** Answered on the event loop from memory: past Starlette's middleware and
router (`DirectRoutes`: the route's own `Route.matches`, then its endpoint), the credential a
keyed BLAKE2b and a dictionary lookup, on the loop, the request metrics plain numbers published
as a Prometheus collector (prometheus-client's objects took a lock per increment), the log line
its fields written after a constant head, and one send() per answer (uvicorn writes head and body
in two, as the bare app does). What is left beyond the bare app is the node's own duties: the
request line, the metrics, the `Cache-Control` and framing checks of the observing middleware,
the team and scope checks, and the memory cache's lookup (its hit counter and latency histogram,
which worker threads share, keep their locks).

**Cached interpolate, the same document.** A team's documents are kept parsed
(`web/parsed.py`): the same body is only looked up and written. Writing builds PyYAML's node graph
in one loop (`pure/yaml_writer.py`, byte for byte `yaml.dump`'s) and decides each scalar's tag
without the resolver's method call (`pure/yaml_tags.py`, which keeps nothing between calls: a
shared table of values seen would tell one team what another's documents held), so it costs less
than the bare app's `yaml.dump` (the line above), and the node answers faster than a bare app
that parses every request.

**Cached interpolate, a new document each time.** Every request is parsed, within its budget,
by our event-by-event builder (as fast as PyYAML's C loader), then written as above. What is
left beyond the bare app is the job itself: resolving the vars from memory (collecting them, the
`var_sources` block, the cache lookups) and the budgeted substitution, about a quarter of the
document step in cProfile, with the team gate and document slot, the body read under its
deadline and the answer held until sent. Closing it would need the substitution folded into the
builder, so that the plain parts of a document are walked once, not three times."""
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server on port {port} did not start: {args}")


def wrk(url: str, seconds: float, body: Path | None, fresh: bool) -> dict[str, float]:
    script = None
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-H", f"Authorization: {AUTH}"]
    if body is not None:
        script = Path(tempfile.mkdtemp()) / "post.lua"
        lua = f'wrk.method = "POST"\nwrk.body = {json.dumps(body.read_text())}\nwrk.headers["Content-Type"] = "application/yaml"\n'
        if fresh:  # a new document each request: the same one with a counter in a trailing comment
            lua += 'local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, nil, nil, wrk.body .. "# " .. n .. "\\n")\nend\n'
        script.write_text(lua)
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latencies = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rate, "p50_ms": _ms(latencies["50"]), "p99_ms": _ms(latencies["99"]),
            "errors": float(errors.group(1)) if errors else 0.0}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux /proc; 0 elsewhere): per request, the
    figure least moved by the load generator sharing the machine's cores."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def python_load(url: str, seconds: float, body: Path | None, fresh: bool) -> dict[str, float]:
    """The fallback load generator: CONNECTIONS threads with keep-alive clients."""
    latencies: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    content = body.read_bytes() if body is not None else None
    counter = itertools.count()

    def worker() -> None:
        with httpx.Client(headers={"Authorization": AUTH}, timeout=30) as client:
            while time.monotonic() < stop:
                started = time.perf_counter()
                if content is None:
                    response = client.get(url)
                else:
                    sent = content + b"# %d\n" % next(counter) if fresh else content
                    response = client.post(url, content=sent, headers={"Content-Type": "application/yaml"})
                latencies.append(time.perf_counter() - started)
                errors[0] += response.status_code != 200

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    return {"rps": len(ordered) / seconds, "p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))], "errors": float(errors[0])}


def chart(medians: dict[str, tuple[float, float]], path: Path) -> None:
    """Left: requests/s of both sides per endpoint; right: ours over the bare app's, with the
    0.8 target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name.replace("cached ", "").replace(", ", ",\n") for name in medians]
    ours = [rates[0] for rates in medians.values()]
    bare = [rates[1] for rates in medians.values()]
    xs = range(len(names))
    fig, (rates, ratios) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    rates.bar([x - 0.2 for x in xs], ours, 0.4, label="pipeline-secrets web", color="#1f77b4")
    rates.bar([x + 0.2 for x in xs], bare, 0.4, label="bare Starlette app", color="#7f7f7f")
    rates.set_xticks(list(xs), names, fontsize=8)
    rates.set_ylabel("requests/s (median)")
    rates.legend(fontsize=8)
    rates.set_title(f"wrk, {CONNECTIONS} connections, cached answers", fontsize=10)
    bars = ratios.bar(list(xs), [o / b for o, b in zip(ours, bare)], 0.5, color="#1f77b4")
    ratios.bar_label(bars, fmt="%.2fx", fontsize=9)
    ratios.axhline(0.8, color="#d62728", linestyle="--", linewidth=1, label="target: 0.8x")
    ratios.set_xticks(list(xs), names, fontsize=8)
    ratios.set_ylabel("ours / bare app")
    ratios.set_ylim(0, max(1.3, max(o / b for o, b in zip(ours, bare)) * 1.15))
    ratios.legend(fontsize=8, loc="upper right")
    ratios.set_title("requests/s, ours over the bare app's", fontsize=10)
    fig.suptitle("Web node vs a bare Starlette app on the same uvicorn settings", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def document_steps(rounds: int = 7, number: int = 200) -> dict[str, float]:
    """Microseconds per call, in this process, of each side's document steps on the example
    pipeline: ours (budgeted reading, writing) and the bare app's (PyYAML's C loader and dumper),
    alternating, the best of ``rounds`` (the least disturbed by the machine's other work)."""
    import timeit

    import yaml

    from pipeline_secrets.pure.documents import encode_document, load_document

    text = EXAMPLE.read_text()
    document = load_document(text)
    steps = {
        "ours: read": lambda: load_document(text),
        "bare: yaml.load (CSafeLoader)": lambda: yaml.load(text, Loader=yaml.CSafeLoader),
        "ours: write": lambda: encode_document(document),
        "bare: yaml.dump (CSafeDumper)": lambda: yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False,
                                                            allow_unicode=True),
    }
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            best[name] = min(best[name], timeit.timeit(step, number=number) / number * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 2 rounds; prints only")
    args = parser.parse_args(argv)
    seconds, rounds = (3.0, 2) if args.quick else (8.0, 3)
    load = wrk if shutil.which("wrk") else python_load
    ours_port, bare_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CONCOURSE_", "PIPELINE_SECRETS_"))}
    os.environ.clear()
    os.environ.update(env)
    ours = start([sys.executable, "-m", "pipeline_secrets", "web", "--dev", "--bind-port", str(ours_port),
                  "--add-local-user", f"{USER}:{PASSWORD}", "--main-team-local-user", USER], ours_port)
    bare = start([sys.executable, str(ROOT / "bench" / "bare_app.py"), str(bare_port), USER, PASSWORD], bare_port)
    results: dict[str, dict[str, list[dict[str, float]]]] = {name: {"ours": [], "bare": []} for name, *_ in ENDPOINTS}
    try:
        for port in (ours_port, bare_port):  # warm: ours reads the emulator once, then its cache
            httpx.get(f"http://127.0.0.1:{port}{LOOKUP}", headers={"Authorization": AUTH}).raise_for_status()
            httpx.post(f"http://127.0.0.1:{port}{INTERPOLATE}", content=EXAMPLE.read_bytes(),
                       headers={"Authorization": AUTH, "Content-Type": "application/yaml"}).raise_for_status()
        for _ in range(rounds):
            for name, url, body, fresh in ENDPOINTS:
                for side, port, process in (("ours", ours_port, ours), ("bare", bare_port, bare)):
                    before = cpu_seconds(process.pid)
                    run = load(f"http://127.0.0.1:{port}{url}", seconds, body, fresh)
                    run["cpu_us"] = 1e6 * (cpu_seconds(process.pid) - before) / max(1.0, run["rps"] * seconds)
                    results[name][side].append(run)
    finally:
        for process in (ours, bare):
            process.terminate()
            process.wait(15)
    medians: dict[str, tuple[float, float]] = {}
    lines = ["| endpoint | ours req/s | bare req/s | ratio | target | ours p50 / p99 | bare p50 / p99 | "
             "CPU per request, ours / bare (ratio) | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, sides in results.items():
        o = {key: statistics.median(run[key] for run in sides["ours"]) for key in ("rps", "p50_ms", "p99_ms", "cpu_us")}
        b = {key: statistics.median(run[key] for run in sides["bare"]) for key in ("rps", "p50_ms", "p99_ms", "cpu_us")}
        errors = sum(run["errors"] for side in sides.values() for run in side)
        ratio = o["rps"] / b["rps"]
        medians[name] = (o["rps"], b["rps"])
        lines.append(f"| {name} | {o['rps']:,.0f} | {b['rps']:,.0f} | {ratio:.3f} | ≥ 0.80 "
                     f"({'met' if ratio >= 0.8 else 'not met'}) | {o['p50_ms']:.1f} / {o['p99_ms']:.1f} ms | "
                     f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms | {o['cpu_us']:,.0f} / {b['cpu_us']:,.0f} µs "
                     f"({b['cpu_us'] / o['cpu_us']:.3f}) | {errors:.0f} |")
    table = "\n".join(lines)
    steps = document_steps()
    steps_text = ", ".join(f"{name} {us:,.0f} µs" for name, us in steps.items())
    table += f"\n\nThe document steps alone, in process, on the example pipeline (best of 7 alternating rounds): {steps_text}."
    print(table)
    if not args.quick:
        section = (f"## Web node vs a bare Starlette app\n\n`python bench/web.py` on {report.machine()}, "
                   f"{time.strftime('%Y-%m-%d')}: {'wrk' if load is wrk else 'the Python client'}, {CONNECTIONS} "
                   f"connections, one thread, {rounds} alternating runs of {seconds:g} s per side (medians). "
                   "The load generator shares the machine's cores with the server.\n\n"
                   f"{table}\n\n{WHERE_THE_TIME_GOES}\n")
        doc = ROOT / "docs" / "performance.md"
        chart(medians, ROOT / "docs" / "performance-web.png")
        section = section.replace("\n\n" + table, "\n\n" + table + "\n\n![requests/s, ours vs the bare app](performance-web.png)", 1)
        report.write_section(doc, "web", section)
        print(f"updated {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
