"""A small, faithful model of Concourse's AWS Secrets Manager credential manager, for the benchmark.

What Concourse does (``atc/creds/secretsmanager`` behind ``creds.NewCachedSecrets`` and
``creds.NewRetryableSecrets``), and so what this model does:

- for each var of a document, in order, for each candidate path in order (pipeline template, then
  team template), one ``GetSecretValue``: ``ResourceNotFoundException`` -> the next path; a value ->
  stop; any other error -> the var, and so the whole interpolation, fails;
- a TTL cache keyed by the secret path (found values 1m, not-found answers 10s), per process and
  shared by every caller (one web node), with no single-flight: callers that miss together all ask
  AWS;
- retry of network errors only (connection refused/reset/closed), with a fixed wait (1s) and at
  most 5 attempts; throttling and every other AWS error are not retried;
- the AWS SDK's own retries off, so that one GetSecretValue is one HTTP request here as in ours.

A SecretString that is a JSON object becomes a mapping (fields walk into it), anything else stays
the string it is. The ``((var))`` grammar and the substitution are ``pipeline_secrets.pure.vars``' (pure
code, no AWS): the model differs from ours in how it talks to AWS, which is what is measured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ConnectionError, EndpointConnectionError

from pipeline_secrets.errors import UndefinedVarsError
from pipeline_secrets.pure import vars as vars_

NETWORK_ERRORS = (ConnectionError, EndpointConnectionError, ConnectionClosedError)


class ConcourseModel:
    """Concourse's lookup algorithm over one boto3 client; thread-safe like the web node's."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str,
        access_key: str,
        secret_key: str,
        pipeline_template: str = "/concourse/{team}/{pipeline}/{secret}",
        team_template: str = "/concourse/{team}/{secret}",
        cache_enabled: bool = True,
        found_ttl: float = 60.0,
        notfound_ttl: float = 10.0,
        retry_attempts: int = 5,
        retry_interval: float = 1.0,
        max_pool_connections: int = 64,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        # No SDK retries (one call = one request); a pool as large as the benchmark's callers, as
        # Go's HTTP client has no small fixed limit.
        config = Config(retries={"total_max_attempts": 1}, max_pool_connections=max_pool_connections)
        self._client = session.client("secretsmanager", endpoint_url=endpoint_url, config=config)
        self._pipeline_template = pipeline_template
        self._team_template = team_template
        self._cache_enabled = cache_enabled
        self._found_ttl = found_ttl
        self._notfound_ttl = notfound_ttl
        self._retry_attempts = retry_attempts
        self._retry_interval = retry_interval
        self._clock = clock
        self._sleep = sleep
        self._cache: dict[str, tuple[bool, Any, float]] = {}  # path -> (found, value, expires)
        self._lock = threading.Lock()  # guards the dict only, as go-cache's mutex does

    # -- the lookup algorithm -------------------------------------------------------------------

    def candidate_paths(self, secret: str, team: str, pipeline: str | None) -> list[str]:
        paths = []
        if pipeline is not None:
            paths.append(self._pipeline_template.format(team=team, pipeline=pipeline, secret=secret))
        paths.append(self._team_template.format(team=team, secret=secret))
        return paths

    def get(self, secret: str, team: str, pipeline: str | None) -> tuple[Any, bool]:
        """(value, found) of one secret name: the first candidate path that holds it."""
        for path in self.candidate_paths(secret, team, pipeline):
            value, found = self._cached_get(path)
            if found:
                return value, True
        return None, False

    def lookup(self, var: str, *, team: str, pipeline: str | None = None) -> Any:
        """One ``((var))``, fields applied."""
        ref = vars_.parse_var(var)
        value, found = self.get(ref.path, team, pipeline)
        if not found:
            raise UndefinedVarsError([ref.path])
        return vars_.walk_fields(value, ref)

    def interpolate(self, document: Any, *, team: str, pipeline: str | None = None) -> Any:
        """Every var of the document looked up in order, one after the other; the first AWS
        failure fails the interpolation."""
        secrets: dict[str, Any] = {}
        missing: list[str] = []
        for name in dict.fromkeys(ref.path for ref in vars_.collect_vars(document)):
            value, found = self.get(name, team, pipeline)
            if found:
                secrets[name] = value
            else:
                missing.append(name)
        if missing:
            raise UndefinedVarsError(sorted(missing))
        return vars_.interpolate(document, secrets)

    def close(self) -> None:
        self._client.close()

    # -- cache, retry, AWS ------------------------------------------------------------------------

    def _cached_get(self, path: str) -> tuple[Any, bool]:
        if self._cache_enabled:
            with self._lock:
                entry = self._cache.get(path)
            if entry is not None and entry[2] > self._clock():
                return entry[1], entry[0]
        value, found = self._retrying_get(path)  # no single-flight: every caller that missed asks
        if self._cache_enabled:
            ttl = self._found_ttl if found else self._notfound_ttl
            with self._lock:
                self._cache[path] = (found, value, self._clock() + ttl)
        return value, found

    def _retrying_get(self, path: str) -> tuple[Any, bool]:
        for attempt in range(1, self._retry_attempts + 1):
            try:
                return self._get(path)
            except NETWORK_ERRORS:
                if attempt == self._retry_attempts:
                    raise
                self._sleep(self._retry_interval)
        raise AssertionError("unreachable")

    def _get(self, path: str) -> tuple[Any, bool]:
        try:
            response = self._client.get_secret_value(SecretId=path)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None, False
            raise  # throttling, access denied...: the interpolation fails
        if "SecretString" in response:
            text = response["SecretString"]
            try:
                parsed = json.loads(text)
            except ValueError:
                return text, True
            return (parsed if isinstance(parsed, dict) else text), True
        return json.loads(bytes(response["SecretBinary"])), True
