"""Hosts: list the cluster's container instances, resolve a host reference, relabel hosts.

Attributes are read from DescribeContainerInstances, never ListAttributes: the latter is
eventually consistent and (in moto) mixes clusters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors, is_aws_error
from residency_cli.config import Config, workload_for_task
from residency_cli.errors import RefusedError, UsageError
from residency_cli.results import Host, LabelChange

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ssm import SSMClient

DESCRIBE_BATCH = 100
_INSTANCE_ID = re.compile(r"(mi|i)-[0-9a-f]{8,17}")
_CONTAINER_INSTANCE_ID = re.compile(
    r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _resource(instance: dict[str, Any], name: str) -> int | None:
    for resource in instance.get("remainingResources") or []:
        if resource.get("name") == name:
            return int(resource.get("integerValue", 0))
    return None


def _attributes(instance: dict[str, Any]) -> dict[str, str]:
    return {
        a["name"]: a["value"]
        for a in instance.get("attributes") or []
        if "name" in a and a.get("value") is not None
    }


def container_instance_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def host_from_instance(
    instance: dict[str, Any], attribute: str, hostnames: dict[str, str] | None = None
) -> Host:
    arn = instance["containerInstanceArn"]
    attributes = _attributes(instance)
    instance_id = instance.get("ec2InstanceId")
    return Host(
        container_instance_arn=arn,
        container_instance_id=container_instance_id(arn),
        instance_id=instance_id,
        hostname=(hostnames or {}).get(instance_id or ""),
        location=attributes.get(attribute),
        status=instance.get("status", "UNKNOWN"),
        agent_connected=bool(instance.get("agentConnected", False)),
        running_tasks=int(instance.get("runningTasksCount", 0)),
        pending_tasks=int(instance.get("pendingTasksCount", 0)),
        cpu_available=_resource(instance, "CPU"),
        memory_available=_resource(instance, "MEMORY"),
        attributes=attributes,
    )


def describe_container_instances(
    ecs: ECSClient, cluster: str, arns: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every container instance of the cluster (or the given ones), fully described."""
    with aws_errors(f"listing the container instances of cluster {cluster!r}"):
        if arns is None:
            found: list[str] = []
            for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster):
                found.extend(page.get("containerInstanceArns", []))
            arns = found
        described: list[dict[str, Any]] = []
        for batch in _chunks(list(arns), DESCRIBE_BATCH):
            response = ecs.describe_container_instances(
                cluster=cluster, containerInstances=list(batch)
            )
            described.extend(response.get("containerInstances", []))  # type: ignore[arg-type]
    return described


def managed_instance_hostnames(
    ssm: SSMClient | None, instance_ids: Iterable[str]
) -> dict[str, str]:
    """instance id -> hostname from SSM; empty when SSM cannot tell (names are a courtesy)."""
    wanted = sorted({i for i in instance_ids if i})
    if ssm is None or not wanted:
        return {}
    names: dict[str, str] = {}
    try:
        for batch in _chunks(wanted, 50):
            paginator = ssm.get_paginator("describe_instance_information")
            pages = paginator.paginate(Filters=[{"Key": "InstanceIds", "Values": list(batch)}])
            for page in pages:
                for info in page.get("InstanceInformationList", []):
                    if info.get("InstanceId") and info.get("ComputerName"):
                        names[info["InstanceId"]] = info["ComputerName"]
    except Exception as error:
        if not is_aws_error(error) and not isinstance(error, NotImplementedError):
            raise
    return names


def list_hosts(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, location: str | None = None
) -> list[Host]:
    """The cluster's container instances as Hosts, optionally only those of one location."""
    if location is not None:
        config.require_location(location)
    instances = describe_container_instances(ecs, config.cluster)
    hostnames = managed_instance_hostnames(ssm, (i.get("ec2InstanceId", "") for i in instances))
    hosts = [host_from_instance(i, config.location_attribute, hostnames) for i in instances]
    if location is not None:
        hosts = [h for h in hosts if h.location == location]
    return sorted(hosts, key=lambda h: (h.location or "~", h.label))


def _instance_ids_for_hostname(ssm: SSMClient | None, hostname: str) -> list[str]:
    if ssm is None:
        return []
    wanted = hostname.lower()
    matches: list[str] = []
    with aws_errors(f"looking up host {hostname!r} in SSM"):
        for page in ssm.get_paginator("describe_instance_information").paginate():
            for info in page.get("InstanceInformationList", []):
                names = {str(info.get("ComputerName", "")).lower(), str(info.get("IPAddress", ""))}
                if wanted in names and info.get("InstanceId"):
                    matches.append(info["InstanceId"])
    return matches


def resolve_host(ecs: ECSClient, ssm: SSMClient | None, config: Config, reference: str) -> Host:
    """A container instance from its ARN or id, its mi-/i- instance id, or its hostname."""
    reference = reference.strip()
    if not reference:
        raise UsageError("HOST is empty: give a hostname, mi-/i- id or container-instance id/ARN")
    instances = describe_container_instances(ecs, config.cluster)
    if reference.startswith("arn:") or _CONTAINER_INSTANCE_ID.fullmatch(reference):
        found = [
            i
            for i in instances
            if reference
            in (i["containerInstanceArn"], container_instance_id(i["containerInstanceArn"]))
        ]
        how = "container instance"
    elif _INSTANCE_ID.fullmatch(reference):
        found = [i for i in instances if i.get("ec2InstanceId") == reference]
        how = "instance id"
    else:
        ids = set(_instance_ids_for_hostname(ssm, reference))
        if not ids:
            raise UsageError(
                f"no managed instance has hostname {reference!r}",
                hint="see `residency hosts` for the cluster's hosts, or pass an mi-/i- id",
            )
        found = [i for i in instances if i.get("ec2InstanceId") in ids]
        how = f"hostname (instance {', '.join(sorted(ids))})"
    if not found:
        raise UsageError(
            f"{how} {reference!r} is not a container instance of cluster {config.cluster!r}",
            hint="see `residency hosts`; is the ECS agent registered?",
        )
    if len(found) > 1:
        choices = ", ".join(container_instance_id(i["containerInstanceArn"]) for i in found)
        raise UsageError(
            f"{reference!r} matches several container instances ({choices}); pass one id"
        )
    hostnames = managed_instance_hostnames(ssm, [found[0].get("ec2InstanceId", "")])
    host = host_from_instance(found[0], config.location_attribute, hostnames)
    if host.hostname is None and how.startswith("hostname"):
        host = Host(**{**host.__dict__, "hostname": reference})
    return host


def running_workloads(ecs: ECSClient, config: Config, host: Host) -> dict[str, list[str]]:
    """workload -> ids of its RUNNING/PENDING tasks on `host`."""
    found: dict[str, list[str]] = {}
    with aws_errors(f"listing the tasks on {host.label}"):
        arns: list[str] = []
        for status in ("RUNNING", "PENDING"):
            paginator = ecs.get_paginator("list_tasks")
            for page in paginator.paginate(
                cluster=config.cluster,
                containerInstance=host.container_instance_arn,
                desiredStatus=status,
            ):
                arns.extend(page.get("taskArns", []))
        for batch in _chunks(sorted(set(arns)), DESCRIBE_BATCH):
            response = ecs.describe_tasks(
                cluster=config.cluster, tasks=list(batch), include=["TAGS"]
            )
            for task in response.get("tasks", []):
                workload = workload_for_task(config, task)
                if workload is not None:
                    found.setdefault(workload, []).append(task["taskArn"].rsplit("/", 1)[-1])
    return found


def _attribute_request(config: Config, host: Host, value: str | None) -> dict[str, Any]:
    # A full ARN as targetId needs no targetType; moto also rejects the pair (DESIGN.md).
    attribute: dict[str, str] = {
        "name": config.location_attribute,
        "targetId": host.container_instance_arn,
    }
    if value is not None:
        attribute["value"] = value
    return {"cluster": config.cluster, "attributes": [attribute]}


def register_host(
    ecs: ECSClient,
    ssm: SSMClient | None,
    config: Config,
    reference: str,
    location: str,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> LabelChange:
    """Put the location attribute on one host, refusing moves that would break residency."""
    config.require_location(location)
    host = resolve_host(ecs, ssm, config, reference)
    previous = host.location
    if previous == location:
        return LabelChange(
            host, config.location_attribute, previous, location, "unchanged", dry_run, None
        )
    if previous is not None:
        if not force:
            raise RefusedError(
                f"host {host.label} already carries {config.location_attribute}={previous}; "
                f"moving it to {location} needs --force"
            )
        blocking = {
            name: ids
            for name, ids in running_workloads(ecs, config, host).items()
            if location not in config.workloads[name].locations
        }
        if blocking:
            detail = "; ".join(
                f"{name} (tasks {', '.join(ids)})" for name, ids in sorted(blocking.items())
            )
            raise RefusedError(
                f"host {host.label} runs tasks that may not run in {location}: {detail}",
                hint="wait for them to stop or stop them, then relabel",
            )
    request = _attribute_request(config, host, location)
    action = "add" if previous is None else "change"
    if not dry_run:
        with aws_errors(f"labelling {host.label}"):
            ecs.put_attributes(**request)
    return LabelChange(
        host, config.location_attribute, previous, location, action, dry_run, request
    )


def unregister_host(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, reference: str, *, dry_run: bool = False
) -> LabelChange:
    """Remove the location attribute from one host (no-op when it has none)."""
    host = resolve_host(ecs, ssm, config, reference)
    if host.location is None:
        return LabelChange(host, config.location_attribute, None, None, "unchanged", dry_run, None)
    # The value is optional for DeleteAttributes; naming it also makes moto delete it.
    request = _attribute_request(config, host, host.location)
    if not dry_run:
        with aws_errors(f"removing the label of {host.label}"):
            ecs.delete_attributes(**request)
    return LabelChange(
        host, config.location_attribute, host.location, None, "remove", dry_run, request
    )
