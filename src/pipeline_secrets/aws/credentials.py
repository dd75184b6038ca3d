"""Credentials and client settings: the node's own identity (its flags, or the SDK's default
chain), and sessions signing with credentials we were given (a team's assumed role, ``roles``)."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from .._version import __version__
from ..config import Settings

# botocore's parsed service models (JSON files), shared by every session we make: each session
# would otherwise read and parse them again (several MB per client).
_LOADER = botocore.session.Session().get_component("data_loader")


def client_config(settings: Settings) -> Config:
    """botocore's own retries are off (one attempt in all): ``RetryingReader`` is the only retry
    loop, so ``--secret-retry-attempts`` means what it says and attempts never multiply."""
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=min(5.0, settings.lookup_timeout),
        read_timeout=min(20.0, settings.lookup_timeout),
        max_pool_connections=32,
        user_agent_extra=f"pipeline-secrets/{__version__}",
    )


def node_session(settings: Settings) -> boto3.session.Session:
    """The node's own identity: the configured keys, or the SDK's default chain."""
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    return boto3.session.Session(
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        aws_session_token=settings.session_token,
        region_name=settings.region,
        botocore_session=core,
    )


class _Given(CredentialProvider):
    METHOD = "pipeline-secrets-assumed-role"
    CANONICAL_NAME = "custom-pipeline-secrets-assumed-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def session_with(credentials: RefreshableCredentials, region: str) -> boto3.session.Session:
    """A session whose clients sign with ``credentials`` (and pick up their renewals)."""
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    core.register_component("credential_provider", CredentialResolver([_Given(credentials)]))
    return boto3.session.Session(botocore_session=core, region_name=region)


def make_sts_client(settings: Settings) -> Any:
    """STS, as the node: only to assume the teams' roles. Shorter timeouts than Secrets Manager's:
    the lookup that renews a session waits for this call."""
    config = client_config(settings).merge(Config(connect_timeout=min(2.0, settings.lookup_timeout / 4),
                                                  read_timeout=min(5.0, settings.lookup_timeout / 3)))
    return node_session(settings).client("sts", endpoint_url=settings.endpoint_url, config=config)
