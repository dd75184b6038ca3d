"""The ``pipeline-secrets`` command end to end: click -> manager -> boto3 -> fault proxy -> moto server.

Most tests run the CLI in-process with click's ``CliRunner``; a few run the real ``python -m
pipeline_secrets`` in a subprocess to check exit statuses and that no traceback ever reaches stderr.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest
import yaml
from click.testing import Result
from conftest import ACCESS_KEY, REGION, SECRET_KEY, SEED_POLICY, get_calls, read_ids, restricted_policy
from ops_support import AWS_FLAGS, Cli, assert_fails_cleanly as fails_cleanly

from pipeline_secrets.dev import default_secrets_file, example_pipeline_file
from pipeline_secrets.pure.vars import find_vars

TEAM, PIPELINE = "main", "deploy"
PIPELINE_PATH = "/concourse/main/deploy/{}"
TEAM_PATH = "/concourse/main/{}"
HEALTH_ID = "__concourse-health-check"
UP = {"method": "GetSecretValue", "response": {"status": "UP"}}

REGION_FLAGS = ["--aws-secretsmanager-region", REGION]


@pytest.fixture
def cli(proxy):
    """``cli(*args, flags=AWS_FLAGS, env=None, input=None)``: run the CLI in-process against the proxy."""
    return Cli(proxy)


def assert_fails_cleanly(result: Result, status: int) -> None:
    """The operator tools' check, and stricter: nothing on stdout, and our own ``error:`` line."""
    fails_cleanly(result, status)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- lookup ------------------------------------------------------------------------------------


def test_lookup_prints_a_string_value_as_is(seed, cli, proxy):
    seed(PIPELINE_PATH.format("token"), "s3cr3t value: not {json}")
    seed(TEAM_PATH.format("count"), "123")  # JSON scalars stay the string they are
    result = cli("lookup", "token", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "s3cr3t value: not {json}\n"
    assert result.stderr == ""
    assert cli("lookup", "count", "--team", TEAM).stdout == "123\n"


def test_lookup_prints_a_json_object_as_json(seed, cli):
    seed(PIPELINE_PATH.format("db"), {"user": "ci", "port": 5432, "tls": {"on": True}, "name": "bäse"})
    result = cli("lookup", "db", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"user": "ci", "port": 5432, "tls": {"on": True}, "name": "bäse"}
    assert result.stdout.endswith("}\n")
    # A field that is a number or a mapping prints as JSON too; a string field as it is.
    assert cli("lookup", "db.port", "--team", TEAM, "--pipeline", PIPELINE).stdout == "5432\n"
    assert cli("lookup", "db.tls", "--team", TEAM, "--pipeline", PIPELINE).stdout == '{"on": true}\n'
    assert cli("lookup", "db.user", "--team", TEAM, "--pipeline", PIPELINE).stdout == "ci\n"


def test_lookup_with_a_pipeline_asks_the_pipeline_path_then_the_team_path(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "team-value")
    result = cli("lookup", "token", "--team", TEAM, "--pipeline", PIPELINE)
    assert result.stdout == "team-value\n"
    assert get_calls(proxy) == ["/concourse/main/deploy/token", "/concourse/main/token"]


def test_one_off_lookup_asks_the_team_path_only(seed, cli, proxy):
    seed(PIPELINE_PATH.format("token"), "pipeline-value")
    seed(TEAM_PATH.format("token"), "team-value")
    result = cli("lookup", "token", "--team", TEAM)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "team-value\n"
    assert get_calls(proxy) == ["/concourse/main/token"]


def test_explain_shows_each_path_and_outcome_but_never_the_value(seed, cli):
    seed(TEAM_PATH.format("token"), "explained-secret-value")
    result = cli("lookup", "token", "--team", TEAM, "--pipeline", PIPELINE, "--explain")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "explained-secret-value\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["pipeline", "/concourse/main/deploy/token", "not", "found"]
    assert lines[1].split() == ["team", "/concourse/main/token", "found"]
    assert "explained-secret-value" not in result.stderr


def test_explain_one_off_shows_the_skipped_pipeline_template(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "explained-secret-value")
    result = cli("lookup", "token", "--team", TEAM, "--explain")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("pipeline")
    assert "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}" in lines[0]
    assert "skipped" in lines[0]
    assert lines[1].split() == ["team", "/concourse/main/token", "found"]
    assert "explained-secret-value" not in result.stderr
    assert get_calls(proxy) == ["/concourse/main/token"]


def test_explain_shows_the_error_of_a_failed_path(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "explained-secret-value")
    proxy.set_policy(restricted_policy("other-team"))
    result = cli("lookup", "token", "--team", TEAM, "--explain")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert "skipped" in lines[0]
    assert lines[1].startswith("team") and "/concourse/main/token" in lines[1]
    assert "error:" in lines[1] and "AccessDeniedException" in lines[1]
    assert lines[2].startswith("error: reading secret '/concourse/main/token' failed")
    assert "explained-secret-value" not in result.stderr
    assert result.stdout == ""


def test_undefined_var_exits_1(cli, proxy):
    result = cli("lookup", "x", "--team", TEAM, "--pipeline", PIPELINE)
    assert_fails_cleanly(result, 1)
    assert result.stderr == "error: undefined vars: x\n"
    assert get_calls(proxy) == ["/concourse/main/deploy/x", "/concourse/main/x"]


def test_access_denied_exits_1_naming_the_path_and_is_not_retried(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "denied-secret-value")
    proxy.set_policy(restricted_policy("other-team"))
    result = cli("lookup", "token", "--team", TEAM, "--pipeline", PIPELINE,
                 flags=[*AWS_FLAGS, "--secret-retry-attempts", "5"])
    assert_fails_cleanly(result, 1)
    assert "/concourse/main/deploy/token" in result.stderr
    assert "AccessDeniedException" in result.stderr
    assert "attempts" not in result.stderr
    assert "denied-secret-value" not in result.stderr
    # Not retried, and no fall-through to the team path that holds the secret.
    assert get_calls(proxy) == ["/concourse/main/deploy/token"]


def test_seed_policy_allows_the_cli(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "team-value")
    proxy.set_policy(SEED_POLICY)
    assert cli("lookup", "token", "--team", TEAM, "--pipeline", PIPELINE).stdout == "team-value\n"


@pytest.mark.parametrize(
    ("var", "pipeline"),
    [("other-pipeline/x", PIPELINE), ("deploy/x", None)],
)
def test_scope_escaping_var_is_refused_without_an_aws_call(seed, cli, proxy, var, pipeline):
    seed("/concourse/main/other-pipeline/x", "other-pipelines-secret")
    seed("/concourse/main/deploy/x", "deploy-pipelines-secret")
    args = ["lookup", var, "--team", TEAM] + (["--pipeline", pipeline] if pipeline else [])
    result = cli(*args)
    assert_fails_cleanly(result, 1)
    assert "refused" in result.stderr
    assert "other-pipelines-secret" not in result.stderr
    assert "deploy-pipelines-secret" not in result.stderr
    assert proxy.log == []


def test_invalid_var_syntax_exits_1_without_an_aws_call(cli, proxy):
    result = cli("lookup", "bad..field", "--team", TEAM)
    assert_fails_cleanly(result, 1)
    assert "empty field" in result.stderr
    assert proxy.log == []


def test_missing_field_exits_1_without_the_value(seed, cli):
    seed(TEAM_PATH.format("db"), {"password": "field-secret-value"})
    result = cli("lookup", "db.user", "--team", TEAM)
    assert_fails_cleanly(result, 1)
    assert result.stderr == "error: missing field 'user' in var: db.user\n"
    result = cli("lookup", "db.password.x", "--team", TEAM)
    assert_fails_cleanly(result, 1)
    assert "field-secret-value" not in result.stderr


# --- interpolate -------------------------------------------------------------------------------

PIPELINE_YAML = """\
zeta: first
resources:
- name: repo
  source:
    private_key: ((git.key))
    uri: git@example.com:((git.org))/app.git
port: ((db.port))
count: "3"
enabled: true
ratio: 1.5
nothing: null
db: ((db))
alpha: last
"""


def _seed_pipeline_secrets(seed) -> None:
    seed(PIPELINE_PATH.format("git"), {"key": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n", "org": "acme"})
    seed(TEAM_PATH.format("db"), {"port": 5432, "user": "ci"})


EXPECTED = {
    "zeta": "first",
    "resources": [{"name": "repo", "source": {
        "private_key": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
        "uri": "git@example.com:acme/app.git",
    }}],
    "port": 5432,
    "count": "3",
    "enabled": True,
    "ratio": 1.5,
    "nothing": None,
    "db": {"port": 5432, "user": "ci"},
    "alpha": "last",
}


def _check_interpolated(text: str) -> None:
    document = yaml.safe_load(text)
    assert document == EXPECTED
    assert list(document) == list(EXPECTED)  # key order kept, not sorted
    assert type(document["port"]) is int and type(document["count"]) is str
    assert list(document["db"]) == ["port", "user"]
    assert "((" not in text


def test_interpolate_a_file(seed, cli, proxy, tmp_path):
    _seed_pipeline_secrets(seed)
    path = tmp_path / "pipeline.yml"
    path.write_text(PIPELINE_YAML, encoding="utf-8")
    result = cli("interpolate", str(path), "--team", TEAM, "--pipeline", PIPELINE)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    _check_interpolated(result.stdout)
    # Each path once: git found at pipeline level, db at team level.
    assert sorted(read_ids(proxy)) == sorted(
        ["/concourse/main/deploy/git", "/concourse/main/deploy/db", "/concourse/main/db"]
    )


def test_interpolate_stdin(seed, cli):
    _seed_pipeline_secrets(seed)
    result = cli("interpolate", "-", "--team", TEAM, "--pipeline", PIPELINE, input=PIPELINE_YAML)
    assert result.exit_code == 0, result.stderr
    _check_interpolated(result.stdout)


def test_interpolate_json_input(seed, cli):
    seed(TEAM_PATH.format("token"), "tok")
    result = cli("interpolate", "-", "--team", TEAM, input='{"b": "((token))", "a": [1, "x-((token))"]}')
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {"b": "tok", "a": [1, "x-tok"]}
    assert result.stdout.index("b:") < result.stdout.index("a:")


def test_interpolate_allow_missing_leaves_undefined_vars(seed, cli):
    seed(TEAM_PATH.format("known"), "known-value")
    text = "a: ((missing.f))\nb: x-((known))-((missing))\n"
    result = cli("interpolate", "-", "--team", TEAM, "--pipeline", PIPELINE, "--allow-missing", input=text)
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {"a": "((missing.f))", "b": "x-known-value-((missing))"}


def test_interpolate_undefined_vars_exit_1_sorted_and_unique(seed, cli):
    seed(TEAM_PATH.format("known"), "known-value")
    text = "a: ((zeta))\nb: [((alpha.f)), ((zeta)), ((known))]\nc: x-((alpha))\n"
    result = cli("interpolate", "-", "--team", TEAM, "--pipeline", PIPELINE, input=text)
    assert_fails_cleanly(result, 1)
    assert result.stderr == "error: undefined vars: alpha, alpha.f, zeta\n"  # as Concourse prints them
    assert "known-value" not in result.stderr


def test_interpolate_non_primitive_in_a_string_exits_1_without_the_value(seed, cli):
    seed(TEAM_PATH.format("db"), {"password": "interp-secret-value"})
    result = cli("interpolate", "-", "--team", TEAM, input="url: x-((db))\n")
    assert_fails_cleanly(result, 1)
    assert "cannot interpolate non-primitive value (map) from var: db" in result.stderr
    assert "interp-secret-value" not in result.stderr


@pytest.mark.parametrize("args, text, needle", [
    ([], "\n".join(f"k{i}: ((v{i}))" for i in range(501)), "more than 500 distinct vars (--max-document-vars)"),
    (["--max-document-nodes", "10"], "[" + ", ".join("a" * 20) + "]", "(YAML aliases included; --max-document-nodes)"),
    (["--max-document-bytes", "1KiB"], "a: " + "b" * 2000, "more than 1,024 bytes (--max-document-bytes)"),
    (["--max-document-depth", "3"], "a: [[[[x]]]]", "nested more than 3 levels (--max-document-depth)"),
])
def test_interpolate_over_a_budget_exits_2_naming_the_flag(cli, proxy, args, text, needle):
    result = cli("interpolate", "-", "--team", TEAM, *args, input=text)
    assert_fails_cleanly(result, 2)
    assert needle in result.stderr
    assert proxy.log == []


def test_interpolate_budget_flags_raise_the_limits(cli, proxy):
    text = "\n".join(f"k{i}: ((v{i}))" for i in range(501))
    result = cli("interpolate", "-", "--team", TEAM, "--max-document-vars", "600", "--allow-missing", input=text)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("text", ["a: [", "a: b: c", "key: 'unterminated", "x: !!python/object/apply:os.system [echo]"])
def test_interpolate_invalid_yaml_exits_2(cli, proxy, text):
    result = cli("interpolate", "-", "--team", TEAM, input=text)
    assert_fails_cleanly(result, 2)
    assert "invalid YAML" in result.stderr
    assert proxy.log == []


def test_interpolate_alias_bomb_exits_2_quickly(cli, proxy):
    lines = ["a0: &a0 [lol]"] + [
        f"a{level}: &a{level} [{', '.join(f'*a{level - 1}' for _ in range(10))}]" for level in range(1, 11)
    ]
    result = cli("interpolate", "-", "--team", TEAM, input="\n".join(lines) + "\n")  # 10**10 nodes if walked
    assert_fails_cleanly(result, 2)
    assert "too large" in result.stderr
    assert proxy.log == []


def test_interpolate_missing_file_exits_2(cli, proxy, tmp_path):
    missing = tmp_path / "no-such-pipeline.yml"
    result = cli("interpolate", str(missing), "--team", TEAM)
    assert_fails_cleanly(result, 2)
    assert "no-such-pipeline.yml" in result.stderr
    assert proxy.log == []


def test_interpolate_not_utf8_exits_2(cli, proxy, tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    result = cli("interpolate", str(path), "--team", TEAM)
    assert_fails_cleanly(result, 2)
    assert "UTF-8" in result.stderr
    result = cli("interpolate", "-", "--team", TEAM, input=b"a: \xff\xfe\n")
    assert_fails_cleanly(result, 2)
    assert "UTF-8" in result.stderr
    assert proxy.log == []


def test_interpolate_a_directory_exits_2(cli, tmp_path):
    result = cli("interpolate", str(tmp_path), "--team", TEAM)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


# --- health ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [True, False], ids=["exists", "not-found"])
def test_health_is_up(seed, cli, proxy, stored):
    if stored:
        seed(HEALTH_ID, "health-secret-value")
    result = cli("health")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == UP
    assert result.stdout == '{"method": "GetSecretValue", "response": {"status": "UP"}}\n'
    assert "health-secret-value" not in result.stdout + result.stderr
    assert get_calls(proxy) == [HEALTH_ID]  # the literal id, not templated


def test_health_denied_exits_1_with_the_error(seed, cli, proxy):
    seed(HEALTH_ID, "health-secret-value")
    policy = json.loads(json.dumps(SEED_POLICY))
    policy["Statement"][1]["Resource"] = ["arn:aws:secretsmanager:*:*:secret:/concourse/*"]
    proxy.set_policy(policy)
    result = cli("health")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert set(answer) == {"error", "method"}
    assert answer["method"] == "GetSecretValue"
    assert "AccessDeniedException" in answer["error"]
    assert "health-secret-value" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_health_is_not_retried(seed, cli, proxy):
    seed(HEALTH_ID, "ok")
    proxy.throttle(count=1)
    result = cli("health", flags=[*AWS_FLAGS, "--secret-retry-attempts", "5"])
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["method"] == "GetSecretValue"
    assert "ThrottlingException" in answer["error"]
    assert len(proxy.calls("GetSecretValue")) == 1


# --- configuration errors: exit 2, the flag named, no AWS call -----------------------------------


def _without(flags: list[str], name: str) -> list[str]:
    i = flags.index(name)
    return flags[:i] + flags[i + 2:]


CONFIG_ERRORS = [
    pytest.param(
        _without(AWS_FLAGS, "--aws-secretsmanager-region"),
        ["--aws-secretsmanager-region", "CONCOURSE_AWS_SECRETSMANAGER_REGION"],
        id="missing-region",
    ),
    pytest.param(
        _without(AWS_FLAGS, "--aws-secretsmanager-secret-key"),
        ["must provide aws secret access key", "--aws-secretsmanager-secret-key"],
        id="access-key-without-secret-key",
    ),
    pytest.param(
        _without(AWS_FLAGS, "--aws-secretsmanager-access-key"),
        ["must provide aws access key id", "--aws-secretsmanager-access-key"],
        id="secret-key-without-access-key",
    ),
    pytest.param(
        [*REGION_FLAGS, "--aws-secretsmanager-session-token", "tok"],
        ["must provide aws access key id"],
        id="session-token-alone",
    ),
    pytest.param([*AWS_FLAGS, "--secret-cache-duration", "5x"], ["--secret-cache-duration", "5x"], id="bad-duration"),
    pytest.param([*AWS_FLAGS, "--secret-retry-interval", "-1s"], ["--secret-retry-interval"], id="negative-duration"),
    pytest.param([*AWS_FLAGS, "--secret-retry-attempts", "-1"], ["--secret-retry-attempts"], id="negative-attempts"),
    pytest.param([*AWS_FLAGS, "--secret-retry-attempts", "0"], ["--secret-retry-attempts"], id="zero-attempts"),
    pytest.param([*AWS_FLAGS, "--secret-retry-attempts", "three"], ["--secret-retry-attempts"], id="word-attempts"),
    pytest.param(
        [*AWS_FLAGS, "--aws-secretsmanager-team-secret-template", ""],
        ["--aws-secretsmanager-team-secret-template", "secret template should not be empty"],
        id="empty-template",
    ),
    pytest.param(
        [*AWS_FLAGS, "--aws-secretsmanager-pipeline-secret-template", "/c/{{.Foo}}/{{.Secret}}"],
        ["--aws-secretsmanager-pipeline-secret-template", "Foo"],
        id="unknown-field",
    ),
    pytest.param(
        [*AWS_FLAGS, "--aws-secretsmanager-team-secret-template", "/concourse/{{.Team}}/fixed"],
        ["--aws-secretsmanager-team-secret-template", "{{.Secret}}"],
        id="template-without-secret",
    ),
    pytest.param(
        [*AWS_FLAGS, "--aws-secretsmanager-pipeline-secret-template", "/p/{{.Pipeline}}/{{.Secret}}"],
        ["--aws-secretsmanager-pipeline-secret-template", "must use {{.Team}}"],
        id="pipeline-template-without-team",
    ),
    pytest.param(
        [*AWS_FLAGS, "--aws-secretsmanager-team-secret-template", "/shared-by-all/{{.Secret}}"],
        ["--aws-secretsmanager-team-secret-template", "must use {{.Team}}"],
        id="team-template-without-team",
    ),
    pytest.param(
        [*AWS_FLAGS, "--aws-secretsmanager-shared-secret-template", "/shared/{{.Secret"],
        ["--aws-secretsmanager-shared-secret-template"],
        id="unclosed-shared-template",
    ),
    pytest.param([*AWS_FLAGS, "--secret-cache-enabled", "--secret-cache-duration-notfound", "1x"],
                 ["--secret-cache-duration-notfound"], id="bad-notfound-duration"),
]


@pytest.mark.parametrize("command", ["lookup", "health"])
@pytest.mark.parametrize(("flags", "expected"), CONFIG_ERRORS)
def test_configuration_errors_exit_2_before_any_aws_call(seed, cli, proxy, command, flags, expected):
    seed(TEAM_PATH.format("token"), "config-secret-value")
    seed(HEALTH_ID, "config-secret-value")
    args = ["lookup", "token", "--team", TEAM] if command == "lookup" else ["health"]
    result = cli(*args, flags=flags)
    assert_fails_cleanly(result, 2)
    for text in expected:
        assert text in result.stderr
    assert SECRET_KEY not in result.stderr
    assert "config-secret-value" not in result.stderr
    assert proxy.log == []


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (["--team", "a/b"], "Invalid value for '--team' / '-t': invalid team name 'a/b'"),
        (["--team", "main", "--pipeline", "p q"], "Invalid value for '--pipeline' / '-p': invalid pipeline name"),
    ],
)
def test_invalid_team_or_pipeline_name_exits_2_naming_the_flag_without_an_aws_call(cli, proxy, scope, expected):
    result = cli("lookup", "token", *scope)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert proxy.log == []


def test_configuration_is_checked_for_interpolate_too(cli, proxy):
    result = cli("interpolate", "-", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-cache-duration", "5x"],
                 input="a: ((token))\n")
    assert_fails_cleanly(result, 2)
    assert "--secret-cache-duration" in result.stderr
    assert proxy.log == []


def test_missing_team_is_a_usage_error(cli, proxy):
    result = cli("lookup", "token")
    assert result.exit_code == 2
    assert "--team" in result.stderr
    assert proxy.log == []


# --- environment variables ---------------------------------------------------------------------


def test_environment_variables_configure_the_cli(seed, cli, proxy):
    seed("/env/main/token", "env-configured-value")
    env = {
        "CONCOURSE_AWS_SECRETSMANAGER_REGION": REGION,
        "CONCOURSE_AWS_SECRETSMANAGER_ACCESS_KEY": "AKIAFROMENVIRONMENT1",
        "CONCOURSE_AWS_SECRETSMANAGER_SECRET_KEY": "env-secret-key",
        "CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE": "/env/{{.Team}}/{{.Secret}}",
        "CONCOURSE_SECRET_RETRY_INTERVAL": "1ms",
    }
    result = cli("lookup", "token", "--team", TEAM, flags=[], env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "env-configured-value\n"
    assert get_calls(proxy) == ["/env/main/token"]
    assert [record.access_key_id for record in proxy.calls("GetSecretValue")] == ["AKIAFROMENVIRONMENT1"]


def test_a_flag_wins_over_its_environment_variable(seed, cli, proxy):
    seed("/flag/main/token", "flag-value")
    seed("/env/main/token", "env-value")
    env = {
        "CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE": "/env/{{.Team}}/{{.Secret}}",
        "CONCOURSE_AWS_SECRETSMANAGER_ACCESS_KEY": "AKIAFROMENVIRONMENT1",
        "CONCOURSE_AWS_SECRETSMANAGER_REGION": "eu-west-1",
    }
    flags = [*AWS_FLAGS, "--aws-secretsmanager-team-secret-template", "/flag/{{.Team}}/{{.Secret}}"]
    result = cli("lookup", "token", "--team", TEAM, flags=flags, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "flag-value\n"
    assert get_calls(proxy) == ["/flag/main/token"]
    assert [record.access_key_id for record in proxy.calls("GetSecretValue")] == [ACCESS_KEY]


def test_retry_attempts_from_the_environment(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "retry-env-secret-value")
    proxy.throttle()
    result = cli("lookup", "token", "--team", TEAM, env={"CONCOURSE_SECRET_RETRY_ATTEMPTS": "2"})
    assert_fails_cleanly(result, 1)
    assert "after 2 attempts" in result.stderr
    assert len(get_calls(proxy)) == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONCOURSE_SECRET_CACHE_DURATION", "abc"),
        ("CONCOURSE_SECRET_RETRY_ATTEMPTS", "-3"),
        ("CONCOURSE_SECRET_CACHE_ENABLED", "maybe"),
        ("CONCOURSE_AWS_SECRETSMANAGER_PIPELINE_SECRET_TEMPLATE", "/c/{{.Team}}/{{.Pipeline}}"),
    ],
)
def test_a_bad_environment_variable_exits_2_naming_it(cli, proxy, name, value):
    result = cli("lookup", "token", "--team", TEAM, env={name: value})
    assert_fails_cleanly(result, 2)
    assert name in result.stderr
    assert proxy.log == []


def test_a_valid_flag_overrides_a_bad_environment_variable(seed, cli):
    seed(TEAM_PATH.format("token"), "v")
    result = cli("lookup", "token", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-cache-duration", "30s"],
                 env={"CONCOURSE_SECRET_CACHE_DURATION": "abc"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "v\n"


# --- retries -----------------------------------------------------------------------------------


def test_throttling_is_retried_up_to_the_attempts_flag(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "throttled-secret-value")
    proxy.throttle()  # every call
    result = cli("lookup", "token", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-retry-attempts", "3"])
    assert_fails_cleanly(result, 1)
    assert "after 3 attempts" in result.stderr
    assert "ThrottlingException" in result.stderr
    assert "/concourse/main/token" in result.stderr
    assert "throttled-secret-value" not in result.stderr
    assert get_calls(proxy) == ["/concourse/main/token"] * 3


def test_a_transient_failure_is_retried_until_it_succeeds(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "recovered-value")
    proxy.fail(status=503, error_type="ServiceUnavailable", count=2)
    result = cli("lookup", "token", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-retry-attempts", "3"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "recovered-value\n"
    assert len(get_calls(proxy)) == 3


def test_one_attempt_means_no_retry(seed, cli, proxy):
    seed(TEAM_PATH.format("token"), "v")
    proxy.throttle()
    result = cli("lookup", "token", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-retry-attempts", "1"])
    assert_fails_cleanly(result, 1)
    assert "attempts" not in result.stderr
    assert len(get_calls(proxy)) == 1


def test_unreachable_endpoint_fails_after_the_attempts(cli):
    result = cli("lookup", "token", "--team", TEAM, flags=[*AWS_FLAGS, "--secret-retry-attempts", "2"],
                 env={"AWS_ENDPOINT_URL_SECRETS_MANAGER": f"http://127.0.0.1:{closed_port()}"})
    assert_fails_cleanly(result, 1)
    assert "reading secret '/concourse/main/token' failed (after 2 attempts)" in result.stderr


# --- --dev: the embedded emulator --------------------------------------------------------------


def test_dev_lookup_uses_the_shipped_example_and_needs_no_region(cli, proxy):
    # The endpoint variable points at the proxy: --dev must not use it.
    result = cli("lookup", "--dev", "api-token", "--team", "main", "--pipeline", "hello", flags=[])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "example-api-token-123\n"
    assert proxy.log == []


def test_dev_from_the_environment_and_own_secrets_file(cli, proxy, tmp_path):
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(
        "/concourse/t/p/token: my-own-token\n/concourse/t/db: {user: me, port: 15432}\n", encoding="utf-8"
    )
    env = {"PIPELINE_SECRETS_DEV": "1"}
    result = cli("interpolate", "-", "--team", "t", "--pipeline", "p", "--dev-secrets", str(secrets),
                 flags=[], env=env, input="a: ((token))\nb: ((db.port))\nc: ((db.user))@x\n")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {"a": "my-own-token", "b": 15432, "c": "me@x"}
    # Only the given file is seeded, not the shipped example.
    result = cli("lookup", "api-token", "--team", "main", "--pipeline", "hello", "--dev-secrets", str(secrets),
                 flags=[], env=env)
    assert_fails_cleanly(result, 1)
    assert result.stderr == "error: undefined vars: api-token\n"
    assert proxy.log == []


@pytest.mark.parametrize(
    "content",
    [b"- /concourse/main/x\n- v\n", b"a: [\n", b"\xff\xfe", None],
    ids=["a-list", "invalid-yaml", "not-utf8", "missing"],
)
def test_malformed_dev_secrets_exit_2_naming_the_flag(cli, tmp_path, content):
    secrets = tmp_path / "secrets.yml"
    if content is not None:
        secrets.write_bytes(content)
    result = cli("lookup", "--dev", "x", "--team", "main", "--dev-secrets", str(secrets), flags=[])
    assert_fails_cleanly(result, 2)
    assert "--dev-secrets" in result.stderr


def test_shipped_examples_exist():
    assert default_secrets_file().is_file()
    assert example_pipeline_file().is_file()


# --- the real console script, in a subprocess ----------------------------------------------------


def _run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    environ.pop("PIPELINE_SECRETS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline_secrets", *args],
        env=environ, capture_output=True, text=True, timeout=timeout,
    )


def test_script_help():
    result = _run_script("--help")
    assert result.returncode == 0, result.stderr
    for command in ("lookup", "interpolate", "health"):
        assert command in result.stdout
    assert result.stderr == ""


def test_script_exit_statuses(seed, proxy):
    seed(TEAM_PATH.format("token"), "script-secret-value")
    endpoint = {"AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url}
    # 0: found.
    found = _run_script("lookup", "token", "--team", TEAM, *AWS_FLAGS, env=endpoint)
    assert found.returncode == 0, found.stderr
    assert found.stdout == "script-secret-value\n"
    # 1: access denied, with the path named and neither a traceback nor the value.
    proxy.set_policy(restricted_policy("other-team"))
    denied = _run_script("lookup", "token", "--team", TEAM, *AWS_FLAGS, env=endpoint)
    assert denied.returncode == 1
    assert "AccessDeniedException" in denied.stderr and "/concourse/main/token" in denied.stderr
    assert "Traceback" not in denied.stderr
    assert "script-secret-value" not in denied.stderr
    assert denied.stdout == ""


def test_script_configuration_error_exits_2(proxy):
    result = _run_script("lookup", "token", "--team", TEAM, *_without(AWS_FLAGS, "--aws-secretsmanager-region"),
                         env={"AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url})
    assert result.returncode == 2
    assert "--aws-secretsmanager-region" in result.stderr
    assert "Traceback" not in result.stderr
    assert proxy.log == []


def test_script_unreachable_endpoint_exits_1():
    result = _run_script(
        "health", *AWS_FLAGS, env={"AWS_ENDPOINT_URL_SECRETS_MANAGER": f"http://127.0.0.1:{closed_port()}"},
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["method"] == "GetSecretValue"
    assert "error" in json.loads(result.stdout)
    assert "Traceback" not in result.stderr


def test_script_dev_interpolates_the_shipped_example_pipeline():
    result = _run_script("interpolate", "--dev", "--team", "main", "--pipeline", "hello", str(example_pipeline_file()))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert find_vars(result.stdout) == []  # every placeholder resolved; the shell arithmetic stays
    assert "($((REPLICAS - 1)) spare)" in result.stdout
    document: Any = yaml.safe_load(result.stdout)
    jobs = {job["name"]: job for job in document["jobs"]}
    deploy = next(step for step in jobs["build-and-deploy"]["plan"] if step.get("task") == "deploy")
    params = deploy["config"]["params"]
    assert params["SLACK_CHANNEL"] == "#hello-deploys"  # pipeline level wins over team's #ci-main
    assert params["REPLICAS"] == "3"
    assert params["VERSION"] == "1.4.2"  # from the pipeline's own var source
    unit = next(step for step in jobs["test"]["plan"] if step.get("task") == "unit-tests")
    assert unit["config"]["params"]["DATABASE_URL"] == (
        "postgres://hello_app:example-db-password@db.internal:5432/hello"
    )
    assert unit["config"]["params"]["API_TOKEN"] == "example-api-token-123"
    resources = {resource["name"]: resource for resource in document["resources"]}
    assert resources["app-image"]["source"]["repository"] == "registry.example.com/hello/app"
    assert resources["app-source"]["source"]["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert list(document) == ["var_sources", "resources", "jobs"]
