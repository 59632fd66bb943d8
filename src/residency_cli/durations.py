"""Durations as users write them: `90`, `45s`, `30m`, `1h`, `1h30m`, `2d`."""

from __future__ import annotations

import itertools
import math
import re

# ASCII digits only: Python's \d also matches other scripts' digits (`١٠m`), which no
# shell user means and which read differently in a terminal than in the code.
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_ORDER = "dhms"
# Ten years: longer is a typo (and past what `--since` can subtract from now).
MAX_SECONDS = 3650 * 86400


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; raises ValueError with a message saying what is accepted."""
    if isinstance(text, bool):
        raise ValueError("a duration must be a number of seconds or like 30s, 10m, 1h")
    if isinstance(text, int | float):
        try:
            seconds = float(text)
        except OverflowError:
            seconds = math.inf
    else:
        cleaned = text.strip().lower()
        parts = list(_PART.finditer(cleaned))
        if not cleaned or "".join(p.group(0) for p in parts) != cleaned:
            raise ValueError(f"invalid duration {text!r}: use a number with s, m, h or d (30m, 1h)")
        if len(parts) > 1 and any(not p.group(2) for p in parts):
            raise ValueError(f"invalid duration {text!r}: give every part a unit (1h30m)")
        order = [_UNIT_ORDER.index(p.group(2)) for p in parts if p.group(2)]
        if any(later <= earlier for earlier, later in itertools.pairwise(order)):
            raise ValueError(
                f"invalid duration {text!r}: give each unit once, largest first (1h30m)"
            )
        seconds = sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)
    if not seconds > 0:  # NaN too
        raise ValueError(f"invalid duration {text!r}: it must be greater than zero")
    if seconds > MAX_SECONDS:
        shown = text if len(str(text)) <= 40 else f"{str(text)[:37]}..."
        raise ValueError(f"invalid duration {shown!r}: at most {MAX_SECONDS // 86400:.0f}d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable form of `seconds` (3600 -> 1h, 90 -> 1m30s)."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0s"
