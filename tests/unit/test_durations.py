from __future__ import annotations

import pytest

from residency_cli.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("45s", 45), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), (5, 5)],
)
def test_parses(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5", "0", "1h30", "m"])
def test_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_formats() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(3600) == "1h"
