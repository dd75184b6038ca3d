"""``put``: the value lands at exactly the path a lookup reads, round-trips through ``lookup``, and
never appears in output or errors."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import SEED_POLICY
from ops_support import AWS_FLAGS, TEMPLATE_FLAGS, Cli, assert_fails_cleanly

TEAM, PIPELINE = "main", "deploy"
SECRET = "pa$$ word: {not json}"


@pytest.fixture
def cli(proxy):
    return Cli(proxy)


def stored(aws, path: str) -> str:
    return aws.get_secret_value(SecretId=path)["SecretString"]


def assert_no_value(result, *values: str) -> None:
    for value in values:
        assert value not in result.stdout + result.stderr


def test_put_then_lookup_round_trips_plaintext(cli, aws, proxy):
    result = cli("put", "api-token", "--team", TEAM, "--pipeline", PIPELINE, "--value-stdin", input=SECRET + "\n")
    assert result.exit_code == 0, result.stderr
    path_line, arn_line = result.stdout.splitlines()
    assert path_line == "path: /concourse/main/deploy/api-token"
    assert arn_line.startswith("arn: arn:aws:secretsmanager:us-east-1:")
    assert arn_line.split(":secret:")[1].startswith("/concourse/main/deploy/api-token-")
    assert_no_value(result, SECRET)
    assert stored(aws, "/concourse/main/deploy/api-token") == SECRET  # one trailing newline dropped
    assert [call.secret_ids for call in proxy.calls("CreateSecret")] == [("/concourse/main/deploy/api-token",)]
    lookup = cli("lookup", "api-token", "--team", TEAM, "--pipeline", PIPELINE)
    assert lookup.stdout == SECRET + "\n"


def test_put_json_then_lookup_fields(cli, aws, tmp_path):
    document = '{"user": "ci", "password": "json-secret-value", "port": 5432}'
    (tmp_path / "db.json").write_text(document, encoding="utf-8")
    result = cli("put", "db", "--team", TEAM, "--json", "--from-file", str(tmp_path / "db.json"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "path: /concourse/main/db"  # no --pipeline: team level
    assert result.stderr == ""
    assert_no_value(result, "json-secret-value")
    assert stored(aws, "/concourse/main/db") == document
    assert cli("lookup", "db.password", "--team", TEAM, "--pipeline", PIPELINE).stdout == "json-secret-value\n"
    assert json.loads(cli("lookup", "db", "--team", TEAM).stdout)["port"] == 5432


def test_put_updates_an_existing_secret_at_the_same_arn(cli, seed, aws, proxy):
    seed("/concourse/main/token", "old-value")
    first_arn = aws.describe_secret(SecretId="/concourse/main/token")["ARN"]
    result = cli("put", "token", "--team", TEAM, "--value-stdin", input="new-value")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"arn: {first_arn}"
    assert stored(aws, "/concourse/main/token") == "new-value"
    assert len(proxy.calls("PutSecretValue")) == 1


def test_from_file_stores_the_file_exactly(cli, aws, tmp_path):
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-material\n-----END OPENSSH PRIVATE KEY-----\n"
    (tmp_path / "id").write_text(key, encoding="utf-8")
    result = cli("put", "git-key", "--team", TEAM, "--pipeline", PIPELINE, "--from-file", str(tmp_path / "id"))
    assert result.exit_code == 0, result.stderr
    assert stored(aws, "/concourse/main/deploy/git-key") == key  # trailing newline kept
    assert_no_value(result, "key-material")


@pytest.mark.parametrize(
    ("args", "flags", "path"),
    [
        (["--pipeline", PIPELINE], [], "/concourse/main/deploy/x"),
        ([], [], "/concourse/main/x"),
        (["--pipeline", PIPELINE, "--team-level"], [], "/concourse/main/x"),
        (["--shared"], [TEMPLATE_FLAGS["shared"], "/shared/{{.Secret}}"], "/shared/x"),
    ],
    ids=["pipeline", "team-by-default", "team-level", "shared"],
)
def test_the_level_chooses_the_templated_path(cli, aws, args, flags, path):
    result = cli("put", "x", "--team", TEAM, *args, "--value-stdin", input="v", flags=[*AWS_FLAGS, *flags])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"path: {path}"
    assert stored(aws, path) == "v"


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["other-pipeline/x", "--pipeline", PIPELINE, "--team-level"], "v", "refused"),
        (["deploy/x"], "v", "is the path of pipeline 'deploy'"),
        (["db.password"], "v", "put stores whole secrets"),
        (["src:db"], "v", "var source"),
        (["bad name!"], "v", "invalid var"),
        (["x", "--shared"], "v", "no shared secret template is configured"),
        (["x", "--shared", "--team-level"], "v", "exclude each other"),
        (["x", "--json"], '{"password": "json-secret-value",}', "not valid JSON (Expecting property name"),
        (["x", "--json"], '["json-secret-value"]', "a JSON list, not an object"),
        (["x"], "", "the value is empty"),
        (["x"], "v" * 65537, "at most 65536"),
    ],
)
def test_bad_input_exits_2_without_writing_or_echoing_the_value(cli, proxy, args, stdin, expected):
    result = cli("put", *args, "--team", TEAM, "--value-stdin", input=stdin)
    assert_fails_cleanly(result, 2)
    assert result.stdout == ""
    assert expected in result.stderr
    assert_no_value(result, "json-secret-value")
    assert [call for call in proxy.log if call.operation in ("CreateSecret", "PutSecretValue")] == []


@pytest.mark.parametrize("source", [[], ["--value-stdin", "--from-file", "FILE"]], ids=["none", "both"])
def test_exactly_one_value_source(cli, proxy, tmp_path, source):
    (tmp_path / "v").write_text("v")
    result = cli("put", "x", "--team", TEAM, *[str(tmp_path / "v") if a == "FILE" else a for a in source])
    assert_fails_cleanly(result, 2)
    assert "exactly one of --from-file FILE or --value-stdin" in result.stderr


def test_a_file_that_is_not_utf8_exits_2(cli, proxy, tmp_path):
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00binary")
    assert_fails_cleanly(cli("put", "x", "--team", TEAM, "--from-file", str(tmp_path / "bin")), 2)
    assert proxy.log == []


def test_plaintext_that_looks_like_json_gets_a_note(cli):
    broken = cli("put", "a", "--team", TEAM, "--value-stdin", input='{"user": "looks-like-json-value"')
    assert broken.exit_code == 0
    assert "note: the value starts with '{' but is not valid JSON" in broken.stderr
    mapping = cli("put", "b", "--team", TEAM, "--value-stdin", input='{"user": "looks-like-json-value"}')
    assert "note: the value is a JSON object: lookups read it as a mapping of fields" in mapping.stderr
    assert_no_value(broken, "looks-like-json-value")
    assert_no_value(mapping, "looks-like-json-value")


def test_access_denied_says_which_actions_on_which_arn(cli, proxy):
    proxy.set_policy(SEED_POLICY)  # the lookups' policy grants no writes
    result = cli("put", "x", "--team", TEAM, "--pipeline", PIPELINE, "--value-stdin", input="denied-secret-value")
    assert_fails_cleanly(result, 1)
    assert result.stderr.startswith("error: storing secret '/concourse/main/deploy/x' failed: AccessDeniedException")
    assert ("allow secretsmanager:CreateSecret and secretsmanager:PutSecretValue on "
            "arn:aws:secretsmanager:us-east-1:*:secret:/concourse/main/deploy/x-??????") in result.stderr
    assert_no_value(result, "denied-secret-value")


def test_a_secret_scheduled_for_deletion_says_how_to_restore_it(cli, seed, proxy):
    seed("/concourse/main/x", "old")
    proxy.fail(status=400, error_type="InvalidRequestException", operations="PutSecretValue",
               message="You can't perform this operation on the secret because it was marked for deletion.")
    result = cli("put", "x", "--team", TEAM, "--value-stdin", input="v")
    assert_fails_cleanly(result, 1)
    assert "restore-secret --secret-id '/concourse/main/x'" in result.stderr


def test_put_and_check_access_keep_the_value_out_of_debug_logs(cli, caplog):
    caplog.set_level(logging.DEBUG)
    result = cli("put", "token", "--team", TEAM, "--value-stdin", input="logged-secret-value")
    assert result.exit_code == 0, result.stderr
    assert cli("check-access", "token", "--team", TEAM).exit_code == 0
    assert any(r.name.startswith("botocore") for r in caplog.records), "debug logging was not on"
    assert "logged-secret-value" not in caplog.text
