"""Wait for tasks: one batched DescribeTasks per tick, an adaptive interval, injected time.

ECS answers DescribeTasks for up to 100 tasks at once, so waiting for ten tasks costs the
same as waiting for one. The interval starts at the floor (1 s: never more than one call a
second per process), stays there while things change, and backs off to a bounded ceiling
while nothing does. Log following shares the same tick (see dispatch.follow_run).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors
from residency_cli.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

DESCRIBE_BATCH = 100
# Never more than one DescribeTasks a second per waiting loop (`run`, `attach`, `logs -f`).
DESCRIBE_FLOOR_SECONDS = 1.0
# A task id (32 hex digits; older tasks and the sandbox: a UUID) or a task ARN, with or
# without the cluster name (the older ARN format).
_TASK_ID = r"[A-Za-z0-9][A-Za-z0-9-]{0,63}"
_TASK_REF = re.compile(
    rf"(?:arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{{12}}:task/(?:[A-Za-z0-9_-]{{1,255}}/)?)?{_TASK_ID}"
)


def check_task_ref(task_ref: str) -> str:
    """The task id or ARN as given; UsageError (exit 2) when it cannot be one, before any
    AWS call. Whether ECS knows it is for DescribeTasks to say."""
    if not _TASK_REF.fullmatch(task_ref):
        shown = task_ref if len(task_ref) <= 80 else task_ref[:77] + "..."
        raise UsageError(
            f"{shown!r} is not a task id or ARN",
            hint="give the id `residency run` printed (or its ARN); `residency tasks` lists them",
        )
    return task_ref


Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass
class PollInterval:
    """The adaptive interval: `floor` while things change, then ×`factor` up to `ceiling`."""

    floor: float = DESCRIBE_FLOOR_SECONDS
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
