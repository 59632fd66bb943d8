"""Fixtures every tier may use, and the tier markers (CONTRIBUTING.md).

`sandbox`: a fresh, seeded in-process sandbox per test (one server per test process); see
docs/sandbox.md ("In tests") and residency_cli.sandbox.testing.SandboxFixture.
`moto_cluster`: stock moto with the cluster of tests.support.moto_cluster.MAP;
`manual_tasks`: moto's task lifecycle pinned, so a task stops when the test says.
Helpers that are not fixtures live in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
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
    # Output is judged as piped output, whoever runs the tests: pytest-xdist's workers export
    # COLUMNS=80, which would make the CLI fold its tables at 80 columns.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def moto_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.support.moto_cluster import REGION, open_moto_cluster

    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with open_moto_cluster() as cluster:
        yield cluster


@pytest.fixture
def manual_tasks() -> Iterator[None]:
    from tests.support.moto_cluster import manual_task_lifecycle

    with manual_task_lifecycle():
        yield


# One tier per folder of tests/ (CONTRIBUTING.md); each test gets its folder's marker, so
# `pytest -m unit` or `-m "not e2e"` picks tiers without anyone remembering to decorate.
TIERS = ("unit", "aws", "cli", "sandbox", "e2e", "etl", "airflow")
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(_TESTS).parts
        tier = parts[0] if len(parts) > 1 else ""
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{item.nodeid}: every test lives in a tier folder ({', '.join(TIERS)})"
            )
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    """The moto cluster's map (tests.support.moto_cluster.MAP) written to a file."""
    from tests.support.moto_cluster import MAP

    path = tmp_path / "residency.yaml"
    path.write_text(MAP, encoding="utf-8")
    return path
