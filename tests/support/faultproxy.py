"""A fault-injecting reverse proxy for the AWS JSON protocol, for tests.

botocore -> FaultProxy -> moto server. The proxy understands just enough of
the wire format (``X-Amz-Target``, the JSON body's ``SecretId``, the SigV4
``Credential=``) to log each call and to answer the way real AWS fails:
AccessDenied from an IAM policy (moto does not evaluate IAM), throttling,
5xx, dropped or hung connections, latency.

STS (the query protocol: a form body with ``Action=``) goes through it too: with
roles registered (``add_role``), AssumeRole of an unknown role, or with the wrong
external id, is denied as AWS denies it; a granted session's temporary key is
mapped to its role's policy, the session's name and tags are recorded
(``sessions``), its lifetime may be shortened (``sts_lifetime``) and calls signed
with an expired key get ExpiredTokenException.

Why our own: nothing on PyPI injects faults at the wire level for the AWS
JSON protocol with IAM evaluation; moto's own hooks run inside the test
process and could not exercise botocore's HTTP stack (retries, connection
pool, timeouts), which is what we need to test.

Only the standard library is used; it is threaded, HTTP/1.1 keep-alive with
Content-Length framing, and sets TCP_NODELAY both ways (with Nagle and
delayed ACKs a keep-alive proxy adds ~40 ms per call).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Literal
from urllib.parse import parse_qs, urlsplit

from . import iam

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
# Not relayed (connection-specific, or recomputed by us).
_HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-connection proxy-authenticate proxy-authorization"
    " te trailer transfer-encoding upgrade expect content-length host".split()
)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
_XML_FIELD = "<{0}>([^<]*)</{0}>"
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class CallRecord:
    """One request seen by the proxy."""

    operation: str  # "GetSecretValue"; "" when there is no X-Amz-Target
    secret_ids: tuple[str, ...]
    access_key_id: str | None
    status: int | None  # None when no complete answer was sent (drop, hang)
    error_type: str | None  # "__type" of an error answer
    timestamp: float  # time.monotonic() when the request had been read
    fault: str | None = None  # drop|hang|policy|throttle|fail|latency|None


@dataclass
class _Request:
    method: str
    path: str
    headers: Headers
    body: bytes
    service: str
    operation: str
    secret_ids: tuple[str, ...]
    access_key_id: str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class RoleSession:
    """One AssumeRole the proxy granted."""

    role_arn: str
    session_name: str
    tags: dict[str, str]
    external_id: str | None
    caller_key: str | None  # who assumed it (the node's key)
    access_key_id: str  # the session's temporary key
    expires: float  # time.time()
    secret_key: str = ""  # its secret, for tests that look for leaks


@dataclass
class _Role:
    policy: dict[str, Any]
    external_id: str | None


@dataclass
class _Fault:
    kind: str
    remaining: int | None  # None: until reset
    operations: frozenset[str] | None
    secret_ids: frozenset[str] | None
    value: Any = None  # mode, seconds or (status, error_type, message)

    def take(self, req: _Request) -> bool:
        """Match ``req`` and consume one use; call with the proxy lock held."""
        if self.remaining == 0:
            return False
        if self.operations is not None and req.operation not in self.operations:
            return False
        if self.secret_ids is not None and not self.secret_ids.intersection(req.secret_ids):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


@dataclass
class _TokenBucket:
    rate: float
    capacity: float
    operations: frozenset[str] | None
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def admit(self, operation: str) -> bool:
        """False when the request is above the rate; call with the lock held."""
        if self.operations is not None and operation not in self.operations:
            return True
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Plan:
    """What to do with one request, decided under the lock."""

    fault: str | None = None
    drop: str | None = None  # "before" | "mid"
    hang: float = 0.0
    error: tuple[int, str, str] | None = None  # status, __type, Message
    latency: float = 0.0
    batch_policy: bool = False


@dataclass
class _Policy:
    document: dict[str, Any]
    region: str
    account: str
    user: str

    def check(self, action: str, secret_id: str | None) -> str | None:
        """None when allowed, else the AccessDenied message real AWS sends."""
        resource = iam.resource_for_secret_id(secret_id, self.region, self.account) if secret_id else "*"
        decision = iam.evaluate(self.document, action, resource)
        if decision is iam.Decision.ALLOW:
            return None
        why = (
            "with an explicit deny in an identity-based policy"
            if decision is iam.Decision.EXPLICIT_DENY
            else f"because no identity-based policy allows the {action} action"
        )
        return (
            f"User: arn:aws:iam::{self.account}:user/{self.user} is not authorized to "
            f"perform: {action} on resource: {secret_id or '*'} {why}"
        )


def _names(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _parse(method: str, path: str, headers: Headers, body: bytes) -> _Request:
    lower = {k.lower(): v for k, v in headers}
    service, _, operation = lower.get("x-amz-target", "").rpartition(".")
    match = _CREDENTIAL.search(lower.get("authorization", ""))
    if "x-www-form-urlencoded" in lower.get("content-type", ""):  # the query protocol (STS)
        form = parse_qs(body.decode("utf-8", "replace"))
        params: Any = {key: values[0] for key, values in form.items()}
        service, operation = (match.group(2) if match else "sts"), params.get("Action", "")
        return _Request(method, path, headers, body, service, operation, (),
                        match.group(1) if match else None, params)
    try:
        params = json.loads(body) if body else {}
    except ValueError:
        params = {}
    params = params if isinstance(params, dict) else {}
    ids: list[Any] = []
    if isinstance(params.get("SecretIdList"), list):
        ids = params["SecretIdList"]
    elif "SecretId" in params:
        ids = [params["SecretId"]]
    elif operation == "CreateSecret" and "Name" in params:
        ids = [params["Name"]]
    return _Request(
        method, path, headers, body, service, operation,
        tuple(i for i in ids if isinstance(i, str)), match.group(1) if match else None, params,
    )


def _error_type(status: int, headers: Headers, body: bytes) -> str | None:
    if status < 400:
        return None
    for k, v in headers:
        if k.lower() == "x-amzn-errortype":
            return v.split(":")[0]
    if body.lstrip().startswith(b"<"):
        found = re.search(_XML_FIELD.format("Code"), body.decode("utf-8", "replace"))
        return found.group(1) if found else None
    try:
        kind = json.loads(body).get("__type")
    except (ValueError, AttributeError):
        return None
    return kind.rpartition("#")[2] if isinstance(kind, str) else None


def _error_answer(req: _Request, status: int, kind: str, message: str) -> tuple[int, Headers, bytes]:
    """An AWS error answer in the request's protocol: JSON (Secrets Manager) or XML (STS)."""
    base = [("x-amzn-RequestId", str(uuid.uuid4())), ("Date", formatdate(usegmt=True))]
    if req.service == "sts":
        kind = {"AccessDeniedException": "AccessDenied", "ThrottlingException": "Throttling"}.get(kind, kind)
        if status == 400 and kind == "AccessDenied":
            status = 403
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{kind}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()
        return status, [*base, ("Content-Type", "text/xml")], body
    body = json.dumps({"__type": kind, "Message": message}).encode()
    return status, [*base, ("Content-Type", JSON_CONTENT_TYPE)], body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # dozens of clients connect at once
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client going away mid-request is routine here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on the client-facing socket
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.proxy._track(self.connection, add=False)
        if self._upstream is not None:
            self._upstream.close()
        try:
            super().finish()
        except OSError:
            pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        proxy = self.server.proxy
        req = _parse(self.command, self.path, list(self.headers.items()), self._read_body())
        started = time.monotonic()

        def record(status: int | None, error_type: str | None, fault: str | None) -> None:
            proxy._record(CallRecord(req.operation, req.secret_ids, req.access_key_id,
                                     status, error_type, started, fault))

        try:
            plan = proxy._plan(req)
            if plan.drop == "before" or plan.hang:
                record(None, None, plan.fault)
                proxy._stopping.wait(plan.hang)
                self.close_connection = True
                return
            proxy._stopping.wait(plan.latency)
            if plan.error:
                status, kind, message = plan.error
                status, headers, body = _error_answer(req, status, kind, message)
            else:
                status, headers, body = self._forward(req)
                if plan.batch_policy and status == 200:
                    body = proxy._filter_batch(req, body)
                if req.operation == "AssumeRole" and status == 200:
                    body = proxy._granted(req, body)
            fault = plan.fault if plan.drop is None else "drop"
            record(None if plan.drop else status, _error_type(status, headers, body), fault)
        except Exception as exc:  # a bug in the proxy: answer so the test sees it
            proxy._record_error(exc)
            status, headers = 500, [("Content-Type", JSON_CONTENT_TYPE)]
            body = json.dumps({"__type": "FaultProxyError", "Message": repr(exc)}).encode()
            plan = _Plan()
        self._send(status, headers, body, truncate=plan.drop == "mid")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def _send(self, status: int, headers: Headers, body: bytes, truncate: bool) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"{self.protocol_version} {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
        # A truncated answer must advertise more than it sends, even when empty.
        length = max(len(body), 2) if truncate else len(body)
        lines.append(f"Content-Length: {length}")
        if truncate or self.close_connection:
            lines.append("Connection: close")
            self.close_connection = True
        if self.command == "HEAD":
            body = b""
        payload = body[: len(body) // 2] if truncate else body
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def _forward(self, req: _Request) -> tuple[int, Headers, bytes]:
        """Relay to moto over this connection's persistent upstream connection."""
        proxy = self.server.proxy
        for attempt in range(2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            conn = self._upstream
            reused = conn.sock is not None
            try:
                if conn.sock is None:
                    conn.connect()
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", proxy.upstream_netloc)
                for name, value in req.headers:
                    if name.lower() not in _HOP_BY_HOP:
                        conn.putheader(name, value)
                if req.body or req.method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(req.body)))
                conn.endheaders(req.body or None)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                # A reused keep-alive connection may have been closed by moto
                # meanwhile: retry once on a fresh one. Otherwise: 502.
                if reused and attempt == 0:
                    continue
                body = json.dumps({"__type": "BadGateway", "Message": repr(exc)}).encode()
                return 502, [("Content-Type", JSON_CONTENT_TYPE)], body
        raise AssertionError("unreachable")


class FaultProxy:
    """Reverse proxy to ``upstream_url`` injecting AWS-shaped faults; thread-safe.

    Faults apply in this order: drop/hang, latency (added to every answer,
    errors included, as a network round trip is), policy, throttle, fail,
    then forward. Faults with a ``count`` are used up by matching requests;
    ``count=None`` lasts until :meth:`reset`. ``operations`` / ``secret_ids``
    (a name or an iterable) restrict a fault to matching requests.
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"need http://HOST:PORT, got {upstream_url!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.upstream_netloc = parts.netloc
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._log: list[CallRecord] = []
        self.errors: list[BaseException] = []  # proxy bugs; tests may assert it stays empty
        self.reset()

    # -- lifecycle ---------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FaultProxy not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.proxy = self
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="FaultProxy", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open client connections (ends hangs too)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        assert self._thread is not None
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- log ---------------------------------------------------------------
    @property
    def log(self) -> list[CallRecord]:
        with self._lock:
            return list(self._log)

    def calls(self, operation: str | None = None, secret_id: str | None = None) -> list[CallRecord]:
        return [r for r in self.log
                if (operation is None or r.operation == operation)
                and (secret_id is None or secret_id in r.secret_ids)]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- faults ------------------------------------------------------------
    def reset(self) -> None:
        """Remove all faults, the policy, the rate limit and the log."""
        with self._lock:
            self._faults: list[_Fault] = []
            self._policy: _Policy | None = None
            self._key_policies: dict[str, _Policy] = {}
            self._bucket: _TokenBucket | None = None
            self._roles: dict[str, _Role] = {}
            self._sessions: list[RoleSession] = []
            self._key_expiry: dict[str, float] = {}
            self._sts_lifetime: float | None = None
            self._sts_garbled = False
            self._log.clear()

    def set_policy(self, policy: dict[str, Any] | None, region: str = "us-east-1",
                   account: str = iam.DEFAULT_ACCOUNT, user: str = "ci", access_key: str | None = None) -> None:
        """Deny Secrets Manager calls this IAM policy does not allow (None: allow all). With
        ``access_key``, the policy is that key's alone (as each IAM identity has its own); calls
        signed with other keys keep the default policy."""
        state = None
        if policy is not None:
            state = _Policy(json.loads(json.dumps(policy)), region, account, user)
            iam.evaluate(state.document, "secretsmanager:GetSecretValue", "*")  # validate now
        with self._lock:
            if access_key is None:
                self._policy = state
            elif state is None:
                self._key_policies.pop(access_key, None)
            else:
                self._key_policies[access_key] = state

    def add_role(self, role_arn: str, policy: dict[str, Any], external_id: str | None = None) -> None:
        """A role that AssumeRole may grant: its sessions' keys are judged by ``policy``. Once any
        role is added, AssumeRole of any other role is denied (as AWS denies a missing role)."""
        iam.evaluate(policy, "secretsmanager:GetSecretValue", "*")  # validate now
        with self._lock:
            self._roles[role_arn] = _Role(json.loads(json.dumps(policy)), external_id)

    def sts_lifetime(self, seconds: float | None) -> None:
        """Sessions granted from now on expire after ``seconds`` (None: as moto says)."""
        with self._lock:
            self._sts_lifetime = seconds

    def garble_assume_role(self, garbled: bool = True) -> None:
        """AssumeRole answers 200 without credentials (a broken proxy or endpoint on the way)."""
        with self._lock:
            self._sts_garbled = garbled

    @property
    def sessions(self) -> list[RoleSession]:
        with self._lock:
            return list(self._sessions)

    def _granted(self, req: _Request, body: bytes) -> bytes:
        """Record the session moto granted, map its key to the role's policy, shorten its life."""
        with self._lock:
            if self._sts_garbled:
                return b"<AssumeRoleResponse><AssumeRoleResult></AssumeRoleResult></AssumeRoleResponse>"
        text = body.decode("utf-8")
        key = re.search(_XML_FIELD.format("AccessKeyId"), text)
        secret = re.search(_XML_FIELD.format("SecretAccessKey"), text)
        assert key is not None and secret is not None, text[:200]
        role_arn = req.params.get("RoleArn", "")
        tags = {req.params[name]: req.params.get(name.replace(".Key", ".Value"), "")
                for name in req.params if name.startswith("Tags.member.") and name.endswith(".Key")}
        with self._lock:
            lifetime = self._sts_lifetime
            expires = time.time() + (lifetime if lifetime is not None else 3600)
            if lifetime is not None:
                stamp = datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                text = re.sub(_XML_FIELD.format("Expiration"), f"<Expiration>{stamp}</Expiration>", text)
            self._key_expiry[key.group(1)] = expires
            role = self._roles.get(role_arn)
            if role is not None:
                name = role_arn.rpartition("/")[2]
                self._key_policies[key.group(1)] = _Policy(
                    role.policy, "us-east-1", role_arn.split(":")[4],
                    f"assumed-role/{name}/{req.params.get('RoleSessionName', '')}")
            self._sessions.append(RoleSession(role_arn, req.params.get("RoleSessionName", ""), tags,
                                              req.params.get("ExternalId"), req.access_key_id, key.group(1),
                                              expires, secret.group(1)))
        return text.encode("utf-8")

    def _refuse_assume_role(self, req: _Request) -> str | None:
        """Why AWS would deny this AssumeRole (no such role, wrong external id), or None; lock held."""
        if req.operation != "AssumeRole" or not self._roles:
            return None
        role_arn = req.params.get("RoleArn", "")
        role = self._roles.get(role_arn)
        if role is None or role.external_id != req.params.get("ExternalId"):
            return (f"User: arn:aws:iam::{iam.DEFAULT_ACCOUNT}:user/ci is not authorized to perform: "
                    f"sts:AssumeRole on resource: {role_arn}")
        return None

    def _policy_for(self, req: _Request) -> _Policy | None:
        """The policy that judges ``req``: its signing key's own, else the default; lock held."""
        return self._key_policies.get(req.access_key_id or "", self._policy)

    def throttle(self, count: int | None = None, operations: str | Iterable[str] | None = None,
                 secret_ids: str | Iterable[str] | None = None) -> None:
        self._add("throttle", count, operations, secret_ids)

    def throttle_above(self, rate_per_second: float | None, burst: float | None = None,
                       operations: str | Iterable[str] | None = None) -> None:
        """Token bucket: throttle requests above ``rate_per_second`` (None: off).

        ``burst`` (default: one second's worth, at least 1) is the bucket size;
        the bucket starts full.
        """
        bucket = None
        if rate_per_second is not None:
            capacity = burst if burst is not None else max(1.0, rate_per_second)
            bucket = _TokenBucket(rate_per_second, capacity, _names(operations), tokens=capacity)
        with self._lock:
            self._bucket = bucket

    def fail(self, status: int = 500, error_type: str = "InternalServiceError",
             count: int | None = None, operations: str | Iterable[str] | None = None,
             secret_ids: str | Iterable[str] | None = None, message: str | None = None) -> None:
        self._add("fail", count, operations, secret_ids,
                  (status, error_type, message or f"injected {error_type}"))

    def add_latency(self, seconds: float, operations: str | Iterable[str] | None = None,
                    count: int | None = None, secret_ids: str | Iterable[str] | None = None) -> None:
        self._add("latency", count, operations, secret_ids, seconds)

    def drop_connections(self, count: int | None = None,
                         operations: str | Iterable[str] | None = None,
                         mode: Literal["before", "mid"] = "before",
                         secret_ids: str | Iterable[str] | None = None) -> None:
        """Close the connection unanswered ("before") or after half an answer ("mid").

        "mid" processes the request (it reaches moto) and cuts the response.
        """
        if mode not in ("before", "mid"):
            raise ValueError(f"mode must be 'before' or 'mid', not {mode!r}")
        self._add("drop", count, operations, secret_ids, mode)

    def hang(self, seconds: float, count: int | None = None,
             operations: str | Iterable[str] | None = None,
             secret_ids: str | Iterable[str] | None = None) -> None:
        """Read the request, say nothing for ``seconds``, then close the connection."""
        self._add("hang", count, operations, secret_ids, seconds)

    def _add(self, kind: str, count: int | None, operations: str | Iterable[str] | None,
             secret_ids: str | Iterable[str] | None, value: Any = None) -> None:
        if count is not None and count < 0:
            raise ValueError("count must be >= 0 or None")
        with self._lock:
            self._faults.append(_Fault(kind, count, _names(operations), _names(secret_ids), value))

    # -- used by the handler ------------------------------------------------
    def _take(self, kind: str, req: _Request) -> _Fault | None:
        return next((f for f in self._faults if f.kind == kind and f.take(req)), None)

    def _plan(self, req: _Request) -> _Plan:
        plan = _Plan()
        with self._lock:
            if drop := self._take("drop", req):
                plan.fault, plan.drop = "drop", drop.value
                if drop.value == "before":
                    return plan
            elif hang := self._take("hang", req):
                plan.fault, plan.hang = "hang", hang.value
                return plan
            # Latency first: real AWS takes its round trip to say no as well as to say yes.
            for fault in self._faults:
                if fault.kind == "latency" and fault.take(req):
                    plan.latency += fault.value
            expiry = self._key_expiry.get(req.access_key_id or "")
            if expiry is not None and time.time() >= expiry and req.service != "sts":
                plan.fault = "expired"
                plan.error = (400, "ExpiredTokenException", "The security token included in the request is expired")
                return plan
            if denial := self._refuse_assume_role(req):
                plan.fault = "policy"
                plan.error = (403, "AccessDenied", denial)
                return plan
            if denial := self._deny(req):
                plan.fault = "policy"
                plan.error = (400, "AccessDeniedException", denial)
                return plan
            if self._take("throttle", req) or (self._bucket and not self._bucket.admit(req.operation)):
                plan.fault = "throttle"
                plan.error = (400, "ThrottlingException", "Rate exceeded")
                return plan
            if fail := self._take("fail", req):
                plan.fault, plan.error = "fail", fail.value
                return plan
            if plan.latency:
                plan.fault = "latency"
            plan.batch_policy = self._policy_for(req) is not None and req.operation == "BatchGetSecretValue"
        return plan

    def _deny(self, req: _Request) -> str | None:
        """AccessDenied message for the whole call, or None; lock held."""
        policy = self._policy_for(req)
        if policy is None or req.service != "secretsmanager" or not req.operation:
            return None
        action = f"secretsmanager:{req.operation}"
        if req.operation == "BatchGetSecretValue":  # per-id checks in _filter_batch
            denial = policy.check(action, None)
            if denial is None and "Filters" in req.params:
                denial = policy.check("secretsmanager:ListSecrets", None)
            return denial
        return policy.check(action, req.secret_ids[0] if req.secret_ids else None)

    def _filter_batch(self, req: _Request, body: bytes) -> bytes:
        """Rewrite moto's BatchGetSecretValue answer: denied ids move to Errors."""
        with self._lock:
            policy = self._policy_for(req)
        if policy is None:
            return body
        answer = json.loads(body)
        values, errors = answer.get("SecretValues", []), answer.get("Errors", [])
        ids = req.secret_ids or tuple(v.get("Name", "") for v in values)  # Filters: by name
        action = "secretsmanager:GetSecretValue"
        denied = {i: m for i in ids if (m := policy.check(action, i)) is not None}

        def denied_id(value: dict[str, Any]) -> str | None:
            for i in denied:
                if i in (value.get("Name"), value.get("ARN")) or (
                        i.startswith("arn:") and str(value.get("ARN", "")).startswith(i)):
                    return i
            return None

        answer["SecretValues"] = [v for v in values if denied_id(v) is None]
        answer["Errors"] = [e for e in errors if e.get("SecretId") not in denied] + [
            {"SecretId": i, "ErrorCode": "AccessDeniedException", "Message": m}
            for i, m in denied.items()]
        return json.dumps(answer).encode()

    def _record(self, record: CallRecord) -> None:
        with self._lock:
            self._log.append(record)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)
