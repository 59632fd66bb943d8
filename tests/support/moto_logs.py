"""CloudWatch Logs on stock moto: task definitions that log with awslogs, tasks, events."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from tests.support.moto_cluster import REGION, MotoCluster

GROUP = "/ecs/etl"


def register(
    ecs: Any, family: str = "etl", *, log: bool = True, containers: tuple[str, ...] = ("app",)
) -> None:
    definitions = []
    for name in containers:
        container: dict[str, Any] = {"name": name, "image": "etl:latest", "memory": 128}
        if log:
            container["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": GROUP,
                    "awslogs-region": REGION,
                    "awslogs-stream-prefix": "etl",
                },
            }
        definitions.append(container)
    ecs.register_task_definition(family=family, containerDefinitions=definitions)


def start_task(cluster: MotoCluster, family: str = "etl") -> str:
    if not cluster.instances:
        cluster.add_host("a", "newyork")
    response = cluster.ecs.run_task(cluster=cluster.config.cluster, taskDefinition=family)
    assert not response["failures"]
    return str(response["tasks"][0]["taskArn"])


def put(logs: Any, stream: str, lines: list[tuple[int, str]]) -> None:
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    for start in range(0, len(lines), 10_000):
        batch = lines[start : start + 10_000]
        logs.put_log_events(
            logGroupName=GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": ts, "message": message} for ts, message in batch],
        )


def now_ms() -> int:
    return int(time.time() * 1000)
