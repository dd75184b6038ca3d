"""The web node's writes: the small writes of one loop turn joined, none lost nor reordered."""

from __future__ import annotations

import asyncio

from pipeline_secrets.web.server import CORK_BYTES, CorkedWrites


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.unread = 0  # what the "client" has not taken

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return self.unread


def test_small_writes_of_one_turn_go_out_as_one_in_order_and_close_sends_what_waits():
    async def main() -> Transport:
        transport = Transport()
        writes = CorkedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"head ")
        transport.write(bytearray(b"body"))
        assert transport.writes == []  # not yet: the turn is not over
        await asyncio.sleep(0)
        assert transport.writes == [b"head body"]
        transport.write(b"x" * CORK_BYTES)  # large: at once
        assert transport.writes[-1] == b"x" * CORK_BYTES
        transport.write(b"last")
        transport.close()  # sends it first
        assert transport.writes[-1] == b"last" and transport.closed
        transport.unread = 4
        assert writes.sent() == len(b"head body") + CORK_BYTES + len(b"last") - 4
        return transport

    asyncio.run(main())


def test_what_waits_is_dropped_once_the_transport_is_aborted():
    async def main() -> None:
        transport = Transport()
        writes = CorkedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"unread")
        transport.closed = True  # abort(): no close() call through us
        await asyncio.sleep(0)
        assert transport.writes == [] and writes.sent() == 0

    asyncio.run(main())
