"""End-to-end fixtures: the sandbox with labelled hosts, test task definitions and a map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from residency_cli.config import parse_config
from tests.support.world import World

TEST_WORKLOADS = {
    # name: (command, location)
    "hello": (["python3", "-c", "print('hello'); print('world')"], "newyork"),
    "fail": (["sh", "-c", "echo going down; exit 3"], "newyork"),
    "missing": (["/no/such/command"], "newyork"),
    "slow": (["sleep", "30"], "newyork"),
    "small": (["python3", "-c", "print('small')"], "newyork"),
}


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
