"""Per-pipeline var sources (issue 10), over the wire: moto's server behind the fault proxy, which
tells regions apart by the SigV4 scope (moto keeps a backend per region) and judges each access key
by its own policy. And the conformance points that came with them."""

from __future__ import annotations

import json

import boto3
import pytest
import yaml
from conftest import ACCESS_KEY, get_calls, restricted_policy
from ops_support import Cli, assert_fails_cleanly
from support.webclient import basic

from pipeline_secrets import (
    LookupFailed,
    UndefinedVarsError,
    VarNameError,
    VarSourceConfigError,
    VarSourceError,
)
from pipeline_secrets.dev import example_pipeline_file
from pipeline_secrets.pure.documents import load_document

pytest_plugins = ["support.webfixtures"]

TEAM, PIPELINE = "main", "deploy"
SOURCE_KEY, SOURCE_SECRET = "AKIAVARSOURCE0000001", "var-source-secret"


def source(name: str, kind: str = "secretsmanager", **config) -> dict:
    return {"name": name, "type": kind, "config": config}


def doc(*sources: dict, **body) -> dict:
    return {"var_sources": list(sources), **body}


@pytest.fixture
def west(moto_server):
    """A seeding client for moto's eu-west-1 (a backend of its own)."""
    return boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name="eu-west-1",
                        aws_access_key_id="seeder", aws_secret_access_key="seeder")


def test_a_source_in_another_region_reads_that_regions_value(seed, west, connect, proxy):
    seed("/concourse/main/deploy/db", "us-east-1 value")
    west.create_secret(Name="/concourse/main/deploy/db", SecretString="eu-west-1 value")
    manager = connect()
    document = doc(source("west", region="eu-west-1"), here="((db))", there="((west:db))")
    out = manager.interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert (out["here"], out["there"]) == ("us-east-1 value", "eu-west-1 value")
    # Again, from the cache: each identity keeps its own answer for the same path.
    proxy.clear_log()
    again = manager.interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert (again["here"], again["there"]) == ("us-east-1 value", "eu-west-1 value")
    assert proxy.log == []
    assert out["var_sources"] == document["var_sources"]  # kept, unchanged
    assert manager.metrics()["var_sources"] == {"west": 2}  # metrics name the source


def test_a_source_with_its_own_key_is_held_to_that_keys_policy(seed, connect, proxy):
    seed("/concourse/main/deploy/token", "pipeline token")
    seed("/concourse/main/other-pipeline/token", "another pipeline's token")
    proxy.set_policy(restricted_policy("main/deploy"), access_key=SOURCE_KEY)
    manager = connect()
    own = source("mine", region="us-east-1", access_key=SOURCE_KEY, secret_key=SOURCE_SECRET,
                 pipeline_secret_template="/concourse/main/{{.Secret}}", team_secret_template="/concourse/x/{{.Secret}}")
    assert manager.interpolate(doc(own, t="((mine:deploy/token))"), team=TEAM, pipeline=PIPELINE)["t"] == "pipeline token"
    with pytest.raises(LookupFailed) as denied:  # its templates may say anything: IAM says no
        manager.interpolate(doc(own, t="((mine:other-pipeline/token))"), team=TEAM, pipeline=PIPELINE)
    assert denied.value.kind == "access-denied"
    signed = {record.access_key_id for record in proxy.log}
    assert signed == {SOURCE_KEY}  # every call of the source was its own, none the node's


def test_a_source_without_credentials_cannot_point_at_another_team(seed, connect, proxy):
    seed("/concourse/other-team/registry", "other team's secret")
    stray = source("stray", region="us-east-1", team_secret_template="/concourse/other-team/{{.Secret}}")
    with pytest.raises(VarNameError) as refused:
        connect().interpolate(doc(stray, r="((stray:registry))"), team=TEAM, pipeline=PIPELINE)
    message = str(refused.value)
    assert "var source 'stray' has no credentials of its own" in message
    assert "'/concourse/other-team/registry' is the path of team 'other-team'" in message
    assert proxy.log == []


def test_a_source_without_credentials_may_use_templates_inside_its_team(seed, connect):
    seed("/concourse/main/deploy-extra", "inside main")
    inside = source("inside", region="us-east-1", team_secret_template="/concourse/{{.Team}}/{{.Pipeline}}-{{.Secret}}")
    out = connect().interpolate(doc(inside, v="((inside:extra))"), team=TEAM, pipeline=PIPELINE)
    assert out["v"] == "inside main"


def test_config_values_are_vars_of_the_cluster_resolved_first(seed, connect, proxy):
    seed("/concourse/main/source-creds", {"key": SOURCE_KEY, "secret": SOURCE_SECRET})
    seed("/concourse/main/deploy/x", "x")
    creds = source("creds", region="us-east-1", access_key="((source-creds.key))",
                   secret_key="((source-creds.secret))")
    out = connect().interpolate(doc(creds, v="((creds:x))"), team=TEAM, pipeline=PIPELINE)
    assert out["v"] == "x"
    assert out["var_sources"][0]["config"]["access_key"] == "((source-creds.key))"  # never written out
    reads = [(r.access_key_id, r.secret_ids) for r in proxy.log if r.operation == "GetSecretValue"
             or r.operation == "BatchGetSecretValue"]
    assert (SOURCE_KEY, ("/concourse/main/deploy/x",)) in reads
    assert all(key == ACCESS_KEY for key, ids in reads if "/concourse/main/source-creds" in ids)


def test_dummy_sources_null_keys_and_local_vars(connect, proxy):
    fixtures = source("fixtures", "dummy", vars={"greeting": "hello", "nothing": None, "db": {"port": 5432}})
    document = doc(fixtures, a="((fixtures:greeting)), world", b="((fixtures:db.port))",
                   c={"((fixtures:nothing))": "null key"}, d="((.:built-at-run-time))")
    out = connect().interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert out["a"] == "hello, world" and out["b"] == 5432
    assert out["c"] == {None: "null key"}
    assert out["d"] == "((.:built-at-run-time))"
    assert proxy.log == []
    dropped = connect().interpolate(document, team=TEAM, pipeline=PIPELINE, drop_var_sources=True)
    assert "var_sources" not in dropped and list(dropped) == ["a", "b", "c", "d"]
    with pytest.raises(UndefinedVarsError, match=r"^undefined vars: fixtures:gone$"):
        connect().interpolate(doc(fixtures, x="((fixtures:gone))"), team=TEAM, pipeline=PIPELINE)


@pytest.mark.parametrize("document, error, message", [
    ({"a": "((vault:db))"}, VarSourceError, "missing source 'vault' in var: vault:db"),
    (doc(source("v", "vault", url="x"), a="((v:db))"), VarSourceConfigError,
     "var source 'v': type 'vault' is not supported here (supported: dummy, secretsmanager)"),
    (doc(source("s", region="us-east-1", role_arn="x"), a="((s:db))"), VarSourceConfigError,
     "var source 's': unknown config key 'role_arn' for type secretsmanager"),
    (doc(source("s"), a="((s:db))"), VarSourceConfigError, "var source 's': config.region is required"),
    (doc(source("s", region="us-east-1", secret_key="x"), a="((s:db))"), VarSourceConfigError,
     "must provide aws access key id (var source 's': config.access_key)"),
    (doc(source("s", "dummy"), source("s", "dummy"), a="x"), VarSourceConfigError, "declared twice"),
    ({"var_sources": {"name": "x"}, "a": 1}, VarSourceConfigError, "var_sources must be a list"),
])
def test_declarations_we_cannot_use_are_refused_without_an_aws_call(connect, proxy, document, error, message):
    with pytest.raises(error) as refused:
        connect().interpolate(document, team=TEAM, pipeline=PIPELINE)
    assert message in str(refused.value)
    assert proxy.log == []


def test_exit_statuses_in_the_cli(proxy, tmp_path):
    cli = Cli(proxy)
    cases = [
        ("a: ((vault:db))\n", 1, "missing source 'vault' in var: vault:db"),
        ("var_sources: [{name: v, type: vault, config: {}}]\na: ((v:db))\n", 2, "type 'vault' is not supported"),
        ("var_sources: [{name: s, type: secretsmanager, config: {region: x, nope: 1}}]\na: 1\n", 2,
         "unknown config key 'nope'"),
    ]
    for text, status, message in cases:
        result = cli("interpolate", "-", "--team", TEAM, "--pipeline", PIPELINE, input=text)
        assert_fails_cleanly(result, status)
        assert message in result.stderr


def test_shell_arithmetic_survives_byte_for_byte(seed, proxy):
    seed("/concourse/main/deploy/count", "3")
    script = 'count=((count)); i=$((count - 1)); echo $(( i + 1 )) ((a+b)) "(( x ))"'
    text = yaml.safe_dump({"run": {"args": ["-c", script]}})
    result = Cli(proxy)("interpolate", "-", "--team", TEAM, "--pipeline", PIPELINE, input=text)
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["run"]["args"][1] == script.replace("((count))", "3")
    assert get_calls(proxy) == ["/concourse/main/deploy/count"]  # nothing else looked like a var


def test_an_empty_pipeline_flag_is_refused_naming_it(proxy):
    result = Cli(proxy)("lookup", "x", "--team", TEAM, "--pipeline", "")
    assert_fails_cleanly(result, 2)
    assert "--pipeline" in result.stderr and "leave --pipeline out for a one-off build" in result.stderr
    assert proxy.log == []


def test_explain_names_the_source(seed, proxy):
    seed("/concourse/main/deploy/db", "x")
    text = "var_sources: [{name: again, type: secretsmanager, config: {region: us-east-1}}]\na: ((again:db))\n"
    result = Cli(proxy)("interpolate", "-", "--team", TEAM, "--pipeline", PIPELINE, "--explain", input=text)
    assert result.exit_code == 0, result.stderr
    assert "again:pipeline /concourse/main/deploy/db  found" in result.stderr
    assert "x" not in result.stderr.replace("explain", "")  # never the value


def test_check_honours_var_sources(proxy, tmp_path):
    (tmp_path / "deploy.yml").write_text(
        "var_sources: [{name: f, type: dummy, config: {vars: {known: 1}}}]\n"
        "a: ((f:known))\nb: ((f:unknown))\nc: ((nowhere:x))\n")
    result = Cli(proxy)("check", str(tmp_path), "--team", TEAM, "--pipeline-from-filename", "--json")
    report = json.loads(result.stdout)["files"][0]
    assert report["vars"] == 3
    assert report["undefined"] == ["f:unknown"]
    assert report["errors"] == ["missing source 'nowhere' in var: nowhere:x"]


def test_the_web_node_honours_var_sources(web, seed, proxy):
    seed("/concourse/alpha/deploy/db", "alpha's db")
    with web_client(web) as http:
        body = json.dumps(doc(source("f", "dummy", vars={"v": "fixture"}), a="((f:v))", b="((db))"))
        ok = http.post("/api/v1/teams/alpha/pipelines/deploy/vars/interpolate", content=body,
                       headers={**basic("alice"), "Content-Type": "application/json"})
        assert ok.status_code == 200, ok.text
        assert {k: ok.json()[k] for k in ("a", "b")} == {"a": "fixture", "b": "alpha's db"}
        missing = http.post("/api/v1/teams/alpha/pipelines/deploy/vars/interpolate", content='{"a": "((v:x))"}',
                            headers={**basic("alice"), "Content-Type": "application/json"})
        assert (missing.status_code, missing.json()) == (422, {"error": "missing source 'v' in var: v:x"})
        dropped = http.post("/api/v1/teams/alpha/pipelines/deploy/vars/interpolate?drop_var_sources=true",
                            content=body, headers={**basic("alice"), "Content-Type": "application/json"})
        assert "var_sources" not in dropped.json()


def web_client(web):
    import httpx

    return httpx.Client(base_url=web.url, trust_env=False, timeout=30)


def test_the_shipped_example_declares_a_var_source():
    document = load_document(example_pipeline_file().read_text())
    assert document["var_sources"][0]["type"] == "dummy"
    assert "((release:version))" in example_pipeline_file().read_text()
