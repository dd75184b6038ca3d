"""``check-access``: what the configured credentials may read, path by path, and what a lookup
would make of it.

Why: an IAM policy that misses the pipeline path does not fail on pipeline secrets only. The
pipeline path is asked first and a denial there fails the whole lookup (spec 2), so team-level
secrets break too, and the error appears at the first build that needs them. Probing every
candidate path shows the gap before that, and says which permission closes it.

Values are read (GetSecretValue is the permission under test, and reading also proves the KMS
key may be used) but never kept, returned or printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LookupFailed, PipelineSecretsError
from ..manager import Manager, PathProbe
from ..pure import vars as vars_
from .policy import exact_arn

# Asked when no var is given: a name nobody stores, so that the answer is "not found" when the
# credentials may read the path and AccessDenied when they may not (AWS checks IAM first).
PROBE_NAME = "pipeline-secrets-access-probe"

_OUTCOME_LABELS = {"readable": "readable", "not found": "not found"}


@dataclass(frozen=True)
class VarAccess:
    """One var's paths as the credentials see them, and the verdict for its lookup."""

    var: str
    probes: tuple[PathProbe, ...]
    ok: bool
    verdict: str
    next_steps: tuple[str, ...] = ()


def check_access(
    manager: Manager, variables: Iterable[str], *, team: str, pipeline: str | None = None
) -> list[VarAccess]:
    """Probe every candidate path of each var (``PROBE_NAME`` when none is given). A var's
    syntax or name error is its own failed verdict, not an exception, so one bad var does not
    hide the others' answers."""
    names = list(variables)
    if not names:
        return [_check_one(manager, PROBE_NAME, team, pipeline, expect_secret=False)]
    return [_check_one(manager, name, team, pipeline, expect_secret=True) for name in names]


def _check_one(manager: Manager, var: str, team: str, pipeline: str | None, *, expect_secret: bool) -> VarAccess:
    try:
        probes = tuple(manager.probe(vars_.parse_var(var).path, team=team, pipeline=pipeline))
    except PipelineSecretsError as exc:
        return VarAccess(var, (), False, f"FAIL: refused: {exc}")
    region = manager.settings.region
    for index, probe in enumerate(probes):
        if probe.outcome == "readable":
            return VarAccess(var, probes, True, f"ok: the lookup finds it at the {probe.level} path")
        if probe.error is not None:
            return VarAccess(var, probes, False, _failure_verdict(probe, probes[index + 1:]),
                             (next_step(probe.error, region=region),))
    if not expect_secret:
        return VarAccess(var, probes, True, "ok: every path may be read (no secret there, as expected)")
    tried = ", ".join(probe.path for probe in probes)
    store = f"pipeline-secrets put {vars_.parse_var(var).path} --team {team}"
    store += f" --pipeline {pipeline}" if pipeline else ""
    return VarAccess(var, probes, False, f"FAIL: undefined: no secret at any path (tried {tried})",
                     (f"store it with: {store}",))


def _failure_verdict(probe: PathProbe, later: tuple[PathProbe, ...]) -> str:
    assert probe.error is not None
    if probe.error.kind == "access-denied" and later:
        levels = " and ".join(f"{p.level}-level" for p in later)
        return f"FAIL: {probe.level} path denied: {levels} secrets will fail too"
    return f"FAIL: the lookup fails at the {probe.level} path ({probe.error.kind})"


def next_step(failure: LookupFailed, *, region: str = "*", actions: str = "secretsmanager:GetSecretValue") -> str:
    """What an operator does about ``failure``: for a denial, which action on which ARN."""
    if failure.kind == "access-denied":
        return (f"allow {actions} on {exact_arn(failure.path, region)} "
                "(pipeline-secrets iam-policy prints a policy that does)")
    if failure.kind == "decryption":
        return "allow kms:Decrypt on the secret's KMS key for these credentials"
    if failure.kind == "credentials":
        return ("check the credentials: --aws-secretsmanager-access-key/--aws-secretsmanager-secret-key, "
                "or the AWS SDK's default chain (environment, profile, instance role)")
    if failure.kind in ("throttled", "unavailable", "network"):
        return "AWS did not answer in time: try again, and check the endpoint and the network"
    if failure.kind == "invalid-value":
        return "store the secret again as plaintext or a JSON object (pipeline-secrets put)"
    return "see AWS's answer above"


def outcome_label(probe: PathProbe) -> str:
    """``readable``, ``not found``, ``ACCESS DENIED`` or ``ERROR (<kind>)``."""
    if probe.error is None:
        return _OUTCOME_LABELS[probe.outcome]
    return "ACCESS DENIED" if probe.error.kind == "access-denied" else f"ERROR ({probe.error.kind})"


def render(results: list[VarAccess]) -> list[str]:
    """Plain, aligned lines: per var, each path and its outcome, the verdict, the next steps.
    AWS's own message for a failure is shown, since it names the identity it judged."""
    lines: list[str] = []
    width = max((len(p.path) for r in results for p in r.probes), default=0)
    for result in results:
        lines.append(result.var)
        for probe in result.probes:
            lines.append(f"  {probe.level:<8}  {probe.path:<{width}}  {outcome_label(probe)}")
        lines.append(f"  {result.verdict}")
        failed = next((p.error for p in result.probes if p.error is not None), None)
        if not result.ok and failed is not None:
            lines.append(f"  AWS said: {failed}")
        lines.extend(f"  next: {step}" for step in result.next_steps)
    return lines
