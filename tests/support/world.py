"""The end-to-end world: the sandbox with labelled hosts, test workloads in a map, and a
Dispatcher wired to it with short poll intervals (the `world` fixture of tests/e2e builds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from residency_cli.config import Config
from residency_cli.dispatch import Dispatcher
from residency_cli.waiting import PollPolicy


@dataclass
class Recorder:
    """An observer that remembers what the waiting loop reported."""

    statuses: list[tuple[str | None, str]] = field(default_factory=list)
    placements: list[tuple[Any, bool]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def status(self, task: Any, previous: str | None) -> None:
        self.statuses.append((previous, task["lastStatus"]))

    def placed(self, task_arn: str, host: Any, allowed: bool) -> None:
        self.placements.append((host, allowed))

    def log(self, event: Any) -> None:
        self.lines.append(event.message)


@dataclass
class World:
    sandbox: Any
    config: Config
    map_path: Path
    recorder: Recorder = field(default_factory=Recorder)

    def dispatcher(self, **overrides: Any) -> Dispatcher:
        options: dict[str, Any] = {
            "observer": self.recorder,
            "policy": PollPolicy(describe_floor=0.05, describe_ceiling=0.2),
            "drain_grace": 0.2,
            **overrides,
        }
        return Dispatcher.create(self.sandbox.clients(), self.config, **options)
