"""Stock moto as a stand-in control plane: enough for labels and listings (the `moto_cluster`
fixture of tests/conftest.py builds one).

moto 5.2.5 only registers container instances for EC2 `i-` ids that exist in its EC2
(DESIGN.md), so each fake host is an EC2 instance first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from residency_cli.config import Config, parse_config

REGION = "eu-central-1"
MAP = """\
version: 1
cluster: acme-etl
region: eu-central-1
locations:
  newyork: {}
  frankfurt: {}
  sanfrancisco: {}
hosts:
  bonus.host: newyork
  tax.host: frankfurt
workloads:
  bonus:
    task_definition: christmas-bonus
    location: [newyork, sanfrancisco]
  tax:
    task_definition: tax-amount
    location: frankfurt
"""


@dataclass
class MotoCluster:
    ecs: Any
    ec2: Any
    config: Config
    instances: dict[str, str] = field(default_factory=dict)  # name -> container instance ARN
    ec2_ids: dict[str, str] = field(default_factory=dict)  # name -> i- id

    def add_host(self, name: str, location: str | None = None) -> str:
        reservation = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        instance_id = reservation["Instances"][0]["InstanceId"]
        document = json.dumps({"instanceId": instance_id, "region": REGION})
        arn = self.ecs.register_container_instance(
            cluster=self.config.cluster,
            instanceIdentityDocument=document,
            totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
            ],
        )["containerInstance"]["containerInstanceArn"]
        if location is not None:
            self.ecs.put_attributes(
                cluster=self.config.cluster,
                attributes=[{"name": "location", "value": location, "targetId": arn}],
            )
        self.instances[name] = arn
        self.ec2_ids[name] = instance_id
        return arn

    def add_draining_host(self, name: str, location: str | None = None) -> str:
        """A host set to DRAINING (UpdateContainerInstancesState): ECS places nothing there."""
        arn = self.add_host(name, location)
        self.ecs.update_container_instances_state(
            cluster=self.config.cluster, containerInstances=[arn], status="DRAINING"
        )
        return arn

    def location_of(self, name: str) -> str | None:
        described = self.ecs.describe_container_instances(
            cluster=self.config.cluster, containerInstances=[self.instances[name]]
        )["containerInstances"][0]
        values = {a["name"]: a.get("value") for a in described.get("attributes", [])}
        return values.get("location")


LOG_CONFIGURATION = {
    "logDriver": "awslogs",
    "options": {"awslogs-group": "/residency/acme", "awslogs-stream-prefix": "etl"},
}


def register_bonus(moto_cluster: MotoCluster, family: str = "christmas-bonus") -> None:
    """A task definition like the ACME bonus job's (host network, awslogs)."""
    moto_cluster.ecs.register_task_definition(
        family=family,
        networkMode="host",
        executionRoleArn="arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        containerDefinitions=[
            {
                "name": "christmas_bonus",
                "image": "etl",
                "memory": 128,
                "essential": True,
                "logConfiguration": LOG_CONFIGURATION,
            },
        ],
    )


@contextmanager
def open_moto_cluster() -> Iterator[MotoCluster]:
    """moto's mock of AWS with the cluster of MAP created (AWS_* variables are the caller's)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        config = parse_config(MAP, "residency.yaml")
        ecs.create_cluster(clusterName=config.cluster)
        yield MotoCluster(ecs=ecs, ec2=ec2, config=config)


@contextmanager
def manual_task_lifecycle() -> Iterator[None]:
    """Pin moto's task lifecycle: a task stops when the test says, not per DescribeTasks."""
    from moto.moto_api import state_manager

    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
    try:
        yield
    finally:
        state_manager.unset_transition("ecs::task")


class CountingEcs:
    """The moto client (or any client), counting calls per operation; `requests` keeps each
    call's keyword arguments in order. Calls made through a paginator are not counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute) or name.startswith("get_paginator"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.requests.append((name, dict(kwargs)))
            return attribute(*args, **kwargs)

        return counted
