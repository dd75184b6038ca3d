"""Serving the app: uvicorn on an HTTP listener and, with TLS configured, an HTTPS one, in one
event loop; graceful shutdown on SIGTERM or SIGINT.

Sockets are bound before serving, so a port in use is a clean start-up error and port 0 works
(the ``listening`` log line says which port). On the first signal the listeners close (no new
connections), requests in flight finish (up to ``shutdown_timeout`` seconds; those still running
then are answered 503 in JSON), and the process is gone within ``shutdown_timeout`` plus a
second, whatever its worker threads are waiting for; a second signal cuts the wait short.

Connections are budgeted (``ConnectionLimits``): a total and a per-client cap checked as each
connection is accepted, a deadline for a request's headers, and uvicorn's keep-alive timeout, so
idle or slow clients cannot hold the node's sockets. uvicorn has the keep-alive timeout but no
header deadline nor an accept-time cap, hence the protocol subclass below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import ConfigError
from .heap import keep_large_blocks_returnable
from .logs import event


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1024
    max_per_client: int = 128
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    send_timeout: float = 30.0  # a window in which a client must take a buffered answer ...
    min_send_bytes: int = 256 * 1024  # ... or at least this much of it; connection dropped otherwise
    forwarded_allow_ips: str | None = None  # trust X-Forwarded-For from these addresses

    @property
    def max_new(self) -> int:
        """Connections that have not had an answer yet, in all: at most half of them."""
        return max(1, self.max_connections // 2)

    @property
    def max_new_per_client(self) -> int:
        """... and of one client address: half of its cap."""
        return max(1, self.max_per_client // 2)


@dataclass
class Listener:
    sock: socket.socket
    tls: tuple[Path, Path] | None = None  # (certificate, key)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


def bind(host: str, port: int, flag: str, *, reuse_port: bool = False) -> socket.socket:
    """A listening-ready TCP socket on host:port; ``ConfigError`` naming ``flag`` when impossible.
    ``reuse_port``: several processes (``--workers``) bind the same port and the kernel spreads
    the connections among those listening."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"--bind-ip: cannot listen on '{host}': {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{flag}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def check_tls(cert: Path, key: Path) -> None:
    """Load the certificate and key once now, so a bad pair stops start-up with a clear message."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--tls-cert/--tls-key: cannot use '{cert}' and '{key}': "
                          f"{getattr(exc, 'strerror', None) or exc}") from None


SEND_BUFFER_BYTES = 128 * 1024  # SO_SNDBUF of each connection (Linux keeps twice this)
CORK_BYTES = 16 * 1024  # writes smaller than this wait for the end of the loop turn, joined


class CorkedWrites:
    """The bytes a connection's answers give ``transport.write``: counted, and the small writes of
    one loop turn joined into one (an answer's head and its body were two send() calls; a cached
    lookup's answer is now one).

    ``sent`` answers how many bytes the client has taken (those handed to the transport less
    what it still buffers: asyncio tells neither directly). The instance's own ``write`` and
    ``close`` are replaced (``close`` sends what waits here first), so nothing else of the
    transport is slowed down; after ``abort`` the bytes waiting here are dropped, as the
    transport's own buffer is. The protocol flushes at the end of each answer, so what the send
    watchdog sees buffered in the transport is, as before, what the client has not taken."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._written = 0  # handed to the transport
        self._write = transport.write
        self._close = transport.close
        transport.write = self.write  # type: ignore[method-assign]
        transport.close = self.close  # type: ignore[method-assign]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            if len(data) >= CORK_BYTES:
                self._written += len(data)
                self._write(data)
                return
            self._loop.call_soon(self.flush)
        self._pending.append(data if type(data) is bytes else bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= CORK_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if self._transport.is_closing():  # aborted (a cut connection): dropped with the rest
            return
        self._written += len(data)
        self._write(data)

    def close(self) -> None:
        self.flush()
        self._close()

    def sent(self) -> int:
        return self._written - self._transport.get_write_buffer_size()


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing at once the connections over the caps (all, per client
    address, and of those not yet answered once: a flood of slow first requests cannot take every
    socket), those whose request headers do not arrive within ``header_timeout``, and those that
    leave bytes unread: whenever an answer is buffered, the client must take all of it, or at least
    ``min_send_bytes``, in each ``send_timeout`` window (a bare close() would wait for ever for a
    buffer that never drains, keeping the connection's place in the caps).

    At a cap, a client holding fewer connections than the busiest one takes its place (one of the
    busiest client's connections is cut): a few addresses cannot fill the node for everyone.

    The header deadline is kept by one sweep over the connections every ``sweep_interval``
    (a quarter of ``header_timeout``, at most a second) rather than a timer per request (arming
    and cancelling one per request was a measurable share of a cached lookup): a connection whose
    request headers have not come ``header_timeout`` after its first bytes (or its opening) is
    closed at most ``sweep_interval`` late."""
    per_client: dict[str, set[Guarded]] = {}
    new_per_client: dict[str, set[Guarded]] = {}
    new_total = [0]
    everyone: set[Guarded] = set()
    sweep_interval = min(1.0, limits.header_timeout / 4)
    sweeping: list[asyncio.TimerHandle] = []  # the next sweep, while there are connections

    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        sweeping.clear()
        late = loop.time() - limits.header_timeout
        for connection in [c for c in everyone if c._waiting_since is not None and c._waiting_since <= late]:
            connection._headers_late()
        if everyone:
            sweeping.append(loop.call_later(sweep_interval, sweep, loop))

    def keep_sweeping(loop: asyncio.AbstractEventLoop) -> None:
        if not sweeping:
            sweeping.append(loop.call_later(sweep_interval, sweep, loop))

    def add(table: dict[str, set[Guarded]], key: str, connection: Guarded) -> None:
        table.setdefault(key, set()).add(connection)

    def discard(table: dict[str, set[Guarded]], key: str, connection: Guarded) -> None:
        mine = table.get(key)
        if mine is not None:
            mine.discard(connection)
            if not mine:
                del table[key]

    def make_room(table: dict[str, set[Guarded]], key: str) -> bool:
        """Cut a connection of the busiest client when ``key``'s client holds fewer than it."""
        mine = len(table.get(key, ()))
        busiest = max(table.values(), key=len, default=set())
        if len(busiest) <= mine + 1:
            return False
        victim = next((c for c in busiest if c._idle()), None) or next(iter(busiest))
        victim._cut()
        return True

    class Guarded(H11Protocol):
        _waiting_since: float | None = None  # loop time the headers of ``_waiting_for``'s successor are awaited from
        _waiting_for: object = None
        _send_timer: asyncio.TimerHandle | None = None
        _sent_mark = 0
        _client_key: str | None = None
        _new = False  # counted among the connections not yet answered

        _sent: Callable[[], int] = staticmethod(lambda: 0)  # type: ignore[assignment]
        _flush: Callable[[], None] = staticmethod(lambda: None)  # type: ignore[assignment]

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            writes = CorkedWrites(transport, self.loop)
            self._sent, self._flush = writes.sent, writes.flush
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            key = str(peer[0]) if peer else ""
            if not (self._admitted(key)):
                _refusals.note()
                transport.abort()
                return
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    # The kernel's send queue is bounded, so that answers a client does not read pile
                    # up where the send watchdog sees them (asyncio's buffer), not in the kernel: Linux
                    # would let each connection's queue grow to megabytes, and count it as taken.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
                if hasattr(socket, "TCP_USER_TIMEOUT"):  # unacknowledged data: dropped
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(limits.send_timeout * 1000))
            self._client_key = key
            add(per_client, key, self)
            add(new_per_client, key, self)
            everyone.add(self)
            new_total[0] += 1
            self._new = True
            self._arm()
            keep_sweeping(self.loop)

        def _admitted(self, key: str) -> bool:
            if len(everyone) >= limits.max_connections and not make_room(per_client, key):
                return False
            if len(per_client.get(key, ())) >= limits.max_per_client:
                return False
            if new_total[0] >= limits.max_new and not make_room(new_per_client, key):
                return False
            return len(new_per_client.get(key, ())) < limits.max_new_per_client

        def _idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _cut(self) -> None:
            """Reset the connection: what the kernel still holds for it goes too (a plain close
            would leave the unread bytes queued before its FIN, for as long as the client likes)."""
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
            self._forget()  # now: the place is given back at once, connection_lost comes later

        def _forget(self) -> None:
            key = self._client_key
            if key is not None:
                self._client_key = None
                discard(per_client, key, self)
                everyone.discard(self)
                self._answered(key)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._send_timer is not None:
                self._send_timer.cancel()
            self._waiting_since = None
            self._forget()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self._answered(self._client_key)
            self._flush()  # the whole answer, head and body, in one write
            self._watch()
            super().on_response_complete()

        def _answered(self, key: str | None) -> None:
            if self._new and key is not None:
                self._new = False
                new_total[0] -= 1
                discard(new_per_client, key, self)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            if (cycle is None or cycle.response_complete) and (self._waiting_since is None or self._waiting_for is not cycle):
                self._arm()  # the first bytes of the next request on a kept-alive connection
            super().data_received(data)

        def _arm(self) -> None:
            self._waiting_for = self.cycle
            self._waiting_since = self.loop.time()

        def _headers_late(self) -> None:
            """Called by the sweep once ``header_timeout`` has passed since ``_arm``."""
            self._waiting_since = None
            if self.cycle is self._waiting_for and not self.transport.is_closing():
                self._flush()
                self._watch()
                self.transport.close()  # no request began in time: nothing to answer

        def pause_writing(self) -> None:
            super().pause_writing()
            self._watch()

        def _watch(self) -> None:
            """Start the send watchdog when bytes wait for the client."""
            if self._send_timer is None and self.transport.get_write_buffer_size() > 0:
                self._sent_mark = self._sent()
                self._send_timer = self.loop.call_later(limits.send_timeout, self._check_sent)

        def _check_sent(self) -> None:
            self._send_timer = None
            if self.transport.get_write_buffer_size() == 0:
                return
            taken = self._sent() - self._sent_mark
            if taken < limits.min_send_bytes:
                self._cut()  # drops what the client left unread
            else:
                self._watch()

    return Guarded


class _Refusals:
    """Counts connections refused at the caps; logs at most once a second."""

    def __init__(self) -> None:
        self.count = 0
        self._logged = 0.0

    def note(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._logged >= 1.0:
            self._logged = now
            event("connections refused: over --max-connections or --max-connections-per-client",
                  logging.WARNING, refused_total=self.count)


_refusals = _Refusals()


class _OncePerSecond(logging.Filter):
    """asyncio logs every failed accept() (out of file descriptors: once per loop turn);
    one line a second says as much, with how many were dropped."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        # Each failed accept also leaves a retry timer (asyncio's), which fails once the listener is closed.
        if "accept" not in text and "_start_serving" not in text:
            return True
        now = time.monotonic()
        if now - self._last < 1.0:
            self._dropped += 1
            return False
        self._last = now
        if self._dropped:
            record.msg = f"{record.msg} ({self._dropped} more like it in the last second)"
            self._dropped = 0
        return True


def run_workers(count: int, env: dict[str, str], shutdown_timeout: float) -> int:
    """Start ``count`` copies of this command as workers (``env`` names the ports they bind, with
    SO_REUSEPORT) and wait: SIGTERM and SIGINT are passed on to every worker; when one worker ends,
    the others are stopped too. The status is the first non-zero status of a worker, else 0.

    Processes, not threads: Python runs one thread at a time, so more cores need more processes;
    and not a fork of this one: it has AWS and Redis clients and threads that must not be copied."""
    import subprocess

    children = [subprocess.Popen([sys.executable, "-m", "pipeline_secrets", *sys.argv[1:]], env=env)
                for _ in range(count)]
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    event("workers started", workers=count, pids=[child.pid for child in children])
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    if not stopping.is_set():  # one died on its own: the node is not whole, stop it all
        event("a worker ended: stopping the others", logging.WARNING,
              statuses=[child.poll() for child in children])
        forward(signal.SIGTERM, None)
    deadline = time.monotonic() + shutdown_timeout + 5
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return next((child.returncode for child in children if child.returncode not in (0, None)), 0)


def raise_file_limit(needed: int) -> int:
    """Raise this process's open-file limit towards ``needed`` (up to the hard limit); returns
    the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to ``serve`` below (two servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


def serve(
    app: ASGIApp,
    listeners: list[Listener],
    *,
    shutdown_timeout: float,
    limits: ConnectionLimits = ConnectionLimits(),
    on_ready: Callable[[list[Listener]], None] | None = None,
) -> None:
    """Serve until a signal; never returns: the process exits 0 once the listeners are done (its
    worker threads may still wait on AWS: nothing they would do matters any more)."""
    logging.getLogger("asyncio").addFilter(_OncePerSecond())
    keep_large_blocks_returnable()
    asyncio.run(_serve(app, listeners, shutdown_timeout, limits, on_ready))
    _exit(0)


def _exit(status: int) -> None:
    event("stopped")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(status)


async def _serve(
    app: ASGIApp, listeners: list[Listener], shutdown_timeout: float, limits: ConnectionLimits,
    on_ready: Callable[[list[Listener]], None] | None,
) -> None:
    servers = []
    protocol = guarded_protocol(limits)
    for listener in listeners:
        options: dict[str, Any] = {}
        if limits.forwarded_allow_ips:
            options = {"proxy_headers": True, "forwarded_allow_ips": limits.forwarded_allow_ips}
        else:
            options = {"proxy_headers": False}
        config = uvicorn.Config(
            app, lifespan="off", log_config=None, access_log=False, server_header=False, http=protocol,
            timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]
            timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]
            ssl_certfile=str(listener.tls[0]) if listener.tls else None,
            ssl_keyfile=str(listener.tls[1]) if listener.tls else None,
            **options,
        )
        servers.append(_Server(config))

    def stop(signum: int) -> None:
        first = not any(server.should_exit for server in servers)
        event("stopping: no new connections, finishing requests in flight" if first
              else "stopping now: requests in flight are cut", signal=signal.Signals(signum).name)
        if first:  # whatever happens to the loop, the process is gone a second after the grace period
            watchdog = threading.Timer(shutdown_timeout + 0.9, _exit, (0,))
            watchdog.daemon = True
            watchdog.start()
        for server in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    try:
        tasks = [asyncio.ensure_future(server.serve(sockets=[listener.sock]))
                 for server, listener in zip(servers, listeners)]
        while not all(server.started for server in servers) and not any(task.done() for task in tasks):
            await asyncio.sleep(0.01)
        if all(server.started for server in servers):
            event("listening", urls=[listener.url for listener in listeners])
            if on_ready is not None:
                on_ready(listeners)
        for task in tasks:  # one listener ending stops them all
            task.add_done_callback(lambda _: [setattr(server, "should_exit", True) for server in servers])
        await asyncio.gather(*tasks)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
