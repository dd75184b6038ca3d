"""The real web node in a subprocess, for tests: ``python -m pipeline_secrets web`` on 127.0.0.1,
port 0 (the ``listening`` log line says which), logs (stderr) and stdout kept in files.

Users and teams shared by the web tests are here too, with the flags that configure them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import bcrypt
import httpx

from .output import read_shared_file

if TYPE_CHECKING:
    from .faultproxy import FaultProxy

REGION = "us-east-1"
HEALTH_TTL = 1.0  # --health-cache-duration of the servers of start_test_server
ACCESS_KEY = "AKIATESTWEBNODE00001"
SECRET_KEY = "test-web-secret-key"

# user -> password. carol's is configured as a bcrypt hash, the others in plain text.
PASSWORDS = {
    "admin": "admin-pw-Xq81",
    "alice": "alice-pw-Lm27",
    "bob": "bob-pw-Rt55",
    "carol": "carol-pw-Hs09",
    "dave": "dave-pw-Kc33",  # in no team
}
# As given to the server: a password may be configured as its bcrypt hash, as Concourse allows.
CAROL_HASH = bcrypt.hashpw(PASSWORDS["carol"].encode(), bcrypt.gensalt(4)).decode()
TEAMS_YAML = """\
teams:
  alpha:
    local_users: [alice, bob]
  beta:
    local_users: [carol]
"""


def user_flags(teams_file: Path) -> list[str]:
    flags = []
    for user, password in PASSWORDS.items():
        if user == "carol":
            password = CAROL_HASH
        flags += ["--add-local-user", f"{user}:{password}"]
    return flags + ["--main-team-local-user", "admin", "--teams-file", str(teams_file)]


def aws_flags() -> list[str]:
    return ["--aws-secretsmanager-region", REGION, "--aws-secretsmanager-access-key", ACCESS_KEY,
            "--aws-secretsmanager-secret-key", SECRET_KEY, "--secret-retry-interval", "1ms"]


def clean_environ(**extra: str) -> dict[str, str]:
    """The test process's environment without AWS, CONCOURSE_ or PIPELINE_SECRETS_ settings, no
    shared AWS config, no instance metadata; plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CONCOURSE_", "PIPELINE_SECRETS_"))}
    empty = tempfile.gettempdir()
    env.update({
        "AWS_CONFIG_FILE": os.path.join(empty, "pipeline-secrets-no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(empty, "pipeline-secrets-no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class WebServer:
    def __init__(self, process: subprocess.Popen[bytes], stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.process = process
        self._stdout = stdout
        self._stderr = stderr
        self.urls: list[str] = []

    @property
    def url(self) -> str:
        return self.urls[0]

    def log_text(self) -> str:
        return read_shared_file(self._stderr)

    def stdout_text(self) -> str:
        return read_shared_file(self._stdout)

    def logs(self) -> list[dict[str, Any]]:
        """Every log line, parsed: each must be one JSON object. A last line still being written
        (no newline yet: the server's write and this read may cross) is left for the next call."""
        text = self.log_text()
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def requests_logged(self) -> list[dict[str, Any]]:
        return [entry for entry in self.logs() if entry.get("message") == "request"]

    def wait_for_log(self, message: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("message") == message:
                    return entry
            time.sleep(0.02)
        raise AssertionError(f"no '{message}' log line in {timeout}s; log:\n{self.log_text()[-4000:]}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait; kill if it hangs. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self._stdout.close()
        self._stderr.close()


def start_web_server(
    args: Sequence[str], env: dict[str, str], *, timeout: float = 30.0, ready_path: str = "/api/v1/health",
) -> WebServer:
    """Start the web node with ``args`` (after ``--bind-ip 127.0.0.1 --bind-port 0``), wait until
    it says where it listens and its ``ready_path`` answers 200."""
    stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_secrets", "web", "--bind-ip", "127.0.0.1", "--bind-port", "0", *args],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env,
    )
    server = WebServer(process, stdout, stderr)
    deadline = time.monotonic() + timeout
    try:
        while not server.urls:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"web node did not start (exit {process.poll()}); stderr:\n{server.log_text()}")
            for line in server.log_text().splitlines():
                if '"listening"' in line:
                    server.urls = json.loads(line)["urls"]
            time.sleep(0.02)
        with httpx.Client(verify=False, timeout=5) as client:
            while client.get(server.url + ready_path).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("web node not ready")
                time.sleep(0.02)
    except BaseException:
        server.close()
        raise
    return server


def start_test_server(proxy: FaultProxy, teams_file: Path, *extra: str) -> WebServer:
    """The web node in front of the fault proxy, with the test users and teams; the secret cache
    is off, since moto is emptied between tests."""
    return start_web_server(
        [*aws_flags(), *user_flags(teams_file), "--no-secret-cache-enabled",
         "--health-cache-duration", f"{HEALTH_TTL}s", *extra],
        clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.url),
    )
