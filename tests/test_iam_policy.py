"""``iam-policy`` and ``paths``: derived from the templates, checked by loading the generated policy
into the fault proxy's IAM evaluator and reading through it."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from conftest import ACCESS_KEY, REGION, SECRET_KEY
from ops_support import TEMPLATE_FLAGS, Cli, assert_fails_cleanly
from support import iam

from pipeline_secrets import LookupFailed, UndefinedVarsError
from pipeline_secrets.config.settings import resolve_settings

ARN = "arn:aws:secretsmanager:*:*:secret:"
HEALTH = ARN + "__concourse-health-check-??????"
GET = "secretsmanager:GetSecretValue"

CUSTOM = {
    "pipeline_secret_template": "/ci/{{.Team}}/pipelines/{{.Pipeline}}/{{.Secret}}",
    "team_secret_template": "/ci/{{.Team}}/team/{{.Secret}}",
    "shared_secret_template": "/ci-common/{{.Secret}}/value",  # {{.Secret}} not at the end
}
CUSTOM_FLAGS = [flag for level, flag in TEMPLATE_FLAGS.items() for flag in (flag, CUSTOM[f"{level}_secret_template"])]


@pytest.fixture
def cli(proxy):
    return Cli(proxy)


def policy_of(cli: Cli, *args: str, flags: list[str] | None = None) -> dict[str, Any]:
    result = cli("iam-policy", *args, flags=flags or [])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def read_resources(policy: dict[str, Any]) -> list[str]:
    [statement] = [s for s in policy["Statement"] if GET in s["Action"]]
    return statement["Resource"]


def allowed(policy: dict[str, Any], path: str) -> bool:
    return iam.is_allowed(policy, GET, iam.secret_arn(path, REGION))


# --- the document --------------------------------------------------------------------------------


def test_default_policy_is_the_seeds_shape_valid_json_and_deterministic(cli, proxy):
    first = cli("iam-policy", flags=[])
    assert first.exit_code == 0, first.stderr
    assert first.stdout == cli("iam-policy", flags=[]).stdout  # deterministic
    policy = json.loads(first.stdout)
    assert policy["Version"] == "2012-10-17"
    list_statement, read_statement = policy["Statement"]
    assert list_statement["Action"] == ["secretsmanager:ListSecrets"] and list_statement["Resource"] == "*"
    assert read_statement["Action"] == [GET, "secretsmanager:DescribeSecret"]
    # Every team's paths (a team name is one segment: at least /concourse/T/S) and the health check.
    assert read_statement["Resource"] == [ARN + "/concourse/*/*", HEALTH]
    assert first.stderr == ""
    assert proxy.log == []  # no AWS call, no region, no credentials


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (["--team", "main"], [ARN + "/concourse/main/*", HEALTH]),
        # The pipeline's lookups read the team path too: without it, team-level secrets fail.
        (["--team", "main", "--pipeline", "deploy"], [ARN + "/concourse/main/*", HEALTH]),
    ],
)
def test_restricted_policy_matches_the_seeds_restriction(cli, scope, expected):
    assert read_resources(policy_of(cli, *scope)) == expected


def test_batch_adds_batch_get_secret_value_on_star(cli):
    assert not any("secretsmanager:BatchGetSecretValue" in s["Action"] for s in policy_of(cli)["Statement"])
    batch = [s for s in policy_of(cli, "--batch")["Statement"] if "secretsmanager:BatchGetSecretValue" in s["Action"]]
    assert batch == [{"Sid": "AllowBatchGetSecretValue", "Effect": "Allow",
                      "Action": ["secretsmanager:BatchGetSecretValue"], "Resource": "*"}]


def test_custom_templates_give_a_matching_policy(cli):
    assert read_resources(policy_of(cli, "--team", "main", "--pipeline", "deploy", flags=CUSTOM_FLAGS)) == [
        ARN + "/ci/main/pipelines/deploy/*",
        ARN + "/ci/main/team/*",
        ARN + "/ci-common/*/value-??????",  # an exact tail: the ARN's random suffix follows it
        HEALTH,
    ]
    assert read_resources(policy_of(cli, flags=CUSTOM_FLAGS)) == [
        ARN + "/ci/*/pipelines/*/*", ARN + "/ci/*/team/*", ARN + "/ci-common/*/value-??????", HEALTH]


def test_templates_from_the_environment_and_other_settings_ignored(cli):
    env = {"CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE": "/env/{{.Team}}/{{.Secret}}",
           "CONCOURSE_SECRET_CACHE_DURATION": "not-a-duration",  # irrelevant to a policy
           "CONCOURSE_AWS_SECRETSMANAGER_SESSION_TOKEN": "token-without-keys"}
    result = cli("iam-policy", "--team", "main", flags=[], env=env)
    assert result.exit_code == 0, result.stderr
    assert ARN + "/env/main/*" in read_resources(json.loads(result.stdout))


def test_overlap_the_policy_cannot_exclude_is_noted_on_stderr(cli):
    result = cli("iam-policy", "--team", "main", "--pipeline", "deploy", flags=[])
    json.loads(result.stdout)  # stdout stays pure JSON
    assert result.stderr.startswith("note: '/concourse/main/*' also matches '/concourse/main/deploy-other/x'")
    shared = cli("iam-policy", "--team", "main", flags=[TEMPLATE_FLAGS["shared"], "/concourse/{{.Secret}}"])
    assert "team 'main-other'" in shared.stderr


@pytest.mark.parametrize(
    ("args", "flags", "expected"),
    [
        (["--pipeline", "deploy"], [], "needs its team"),
        (["--team", "ma*n"], [], "invalid team name 'ma*n'"),
        (["--team", "main", "--pipeline", "a/b"], [], "invalid pipeline name 'a/b'"),
        ([], [TEMPLATE_FLAGS["team"], "/c/{{.Team}}"], "--aws-secretsmanager-team-secret-template"),
        ([], [TEMPLATE_FLAGS["team"], "/c/*/{{.Team}}/{{.Secret}}"], "characters Secrets Manager does not allow"),
    ],
)
def test_bad_input_exits_2(cli, proxy, args, flags, expected):
    result = cli("iam-policy", *args, flags=flags)
    assert_fails_cleanly(result, 2)
    assert result.stdout == ""
    assert expected in result.stderr


# --- the policy at work: loaded into the proxy ------------------------------------------------------


def _candidates(team: str, pipeline: str | None, names: list[str], **templates: str) -> list[str]:
    rules = resolve_settings(templates, {}, require_region=False).rules
    return [path for name in names for _, path in rules.candidate_paths(name, team, pipeline)]


@pytest.mark.parametrize("templates", [{}, CUSTOM], ids=["default-templates", "custom-templates"])
def test_policy_allows_exactly_the_scopes_paths_and_denies_another_teams(cli, templates):
    flags = [x for level, flag in TEMPLATE_FLAGS.items() if f"{level}_secret_template" in templates
             for x in (flag, templates[f"{level}_secret_template"])]
    policy = policy_of(cli, "--team", "main", "--pipeline", "deploy", flags=flags)
    names = ["token", "db", "deploy/x", "a.b@c=d+e_f-g"]
    one_off = [name for name in names if "/" not in name]  # "deploy/x" is refused without pipeline 'deploy'
    own = _candidates("main", "deploy", names, **templates) + _candidates("main", None, one_off, **templates)
    assert own and all(allowed(policy, path) for path in own)
    assert allowed(policy, "__concourse-health-check")
    if "shared_secret_template" in templates:  # shared paths are nobody's: they stay allowed
        own_shared = set(_candidates("main", "deploy", names, **templates)[2::3])
        foreign = [p for p in _candidates("other", "deploy", names, **templates) if p not in own_shared]
    else:
        foreign = _candidates("other", "deploy", names, **templates) + _candidates("other", None, one_off, **templates)
    assert foreign and not any(allowed(policy, path) for path in foreign)
    for stray in ["/concourse", "/concourse-x/main/token", "/ci-common/token/value-extra", "token"]:
        assert not allowed(policy, stray), stray


def test_generated_policy_in_the_proxy_serves_the_team_and_denies_another(cli, seed, connect, proxy):
    seed("/concourse/main/deploy/token", "pipeline-value")
    seed("/concourse/main/shared-token", "team-value")
    seed("/concourse/other/deploy/token", "other-value")
    seed("__concourse-health-check", "ok")
    proxy.set_policy(policy_of(cli, "--team", "main", "--pipeline", "deploy"))
    manager = connect()
    assert manager.lookup("token", team="main", pipeline="deploy") == "pipeline-value"
    assert manager.lookup("shared-token", team="main", pipeline="deploy") == "team-value"
    with pytest.raises(UndefinedVarsError):
        manager.lookup("missing", team="main", pipeline="deploy")  # both paths may be read
    with pytest.raises(LookupFailed) as denied:
        manager.lookup("token", team="other", pipeline="deploy")
    assert denied.value.kind == "access-denied"
    assert manager.health() == {"response": {"status": "UP"}, "method": "GetSecretValue"}


def test_batch_policy_in_the_proxy_allows_batched_reads_of_own_secrets_only(cli, seed, proxy):
    seed("/concourse/main/a", "a-value")
    seed("/concourse/other/b", "b-value")
    client = boto3.client("secretsmanager", endpoint_url=proxy.url, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                          config=Config(retries={"total_max_attempts": 1}))
    proxy.set_policy(policy_of(cli, "--team", "main"))
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.batch_get_secret_value(SecretIdList=["/concourse/main/a"])
    proxy.set_policy(policy_of(cli, "--team", "main", "--batch"))
    answer = client.batch_get_secret_value(SecretIdList=["/concourse/main/a", "/concourse/other/b"])
    assert [v["Name"] for v in answer["SecretValues"]] == ["/concourse/main/a"]
    assert [(e["SecretId"], e["ErrorCode"]) for e in answer["Errors"]] == [
        ("/concourse/other/b", "AccessDeniedException")]
    client.close()


# --- paths ---------------------------------------------------------------------------------------


def test_paths_prints_the_candidates_in_order_and_nothing_else(cli, proxy):
    result = cli("paths", "db.password", "--team", "main", "--pipeline", "deploy", flags=[])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "/concourse/main/deploy/db\n/concourse/main/db\n"
    assert result.stderr == ""
    one_off = cli("paths", "db", "--team", "main", flags=[TEMPLATE_FLAGS["shared"], "/shared/{{.Secret}}"])
    assert one_off.stdout == "/concourse/main/db\n/shared/db\n"
    assert proxy.log == []


def test_paths_explain_says_why_on_stderr_and_keeps_stdout_for_scripts(cli):
    result = cli("paths", "db", "--team", "main", "--explain", flags=[])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "/concourse/main/db\n"
    lines = result.stderr.splitlines()
    assert lines[0].split()[:2] == ["pipeline", "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}"]
    assert "skipped: no pipeline" in lines[0]
    assert lines[1].split() == ["team", "/concourse/main/db", "candidate", "1"]
    assert lines[2].startswith("shared") and "not configured" in lines[2]


def test_paths_of_a_refused_var_exit_1_and_explain_names_the_path(cli):
    result = cli("paths", "other-pipeline/x", "--team", "main", "--pipeline", "deploy", "--explain", flags=[])
    assert_fails_cleanly(result, 1)
    assert result.stdout == ""
    assert "refused" in result.stderr.splitlines()[1] and "/concourse/main/other-pipeline/x" in result.stderr
    assert "pipeline 'other-pipeline'" in result.stderr.splitlines()[-1]
    assert_fails_cleanly(cli("paths", "a..b", "--team", "main", flags=[]), 1)
    assert_fails_cleanly(cli("paths", "a", "--team", "a/b", flags=[]), 2)
