"""Reading as a team's own IAM role: the role's session (STS AssumeRole) and a reader over it.

A team's session is obtained with AssumeRole, signed by the node's credentials, on the team's
first lookup; after that botocore's ``RefreshableCredentials`` renews it ahead of its expiry (one
renewal at a time: its refresh lock), so no loop of ours keeps it alive. Concurrent first lookups
of a team share one AssumeRole call, and its failure. Every STS failure becomes a ``LookupFailed``
naming the role and the team, never the credentials.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from ..config.roles import TeamRole, session_name, session_tags
from ..errors import LookupFailed
from ..metrics import Metrics
from .answers import classify_error, error_code
from .backend import SecretsManagerBackend

ASSUME_ROLE = "AssumeRole"


class _NoTracebacks(logging.Filter):
    """botocore logs a failed advisory refresh with its traceback; the message is enough (the
    failure itself reaches the lookup that needs the credentials, typed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


_NO_TRACEBACKS = _NoTracebacks()


class AssumedRole:
    """One team's session of its role. ``credentials`` makes the first AssumeRole (concurrent
    callers wait for it and share its outcome), then hands out botocore's refreshable credentials,
    which renew themselves: a quarter of their lifetime (at most 15 minutes) before they end, and
    block lookups only in the last eighth (at most 10 minutes)."""

    def __init__(self, sts: Any, role: TeamRole, team: str, duration: float, metrics: Metrics) -> None:
        self.role = role
        self.team = team
        self._sts = sts
        self._duration = int(duration)
        self._metrics = metrics
        self._lock = threading.Lock()
        self._attempts = 0
        self._failure: LookupFailed | None = None
        self._credentials: RefreshableCredentials | None = None
        logger = logging.getLogger("botocore.credentials")
        if _NO_TRACEBACKS not in logger.filters:
            logger.addFilter(_NO_TRACEBACKS)

    def credentials(self, path: str) -> RefreshableCredentials:
        """The session's credentials, renewed if due; ``LookupFailed`` (for ``path``) when STS
        refuses or cannot be reached."""
        credentials = self._credentials or self._first(path)
        try:
            credentials.get_frozen_credentials()  # renews when due, so that a failure is typed here
        except (ClientError, BotoCoreError) as exc:
            raise self._failed(path, exc) from None
        return credentials

    def _first(self, path: str) -> RefreshableCredentials:
        seen = self._attempts
        with self._lock:
            if self._credentials is not None:
                return self._credentials
            if self._attempts != seen and self._failure is not None:
                failure = self._failure  # the attempt we waited for failed: share its outcome
                raise LookupFailed(path, failure.kind, failure.detail, code=failure.code, retryable=failure.retryable)
            self._attempts += 1
            try:
                metadata = self._fetch()
            except (ClientError, BotoCoreError) as exc:
                self._failure = self._failed(path, exc)
                raise self._failure from None
            expiry = datetime.fromisoformat(metadata["expiry_time"])
            lifetime = max(1.0, (expiry - datetime.now(timezone.utc)).total_seconds())
            self._credentials = RefreshableCredentials.create_from_metadata(
                metadata, refresh_using=self._fetch, method="assume-role",
                advisory_timeout=min(15 * 60, lifetime / 4), mandatory_timeout=min(10 * 60, lifetime / 8),
            )
            self._failure = None
            return self._credentials

    def _fetch(self) -> dict[str, Any]:
        """One AssumeRole call (botocore calls it again for each renewal)."""
        arguments: dict[str, Any] = {
            "RoleArn": self.role.arn, "RoleSessionName": session_name(self.team),
            "DurationSeconds": self._duration, "Tags": session_tags(self.team),
        }
        if self.role.external_id:
            arguments["ExternalId"] = self.role.external_id
        try:
            answer = self._sts.assume_role(**arguments)["Credentials"]
        except ClientError as exc:
            self._metrics.aws_call(ASSUME_ROLE, _kind(exc))
            raise
        except BotoCoreError:
            self._metrics.aws_call(ASSUME_ROLE, "network")
            raise
        self._metrics.aws_call(ASSUME_ROLE, "ok")
        expiry = answer["Expiration"]
        return {"access_key": answer["AccessKeyId"], "secret_key": answer["SecretAccessKey"],
                "token": answer["SessionToken"],
                "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry)}

    def _failed(self, path: str, exc: Exception) -> LookupFailed:
        failure = classify_error(path, exc) or LookupFailed(path, "error", str(exc))
        kind = failure.kind if failure.retryable or failure.kind == "credentials" else "assume-role"
        detail = f"AssumeRole of {self.role.arn} for team '{self.team}' failed: {failure.detail}"
        if kind == "assume-role":
            detail += (" (the role must exist and trust the node's principal with sts:AssumeRole and "
                       "sts:TagSession; see pipeline-secrets iam-policy --role)")
        return LookupFailed(path, kind, detail, code=failure.code, retryable=failure.retryable)


class RoleReader:
    """``SecretReader`` signing as one team's role: its backend is made on the first credentials,
    and every call first makes sure they are valid (renewing them when due), so an STS failure
    is the lookup's typed failure, not a signing error in the middle of a Secrets Manager call."""

    def __init__(self, session: AssumedRole, make_backend: Callable[[RefreshableCredentials], SecretsManagerBackend]):
        self.session = session
        self._make_backend = make_backend
        self._backend: SecretsManagerBackend | None = None
        self._lock = threading.Lock()

    def get(self, path: str) -> Any | None:
        return self._over(self.session.credentials(path)).get(path)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(paths))
        if not unique:
            return {}
        try:
            credentials = self.session.credentials(unique[0])
        except LookupFailed as failure:
            return {path: LookupFailed(path, failure.kind, failure.detail, code=failure.code,
                                       retryable=failure.retryable) for path in unique}
        return self._over(credentials).get_many(unique)

    def calls_for(self, paths: int) -> int:
        return self._backend.calls_for(paths) if self._backend is not None else -(-paths // 20)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def _over(self, credentials: RefreshableCredentials) -> SecretsManagerBackend:
        with self._lock:
            if self._backend is None:
                self._backend = self._make_backend(credentials)
            return self._backend


def _kind(exc: ClientError) -> str:
    code = error_code(exc)
    return "throttled" if "Throttl" in code else "denied" if code == "AccessDenied" else "error"
