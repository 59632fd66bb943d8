"""The Airflow operator's core against the sandbox, without Airflow: tasks tagged with their
task instance, reattach to the running task of an earlier try (one ECS task in all), a
cleared task instance runs again, on_kill's stop is journalled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from residency_cli.airflow_dispatch import (
    TaskInstance,
    run_task_instance,
    running_tasks_of,
    stop_task_instance,
)
from residency_cli.config import task_tag_value
from residency_cli.constants import AIRFLOW_KEY_TAG, AIRFLOW_MAP_INDEX_TAG, RUN_ID_TAG
from residency_cli.dispatch import RunOptions
from residency_cli.journal import RunJournal
from tests.support.airflow import write_airflow_map
from tests.support.world import World

INSTANCE = TaskInstance("residency_quick", "manual__2024-12-01T00:00:00+00:00", "quick")


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> World:
    sandbox.label_all()
    path, config = write_airflow_map(sandbox, tmp_path)
    return World(sandbox, config, path)


def _journal() -> list[dict[str, Any]]:
    return RunJournal().records()


def test_the_task_carries_its_task_instance(world: World) -> None:
    lines: list[str] = []
    result = run_task_instance(world.dispatcher(), "quick", INSTANCE, timeout=60, say=lines.append)
    assert result.outcome == "succeeded", result.to_json()
    assert result.primary.host is not None and result.primary.host.hostname == "bonus.host"
    task = world.sandbox.describe_task(result.primary.task_arn)
    assert task_tag_value(task, AIRFLOW_KEY_TAG) == INSTANCE.key
    assert task_tag_value(task, AIRFLOW_MAP_INDEX_TAG) == "-1"
    assert task_tag_value(task, RUN_ID_TAG) == INSTANCE.residency_run_id
    assert "quick starts" in world.recorder.lines
    assert lines == [f"run id {INSTANCE.residency_run_id} (try 1 of {INSTANCE.describe()})"]
    events = [(r["event"], r["run_id"]) for r in _journal()]
    assert events == [("intent", INSTANCE.residency_run_id), ("run", INSTANCE.residency_run_id)]


def test_a_retry_reattaches_to_the_running_task(world: World) -> None:
    # Try 1 started the task and its worker died (nothing waited for it).
    first = world.dispatcher().run(
        "quick", RunOptions(run_id=INSTANCE.residency_run_id, tags=INSTANCE.tags()), wait=False
    )
    retry = TaskInstance(INSTANCE.dag_id, INSTANCE.run_id, INSTANCE.task_id, try_number=2)
    lines: list[str] = []
    result = run_task_instance(world.dispatcher(), "quick", retry, timeout=60, say=lines.append)
    assert result.outcome == "succeeded", result.to_json()
    assert result.primary.task_arn == first.primary.task_arn
    assert result.primary.run_id == INSTANCE.residency_run_id  # the run it belongs to
    assert world.sandbox.calls("RunTask") == 1
    assert lines[0].startswith(f"reattaching to task {first.primary.task_id}")
    assert [r["event"] for r in _journal()] == ["intent", "run", "attach"]


def test_another_task_instance_is_not_reattached(world: World) -> None:
    world.dispatcher().run("slow", RunOptions(run_id="other", tags=INSTANCE.tags()), wait=False)
    mapped = TaskInstance(INSTANCE.dag_id, INSTANCE.run_id, INSTANCE.task_id, map_index=0)
    config = world.config
    clients = world.sandbox.clients()
    assert running_tasks_of(clients.ecs, config, "slow", mapped) == []
    assert len(running_tasks_of(clients.ecs, config, "slow", INSTANCE)) == 1
    assert running_tasks_of(clients.ecs, config, "quick", INSTANCE) == []  # another workload


def test_a_raw_run_task_with_copied_tags_is_not_adopted(world: World) -> None:
    ecs = world.sandbox.clients().ecs
    spoofed = ecs.run_task(
        cluster=world.config.cluster,
        taskDefinition="airflow-slow",
        launchType="EXTERNAL",
        tags=[{"key": k, "value": v} for k, v in INSTANCE.tags().items()],
    )["tasks"][0]
    assert task_tag_value(spoofed, AIRFLOW_KEY_TAG) == INSTANCE.key  # it carries the tags
    assert running_tasks_of(ecs, world.config, "slow", INSTANCE) == []  # not started by us


def test_a_cleared_task_instance_that_succeeded_runs_again(world: World) -> None:
    first = run_task_instance(world.dispatcher(), "quick", INSTANCE, timeout=60)
    cleared = TaskInstance(INSTANCE.dag_id, INSTANCE.run_id, INSTANCE.task_id, try_number=2)
    second = run_task_instance(world.dispatcher(), "quick", cleared, timeout=60)
    assert (first.outcome, second.outcome) == ("succeeded", "succeeded")
    assert first.primary.task_arn != second.primary.task_arn
    assert world.sandbox.calls("RunTask") == 2
    runs = [(r["run_id"], r["result"]["task_arn"]) for r in _journal() if r["event"] == "run"]
    assert runs == [
        (INSTANCE.residency_run_id, first.primary.task_arn),
        (cleared.residency_run_id, second.primary.task_arn),
    ]


def test_on_kill_stops_the_running_task_journalled(world: World) -> None:
    started = world.dispatcher().run(
        "slow", RunOptions(run_id=INSTANCE.residency_run_id, tags=INSTANCE.tags()), wait=False
    )
    stopped = stop_task_instance(world.dispatcher(), "slow", INSTANCE)
    assert stopped is not None
    assert [t.task_arn for t in stopped.tasks] == [started.primary.task_arn]
    assert "stopped by Airflow" in stopped.reason
    task = world.sandbox.wait_for_task(started.primary.task_arn, timeout=30)
    assert task["stoppedReason"].startswith("stopped by Airflow: task instance residency_quick/")
    assert _journal()[-1]["event"] == "stop"
    assert stop_task_instance(world.dispatcher(), "slow", INSTANCE) is None  # nothing left
