"""Shared fixtures. `sandbox`: a fresh, seeded in-process sandbox per test (one server per
session); see README ("In tests") and residency_cli.sandbox.testing.SandboxFixture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

# In CI every property test replays the same examples: a failure there is reproducible,
# never a coin toss; locally hypothesis explores afresh each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def _sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from residency_cli.sandbox.testing import start_server

    server = start_server(tmp_path_factory.mktemp("sandbox"))
    yield server
    server.stop()


@pytest.fixture
def sandbox(_sandbox_server: Any) -> Iterator[Any]:
    from residency_cli.sandbox.testing import SandboxFixture

    handle = SandboxFixture(_sandbox_server).reset()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(autouse=True)
def _private_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test touches the user's state directory (sandbox record, dispatch journal)."""
    directory = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("RESIDENCY_STATE_DIR", str(directory))
    monkeypatch.setenv("RESIDENCY_JOURNAL", str(directory / "journal.jsonl"))
