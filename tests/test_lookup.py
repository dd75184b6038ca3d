"""The lookup rules of spec section 2, end to end: boto3 -> fault proxy -> moto server over HTTP."""

from __future__ import annotations

import pytest
from conftest import SEED_POLICY, get_calls, read_ids, restricted_policy

from pipeline_secrets import (
    FieldError,
    LookupFailed,
    UndefinedVarsError,
    VarNameError,
    VarSourceError,
    VarSyntaxError,
)

TEAM, PIPELINE = "main", "deploy"
PIPELINE_PATH = "/concourse/main/deploy/{}"
TEAM_PATH = "/concourse/main/{}"


def test_pipeline_path_wins_and_is_asked_first(seed, connect, proxy):
    seed(PIPELINE_PATH.format("token"), "pipeline-value")
    seed(TEAM_PATH.format("token"), "team-value")
    manager = connect()
    assert manager.lookup("token", team=TEAM, pipeline=PIPELINE) == "pipeline-value"
    assert get_calls(proxy) == ["/concourse/main/deploy/token"]


def test_team_path_is_the_fallback(seed, connect, proxy):
    seed(TEAM_PATH.format("token"), "team-value")
    assert connect().lookup("token", team=TEAM, pipeline=PIPELINE) == "team-value"
    assert get_calls(proxy) == ["/concourse/main/deploy/token", "/concourse/main/token"]


def test_shared_path_is_asked_last_when_configured(seed, connect, proxy):
    seed("/concourse/token", "shared-value")
    manager = connect(shared_secret_template="/concourse/{{.Secret}}")
    assert manager.lookup("token", team=TEAM, pipeline=PIPELINE) == "shared-value"
    assert get_calls(proxy) == ["/concourse/main/deploy/token", "/concourse/main/token", "/concourse/token"]


def test_no_shared_lookup_by_default(seed, connect, proxy):
    seed("/concourse/token", "shared-value")
    with pytest.raises(UndefinedVarsError, match="^undefined vars: token$"):
        connect().lookup("token", team=TEAM, pipeline=PIPELINE)
    assert get_calls(proxy) == ["/concourse/main/deploy/token", "/concourse/main/token"]


def test_one_off_lookup_asks_the_team_path_only(seed, connect, proxy):
    seed(PIPELINE_PATH.format("token"), "pipeline-value")
    seed(TEAM_PATH.format("token"), "team-value")
    assert connect().lookup("token", team=TEAM) == "team-value"
    assert get_calls(proxy) == ["/concourse/main/token"]


def test_denied_pipeline_path_fails_even_when_the_team_secret_exists(seed, connect, proxy):
    """The seed's warning: no fall-through past an AccessDenied."""
    seed(TEAM_PATH.format("token"), "team-value")
    policy = restricted_policy("main")
    policy["Statement"].append({
        "Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
        "Resource": "arn:aws:secretsmanager:*:*:secret:/concourse/main/deploy/*",
    })
    proxy.set_policy(policy)
    with pytest.raises(LookupFailed) as failure:
        connect().lookup("token", team=TEAM, pipeline=PIPELINE)
    assert failure.value.kind == "access-denied"
    assert failure.value.path == "/concourse/main/deploy/token"
    assert "AccessDeniedException" in str(failure.value)
    assert "/concourse/main/deploy/token" in str(failure.value)
    assert get_calls(proxy) == ["/concourse/main/deploy/token"]  # not retried, no fall-through


def test_seed_policy_allows_lookups_and_team_restriction_denies_other_teams(seed, connect, proxy):
    seed("/concourse/main/token", "main-value")
    seed("/concourse/other/token", "other-value")
    proxy.set_policy(SEED_POLICY)
    manager = connect()
    assert manager.lookup("token", team="main", pipeline=PIPELINE) == "main-value"
    assert manager.lookup("token", team="other", pipeline=PIPELINE) == "other-value"
    proxy.set_policy(restricted_policy("main"))
    manager = connect()
    assert manager.lookup("token", team="main", pipeline=PIPELINE) == "main-value"
    with pytest.raises(LookupFailed, match="AccessDeniedException"):
        manager.lookup("token", team="other", pipeline=PIPELINE)


def test_scheduled_for_deletion_counts_as_not_found(seed, aws, connect, proxy):
    seed(PIPELINE_PATH.format("token"), "being-deleted")
    aws.delete_secret(SecretId=PIPELINE_PATH.format("token"), RecoveryWindowInDays=7)
    seed(TEAM_PATH.format("token"), "team-value")
    assert connect().lookup("token", team=TEAM, pipeline=PIPELINE) == "team-value"
    assert len(get_calls(proxy)) == 2


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ('{"user": "ci", "port": 5432}', {"user": "ci", "port": 5432}),
        ("plain text", "plain text"),
        ("123", "123"),  # JSON scalars stay strings
        ('["a", "b"]', '["a", "b"]'),
        ('"quoted"', '"quoted"'),
        ("null", "null"),
        ('{"big": 123456789012345678901234567890}', {"big": 123456789012345678901234567890}),
        (b'{"user": "ci"}', {"user": "ci"}),
    ],
)
def test_secret_values_are_decoded_as_the_spec_says(seed, connect, stored, expected):
    seed(TEAM_PATH.format("value"), stored)
    assert connect().lookup("value", team=TEAM) == expected


@pytest.mark.parametrize("binary", [b"not-json-binary-secret", b'["a"]', b"\xff\xfe\x00binary"])
def test_binary_secret_that_is_not_a_json_object_fails_clearly(seed, connect, binary):
    seed(TEAM_PATH.format("blob"), binary)
    with pytest.raises(LookupFailed) as failure:
        connect().lookup("blob", team=TEAM)
    assert failure.value.kind == "invalid-value"
    assert "binary and not a JSON object" in str(failure.value)
    assert binary.decode("latin-1") not in str(failure.value)


def test_fields_walk_into_json_objects(seed, connect):
    seed(TEAM_PATH.format("db"), {"creds": {"user": "ci", "password": "hunter2-secret"}})
    manager = connect()
    assert manager.lookup("db.creds.user", team=TEAM) == "ci"
    assert manager.lookup('db."creds".password', team=TEAM) == "hunter2-secret"
    with pytest.raises(FieldError, match=r"^missing field 'nope' in var: db\.creds\.nope$"):
        manager.lookup("db.creds.nope", team=TEAM)
    with pytest.raises(FieldError) as failure:
        manager.lookup("db.creds.password.x", team=TEAM)
    assert str(failure.value) == (
        "cannot access field 'x' of non-map value ('str') from var: db.creds.password.x"
    )
    assert "hunter2-secret" not in str(failure.value)


def test_lookup_returns_a_copy_that_cannot_corrupt_the_cache(seed, connect):
    seed(TEAM_PATH.format("db"), {"user": "ci"})
    manager = connect()
    manager.lookup("db", team=TEAM)["user"] = "changed"
    assert manager.lookup("db", team=TEAM) == {"user": "ci"}


def test_a_source_is_never_ignored(seed, connect, proxy):
    # Issue 10: a source used to be ignored (the var read from the cluster); only a document's
    # var_sources can declare one, so a lookup with a source is an error, with no AWS call.
    seed(TEAM_PATH.format("token"), "v")
    with pytest.raises(VarSourceError, match=r"^missing source 'vault' in var: vault:token$"):
        connect().lookup("vault:token", team=TEAM)
    with pytest.raises(VarSourceError, match="build-local"):
        connect().lookup(".:token", team=TEAM)
    with pytest.raises(VarSyntaxError, match="source must not be quoted"):
        connect().lookup('"vault":token', team=TEAM)
    assert proxy.log == []


def test_an_empty_pipeline_is_a_one_off_build(seed, connect, proxy):
    seed(TEAM_PATH.format("token"), "team-level")
    manager = connect()
    assert manager.lookup("token", team=TEAM, pipeline="") == "team-level"
    assert manager.interpolate({"t": "((token))"}, team=TEAM, pipeline="") == {"t": "team-level"}
    assert get_calls(proxy) == [TEAM_PATH.format("token")]  # no pipeline path was asked


@pytest.mark.parametrize(
    ("var", "pipeline", "message"),
    [
        ("other-pipeline/x", PIPELINE, "pipeline 'other-pipeline' of team 'main'"),
        ("deploy/x", None, "pipeline 'deploy' of team 'main'"),
        ("pässwörd", PIPELINE, "characters Secrets Manager does not allow"),
        ("x" * 520, PIPELINE, "longer than Secrets Manager's 512 characters"),
    ],
)
def test_refused_names_make_no_aws_call(connect, proxy, var, pipeline, message):
    with pytest.raises(VarNameError, match=message):
        connect().lookup(var, team=TEAM, pipeline=pipeline)
    assert proxy.log == []


def test_shared_template_cannot_reach_another_teams_secret(seed, connect, proxy):
    seed("/concourse/other-team/token", "other-teams-secret")
    manager = connect(shared_secret_template="/concourse/{{.Secret}}")
    # Run from a pipeline named like the other team, so that only the shared path escapes.
    with pytest.raises(VarNameError, match="its shared path '/concourse/other-team/token' is the path of team 'other-team'"):
        manager.lookup("other-team/token", team=TEAM, pipeline="other-team")
    assert proxy.log == []


def test_own_pipeline_path_through_team_level_is_allowed(seed, connect):
    seed("/concourse/main/deploy/x", "own")
    assert connect().lookup("deploy/x", team=TEAM, pipeline=PIPELINE) == "own"


def test_custom_templates(seed, connect, proxy):
    seed("/ci/main-deploy/token", "custom")
    manager = connect(
        pipeline_secret_template="/ci/{{.Team}}-{{.Pipeline}}/{{.Secret}}",
        team_secret_template="/ci/teams/{{ .Team }}/{{.Secret}}",
    )
    assert manager.lookup("token", team=TEAM, pipeline=PIPELINE) == "custom"
    assert manager.lookup_paths(team=TEAM, pipeline=PIPELINE) == [
        "/ci/main-deploy/{{.Secret}}", "/ci/teams/main/{{.Secret}}"
    ]
    assert get_calls(proxy) == ["/ci/main-deploy/token"]


def test_custom_templates_that_collide_are_refused_without_an_aws_call(seed, connect, proxy):
    # '/ci/main-deploy/token' is pipeline deploy's secret of team main, and also the team-level
    # secret 'token' of a team named 'main-deploy': whoever reads it may read the other's.
    seed("/ci/main-deploy/token", "custom")
    manager = connect(
        pipeline_secret_template="/ci/{{.Team}}-{{.Pipeline}}/{{.Secret}}",
        team_secret_template="/ci/{{ .Team }}/{{.Secret}}",
    )
    with pytest.raises(VarNameError, match="is the path of team 'main-deploy', secret 'token'"):
        manager.lookup("token", team=TEAM, pipeline=PIPELINE)
    assert proxy.log == []


def test_interpolate_reads_each_path_once_and_keeps_types(seed, connect, proxy):
    seed(PIPELINE_PATH.format("db"), {"user": "ci", "password": "pw-value", "port": 5432})
    seed(TEAM_PATH.format("token"), "tok-value")
    seed(TEAM_PATH.format("flags"), {"debug": True})
    document = {
        "url": "postgres://((db.user)):((db.password))@host:((db.port))/x",
        "port": "((db.port))",
        "db": "((db))",
        "((token))": ["((token))", "prefix-((token))", "((flags.debug))", "debug=((flags.debug))"],
    }
    result = connect().interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert result == {
        "url": "postgres://ci:pw-value@host:5432/x",
        "port": 5432,
        "db": {"user": "ci", "password": "pw-value", "port": 5432},
        "tok-value": ["tok-value", "prefix-tok-value", True, "debug=true"],
    }
    assert list(result) == ["url", "port", "db", "tok-value"]
    assert sorted(read_ids(proxy)) == sorted([
        "/concourse/main/deploy/db",
        "/concourse/main/deploy/token", "/concourse/main/token",
        "/concourse/main/deploy/flags", "/concourse/main/flags",
    ])


def test_interpolate_lists_undefined_vars_sorted_and_unique(seed, connect):
    seed(TEAM_PATH.format("known"), "v")
    document = {"a": "((zeta))", "b": ["((alpha.f))", "((zeta))", "((known))"], "c": "x-((alpha))"}
    with pytest.raises(UndefinedVarsError) as failure:
        connect().interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert str(failure.value) == "undefined vars: alpha, alpha.f, zeta"  # as Concourse prints them
    assert failure.value.names == ("alpha", "alpha.f", "zeta")


def test_interpolate_allow_missing_leaves_vars_as_written(seed, connect):
    seed(TEAM_PATH.format("known"), "v")
    document = {"a": "((missing.f))", "b": "x-((known))-((missing))"}
    result = connect().interpolate(document, team=TEAM, pipeline=PIPELINE, allow_missing=True)
    assert result == {"a": "((missing.f))", "b": "x-v-((missing))"}


def test_interpolate_checks_every_var_before_any_call(connect, proxy):
    document = {"a": "((fine))", "b": "((bad..field))"}
    with pytest.raises(VarSyntaxError, match="empty field"):
        connect().interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert proxy.log == []


def test_non_primitive_inside_a_string_fails_without_the_value(seed, connect):
    seed(TEAM_PATH.format("db"), {"password": "do-not-print-me"})
    with pytest.raises(FieldError) as failure:
        connect().interpolate({"x": "url=((db))"}, team=TEAM)
    assert str(failure.value) == "cannot interpolate non-primitive value (map) from var: db"


# --- values nothing downstream could write out (issue 8, the attacker's review) -------------------


@pytest.mark.parametrize("stored, needle", [
    ('{"a": "\\ud800"}', "not valid Unicode"),
    ("plain \ud800 text", "not valid Unicode"),
    ('{"a": ' * 100 + "1" + "}" * 100, "nests deeper than 64 levels"),
])
def test_values_that_cannot_be_written_fail_as_invalid_values(seed, connect, stored, needle):
    seed(TEAM_PATH.format("odd"), stored)
    with pytest.raises(LookupFailed) as failure:
        connect().lookup("odd", team=TEAM)
    assert failure.value.kind == "invalid-value" and needle in str(failure.value)


def test_json_with_nan_is_not_json_so_it_stays_text(seed, connect):
    seed(TEAM_PATH.format("nan"), '{"a": NaN}')
    assert connect().lookup("nan", team=TEAM) == '{"a": NaN}'
