"""Stock moto as a stand-in control plane: enough for labels and listings.

moto 5.2.5 only registers container instances for EC2 `i-` ids that exist in its EC2
(DESIGN.md), so each fake host is an EC2 instance first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

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

    def location_of(self, name: str) -> str | None:
        described = self.ecs.describe_container_instances(
            cluster=self.config.cluster, containerInstances=[self.instances[name]]
        )["containerInstances"][0]
        values = {a["name"]: a.get("value") for a in described.get("attributes", [])}
        return values.get("location")


@pytest.fixture
def moto_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoCluster]:
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        config = parse_config(MAP, "residency.yaml")
        ecs.create_cluster(clusterName=config.cluster)
        yield MotoCluster(ecs=ecs, ec2=ec2, config=config)
