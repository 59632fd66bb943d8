"""Hosts: list the cluster's container instances, resolve a host reference, relabel hosts.

Attributes are read from DescribeContainerInstances, never ListAttributes: the latter is
eventually consistent and (in moto) mixes clusters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors, is_aws_error
from residency_cli.config import Config, same_hostname, workload_for_task
from residency_cli.errors import RefusedError, UsageError
from residency_cli.placement import build_expression
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


# ListContainerInstances (ECS API Reference; botocore's ecs service-2.json): `filter` takes
# a cluster query language expression, `status` one status (without it every status but
# INACTIVE), and an answer holds at most 100 ARNs (`maxResults` 1-100, default 100) with a
# `nextToken` for the rest. DescribeContainerInstances takes at most 100 ARNs a call. The
# query language's subjects are `attribute:NAME`, agentConnected, agentVersion,
# ec2InstanceId, registeredAt, runningTasksCount and task:group (ECS developer guide,
# "Cluster query language"): free CPU and memory are not among them, so a host's room is
# read from its description.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cluster-query-language.html


def list_instance_page(
    ecs: ECSClient,
    cluster: str,
    *,
    expression: str | None = None,
    status: str | None = None,
    token: str | None = None,
    max_results: int | None = None,
) -> tuple[list[str], str | None]:
    """One ListContainerInstances answer: (up to 100 ARNs, the token of the next page)."""
    request: dict[str, Any] = {"cluster": cluster}
    if expression is not None:
        request["filter"] = expression
    if status is not None:
        request["status"] = status
    if token is not None:
        request["nextToken"] = token
    if max_results is not None:
        request["maxResults"] = max_results
    with aws_errors(f"listing the container instances of cluster {cluster!r}"):
        answer = ecs.list_container_instances(**request)
    return [str(a) for a in answer.get("containerInstanceArns") or []], answer.get("nextToken")


def describe_hosts(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, arns: Sequence[str]
) -> list[Host]:
    """These container instances as Hosts: one DescribeContainerInstances per 100, and SSM
    asked for the names of these hosts only."""
    if not arns:
        return []
    return _as_hosts(describe_container_instances(ecs, config.cluster, arns), ssm, config)


def cluster_hosts(ecs: ECSClient, ssm: SSMClient | None, config: Config) -> list[Host]:
    """Every host of the cluster, described (what `check` diagnoses, `hosts` lists)."""
    return _as_hosts(describe_container_instances(ecs, config.cluster), ssm, config)


def _as_hosts(
    instances: Sequence[dict[str, Any]], ssm: SSMClient | None, config: Config
) -> list[Host]:
    names = managed_instance_hostnames(ssm, (i.get("ec2InstanceId", "") for i in instances))
    return [host_from_instance(i, config.location_attribute, names) for i in instances]


def filtered_host_pages(
    ecs: ECSClient,
    ssm: SSMClient | None,
    config: Config,
    expression: str,
    *,
    status: str | None = "ACTIVE",
) -> Iterator[list[Host]]:
    """The hosts ECS lists for `expression` (the server-side `filter`), a page at a time:
    per page one ListContainerInstances, one DescribeContainerInstances and SSM for that
    page's hosts only. A caller that has seen enough stops asking for pages.

    A stand-in that ignores `filter` (stock moto does) lists every host: callers judge each
    host with `placement.evaluate` again, so such a host is shown as not matching."""
    token: str | None = None
    while True:
        arns, token = list_instance_page(
            ecs, config.cluster, expression=expression, status=status, token=token
        )
        yield describe_hosts(ecs, ssm, config, arns)
        if not token:
            return


def list_instance_arns(
    ecs: ECSClient, cluster: str, expression: str | None = None, status: str | None = None
) -> list[str]:
    """Every ARN ListContainerInstances answers for `expression` and `status`, page by page."""
    found, token = list_instance_page(ecs, cluster, expression=expression, status=status)
    while token:
        more, token = list_instance_page(
            ecs, cluster, expression=expression, status=status, token=token
        )
        found.extend(more)
    return found


def cluster_is_empty(ecs: ECSClient, cluster: str) -> bool:
    """Whether the cluster has no container instance at all (one ListContainerInstances)."""
    arns, _ = list_instance_page(ecs, cluster, max_results=1)
    return not arns


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


def hosts_of_tasks(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, tasks: Iterable[dict[str, Any]]
) -> dict[str, Host]:
    """container instance ARN -> Host, for the instances these tasks run (or ran) on."""
    arns = sorted({str(t["containerInstanceArn"]) for t in tasks if t.get("containerInstanceArn")})
    if not arns:
        return {}
    instances = describe_container_instances(ecs, config.cluster, arns)
    names = managed_instance_hostnames(ssm, (i.get("ec2InstanceId", "") for i in instances))
    hosts = (host_from_instance(i, config.location_attribute, names) for i in instances)
    return {host.container_instance_arn: host for host in hosts}


def list_hosts(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, location: str | None = None
) -> list[Host]:
    """The cluster's container instances as Hosts, optionally only those of one location."""
    if location is None:
        hosts = cluster_hosts(ecs, ssm, config)
    else:
        # Only that location's hosts are listed (ECS filters), described and named by SSM;
        # the location is checked again here for a stand-in that ignores `filter`.
        config.require_location(location)
        expression = build_expression(config.location_attribute, [location])
        pages = filtered_host_pages(ecs, ssm, config, expression, status=None)
        hosts = [h for page in pages for h in page if h.location == location]
    return sorted(hosts, key=lambda h: (h.location or "~", h.label))


def ssm_directory(ssm: SSMClient | None) -> list[dict[str, Any]]:
    """Every managed instance SSM knows (InstanceId, ComputerName, IPAddress, PingStatus)."""
    if ssm is None:
        return []
    found: list[dict[str, Any]] = []
    with aws_errors("listing managed instances in SSM"):
        for page in ssm.get_paginator("describe_instance_information").paginate():
            found.extend(page.get("InstanceInformationList", []))  # type: ignore[arg-type]
    return found


def _ids_for_hostname(directory: Sequence[dict[str, Any]], hostname: str) -> set[str]:
    """Instances whose name (SSM ComputerName: the fully qualified name) or IP address is
    `hostname`: an exact name first, else a short name of a fully qualified one (or the
    reverse); several hosts for one short name is an error listing them."""
    known = [i for i in directory if i.get("InstanceId")]
    exact = {
        str(i["InstanceId"])
        for i in known
        if hostname.lower() in (str(i.get("ComputerName", "")).lower(), str(i.get("IPAddress")))
    }
    if exact:
        return exact
    close = {
        str(i["InstanceId"]): str(i.get("ComputerName"))
        for i in known
        if i.get("ComputerName") and same_hostname(hostname, str(i["ComputerName"]))
    }
    if len(close) > 1:
        choices = ", ".join(f"{name} ({iid})" for iid, name in sorted(close.items()))
        raise UsageError(
            f"hostname {hostname!r} is ambiguous: it could be {choices}",
            hint="give the fully qualified name or the mi-/i- id",
        )
    return set(close)


def match_host(
    instances: Sequence[dict[str, Any]],
    reference: str,
    directory: Callable[[], Sequence[dict[str, Any]]],
    cluster: str,
) -> tuple[dict[str, Any], str | None]:
    """The described container instance `reference` names, and the hostname it was named by.

    `directory` is called (once) only when the reference is a hostname.
    """
    reference = reference.strip()
    if not reference:
        raise UsageError("HOST is empty: give a hostname, mi-/i- id or container-instance id/ARN")
    hostname = None
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
        ids = _ids_for_hostname(directory(), reference)
        if not ids:
            raise UsageError(
                f"no managed instance has hostname {reference!r}",
                hint="see `residency hosts` for the cluster's hosts, or pass an mi-/i- id",
            )
        found = [i for i in instances if i.get("ec2InstanceId") in ids]
        how = f"hostname (instance {', '.join(sorted(ids))})"
        hostname = reference
    if not found:
        raise UsageError(
            f"{how} {reference!r} is not a container instance of cluster {cluster!r}",
            hint="see `residency hosts`; is the ECS agent registered?",
        )
    if len(found) > 1:
        choices = ", ".join(container_instance_id(i["containerInstanceArn"]) for i in found)
        raise UsageError(
            f"{reference!r} matches several container instances ({choices}); pass one id"
        )
    return found[0], hostname


def resolve_host(ecs: ECSClient, ssm: SSMClient | None, config: Config, reference: str) -> Host:
    """A container instance from its ARN or id, its mi-/i- instance id, or its hostname."""
    instances = describe_container_instances(ecs, config.cluster)
    instance, named = match_host(instances, reference, lambda: ssm_directory(ssm), config.cluster)
    hostnames = managed_instance_hostnames(ssm, [instance.get("ec2InstanceId", "")])
    host = host_from_instance(instance, config.location_attribute, hostnames)
    if host.hostname is None and named is not None:
        host = Host(**{**host.__dict__, "hostname": named})
    return host


def declared_location(config: Config, host: Host) -> tuple[str, str] | None:
    """The map's inventory entry for `host`: (location, `file:line: hosts.KEY`), or None."""
    return config.declared_location(
        hostname=host.hostname,
        instance_id=host.instance_id,
        container_instance_arn=host.container_instance_arn,
    )


def inventory_conflict(config: Config, host: Host) -> str | None:
    """Why `host`'s label breaks the map's inventory (None when it does not): a declared
    host whose label says another location than the map."""
    declared = declared_location(config, host)
    if declared is None or host.location == declared[0]:
        return None
    return f"label {host.location or '(none)'} contradicts the map ({declared[0]})"


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


def blocking_work(
    ecs: ECSClient, config: Config, host: Host, location: str | None
) -> dict[str, list[str]]:
    """Workloads running on `host` that `location` (None: no label) would not allow."""
    return {
        name: ids
        for name, ids in running_workloads(ecs, config, host).items()
        if location not in config.workloads[name].locations
    }


def _refuse_moving_running_work(
    ecs: ECSClient, config: Config, host: Host, location: str | None
) -> None:
    blocking = blocking_work(ecs, config, host, location)
    if blocking:
        detail = "; ".join(
            f"{name} (tasks {', '.join(ids)})" for name, ids in sorted(blocking.items())
        )
        raise RefusedError(
            f"host {host.label} runs tasks that may not run "
            f"{f'in {location}' if location else 'with no location label'}: "
            f"{detail}",
            hint="wait for them to stop or stop them, then relabel",
        )


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
    declared = declared_location(config, host)
    if declared is not None and declared[0] != location:
        # The inventory is the truth (CONTRACT.md section 8): not even --force overrides it.
        raise RefusedError(
            f"the map declares host {host.label} as {declared[0]} ({declared[1]}); "
            f"refusing to label it {location}",
            hint="edit the map's hosts: section instead, then `residency hosts sync`",
        )
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
        _refuse_moving_running_work(ecs, config, host, location)
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
    _refuse_moving_running_work(ecs, config, host, None)
    # The value is optional for DeleteAttributes; naming it also makes moto delete it.
    request = _attribute_request(config, host, host.location)
    if not dry_run:
        with aws_errors(f"removing the label of {host.label}"):
            ecs.delete_attributes(**request)
    return LabelChange(
        host, config.location_attribute, host.location, None, "remove", dry_run, request
    )


@dataclass(frozen=True)
class SyncStep:
    """One relabel of `hosts sync`: add, change or remove a host's location."""

    host: Host
    action: str  # "add" | "change" | "remove"
    previous: str | None
    location: str | None
    declared_as: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "host": self.host.label,
            "container_instance_arn": self.host.container_instance_arn,
            "declared_as": self.declared_as,
            "previous_location": self.previous,
            "location": self.location,
        }


@dataclass(frozen=True)
class SyncPlan:
    steps: list[SyncStep]
    unchanged: list[str]
    dry_run: bool
    applied: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "applied": self.applied,
            "steps": [s.to_json() for s in self.steps],
            "unchanged": self.unchanged,
        }


def plan_sync(ecs: ECSClient, ssm: SSMClient | None, config: Config) -> SyncPlan:
    """What it takes for the cluster's labels to match the map's `hosts:` section.

    Declared hosts get their location; labelled hosts the map does not declare lose theirs.
    Every declared host must exist, or nothing is planned (a typo must not strip a label).
    """
    instances = describe_container_instances(ecs, config.cluster)
    directory: list[dict[str, Any]] | None = None

    def lookup() -> list[dict[str, Any]]:
        nonlocal directory
        if directory is None:
            directory = ssm_directory(ssm)
        return directory

    names = managed_instance_hostnames(ssm, (i.get("ec2InstanceId", "") for i in instances))
    wanted: dict[str, tuple[str, str]] = {}  # container instance ARN -> (location, declared as)
    for reference, location in config.hosts.items():
        instance, _ = match_host(instances, reference, lookup, config.cluster)
        arn = str(instance["containerInstanceArn"])
        if arn in wanted and wanted[arn][0] != location:
            raise UsageError(
                f"hosts: {wanted[arn][1]!r} and {reference!r} are the same host "
                f"with different locations ({wanted[arn][0]}, {location})"
            )
        wanted[arn] = (location, reference)
    steps: list[SyncStep] = []
    unchanged: list[str] = []
    for instance in instances:
        host = host_from_instance(instance, config.location_attribute, names)
        target, declared = wanted.get(host.container_instance_arn, (None, None))
        if host.location == target:
            if target is not None:
                unchanged.append(host.label)
            continue
        action = "remove" if target is None else "add" if host.location is None else "change"
        steps.append(SyncStep(host, action, host.location, target, declared))
    return SyncPlan(steps, unchanged, dry_run=True, applied=False)


def _sync_refusals(
    ecs: ECSClient, config: Config, plan: SyncPlan, hosts: Sequence[Host], force: bool
) -> list[str]:
    problems: list[str] = []
    for step in plan.steps:
        if step.previous is None:
            continue
        for name, ids in sorted(blocking_work(ecs, config, step.host, step.location).items()):
            problems.append(
                f"{step.host.label} runs {name} (tasks {', '.join(ids)}), "
                "which may not run "
                f"{f'in {step.location}' if step.location else 'with no location label'}"
            )
    if force:
        return problems
    problems += _undeclared_labels(config, plan)
    after = {h.container_instance_arn: h.location for h in hosts}
    for step in plan.steps:
        after[step.host.container_instance_arn] = step.location
    for location in config.locations:
        before = sum(1 for h in hosts if h.location == location)
        remaining = sum(1 for value in after.values() if value == location)
        users = [n for n, w in config.workloads.items() if location in w.locations]
        if before and not remaining and users:
            problems.append(
                f"the sync strips the last host of {location}, which {', '.join(users)} "
                "still need; pass --force to do it anyway"
            )
    return problems


def _undeclared_labels(config: Config, plan: SyncPlan) -> list[str]:
    """A labelled host the inventory does not name (one that joined through `activate`, say)
    is not stripped silently: the map and the cluster are told to agree first."""
    return [
        f"host {step.host.label} carries {config.location_attribute}={step.previous} but is not "
        f"in the map's hosts: add `  {step.host.label}: {step.previous}` under hosts: in "
        f"{config.source}, or pass --force to remove its label"
        for step in plan.steps
        if step.action == "remove"
    ]


def check_sync(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, *, force: bool = False
) -> SyncPlan:
    """The plan of `hosts sync`, refused as a whole (RefusedError) if any step would break
    residency: nothing has changed when this returns or raises."""
    plan = plan_sync(ecs, ssm, config)
    hosts = [
        host_from_instance(i, config.location_attribute)
        for i in describe_container_instances(ecs, config.cluster)
    ]
    problems = _sync_refusals(ecs, config, plan, hosts, force)
    if problems:
        raise RefusedError("refusing to sync hosts: " + "; ".join(problems))
    return plan


def apply_sync(ecs: ECSClient, config: Config, plan: SyncPlan) -> SyncPlan:
    """Apply a checked plan, one label at a time, in the plan's order."""
    with aws_errors("relabelling hosts"):
        for step in plan.steps:
            request = _attribute_request(config, step.host, step.location or step.previous)
            if step.location is None:
                ecs.delete_attributes(**request)
            else:
                ecs.put_attributes(**request)
    return SyncPlan(plan.steps, plan.unchanged, dry_run=False, applied=bool(plan.steps))


def sync_hosts(
    ecs: ECSClient,
    ssm: SSMClient | None,
    config: Config,
    *,
    dry_run: bool = False,
    force: bool = False,
) -> SyncPlan:
    """Plan, check and (unless dry_run) apply the map's `hosts:` section."""
    plan = check_sync(ecs, ssm, config, force=force)
    if dry_run:
        return SyncPlan(plan.steps, plan.unchanged, dry_run=True, applied=False)
    return apply_sync(ecs, config, plan)
