"""moto's server mode in a child process.

Importing moto registers botocore event handlers process-wide, which would
change how *our* boto3 clients behave in tests. Running the server in a
separate interpreter keeps the test process a plain botocore client talking
HTTP to an emulator, as in production. The child prints its port once it
listens and exits when its stdin closes, so it cannot outlive the test run.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO

from pipeline_secrets.dev import reset_moto  # the --dev emulator resets moto the same way

from .output import read_shared_file

_CHILD = """
import logging, os, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request log lines
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # returns when the parent closes the pipe or dies
os._exit(0)  # no state worth flushing; server.stop() would wait a poll interval
"""


@dataclass
class MotoServer:
    """Handle on a running moto server child process."""

    url: str
    process: subprocess.Popen[bytes]
    _stderr: IO[bytes] = field(repr=False)

    def reset(self) -> None:
        """Drop all emulated state (``POST /moto-api/reset``), as ``--dev`` does."""
        host, port = self.url.removeprefix("http://").split(":")
        reset_moto(host, int(port))

    def stop(self, timeout: float = 5.0) -> None:
        """Close the child's stdin (it shuts down) and wait; kill if it hangs."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stderr_text(stderr: IO[bytes]) -> str:
    return read_shared_file(stderr)[-4000:]


def start_moto_server(timeout: float = 30.0) -> MotoServer:
    """Start moto on 127.0.0.1 with a free port; raise if not ready in ``timeout`` s."""
    # stderr goes to a file, not a pipe: an unread pipe fills up and blocks moto.
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready = remaining > 0 and select.select([proc.stdout], [], [], remaining)[0]
        chunk = os.read(proc.stdout.fileno(), 64) if ready else b""
        if not chunk:
            exited = proc.poll() is not None
            if not exited:
                proc.kill()
            proc.wait()
            details = _stderr_text(stderr)
            MotoServer("", proc, stderr).stop()
            why = f"exited ({proc.returncode})" if exited else f"not ready in {timeout}s"
            raise RuntimeError(f"moto server {why}; stderr:\n{details}")
        line += chunk
    return MotoServer(f"http://127.0.0.1:{int(line)}", proc, stderr)
