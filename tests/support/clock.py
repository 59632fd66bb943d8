"""The one fake clock of the test suite, and the compressed clock for real processes.

Waiting loops take `sleep` and `now` (DESIGN.md, "Time is injected"): a test hands them a
clock whose sleep advances time instantly, so it runs in milliseconds and never races.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FakeClock:
    """Monotonic time that only moves when the code under test sleeps.

    `t` is the current time (start it anywhere: `FakeClock(t=1000.0)`), `sleeps` every sleep
    asked for, and `on_sleep(clock)` runs after each one: the place for a test to make the
    world change at a given time (a task stops, a log line arrives late).
    """

    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[FakeClock], None] | None = None

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep(self)


@dataclass
class CompressedClock:
    """Monotonic time in which a sleep takes at most `slice_` seconds of real time.

    For loops that wait on real processes (the sandbox's simulated hosts): those move in real
    time, so the clock cannot stand still, but back-off intervals need not be waited out.
    """

    slice_: float = 0.02
    skipped: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() + self.skipped

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        real = min(seconds, self.slice_)
        time.sleep(real)
        self.skipped += seconds - real
