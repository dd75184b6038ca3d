"""Tests of the test infrastructure in tests/support (moto server, proxy, IAM, IMDS).

Everything else in the suite trusts these helpers, so they are checked here
against real botocore clients, end to end.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from conftest import SEED_POLICY, restricted_policy as team_policy
from support import iam
from support.faultproxy import FaultProxy
from support.imds import ImdsServer
from support.motoserver import MotoServer

REGION = "us-east-1"
ACCESS_KEY = "AKIDPROXYTEST0000001"

def client(url: str, key: str = ACCESS_KEY, **config: Any) -> Any:
    return boto3.client(
        "secretsmanager", endpoint_url=url, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key="dummy-secret",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def error_code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(autouse=True)
def _no_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def secrets(moto_server: MotoServer) -> Any:
    """Create secrets directly on moto (bypassing the proxy)."""
    direct = client(moto_server.url)
    for name in ("/concourse/main/x", "/concourse/other-team/x", "/other/x", "__concourse-health-check"):
        direct.create_secret(Name=name, SecretString=f"value of {name}")
    return direct


# -- proxy basics -------------------------------------------------------------

def test_read_through_proxy_is_logged(proxy: FaultProxy, secrets: Any) -> None:
    value = client(proxy.url).get_secret_value(SecretId="/concourse/main/x")
    assert value["SecretString"] == "value of /concourse/main/x"
    [record] = proxy.log  # the direct creations did not go through the proxy
    assert (record.operation, record.secret_ids, record.access_key_id) == (
        "GetSecretValue", ("/concourse/main/x",), ACCESS_KEY)
    assert (record.status, record.error_type, record.fault) == (200, None, None)
    assert proxy.calls(operation="GetSecretValue", secret_id="/concourse/main/x") == [record]
    assert proxy.calls(operation="DescribeSecret") == []


def test_upstream_errors_relayed_and_logged(proxy: FaultProxy) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client(proxy.url, key="AKIDOTHERKEY").get_secret_value(SecretId="/missing")
    # moto answers 404 here where real AWS answers 400; relayed unchanged.
    assert error_code(exc) == ("ResourceNotFoundException", 404)
    [record] = proxy.log
    assert (record.status, record.error_type, record.access_key_id) == (
        404, "ResourceNotFoundException", "AKIDOTHERKEY")
    proxy.clear_log()
    assert proxy.log == []


def test_many_concurrent_clients(proxy: FaultProxy, secrets: Any) -> None:
    sm = client(proxy.url, max_pool_connections=40)
    results: list[str] = []

    def worker() -> None:
        for _ in range(3):
            results.append(sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"])

    threads = [threading.Thread(target=worker) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["value of /concourse/main/x"] * 120
    assert len(proxy.calls(operation="GetSecretValue")) == 120


# -- IAM policy -------------------------------------------------------------

@pytest.mark.parametrize("secret_id", ["/concourse/main/x", "__concourse-health-check"])
def test_seed_policy_allows(proxy: FaultProxy, secrets: Any, secret_id: str) -> None:
    proxy.set_policy(SEED_POLICY)
    sm = client(proxy.url)
    assert sm.get_secret_value(SecretId=secret_id)["SecretString"] == f"value of {secret_id}"
    assert sm.describe_secret(SecretId=secret_id)["Name"] == secret_id
    assert len(sm.list_secrets()["SecretList"]) == 4


def test_seed_policy_denies_like_aws(proxy: FaultProxy, secrets: Any) -> None:
    proxy.set_policy(SEED_POLICY)
    sm = client(proxy.url)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId="/other/x")
    assert error_code(exc) == ("AccessDeniedException", 400)
    assert exc.value.response["Error"]["Message"] == (
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
        "secretsmanager:GetSecretValue on resource: /other/x because no "
        "identity-based policy allows the secretsmanager:GetSecretValue action")
    assert exc.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # action not granted
        sm.put_secret_value(SecretId="/concourse/main/x", SecretString="new")
    assert error_code(exc) == ("AccessDeniedException", 400)
    assert [(r.fault, r.error_type) for r in proxy.log] == [("policy", "AccessDeniedException")] * 2
    proxy.set_policy(None)
    assert sm.get_secret_value(SecretId="/other/x")["SecretString"] == "value of /other/x"


def test_team_restricted_policy(proxy: FaultProxy, secrets: Any) -> None:
    proxy.set_policy(team_policy("main"))
    sm = client(proxy.url)
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    assert sm.get_secret_value(SecretId="__concourse-health-check")["SecretString"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId="/concourse/other-team/x")
    assert error_code(exc) == ("AccessDeniedException", 400)


def test_policy_evaluates_arn_secret_ids_as_is(proxy: FaultProxy, secrets: Any) -> None:
    arn = secrets.describe_secret(SecretId="/other/x")["ARN"]
    proxy.set_policy({"Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                     "Resource": "arn:aws:secretsmanager:*:*:secret:/other/x-??????"}]})
    sm = client(proxy.url)
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "value of /other/x"
    with pytest.raises(botocore.exceptions.ClientError):  # partial ARN: no suffix, no match
        sm.get_secret_value(SecretId=arn[:-7])


def test_batch_get_denied_ids_reported_in_errors(proxy: FaultProxy, secrets: Any) -> None:
    sm = client(proxy.url)
    ids = ["/concourse/main/x", "/other/x", "/missing", "/concourse/missing"]
    proxy.set_policy(SEED_POLICY)  # grants no BatchGetSecretValue: the whole call fails
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.batch_get_secret_value(SecretIdList=ids)
    assert error_code(exc) == ("AccessDeniedException", 400)

    policy = {**SEED_POLICY, "Statement": [*SEED_POLICY["Statement"], {
        "Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"}]}
    proxy.set_policy(policy)
    answer = sm.batch_get_secret_value(SecretIdList=ids)
    assert [v["Name"] for v in answer["SecretValues"]] == ["/concourse/main/x"]
    errors = {e["SecretId"]: e["ErrorCode"] for e in answer["Errors"]}
    assert errors == {"/other/x": "AccessDeniedException", "/missing": "AccessDeniedException",
                      "/concourse/missing": "ResourceNotFoundException"}  # moto's own
    assert proxy.log[-1].secret_ids == tuple(ids)


# -- faults ---------------------------------------------------------------

def test_throttle_count(proxy: FaultProxy, secrets: Any) -> None:
    proxy.throttle(count=2)
    sm = client(proxy.url)
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            sm.get_secret_value(SecretId="/concourse/main/x")
        assert error_code(exc) == ("ThrottlingException", 400)
        assert exc.value.response["Error"]["Message"] == "Rate exceeded"
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    assert [r.fault for r in proxy.log] == ["throttle", "throttle", None]


def test_fault_filters(proxy: FaultProxy, secrets: Any) -> None:
    proxy.throttle(operations="DescribeSecret")
    proxy.fail(secret_ids=["/other/x"])
    sm = client(proxy.url)
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.describe_secret(SecretId="/concourse/main/x")
    assert error_code(exc) == ("ThrottlingException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId="/other/x")
    assert error_code(exc) == ("InternalServiceError", 500)
    proxy.reset()
    assert sm.describe_secret(SecretId="/concourse/main/x")["Name"] == "/concourse/main/x"
    assert proxy.log == [proxy.log[0]] and proxy.log[0].fault is None


def test_throttle_above_rate(proxy: FaultProxy, secrets: Any) -> None:
    proxy.throttle_above(10, burst=2)
    sm = client(proxy.url)

    def outcome() -> str:
        try:
            sm.describe_secret(SecretId="/concourse/main/x")
            return "ok"
        except botocore.exceptions.ClientError as exc:
            return exc.response["Error"]["Code"]

    assert [outcome() for _ in range(4)][:3] == ["ok", "ok", "ThrottlingException"]
    time.sleep(0.15)  # refills one token at 10/s
    assert outcome() == "ok"


def test_fail_gives_500(proxy: FaultProxy, secrets: Any) -> None:
    proxy.fail(count=1)
    sm = client(proxy.url)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId="/concourse/main/x")
    assert error_code(exc) == ("InternalServiceError", 500)
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    assert [(r.status, r.error_type) for r in proxy.log] == [(500, "InternalServiceError"), (200, None)]


def test_drop_before_answer(proxy: FaultProxy, secrets: Any) -> None:
    sm = client(proxy.url)
    sm.list_secrets()  # a pooled keep-alive connection exists before the drop
    proxy.drop_connections(count=1)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        sm.get_secret_value(SecretId="/concourse/main/x")
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    assert [(r.status, r.fault) for r in proxy.log][1:] == [(None, "drop"), (200, None)]


def test_drop_mid_answer(proxy: FaultProxy, secrets: Any) -> None:
    proxy.drop_connections(count=1, mode="mid")
    sm = client(proxy.url)
    # botocore reads with enforce_content_length=False: a cut JSON body may
    # come back as an answer without the payload instead of an error.
    try:
        answer = sm.get_secret_value(SecretId="/concourse/main/x")
        assert "SecretString" not in answer
    except (botocore.exceptions.ConnectionClosedError, botocore.exceptions.ResponseStreamingError):
        pass
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    assert [r.fault for r in proxy.log] == ["drop", None]


def test_latency(proxy: FaultProxy, secrets: Any) -> None:
    sm = client(proxy.url)
    proxy.add_latency(0.25, operations="GetSecretValue")
    sm.describe_secret(SecretId="/concourse/main/x")
    assert proxy.log[-1].fault is None  # other operations are not delayed
    started = time.monotonic()
    sm.get_secret_value(SecretId="/concourse/main/x")
    assert time.monotonic() - started >= 0.25
    assert proxy.log[-1].fault == "latency"


def test_hang_times_out_client(proxy: FaultProxy, secrets: Any) -> None:
    proxy.hang(0.5, count=1)
    sm = client(proxy.url, read_timeout=0.1)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        sm.get_secret_value(SecretId="/concourse/main/x")
    assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]


def test_stop_with_open_keepalive_connections(moto_server: MotoServer) -> None:
    fp = FaultProxy(moto_server.url).start()
    client(fp.url).list_secrets()
    fp.hang(30)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client(fp.url).list_secrets()
        except Exception as exc:  # the connection is cut by stop()
            outcome.append(exc)

    hung = threading.Thread(target=call)
    hung.start()
    time.sleep(0.1)
    fp.stop()
    hung.join(5)
    assert not hung.is_alive()
    assert len(outcome) == 1


# -- IMDS -------------------------------------------------------------------

def test_imds_credentials_via_default_chain(
    proxy: FaultProxy, secrets: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                "AWS_EC2_METADATA_DISABLED", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with ImdsServer(access_key_id="AKIAIMDSROLETEST0001") as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)
        session = boto3.Session(region_name=REGION)
        assert session.get_credentials().method == "iam-role"
        sm = session.client("secretsmanager", endpoint_url=proxy.url,
                            config=Config(retries={"total_max_attempts": 1}))
        assert sm.get_secret_value(SecretId="/concourse/main/x")["SecretString"]
    assert proxy.log[-1].access_key_id == "AKIAIMDSROLETEST0001"
    assert [(r.method, r.path, r.status) for r in imds.requests] == [
        ("PUT", "/latest/api/token", 200),
        ("GET", "/latest/meta-data/iam/security-credentials/", 200),
        ("GET", "/latest/meta-data/iam/security-credentials/pipeline-secrets-ci", 200),
    ]
    assert all(r.token_valid for r in imds.requests[1:])


def test_imds_requires_token() -> None:
    with ImdsServer() as imds:
        host, port = imds.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/latest/meta-data/iam/security-credentials/")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401
        conn.request("PUT", "/latest/api/token")  # TTL header missing
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 400
        conn.request("PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = conn.getresponse().read().decode()
        conn.request("GET", "/latest/meta-data/nothing", headers={"X-aws-ec2-metadata-token": token})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 404
        conn.close()


# -- iam unit tests ---------------------------------------------------------

def test_secret_arn_is_deterministic_and_matches_suffix_wildcards() -> None:
    arn = iam.secret_arn("__concourse-health-check", "eu-west-1")
    assert arn == iam.secret_arn("__concourse-health-check", "eu-west-1")
    assert re.fullmatch(
        r"arn:aws:secretsmanager:eu-west-1:123456789012:secret:__concourse-health-check-[A-Za-z0-9]{6}", arn)
    assert iam.secret_arn("a", "us-east-1") != iam.secret_arn("b", "us-east-1")
    assert iam.is_allowed(SEED_POLICY, "secretsmanager:GetSecretValue", arn)
    assert not iam.is_allowed(SEED_POLICY, "secretsmanager:GetSecretValue",
                              iam.secret_arn("__concourse-health-check-x", "eu-west-1"))


@pytest.mark.parametrize(("action", "name", "allowed"), [
    ("secretsmanager:GetSecretValue", "/concourse/main/x", True),
    ("secretsmanager:getsecretvalue", "/concourse/main/x", True),  # actions ignore case
    ("secretsmanager:DescribeSecret", "/concourse/main/deep/path", True),
    ("secretsmanager:PutSecretValue", "/concourse/main/x", False),  # default deny
    ("secretsmanager:GetSecretValue", "/Concourse/main/x", False),  # resources keep case
    ("secretsmanager:GetSecretValue", "/other/x", False),
    ("secretsmanager:ListSecrets", "/other/x", True),
])
def test_seed_policy_unit(action: str, name: str, allowed: bool) -> None:
    assert iam.is_allowed(SEED_POLICY, action, iam.secret_arn(name, REGION)) is allowed


def test_explicit_deny_wins_and_not_action() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": ["secretsmanager:Get*", "secretsmanager:Describe?ecret"],
         "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:secretsmanager:*:*:secret:/ok/*"},
    ]}
    ok, other = iam.secret_arn("/ok/x", REGION), iam.secret_arn("/no/x", REGION)
    assert iam.evaluate(policy, "secretsmanager:GetSecretValue", ok) is iam.Decision.ALLOW
    assert iam.is_allowed(policy, "secretsmanager:DescribeSecret", ok)
    assert iam.evaluate(policy, "secretsmanager:PutSecretValue", ok) is iam.Decision.EXPLICIT_DENY
    assert not iam.is_allowed(policy, "secretsmanager:GetSecretValue", other)
    assert iam.evaluate({"Statement": []}, "s3:GetObject", "*") is iam.Decision.IMPLICIT_DENY


def test_wildcards_are_not_fnmatch() -> None:
    policy = {"Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "arn:x:[ab]?"}}
    assert iam.is_allowed(policy, "a:b", "arn:x:[ab]c")
    assert not iam.is_allowed(policy, "a:b", "arn:x:ac")
    assert not iam.is_allowed(policy, "a:b", "arn:x:[ab]cd")


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": "a:b", "Resource": "*", "Condition": {}},
    {"Effect": "allow", "Action": "a:b", "Resource": "*"},
    {"Effect": "Allow", "Action": "a:b", "NotAction": "a:c", "Resource": "*"},
    {"Effect": "Allow", "Action": "a:b"},
    {"Effect": "Allow", "Action": "a:b", "Resource": "arn:${aws:username}"},
])
def test_unsupported_or_malformed_policies_raise(statement: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        iam.is_allowed({"Statement": [statement]}, "a:b", "x")
