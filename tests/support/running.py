"""`residency ...` as a subprocess, read until its task is RUNNING (to signal it, or to
change the world under it)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

RESIDENCY = [sys.executable, "-c", "from residency_cli.cli.app import run; run()"]


def start_until_running(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[subprocess.Popen[str], str]:
    """The running process and the stderr it printed up to `→ RUNNING` (failing the test if
    it ended or took longer than `timeout` seconds to get there)."""
    process = subprocess.Popen(
        [*RESIDENCY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=None if env is None else dict(env),
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while "→ RUNNING" not in seen:
        line = process.stderr.readline()
        assert line and time.monotonic() < deadline, seen
        seen += line
    return process, seen


class InterruptedOnce:
    """An ECS client whose first RunTask starts its task, then Ctrl-C arrives before the
    answer reaches the caller (the answer is lost to the user)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.run_tasks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run_task(self, **params: Any) -> Any:
        self.run_tasks += 1
        answer = self.inner.run_task(**params)
        if self.run_tasks == 1:
            raise KeyboardInterrupt
        return answer
