"""When each request reached the in-process sandbox (benchmark code only).

The sandbox counts calls per operation but keeps no timestamps. The benchmarks that need
them (time to RunTask, DescribeTasks per second) wrap the sandbox's own counting hook,
`Faults.record_call`, which its middleware calls once per request from a client, before
moto handles it. Timestamps are `time.monotonic()` of the benchmark process, the same clock
the benchmark reads around what it measures (the server runs in the same process).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any


class CallLog:
    """(monotonic time, "service:Operation") of every counted request since `clear`."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def install(self) -> CallLog:
        from residency_cli.sandbox.world import Faults

        original = Faults.record_call
        log = self

        def record_call(faults: Any, service: str, operation: str) -> Any:
            with log._lock:
                log.entries.append((time.monotonic(), f"{service}:{operation}"))
            return original(faults, service, operation)

        Faults.record_call = record_call  # type: ignore[method-assign]
        return self

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def times(self, operation: str) -> list[float]:
        """Times of `operation` ("RunTask" or "ecs:RunTask")."""
        with self._lock:
            return [
                t
                for t, name in self.entries
                if name == operation or name.split(":", 1)[1] == operation
            ]

    def first(self, operation: str) -> float | None:
        found = self.times(operation)
        return found[0] if found else None


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most calls that fall in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, bisect_left(ordered, start + window) - i)
    return best
