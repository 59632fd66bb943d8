"""The end-to-end world: the sandbox with labelled hosts, test workloads in a map, and a
Dispatcher wired to it with short poll intervals (the `world` fixture of tests/e2e builds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from residency_cli.config import Config, parse_config
from residency_cli.dispatch import Dispatcher
from residency_cli.waiting import PollPolicy


@dataclass
class Recorder:
    """An observer that remembers what the waiting loop reported."""

    statuses: list[tuple[str | None, str]] = field(default_factory=list)
    placements: list[tuple[Any, bool]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    # The container column of each log line (`bonus/christmas_bonus` when several workloads).
    containers: list[str] = field(default_factory=list)

    def status(self, task: Any, previous: str | None) -> None:
        self.statuses.append((previous, task["lastStatus"]))

    def placed(self, task_arn: str, host: Any, allowed: bool) -> None:
        self.placements.append((host, allowed))

    def log(self, event: Any) -> None:
        self.lines.append(event.message)
        self.containers.append(event.container)


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

    def with_workloads(self, workloads: dict[str, tuple[list[str], str]]) -> World:
        """This world with more workloads (name: (command, location)), each with its own
        task definition `test-NAME` (64 CPU, 32 MiB), added to the map."""
        text = self.map_path.read_text(encoding="utf-8")
        for name, (command, location) in workloads.items():
            self.sandbox.register_task_definition(f"test-{name}", command, cpu=64, memory=32)
            text += f"  {name}:\n    task_definition: test-{name}\n    location: {location}\n"
        self.map_path.write_text(text, encoding="utf-8")
        return World(self.sandbox, parse_config(text, str(self.map_path)), self.map_path)
