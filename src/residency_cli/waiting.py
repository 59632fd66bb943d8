"""Wait for tasks: one batched DescribeTasks per tick, an adaptive interval, injected time.

ECS answers DescribeTasks for up to 100 tasks at once, so waiting for ten tasks costs the
same as waiting for one. The interval starts at the floor (1 s: never more than one call a
second per process), stays there while things change, and backs off to a bounded ceiling
while nothing does. Log following shares the same tick (see dispatch.follow_run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

DESCRIBE_BATCH = 100
Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass
class PollInterval:
    """The adaptive interval: `floor` while things change, then ×`factor` up to `ceiling`."""

    floor: float = 1.0
    ceiling: float = 10.0
    factor: float = 1.5
    quiet_grace: float = 20.0
    current: float = 1.0
    _quiet_since: float | None = None

    def __post_init__(self) -> None:
        self.current = self.floor

    def next(self, now: float, *, changed: bool, throttled: bool = False) -> float:
        """The pause before the next tick, given whether this tick saw a change."""
        if throttled:
            self.current = self.ceiling
            self._quiet_since = now
        elif changed or self._quiet_since is None:
            self.current = self.floor
            self._quiet_since = now
        elif now - self._quiet_since >= self.quiet_grace:
            self.current = min(self.ceiling, self.current * self.factor)
        return self.current


def describe_tasks(ecs: ECSClient, cluster: str, task_refs: Sequence[str]) -> list[dict[str, Any]]:
    """Describe tasks in batches of 100 (one call for up to 100), with their tags."""
    described: list[dict[str, Any]] = []
    with aws_errors("describing tasks"):
        for start in range(0, len(task_refs), DESCRIBE_BATCH):
            batch = list(task_refs[start : start + DESCRIBE_BATCH])
            response = ecs.describe_tasks(cluster=cluster, tasks=batch, include=["TAGS"])
            described.extend(response.get("tasks", []))  # type: ignore[arg-type]
    return described


@dataclass
class Deadline:
    """When waiting gives up; `None` seconds means never."""

    now: Clock
    seconds: float | None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.now()

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.now() - self.started >= self.seconds

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - (self.now() - self.started))


def monotonic() -> float:
    return time.monotonic()
