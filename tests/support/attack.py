"""Helpers of the attack suite: a victim that keeps asking while an attack runs, the server's peak
memory, raw sockets for what HTTP clients will not send, and clients bound to other loopback
addresses (127.0.0.0/8 is all loopback on Linux), so that "one client address" means something."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def client(url: str, source: str = "127.0.0.1", timeout: float = 60) -> httpx.Client:
    """An HTTP client whose connections come from loopback address ``source``."""
    return httpx.Client(base_url=url, trust_env=False, timeout=timeout,
                        transport=httpx.HTTPTransport(local_address=source))


@dataclass
class Victim:
    """Asks ``ask()`` in a loop (in a thread) until told to stop, keeping every answer's status;
    ``answered_during`` counts the good answers given while ``attack_running`` was still set."""

    ask: Callable[[], httpx.Response]
    expect: Callable[[httpx.Response], bool]
    attack_running: threading.Event
    answered_during: int = 0
    bad: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Victim:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.ask()
            except httpx.HTTPError as exc:
                self.bad.append(f"{type(exc).__name__}: {exc}")
                continue
            if not self.expect(response):
                self.bad.append(f"{response.status_code}: {response.text[:200]}")
            elif self.attack_running.is_set():
                self.answered_during += 1

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)


def raw_exchange(url: str, payload: bytes, source: str = "127.0.0.1", timeout: float = 10) -> bytes:
    """Send ``payload`` on a fresh connection and read until the server closes or ``timeout``."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def open_idle(url: str, count: int, source: str) -> list[socket.socket]:
    """``count`` connections that send nothing."""
    parts = urlsplit(url)
    sockets = []
    for _ in range(count):
        try:
            sockets.append(socket.create_connection((parts.hostname, parts.port), timeout=5,
                                                    source_address=(source, 0)))
        except OSError:
            break
    return sockets


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes ``sock`` (recv gives b"" or a reset) within ``within`` s."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
