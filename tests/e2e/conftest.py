"""End-to-end fixtures: the sandbox with labelled hosts, test task definitions and a map."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from residency_cli.config import Config, parse_config
from residency_cli.dispatch import Dispatcher
from residency_cli.waiting import PollPolicy

TEST_WORKLOADS = {
    # name: (command, location)
    "hello": (["python3", "-c", "print('hello'); print('world')"], "newyork"),
    "fail": (["sh", "-c", "echo going down; exit 3"], "newyork"),
    "missing": (["/no/such/command"], "newyork"),
    "slow": (["sleep", "30"], "newyork"),
    "small": (["python3", "-c", "print('small')"], "newyork"),
}


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


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> World:
    sandbox.label_all()
    example = sandbox.config_path.read_text(encoding="utf-8")
    lines = [example.rstrip(), ""]
    for name, (command, location) in TEST_WORKLOADS.items():
        cpu, memory = (64, 32) if name == "small" else (256, 128)
        sandbox.register_task_definition(f"test-{name}", command, cpu=cpu, memory=memory)
        lines += [f"  {name}:", f"    task_definition: test-{name}", f"    location: {location}"]
    text = "\n".join(lines) + "\n"
    path = tmp_path / "residency.yaml"
    path.write_text(text, encoding="utf-8")
    return World(sandbox, parse_config(text, str(path)), path)
