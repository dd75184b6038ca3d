"""Running a command with secrets in its environment (``exec``): its stdout and stderr through a
``Redactor`` each, SIGINT/SIGTERM/SIGHUP (and SIGQUIT, SIGUSR1, SIGUSR2) forwarded, its exit
status ours.

Values only ever reach the command's environment (``execve``'s envp): never our argv, a file, or
a log line. Output is copied as it comes; a redactor holds back at most a tail that could be the
start of a value, and that tail is written once the stream has been quiet for ``hold`` seconds
(50 ms by default), so a prompt without a newline shows at once. The price: a value whose two
halves are written more than ``hold`` apart is not redacted (docs/exec.md).
"""

from __future__ import annotations

import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from ..errors import CommandNotRun
from ..pure.redaction import Redactor

HOLD_SECONDS = 0.05
EXIT_GRACE_SECONDS = 0.2  # after the command exits, what its children still write is copied for this long
CHUNK_BYTES = 64 * 1024  # a pipe's buffer: one read takes what the command wrote
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
# Those a CI runner or a user sends to stop or poke a job; SIGKILL and SIGSTOP cannot be caught,
# and terminal-made ones (Ctrl-C, Ctrl-Z, Ctrl-\) reach the command from the terminal as well.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def command_environment(values: Mapping[str, str], *, clear: bool, parent: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment plus ``values``; with ``clear``, only ``values`` and a minimal
    ``PATH`` (unless ``values`` sets one)."""
    base = {"PATH": MINIMAL_PATH} if clear else dict(parent)
    return {**base, **values}


def run_command(argv: Sequence[str], env: Mapping[str, str], redactor: Redactor | None, *,
                hold: float = HOLD_SECONDS) -> int:
    """Run ``argv`` with ``env``, stdin inherited, stdout and stderr through ``redactor`` (each its
    own stream) or inherited when it is None. Returns the command's exit status, 128+N when
    signal N killed it; ``CommandNotRun`` when it cannot start."""
    forwarder = _Forwarder()
    previous = {signum: signal.signal(signum, forwarder.handle) for signum in FORWARDED_SIGNALS}
    try:
        pipe = subprocess.PIPE if redactor is not None else None
        try:
            child = subprocess.Popen(list(argv), env=dict(env), stdout=pipe, stderr=pipe)
        except FileNotFoundError:
            raise CommandNotRun(f"command not found: {argv[0]}", 127) from None
        except PermissionError:
            raise CommandNotRun(f"command not executable: {argv[0]}", 126) from None
        except OSError as exc:
            raise CommandNotRun(f"cannot run {argv[0]}: {exc.strerror}", 126) from None
        forwarder.attach(child)
        if redactor is not None:
            assert child.stdout is not None and child.stderr is not None
            _Pump(child, {child.stdout.fileno(): (1, redactor), child.stderr.fileno(): (2, redactor.fork())},
                  hold).run()
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status


class _Forwarder:
    """Our handler of the forwarded signals: each goes to the command (those that came before it
    started, once it has)."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.early: list[int] = []

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.child is None:
            self.early.append(signum)
        else:
            self._send(signum)

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        for signum in self.early:
            self._send(signum)

    def _send(self, signum: int) -> None:
        assert self.child is not None
        try:
            self.child.send_signal(signum)  # a no-op once it has been waited for
        except ProcessLookupError:
            pass


@dataclass
class _Stream:
    out: int  # our file descriptor the redacted bytes go to
    redactor: Redactor
    last_read: float = 0.0
    out_closed: bool = False


@dataclass
class _Pump:
    """Copies the command's two pipes through their redactors until both are closed, or until the
    command has exited and they have been quiet for ``EXIT_GRACE_SECONDS`` (a daemon it left
    behind may hold them open for ever)."""

    child: subprocess.Popen[bytes]
    pipes: dict[int, tuple[int, Redactor]]
    hold: float
    streams: dict[int, _Stream] = field(default_factory=dict)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for fd, (out, redactor) in self.pipes.items():
            os.set_blocking(fd, False)
            self.streams[fd] = _Stream(out, redactor)
            selector.register(fd, selectors.EVENT_READ)
        exit_fd = self._exit_fd()
        if exit_fd is not None:
            selector.register(exit_fd, selectors.EVENT_READ)
        exited_at: float | None = None
        last_event = time.monotonic()
        try:
            while self.streams:
                now = time.monotonic()
                if exited_at is None and exit_fd is None and self.child.poll() is not None:
                    exited_at = now
                quiet_since = None if exited_at is None else max(exited_at, last_event)
                events = selector.select(self._timeout(now, quiet_since, polling=exit_fd is None))
                now = time.monotonic()
                for key, _ in events:
                    last_event = now
                    if key.fd == exit_fd:
                        selector.unregister(exit_fd)
                        exited_at = now
                    else:
                        self._read(key.fd, selector, now)
                for stream in self.streams.values():
                    if stream.redactor.holding and now - stream.last_read >= self.hold:
                        self._write(stream, stream.redactor.flush())
                if exited_at is not None and now - max(exited_at, last_event) >= EXIT_GRACE_SECONDS:
                    break
        finally:
            for fd in list(self.streams):
                self._close(fd, selector)
            if exit_fd is not None:
                os.close(exit_fd)
            selector.close()

    def _exit_fd(self) -> int | None:
        """A pidfd that becomes readable when the command exits (Linux 5.3+); None elsewhere,
        where the pump polls the command instead."""
        try:
            return os.pidfd_open(self.child.pid)
        except (AttributeError, OSError):
            return None

    def _timeout(self, now: float, quiet_since: float | None, *, polling: bool) -> float | None:
        """Until the first held tail is due, or the grace after the command's exit ends."""
        deadlines = [stream.last_read + self.hold for stream in self.streams.values() if stream.redactor.holding]
        if quiet_since is not None:
            deadlines.append(quiet_since + EXIT_GRACE_SECONDS)
        elif polling:
            deadlines.append(now + 0.1)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _read(self, fd: int, selector: selectors.BaseSelector, now: float) -> None:
        stream = self.streams[fd]
        try:
            data = os.read(fd, CHUNK_BYTES)
        except BlockingIOError:
            return
        if not data:
            self._close(fd, selector)
            return
        stream.last_read = now
        self._write(stream, stream.redactor.feed(data))
        if stream.out_closed:  # nobody reads it: the command gets EPIPE (SIGPIPE) as without us
            self._close(fd, selector)

    def _close(self, fd: int, selector: selectors.BaseSelector) -> None:
        stream = self.streams.pop(fd)
        self._write(stream, stream.redactor.flush())
        selector.unregister(fd)
        os.close(fd)

    def _write(self, stream: _Stream, data: bytes) -> None:
        """All of ``data`` to our own stdout or stderr. When that is closed (``| head``), the
        command's pipe is closed too, so that the command sees it as it would without us."""
        view = memoryview(data)
        while view and not stream.out_closed:
            try:
                view = view[os.write(stream.out, view):]
            except BrokenPipeError:
                stream.out_closed = True
                _discard(stream.out)
            except BlockingIOError:  # our stdout was handed to us non-blocking
                select.select([], [stream.out], [])


def _discard(fd: int) -> None:
    """Point ``fd`` at /dev/null: what is still written to it (Python's own flush at exit) is dropped."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
