"""The benchmark's table (terminal and Markdown), chart and docs/performance.md."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any


def machine() -> str:
    """The machine a benchmark ran on, as every section of docs/performance.md names it."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


@dataclass
class Row:
    workload: str
    metric: str
    ours: float | None
    model: float | None
    target: str = "—"
    met: bool | None = None
    fmt: str = "{:,.0f}"
    model_label: str | None = None  # when the comparison is not the Concourse model

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.model in (None, 0):
            return None
        return self.ours / self.model

    def cells(self) -> list[str]:
        def num(value: float | None) -> str:
            return "—" if value is None else self.fmt.format(value)

        model = num(self.model) + (f" ({self.model_label})" if self.model_label else "")
        ratio = "—" if self.ratio is None else f"{self.ratio:.3f}" if self.ratio < 0.1 else f"{self.ratio:.2f}"
        met = "—" if self.met is None else "yes" if self.met else "**NO**"
        return [self.workload, self.metric, num(self.ours), model, ratio, self.target, met]


HEADER = ["workload", "metric", "ours", "Concourse model", "ratio (ours ÷ model)", "target", "met?"]


def build_rows(r: dict[str, Any], scale: Any) -> list[Row]:
    rows: list[Row] = []
    docs = scale.teams * scale.pipelines
    w1 = r["w1"]
    batch_run, batch = w1["ours_batch"]
    denied_run, denied = w1["ours_denied"]
    model_run, model = w1["model"]
    w1name = f"W1 cold ({docs} docs, {scale.callers} callers)"
    rows += [
        Row(w1name, "AWS calls, batch permitted", batch.total, model.total, "ratio ≤ 0.10",
            batch.total <= model.total / 10),
        Row(w1name, "BatchGetSecretValue calls vs the id floor (ids read ÷ 20, rounded up)", batch.batch,
            -(-batch.ids_read // 20), "ratio ≤ 1.10", batch.batch <= 1.10 * -(-batch.ids_read // 20),
            model_label="id floor"),
        Row(w1name, "AWS calls, batch denied (seed policy)", denied.total, model.total, "ratio ≤ 1.00",
            denied.total <= model.total),
        Row(w1name, "duplicate reads of a path within its TTL, batch denied", denied.duplicates, model.duplicates,
            "ours 0", denied.duplicates == 0),
        Row(w1name, "duplicate reads of a path within its TTL, batch permitted", batch.duplicates, model.duplicates,
            "ours 0", batch.duplicates == 0),
        Row(w1name, "wall time (s), batch permitted", batch_run.wall, model_run.wall, fmt="{:.2f}"),
        Row(w1name, "wall time (s), batch denied", denied_run.wall, model_run.wall, fmt="{:.2f}"),
    ]
    w2 = r["w2"]
    w2name = f"W2 warm ({scale.repeats} repeats, {scale.repeat_spacing:g}s apart)"
    rows += [
        Row(w2name, "AWS calls in the repeats", w2["ours"]["repeat_calls"], w2["model"]["repeat_calls"], "ours 0",
            w2["ours"]["repeat_calls"] == 0),
        Row(w2name, "wall time per repeat (ms, median)", w2["ours"]["wall_median"] * 1000,
            w2["model"]["wall_median"] * 1000, fmt="{:.1f}"),
    ]
    w3 = r["w3"]
    w3name = f"W3 herd ({scale.herd} callers, 1 cold var)"
    rows += [
        Row(w3name, "AWS calls", w3["ours"]["calls"].total, w3["model"]["calls"].total, "ours exactly 1",
            w3["ours"]["calls"].total == 1),
        Row(w3name, "wall time (ms)", w3["ours"]["wall"] * 1000, w3["model"]["wall"] * 1000, fmt="{:.1f}"),
    ]
    w4 = r["w4"]
    ms = scale.latency * 1000
    w4name = f"W4 latency (15 vars, +{ms:g} ms per call)"
    ob, od, mo = w4["ours_batch"], w4["ours_denied"], w4["model"]
    rows += [
        Row(w4name, "round trips, counted from the proxy log¹: batch permitted", ob["rounds"], mo["rounds"],
            "ours ≤ 2", ob["rounds"] <= 2),
        Row(w4name, "round trips, counted¹: batch denied (cold: learns it on the 1st call)", od["rounds"],
            mo["rounds"], "ours ≤ 3", od["rounds"] <= 3),
        Row(w4name, f"(wall − wall without latency) ÷ {ms:g} ms: batch permitted", ob["excess_rt"], mo["excess_rt"],
            "ours ≤ 3", ob["excess_rt"] <= 3, fmt="{:.2f}"),
        Row(w4name, f"(wall − wall without latency) ÷ {ms:g} ms: batch denied", od["excess_rt"], mo["excess_rt"],
            "ours ≤ 3", od["excess_rt"] <= 3, fmt="{:.2f}"),
        Row(w4name, f"wall ÷ {ms:g} ms (CPU included): batch permitted", ob["wall_rt"], mo["wall_rt"], fmt="{:.2f}"),
        Row(w4name, f"wall ÷ {ms:g} ms (CPU included): batch denied", od["wall_rt"], mo["wall_rt"], fmt="{:.2f}"),
        Row(w4name, "wall time (ms): batch permitted", ob["wall"] * 1000, mo["wall"] * 1000,
            fmt="{:.1f}"),
        Row(w4name, "wall time (ms) without added latency: batch permitted", ob["wall_no_latency"] * 1000,
            mo["wall_no_latency"] * 1000, fmt="{:.1f}"),
        Row(w4name, "wall time (ms) without added latency: batch denied", od["wall_no_latency"] * 1000,
            mo["wall_no_latency"] * 1000, fmt="{:.1f}"),
    ]
    w5 = r["w5"]
    ours_run, ours_calls = w5["ours"]
    short_run, short_calls = w5["ours_short"]
    model_run5, model_calls5 = w5["model"]
    w5name = f"W5 throttling (W1 above {scale.throttle_rate:g} req/s)"
    short = scale.w5_short_retry_interval
    rows += [
        Row(w5name, f"failed interpolations (of {docs})", ours_run.failed, model_run5.failed, "ours 0",
            ours_run.failed == 0),
        Row(w5name, "throttled calls", ours_calls.throttled, model_calls5.throttled, "ours < model",
            ours_calls.throttled < model_calls5.throttled),
        Row(w5name, "AWS calls in all", ours_calls.total, model_calls5.total),
        Row(w5name, "wall time (s)", ours_run.wall, model_run5.wall, fmt="{:.2f}"),
        Row(w5name, f"failed interpolations, ours with retry interval {short} (sensitivity)", short_run.failed,
            model_run5.failed),
        Row(w5name, f"throttled calls, ours with retry interval {short} (sensitivity)", short_calls.throttled,
            model_calls5.throttled),
    ]
    w6 = r["w6"]
    w6name = f"W6 hot path ({scale.hot_calls:,} cached lookups)"
    rows += [
        Row(w6name, "µs per cached lookup (ours: full lookup of a field)", w6["ours"], w6["theirs"],
            "ratio ≤ 0.20 (≥ 5× faster)", w6["theirs"] >= 5 * w6["ours"], fmt="{:.2f}",
            model_label="aws-secretsmanager-caching"),
        Row(w6name, "µs per cached lookup, team-level var (remembered position)", w6["ours_team_level"],
            w6["theirs"], fmt="{:.2f}", model_label="aws-secretsmanager-caching"),
        Row(w6name, "µs per cached lookup vs the Concourse model", w6["ours"], w6["model"], fmt="{:.2f}"),
    ]
    return rows


def text_table(rows: list[Row]) -> str:
    table = [HEADER] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = []
    for n, line in enumerate(table):
        lines.append("  ".join(cell.replace("**", "").ljust(width) for cell, width in zip(line, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def chart(r: dict[str, Any], scale: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours_color, model_color = "#1f77b4", "#d62728"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [2.2, 1.2, 1.2]})

    # 1. AWS calls per workload.
    w1, w2, w3, w4, w5 = r["w1"], r["w2"], r["w3"], r["w4"], r["w5"]
    labels = ["W1 cold\nbatch permitted", "W1 cold\nbatch denied", "W2 warm\nrepeats", "W3 herd",
              "W4 one doc", "W5 throttled\n(all calls)"]
    ours = [w1["ours_batch"][1].total, w1["ours_denied"][1].total, w2["ours"]["repeat_calls"],
            w3["ours"]["calls"].total, w4["ours_batch"]["calls"].total, w5["ours"][1].total]
    model = [w1["model"][1].total, w1["model"][1].total, w2["model"]["repeat_calls"],
             w3["model"]["calls"].total, w4["model"]["calls"].total, w5["model"][1].total]
    ax = axes[0]
    xs = range(len(labels))
    bars_ours = ax.bar([x - 0.2 for x in xs], ours, 0.4, label="pipeline-secrets", color=ours_color)
    bars_model = ax.bar([x + 0.2 for x in xs], model, 0.4, label="Concourse model", color=model_color)
    ax.bar_label(bars_ours, fontsize=7)
    ax.bar_label(bars_model, fontsize=7)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("AWS calls (log scale)")
    ax.set_title("AWS calls")
    ax.legend(fontsize=8)

    # 2. W4: latency of one document with 20 ms per AWS call.
    ax = axes[1]
    names = ["ours\nbatch permitted", "ours\nbatch denied", "Concourse\nmodel"]
    walls = [w4["ours_batch"]["wall"] * 1000, w4["ours_denied"]["wall"] * 1000, w4["model"]["wall"] * 1000]
    bars = ax.bar(names, walls, color=[ours_color, ours_color, model_color])
    ax.bar_label(bars, fmt="%.0f ms", fontsize=8)
    limit = 3 * scale.latency * 1000
    ax.axhline(limit, color="grey", linestyle="--", linewidth=1, label=f"3 round trips ({limit:g} ms)")
    ax.set_ylim(0, max(walls) * 1.12)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_ylabel("wall time (ms)")
    ax.set_title(f"W4: one 15-var document, +{scale.latency * 1000:g} ms per call", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)

    # 3. W5: throttling.
    ax = axes[2]
    docs = scale.teams * scale.pipelines
    groups = ["failed\ninterpolations", "throttled\ncalls"]
    ours5 = [w5["ours"][0].failed, w5["ours"][1].throttled]
    model5 = [w5["model"][0].failed, w5["model"][1].throttled]
    bars_ours = ax.bar([x - 0.2 for x in range(2)], ours5, 0.4, color=ours_color, label="pipeline-secrets")
    bars_model = ax.bar([x + 0.2 for x in range(2)], model5, 0.4, color=model_color, label="Concourse model")
    ax.bar_label(bars_ours, fontsize=8)
    ax.bar_label(bars_model, fontsize=8)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(range(2), groups, fontsize=8)
    ax.set_title(f"W5: {docs} docs above {scale.throttle_rate:g} req/s", fontsize=10)

    fig.suptitle("pipeline-secrets vs a model of Concourse's AWS Secrets Manager lookups (moto + fault proxy)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)



def markdown(r: dict[str, Any], scale: Any, rows: list[Row], *, machine: str, elapsed: float, date: str,
             chart: str) -> str:
    docs = scale.teams * scale.pipelines
    w1, w2, w3, w4, w5, w6 = (r[k] for k in ("w1", "w2", "w3", "w4", "w5", "w6"))
    batch, denied, model = w1["ours_batch"][1], w1["ours_denied"][1], w1["model"][1]
    missed = [row for row in rows if row.met is False]
    ms = scale.latency * 1000
    short = scale.w5_short_retry_interval
    lines = [
        "# Performance: pipeline-secrets vs Concourse's lookup algorithm",
        "",
        "Reproduce (from a checkout; about 1.5 minutes):",
        "",
        "```sh",
        "python -m pip install '.[bench]' && python bench/run.py",
        "```",
        "",
        "It prints the table below and rewrites this file and its chart. `python bench/run.py --quick` is a",
        "smoke run (20 documents, a lower rate limit, a shorter W6) that only prints.",
        "",
        f"- Run on {date}, in {elapsed:.0f} s: {machine}.",
        "- The machine is small, shared and noisy: **compare the counts and the ratios, not the absolute times.**",
        "  Our client, the fault proxy and the Concourse model share one Python process (and its GIL); moto",
        "  runs in another. AWS calls are counted on the wire by the proxy, never by the code under test.",
        "- Both sides run in the same process, against the same moto server (`tests/support/motoserver.py`),",
        "  through the same fault proxy (`tests/support/faultproxy.py`), on the same documents, in the same run;",
        "  every run of either side starts cold (a fresh `Manager`, a fresh model).",
        "",
        "## Results",
        "",
        "Ratio = ours ÷ the other side: below 1 is better for us. Counts are exact, times are seconds or",
        "milliseconds of wall time.",
        "",
        markdown_table(rows),
        "",
        f"![AWS calls and latency, ours vs the Concourse model]({chart})",
        "",
    ]
    lines += ["## Targets", ""]
    if missed:
        lines.append("Missed:")
        lines.append("")
        for row in missed:
            lines.append(f"- **{row.workload}, {row.metric}**: ours {row.cells()[2]}, target {row.target}.")
    else:
        lines.append("Every target is met in this run.")
    lines += [
        "",
        "## The workloads",
        "",
        f"Data, seeded straight on moto (not through the proxy): {scale.teams} teams × {scale.pipelines} pipelines;",
        "each pipeline has 10 pipeline-level secrets `/concourse/TEAM/PIPELINE/var0..9` and each team 5",
        "team-level secrets `/concourse/TEAM/team0..4`; `var0`, `var1` and `team0` are JSON objects, and the",
        "documents use their fields (`((var0.password))`, `((team0.token))`). Each pipeline's document (a",
        "Concourse pipeline config with resources and a job) holds those 15 vars, three of them inside longer",
        "strings. Both sides must produce identical, fully resolved documents; the benchmark checks it.",
        "",
        f"- **W1 cold**: all {docs} documents interpolated once by {scale.callers} concurrent callers (threads), team",
        "  by team. Ours runs twice: *batch permitted* (the seed's IAM policy plus",
        "  `secretsmanager:BatchGetSecretValue`) and *batch denied* (the seed's policy,",
        "  `tests/conftest.py:SEED_POLICY`, loaded in the proxy). The model runs under the seed's policy (it",
        "  only calls GetSecretValue, which it allows). A duplicate is a read of a path that was answered less",
        "  than its TTL (found 1m, not found 10s) before.",
        f"- **W2 warm**: after a cold pass, the same {docs} documents {scale.repeats} more times, {scale.repeat_spacing:g} s apart",
        f"  (the last repeat {scale.repeats * scale.repeat_spacing:g} s after the cold pass: within the 1m cache",
        "  duration, past the 10s not-found duration), as pipelines are re-evaluated while they run. The two",
        "  sides' passes are interleaved, never concurrent; the proxy tells their calls apart by access key.",
        f"- **W3 herd**: {scale.herd} threads released together by a barrier look up one cold pipeline-level var.",
        f"- **W4 latency**: one 15-var document, cold, with {ms:g} ms added by the proxy to every call it",
        f"  forwards; median of {scale.latency_runs} runs, each with a fresh side. Reported three ways: ¹round trips",
        "  counted from the proxy log: the longest chain of calls each arriving at least the added latency after",
        f"  the previous one, in one more run with {scale.count_latency * 1000:g} ms added (each call costs a few ms of CPU",
        "  in this process, and 15 parallel calls can spread over ~20 ms, which 20 ms of latency could not tell",
        "  from a round trip); a call answered AccessDenied, which the proxy answers before adding latency,",
        "  counts as one more round trip since against AWS it is one; the wall time added by the latency",
        f"  (wall − wall of the same run without latency) ÷ {ms:g} ms; and the raw wall time ÷ {ms:g} ms, which",
        "  includes the CPU time of botocore, the proxy and moto on this machine.",
        f"- **W5 throttling**: W1 (batch permitted) with the proxy throttling above {scale.throttle_rate:g} requests/s (a",
        "  token bucket of one second's worth, starting full). Ours uses its default retry settings: 5",
        "  attempts in all, 1 s interval, under throttling a wait drawn between the interval and a ceiling",
        "  that doubles each attempt; the 30 s lookup deadline. The same with a",
        f"  {short} interval is shown as a sensitivity row. Throttled calls are the proxy's",
        "  `ThrottlingException` answers.",
        f"- **W6 hot path**: {scale.hot_calls:,} cached lookups after warming, timed with `time.perf_counter`, best of",
        f"  {scale.hot_rounds} rounds: ours `Manager.lookup(\"var0.password\", team=..., pipeline=...)` (parse, candidate",
        "  paths, scope check, cache, remembered position, fields, a copy of the value) vs",
        "  `aws-secretsmanager-caching`'s `SecretCache.get_secret_string(path)` (a full path, no fields) on the",
        "  same moto through the same proxy, in the same process. The Concourse model's cached lookup is shown",
        "  for reference.",
        "",
        "## The Concourse model",
        "",
        "`bench/concourse_model.py` re-implements what Concourse's AWS Secrets Manager credential manager",
        "does, with boto3 directly (botocore's retries off: `Config(retries={\"total_max_attempts\": 1})`),",
        "against the same endpoint (the proxy) and documents:",
        "",
        "- for each var, for each candidate path in order (pipeline, then team), one GetSecretValue;",
        "  `ResourceNotFoundException` → the next path; a value → stop; any other error fails the",
        "  interpolation;",
        "- a TTL cache keyed by path (found 1m, not found 10s), per process and shared by all callers, like",
        "  one Concourse web node; no single-flight, so callers that miss together all call AWS;",
        "- retry of network errors only (botocore `ConnectionError`, `EndpointConnectionError`,",
        "  `ConnectionClosedError`) with a fixed 1 s wait, at most 5 attempts; throttling is not retried:",
        "  the interpolation fails;",
        "- the vars of a document are looked up one after the other. The `((var))` grammar and the",
        "  substitution are `pipeline_secrets.pure.vars` (pure code, no AWS), so the two sides differ only in how",
        "  they read from AWS. Its HTTP connection pool is as large as the callers (Go's is not a small fixed",
        "  number).",
        "",
        "## Why",
        "",
        "- **Batching (W1, W4).** We resolve all the names of a document together, in rounds: every name's",
        "  first candidate path in one BatchGetSecretValue (20 ids a call), then the next candidate of the",
        "  names not found. A 15-var document costs 2 calls and 2 round trips instead of 20 sequential",
        f"  GetSecretValue calls: W1 needs {batch.total:,} calls ({batch.batch} BatchGetSecretValue, {batch.ids_read:,} ids",
        f"  read) where the model makes {model.total:,}; W4 takes {w4['ours_batch']['rounds']} round trips where the model takes",
        f"  {w4['model']['rounds']}.",
        "- **Batch denied.** With the seed's policy the first batch call is refused and we fall back to",
        "  GetSecretValue for good (`batch=\"auto\"`), in parallel within a round. The calls are then the same",
        f"  as the model's minus its duplicates ({denied.get:,} GetSecretValue + {denied.denied} refused batch calls vs",
        f"  {model.total:,})" + (f"; the {denied.denied} refused calls are cold callers that tried batching before the"
                                " first refusal came back." if denied.denied > 1 else "."),
        "- **Single-flight (W1, W3).** However many callers want a cold path at once, one call is made and",
        f"  all share its answer: W3 costs {w3['ours']['calls'].total} call where the model makes",
        f"  {w3['model']['calls'].total}; in W1 the model reads {model.duplicate_paths} team-level paths",
        f"  {model.duplicates} extra times because sibling pipelines missed them together.",
        "- **Remembered fallback positions (W2).** A var found at team level after a pipeline-level miss is",
        "  remembered as long as its value is cached. The model's not-found answers expire after 10 s and every",
        "  team-level var then costs a pipeline-path GetSecretValue again, on each evaluation",
        f"  (Concourse issue 6052): {w2['model']['repeat_calls']:,} calls in the repeats (per repeat:",
        f"  {', '.join(str(n) for n in w2['model']['calls_per_pass'])}) against our {w2['ours']['repeat_calls']}.",
        "- **Throttling (W5).** Fewer calls to begin with (batching), retries of throttled calls with",
        "  growing, jittered waits, and no duplicate calls keep us under the rate limit:",
        f"  {w5['ours'][0].failed} failed interpolations and {w5['ours'][1].throttled} throttled calls, where the",
        f"  model, which does not retry throttling, fails {w5['model'][0].failed} of {docs} interpolations",
        f"  ({w5['model'][1].throttled} throttled calls: it gives up on a document at its first throttled call).",
        f"- **Hot path (W6).** A cached lookup is a few dict lookups and memoised parses: {w6['ours']:.2f} µs vs",
        f"  {w6['theirs']:.2f} µs for `SecretCache.get_secret_string` ({w6['theirs'] / w6['ours']:.1f}× faster),",
        "  which on every read takes four re-entrant locks (two LRU caches, the secret item, the version item),",
        "  reads the clock through `datetime.now(timezone.utc)` and deep-copies the whole cached GetSecretValue",
        "  response (metadata and dates included) twice.",
        "",
        "## Caveats",
        "",
        "- The model is a model: it reproduces Concourse's algorithm (order of calls, cache keys and TTLs,",
        "  retries), not its Go implementation's speed, so its wall times are Python times. The call counts",
        "  and round trips are what carries over.",
        f"- W1 with batch denied takes {w1['ours_denied'][0].wall / w1['model'][0].wall:.2f}× the model's time",
        f"  ({w1['ours_denied'][0].wall:.1f} s vs {w1['model'][0].wall:.1f} s): with about the same number of",
        "  GetSecretValue calls, the run is bound by the CPU of botocore, the proxy and moto on 2 cores, not",
        "  by the network; the gain there is in calls, not time.",
        f"- W4's raw wall time ÷ {ms:g} ms is above the latency-only figure because each call costs a few",
        "  milliseconds of CPU here (botocore, the proxy and moto): without added latency, our 20 parallel",
        f"  GetSecretValue calls take {w4['ours_denied']['wall_no_latency'] * 1000:.0f} ms when batch is denied, our 2 batch calls",
        f"  {w4['ours_batch']['wall_no_latency'] * 1000:.0f} ms. So with batch denied the raw wall time is"
        f" {w4['ours_denied']['wall_rt']:.1f} × {ms:g} ms, of which",
        f"  the latency adds {w4['ours_denied']['excess_rt']:.1f} × {ms:g} ms; the model's is"
        f" {w4['model']['wall_rt']:.1f} × {ms:g} ms.",
        (f"- W5 is sensitive to the retry interval: with {short} instead of the default 1 s, ours failed"
         f" {w5['ours_short'][0].failed} of {docs} interpolations after 5 attempts"
         f" ({w5['ours_short'][1].throttled} throttled calls): five attempts whose waits add up to under a"
         " second do not outlast a sustained rate limit that 16 callers keep hitting."
         if w5["ours_short"][0].failed else
         f"- With a {short} retry interval instead of the default 1 s, ours also completed every interpolation"
         f" ({w5['ours_short'][1].throttled} throttled calls)."),
        f"  The default interval costs little wall time here ({w5['ours'][0].wall:.1f} s vs"
        f" {w5['ours_short'][0].wall:.1f} s with {short}): the run is bound by the rate limit.",
        "",
    ]
    if w6.get("profile"):
        lines += ["## W6 profile (target missed)", "", "```", w6["profile"].strip(), "```", ""]
    return "\n".join(lines)


# Sections other scripts write into docs/performance.md (bench/fleet.py, bench/web.py,
# bench/memory.py), between markers, so that each can be re-run alone and run.py keeps them.
SECTIONS = ("fleet", "web", "memory", "redaction", "roles")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name} benchmark: begin -->", f"<!-- {name} benchmark: end -->"


def write_section(doc: Any, name: str, text: str) -> None:
    """Put ``text`` as section ``name`` of ``doc`` (a Path), replacing the one there, if any."""
    begin, end = _markers(name)
    section = f"{begin}\n{text.rstrip()}\n{end}\n"
    current = doc.read_text() if doc.exists() else ""
    if begin in current and end in current:
        current = current[:current.index(begin)] + section + current[current.index(end) + len(end) + 1:]
    else:
        current = current.rstrip("\n") + "\n\n" + section
    doc.write_text(current)


def kept_sections(old: str) -> str:
    """The sections of ``old`` (the doc as it was) to append to a newly written doc."""
    kept = []
    for name in SECTIONS:
        begin, end = _markers(name)
        if begin in old and end in old:
            kept.append(old[old.index(begin):old.index(end) + len(end)])
    return "".join(f"\n{section}\n" for section in kept)
