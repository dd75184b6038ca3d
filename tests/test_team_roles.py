"""Per-team IAM roles (docs/identities.md), over the wire: our boto3 clients -> fault proxy ->
moto's STS and Secrets Manager. The proxy maps each granted session's temporary key to its role's
policy (ours, from ``iam-policy --role``), so IAM is evaluated per team as AWS would."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import ACCESS_KEY
from ops_support import AWS_FLAGS, Cli, assert_fails_cleanly
from support.faultproxy import FaultProxy
from support.webserver import PASSWORDS, aws_flags, clean_environ, start_web_server, user_flags

import pipeline_secrets
from pipeline_secrets.errors import LookupFailed
from pipeline_secrets.pure.templates import LookupRules
from pipeline_secrets.tools.policy import role_policies

ACCOUNT = "123456789012"
TEMPLATE = f"arn:aws:iam::{ACCOUNT}:role/ci-{{{{.Team}}}}"


def role_arn(team: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/ci-{team}"


def team_policy(team: str) -> dict:
    """The permission policy ``iam-policy --team TEAM --role --batch`` prints."""
    from pipeline_secrets.config import resolve_settings

    rules = resolve_settings({}, {}, require_region=False).rules
    return role_policies(rules, team=team, role_template=TEMPLATE, batch=True)["permission_policy"]


@pytest.fixture
def roles(proxy: FaultProxy) -> FaultProxy:
    for team in ("alpha", "beta"):
        proxy.add_role(role_arn(team), team_policy(team))
    return proxy


@pytest.fixture
def seeded(seed) -> dict[str, str]:
    values = {"/concourse/alpha/db": "alpha-db-Zq1", "/concourse/beta/db": "beta-db-Wr2",
              "/concourse/alpha/deploy/key": "alpha-key-Pp3"}
    for path, value in values.items():
        seed(path, value)
    return values


def keys_by_team(proxy: FaultProxy) -> dict[str, set[str]]:
    return {session.tags["Team"]: {session.access_key_id} for session in proxy.sessions}


def secret_calls(proxy: FaultProxy) -> list:
    return [r for r in proxy.log if r.operation in ("GetSecretValue", "BatchGetSecretValue")]


def test_each_team_reads_only_with_its_own_roles_key(connect, roles, seeded):
    manager = connect(team_role_template=TEMPLATE)
    assert manager.lookup("db", team="alpha") == "alpha-db-Zq1"
    assert manager.lookup("key", team="alpha", pipeline="deploy") == "alpha-key-Pp3"
    assert manager.lookup("db", team="beta") == "beta-db-Wr2"
    keys = keys_by_team(roles)
    assert set(keys) == {"alpha", "beta"} and keys["alpha"] != keys["beta"]
    for record in secret_calls(roles):
        team = next(team for team, key in keys.items() if record.access_key_id in key)
        assert all(path.startswith(f"/concourse/{team}/") for path in record.secret_ids)
    assert not any(r.access_key_id == ACCESS_KEY for r in secret_calls(roles))
    sessions = roles.sessions
    assert [s.session_name.split(".")[0] for s in sessions] == ["pipeline-secrets@alpha", "pipeline-secrets@beta"]
    assert all(s.caller_key == ACCESS_KEY and s.role_arn == role_arn(s.tags["Team"]) for s in sessions)
    assert len(roles.calls("AssumeRole")) == 2  # one session per team, reused


def test_the_node_never_reads_a_secret_as_itself(connect, roles, seeded):
    manager = connect(team_role_template=TEMPLATE)
    manager.lookup("db", team="alpha")
    manager.interpolate({"a": "((db))"}, team="beta")
    node_key = roles.calls("AssumeRole")[0].access_key_id
    assert node_key == ACCESS_KEY and all(r.access_key_id != node_key for r in secret_calls(roles))
    assert manager.health()["response"]["status"] == "UP"  # the health check is the node's own
    assert roles.calls("GetSecretValue", "__concourse-health-check")[0].access_key_id == node_key


def test_iam_holds_alone_when_our_scope_check_is_off(connect, roles, seed, monkeypatch):
    """The second wall: a shared template that reads team paths (refused by our check), with that
    check switched off in this test build: alpha's role is denied beta's secret by IAM."""
    seed("/concourse/beta/token", "beta-token-Kk9")
    manager = connect(team_role_template=TEMPLATE, shared_secret_template="/concourse/{{.Secret}}")
    with pytest.raises(pipeline_secrets.VarNameError):
        manager.lookup("beta/token", team="alpha")  # the first wall
    monkeypatch.setattr(LookupRules, "foreign_owner", lambda self, path, team, pipeline: None)
    with pytest.raises(LookupFailed) as failure:
        manager.lookup("beta/token", team="alpha")
    assert failure.value.kind == "access-denied" and "beta-token-Kk9" not in str(failure.value)
    denied = [r for r in secret_calls(roles) if "/concourse/beta/token" in r.secret_ids]
    alpha_key = keys_by_team(roles)["alpha"]
    assert denied and all(r.access_key_id in alpha_key for r in denied)
    assert any(r.error_type == "AccessDeniedException" or r.status == 200 for r in denied)


def test_the_cache_never_serves_one_roles_answer_to_another(connect, proxy, seed):
    """A shared secret alpha's role may read and beta's may not: alpha's cached answer is not
    beta's."""
    seed("/shared/registry", "registry-pw-Uu4")
    alpha = team_policy("alpha")
    alpha["Statement"][0]["Resource"].append("arn:aws:secretsmanager:*:*:secret:/shared/*")
    proxy.add_role(role_arn("alpha"), alpha)
    proxy.add_role(role_arn("beta"), team_policy("beta"))
    manager = connect(team_role_template=TEMPLATE, shared_secret_template="/shared/{{.Secret}}")
    assert manager.lookup("registry", team="alpha") == "registry-pw-Uu4"
    assert manager.lookup("registry", team="alpha") == "registry-pw-Uu4"  # cached
    reads = len(secret_calls(proxy))
    with pytest.raises(LookupFailed) as failure:
        manager.lookup("registry", team="beta")
    assert failure.value.kind == "access-denied"
    assert len(secret_calls(proxy)) > reads  # beta asked AWS, as beta


def test_64_concurrent_first_lookups_of_a_team_make_one_assume_role(connect, roles, seeded):
    roles.add_latency(0.3, operations="AssumeRole")
    manager = connect(team_role_template=TEMPLATE, cache_enabled=False)
    with ThreadPoolExecutor(64) as pool:
        values = list(pool.map(lambda _: manager.lookup("db", team="alpha"), range(64)))
    assert values == ["alpha-db-Zq1"] * 64
    assert len(roles.calls("AssumeRole")) == 1


def test_sessions_are_renewed_before_they_expire(connect, roles, seeded):
    roles.sts_lifetime(3.0)  # the proxy shortens each session, and refuses its key once expired
    manager = connect(team_role_template=TEMPLATE, cache_enabled=False)
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        assert manager.lookup("db", team="alpha") == "alpha-db-Zq1"
        time.sleep(0.05)
    assert len(roles.calls("AssumeRole")) >= 3
    assert not [r for r in roles.log if r.fault == "expired"]  # no call was ever signed with an expired key


def test_concurrent_lookups_share_a_failed_assume_role(connect, roles, seeded):
    roles.add_latency(0.3, operations="AssumeRole")
    manager = connect(team_role_template=TEMPLATE, cache_enabled=False)

    def lookup(_: int) -> str:
        try:
            manager.lookup("db", team="gamma")  # no such role
        except LookupFailed as exc:
            return exc.kind
        return "found"

    with ThreadPoolExecutor(32) as pool:
        kinds = set(pool.map(lookup, range(32)))
    assert kinds == {"assume-role"}
    assert len(roles.calls("AssumeRole")) <= 2  # shared, not one per caller


@pytest.mark.parametrize("fault, kind", [
    ("missing", "assume-role"), ("external-id", "assume-role"), ("throttled", "throttled"),
])
def test_assume_role_failures_are_typed_and_name_the_role(connect, proxy, seeded, fault, kind):
    proxy.add_role(role_arn("alpha"), team_policy("alpha"), external_id="alpha-ext-1")
    if fault == "throttled":
        proxy.throttle(operations="AssumeRole")
    options = {"team_role_template": TEMPLATE, "retry_attempts": 2}
    team = "beta" if fault == "missing" else "alpha"
    if fault != "external-id":
        options["team_roles"] = {"alpha": pipeline_secrets.TeamRole(role_arn("alpha"), "alpha-ext-1")}
    manager = connect(**options)
    with pytest.raises(LookupFailed) as failure:
        manager.lookup("db", team=team)
    assert failure.value.kind == kind
    assert role_arn(team) in str(failure.value) and f"team '{team}'" in str(failure.value)
    assert "alpha-db-Zq1" not in str(failure.value) and "alpha-ext-1" not in str(failure.value)
    assert not secret_calls(proxy)


def test_a_team_the_template_cannot_name_is_refused_without_a_call(connect, roles):
    manager = connect(team_role_template=TEMPLATE)
    with pytest.raises(LookupFailed) as failure:
        manager.lookup("db", team="a" * 70)  # a role name has at most 64 characters
    assert failure.value.kind == "assume-role" and "cannot be part of a role name" in str(failure.value)
    assert not roles.log


def test_check_access_probes_with_the_teams_role(roles, seeded):
    result = Cli(roles)("check-access", "db", "--team", "alpha", "--aws-secretsmanager-team-role-template",
                        TEMPLATE, env={"AWS_ENDPOINT_URL_STS": roles.url})
    assert result.exit_code == 0, result.stderr
    alpha_key = keys_by_team(roles)["alpha"]
    assert secret_calls(roles) and all(r.access_key_id in alpha_key for r in secret_calls(roles))


def test_cli_lookup_exits_1_when_assume_role_is_denied(roles, seeded):
    result = Cli(roles)("lookup", "db", "--team", "beta", flags=[
        *AWS_FLAGS, "--aws-secretsmanager-team-role-template", f"arn:aws:iam::{ACCOUNT}:role/other-{{{{.Team}}}}"],
        env={"AWS_ENDPOINT_URL_STS": roles.url})
    assert_fails_cleanly(result, 1)
    assert "AssumeRole of arn:aws:iam::123456789012:role/other-beta" in result.stderr


def test_cli_lookup_exits_1_when_sts_is_unreachable(roles, seeded):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = Cli(roles)("lookup", "db", "--team", "alpha", flags=[
        *AWS_FLAGS, "--aws-secretsmanager-team-role-template", TEMPLATE, "--secret-retry-attempts", "2"],
        env={"AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{port}"})
    assert_fails_cleanly(result, 1)
    assert "network" in result.stderr or "Could not connect" in result.stderr
    assert role_arn("alpha") in result.stderr


def test_iam_policy_role_prints_the_teams_policies(roles):
    result = Cli(roles)("iam-policy", "--team", "alpha", "--role", "--batch", "--node-principal",
                        f"arn:aws:iam::{ACCOUNT}:role/node", "--aws-secretsmanager-team-role-template", TEMPLATE,
                        flags=[])
    assert result.exit_code == 0, result.stderr
    policies = json.loads(result.stdout)
    text = json.dumps(policies["permission_policy"])
    assert "/concourse/alpha/*" in text and "beta" not in text and "ListSecrets" not in text
    trust = policies["trust_policy"]["Statement"][0]
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:role/node"}
    assert trust["Condition"]["StringEquals"]["aws:RequestTag/Team"] == "alpha"
    assert "${aws:PrincipalTag/Team}" in json.dumps(policies["abac_permission_policy"])
    assert policies["node_policy"]["Statement"][0]["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/ci-*"]
    assert "DescribeSecret" not in json.dumps(policies)  # nothing calls it


def test_iam_policy_role_names_the_teams_own_roles_for_the_node(roles, tmp_path):
    teams = tmp_path / "teams.yml"
    teams.write_text("teams:\n  alpha:\n    local_users: [a]\n    role_arn: arn:aws:iam::210987654321:role/alpha-ci\n"
                     "    external_id: alpha-ext-4\n")
    cli = Cli(roles)
    result = cli("iam-policy", "--team", "alpha", "--role", "--team-roles-file", str(teams), flags=[])
    assert result.exit_code == 0, result.stderr
    policies = json.loads(result.stdout)
    assert policies["node_policy"]["Statement"][0]["Resource"] == ["arn:aws:iam::210987654321:role/alpha-ci"]
    assert policies["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] == "alpha-ext-4"
    bare = cli("iam-policy", "--team", "alpha", "--role", flags=[])
    assert "node_policy" not in json.loads(bare.stdout) and "no node_policy" in bare.stderr  # never every role


def test_web_node_signs_as_each_teams_role_and_shows_it(roles, seeded, tmp_path):
    teams = tmp_path / "teams.yml"
    teams.write_text("teams:\n  alpha:\n    local_users: [alice, bob]\n  beta:\n    local_users: [carol]\n"
                     f"    role_arn: arn:aws:iam::{ACCOUNT}:role/ci-beta-own\n    external_id: beta-ext-9\n")
    roles.add_role(f"arn:aws:iam::{ACCOUNT}:role/ci-beta-own", team_policy("beta"), external_id="beta-ext-9")
    roles.add_role(role_arn("main"), team_policy("main"))
    server = start_web_server(
        [*aws_flags(), *user_flags(teams), "--aws-secretsmanager-team-role-template", TEMPLATE],
        clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=roles.url, AWS_ENDPOINT_URL_STS=roles.url))
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            alice, carol = ("alice", PASSWORDS["alice"]), ("carol", PASSWORDS["carol"])
            got = http.get("/api/v1/teams/alpha/vars/lookup", params={"var": "db"}, auth=alice)
            assert got.status_code == 200 and got.json()["value"] == "alpha-db-Zq1"
            got = http.get("/api/v1/teams/beta/vars/lookup", params={"var": "db"}, auth=carol)
            assert got.status_code == 200 and got.json()["value"] == "beta-db-Wr2"
            info = http.get("/api/v1/info/creds", auth=("admin", PASSWORDS["admin"])).json()
            team_roles = info["secretsmanager"]["team_roles"]
            assert team_roles["template"] == TEMPLATE and team_roles["teams_with_own_role"] == 1
            assert team_roles["probe"] == {"team": "main", "role": role_arn("main"), "assume_role": "ok"}
            roles.throttle(operations="AssumeRole")
            roles.add_role(role_arn("gamma"), team_policy("gamma"))
            denied = http.get("/api/v1/teams/alpha/vars/lookup", params={"var": "nope"}, auth=alice)
            assert denied.status_code == 422  # undefined: alpha's session is still good, no AssumeRole needed
        beta = next(s for s in roles.sessions if s.tags["Team"] == "beta")
        assert beta.role_arn.endswith("ci-beta-own") and beta.external_id == "beta-ext-9"
        server.stop()
        log = server.log_text()
    finally:
        server.close()
    for session in roles.sessions:
        assert session.secret_key not in log
    assert "alpha-db-Zq1" not in log and "beta-ext-9" not in log


def test_web_node_answers_502_when_assume_role_fails(roles, seeded, tmp_path):
    teams = tmp_path / "teams.yml"
    teams.write_text("teams:\n  alpha:\n    local_users: [alice, bob]\n")
    roles.throttle(operations="AssumeRole")
    server = start_web_server(
        [*aws_flags(), *user_flags(teams), "--aws-secretsmanager-team-role-template", TEMPLATE,
         "--secret-retry-attempts", "2"],
        clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=roles.url, AWS_ENDPOINT_URL_STS=roles.url))
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
            got = http.get("/api/v1/teams/alpha/vars/lookup", params={"var": "db"},
                           auth=("alice", PASSWORDS["alice"]))
            assert got.status_code == 502, got.text
            assert "throttled" in got.text and ACCOUNT not in got.text  # no role ARN to team members
        server.stop()
        assert "Traceback" not in server.log_text()
    finally:
        server.close()


def test_invalidation_reaches_a_roles_cached_answer(connect, roles, seed, aws):
    seed("/concourse/alpha/db", "old-Yy1")
    manager = connect(team_role_template=TEMPLATE)
    assert manager.lookup("db", team="alpha") == "old-Yy1"
    aws.put_secret_value(SecretId="/concourse/alpha/db", SecretString="new-Yy2")
    assert manager.lookup("db", team="alpha") == "old-Yy1"  # cached
    manager.invalidate("db", team="alpha")
    assert manager.lookup("db", team="alpha") == "new-Yy2"


def test_role_template_and_duration_are_validated(connect):
    for options, message in [
        ({"team_role_template": "arn:aws:iam::123456789012:role/ci"}, "must use {{.Team}}"),
        ({"team_role_template": "ci-{{.Team}}"}, "is not an IAM role ARN"),
        ({"team_role_template": TEMPLATE, "team_role_duration": "5m"}, "between 15m and 12h"),
    ]:
        with pytest.raises(pipeline_secrets.ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
            connect(**options)


def test_no_threads_pile_up_per_team(connect, roles, seeded):
    manager = connect(team_role_template=TEMPLATE)
    for team in ("alpha", "beta"):
        manager.lookup("db", team=team)
    before = threading.active_count()
    for team in ("alpha", "beta"):
        manager.lookup("db", team=team, pipeline="p2")
    assert threading.active_count() <= before + 2


def test_session_names_fit_iam_and_never_collide():
    from pipeline_secrets.config.roles import session_name

    teams = ("alpha", "a" * 80, "a" * 81, "tëam", "t-am", "t,am", "x" * 60)
    names = {team: session_name(team) for team in teams}
    names["t-am.x"] = session_name(names["tëam"].removeprefix("pipeline-secrets@"))  # a team named like a sanitised one
    assert names["alpha"].startswith("pipeline-secrets@alpha.")
    assert all(2 <= len(name) <= 64 and name.isascii() for name in names.values())
    assert len(set(names.values())) == len(names)  # sanitised and cut names keep a digest of the real one


def test_a_team_whose_role_is_denied_does_not_call_sts_per_lookup(connect, roles, seeded):
    manager = connect(team_role_template=TEMPLATE, cache_enabled=False)
    for _ in range(50):
        with pytest.raises(LookupFailed):
            manager.lookup("db", team="ghost")
    assert len(roles.calls("AssumeRole")) == 1  # remembered for a while, not asked again per lookup
    assert manager.metrics()["aws_calls"]["AssumeRole"] == {"access_denied": 1}  # the kinds lookups have


def test_a_failing_renewal_keeps_a_good_session_without_asking_sts_per_lookup(connect, roles, seeded):
    """STS throttled while the session is due for renewal but still good: lookups go on with it,
    and STS is asked again only after a cooldown, not on every read of the credentials."""
    roles.sts_lifetime(16.0)  # renewal due in the last quarter (from 12 s), still good until the last eighth
    manager = connect(team_role_template=TEMPLATE, cache_enabled=False)
    started = time.monotonic()
    assert manager.lookup("db", team="alpha") == "alpha-db-Zq1"
    time.sleep(max(0.0, 12.5 - (time.monotonic() - started)))
    roles.throttle(operations="AssumeRole")
    calls_before = len(roles.calls("AssumeRole"))
    for _ in range(40):
        assert manager.lookup("db", team="alpha") == "alpha-db-Zq1"
    assert len(roles.calls("AssumeRole")) - calls_before <= 2  # once, then once per cooldown at most
    assert not [r for r in roles.log if r.fault == "expired"]


def test_an_answer_without_credentials_is_a_typed_failure(connect, roles, seeded):
    roles.garble_assume_role()
    manager = connect(team_role_template=TEMPLATE, retry_attempts=1)
    with pytest.raises(LookupFailed) as failure:
        manager.lookup("db", team="alpha")
    assert failure.value.kind == "network" and "without credentials" in str(failure.value)


def test_var_sources_with_new_templates_reuse_the_teams_sessions(connect, roles, west_seeded):
    """A team member cannot make the node build clients, pools and sessions per document: sources
    without credentials of their own, in another region, share the teams' role sessions."""
    manager = connect(team_role_template=TEMPLATE)
    before = threading.active_count()
    for i in range(40):
        document = {"var_sources": [{"name": "w", "type": "secretsmanager", "config": {
            "region": "eu-west-1", "team_secret_template": "/concourse/{{.Team}}/{{.Secret}}",
            "pipeline_secret_template": f"/concourse/{{{{.Team}}}}/{{{{.Pipeline}}}}/n{i}-{{{{.Secret}}}}"}}],
            "v": "((w:db))"}
        assert manager.interpolate(document, team="alpha", pipeline="p")["v"] == "alpha-west-Ew1"
    assert len(roles.calls("AssumeRole")) <= 2  # one session per team and region
    assert threading.active_count() <= before + 40


@pytest.fixture
def west_seeded(moto_server):
    import boto3

    west = boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name="eu-west-1",
                        aws_access_key_id="seeder", aws_secret_access_key="seeder")
    west.create_secret(Name="/concourse/alpha/db", SecretString="alpha-west-Ew1")
    yield west


def test_invalidation_reaches_the_clusters_entries_after_many_var_sources(connect, proxy, seed, aws):
    seed("/concourse/main/db", "old-Ii1")
    seed("/concourse/main/other", "x")
    manager = connect()
    assert manager.lookup("db", team="main") == "old-Ii1"
    for i in range(260):  # each template set is one more namespace the stores remember
        manager.interpolate({"var_sources": [{"name": "s", "type": "secretsmanager", "config": {
            "region": "us-east-1", "pipeline_secret_template": f"/concourse/{{{{.Team}}}}/{{{{.Pipeline}}}}/n{i}-{{{{.Secret}}}}"}}],
            "v": "((s:other))"}, team="main", pipeline="p")
    aws.put_secret_value(SecretId="/concourse/main/db", SecretString="new-Ii2")
    manager.invalidate("db", team="main")
    assert manager.lookup("db", team="main") == "new-Ii2"
