"""Shared fixtures: moto's server mode (a subprocess, over HTTP on loopback) behind our fault proxy.

Tests seed secrets straight on moto (``seed``) and read them through the proxy (``connect``), so
the proxy's log holds exactly the calls our code made.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from support.faultproxy import FaultProxy  # noqa: E402
from support.motoserver import MotoServer, start_moto_server  # noqa: E402

import pipeline_secrets  # noqa: E402

REGION = "us-east-1"
ACCESS_KEY = "AKIATESTFLAGS0000001"
SECRET_KEY = "test-secret-key"

# The seed's example IAM policy (spec section 7).
SEED_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "AllowAccessToSecretManagerParameters", "Effect": "Allow",
         "Action": ["secretsmanager:ListSecrets"], "Resource": "*"},
        {"Sid": "AllowAccessGetSecret", "Effect": "Allow",
         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
         "Resource": ["arn:aws:secretsmanager:*:*:secret:/concourse/*",
                      "arn:aws:secretsmanager:*:*:secret:__concourse-health-check-??????"]},
    ],
}


def restricted_policy(prefix: str) -> dict[str, Any]:
    """The seed policy restricted to ``/concourse/<prefix>/*`` (a team, or team/pipeline)."""
    policy = json.loads(json.dumps(SEED_POLICY))
    policy["Statement"][1]["Resource"][0] = f"arn:aws:secretsmanager:*:*:secret:/concourse/{prefix}/*"
    return policy


@pytest.fixture(autouse=True)
def _isolated_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the machine's AWS or CONCOURSE_* settings, and the SDK's default chain never
    reaches for the real instance metadata address."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "CONCOURSE_", "PIPELINE_SECRETS_")):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("no-aws-config")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _session_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_session_proxy: FaultProxy, moto_server: MotoServer) -> Iterator[FaultProxy]:
    """The fault proxy in front of an empty moto, with no faults and an empty log."""
    moto_server.reset()
    _session_proxy.reset()
    yield _session_proxy
    assert not _session_proxy.errors, f"fault proxy errors: {_session_proxy.errors}"
    _session_proxy.reset()


@pytest.fixture
def aws(moto_server: MotoServer) -> Any:
    """A boto3 client straight to moto, for seeding; its calls never show in the proxy log."""
    return boto3.client(
        "secretsmanager", endpoint_url=moto_server.url, region_name=REGION,
        aws_access_key_id="seeder", aws_secret_access_key="seeder",
        config=Config(retries={"total_max_attempts": 1}),
    )


Seed = Callable[..., None]


@pytest.fixture
def seed(aws: Any, proxy: FaultProxy) -> Seed:
    """``seed(path, value)``: a str is stored as a SecretString, a dict as a JSON SecretString,
    bytes as a SecretBinary."""

    def put(path: str, value: Any) -> None:
        if isinstance(value, bytes):
            aws.create_secret(Name=path, SecretBinary=value)
        else:
            aws.create_secret(Name=path, SecretString=value if isinstance(value, str) else json.dumps(value))

    return put


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Callable[..., pipeline_secrets.Manager]]:
    """``connect(**options)``: a Manager talking to moto through the proxy, no env involved."""
    managers: list[pipeline_secrets.Manager] = []

    def make(**options: Any) -> pipeline_secrets.Manager:
        options.setdefault("region", REGION)
        options.setdefault("access_key", ACCESS_KEY)
        options.setdefault("secret_key", SECRET_KEY)
        options.setdefault("retry_interval", "1ms")
        manager = pipeline_secrets.connect(environ={}, endpoint_url=proxy.url, **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


def get_calls(proxy: FaultProxy) -> list[str]:
    """The secret ids of GetSecretValue calls, in order."""
    return [record.secret_ids[0] for record in proxy.calls("GetSecretValue")]


def read_ids(proxy: FaultProxy) -> list[str]:
    """Every secret id read, by GetSecretValue or within a BatchGetSecretValue, in order."""
    return [
        secret_id
        for record in proxy.log
        if record.operation in ("GetSecretValue", "BatchGetSecretValue")
        for secret_id in record.secret_ids
    ]
