"""The request log lines: written whole, in order with every other record, within the loop turn."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from pipeline_secrets.web.logs import JsonLines


def test_request_lines_are_written_whole_in_order_with_other_records():
    stream = io.StringIO()
    lines = JsonLines(stream)
    lines.add('{"n": 1}\n')  # no loop running: written at once
    assert stream.getvalue() == '{"n": 1}\n'
    lines.add('{"n": 2}\n')
    lines.emit(logging.LogRecord("x", logging.WARNING, __file__, 1, "after", None, None))
    written = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [w.get("n", w.get("message")) for w in written] == [1, 2, "after"]


def test_request_lines_on_a_loop_reach_the_stream_within_the_turn():
    stream = io.StringIO()
    lines = JsonLines(stream)

    async def main() -> list[str]:
        for n in range(3):
            lines.add(f'{{"n": {n}}}\n')
        before = stream.getvalue()
        await asyncio.sleep(0)  # one turn
        return [before, stream.getvalue()]

    before, after = asyncio.run(main())
    assert before == "" and after == '{"n": 0}\n{"n": 1}\n{"n": 2}\n'
