"""Host listing and relabelling against moto (and SSM hostnames through botocore's Stubber)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from residency_cli.errors import RefusedError, UsageError
from residency_cli.hosts import list_hosts, register_host, resolve_host, unregister_host
from tests.support.moto_cluster import REGION, MotoCluster


def _ssm_knowing(hostnames: dict[str, str]) -> tuple[Any, Stubber]:
    """An SSM client that answers DescribeInstanceInformation with these instance -> hostname."""
    ssm = boto3.client("ssm", region_name=REGION)
    stubber = Stubber(ssm)
    listing = {
        "InstanceInformationList": [
            {"InstanceId": i, "ComputerName": name, "PingStatus": "Online", "IPAddress": "10.0.0.1"}
            for i, name in hostnames.items()
        ]
    }
    for _ in range(4):
        stubber.add_response("describe_instance_information", listing)
    stubber.activate()
    return ssm, stubber


def test_lists_hosts_with_location_and_resources(moto_cluster: MotoCluster) -> None:
    moto_cluster.add_host("a", "newyork")
    moto_cluster.add_host("b")
    hosts = list_hosts(moto_cluster.ecs, None, moto_cluster.config)
    assert [h.location for h in hosts] == ["newyork", None]
    first = hosts[0]
    assert first.status == "ACTIVE"
    assert first.cpu_available and first.memory_available
    assert first.instance_id == moto_cluster.ec2_ids["a"]
    only = list_hosts(moto_cluster.ecs, None, moto_cluster.config, location="newyork")
    assert [h.container_instance_arn for h in only] == [moto_cluster.instances["a"]]


def test_list_rejects_an_undeclared_location(moto_cluster: MotoCluster) -> None:
    with pytest.raises(UsageError, match="did you mean 'newyork'"):
        list_hosts(moto_cluster.ecs, None, moto_cluster.config, location="newyrok")


@pytest.mark.parametrize("form", ["arn", "id", "ec2"])
def test_registers_by_every_id_form(moto_cluster: MotoCluster, form: str) -> None:
    arn = moto_cluster.add_host("a")
    reference = {"arn": arn, "id": arn.rsplit("/", 1)[-1], "ec2": moto_cluster.ec2_ids["a"]}[form]
    change = register_host(moto_cluster.ecs, None, moto_cluster.config, reference, "newyork")
    assert change.action == "add" and change.previous is None
    assert moto_cluster.location_of("a") == "newyork"


def test_registers_by_hostname_through_ssm(moto_cluster: MotoCluster) -> None:
    moto_cluster.add_host("a")
    ssm, _ = _ssm_knowing({moto_cluster.ec2_ids["a"]: "bonus.host"})
    change = register_host(moto_cluster.ecs, ssm, moto_cluster.config, "bonus.host", "newyork")
    assert change.host.hostname == "bonus.host"
    assert moto_cluster.location_of("a") == "newyork"


def test_unknown_hostname_is_a_usage_error(moto_cluster: MotoCluster) -> None:
    moto_cluster.add_host("a")
    ssm, _ = _ssm_knowing({moto_cluster.ec2_ids["a"]: "bonus.host"})
    with pytest.raises(UsageError, match="no managed instance has hostname 'nohost'"):
        register_host(moto_cluster.ecs, ssm, moto_cluster.config, "nohost", "newyork")


def test_unknown_instance_is_a_usage_error(moto_cluster: MotoCluster) -> None:
    with pytest.raises(UsageError, match="not a container instance"):
        resolve_host(moto_cluster.ecs, None, moto_cluster.config, "mi-0123456789abcdef0")


def test_dry_run_changes_nothing_and_shows_request(moto_cluster: MotoCluster) -> None:
    arn = moto_cluster.add_host("a")
    change = register_host(
        moto_cluster.ecs, None, moto_cluster.config, arn, "newyork", dry_run=True
    )
    assert change.dry_run and change.action == "add"
    assert change.request == {
        "cluster": "acme-etl",
        "attributes": [{"name": "location", "value": "newyork", "targetId": arn}],
    }
    assert moto_cluster.location_of("a") is None


def test_same_location_is_a_no_op(moto_cluster: MotoCluster) -> None:
    arn = moto_cluster.add_host("a", "newyork")
    change = register_host(moto_cluster.ecs, None, moto_cluster.config, arn, "newyork")
    assert change.action == "unchanged" and change.request is None


def test_refuses_to_move_without_force(moto_cluster: MotoCluster) -> None:
    arn = moto_cluster.add_host("a", "newyork")
    with pytest.raises(RefusedError, match="needs --force") as raised:
        register_host(moto_cluster.ecs, None, moto_cluster.config, arn, "frankfurt")
    assert raised.value.exit_code == 3
    assert moto_cluster.location_of("a") == "newyork"


def test_force_moves_an_idle_host(moto_cluster: MotoCluster) -> None:
    arn = moto_cluster.add_host("a", "newyork")
    change = register_host(
        moto_cluster.ecs, None, moto_cluster.config, arn, "frankfurt", force=True
    )
    assert (change.action, change.previous, change.location) == ("change", "newyork", "frankfurt")
    assert moto_cluster.location_of("a") == "frankfurt"


def _start_bonus_on(moto_cluster: MotoCluster, name: str) -> None:
    moto_cluster.ecs.register_task_definition(
        family="christmas-bonus",
        containerDefinitions=[{"name": "c", "image": "x", "memory": 128, "essential": True}],
    )
    moto_cluster.ecs.start_task(
        cluster="acme-etl",
        taskDefinition="christmas-bonus",
        containerInstances=[moto_cluster.instances[name]],
    )


def test_force_refuses_while_host_runs_a_workload_not_allowed_there(
    moto_cluster: MotoCluster,
) -> None:
    arn = moto_cluster.add_host("a", "newyork")
    _start_bonus_on(moto_cluster, "a")
    with pytest.raises(RefusedError, match="bonus"):
        register_host(moto_cluster.ecs, None, moto_cluster.config, arn, "frankfurt", force=True)
    assert moto_cluster.location_of("a") == "newyork"


def test_force_allows_a_move_the_running_workload_permits(moto_cluster: MotoCluster) -> None:
    arn = moto_cluster.add_host("a", "newyork")
    _start_bonus_on(moto_cluster, "a")
    register_host(moto_cluster.ecs, None, moto_cluster.config, arn, "sanfrancisco", force=True)
    assert moto_cluster.location_of("a") == "sanfrancisco"


def test_unregister_removes_label(moto_cluster: MotoCluster) -> None:
    arn = moto_cluster.add_host("a", "newyork")
    planned = unregister_host(moto_cluster.ecs, None, moto_cluster.config, arn, dry_run=True)
    assert planned.action == "remove" and moto_cluster.location_of("a") == "newyork"
    change = unregister_host(moto_cluster.ecs, None, moto_cluster.config, arn)
    assert change.previous == "newyork"
    assert moto_cluster.location_of("a") is None
    again = unregister_host(moto_cluster.ecs, None, moto_cluster.config, arn)
    assert again.action == "unchanged"
