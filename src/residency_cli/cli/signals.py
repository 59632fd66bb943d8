"""SIGTERM is handled as SIGINT (CONTRACT.md section 8): a CI runner or a supervisor that
stops `residency run` gets the same outcome as Ctrl-C (the task left running, its id and
the `attach` command printed, the journal told), and exit 143 instead of 130."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be."""


_received: list[int] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` (a KeyboardInterrupt); restored after."""
    _received.clear()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(code: int) -> int:
    """130 (interrupted) becomes 143 when the interruption was SIGTERM."""
    return TERMINATED_EXIT if code == INTERRUPTED_EXIT and _received else code
