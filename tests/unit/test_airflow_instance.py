"""The Airflow operator's task-instance identity, without Airflow or AWS: tags ECS accepts,
one key for every try, a run id per try, the log observer."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from residency_cli.airflow_dispatch import TaskInstance, TaskLogObserver, check_tag_room, tag_safe
from residency_cli.config import parse_config
from residency_cli.constants import AIRFLOW_KEY_TAG, AIRFLOW_RUN_TAG
from residency_cli.dispatch import validate_run_id
from residency_cli.errors import UsageError
from residency_cli.limits import tag_problem
from residency_cli.logs import LogEvent
from residency_cli.results import PlacedHost

MAP = """
version: 1
cluster: acme-etl
locations:
  newyork: {}
workloads:
  bonus:
    task_definition: christmas-bonus
    location: newyork
"""


def test_tags_are_valid_ecs_tags_for_airflows_ids() -> None:
    instance = TaskInstance("residency_bonus", "manual__2024-12-01T00:00:00+00:00", "bonus")
    tags = instance.tags()
    assert tags[AIRFLOW_RUN_TAG] == "manual__2024-12-01T00:00:00+00:00"  # ':' and '+' allowed
    odd = TaskInstance("d", "api~run#1" + "x" * 300, "t", map_index=3)
    for key, value in [*tags.items(), *odd.tags().items()]:
        assert tag_problem(key, value) is None, (key, value)
    assert odd.tags()[AIRFLOW_RUN_TAG].startswith("api_run_1x")
    assert len(odd.tags()[AIRFLOW_RUN_TAG]) == 256
    assert tag_safe("aws:x") == "_aws:x"  # the prefix is AWS's


def test_one_key_for_every_try_and_a_run_id_per_try() -> None:
    first = TaskInstance("dag", "run", "task", map_index=2, try_number=1)
    retry = TaskInstance("dag", "run", "task", map_index=2, try_number=2)
    assert first.key == retry.key == first.tags()[AIRFLOW_KEY_TAG]
    assert first.residency_run_id != retry.residency_run_id
    assert validate_run_id(first.residency_run_id) == first.residency_run_id
    others = [
        TaskInstance("dag", "run", "task", map_index=3),
        TaskInstance("dag", "run2", "task", map_index=2),
        TaskInstance("dag2", "run", "task", map_index=2),
        TaskInstance("dag", "run", "task2", map_index=2),
    ]
    assert len({first.key, *(o.key for o in others)}) == 5
    assert first.describe() == "dag/run/task[2]"
    # A DAG run deleted and created again with the same run id starts again at try 1: Airflow
    # 3 gives each try its own id, and so does residency.
    again = TaskInstance("dag", "run", "task", map_index=2, try_number=1, try_id="0193-a")
    later = TaskInstance("dag", "run", "task", map_index=2, try_number=1, try_id="0193-b")
    assert again.key == first.key
    assert len({first.residency_run_id, again.residency_run_id, later.residency_run_id}) == 3
    assert validate_run_id(again.residency_run_id) == again.residency_run_id


def test_from_an_airflow_context() -> None:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=None, try_number=3)
    assert TaskInstance.from_context({"ti": ti}) == TaskInstance("d", "r", "t", -1, 3)
    ti.id = "01a23792-31cc-7989-83f7-eeebb60d57f6"
    assert TaskInstance.from_context({"ti": ti}).try_id == ti.id


def test_too_many_workload_tags_leave_no_room_for_airflows() -> None:
    tags = "".join(f"\n      t{i}: v" for i in range(44))
    config = parse_config(MAP + f"    tags:{tags}\n")
    with pytest.raises(UsageError, match="at most 41"):
        check_tag_room(config, "bonus")
    check_tag_room(parse_config(MAP), "bonus")


def test_the_observer_writes_to_the_task_log(caplog: pytest.LogCaptureFixture) -> None:
    observer = TaskLogObserver(logging.getLogger("airflow.task"))
    arn = "arn:aws:ecs:eu-central-1:1:task/acme-etl/abc"
    host = PlacedHost("ci", "mi-1", "bonus.host", "newyork")
    with caplog.at_level(logging.INFO):
        observer.status({"taskArn": arn, "lastStatus": "PENDING"}, None)
        observer.placed(arn, host, True)
        observer.status({"taskArn": arn, "lastStatus": "RUNNING"}, "PENDING")
        observer.log(LogEvent(0, "christmas_bonus", "Running on host 'bonus.host'"))
        observer.placed(arn, PlacedHost("ci", "mi-2", "tax.host", "frankfurt"), False)
    assert caplog.messages == [
        "task abc: PENDING",
        "task abc placed on bonus.host in newyork: allowed",
        "task abc: PENDING -> RUNNING",
        "[christmas_bonus] Running on host 'bonus.host'",
        "task abc placed on tax.host in frankfurt: NOT ALLOWED, stopping it",
    ]
    assert observer.task_arns == [arn]
