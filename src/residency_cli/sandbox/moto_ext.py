"""Small extensions of moto where it falls short of ECS Anywhere (DESIGN.md, "Testing
against AWS without AWS"). Every patch lives here, is written for the moto versions in
SUPPORTED_MOTO_VERSIONS, and behaves exactly like stock moto unless the sandbox is enabled
(`world().enabled`), so that plain `mock_aws` tests in the same process are unaffected.

What each patch stands for in real ECS / SSM is in its docstring.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from datetime import datetime, timezone
from typing import Any

from residency_cli.errors import UsageError
from residency_cli.guarding import write_label
from residency_cli.limits import (
    MAX_EXPRESSION_CHARACTERS,
    MAX_OVERRIDES_CHARACTERS,
    MAX_PLACEMENT_CONSTRAINTS,
    MAX_TAGS,
    tag_problem,
)
from residency_cli.placement import NAME_PATTERN, ExpressionError, evaluate, parse_expression
from residency_cli.sandbox.world import ACCOUNT_ID, DAY_SECONDS, HostSpec, World, moto_module, world

SUPPORTED_MOTO_VERSIONS = ("5.2.5",)
_installed = False

DEFAULT_HOST_CPU = 2048
DEFAULT_HOST_MEMORY = 3840
MAX_RUN_TASK_COUNT = 10


def check_moto_version() -> str:
    """The installed moto version; refuses clearly when the extensions were not written for it."""
    try:
        moto = moto_module("moto")
    except ImportError:
        raise UsageError(
            "the sandbox needs moto, which is not installed",
            hint="pip install 'residency[sandbox]' (moto[server]==5.2.5)",
        ) from None
    version = str(getattr(moto, "__version__", "unknown"))
    if version not in SUPPORTED_MOTO_VERSIONS:
        supported = ", ".join(SUPPORTED_MOTO_VERSIONS)
        raise UsageError(
            f"the sandbox extends moto {supported}, but moto {version} is installed",
            hint=f"pip install 'moto[server]=={SUPPORTED_MOTO_VERSIONS[-1]}'",
        )
    return version


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ecs_error(code: str, message: str, **attributes: Any) -> Exception:
    ECSException = moto_module("moto.ecs.exceptions").ECSException

    error = ECSException(code, message)
    for name, value in attributes.items():
        setattr(error, name, value)
    return error  # type: ignore[no-any-return]


def _invalid(message: str) -> Exception:
    InvalidParameterException = moto_module("moto.ecs.exceptions").InvalidParameterException

    return InvalidParameterException(message)  # type: ignore[no-any-return]


# --- containers of a task ----------------------------------------------------------------


class SandboxContainer:
    """A task's container as DescribeTasks shows it (moto models only the first container
    and reports `exitCode: 0` from the start; real ECS has no exitCode until it exits)."""

    def __init__(self, task_arn: str, definition: dict[str, Any], container_id: str) -> None:
        region_account = task_arn.split(":task/")[0]
        self.container_arn = f"{region_account}:container/{container_id}"
        self.task_arn = task_arn
        self.name = definition.get("name")
        self.image = definition.get("image")
        self.last_status = "PENDING"
        self.exit_code: int | None = None
        self.reason: str | None = None
        self.runtime_id: str | None = None
        self.network_bindings: list[dict[str, Any]] = []
        self.network_interfaces: list[dict[str, Any]] = []
        self.health_status = "UNKNOWN"
        self.cpu = str(definition.get("cpu", 0))
        memory = definition.get("memory")
        self.memory = None if memory is None else str(memory)
        reservation = definition.get("memoryReservation")
        self.memory_reservation = None if reservation is None else str(reservation)


# --- task definitions --------------------------------------------------------------------


def _task_definition_init(original: Any) -> Any:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        """EXTERNAL task definitions keep their network mode (host, bridge or none) and are
        compatible with EC2 and EXTERNAL, as RegisterTaskDefinition answers in ECS; moto
        turns every non-EC2 definition into a FARGATE/awsvpc one, which RunTask rejects."""
        original(self, *args, **kwargs)
        requires = kwargs.get("requires_compatibilities") or []
        if "EXTERNAL" in requires and "FARGATE" not in requires:
            self.compatibilities = ["EC2", "EXTERNAL"]
            self.network_mode = kwargs.get("network_mode") or "bridge"

    return init


# --- container instances -----------------------------------------------------------------


def _container_instance_init(original: Any) -> Any:
    def init(
        self: Any,
        ec2_instance_id: str,
        account_id: str,
        region_name: str,
        cluster_name: str,
        backend: Any,
    ) -> None:
        """ECS Anywhere: the container instance of an external host carries the host's SSM
        managed-instance id (`mi-...`) as `ec2InstanceId`, with no EC2 instance behind it.
        moto looks every id up in its EC2 backend and fails for `mi-` ids."""
        if not ec2_instance_id.startswith("mi-"):
            original(self, ec2_instance_id, account_id, region_name, cluster_name, backend)
            return
        import uuid

        utcnow = moto_module("moto.core.utils").utcnow

        cpu, memory = DEFAULT_HOST_CPU, DEFAULT_HOST_MEMORY
        self.ec2_instance_id = ec2_instance_id
        self.agent_connected = True
        self.status = "ACTIVE"

        def resources(cpu: int, memory: int) -> list[dict[str, Any]]:
            return [
                {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
                {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "51678"]},
                {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
            ]

        self.registered_resources = resources(cpu, memory)
        self.remaining_resources = resources(cpu, memory)
        self.pending_tasks_count = 0
        self.running_tasks_count = 0
        self.version_info = {
            "agentVersion": "1.87.0",
            "agentHash": "sandbox",
            "dockerVersion": "DockerVersion: 25.0.0",
        }
        self.attributes = {
            "ecs.os-type": "linux",
            "ecs.os-family": "LINUX",
            "ecs.cpu-architecture": "x86_64",
            "com.amazonaws.ecs.capability.logging-driver.awslogs": None,
            "ecs.capability.external": None,
        }
        self.registered_at = utcnow()
        self.region_name = region_name
        self.id = str(uuid.uuid4())
        self.cluster_name = cluster_name
        self._account_id = backend.account_id
        self._backend = backend

    return init


def register_managed_instance(
    region: str,
    cluster: str,
    hostname: str,
    *,
    root: Any,
    cpu: int = DEFAULT_HOST_CPU,
    memory: int = DEFAULT_HOST_MEMORY,
    ip_address: str | None = None,
    location: str | None = None,
    computer_name: str | None = None,
) -> HostSpec:
    """An ECS Anywhere host: an SSM managed instance (`mi-...`, with a ComputerName and an
    IP address) whose ECS agent registered it as a container instance of `cluster`."""
    ecs_backends = moto_module("moto.ecs.models").ecs_backends

    digest = hashlib.sha256(f"{cluster}/{hostname}".encode()).hexdigest()
    instance_id = f"mi-{digest[:17]}"
    ip = ip_address or f"10.{int(digest[17:19], 16)}.{int(digest[19:21], 16)}.{10 + len(hostname)}"
    backend = ecs_backends[ACCOUNT_ID][region]
    instance = backend.register_container_instance(cluster, instance_id)
    for resource in instance.registered_resources + instance.remaining_resources:
        if resource["name"] == "CPU":
            resource["integerValue"] = cpu
        elif resource["name"] == "MEMORY":
            resource["integerValue"] = memory
    host = HostSpec(
        hostname=hostname,
        instance_id=instance_id,
        region=region,
        cluster=cluster,
        root=root,
        ip_address=ip,
        container_instance_arn=instance.container_instance_arn,
        location=location,
        computer_name=computer_name,
    )
    sandbox = world()
    with sandbox.lock:
        sandbox.hosts[instance_id] = host
    _ssm_instances(region)[instance_id] = _instance_information(host)
    return host


# --- SSM ---------------------------------------------------------------------------------


def _ssm_instances(region: str) -> dict[str, dict[str, Any]]:
    ssm_backends = moto_module("moto.ssm.models").ssm_backends

    backend = ssm_backends[ACCOUNT_ID][region]
    if not hasattr(backend, "_residency_instances"):
        backend._residency_instances = {}
    return backend._residency_instances  # type: ignore[no-any-return]


def _instance_information(host: HostSpec) -> dict[str, Any]:
    """DescribeInstanceInformation's entry for a host (SSM API Reference,
    InstanceInformation): `ComputerName` is "the fully qualified host name of the managed
    node" (`HostSpec.fqdn`); `Name` is the activation's DefaultInstanceName, so a seeded host
    (no activation of its own) has none, and every host of one activation shares it."""
    now = _utcnow()
    return {
        "InstanceId": host.instance_id,
        "PingStatus": "Online",
        "LastPingDateTime": now,
        "AgentVersion": "3.3.0.0",
        "IsLatestVersion": False,
        "PlatformType": "Linux",
        "PlatformName": "Debian GNU/Linux",
        "PlatformVersion": "12",
        "ActivationId": hashlib.sha256(host.cluster.encode()).hexdigest()[:36],
        "IamRole": "ecsAnywhereRole",
        "RegistrationDate": now,
        "ResourceType": "ManagedInstance",
        "IPAddress": host.ip_address,
        "ComputerName": host.fqdn,
        "SourceId": host.instance_id,
        "SourceType": "AWS::SSM::ManagedInstance",
    }


def set_computer_name(region: str, instance_id: str, computer_name: str) -> None:
    """The host's fully qualified name as SSM reports it (`ComputerName`)."""
    sandbox = world()
    with sandbox.lock:
        host = sandbox.hosts.get(instance_id)
        if host is not None:
            host.computer_name = computer_name
        info = _ssm_instances(region).get(instance_id)
        if info is not None:
            info["ComputerName"] = computer_name


def set_ping_status(region: str, instance_id: str, status: str) -> None:
    info = _ssm_instances(region).get(instance_id)
    if info is not None:
        info["PingStatus"] = status
        info["LastPingDateTime"] = _utcnow()


def lost_host_reason(instance_id: str) -> str:
    """The `stoppedReason` of a task whose EC2 container instance was stopped or terminated
    under it (the wording the ECS console shows; only with `lose_host(..., stopped=True)`)."""
    return f"Host EC2 (instance {instance_id}) stopped/terminated"


def _host_runtimes(sandbox: World, instance_id: str) -> list[Any]:
    return [r for r in sandbox.runtimes.values() if r.host.instance_id == instance_id]


def _set_agent(region: str, cluster: str, instance_id: str, connected: bool) -> None:
    backend = moto_module("moto.ecs.models").ecs_backends[ACCOUNT_ID][region]
    for instance in backend.container_instances.get(cluster, {}).values():
        if instance.ec2_instance_id == instance_id:
            instance.agent_connected = connected


def lose_host(
    region: str,
    cluster: str,
    instance_id: str,
    timeout: float = 10.0,
    *,
    stopped: bool = False,
    stop_code: str | None = None,
) -> list[str]:
    """The host goes dark mid-task. By default as on ECS Anywhere: its ECS agent
    disconnects (`agentConnected: false`), its SSM agent stops answering (`PingStatus:
    ConnectionLost`), and its tasks stay RUNNING to the API (ECS cannot reach an external
    host to stop them, and the agent "disconnects and reconnects several times per hour as
    a part of its normal operation": ECS developer guide, "Amazon ECS container instance
    state change events", ecs_container_instance_events.html). The sandbox freezes the task
    processes (SIGSTOP) and holds every report until `restore_host`.

    With `stopped`, what ECS does when an EC2 container instance is stopped or terminated
    ("the tasks running on it are transitioned to STOPPED", same page): every task process
    dies with the host and its unfinished tasks go STOPPED with `lost_host_reason`,
    `stop_code` (none unless given, e.g. "InfrastructureHealth", an enum value of
    botocore's TaskStopCode) and no exit code. Returns the ARNs of the host's tasks."""
    sandbox = world()
    with sandbox.lock:
        runtimes = _host_runtimes(sandbox, instance_id)
        _set_agent(region, cluster, instance_id, False)
    set_ping_status(region, instance_id, "ConnectionLost")
    if not stopped:
        for runtime in runtimes:
            runtime.freeze()
        return [r.task_arn for r in runtimes]
    reason = lost_host_reason(instance_id)
    for runtime in runtimes:
        runtime.lose(reason, stop_code)
    for runtime in runtimes:
        runtime.join(timeout)
    return [r.task_arn for r in runtimes]


def restore_host(region: str, cluster: str, instance_id: str) -> list[str]:
    """The host is back: agents connected, task processes go on, and what its agent held
    back (a container that ended, a StopTask) reaches the API. The ARNs of its tasks."""
    sandbox = world()
    with sandbox.lock:
        runtimes = _host_runtimes(sandbox, instance_id)
        _set_agent(region, cluster, instance_id, True)
    set_ping_status(region, instance_id, "Online")
    for runtime in runtimes:
        runtime.thaw()
    return [r.task_arn for r in runtimes]


_SSM_FILTER_FIELDS = {
    "InstanceIds": "InstanceId",
    "PingStatus": "PingStatus",
    "ResourceType": "ResourceType",
    "PlatformTypes": "PlatformType",
    "AgentVersion": "AgentVersion",
    "ActivationIds": "ActivationId",
    "IamRole": "IamRole",
}


def _describe_instance_information(self: Any) -> Any:
    """SSM DescribeInstanceInformation (not in moto): the managed instances with their
    ComputerName, IPAddress and PingStatus; `Filters` / `InstanceInformationFilterList`
    on the documented keys, and MaxResults/NextToken paging."""
    ActionResult = moto_module("moto.core.responses").ActionResult
    ValidationException = moto_module("moto.ssm.exceptions").ValidationException

    filters: dict[str, list[str]] = {}
    for item in self._get_param("Filters") or []:
        filters[item.get("Key")] = list(item.get("Values") or [])
    for item in self._get_param("InstanceInformationFilterList") or []:
        filters[item.get("key")] = list(item.get("valueSet") or [])
    for key in filters:
        if key not in _SSM_FILTER_FIELDS:
            raise ValidationException(f"The filter key {key} is not supported")
    found = []
    for info in _ssm_instances(self.region).values():
        if all(str(info.get(_SSM_FILTER_FIELDS[k])) in v for k, v in filters.items()):
            found.append(info)
    found.sort(key=lambda i: i["InstanceId"])
    size = int(self._get_param("MaxResults") or 50)
    start = int(self._get_param("NextToken") or 0)
    result: dict[str, Any] = {"InstanceInformationList": found[start : start + size]}
    if start + size < len(found):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


# --- SSM activations ---------------------------------------------------------------------
#
# https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CreateActivation.html
# (and API_DescribeActivations.html, API_DeleteActivation.html, API_Activation.html).
# Times are the sandbox clock's (`world().clock`), so tests can let an activation expire.

ACTIVATION_DEFAULT_SECONDS = DAY_SECONDS
ACTIVATION_MAX_SECONDS = 30 * DAY_SECONDS
ACTIVATION_MAX_REGISTRATIONS = 1000
ACTIVATION_CODE_LENGTH = 20
_ACTIVATION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DEFAULT_INSTANCE_NAME = re.compile(r"^[\w\s.:/=+\-@]*$")
_ACTIVATION_FILTER_FIELDS = {
    "ActivationIds": "ActivationId",
    "DefaultInstanceName": "DefaultInstanceName",
    "IamRole": "IamRole",
}
_ACTIVATION_FIELDS = (
    "ActivationId",
    "Description",
    "DefaultInstanceName",
    "IamRole",
    "RegistrationLimit",
    "RegistrationsCount",
    "ExpirationDate",
    "CreatedDate",
    "Tags",
)


def _ssm_error(code: str, message: str) -> Exception:
    SSMException = moto_module("moto.ssm.exceptions").SSMException

    return SSMException(code, message)  # type: ignore[no-any-return]


def _not_implemented(action: str) -> NotImplementedError:
    """What stock moto answers for an action it lacks (the patches are inert outside the
    sandbox)."""
    return NotImplementedError(f"The {action} action has not been implemented")


def _sandbox_now() -> datetime:
    return datetime.fromtimestamp(world().clock.now(), timezone.utc)


def ssm_activations(region: str) -> dict[str, dict[str, Any]]:
    """The region's activations by id, oldest first (with their codes: never described)."""
    ssm_backends = moto_module("moto.ssm.models").ssm_backends

    backend = ssm_backends[ACCOUNT_ID][region]
    if not hasattr(backend, "_residency_activations"):
        backend._residency_activations = {}
    return backend._residency_activations  # type: ignore[no-any-return]


def _timestamp(value: Any, what: str) -> datetime:
    """A request timestamp: epoch seconds (what the SDKs send for awsJson) or ISO 8601."""
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, int | float):
            moment = datetime.fromtimestamp(float(value), timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError, OSError):
        raise _ssm_error("ValidationException", f"{what} is not a timestamp: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _expired(activation: dict[str, Any], now: datetime | None = None) -> bool:
    return bool((now or _sandbox_now()) >= activation["ExpirationDate"])


# Complexity exception (C901): CreateActivation's documented parameter constraints, checked
# in the order AWS lists them, each with AWS's own error; one validation list, read as one.
def _create_activation(self: Any) -> Any:  # noqa: C901
    """SSM CreateActivation (not in moto): an activation ID (a UUID) and a 20-character
    activation code that on-premises hosts register with. `IamRole` is required (at most 64
    characters); `RegistrationLimit` 1-1000, default 1; `ExpirationDate` at most 30 days
    ahead, default 24 hours; `Description` and `DefaultInstanceName` at most 256
    characters; `Tags` at most 1000. Constraint violations answer ValidationException, a
    date in the past or too far ahead InvalidParameters."""
    if not world().enabled:
        raise _not_implemented("create_activation")
    import secrets
    import uuid

    ActionResult = moto_module("moto.core.responses").ActionResult

    role = self._get_param("IamRole")
    if not isinstance(role, str) or not role:
        raise _ssm_error("ValidationException", "IamRole is required.")
    if len(role) > 64:
        raise _ssm_error(
            "ValidationException",
            "1 validation error detected: Value at 'iamRole' failed to satisfy constraint: "
            "Member must have length less than or equal to 64",
        )
    limit = self._get_param("RegistrationLimit")
    limit = 1 if limit is None else limit
    if not isinstance(limit, int) or not 1 <= limit <= ACTIVATION_MAX_REGISTRATIONS:
        raise _ssm_error(
            "ValidationException",
            f"1 validation error detected: Value '{limit}' at 'registrationLimit' failed to "
            f"satisfy constraint: Member must have value between 1 and "
            f"{ACTIVATION_MAX_REGISTRATIONS}",
        )
    description = self._get_param("Description")
    name = self._get_param("DefaultInstanceName")
    for field_name, value in (("description", description), ("defaultInstanceName", name)):
        if value is not None and (not isinstance(value, str) or len(value) > 256):
            raise _ssm_error(
                "ValidationException",
                f"1 validation error detected: Value at '{field_name}' failed to satisfy "
                "constraint: Member must have length less than or equal to 256",
            )
    if name and not _DEFAULT_INSTANCE_NAME.fullmatch(name):
        raise _ssm_error(
            "ValidationException",
            f"1 validation error detected: Value '{name}' at 'defaultInstanceName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
        )
    tags = list(self._get_param("Tags") or [])
    if len(tags) > 1000:
        raise _ssm_error("ValidationException", "An activation can have at most 1000 tags.")
    now = _sandbox_now()
    expires_param = self._get_param("ExpirationDate")
    if expires_param is None:
        expires = datetime.fromtimestamp(now.timestamp() + ACTIVATION_DEFAULT_SECONDS, timezone.utc)
    else:
        expires = _timestamp(expires_param, "ExpirationDate")
        if expires <= now:
            raise _ssm_error("InvalidParameters", "ExpirationDate must be in the future.")
        if (expires - now).total_seconds() > ACTIVATION_MAX_SECONDS:
            raise _ssm_error(
                "InvalidParameters",
                "ExpirationDate must be at most 30 days from the time the activation is created.",
            )
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    activation = {
        "ActivationId": str(uuid.uuid4()),
        "ActivationCode": "".join(secrets.choice(alphabet) for _ in range(ACTIVATION_CODE_LENGTH)),
        "Description": description,
        "DefaultInstanceName": name,
        "IamRole": role,
        "RegistrationLimit": limit,
        "RegistrationsCount": 0,
        "ExpirationDate": expires,
        "CreatedDate": now,
        "Tags": [{"Key": str(t.get("Key")), "Value": str(t.get("Value", ""))} for t in tags],
    }
    with world().lock:
        ssm_activations(self.region)[activation["ActivationId"]] = activation
    return ActionResult(
        {
            "ActivationId": activation["ActivationId"],
            "ActivationCode": activation["ActivationCode"],
        }
    )


def describe_activation(activation: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """An activation as DescribeActivations shows it: never its code; `Expired` by the clock."""
    shown = {k: activation[k] for k in _ACTIVATION_FIELDS if activation.get(k) is not None}
    shown["Expired"] = _expired(activation, now)
    return shown


def _describe_activations(self: Any) -> Any:
    """SSM DescribeActivations (not in moto): the region's activations with
    RegistrationsCount, Expired and CreatedDate (never the code); `Filters` on
    ActivationIds, DefaultInstanceName and IamRole (InvalidFilter for any other key);
    MaxResults 1-50 with NextToken paging (InvalidNextToken for a token it did not issue)."""
    if not world().enabled:
        raise _not_implemented("describe_activations")
    ActionResult = moto_module("moto.core.responses").ActionResult

    filters: list[tuple[str, list[str]]] = []
    for item in self._get_param("Filters") or []:
        key = item.get("FilterKey")
        if key not in _ACTIVATION_FILTER_FIELDS:
            raise _ssm_error(
                "InvalidFilter",
                f"The filter key {key} is not valid; use ActivationIds, DefaultInstanceName "
                "or IamRole.",
            )
        filters.append((_ACTIVATION_FILTER_FIELDS[key], list(item.get("FilterValues") or [])))
    size = self._get_param("MaxResults")
    size = 50 if size is None else size
    if not isinstance(size, int) or not 1 <= size <= 50:
        raise _ssm_error(
            "ValidationException",
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy "
            "constraint: Member must have value between 1 and 50",
        )
    token = self._get_param("NextToken")
    if token is None:
        start = 0
    elif isinstance(token, str) and token.isdigit():
        start = int(token)
    else:
        raise _ssm_error("InvalidNextToken", "The specified token is not valid.")
    now = _sandbox_now()
    with world().lock:
        found = [
            describe_activation(a, now)
            for a in ssm_activations(self.region).values()
            if all(str(a.get(field)) in values for field, values in filters)
        ]
    result: dict[str, Any] = {"ActivationList": found[start : start + size]}
    if start + size < len(found):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def _delete_activation(self: Any) -> Any:
    """SSM DeleteActivation (not in moto): the activation can no longer register hosts;
    hosts it registered stay registered. InvalidActivationId for an id that is not a UUID,
    InvalidActivation for one the region does not know (or that was deleted)."""
    if not world().enabled:
        raise _not_implemented("delete_activation")
    ActionResult = moto_module("moto.core.responses").ActionResult

    activation_id = self._get_param("ActivationId")
    if not isinstance(activation_id, str) or not _ACTIVATION_ID.fullmatch(activation_id):
        raise _ssm_error(
            "InvalidActivationId", f"The activation ID {activation_id!r} is not valid."
        )
    with world().lock:
        if ssm_activations(self.region).pop(activation_id, None) is None:
            raise _ssm_error(
                "InvalidActivation",
                f"Activation {activation_id} does not exist in {self.region} "
                "(it may have been deleted).",
            )
    return ActionResult({})


# --- a host joins with an activation -----------------------------------------------------

MAX_CUSTOM_ATTRIBUTES = 10
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*$")


class JoinRefused(Exception):
    """A host could not join: `code` names the reason (SSM's error names where SSM has one)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _join_attributes(attributes: Any) -> dict[str, str]:
    """ECS_INSTANCE_ATTRIBUTES: a JSON object of custom attribute names to string values,
    at most 10 (ECS's limit of custom attributes per resource), names not in `ecs.`."""
    from residency_cli.placement import attribute_name_problem, name_problem

    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise JoinRefused(
            "InvalidAttributes", "attributes must be a JSON object of names to values"
        )
    if len(attributes) > MAX_CUSTOM_ATTRIBUTES:
        raise JoinRefused(
            "InvalidAttributes",
            f"{len(attributes)} attributes given; ECS allows at most {MAX_CUSTOM_ATTRIBUTES} "
            "custom attributes per container instance",
        )
    for name, value in attributes.items():
        problem = attribute_name_problem(name) or name_problem(
            value, f"the value of attribute {name!r}"
        )
        if problem:
            raise JoinRefused("InvalidAttributes", problem)
    return {str(k): str(v) for k, v in attributes.items()}


def _check_label(
    labels: dict[str, str], activation: dict[str, Any], activation_id: str, attribute: str
) -> None:
    """A host that joins with an activation made for one location (`residency activate`
    tags it residency:location) may not label itself with another: the activation is the
    operator's decision of where the host is, the attributes only the host's own claim."""
    from residency_cli.constants import LOCATION_TAG

    expected = next(
        (
            str(tag.get("Value"))
            for tag in activation.get("Tags") or []
            if tag.get("Key") == LOCATION_TAG
        ),
        None,
    )
    claimed = labels.get(attribute)
    if expected is not None and claimed is not None and claimed != expected:
        raise JoinRefused(
            "InvalidAttributes",
            f"attribute {attribute}={claimed} contradicts activation {activation_id}, which is "
            f"for location {expected}; join with {attribute}={expected}, or create an activation "
            f"for {claimed} with `residency activate --location {claimed}`",
        )


def _registered(host: HostSpec) -> bool:
    """Is the host still a container instance of its cluster (not deregistered)?"""
    ecs_backends = moto_module("moto.ecs.models").ecs_backends

    backend = ecs_backends[ACCOUNT_ID][host.region]
    instance_id = host.container_instance_arn.rsplit("/", 1)[-1]
    return instance_id in backend.container_instances.get(host.cluster, {})


def _activation_location(activation: dict[str, Any]) -> str | None:
    """The location `residency activate` tagged the activation with, if it is one."""
    from residency_cli.constants import LOCATION_TAG

    for tag in activation.get("Tags") or []:
        value = tag.get("Value")
        if tag.get("Key") == LOCATION_TAG and isinstance(value, str):
            return value if NAME_PATTERN.fullmatch(value) else None
    return None


def _name_from(info: dict[str, Any], activation: dict[str, Any]) -> None:
    """SSM `Name`: the activation's DefaultInstanceName, absent when it has none."""
    if activation.get("DefaultInstanceName"):
        info["Name"] = activation["DefaultInstanceName"]


# Complexity exception (C901): the ECS Anywhere join's refusals in the order a real join
# meets them (hostname, region, activation, code, expiry, limit, label, cluster, duplicate),
# all under one lock so that a refused join changes nothing.
def join_host(  # noqa: C901
    hostname: Any,
    activation_id: Any,
    activation_code: Any,
    *,
    cluster: str,
    region: str,
    attributes: Any = None,
) -> HostSpec:
    """What the ECS Anywhere install script does on a new host: register it as an SSM
    managed instance with the activation (the code must match, the activation must not have
    expired nor reached its RegistrationLimit; each registration counts), then start the ECS
    agent, which registers the container instance with the custom attributes of
    ECS_INSTANCE_ATTRIBUTES. An activation made by `residency activate` (tagged with its
    location) also labels the host's data, as the commands it prints do on a real host.
    Raises JoinRefused, changing nothing, when any of it fails."""
    ecs_backends = moto_module("moto.ecs.models").ecs_backends
    ssm_backends = moto_module("moto.ssm.models").ssm_backends

    sandbox = world()
    if not isinstance(hostname, str) or not _HOSTNAME.fullmatch(hostname):
        raise JoinRefused(
            "InvalidHostname",
            f"{hostname!r} is not a hostname (letters, digits, '-' and '_' in dot-separated "
            "labels of at most 63 characters)",
        )
    labels = _join_attributes(attributes)
    if (
        region not in ssm_backends[ACCOUNT_ID].regions
        or region not in ecs_backends[ACCOUNT_ID].regions
    ):
        raise JoinRefused("InvalidRegion", f"{region!r} is not an AWS region")
    if not isinstance(activation_id, str) or not _ACTIVATION_ID.fullmatch(activation_id):
        raise JoinRefused(
            "InvalidActivationId",
            f"the activation ID {activation_id!r} is not valid (a UUID, as CreateActivation "
            "answers it)",
        )
    with sandbox.lock:
        activation = ssm_activations(region).get(activation_id)
        if activation is None:
            raise JoinRefused(
                "InvalidActivation",
                f"activation {activation_id} does not exist in {region} (deleted, or created "
                "in another region?)",
            )
        if activation_code != activation["ActivationCode"]:
            raise JoinRefused(
                "InvalidActivation",
                f"the activation code does not match activation {activation_id}",
            )
        now = _sandbox_now()
        if _expired(activation, now):
            expired_at = activation["ExpirationDate"].isoformat().replace("+00:00", "Z")
            raise JoinRefused(
                "ActivationExpired", f"activation {activation_id} expired at {expired_at}"
            )
        if activation["RegistrationsCount"] >= activation["RegistrationLimit"]:
            raise JoinRefused(
                "RegistrationLimitExceeded",
                f"activation {activation_id} has registered {activation['RegistrationsCount']} "
                f"of its {activation['RegistrationLimit']} hosts; create another activation",
            )
        _check_label(labels, activation, activation_id, sandbox.location_attribute)
        backend = ecs_backends[ACCOUNT_ID][region]
        cluster_name = cluster.rsplit("/", 1)[-1]
        if cluster_name not in backend.clusters:
            raise JoinRefused(
                "ClusterNotFoundException", f"cluster {cluster_name!r} does not exist in {region}"
            )
        # Hostnames are case-insensitive (RFC 4343): BONUS.HOST is bonus.host, not a second host.
        taken = next(
            (
                h
                for h in sandbox.hosts.values()
                if h.hostname.lower() == hostname.lower() and _registered(h)
            ),
            None,
        )
        if taken is not None:
            raise JoinRefused(
                "HostAlreadyRegistered",
                f"a host named {hostname} is already registered ({taken.instance_id}, cluster "
                f"{taken.cluster}, {taken.region}); deregister it first or pick another name",
            )
        root = sandbox.workdir / "hosts" / hostname
        shutil.rmtree(root, ignore_errors=True)  # a new host: nothing left from an earlier one
        (root / "data").mkdir(parents=True, exist_ok=True)
        data_location = _activation_location(activation)
        if data_location is not None:
            write_label(root / "data", data_location, 0o600)
        host = register_managed_instance(region, cluster_name, hostname, root=root)
        instance = backend.container_instances[cluster_name][
            host.container_instance_arn.rsplit("/", 1)[-1]
        ]
        instance.attributes.update(labels)
        info = _ssm_instances(region)[host.instance_id]
        info["ActivationId"] = activation_id
        info["IamRole"] = activation["IamRole"]
        _name_from(info, activation)
        info["RegistrationDate"] = now
        activation["RegistrationsCount"] += 1
    return host


# --- RunTask -----------------------------------------------------------------------------

_RUN_TASK_PARAMETERS = (
    "cluster",
    "taskDefinition",
    "count",
    "overrides",
    "startedBy",
    "tags",
    "launchType",
    "placementConstraints",
    "placementStrategy",
    "group",
    "networkConfiguration",
    "capacityProviderStrategy",
    "platformVersion",
    "enableECSManagedTags",
    "propagateTags",
    "referenceId",
    "enableExecuteCommand",
)


def _task_size(task_definition: Any, overrides: dict[str, Any]) -> tuple[int, int]:
    """CPU units and MiB a task reserves: task-level sizes (or their overrides) when given,
    else the sum over its containers (memoryReservation when memory is absent)."""
    cpu = overrides.get("cpu") or task_definition.cpu
    memory = overrides.get("memory") or task_definition.memory
    if cpu is None:
        cpu = sum(int(c.get("cpu") or 0) for c in task_definition.container_definitions)
    if memory is None:
        memory = sum(
            int(c.get("memory") or c.get("memoryReservation") or 0)
            for c in task_definition.container_definitions
        )
    return int(cpu), int(memory)


def _remaining(instance: Any, name: str) -> int:
    for resource in instance.remaining_resources:
        if resource.get("name") == name:
            return int(resource.get("integerValue") or 0)
    return 0


def _instance_fields(instance: Any) -> dict[str, str]:
    fields = {str(k): str(v) for k, v in instance.attributes.items() if v is not None}
    for name in instance.attributes:
        fields.setdefault(str(name), "")
    fields.setdefault("ec2InstanceId", instance.ec2_instance_id)
    return fields


def _has_attribute_value(instance: Any, name: str) -> bool:
    return instance.attributes.get(name) is not None or name in instance.attributes


def _constraint_reason(instance: Any, constraints: list[dict[str, Any]]) -> str | None:
    fields = {k: v for k, v in _instance_fields(instance).items()}
    for constraint in constraints:
        if constraint.get("type") != "memberOf":
            continue
        try:
            satisfied = evaluate(str(constraint.get("expression")), fields)
        except ExpressionError as error:
            raise _invalid(f"Invalid placement constraint expression: {error}") from None
        if not satisfied:
            return "MemberOf placement constraint unsatisfied."
    return None


def _placement_failures(
    instances: list[Any],
    constraints: list[dict[str, Any]],
    cpu: int,
    memory: int,
    excluded: set[str],
) -> tuple[list[Any], list[dict[str, str]]]:
    """Instances that can take the task, and for each other one ECS's failure reason
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/api_failures_messages.html):
    AGENT (agent disconnected), the unsatisfied constraint, RESOURCE:CPU, RESOURCE:MEMORY."""
    fits, failures = [], []
    for instance in instances:
        arn = instance.container_instance_arn
        if not instance.agent_connected:
            reason: str | None = "AGENT"
        elif arn in excluded:
            reason = "DistinctInstance placement constraint unsatisfied."
        else:
            reason = _constraint_reason(instance, constraints)
        if reason is None and cpu > _remaining(instance, "CPU"):
            reason = "RESOURCE:CPU"
        if reason is None and memory > _remaining(instance, "MEMORY"):
            reason = "RESOURCE:MEMORY"
        if reason is None:
            fits.append(instance)
        else:
            failures.append({"arn": arn, "reason": reason})
    return fits, failures


def _fingerprint(params: dict[str, Any]) -> str:
    relevant = {k: v for k, v in params.items() if v not in (None, [], {})}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def _tokens(backend: Any) -> dict[tuple[str, str], dict[str, Any]]:
    if not hasattr(backend, "_residency_tokens"):
        backend._residency_tokens = {}
    return backend._residency_tokens  # type: ignore[no-any-return]


def _check_token(token: str) -> None:
    """RunTask clientToken: up to 64 ASCII characters in the range 33-126."""
    if not 1 <= len(token) <= 64 or any(not 33 <= ord(c) <= 126 for c in token):
        raise _invalid("clientToken must be 1-64 ASCII characters in the range 33-126.")


def new_task(
    backend: Any,
    cluster: Any,
    task_definition: Any,
    instance: Any,
    *,
    overrides: dict[str, Any],
    started_by: str,
    tags: list[dict[str, str]],
    launch_type: str,
    group: str,
) -> Any:
    """A moto Task as the ECS scheduler hands it to an agent: PENDING, resources reserved,
    one container per container definition; the simulated host takes it from there."""
    import uuid

    Task = moto_module("moto.ecs.models").Task

    from residency_cli.sandbox.simhost import reserve

    cpu, memory = _task_size(task_definition, overrides)
    task = Task(
        cluster,
        task_definition,
        instance.container_instance_arn,
        {"CPU": cpu, "MEMORY": memory, "PORTS": [], "PORTS_UDP": []},
        backend=backend,
        group=group,
        launch_type=launch_type,
        overrides=overrides,
        started_by=started_by,
        tags=tags,
    )
    task._transitions = []  # the simulated host, not DescribeTasks, moves the task along
    task.last_status = "PENDING"
    task.desired_status = "RUNNING"
    task.created_at = _utcnow()
    task.stopped_reason = None
    task.stop_code = None
    task.connectivity = "CONNECTED"
    task.connectivity_at = task.created_at
    task.cpu = str(cpu)
    task.memory = str(memory)
    task.version = 1
    task.containers = [
        SandboxContainer(task.task_arn, definition, str(uuid.uuid4()))
        for definition in task_definition.container_definitions
    ]
    task._residency_reserved = (cpu, memory)
    reserve(instance, cpu, memory)
    instance.pending_tasks_count += 1
    cluster.pending_tasks_count += 1
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def launch(backend: Any, task: Any, instance: Any) -> None:
    """Hand the task to the simulated host's agent (asynchronously, like ECS)."""
    from residency_cli.sandbox.simhost import TaskRuntime

    sandbox = world()
    host = sandbox.host_for_instance(instance.ec2_instance_id)
    if host is None:  # registered through the API without the sandbox's seeding
        from pathlib import Path

        host = HostSpec(
            hostname=instance.ec2_instance_id,
            instance_id=instance.ec2_instance_id,
            region=backend.region_name,
            cluster=task.cluster_name,
            root=Path(sandbox.workdir) / "hosts" / instance.ec2_instance_id,
            ip_address="127.0.0.1",
            container_instance_arn=instance.container_instance_arn,
        )
        sandbox.hosts[instance.ec2_instance_id] = host
    TaskRuntime(sandbox, backend, task, host).start()


# ECS keeps a stopped task describable for about an hour, then forgets it.
STOPPED_TASK_SECONDS = 3600.0
# A RunTask clientToken lives for the lesser of 24 hours and the lifetime of its tasks
# (created -> the last one STOPPED) plus one hour; a replay for a task stopped under an hour
# ago answers only its ARN, last status and desired status (ECS API Reference, "Ensuring
# idempotency", https://docs.aws.amazon.com/AmazonECS/latest/APIReference/ECS_Idempotency.html
# #RunTaskIdempotency, "RunTask retry rules and responses").
TOKEN_AFTER_STOP_SECONDS = 3600.0
STOPPED_REPLAY_FIELDS = ("taskArn", "lastStatus", "desiredStatus")
FINAL_STATUSES = ("STOPPED", "DELETED")


def _stopped_for(task: Any, now: float) -> float | None:
    """How long ago (sandbox clock) the task reached STOPPED; None while it has not."""
    stopped = getattr(task, "stopped_on_sandbox_clock", None)
    if task.last_status not in FINAL_STATUSES or stopped is None:
        return None
    return now - float(stopped)


def _show_deleted(task: Any, sandbox: World, now: float) -> None:
    """DELETED "is a transition state when a task stops ... not displayed in the console,
    but is displayed in describe-tasks" (ECS developer guide, "Amazon ECS task lifecycle",
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html).
    ECS documents no delay; the sandbox shows it `World.deleted_after` seconds after STOPPED
    (off by default: None)."""
    age = _stopped_for(task, now)
    if sandbox.deleted_after is not None and age is not None and age >= sandbox.deleted_after:
        task.last_status = "DELETED"


def forget_expired(sandbox: World) -> int:
    """Forget what ECS forgets, by the sandbox clock: STOPPED tasks an hour after they
    stopped, clientTokens when their time to live is over (a token whose tasks are all
    forgotten goes with them); show DELETED where the sandbox is asked to. Keeps the
    sandbox's memory flat however long it runs. How many tasks went."""
    backends = moto_module("moto.ecs.models").ecs_backends[ACCOUNT_ID]
    now = sandbox.clock.now()
    forgotten: list[Any] = []
    with sandbox.lock:
        for region in {h.region for h in sandbox.hosts.values()}:
            backend = backends[region]
            for tasks in backend.tasks.values():
                for arn, task in list(tasks.items()):
                    _show_deleted(task, sandbox, now)
                    age = _stopped_for(task, now)
                    if (
                        age is not None
                        and age >= STOPPED_TASK_SECONDS
                        and arn not in sandbox.runtimes
                    ):
                        forgotten.append(tasks.pop(arn))
            tokens = _tokens(backend)
            for key, remembered in list(tokens.items()):
                if not _token_alive(backend, key[0], remembered, now):
                    del tokens[key]
        if forgotten:
            # moto also keeps every model it ever made (for its reset): let these go too.
            gone = {id(task) for task in forgotten}
            tracked = type(forgotten[0]).instances_tracked
            tracked[:] = [t for t in tracked if id(t) not in gone]
    return len(forgotten)


def _token_alive(backend: Any, cluster: str, remembered: dict[str, Any], now: float) -> bool:
    """min(24 h, the tasks' lifetime + 1 h): the lifetime ends when the last of the
    token's tasks reached STOPPED (ECS_Idempotency.html, "Idempotency for RunTask")."""
    if now - remembered["at"] >= DAY_SECONDS:
        return False
    known = backend.tasks.get(cluster, {})
    tasks = [known[arn] for arn in remembered["tasks"] if arn in known]
    if not tasks:
        return False
    ages = [_stopped_for(task, now) for task in tasks]
    if any(age is None for age in ages):
        return True
    return min(a for a in ages if a is not None) < TOKEN_AFTER_STOP_SECONDS


def _replayed(task: Any, now: float) -> Any:
    """A task as a replayed RunTask shows it: whole while it has not stopped, else only
    `taskArn`, `lastStatus` and `desiredStatus` (ECS_Idempotency.html, "RunTask retry
    rules and responses": "Tasks that have been stopped for under an hour only include the
    task ARN, last status, and desired status")."""
    if _stopped_for(task, now) is None:
        return task
    return {"taskArn": task.task_arn, "lastStatus": task.last_status, "desiredStatus": "STOPPED"}


def _replay(
    backend: Any, cluster: Any, token: str, fingerprint: str, sandbox: World
) -> tuple[list[Any], list[Any]] | None:
    """The answer to a RunTask whose clientToken is still alive in this cluster (the same
    parameters: the original result; others: ConflictException with the token's tasks as
    `resourceIds`), or None when the token is unknown or expired."""
    _check_token(token)
    remembered = _tokens(backend).get((cluster.name, token))
    now = sandbox.clock.now()
    if not remembered or not _token_alive(backend, cluster.name, remembered, now):
        return None
    if remembered["fingerprint"] != fingerprint:
        raise _ecs_error(
            "ConflictException",
            "The specified clientToken is already in use with a different RunTask request.",
            resourceIds=list(remembered["tasks"]),
        )
    by_arn = backend.tasks.get(cluster.name, {})
    tasks = [_replayed(by_arn[a], now) for a in remembered["tasks"] if a in by_arn]
    return tasks, list(remembered["failures"])


# RunTask limits: see residency_cli.limits (the ECS API Reference's numbers).
def _tag_problem(tag: dict[str, Any]) -> str | None:
    return tag_problem(str(tag.get("key") or ""), str(tag.get("value") or ""))


def _check_tags(tags: list[dict[str, Any]]) -> None:
    """Tags with the `aws:` prefix do not count against the limit (they are refused here
    anyway: a RunTask caller may not set them)."""
    if len(tags) > MAX_TAGS:
        raise _invalid(f"Too many tags: {len(tags)} given, at most {MAX_TAGS} are allowed.")
    keys = [str(t.get("key")) for t in tags]
    if len(set(keys)) != len(keys):
        raise _invalid("Each tag key must be unique; a key can have only one value.")
    for tag in tags:
        problem = _tag_problem(tag)
        if problem:
            raise _invalid(problem)


def _check_constraints(constraints: list[dict[str, Any]]) -> None:
    if len(constraints) > MAX_PLACEMENT_CONSTRAINTS:
        raise _invalid(
            f"At most {MAX_PLACEMENT_CONSTRAINTS} placement constraints are allowed for a "
            "task (including those in the task definition)."
        )
    for constraint in constraints:
        if constraint.get("type") != "memberOf":
            continue
        expression = str(constraint.get("expression") or "")
        if len(expression) > MAX_EXPRESSION_CHARACTERS:
            raise _invalid(
                f"Placement constraint expression must be at most {MAX_EXPRESSION_CHARACTERS} "
                f"characters ({len(expression)} given)."
            )
        try:
            parse_expression(expression)
        except ExpressionError as error:
            raise _invalid(f"Invalid placement constraint expression: {error}") from None


def _check_run_task(params: dict[str, Any], task_definition: Any) -> list[dict[str, Any]]:
    """Refuse what ECS refuses before placing anything; the request's and the task
    definition's placement constraints together."""
    if params.get("launchType") == "EXTERNAL" and "EXTERNAL" not in task_definition.compatibilities:
        raise _ecs_error(
            "ClientException", "Task definition does not support launch_type EXTERNAL."
        )
    count = int(params.get("count") or 1)
    if not 1 <= count <= MAX_RUN_TASK_COUNT:
        raise _invalid("count must be between 1 and 10.")
    _check_tags(list(params.get("tags") or []))
    overrides = params.get("overrides") or {}
    size = len(json.dumps(overrides, separators=(",", ":")))
    if size > MAX_OVERRIDES_CHARACTERS:
        # The wording ECS answers (seen by its users, e.g. convox/rack#1906).
        raise _invalid(f"Container Overrides length must be at most {MAX_OVERRIDES_CHARACTERS}")
    constraints = list(params.get("placementConstraints") or []) + list(
        task_definition.placement_constraints or []
    )
    _check_constraints(constraints)
    return constraints


def _choose(
    sandbox: World,
    registered: list[Any],
    active: list[Any],
    constraints: list[dict[str, Any]],
    size: tuple[int, int],
    excluded: set[str],
) -> tuple[Any | None, list[dict[str, str]]]:
    """The instance the next task goes to (the least busy of those that fit, or the one a
    `misplace` fault names), else None and ECS's reason for each instance."""
    if sandbox.misplace:
        wanted = sandbox.misplace.pop(0)
        fits = [i for i in registered if i.id == wanted]
        reasons: list[dict[str, str]] = []
    else:
        fits, reasons = _placement_failures(active, constraints, size[0], size[1], excluded)
    if not fits:
        return None, reasons
    fits.sort(key=lambda i: (i.running_tasks_count + i.pending_tasks_count, i.registered_at))
    return fits[0], []


def _place(
    backend: Any, cluster: Any, task_definition: Any, params: dict[str, Any], sandbox: World
) -> tuple[list[tuple[Any, Any]], list[dict[str, str]]]:
    """Place `count` tasks one by one: what fits starts, and the first task that fits
    nowhere ends the placement with ECS's `failures` for it, in the same answer."""
    constraints = _check_run_task(params, task_definition)
    registered = list(backend.container_instances.get(cluster.name, {}).values())
    active = [i for i in registered if i.status == "ACTIVE"]
    if not active:
        raise _invalid("No Container Instances were found in your cluster.")
    overrides = params.get("overrides") or {}
    size = _task_size(task_definition, overrides)
    distinct = any(c.get("type") == "distinctInstance" for c in constraints)
    placed: list[tuple[Any, Any]] = []
    used: set[str] = set()
    for _ in range(int(params.get("count") or 1)):
        chosen, failures = _choose(
            sandbox, registered, active, constraints, size, used if distinct else set()
        )
        if chosen is None:
            return placed, failures
        used.add(chosen.container_instance_arn)
        task = new_task(
            backend,
            cluster,
            task_definition,
            chosen,
            overrides=overrides,
            started_by=params.get("startedBy") or "",
            tags=list(params.get("tags") or []),
            launch_type=params.get("launchType") or "",
            group=params.get("group") or f"family:{task_definition.family}",
        )
        placed.append((task, chosen))
    return placed, []


def run_task(backend: Any, params: dict[str, Any], sandbox: World) -> tuple[list[Any], list[Any]]:
    """RunTask for EC2/EXTERNAL launch types with ECS's placement and idempotency rules:
    the tasks (moto Tasks; a replay's stopped ones as the short dicts ECS answers) and the
    failures."""
    cluster = backend._get_cluster(params.get("cluster") or "default")
    token = params.get("clientToken")
    fingerprint = _fingerprint({k: params.get(k) for k in _RUN_TASK_PARAMETERS})
    with sandbox.lock:
        if token is not None:
            replayed = _replay(backend, cluster, str(token), fingerprint, sandbox)
            if replayed is not None:
                return replayed
        task_definition = backend.describe_task_definition(params["taskDefinition"])
        placed, failures = _place(backend, cluster, task_definition, params, sandbox)
        if token is not None and placed:
            _tokens(backend)[(cluster.name, str(token))] = {
                "fingerprint": fingerprint,
                "tasks": [t.task_arn for t, _ in placed],
                "failures": failures,
                "at": sandbox.clock.now(),
            }
    for task, instance in placed:
        launch(backend, task, instance)
    return [t for t, _ in placed], failures


def _run_task_response(original: Any) -> Any:
    def handler(self: Any) -> Any:
        """RunTask: the task definition may be EXTERNAL; `memberOf` constraints are judged
        with residency's own evaluator; CPU and memory are honoured; with `count` > 1 what
        fits starts and ECS-shaped `failures` for the rest come in the same answer;
        `clientToken` makes the request idempotent (ECS_Idempotency.html: same token and
        parameters -> the original result; other parameters -> ConflictException)."""
        sandbox = world()
        launch_type = self._get_param("launchType")
        if (
            not sandbox.enabled
            or launch_type == "FARGATE"
            or (not launch_type and self._get_param("capacityProviderStrategy"))
        ):
            return original(self)
        ActionResult = moto_module("moto.core.responses").ActionResult

        params = {name: self._get_param(name) for name in _RUN_TASK_PARAMETERS}
        params["clientToken"] = self._get_param("clientToken")
        tasks, failures = run_task(self.ecs_backend, params, sandbox)
        return ActionResult({"tasks": tasks, "failures": failures})

    return handler


def _start_task(original: Any) -> Any:
    def start_task(
        self: Any,
        cluster_str: str,
        task_definition_str: str,
        container_instances: list[str],
        overrides: dict[str, Any],
        started_by: str,
        tags: list[dict[str, str]] | None = None,
        group: str | None = None,
    ) -> list[Any]:
        """StartTask places a task on the named container instances without looking at
        placement constraints (ECS: "use your own scheduler"); the simulated host runs it."""
        sandbox = world()
        if not sandbox.enabled:
            return original(  # type: ignore[no-any-return]
                self,
                cluster_str,
                task_definition_str,
                container_instances,
                overrides,
                started_by,
                tags,
                group,
            )
        cluster = self._get_cluster(cluster_str)
        task_definition = self.describe_task_definition(task_definition_str)
        if not container_instances:
            raise _ecs_error("ClientException", "Container Instances cannot be empty.")
        started = []
        with sandbox.lock:
            for reference in container_instances:
                instance = self.container_instances.get(cluster.name, {}).get(
                    reference.rsplit("/", 1)[-1]
                )
                if instance is None:
                    raise _invalid(f"Container instance {reference} not found.")
                task = new_task(
                    self,
                    cluster,
                    task_definition,
                    instance,
                    overrides=overrides or {},
                    started_by=started_by or "",
                    tags=list(tags or []),
                    launch_type="EXTERNAL",
                    group=group or f"family:{task_definition.family}",
                )
                started.append((task, instance))
        for task, instance in started:
            launch(self, task, instance)
        return [t for t, _ in started]

    return start_task


def _stop_task(original: Any) -> Any:
    def stop_task(self: Any, cluster_str: str, task_str: str, reason: str | None) -> Any:
        """StopTask is asynchronous in ECS: the answer shows `desiredStatus: STOPPED` with
        `stopCode: UserInitiated`; the agent then sends SIGTERM (SIGKILL after stopTimeout)
        and the task reaches STOPPED with the container's exit code (143 after SIGTERM)."""
        sandbox = world()
        if not sandbox.enabled:
            return original(self, cluster_str, task_str, reason)
        cluster = self._get_cluster(cluster_str)
        task_id = task_str.rsplit("/", 1)[-1]
        with sandbox.lock:
            task = next(
                (t for a, t in self.tasks.get(cluster.name, {}).items() if a.endswith(task_id)),
                None,
            )
            if task is None:
                raise _invalid("The referenced task was not found.")
            runtime = sandbox.runtimes.get(task.task_arn)
            # "Any tags associated with the task will be deleted" (StopTask, ECS API
            # Reference; botocore's ecs service-2.json says the same). Only StopTask does it:
            # a task that ends by itself keeps its tags until ECS forgets it.
            task.tags = []
            if task.last_status != "STOPPED":
                task.desired_status = "STOPPED"
                task.stop_code = "UserInitiated"
                task.stopped_reason = reason or "Task stopped by user"
                task.stopping_at = _utcnow()
        if runtime is not None and task.last_status != "STOPPED":
            runtime.request_stop()
        return task

    return stop_task


def _delete_attribute(original: Any) -> Any:
    def delete_attribute(
        self: Any,
        cluster_name: str,
        name: str,
        value: str | None = None,
        target_id: str | None = None,
        target_type: str | None = None,
    ) -> Any:
        """DeleteAttributes removes the named attribute whatever its value when the request
        names none (moto deletes only on a matching value)."""
        if world().enabled and value is None and target_id is not None:
            instance_id = target_id.rsplit("/", 1)[-1]
            instance = self.container_instances.get(cluster_name, {}).get(instance_id)
            if instance is not None:
                value = instance.attributes.get(name)
        return original(self, cluster_name, name, value, target_id, target_type)

    return delete_attribute


def _describe_tasks_response(original: Any) -> Any:
    def handler(self: Any) -> Any:
        """DescribeTasks reports `failures: [{arn, reason: MISSING}]` for unknown tasks and
        never moves a task along by itself (moto advances one state per call). The answer is
        built under the sandbox's lock: a simulated host stopping the task at that moment
        must not be seen half done (STOPPED, but no exit code yet)."""
        sandbox = world()
        if not sandbox.enabled:
            return original(self)
        with sandbox.lock:
            result = original(self)
            wanted = self._get_param("tasks", []) or []
            tasks = result.result.get("tasks", [])
            known = {t.task_arn for t in tasks} | {t.task_arn.rsplit("/", 1)[-1] for t in tasks}
            result.result["failures"] = [
                {"arn": reference, "reason": "MISSING"}
                for reference in wanted
                if reference not in known and reference.rsplit("/", 1)[-1] not in known
            ]
            # Serialised here, under the lock, as moto does for its own errors.
            status, headers, body = self.serialized(result)
        headers["status"] = status
        return body, headers

    return handler


# --- List* -------------------------------------------------------------------------------
#
# ListTasks, ListContainerInstances and ListAttributes answer at most `maxResults` (1-100,
# default 100) with a `nextToken` for the rest (ECS API Reference of each; botocore's
# ecs service-2.json documents the same).

MAX_LIST_RESULTS = 100
_TASK_DESIRED_STATUSES = ("RUNNING", "PENDING", "STOPPED")
_INSTANCE_STATUSES = (
    "ACTIVE",
    "DRAINING",
    "REGISTERING",
    "DEREGISTERING",
    "REGISTRATION_FAILED",
    "INACTIVE",
)


def _page(responder: Any, items: list[Any], key: str) -> Any:
    """One page of `items` as `{key: [...], nextToken?}`; the token is the next offset,
    prefixed so that a token from another operation is refused."""
    ActionResult = moto_module("moto.core.responses").ActionResult

    size = responder._get_param("maxResults")
    size = MAX_LIST_RESULTS if size is None else size
    if not isinstance(size, int) or not 1 <= size <= MAX_LIST_RESULTS:
        raise _invalid(f"maxResults must be between 1 and {MAX_LIST_RESULTS}.")
    token = responder._get_param("nextToken")
    start = 0
    if token is not None:
        prefix, _, offset = str(token).partition(":")
        if prefix != key or not offset.isdigit():
            raise _invalid("The nextToken is not valid.")
        start = int(offset)
    result: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        result["nextToken"] = f"{key}:{start + size}"
    return ActionResult(result)


def _task_matches(task: Any, responder: Any, backend: Any) -> bool:
    desired = responder._get_param("desiredStatus") or "RUNNING"
    if task.desired_status != desired:
        return False
    instance = responder._get_param("containerInstance")
    if (
        instance
        and (task.container_instance_arn or "").rsplit("/", 1)[-1] != instance.rsplit("/", 1)[-1]
    ):
        return False
    family = responder._get_param("family")
    if family and task.task_definition_arn.rsplit("/", 1)[-1].split(":")[0] != family:
        return False
    started_by = responder._get_param("startedBy")
    if started_by and task.started_by != started_by:
        return False
    launch_type = responder._get_param("launchType")
    return not launch_type or task.launch_type == launch_type


def _list_tasks_response(original: Any) -> Any:
    def handler(self: Any) -> Any:
        """ListTasks: "The default status filter is RUNNING" (ListTasksRequest.desiredStatus,
        ECS API Reference): stopped tasks only with `desiredStatus=STOPPED`, and PENDING
        never matches (ECS never sets it as a desired status); the cluster by exact name;
        `containerInstance`, `family`, `startedBy`, `launchType` filters; pages of 100."""
        if not world().enabled:
            return original(self)
        desired = self._get_param("desiredStatus")
        if desired is not None and desired not in _TASK_DESIRED_STATUSES:
            raise _invalid(f"desiredStatus must be one of {', '.join(_TASK_DESIRED_STATUSES)}.")
        backend = self.ecs_backend
        cluster = backend._get_cluster(self._get_param("cluster") or "default")
        with world().lock:
            arns = [
                task.task_arn
                for task in backend.tasks.get(cluster.name, {}).values()
                if _task_matches(task, self, backend)
            ]
        return _page(self, arns, "taskArns")

    return handler


def instance_fields(instance: Any) -> dict[str, str]:
    """What the cluster query language can ask of a container instance (ECS developer guide,
    "Cluster query language": attribute:NAME, ec2InstanceId, agentConnected, agentVersion,
    runningTasksCount; the ordering operators and registeredAt/task:group are beyond
    residency's evaluator, which refuses them)."""
    fields = _instance_fields(instance)
    fields.setdefault("agentConnected", "true" if instance.agent_connected else "false")
    fields.setdefault("agentVersion", str((instance.version_info or {}).get("agentVersion", "")))
    fields.setdefault("runningTasksCount", str(instance.running_tasks_count))
    return fields


def _filter_matches(expression: str | None, instance: Any) -> bool:
    if not expression:
        return True
    try:
        return evaluate(expression, instance_fields(instance))
    except ExpressionError as error:
        raise _invalid(f"Invalid filter expression: {error}") from None


def _list_container_instances_response(original: Any) -> Any:
    def handler(self: Any) -> Any:
        """ListContainerInstances: `filter` in the cluster query language, judged with
        residency's own evaluator (placement.py) on each instance's attributes and built-in
        fields; `status` (default: every status but INACTIVE); pages of 100
        (ListContainerInstances, ECS API Reference)."""
        if not world().enabled:
            return original(self)
        status = self._get_param("status")
        if status is not None and status not in _INSTANCE_STATUSES:
            raise _invalid(f"status must be one of {', '.join(_INSTANCE_STATUSES)}.")
        expression = self._get_param("filter")
        backend = self.ecs_backend
        cluster = backend._get_cluster(self._get_param("cluster") or "default")
        with world().lock:
            instances = sorted(
                backend.container_instances.get(cluster.name, {}).values(),
                key=lambda i: (i.registered_at, i.container_instance_arn),
            )
            arns = [
                i.container_instance_arn
                for i in instances
                if (i.status == status if status else i.status != "INACTIVE")
                and _filter_matches(expression, i)
            ]
        return _page(self, arns, "containerInstanceArns")

    return handler


def _list_attributes_response(original: Any) -> Any:
    def handler(self: Any) -> Any:
        """ListAttributes for `targetType` container-instance in one cluster (default
        "default"): every attribute of every instance, or those named `attributeName`
        (with `attributeValue`, of that value too; a value needs a name: ListAttributesRequest,
        ECS API Reference); pages of 100. moto matches a name only together with a value."""
        if not world().enabled:
            return original(self)
        if self._get_param("targetType") != "container-instance":
            raise _invalid("targetType must be container-instance.")
        name = self._get_param("attributeName")
        value = self._get_param("attributeValue")
        if value is not None and not name:
            raise _invalid("attributeValue requires attributeName.")
        backend = self.ecs_backend
        cluster = backend._get_cluster(self._get_param("cluster") or "default")
        found = []
        with world().lock:
            for instance in backend.container_instances.get(cluster.name, {}).values():
                for key, current in instance.attributes.items():
                    if (name and key != name) or (value is not None and current != value):
                        continue
                    item = {"name": key, "targetId": instance.container_instance_arn}
                    if current is not None:
                        item["value"] = current
                    found.append(item)
        return _page(self, found, "attributes")

    return handler


_CONDITIONAL_WRITES = threading.Lock()


def _conditional_put_object(original: Any) -> Any:
    def put_object(self: Any) -> Any:
        """PutObject with `If-None-Match: *` or `If-Match: ETAG` is atomic in S3: the
        condition is checked and the object written as one step, so of concurrent
        conditional writes to one key exactly one succeeds and the others get 412
        Precondition Failed (or 409 ConditionalRequestConflict)
        (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html;
        PutObject `IfNoneMatch`/`IfMatch` in botocore's s3 service model). moto 5.2.5 checks
        the condition, then writes, with nothing in between held: two requests served by
        two threads of the server can both pass the check (the journal on S3 would fork).
        Conditional puts are serialised here; the answers are moto's own."""
        if not world().enabled or not (
            self.headers.get("If-None-Match") or self.headers.get("If-Match")
        ):
            return original(self)
        with _CONDITIONAL_WRITES:
            return original(self)

    return put_object


def install() -> None:
    """Patch moto once per process (idempotent); inert until `world().enabled`."""
    global _installed
    if _installed:
        return
    check_moto_version()
    ecs_models = moto_module("moto.ecs.models")
    EC2ContainerServiceResponse = moto_module("moto.ecs.responses").EC2ContainerServiceResponse
    SimpleSystemManagerResponse = moto_module("moto.ssm.responses").SimpleSystemManagerResponse

    ecs_models.TaskDefinition.__init__ = _task_definition_init(ecs_models.TaskDefinition.__init__)
    ecs_models.ContainerInstance.__init__ = _container_instance_init(
        ecs_models.ContainerInstance.__init__
    )
    backend = ecs_models.EC2ContainerServiceBackend
    backend.start_task = _start_task(backend.start_task)
    backend.stop_task = _stop_task(backend.stop_task)
    backend._delete_attribute = _delete_attribute(backend._delete_attribute)
    EC2ContainerServiceResponse.run_task = _run_task_response(EC2ContainerServiceResponse.run_task)
    EC2ContainerServiceResponse.describe_tasks = _describe_tasks_response(
        EC2ContainerServiceResponse.describe_tasks
    )
    for name, patch in (
        ("list_tasks", _list_tasks_response),
        ("list_container_instances", _list_container_instances_response),
        ("list_attributes", _list_attributes_response),
    ):
        setattr(
            EC2ContainerServiceResponse, name, patch(getattr(EC2ContainerServiceResponse, name))
        )
    S3Response = moto_module("moto.s3.responses").S3Response
    S3Response.put_object = _conditional_put_object(S3Response.put_object)
    SimpleSystemManagerResponse.describe_instance_information = _describe_instance_information
    SimpleSystemManagerResponse.create_activation = _create_activation
    SimpleSystemManagerResponse.describe_activations = _describe_activations
    SimpleSystemManagerResponse.delete_activation = _delete_activation
    _installed = True
