"""The AWS Secrets Manager client: found / not found / typed errors (``LookupFailed``, by
``answers``) for every read.

Everything above this module sees the ``SecretReader`` interface: ``get(path)`` returns the
secret's decoded value, ``None`` when no secret is there, and raises ``LookupFailed`` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from ..config import Settings
from ..errors import LookupFailed
from ..metrics import Metrics
from ..pure.documents import has_lone_surrogates, value_depth
from .answers import classify_code, classify_error, error_code
from .coalescing import Coalescer
from .credentials import client_config, node_session, session_with

HEALTH_CHECK_SECRET = "__concourse-health-check"
T = TypeVar("T")
R = TypeVar("R")

class SecretReader(Protocol):
    """What every layer between the AWS client and the manager offers: backend, retry, cache..."""

    def get(self, path: str) -> Any | None:
        """The value at ``path``; ``None`` when there is no secret; raises ``LookupFailed``."""
        ...

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        """An answer for each path: its value, ``None`` (not found) or a ``LookupFailed``."""
        ...


class CallBudget(Protocol):
    """Admission of AWS calls (the rate budget): ``take`` waits for room for one call of
    ``operation``, and says False when none comes in time (the call is then not made)."""

    def take(self, operation: str) -> bool: ...


def _over_budget(path: str, operation: str) -> LookupFailed:
    return LookupFailed(path, "throttled", f"no {operation} call fits the AWS rate budget (--aws-rate-limit) "
                        "within the lookup deadline")


def first_answer(reader: SecretReader, path: str) -> Any | None:
    """``get`` in terms of ``get_many``, for wrappers that do all their work in ``get_many``."""
    answer = reader.get_many([path])[path]
    if isinstance(answer, LookupFailed):
        raise answer
    return answer


class _NoWireBodies(logging.Filter):
    """botocore logs whole request and response bodies at DEBUG, and those carry secret values
    (and the canonical request, which carries a session token): an operator who turns on debug
    logging must not find their secrets in the log."""

    BODY_FORMATS = frozenset({
        "Response body:\n%r",
        "Sending http request: %s",
        "Rewinding stream: %s",
        "Making request for %s with params: %s",
        "CanonicalRequest:\n%s",  # botocore.auth: it holds the session token of a role's session
    })

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.BODY_FORMATS


_NO_WIRE_BODIES = _NoWireBodies()


def _keep_bodies_out_of_logs() -> None:
    for name in ("botocore.parsers", "botocore.endpoint", "botocore.awsrequest", "botocore.auth"):
        logger = logging.getLogger(name)
        if _NO_WIRE_BODIES not in logger.filters:
            logger.addFilter(_NO_WIRE_BODIES)


def make_client(settings: Settings, credentials: RefreshableCredentials | None = None) -> Any:
    """A Secrets Manager client signing as the node (``settings``' keys, or the SDK's default
    chain), or with ``credentials`` (a team's assumed role)."""
    _keep_bodies_out_of_logs()
    session = node_session(settings) if credentials is None else session_with(credentials, settings.region)
    return session.client("secretsmanager", endpoint_url=settings.endpoint_url, config=client_config(settings))


def identity_of(settings: Settings) -> str:
    """Whom a client made from ``settings`` reads as, for keying what it was answered: region,
    endpoint, access key id, and a digest of the secret key and session token (never the keys
    themselves). The SDK's default chain is one identity per region and endpoint."""
    secret = hashlib.sha256(f"{settings.secret_key or ''}\0{settings.session_token or ''}".encode()).hexdigest()[:16]
    return f"{settings.region}|{settings.endpoint_url or ''}|{settings.access_key or 'chain'}|{secret}"


BATCH_LIMIT = 20  # ids per BatchGetSecretValue call


def calls_for_mode(batch: str, paths: int) -> int:
    """The most AWS calls a ``get_many`` of ``paths`` paths makes in ``batch`` mode (retries aside)."""
    if paths > 1 and batch in ("auto", "auto-allowed", "on"):
        return -(-paths // BATCH_LIMIT)
    return paths


class SecretsManagerBackend:
    """``SecretReader`` over one boto3 client (thread-safe, as boto3 clients are).

    ``get_many`` reads many paths with BatchGetSecretValue (20 ids a call, calls in parallel, ids of
    concurrent callers sharing calls: ``Coalescer``) when ``batch`` is "on" or "auto"; in "auto" an AccessDenied on the batch call itself (the seed's
    IAM policy does not grant it) switches to parallel GetSecretValue calls for good.

    The ``workers`` threads are shared fairly: the calls of one ``get_many`` may have at most an
    equal share of them in flight (all of them when it is alone, half when another is running...),
    re-weighed as callers come and go, so that one caller's large document cannot take every
    connection while other callers (other teams, on the web node) wait behind it.
    """

    def __init__(
        self, client: Any, *, batch: str = "auto", metrics: Metrics | None = None, workers: int = 32,
        budget: CallBudget | None = None, pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self._client = client
        self._owns_pool = pool is None  # the teams' role backends share one pool
        self._budget = budget
        self._batch = batch
        self._first_batch = threading.Lock()
        self._metrics = metrics or Metrics()
        self._pool = pool or ThreadPoolExecutor(workers, thread_name_prefix="pipeline-secrets-aws")
        self._workers = workers
        self._share = threading.Condition()
        self._callers = 0  # get_many calls fanning out now
        # Batches are shared by concurrent callers; at most half the threads carry them.
        admit = None if budget is None else (lambda: budget.take("BatchGetSecretValue"))
        self._coalescer = Coalescer(self._batch_get, self._pool, batch_size=BATCH_LIMIT, admit=admit,
                                    max_in_flight=max(1, workers // 2),
                                    partial_in_flight=1)

    def calls_for(self, paths: int) -> int:
        """The most AWS calls a ``get_many`` of ``paths`` paths makes now (retries aside)."""
        return calls_for_mode(self._batch, paths)

    def get(self, path: str) -> Any | None:
        if self._budget is not None and not self._budget.take("GetSecretValue"):
            raise _over_budget(path, "GetSecretValue")
        try:
            response = self._client.get_secret_value(SecretId=path)
        except (ClientError, BotoCoreError) as exc:
            failure = classify_error(path, exc)
            self._metrics.aws_call("GetSecretValue", "not-found" if failure is None else failure.kind)
            if failure is None:
                return None
            raise failure from None
        self._metrics.aws_call("GetSecretValue", "found")
        return decode_secret(path, response)

    def get_many(self, paths: Sequence[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(paths))
        if len(unique) > 1 and self._batch == "auto":
            # Until the first batch call has answered, nobody knows whether batching is allowed:
            # callers go one at a time, so that a denial costs one refused call, not one per caller.
            with self._first_batch:
                if self._batch == "auto":
                    answers = self._read_batched(unique)
                    if self._batch == "auto":
                        self._batch = "auto-allowed"
                    return answers
        if len(unique) > 1 and self._batch in ("auto-allowed", "on"):
            return self._read_batched(unique)
        if len(unique) == 1:
            return {unique[0]: self._answer(unique[0])}
        return dict(zip(unique, self._map(self._answer, unique)))

    def _read_batched(self, paths: list[str]) -> dict[str, Any]:
        answers = self._coalescer.read(paths)
        left = [path for path in paths if path not in answers]  # the batch call was denied ("auto")
        if left:
            self._batch = "auto-denied"
            answers.update(zip(left, self._map(self._answer, left)))
        return answers

    def _map(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``call`` on every item on the pool, within this caller's share of it; results in order."""
        if len(items) == 1:
            return [call(items[0])]
        in_flight = [0]

        def done(_: object) -> None:
            with self._share:
                in_flight[0] -= 1
                self._share.notify_all()

        futures = []
        with self._share:
            self._callers += 1
        try:
            for item in items:
                with self._share:
                    while in_flight[0] >= max(1, self._workers // self._callers):
                        self._share.wait()
                    in_flight[0] += 1
                future = self._pool.submit(call, item)
                future.add_done_callback(done)
                futures.append(future)
        finally:
            with self._share:
                self._callers -= 1
                self._share.notify_all()
        return [future.result() for future in futures]

    def health(self) -> dict[str, Any]:
        """Spec 5: GetSecretValue on the literal health-check id, without retry."""
        answer = self._answer(HEALTH_CHECK_SECRET)
        if isinstance(answer, LookupFailed):
            return {"error": answer.reason, "method": "GetSecretValue"}
        return {"response": {"status": "UP"}, "method": "GetSecretValue"}

    def close(self) -> None:
        if self._owns_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def put(self, path: str, value: str) -> str:
        """Create the secret at ``path`` or give it a new current version; returns its ARN."""
        try:
            try:
                return self._client.create_secret(Name=path, SecretString=value)["ARN"]
            except ClientError as exc:
                if error_code(exc) != "ResourceExistsException":
                    raise
                return self._client.put_secret_value(SecretId=path, SecretString=value)["ARN"]
        except (ClientError, BotoCoreError) as exc:
            raise (classify_error(path, exc) or LookupFailed(path, "error", str(exc))) from None

    def _answer(self, path: str) -> Any:
        try:
            return self.get(path)
        except LookupFailed as exc:
            return exc

    def _batch_get(self, paths: list[str], admitted: bool = True) -> dict[str, Any]:
        """One BatchGetSecretValue call, once the rate budget has ``admitted`` it (the coalescer
        asks it first); {} when "auto" finds the call itself denied."""
        if not admitted:
            return {path: _over_budget(path, "BatchGetSecretValue") for path in paths}
        try:
            response = self._client.batch_get_secret_value(SecretIdList=paths)
        except (ClientError, BotoCoreError) as exc:
            failure = classify_error(paths[0], exc) or LookupFailed(paths[0], "error", str(exc))
            self._metrics.aws_call("BatchGetSecretValue", failure.kind)
            if failure.kind == "access-denied" and self._batch != "on":
                return {}
            detail = f"BatchGetSecretValue failed: {failure.detail}"
            if failure.kind == "access-denied":
                detail += " (grant secretsmanager:BatchGetSecretValue, or use --aws-secretsmanager-batch auto)"
            return {
                path: LookupFailed(path, failure.kind, detail, code=failure.code, retryable=failure.retryable)
                for path in paths
            }
        self._metrics.aws_call("BatchGetSecretValue", "ok")
        answers: dict[str, Any] = {}
        for entry in response.get("SecretValues", []):
            try:
                answers[entry["Name"]] = decode_secret(entry["Name"], entry)
            except LookupFailed as exc:
                answers[entry["Name"]] = exc
        for error in response.get("Errors", []):
            path = error.get("SecretId", "")
            answers[path] = classify_code(path, error.get("ErrorCode", ""), error.get("Message") or "no message")
        for path in paths:
            answers.setdefault(path, LookupFailed(
                path, "network", "incomplete answer: BatchGetSecretValue said nothing of this id", retryable=True
            ))
        return {path: answers[path] for path in paths}


MAX_VALUE_DEPTH = 64  # a secret's JSON may nest this deep; deeper values are refused, not walked


def decode_secret(path: str, response: dict[str, Any]) -> Any:
    """Spec 2.4: a JSON object becomes a mapping; any other SecretString stays a string; a
    SecretBinary must be a JSON object. Errors never quote the value. A value that no UTF-8 text
    can hold (JSON may escape half a UTF-16 pair) or that nests deeper than ``MAX_VALUE_DEPTH``
    fails as an invalid value: nothing downstream could write it out."""
    if "SecretString" in response:
        text = response["SecretString"]
        parsed = _json_object(path, text)
        return _checked(path, text if parsed is None else parsed)
    binary = response.get("SecretBinary")
    if binary is None:
        # Every stored secret has one or the other: this is an answer cut short on the way.
        raise LookupFailed(path, "network", "incomplete answer: neither SecretString nor SecretBinary",
                           retryable=True)
    try:
        parsed = _json_object(path, bytes(binary).decode("utf-8"))
    except UnicodeDecodeError:
        parsed = None
    if parsed is None:
        raise LookupFailed(
            path, "invalid-value",
            "the secret is binary and not a JSON object; store it as a SecretString (plaintext) "
            "or as a JSON object",
        )
    return _checked(path, parsed)


def _json_object(path: str, text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text, parse_constant=_not_json)  # NaN and Infinity: not JSON, so text
    except RecursionError:
        raise _too_deep(path) from None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _checked(path: str, value: Any) -> Any:
    if isinstance(value, dict) and value_depth(value) > MAX_VALUE_DEPTH:
        raise _too_deep(path)
    if has_lone_surrogates(value):
        raise LookupFailed(path, "invalid-value", "the secret holds text that is not valid Unicode "
                           "(a lone UTF-16 surrogate); store it again as UTF-8 text")
    return value


def _too_deep(path: str) -> LookupFailed:
    return LookupFailed(path, "invalid-value", f"the secret's JSON nests deeper than {MAX_VALUE_DEPTH} levels")


def _not_json(constant: str) -> Any:
    raise ValueError(constant)
