"""Reading as a team's own IAM role: the role's session (STS AssumeRole) and a reader over it.

A team's session is obtained with AssumeRole, signed by the node's credentials, on the team's
first lookup; after that botocore's ``RefreshableCredentials`` renews it ahead of its expiry (one
renewal at a time: its refresh lock), so no loop of ours keeps it alive. Concurrent first lookups
of a team share one AssumeRole call, and its failure. Every STS failure becomes a ``LookupFailed``
naming the role and the team, never the credentials.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from ..config.roles import TeamRole, session_name, session_tags
from ..errors import LookupFailed
from ..metrics import Metrics
from .answers import classify_error
from .backend import CallBudget, SecretsManagerBackend

ASSUME_ROLE = "AssumeRole"
_logger = logging.getLogger("pipeline_secrets.aws")


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
    which renew themselves from a quarter of their lifetime (at most 15 minutes) before they end.

    STS failing costs little: a failed first AssumeRole is remembered for a while (``COOLDOWN``,
    longer for a denial), so a team whose role is broken makes no AssumeRole per lookup; a failed
    renewal keeps the current credentials while they have more than ``MARGIN`` left and tries
    STS again only after the cooldown, so lookups neither fail nor wait on STS while the
    session is still good. Every AssumeRole takes a token of the rate budget."""

    COOLDOWN = 2.0  # seconds before STS is asked again after a throttled or unreachable STS
    DENIED_COOLDOWN = 30.0  # ... after a denial (a trust policy is not fixed in seconds)
    MARGIN = 60.0  # seconds of validity (at most an eighth of the life) under which a failed renewal fails

    def __init__(self, sts: Any, role: TeamRole, team: str, duration: float, metrics: Metrics,
                 budget: CallBudget | None = None) -> None:
        self.role = role
        self.team = team
        self._sts = sts
        self._duration = int(duration)
        self._metrics = metrics
        self._budget = budget
        self._lock = threading.Lock()
        self._attempts = 0
        self._failure: LookupFailed | None = None
        self._retry_after = 0.0  # monotonic time before which STS is not asked again
        self._current: dict[str, Any] | None = None  # the metadata of the credentials in use
        self._margin = self.MARGIN
        self._credentials: RefreshableCredentials | None = None
        logger = logging.getLogger("botocore.credentials")
        if _NO_TRACEBACKS not in logger.filters:
            logger.addFilter(_NO_TRACEBACKS)

    def credentials(self, path: str) -> RefreshableCredentials:
        """The session's credentials, renewed if due; ``LookupFailed`` (for ``path``) when STS
        refuses or cannot be reached and the session has run out."""
        credentials = self._credentials or self._first(path)
        try:
            credentials.get_frozen_credentials()  # renews when due, so that a failure is typed here
        except Exception as exc:  # noqa: BLE001 -- whatever STS or botocore raised, typed
            raise self._failed(path, exc) from None
        return credentials

    def _first(self, path: str) -> RefreshableCredentials:
        seen = self._attempts
        with self._lock:
            if self._credentials is not None:
                return self._credentials
            failure = self._failure
            if failure is not None and (self._attempts != seen or time.monotonic() < self._retry_after):
                # the attempt we waited for failed, or one failed a moment ago: share its outcome
                raise failure.for_path(path)
            self._attempts += 1
            try:
                metadata = self._fetch()
            except Exception as exc:  # noqa: BLE001
                self._failure = self._failed(path, exc)
                self._retry_after = time.monotonic() + self._cooldown(self._failure)
                raise self._failure from None
            lifetime = max(1.0, _seconds_left(metadata))
            self._current = metadata
            self._margin = min(self.MARGIN, lifetime / 8)
            self._credentials = RefreshableCredentials.create_from_metadata(
                metadata, refresh_using=self._renew, method="assume-role",
                advisory_timeout=min(15 * 60, lifetime / 4), mandatory_timeout=self._margin,
            )
            self._failure = None
            return self._credentials

    def _renew(self) -> dict[str, Any]:
        """botocore's ``refresh_using``: a new session, or the current one while STS fails and it
        is still good (botocore would otherwise ask STS again on every read of the credentials)."""
        current = self._current
        usable = current is not None and _seconds_left(current) > self._margin
        if usable and time.monotonic() < self._retry_after:
            return current
        try:
            metadata = self._fetch()
        except Exception as exc:
            failure = self._failed("", exc)
            self._retry_after = time.monotonic() + self._cooldown(failure)
            if usable:
                _logger.warning("renewing the role session of team '%s' failed; the current one is used meanwhile: "
                                "%s", self.team, failure.reason)
                return current
            raise
        self._current = metadata
        return metadata

    def _cooldown(self, failure: LookupFailed) -> float:
        base = self.COOLDOWN if failure.retryable else self.DENIED_COOLDOWN
        return base * random.uniform(0.75, 1.25)

    def _fetch(self) -> dict[str, Any]:
        """One AssumeRole call, within the rate budget; the answer checked."""
        arguments: dict[str, Any] = {
            "RoleArn": self.role.arn, "RoleSessionName": session_name(self.team),
            "DurationSeconds": self._duration, "Tags": session_tags(self.team),
        }
        if self.role.external_id:
            arguments["ExternalId"] = self.role.external_id
        if self._budget is not None and not self._budget.take(ASSUME_ROLE):
            raise LookupFailed("", "throttled", f"no {ASSUME_ROLE} call fits the AWS rate budget (--aws-rate-limit)",
                               retryable=True)
        try:
            answer = self._sts.assume_role(**arguments)
        except (ClientError, BotoCoreError) as exc:
            failure = classify_error("", exc)
            self._metrics.aws_call(ASSUME_ROLE, failure.kind if failure is not None else "error")
            raise
        self._metrics.aws_call(ASSUME_ROLE, "ok")
        given = answer.get("Credentials") if isinstance(answer, dict) else None
        if not isinstance(given, dict) or not all(
                isinstance(given.get(key), str) and given[key] for key in ("AccessKeyId", "SecretAccessKey", "SessionToken")):
            raise LookupFailed("", "network", "AssumeRole answered without credentials", retryable=True)
        expiry = given.get("Expiration")
        metadata = {"access_key": given["AccessKeyId"], "secret_key": given["SecretAccessKey"],
                    "token": given["SessionToken"],
                    "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry)}
        try:
            left = _seconds_left(metadata)
        except ValueError:
            raise LookupFailed("", "network", "AssumeRole answered an unreadable expiry", retryable=True) from None
        if left <= 0:
            raise LookupFailed("", "credentials", "AssumeRole answered credentials that have already expired "
                               "(is the node's clock right?)")
        return metadata

    def _failed(self, path: str, exc: Exception) -> LookupFailed:
        if isinstance(exc, LookupFailed):
            failure = exc
        else:
            failure = classify_error(path, exc) or LookupFailed(path, "error", f"{type(exc).__name__}")
        kind = failure.kind if failure.retryable or failure.kind == "credentials" else "assume-role"
        detail = f"AssumeRole of {self.role.arn} for team '{self.team}' failed: {failure.detail}"
        if kind == "assume-role":
            detail += (" (the role must exist and trust the node's principal with sts:AssumeRole and "
                       "sts:TagSession; see pipeline-secrets iam-policy --role)")
        return LookupFailed(path, kind, detail, code=failure.code, retryable=failure.retryable)


def _seconds_left(metadata: dict[str, Any]) -> float:
    expiry = datetime.fromisoformat(str(metadata["expiry_time"]).replace("Z", "+00:00"))
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=timezone.utc)
    return (expiry - datetime.now(timezone.utc)).total_seconds()


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
            return {path: failure.for_path(path) for path in unique}
        return self._over(credentials).get_many(unique)

    @property
    def backend(self) -> SecretsManagerBackend | None:
        """The backend, once the first credentials have made it."""
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def _over(self, credentials: RefreshableCredentials) -> SecretsManagerBackend:
        with self._lock:
            if self._backend is None:
                self._backend = self._make_backend(credentials)
            return self._backend
