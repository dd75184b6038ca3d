"""The credential chain, seen at the wire (the access key id of each SigV4 signature), and the rule
that secret values never reach a log line or an error message."""

from __future__ import annotations

import logging

import pytest
from conftest import REGION
from support.imds import ImdsServer

import pipeline_secrets
from pipeline_secrets import FieldError, LookupFailed, UndefinedVarsError

SECRET = "s3cr3t-value-that-must-not-leak"


def _lookup_key_id(proxy, **options) -> str | None:
    """Look up one var and return the access key id the proxy saw."""
    with pipeline_secrets.connect(endpoint_url=proxy.url, region=REGION, retry_attempts=1, **options) as manager:
        manager.lookup("token", team="main")
    (record,) = proxy.calls("GetSecretValue")
    proxy.clear_log()
    return record.access_key_id


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch):
    with ImdsServer(access_key_id="AKIAINSTANCEROLE0001") as server:
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url)
        yield server


def test_explicit_credentials_win_over_environment_and_instance_role(seed, proxy, imds, monkeypatch):
    seed("/concourse/main/token", "v")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASDKENVIRONMENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    assert _lookup_key_id(proxy, access_key="AKIAEXPLICITFLAG0001", secret_key="y") == "AKIAEXPLICITFLAG0001"


def test_concourse_environment_variables_are_explicit_credentials(seed, proxy, imds, monkeypatch):
    seed("/concourse/main/token", "v")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASDKENVIRONMENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("CONCOURSE_AWS_SECRETSMANAGER_ACCESS_KEY", "AKIACONCOURSEENV0001")
    monkeypatch.setenv("CONCOURSE_AWS_SECRETSMANAGER_SECRET_KEY", "y")
    assert _lookup_key_id(proxy) == "AKIACONCOURSEENV0001"


def test_sdk_environment_comes_before_the_instance_role(seed, proxy, imds, monkeypatch):
    seed("/concourse/main/token", "v")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASDKENVIRONMENT01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    assert _lookup_key_id(proxy) == "AKIASDKENVIRONMENT01"


def test_instance_role_through_imdsv2_when_nothing_else_is_set(seed, proxy, imds):
    seed("/concourse/main/token", "v")
    assert _lookup_key_id(proxy) == "AKIAINSTANCEROLE0001"
    assert any(request.method == "PUT" for request in imds.requests)  # IMDSv2 token first


def test_no_credentials_anywhere_is_a_clear_lookup_failure(proxy):
    with pipeline_secrets.connect(endpoint_url=proxy.url, region=REGION) as manager:
        with pytest.raises(LookupFailed) as failure:
            manager.lookup("token", team="main")
    assert failure.value.kind == "credentials"
    assert "--aws-secretsmanager-access-key" in str(failure.value)
    assert proxy.log == []


def test_secret_values_never_reach_logs_or_errors(seed, connect, proxy, caplog):
    """Root logging at DEBUG (botocore included) through found values and every error path."""
    caplog.set_level(logging.DEBUG)
    manager = connect(retry_attempts=2)
    seed("/concourse/main/db", {"password": SECRET})  # the seeding client's requests too
    seed("/concourse/main/plain", SECRET)
    seed("/concourse/main/blob", SECRET.encode())
    messages = []
    assert manager.lookup("db.password", team="main") == SECRET
    assert manager.lookup("plain", team="main") == SECRET
    for call in (
        lambda: manager.lookup("db.password.deeper", team="main"),
        lambda: manager.lookup("db.nope", team="main"),
        lambda: manager.lookup("blob", team="main"),
        lambda: manager.interpolate({"x": "a-((db))"}, team="main"),
        lambda: manager.interpolate({"((db))": 1}, team="main"),
        lambda: manager.interpolate({"x": "((plain)) ((missing))"}, team="main"),
    ):
        with pytest.raises((FieldError, LookupFailed, UndefinedVarsError)) as failure:
            call()
        messages.append(str(failure.value))
    assert any(r.name.startswith("botocore") for r in caplog.records), "debug logging was not on"
    assert SECRET not in caplog.text
    for message in messages:
        assert SECRET not in message
