"""A local EC2 instance metadata service (IMDSv2), for tests.

On CI the tool runs with an instance role: botocore's default credential
chain ends with IMDS. To test that path without EC2 we serve the few IMDSv2
endpoints botocore calls; point it here with
``AWS_EC2_METADATA_SERVICE_ENDPOINT=<url>`` (and ``AWS_EC2_METADATA_DISABLED``
unset). Standard library only: the protocol is four tiny endpoints.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


@dataclass(frozen=True)
class ImdsRequest:
    """One request seen by the server."""

    method: str
    path: str
    token_valid: bool  # a valid X-aws-ec2-metadata-token was sent
    status: int


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
        imds = self.server.imds
        token = self.headers.get("X-aws-ec2-metadata-token")
        with imds._lock:
            valid = token in imds._tokens
            imds.requests.append(ImdsRequest(self.command, self.path, valid, status))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if self.path != TOKEN_PATH:
            return self._reply(404, "Not Found")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._reply(400, "Bad Request")
        token = secrets.token_urlsafe(24)
        with self.server.imds._lock:
            self.server.imds._tokens.add(token)
        self._reply(200, token)

    def do_GET(self) -> None:
        imds = self.server.imds
        with imds._lock:
            valid = self.headers.get("X-aws-ec2-metadata-token") in imds._tokens
        if not valid:  # IMDSv2 only: v1 (token-less) requests are refused
            return self._reply(401, "Unauthorized")
        path = self.path.split("?")[0]
        if path == CREDENTIALS_PATH:
            return self._reply(200, imds.role_name)
        if path == CREDENTIALS_PATH + imds.role_name:
            return self._reply(200, json.dumps(imds.credentials()), "application/json")
        if path.rstrip("/") == "/latest/meta-data/placement/availability-zone":
            return self._reply(200, imds.region + "a")
        if path.rstrip("/") == "/latest/meta-data/placement/region":
            return self._reply(200, imds.region)
        self._reply(404, "Not Found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    imds: ImdsServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up: routine
            super().handle_error(request, client_address)


class ImdsServer:
    """IMDSv2 on 127.0.0.1 (random port) serving one instance-role credential."""

    def __init__(
        self,
        access_key_id: str = "AKIAIMDSROLE00000001",
        secret_access_key: str = "imds-role-secret-key",
        session_token: str = "imds-role-session-token",
        role_name: str = "pipeline-secrets-ci",
        region: str = "us-east-1",
        lifetime: timedelta = timedelta(hours=6),
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.role_name = role_name
        self.region = region
        self.lifetime = lifetime
        self.requests: list[ImdsRequest] = []
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def credentials(self) -> dict[str, str]:
        """The role credential document, expiring ``lifetime`` from now."""
        now = datetime.now(timezone.utc)
        return {
            "Code": "Success",
            "LastUpdated": _iso(now),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": _iso(now + self.lifetime),
        }

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ImdsServer not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ImdsServer:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.imds = self
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="ImdsServer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            assert self._thread is not None
            self._thread.join()

    def __enter__(self) -> ImdsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
