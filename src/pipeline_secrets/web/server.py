"""Serving the app: uvicorn on an HTTP listener and, with TLS configured, an HTTPS one, in one
event loop; graceful shutdown on SIGTERM or SIGINT.

Sockets are bound before serving, so a port in use is a clean start-up error and port 0 works
(the ``listening`` log line says which port). On the first signal the listeners close (no new
connections), requests in flight finish (up to ``shutdown_timeout`` seconds), and the process
exits 0; a second signal cuts the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from ..errors import ConfigError
from .logs import event


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


def bind(host: str, port: int, flag: str) -> socket.socket:
    """A listening-ready TCP socket on host:port; ``ConfigError`` naming ``flag`` when impossible."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"--bind-ip: cannot listen on '{host}': {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    on_ready: Callable[[list[Listener]], None] | None = None,
) -> None:
    asyncio.run(_serve(app, listeners, shutdown_timeout, on_ready))


async def _serve(
    app: ASGIApp, listeners: list[Listener], shutdown_timeout: float,
    on_ready: Callable[[list[Listener]], None] | None,
) -> None:
    servers = []
    for listener in listeners:
        config = uvicorn.Config(
            app, lifespan="off", log_config=None, access_log=False, server_header=False,
            timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]
            ssl_certfile=str(listener.tls[0]) if listener.tls else None,
            ssl_keyfile=str(listener.tls[1]) if listener.tls else None,
        )
        servers.append(_Server(config))

    def stop(signum: int) -> None:
        first = not any(server.should_exit for server in servers)
        event("stopping: no new connections, finishing requests in flight" if first
              else "stopping now: requests in flight are cut", signal=signal.Signals(signum).name)
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
    event("stopped")
