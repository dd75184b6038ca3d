"""``check-access``: every candidate path probed through the fault proxy's IAM evaluation; the seed's
warning (a denied pipeline path fails team-level secrets too) made visible before a build hits it."""

from __future__ import annotations

import pytest
from conftest import SEED_POLICY, get_calls, restricted_policy
from ops_support import AWS_FLAGS, Cli, assert_fails_cleanly

from pipeline_secrets.tools.access import PROBE_NAME

TEAM, PIPELINE = "main", "deploy"


@pytest.fixture
def cli(proxy):
    return Cli(proxy)


def rows(stdout: str) -> list[list[str]]:
    """The path rows: [level, path, outcome...]."""
    return [line.split() for line in stdout.splitlines() if line.startswith("  ") and line.split()[0]
            in ("pipeline", "team", "shared")]


def pipeline_path_denied_policy() -> dict:
    """The team's paths allowed, except its pipeline's: the seed's trap."""
    policy = restricted_policy(TEAM)
    policy["Statement"].append({"Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
                                "Resource": "arn:aws:secretsmanager:*:*:secret:/concourse/main/deploy/*"})
    return policy


def test_denied_pipeline_path_is_reported_with_the_seeds_verdict(seed, cli, proxy):
    seed("/concourse/main/token", "team-secret-value")
    proxy.set_policy(pipeline_path_denied_policy())
    result = cli("check-access", "token", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 1, result.stderr
    assert rows(result.stdout) == [
        ["pipeline", "/concourse/main/deploy/token", "ACCESS", "DENIED"],
        ["team", "/concourse/main/token", "readable"],
    ]
    assert "FAIL: pipeline path denied: team-level secrets will fail too" in result.stdout
    assert ("next: allow secretsmanager:GetSecretValue on "
            "arn:aws:secretsmanager:us-east-1:*:secret:/concourse/main/deploy/token-??????") in result.stdout
    assert "team-secret-value" not in result.stdout + result.stderr
    # Every path asked, once each (not retried, not cached).
    assert get_calls(proxy) == ["/concourse/main/deploy/token", "/concourse/main/token"]


def test_without_vars_a_harmless_name_is_probed(cli, proxy):
    proxy.set_policy(SEED_POLICY)
    result = cli("check-access", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 0, result.stdout
    assert rows(result.stdout) == [
        ["pipeline", f"/concourse/main/deploy/{PROBE_NAME}", "not", "found"],
        ["team", f"/concourse/main/{PROBE_NAME}", "not", "found"],
    ]
    assert "ok: every path may be read" in result.stdout
    # The seed's pipeline-restricted policy: the pipeline path is fine, the team path is not.
    proxy.set_policy(restricted_policy("main/deploy"))
    result = cli("check-access", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 1
    assert rows(result.stdout)[1] == ["team", f"/concourse/main/{PROBE_NAME}", "ACCESS", "DENIED"]
    assert "FAIL: the lookup fails at the team path (access-denied)" in result.stdout


def test_readable_vars_pass_and_no_value_is_printed(seed, cli, proxy):
    seed("/concourse/main/deploy/db", {"password": "db-secret-value"})
    seed("/concourse/main/db", "shadowed-secret-value")
    seed("/concourse/main/slack", "slack-secret-value")
    proxy.set_policy(SEED_POLICY)
    result = cli("check-access", "db.password", "slack", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 0, result.stdout
    assert rows(result.stdout) == [
        ["pipeline", "/concourse/main/deploy/db", "readable"], ["team", "/concourse/main/db", "readable"],
        ["pipeline", "/concourse/main/deploy/slack", "not", "found"], ["team", "/concourse/main/slack", "readable"],
    ]
    assert result.stdout.count("ok: the lookup finds it at the") == 2
    for value in ("db-secret-value", "shadowed-secret-value", "slack-secret-value"):
        assert value not in result.stdout + result.stderr


def test_undefined_var_fails_and_lists_the_paths_tried(cli):
    result = cli("check-access", "nowhere", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 1
    assert "FAIL: undefined: no secret at any path (tried /concourse/main/deploy/nowhere, /concourse/main/nowhere)" \
        in result.stdout
    assert "next: store it with: pipeline-secrets put nowhere --team main --pipeline deploy" in result.stdout


def test_refused_var_fails_without_an_aws_call_and_others_are_still_checked(seed, cli, proxy):
    seed("/concourse/main/other-pipeline/x", "other-pipelines-secret")
    seed("/concourse/main/ok", "fine")
    result = cli("check-access", "other-pipeline/x", "ok", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 1
    assert "FAIL: refused: var 'other-pipeline/x' refused" in result.stdout
    assert "ok: the lookup finds it at the team path" in result.stdout
    assert "other-pipelines-secret" not in result.stdout
    assert get_calls(proxy) == ["/concourse/main/deploy/ok", "/concourse/main/ok"]


def test_throttling_is_reported_with_what_to_do(seed, cli, proxy):
    seed("/concourse/main/token", "v")
    proxy.throttle()
    result = cli("check-access", "token", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-retry-attempts", "2"])
    assert result.exit_code == 1
    assert rows(result.stdout) == [["team", "/concourse/main/token", "ERROR", "(throttled)"]]
    assert "after 2 attempts" in result.stdout
    assert "next: AWS did not answer in time: try again" in result.stdout


@pytest.mark.parametrize(
    ("args", "flags", "status", "expected"),
    [
        (["--team", "a/b"], AWS_FLAGS, 2, "Invalid value for '--team' / '-t': invalid team name"),
        (["--team", TEAM], AWS_FLAGS[2:], 2, "--aws-secretsmanager-region"),
    ],
)
def test_bad_input_exits_2_before_any_aws_call(cli, proxy, args, flags, status, expected):
    result = cli("check-access", *args, flags=flags)
    assert_fails_cleanly(result, status)
    assert expected in result.stderr
    assert proxy.log == []
