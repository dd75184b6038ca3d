"""The IAM policy the configured templates need (spec 7), derived from the templates themselves.

Why derive it: the seed's example policy fits only the default templates. An operator who copies it
while using custom templates grants the wrong paths, and a policy that misses the pipeline path
silently breaks team-level lookups too (spec 2: the pipeline path is asked first, and a denial
there fails the lookup). Built from the same ``LookupRules`` the lookups use, the policy and the
lookups cannot disagree.

Patterns use IAM's wildcards: ``*`` any run of characters (``/`` included), ``?`` one character.
AWS appends ``-`` and 6 random characters to every secret's ARN, so a pattern that names a secret
exactly ends in ``-??????``; one that ends in a wildcard already covers the suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..aws import HEALTH_CHECK_SECRET
from ..errors import ConfigError, ScopeNameError
from ..pure.templates import LookupRules, SecretTemplate, check_scope

ARN_PREFIX = "arn:aws:secretsmanager:*:*:secret:"
RANDOM_SUFFIX = "-??????"
READ_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")
WRITE_ACTIONS = ("secretsmanager:CreateSecret", "secretsmanager:PutSecretValue")
BATCH_ACTION = "secretsmanager:BatchGetSecretValue"

_NAME_CHARS = re.compile(r"[A-Za-z0-9/_+=.@-]*")  # Secrets Manager's characters for names
_SCOPE_CHARS = re.compile(r"[A-Za-z0-9_+=.@-]+")  # a team or pipeline: one segment, no wildcard


@dataclass(frozen=True)
class GeneratedPolicy:
    """The policy document, and notes for the operator about what IAM cannot express."""

    document: dict[str, Any]
    notes: tuple[str, ...] = ()


def build_policy(
    rules: LookupRules, *, team: str | None = None, pipeline: str | None = None, batch: bool = False,
    health_check: bool = True,
) -> GeneratedPolicy:
    """The policy that lets lookups read every path the templates make for ``team`` and
    ``pipeline`` (``None``: any), the health-check secret, and nothing else of Secrets Manager.

    Raises ``ScopeNameError`` for a team or pipeline name that cannot be part of a path (or would
    widen the policy with a wildcard), ``ConfigError`` for a template no secret name can match.
    """
    _check_restriction(team, pipeline)
    names = secret_name_patterns(rules, team=team, pipeline=pipeline)
    resources = [ARN_PREFIX + name for name in names]
    if health_check:
        resources.append(ARN_PREFIX + HEALTH_CHECK_SECRET + RANDOM_SUFFIX)
    statements: list[dict[str, Any]] = [
        {"Sid": "AllowAccessToSecretManagerParameters", "Effect": "Allow",
         "Action": ["secretsmanager:ListSecrets"], "Resource": "*"},
        {"Sid": "AllowAccessGetSecret", "Effect": "Allow", "Action": list(READ_ACTIONS), "Resource": resources},
    ]
    if batch:
        # BatchGetSecretValue has no resource-level permissions: it is granted on "*", and AWS
        # still checks GetSecretValue on each secret the batch names.
        statements.append({"Sid": "AllowBatchGetSecretValue", "Effect": "Allow",
                           "Action": [BATCH_ACTION], "Resource": "*"})
    document = {"Version": "2012-10-17", "Statement": statements}
    return GeneratedPolicy(document, tuple(_overlap_notes(rules, names, team, pipeline)))


def secret_name_patterns(rules: LookupRules, *, team: str | None, pipeline: str | None) -> list[str]:
    """The IAM name patterns of every template, in lookup order, without those another pattern
    already covers. Pipeline-dependent templates are included even without ``pipeline``: a team
    restriction covers all of the team's pipelines."""
    patterns: list[str] = []
    for _, template in rules.configured():
        pattern = name_pattern(template, team=team, pipeline=pipeline)
        if pattern not in patterns:
            patterns.append(pattern)
    return [p for p in patterns if not any(other != p and covers(other, p) for other in patterns)]


def name_pattern(template: SecretTemplate, *, team: str | None, pipeline: str | None) -> str:
    """The IAM pattern of the names ``template`` renders: ``{{.Secret}}`` and any unbound field
    become ``*``; a pattern that ends in text (``{{.Secret}}`` not last) gets ``-??????``."""
    bound = {"Team": team, "Pipeline": pipeline, "Secret": None}
    out = ""
    for kind, value in template.parts:
        if kind == "text":
            if not _NAME_CHARS.fullmatch(value):
                raise ConfigError(
                    f"template '{template.text}': '{value}' has characters Secrets Manager does not "
                    "allow in secret names (ASCII letters, digits and /_+=.@-)"
                )
            out += value
        elif bound[value] is not None:
            out += str(bound[value])
        elif not out.endswith("*"):
            out += "*"
    return out if out.endswith("*") else out + RANDOM_SUFFIX


def exact_arn(path: str, region: str = "*") -> str:
    """The ARN pattern of the one secret at ``path``, for messages that say what to allow."""
    return f"arn:aws:secretsmanager:{region}:*:secret:{path}{RANDOM_SUFFIX}"


def covers(broad: str, narrow: str) -> bool:
    """True when every name ``narrow`` matches is matched by ``broad`` too (a sound test: a
    ``*`` of ``broad`` may absorb anything of ``narrow``; a ``?`` anything but a ``*``)."""
    regex = "".join(".*" if c == "*" else "[^*]" if c == "?" else re.escape(c) for c in broad)
    return re.fullmatch(regex, narrow, re.DOTALL) is not None


def _check_restriction(team: str | None, pipeline: str | None) -> None:
    if pipeline is not None and team is None:
        raise ScopeNameError("a pipeline restriction needs its team: give --team too")
    if team is None:
        return
    check_scope(team, pipeline)
    for what, name in (("team", team), ("pipeline", pipeline)):
        if name is not None and not _SCOPE_CHARS.fullmatch(name):
            raise ScopeNameError(
                f"invalid {what} name '{name}': only ASCII letters, digits and _+=.@- can be part of "
                "a secret name"
            )


def _overlap_notes(rules: LookupRules, names: list[str], team: str | None, pipeline: str | None) -> list[str]:
    """Say when a granted pattern also covers another team's or pipeline's secrets: IAM cannot
    exclude them, only the lookups' scope check does, so the operator should know."""
    if team is None:
        return []  # every team's secrets are granted on purpose
    foreign = [(team + "-other", pipeline or "p")]
    if pipeline is not None:
        foreign.append((team, pipeline + "-other"))
    notes = []
    for pattern in names:
        examples = (
            (level, template, other_team, other_pipeline)
            for level, template in rules.configured()
            for other_team, other_pipeline in foreign
        )
        for level, template, other_team, other_pipeline in examples:
            example = template.render(team=other_team, pipeline=other_pipeline, secret="x")
            if covers(pattern, example):
                owner = f"team '{other_team}'"
                if template.pipeline_dependent:
                    owner = f"pipeline '{other_pipeline}' of {owner}"
                notes.append(
                    f"'{pattern}' also matches '{example}', the {level}-level path of {owner}: IAM "
                    "cannot exclude it (lookups refuse such vars; other users of these credentials "
                    "would not); templates whose paths cannot overlap avoid this"
                )
                break
    return notes


TEAM_TAG = "${aws:PrincipalTag/Team}"
NODE_PRINCIPAL_PLACEHOLDER = "arn:aws:iam::ACCOUNT_ID:role/pipeline-secrets-node"


def role_policies(
    rules: LookupRules, *, team: str, role_template: str | None, node_principal: str | None = None,
    external_id: str | None = None, batch: bool = False, own_roles: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The policies of per-team roles (``docs/identities.md``), for ``team``:

    - ``permission_policy``: the team's role may read its own paths only (no health check: the
      node checks health as itself);
    - ``trust_policy``: the node's principal may assume it, only tagged as this team
      (``aws:RequestTag/Team``) and, with ``external_id``, only saying it;
    - ``abac_permission_policy``: one permission policy to attach to every team's role, its paths
      bound to the session's ``Team`` tag (``${aws:PrincipalTag/Team}``), which each role's trust
      policy pins to its team;
    - ``node_policy``: what the node itself needs: AssumeRole and TagSession on the roles the
      template names and the teams' own roles (``own_roles``), and the health-check secret; no
      secret of any team. Without either, there is no node policy (it would name every role).
    """
    permission = build_policy(rules, team=team, batch=batch, health_check=False)
    # Only GetSecretValue: lookups never list (a listing would show every team's secret names) nor
    # describe.
    statements = [dict(statement) for statement in permission.document["Statement"]
                  if statement["Action"] != ["secretsmanager:ListSecrets"]]
    for statement in statements:
        if statement["Action"] == list(READ_ACTIONS):
            statement["Action"] = ["secretsmanager:GetSecretValue"]
    permission.document["Statement"] = statements
    principal = node_principal or NODE_PRINCIPAL_PLACEHOLDER
    condition: dict[str, Any] = {"StringEquals": {"aws:RequestTag/Team": team}}
    if external_id:
        condition["StringEquals"]["sts:ExternalId"] = external_id
    trust = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PipelineSecretsNodeAssumesTeamRole", "Effect": "Allow", "Principal": {"AWS": principal},
        "Action": ["sts:AssumeRole", "sts:TagSession"], "Condition": condition,
    }]}
    tagged = list(dict.fromkeys(name_pattern(template, team=TEAM_TAG, pipeline=None) for _, template in rules.configured()))
    abac_names = [ARN_PREFIX + p for p in tagged if not any(other != p and covers(other, p) for other in tagged)]
    abac = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadOwnTeamsSecretsByTag", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": abac_names},
        *([{"Sid": "AllowBatchGetSecretValue", "Effect": "Allow", "Action": [BATCH_ACTION], "Resource": "*"}]
          if batch else []),
    ]}
    roles = [*([role_template.replace("{{.Team}}", "*")] if role_template else []), *own_roles]
    notes = list(permission.notes)
    policies: dict[str, Any] = {"permission_policy": permission.document, "trust_policy": trust,
                                "abac_permission_policy": abac}
    if roles:
        policies["node_policy"] = {"Version": "2012-10-17", "Statement": [
            {"Sid": "AssumeTeamRoles", "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
             "Resource": list(dict.fromkeys(roles))},
            {"Sid": "HealthCheck", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
             "Resource": ARN_PREFIX + HEALTH_CHECK_SECRET + RANDOM_SUFFIX},
        ]}
    else:
        notes.append("no node_policy: give the role template or --team-roles-file, so that it names the roles "
                     "the node may assume")
    if node_principal is None:
        notes.append(f"the trust policy names {NODE_PRINCIPAL_PLACEHOLDER}: give --node-principal with the ARN of "
                     "the IAM role or user the node runs as (for an instance or task role, the role's ARN, not the "
                     "assumed-role session ARN that aws sts get-caller-identity prints)")
    policies["notes"] = notes
    return policies
