"""Pure unit tests of Go-syntax durations (spec section 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline_secrets.config.durations import parse_duration, to_seconds


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0", 0.0),
        ("+0", 0.0),
        ("-0", 0.0),
        ("1s", 1.0),
        ("+1s", 1.0),
        ("-1s", -1.0),
        ("10s", 10.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2h45m30s", 9930.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1s500ms", 1.5),
        ("100us", 1e-4),
        ("100µs", 1e-4),  # U+00B5 micro sign
        ("100μs", 1e-4),  # U+03BC greek mu
        ("1000000ns", 1e-3),
        ("0s", 0.0),
        ("0ms", 0.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "text",
    ["", " ", "1", "10", "1m1", "1x", "abc", "s", "ms", "-", "+", "1h-1m", "1m 1s", "1.2.3s", "1S", "1M", "1d",
     "NaN", "inf", "--1s", "1e3s", "0x10s"],
)
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_error_message_quotes_input_and_shows_syntax():
    with pytest.raises(ValueError) as info:
        parse_duration("5 minutes")
    assert "'5 minutes'" in str(info.value)
    assert "1h30m" in str(info.value)


@pytest.mark.parametrize(
    "value, seconds",
    [("1m", 60.0), (timedelta(minutes=1, seconds=30), 90.0), (timedelta(milliseconds=250), 0.25), (5, 5.0),
     (2.5, 2.5), (0, 0.0)],
)
def test_to_seconds(value, seconds):
    result = to_seconds(value)
    assert isinstance(result, float)
    assert result == seconds


@pytest.mark.parametrize("value", [True, False])
def test_to_seconds_refuses_booleans(value):
    with pytest.raises(ValueError):
        to_seconds(value)


def test_to_seconds_refuses_bad_strings():
    with pytest.raises(ValueError, match="invalid duration '1'"):
        to_seconds("1")
