"""How `run` handles ECS answers of the documented shapes (issue 13), each pinned with
botocore's Stubber (it validates the answer against the ECS service model), so the
behaviour stays tested whatever the sandbox does."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from residency_cli.dispatch import Dispatcher, RunOptions
from residency_cli.errors import UsageError
from residency_cli.results import Outcome
from tests.support.clock import FakeClock
from tests.support.moto_cluster import REGION, CountingEcs, MotoCluster
from tests.support.moto_cluster import register_bonus as _register


class StubbedRunTask(CountingEcs):
    """moto for everything, except RunTask: the stubbed answers, in order."""

    def __init__(self, inner: Any, stubbed: Any) -> None:
        super().__init__(inner)
        self.stubbed = stubbed

    def run_task(self, **params: Any) -> Any:
        self.calls["run_task"] = self.calls.get("run_task", 0) + 1
        return self.stubbed.run_task(**params)


def _stubbed_client() -> tuple[Any, Stubber]:
    client = boto3.client(
        "ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def _dispatcher(moto_cluster: MotoCluster, ecs: Any) -> Dispatcher:
    clock = FakeClock()
    return Dispatcher(ecs, None, moto_cluster.config, sleep=clock.sleep, now=clock.now)


@pytest.mark.usefixtures("manual_tasks")
def test_a_replayed_run_task_with_the_short_answer_is_described_first(
    moto_cluster: MotoCluster,
) -> None:
    """ECS developer guide, "Ensuring idempotency": a RunTask replayed for a task stopped
    under an hour ago returns only taskArn, lastStatus and desiredStatus."""
    _register(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    first = moto_cluster.ecs.run_task(
        cluster="acme-etl", taskDefinition="christmas-bonus", launchType="EXTERNAL"
    )["tasks"][0]
    moto_cluster.ecs.stop_task(cluster="acme-etl", task=first["taskArn"])
    client, stubber = _stubbed_client()
    short = {"taskArn": first["taskArn"], "lastStatus": "STOPPED", "desiredStatus": "STOPPED"}
    stubber.add_response("run_task", {"tasks": [short], "failures": []})
    with stubber:
        ecs = StubbedRunTask(moto_cluster.ecs, client)
        result = _dispatcher(moto_cluster, ecs).run("bonus", RunOptions(run_id="again"))
    assert result.primary.task_arn == first["taskArn"]
    assert result.primary.status == "STOPPED" and result.outcome is not Outcome.VIOLATION
    assert ecs.calls["run_task"] == 1 and ecs.calls["describe_tasks"] >= 1


def test_conflict_exception_is_a_used_run_id_exit_2(moto_cluster: MotoCluster) -> None:
    """RunTask API reference: the same clientToken with other parameters is a
    ConflictException naming the existing tasks (resourceIds)."""
    _register(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    client, stubber = _stubbed_client()
    arn = "arn:aws:ecs:eu-central-1:123456789012:task/acme-etl/0123456789abcdef"
    stubber.add_client_error(
        "run_task",
        service_error_code="ConflictException",
        service_message="The clientToken was used with different parameters.",
        http_status_code=400,
        modeled_fields={"resourceIds": [arn]},
    )
    with stubber, pytest.raises(UsageError) as raised:
        _dispatcher(moto_cluster, StubbedRunTask(moto_cluster.ecs, client)).run(
            "bonus", RunOptions(run_id="used")
        )
    assert raised.value.exit_code == 2
    assert str(raised.value).startswith(
        "run id used was already used for bonus with other parameters (task 0123456789abcdef)"
    )


@pytest.mark.usefixtures("manual_tasks")
def test_some_tasks_placed_and_failures_for_the_rest_is_partial(
    moto_cluster: MotoCluster,
) -> None:
    """RunTask with count > 1 can start some tasks and return failures for the others in
    the same answer: the run is `partial` (exit 3), the started task followed."""
    _register(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    started = moto_cluster.ecs.run_task(
        cluster="acme-etl", taskDefinition="christmas-bonus", launchType="EXTERNAL"
    )["tasks"][0]
    client, stubber = _stubbed_client()
    answer = {
        "tasks": [{k: started[k] for k in ("taskArn", "taskDefinitionArn", "lastStatus",
                                           "containerInstanceArn", "clusterArn")}],
        "failures": [{"arn": started["containerInstanceArn"], "reason": "RESOURCE:MEMORY"}],
    }  # fmt: skip
    stubber.add_response("run_task", answer)
    with stubber:
        result = _dispatcher(moto_cluster, StubbedRunTask(moto_cluster.ecs, client)).run(
            "bonus", RunOptions(run_id="p", count=2), wait=False
        )
    assert result.outcome is Outcome.PARTIAL and result.exit_code() == 3
    assert result.failures == [
        {"arn": started["containerInstanceArn"], "reason": "RESOURCE:MEMORY"}
    ]
    assert result.to_json()["failures"][0]["reason"] == "RESOURCE:MEMORY"
