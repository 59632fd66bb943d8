"""`residency tasks`: the recent tasks of the map's workloads, and where each ran."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors
from residency_cli.config import Config, task_definition_family, workload_for_task
from residency_cli.config import task_tag_value as task_tag
from residency_cli.constants import RUN_ID_TAG
from residency_cli.dispatch import placed
from residency_cli.hosts import hosts_of_tasks
from residency_cli.results import TaskOutcome
from residency_cli.waiting import describe_tasks, task_outcome

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ssm import SSMClient


def list_workload_tasks(
    ecs: ECSClient, config: Config, names: Sequence[str], statuses: Sequence[str]
) -> list[dict[str, Any]]:
    """Described tasks (with tags) of these workloads' families that ECS still returns."""
    arns: list[str] = []
    with aws_errors("listing tasks"):
        paginator = ecs.get_paginator("list_tasks")
        for name in names:
            family = task_definition_family(config.workloads[name].task_definition)
            for desired in statuses:
                for page in paginator.paginate(
                    cluster=config.cluster,
                    family=family,
                    desiredStatus=desired,  # type: ignore[arg-type]
                ):
                    arns.extend(page.get("taskArns", []))
    return describe_tasks(ecs, config.cluster, list(dict.fromkeys(arns)))


def recent_tasks(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, workload: str | None, status: str
) -> list[TaskOutcome]:
    """Tasks of the map's workloads that ECS still returns, newest first, with their host."""
    names = [workload] if workload else list(config.workloads)
    statuses = {"running": ["RUNNING"], "stopped": ["STOPPED"], "all": ["RUNNING", "STOPPED"]}[
        status
    ]
    described = list_workload_tasks(ecs, config, names, statuses)
    hosts = {arn: placed(host) for arn, host in hosts_of_tasks(ecs, ssm, config, described).items()}
    results = []
    for task in described:
        owner = workload_for_task(config, task)
        if owner is None or (workload and owner != workload):
            continue
        if task.get("lastStatus") != "STOPPED" and status == "stopped":
            continue
        results.append(
            task_outcome(
                config,
                owner,
                task,
                config.workloads[owner].container,
                host=hosts.get(str(task.get("containerInstanceArn"))),
                run_id=task_tag(task, RUN_ID_TAG),
                stream=None,
            )
        )
    return sorted(results, key=lambda t: t.started_at or "", reverse=True)
