"""The redactor (``pipeline_secrets.Redactor``): every form a value takes is replaced, nothing else
changes, leftmost-longest without overlaps, and a stream cut anywhere gives what the whole
stream gives (hypothesis)."""

from __future__ import annotations

import base64
import json
import os
import random
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline_secrets import Redactor
from pipeline_secrets.pure.redaction import REPLACEMENT, value_forms

R = REPLACEMENT
SECRET = "s3cr3t/Pa ss+wörd=\"x\""


def streamed(redactor: Redactor, data: bytes, cuts: list[int]) -> bytes:
    out, start = [], 0
    for cut in sorted(cuts) + [len(data)]:
        out.append(redactor.feed(data[start:cut]))
        start = max(start, cut)
    return b"".join(out) + redactor.flush()


# --- what is replaced --------------------------------------------------------------------------


@pytest.mark.parametrize("form", [
    SECRET.encode(),
    base64.b64encode(SECRET.encode()),
    base64.b64encode(SECRET.encode()).rstrip(b"="),
    base64.urlsafe_b64encode(SECRET.encode()),
    base64.urlsafe_b64encode(SECRET.encode()).rstrip(b"="),
    quote(SECRET).encode(),
    quote(SECRET, safe="").encode(),
    re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(SECRET, safe="")).encode(),
    quote_plus(SECRET).encode(),
    json.dumps(SECRET)[1:-1].encode(),
    json.dumps(SECRET, ensure_ascii=False)[1:-1].encode(),
])
def test_each_form_of_a_value_is_replaced_and_nothing_else(form):
    redactor = Redactor({"P": SECRET})
    text = b"before <" + form + b"> after\n"
    assert redactor.redact(text) == b"before <" + R + b"> after\n"


@pytest.mark.parametrize("offset", [0, 1, 2])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_a_value_inside_a_longer_encoded_blob_is_replaced(offset, encode):
    value = "hunter2-and-more"
    blob = encode(b"{" * offset + b'{"password": "' + value.encode() + b'", "user": "ci"}')
    out = Redactor({"P": value}).redact(b"auth=" + blob + b"\n")
    assert R in out
    # What is left decodes to no more than the neighbours' bits: the value's own characters are gone.
    assert not any(form in out for form in value_forms(value))
    assert out.startswith(b"auth=" + blob[:4 * ((offset + 14) // 3) - 4])


def test_each_line_of_a_multiline_value_is_replaced_on_its_own():
    key = "-----BEGIN KEY-----\r\nAAAAB3NzaC1yc2E\nxyz\n-----END KEY-----"
    redactor = Redactor({"KEY": key})
    text = b"whole: " + key.encode() + b"\nindented:\n    AAAAB3NzaC1yc2E\n    -----END KEY-----\n xyz\n"
    assert redactor.redact(text) == b"whole: " + R + b"\nindented:\n    " + R + b"\n    " + R + b"\n xyz\n"


def test_a_value_stored_with_surrounding_whitespace_is_replaced_without_it():
    redactor = Redactor({"T": "  token-value\t\n"})
    assert redactor.redact(b"token=token-value;") == b"token=" + R + b";"


def test_overlapping_values_are_replaced_together_and_leave_nothing():
    redactor = Redactor({"A": "abcd", "B": "abcdefgh", "C": "cdefxyz", "D": "ghij"})
    assert redactor.redact(b"abcdefghij") == R  # abcdefgh and ghij overlap: one run
    assert redactor.redact(b"abcdefxyz") == R  # abcd and cdefxyz overlap
    assert redactor.redact(b"zcdefxyzabcd") == b"z" + R + R  # side by side: two
    pair = Redactor({"K": "k3y-AAAA-BBBB", "L": "BBBB-CCCC-9z"})
    streamed = b"".join(pair.feed(bytes([byte])) for byte in b"x k3y-AAAA-BBBB-CCCC-9z y") + pair.flush()
    assert streamed == pair.redact(b"x k3y-AAAA-BBBB-CCCC-9z y") == b"x " + R + b" y"


def test_encodings_of_other_languages_are_redacted():
    value = "s3cr<et>&pass/word!(x)"
    redactor = Redactor({"V": value})
    go_json = value.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("/", "\\/")
    encode_uri_component = "s3cr%3Cet%3E%26pass%2Fword!(x)"
    go_path_escape = "s3cr%3Cet%3E&pass%2Fword%21%28x%29"
    for form in (go_json, go_json.replace("\\/", "/"), encode_uri_component, go_path_escape):
        assert redactor.redact(b"[" + form.encode() + b"]") == b"[" + R + b"]", form


def test_a_value_whose_trimmed_form_or_a_line_is_short_is_named():
    assert Redactor({"PIN": "735\n", "KEY": "a-long-line\nab\n", "OK": "long-enough"}).skipped == ("KEY", "PIN")


def test_too_much_to_redact_is_refused_with_a_message():
    from pipeline_secrets import LimitError

    with pytest.raises(LimitError, match="too much to redact"):
        Redactor({f"v{i}": f"value-{i:06d}-" + "x" * 64 for i in range(20_000)})


def test_short_values_are_skipped_by_name_and_empty_ones_silently():
    redactor = Redactor({"$LONG": "long-value", "$SHORT": "abc", "$EMPTY": "", "((x))": "xy"}, min_length=4)
    assert redactor.skipped == ("$SHORT", "((x))")
    assert redactor.redact(b"abc xy long-value") == b"abc xy " + R
    assert Redactor({"S": "abc"}, min_length=3).redact(b"-abc-") == b"-" + R + b"-"
    with pytest.raises(ValueError):
        Redactor({}, min_length=0)


def test_lines_and_forms_shorter_than_the_minimum_are_left():
    redactor = Redactor({"V": "first-line\nab\nlast-line"}, min_length=4)
    assert redactor.redact(b"ab first-line last-line") == b"ab " + R + b" " + R


def test_values_with_lone_surrogates_do_not_break_the_redactor():
    redactor = Redactor({"S": "ab\udc80cd-value", "T": "xy\ud800zw-value"})
    assert redactor.redact(b"[ab\x80cd-value]") == b"[" + R + b"]"  # the byte Python decoded as \udc80
    assert redactor.redact("[xy\ud800zw-value]".encode("utf-8", "surrogatepass")) == b"[" + R + b"]"


def test_a_custom_replacement():
    assert Redactor({"V": "value-1"}, replacement=b"***").redact(b"[value-1]") == b"[***]"


def test_binary_output_passes_through_with_only_exact_matches_replaced():
    noise = random.Random(7).randbytes(200_000).replace(b"secret-bin", b"")
    data = noise[:1000] + b"secret-bin" + noise[1000:] + b"\xff\xfe"
    out = Redactor({"B": "secret-bin"}).redact(data)
    assert out == noise[:1000] + R + noise[1000:] + b"\xff\xfe"


def test_nothing_to_redact_passes_everything_at_once():
    redactor = Redactor({})
    assert redactor.feed(b"abc") == b"abc" and not redactor.holding
    assert redactor.flush() == b""


# --- streaming ---------------------------------------------------------------------------------


def test_a_tail_that_could_start_a_value_is_held_and_nothing_else():
    redactor = Redactor({"P": "hunter22"})
    assert redactor.feed(b"hello world\n") == b"hello world\n" and not redactor.holding
    assert redactor.feed(b"password: hun") == b"password: "
    assert redactor.holding
    assert redactor.feed(b"t") == b""
    assert redactor.feed(b"x") == b"huntx"  # no longer a start: written at once
    assert redactor.feed(b"Prompt: ") == b"Prompt: " and not redactor.holding
    assert redactor.feed(b"hunter") == b""
    assert redactor.flush() == b"hunter"  # the stream went quiet: what was held goes out as it is
    assert redactor.feed(b"22") == b"22"


def test_a_value_written_one_byte_at_a_time_is_replaced():
    value = "x" * 40 + "-long-value-past-the-prefix-set-" + "y" * 40  # longer than the prefix set's entries
    redactor = Redactor({"P": value})
    text = ("log: " + value + " and its base64 " + base64.b64encode(value.encode()).decode() + " end\n").encode()
    assert streamed(redactor, text, list(range(len(text)))) == b"log: " + R + b" and its base64 " + R + b" end\n"


def test_at_most_the_longest_pattern_minus_one_byte_is_held():
    redactor = Redactor({"P": "abcdefgh"})
    longest = max(map(len, value_forms("abcdefgh")))
    stream, written = b"abcdefg" * 50, b""
    for fed in range(1, len(stream) + 1):
        written += redactor.feed(stream[fed - 1:fed])
        assert fed - len(written) <= longest - 1
    assert redactor.holding
    assert written + redactor.flush() == stream  # "abcdefg" never becomes the value: all of it, unchanged


def test_a_fork_has_the_patterns_and_a_stream_of_its_own():
    stdout = Redactor({"P": "hunter22"}, min_length=5)
    stderr = stdout.fork()
    assert stdout.feed(b"hunt") == b"" and stderr.feed(b"er22") == b"er22"
    assert stdout.feed(b"er22!") == R + b"!"
    assert stderr.skipped == stdout.skipped and stderr.replacement == stdout.replacement


# --- properties --------------------------------------------------------------------------------

# Values without parentheses and not inside "redacted": no value can then be made out of the
# replacement and its neighbours, so "no value in the output" is exact.
# Values of three letters overlap each other and the text all the time (many held tails).
VALUE = (st.text(st.characters(blacklist_characters="()", blacklist_categories=("Cs",)), min_size=4, max_size=40)
         | st.text("abc", min_size=4, max_size=12))
FORMS = [
    lambda v: v.encode(),
    lambda v: base64.b64encode(v.encode()),
    lambda v: base64.urlsafe_b64encode(v.encode()).rstrip(b"="),
    lambda v: quote(v, safe="").encode(),
    lambda v: quote_plus(v).encode(),
    lambda v: json.dumps(v)[1:-1].encode(),
    lambda v: json.dumps(v, ensure_ascii=False)[1:-1].encode(),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(VALUE.filter(lambda v: v not in "redacted"), min_size=1, max_size=5, unique=True),
    text=st.binary(max_size=300) | st.text(max_size=300).map(str.encode) | st.text("abc", max_size=300).map(str.encode),
    data=st.data(),
)
def test_a_stream_cut_anywhere_redacts_as_the_whole_stream_does(values, text, data):
    pieces = bytearray(text)
    inserted: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 8))):
        value = data.draw(st.sampled_from(values))
        form = data.draw(st.sampled_from(FORMS))(value)
        at = data.draw(st.integers(0, len(pieces)))
        pieces[at:at] = form
        inserted.append(form)
    stream = bytes(pieces)
    redactor = Redactor({f"V{i}": value for i, value in enumerate(values)})
    whole = redactor.redact(stream)
    cuts = (list(range(len(stream))) if data.draw(st.booleans(), label="one byte per feed")
            else data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    assert streamed(redactor, stream, cuts) == whole
    assert not redactor.holding
    # Every form of every value: an occurrence is either replaced or cut into by an earlier match.
    for value in values:
        assert not [form for form in value_forms(value) if form in whole and form not in R]
    assert inserted


def test_one_megabyte_in_random_chunks_matches_the_whole():
    rng = random.Random(11)
    values = {f"V{i}": os.urandom(12).hex() for i in range(50)}
    lines = []
    for n in range(20_000):
        line = f"{n:06d} INFO step ran ok"
        if rng.random() < 0.05:
            line += " token=" + rng.choice(list(values.values()))
        lines.append(line)
    stream = ("\n".join(lines) + "\n").encode()
    redactor = Redactor(values)
    cuts = [rng.randrange(len(stream)) for _ in range(500)]
    out = streamed(redactor, stream, cuts)
    assert out == redactor.redact(stream)
    assert out.count(R) == stream.count(b"token=")
    assert not any(value.encode() in out for value in values.values())


def test_numbers_inside_a_mapping_var_are_redacted_on_their_own():
    from pipeline_secrets.pure.environment import string_leaves

    leaves = dict(string_leaves({"pin": 48213795, "ratio": 0.75, "on": True, "user": "app"}, "((db))"))
    assert leaves == {"((db)).pin": "48213795", "((db)).ratio": "0.75", "((db)).user": "app"}
    assert Redactor(leaves).redact(b"pin field: 48213795") == b"pin field: " + R
