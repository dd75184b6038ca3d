"""Per-team roles vs one identity (issue 13): the cold workload (W1: 200 pipeline documents of 20
teams, 16 callers, batch permitted) read once with the node's own identity and once with a role
per team (``--aws-secretsmanager-team-role-template``), side by side, alternating, on the same
moto server behind the same fault proxy, which grants each team's role and judges its key by that
team's policy (``iam-policy --role``). Counted at the proxy: STS AssumeRole and Secrets Manager
calls; and each pass's wall time (a ratio: these machines are noisy).

    python bench/roles.py [--quick] [--runs N] [--write]     # --write: into docs/performance.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
import report  # noqa: E402
import workloads  # noqa: E402
from workloads import BATCH_POLICY, READS, Bench, interpolate_all  # noqa: E402

from pipeline_secrets.config import resolve_settings  # noqa: E402
from pipeline_secrets.tools.policy import role_policies  # noqa: E402

TEMPLATE = "arn:aws:iam::123456789012:role/ci-{{.Team}}"


def grant_roles(bench: Bench) -> None:
    rules = resolve_settings({}, {}, require_region=False).rules
    for team in sorted({job.team for job in bench.jobs}):
        policy = role_policies(rules, team=team, role_template=TEMPLATE, batch=True)["permission_policy"]
        bench.proxy.add_role(TEMPLATE.replace("{{.Team}}", team), policy)


def one_pass(bench: Bench, roles: bool) -> dict[str, float]:
    bench.fresh_proxy(BATCH_POLICY)
    options = {"team_role_template": TEMPLATE} if roles else {}
    if roles:
        grant_roles(bench)
    with bench.ours(**options) as manager:
        run = interpolate_all(manager, bench.jobs, bench.scale.callers)
    if run.failed:
        raise AssertionError(f"{'roles' if roles else 'one identity'}: {run.errors[:3]}")
    log = bench.proxy.log
    return {"wall": run.wall,
            "sts": sum(1 for r in log if r.operation == "AssumeRole"),
            "reads": sum(1 for r in log if r.operation in READS),
            "ids": len({i for r in log if r.operation in READS for i in r.secret_ids}),
            "throttled": sum(1 for r in log if r.error_type in ("ThrottlingException", "Throttling")),
            "denied": sum(1 for r in log if r.error_type in ("AccessDeniedException", "AccessDenied"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    scale = workloads.QUICK if args.quick else workloads.FULL
    bench = Bench(scale, lambda message: print(message, flush=True))
    results: dict[str, list[dict[str, float]]] = {"one": [], "roles": []}
    try:
        for run in range(args.runs):
            for side in ("one", "roles") if run % 2 == 0 else ("roles", "one"):
                results[side].append(one_pass(bench, side == "roles"))
                print(f"run {run + 1} {side}: {results[side][-1]}", flush=True)
    finally:
        bench.close()
    ids = int(max(p["ids"] for passes in results.values() for p in passes))  # existing and not found
    floor = -(-ids // 20)
    rows = []
    for side, label in (("one", "one identity (the node's)"), ("roles", "a role per team")):
        passes = results[side]
        rows.append((label, statistics.median(p["sts"] for p in passes), statistics.median(p["reads"] for p in passes),
                     statistics.median(p["wall"] for p in passes), max(p["throttled"] for p in passes),
                     max(p["denied"] for p in passes)))
    ratio = rows[1][3] / rows[0][3]
    teams = len({job.team for job in bench.jobs})
    text = "\n".join([
        "## Per-team roles vs one identity",
        "",
        f"`python bench/roles.py{' --quick' if args.quick else ''}` on {report.machine()}, "
        f"{time.strftime('%Y-%m-%d')}: the cold "
        f"workload ({len(bench.jobs)} documents of {teams} teams, {ids:,} distinct secret ids, "
        f"{scale.callers} callers, batch permitted; floor {floor} calls), {args.runs} alternating runs per side "
        "(medians). Calls counted at the fault proxy; every team's role judged by its own policy.",
        "",
        "| reading as | STS AssumeRole | Secrets Manager calls | wall time | throttled | denied |",
        "|---|---|---|---|---|---|",
        *(f"| {label} | {sts:.0f} | {reads:.0f} | {wall:.2f} s | {throttled:.0f} | {denied:.0f} |"
          for label, sts, reads, wall, throttled, denied in rows),
        "",
        f"With roles: one AssumeRole per team ({teams} teams) per session lifetime, and "
        f"{rows[1][2] / rows[0][2]:.2f}x the Secrets Manager calls of one identity (batches no longer mix "
        f"teams: each team's calls are signed by its own role). Wall time {ratio:.2f}x one identity's.",
    ])
    print(text)
    if args.write:
        report.write_section(ROOT / "docs" / "performance.md", "roles", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
