"""Durations: the Prometheus forms, and a refusal (with a hint) of everything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m15s250ms", 5415.25),
        ("0s", 0.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1y", 31536000.0),
        ("90s", 90.0),  # a unit need not be "normalised"
        ("0015s", 15.0),
    ],
)
def test_valid(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # a bare number is ambiguous (seconds? milliseconds?): refused with a hint
        ("15", 'write "15s"'),
        ("0", 'write "0s"'),
        ("1.5", 'write "1.5s"'),
        ("", "invalid duration"),
        ("s", "invalid duration"),
        ("15 s", "invalid duration"),  # no spaces
        (" 15s", "invalid duration"),
        ("15S", "invalid duration"),  # units are lower case
        ("1.5s", "invalid duration"),  # no fractions: write 1s500ms
        ("-5s", "invalid duration"),
        ("15sec", "invalid duration"),
        ("1 hour", "invalid duration"),
        ("30s1m", "largest first"),  # units in descending order
        ("1m1m", "largest first"),  # each unit once
        ("1ms1s", "largest first"),
    ],
)
def test_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="units: ms, s, m, h") as caught:
        parse_duration(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.5, "500ms"), (15.0, "15s"), (90.0, "1m30s"), (3600.0, "1h"), (5415.25, "1h30m15s250ms")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**10))
def test_format_round_trips(millis: int) -> None:
    assert parse_duration(format_duration(millis / 1000)) == pytest.approx(millis / 1000)
