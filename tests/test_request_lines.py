"""The request log lines: written whole, in order with every other record, within the loop turn."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from hypothesis import given, settings, strategies as st

from pipeline_secrets.web import logs
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


FIELD_VALUES = st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none(),
                         st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(st.text(max_size=12).filter(lambda k: k not in ("time", "level", "logger", "message")),
                              FIELD_VALUES, max_size=8))
def test_a_request_line_is_the_json_object_json_dumps_writes(fields):
    """Values a client chose (a team, a pipeline, a user) included: escaped as JSON's own encoder
    escapes them, so that no field can end the line or add another. (The fields' names are the
    node's own, never those of the line's head.)"""
    stream = io.StringIO()
    logs.configure(stream)
    try:
        logs.request_line(logging.WARNING, dict(fields))
        logs.flush_request_lines()
    finally:
        logs.configure(io.StringIO())
    text = stream.getvalue()
    assert text.endswith("}\n") and text.count("\n") == 1
    written = json.loads(text)
    expected = {"time": written["time"], "level": "warning", "logger": logs.LOGGER_NAME, "message": "request",
                **fields}
    assert text == json.dumps(expected, ensure_ascii=False, default=str) + "\n"
