"""Dispatch: pre-flight, the RunTask request, placement verification, and waiting.

The promise of `run` is that a workload only ever runs on a host whose location it allows,
and that the user learns exactly how it ended. ECS is asked to place the task with a
`memberOf` constraint, but we never take its word for it: right after RunTask, and again
when the task reaches RUNNING, the host's location is read back and a misplaced task is
stopped at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from residency_cli.aws import aws_errors, error_code, is_aws_error
from residency_cli.config import LOCATION_TAG, WORKLOAD_TAG, Config, Workload, workload_for_task
from residency_cli.errors import AwsError, OutputClosed, UsageError
from residency_cli.guarding import definition_guard, with_guard
from residency_cli.hosts import (
    describe_container_instances,
    host_from_instance,
    hosts_of_tasks,
    managed_instance_hostnames,
)
from residency_cli.placement import build_constraints, build_expression, evaluate
from residency_cli.results import (
    Host,
    HostVerdict,
    PlacedHost,
    RunResult,
    TaskOutcome,
    WorkloadCheck,
)
from residency_cli.waiting import (
    Clock,
    Deadline,
    PollInterval,
    Sleep,
    check_task_ref,
    describe_tasks,
)

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_ssm import SSMClient

    from residency_cli.logs import LogEvent, LogFollower, LogStream

STARTED_BY = "residency"
RUN_ID_TAG = "residency:run-id"
# How the stoppedReason of a task residency stopped for its placement begins.
VIOLATION_REASON_PREFIX = "residency: host "
# Where a task was verified to run: audit's "location then", whatever the host carries later.
HOST_LOCATION_TAG = "residency:host-location"
MAX_COUNT = 10  # RunTask starts at most 10 tasks per call
_RUN_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXTERNAL_NETWORK_MODES = (None, "bridge", "host", "none")
# CloudWatch Logs can show an event a few seconds after the awslogs driver sent it: after the
# task stops, keep reading this long past the last new event so the last line is never lost.
DRAIN_GRACE_SECONDS = 2.0


# --- pre-flight ------------------------------------------------------------------------


def _essential_container(
    definition: Mapping[str, Any], wanted: str | None
) -> dict[str, Any] | None:
    containers = list(definition.get("containerDefinitions") or [])
    if wanted is not None:
        return next((c for c in containers if c.get("name") == wanted), None)
    essential = [c for c in containers if c.get("essential", True)]
    chosen = (essential or containers or [None])[0]
    return dict(chosen) if chosen is not None else None


def task_size(definition: Mapping[str, Any]) -> tuple[int, int]:
    """CPU units and MiB the task reserves: the task-level size, else the containers' sum."""
    containers = definition.get("containerDefinitions") or []
    cpu = definition.get("cpu")
    memory = definition.get("memory")
    total_cpu = int(cpu) if cpu else sum(int(c.get("cpu") or 0) for c in containers)
    total_memory = (
        int(memory)
        if memory
        else sum(int(c.get("memory") or c.get("memoryReservation") or 0) for c in containers)
    )
    return total_cpu, total_memory


def _external_problem(definition: Mapping[str, Any]) -> str | None:
    """ECS Anywhere runs task definitions that require EXTERNAL, or that require nothing and
    use a network mode external instances support (bridge, host, none; not awsvpc)."""
    required = definition.get("requiresCompatibilities") or []
    name = definition.get("taskDefinitionArn", definition.get("family"))
    if required and "EXTERNAL" not in required:
        return (
            f"task definition {name} requires {', '.join(required)}, not EXTERNAL: "
            "add EXTERNAL to requiresCompatibilities"
        )
    if not required and definition.get("networkMode") not in EXTERNAL_NETWORK_MODES:
        mode = definition.get("networkMode")
        return (
            f"task definition {name} uses networkMode {mode}; external instances do not support it"
        )
    return None


def _describe_definition(ecs: ECSClient, reference: str) -> dict[str, Any] | None:
    try:
        return dict(ecs.describe_task_definition(taskDefinition=reference)["taskDefinition"])
    except Exception as error:
        if is_aws_error(error) and error_code(error) in (
            "ClientException",
            "InvalidParameterException",
        ):
            return None
        if is_aws_error(error):
            from residency_cli.aws import translate_error

            raise translate_error(error, f"reading task definition {reference}") from error
        raise


def judge_host(
    host: Host, expression: str, allowed: Sequence[str], cpu: int, memory: int, attribute: str
) -> list[str]:
    """Every reason this host cannot take the workload (empty: it can)."""
    reasons: list[str] = []
    if not evaluate(expression, host.attributes) or host.location not in allowed:
        where = f"location {host.location}" if host.location else f"no {attribute} attribute"
        reasons.append(f"{where}, not {' or '.join(allowed)}")
    if host.status != "ACTIVE":
        reasons.append(f"status {host.status}, not ACTIVE")
    if not host.agent_connected:
        reasons.append("agent disconnected")
    if host.cpu_available is not None and host.cpu_available < cpu:
        reasons.append(f"not enough CPU ({host.cpu_available} free, {cpu} needed)")
    if host.memory_available is not None and host.memory_available < memory:
        reasons.append(f"not enough memory ({host.memory_available} MiB free, {memory} needed)")
    return reasons


def check_workload(
    ecs: ECSClient, config: Config, name: str, hosts: Sequence[Host]
) -> WorkloadCheck:
    """Pre-flight one workload against hosts already described."""
    workload = config.workload(name)
    expression = build_expression(config.location_attribute, workload.locations)
    problems: list[str] = []
    definition = _describe_definition(ecs, workload.task_definition)
    cpu = memory = 0
    container_name: str | None = workload.container
    log_configured = False
    resolved = workload.task_definition
    if definition is None:
        problems.append(
            f"task definition {workload.task_definition} does not exist: register it first"
        )
    else:
        resolved = str(definition.get("taskDefinitionArn", resolved))
        problem = _external_problem(definition)
        if problem:
            problems.append(problem)
        cpu, memory = task_size(definition)
        container = _essential_container(definition, workload.container)
        if container is None:
            names = ", ".join(
                str(c.get("name")) for c in definition.get("containerDefinitions") or []
            )
            problems.append(
                f"task definition has no container {workload.container!r} (it has: {names})"
            )
        else:
            container_name = str(container.get("name"))
            log = container.get("logConfiguration") or {}
            log_configured = log.get("logDriver") == "awslogs"
            if not log_configured:
                problems.append(
                    f"container {container_name} has no awslogs log configuration: add "
                    "logConfiguration {logDriver: awslogs, options: {awslogs-group, "
                    "awslogs-region, awslogs-stream-prefix}}"
                )
    guard = definition_guard(container, workload.locations) if definition is not None else None
    verdicts = [
        HostVerdict(
            host,
            judge_host(
                host, expression, workload.locations, cpu, memory, config.location_attribute
            ),
        )
        for host in hosts
    ]
    return WorkloadCheck(
        workload=name,
        task_definition=resolved,
        locations=list(workload.locations),
        expression=expression,
        problems=problems,
        hosts=verdicts,
        cpu=cpu,
        memory=memory,
        container=container_name,
        log_configured=log_configured,
        guard=guard,
    )


def cluster_hosts(ecs: ECSClient, ssm: SSMClient | None, config: Config) -> list[Host]:
    instances = describe_container_instances(ecs, config.cluster)
    names = managed_instance_hostnames(ssm, (i.get("ec2InstanceId", "") for i in instances))
    return [host_from_instance(i, config.location_attribute, names) for i in instances]


def check(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, names: Sequence[str] = ()
) -> list[WorkloadCheck]:
    """Pre-flight every (or the named) workload, describing the cluster's hosts once."""
    selected = list(names) or list(config.workloads)
    for name in selected:
        config.workload(name)
    hosts = cluster_hosts(ecs, ssm, config)
    with aws_errors("checking task definitions"):
        return [check_workload(ecs, config, name, hosts) for name in selected]


# --- the request -----------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    moment = now or datetime.now(timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"invalid --run-id {run_id!r}: use 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    return run_id


def client_token(cluster: str, workload: str, run_id: str) -> str:
    """The same workload and run id always give the same token, so ECS starts one task.

    RunTask's clientToken is at most 64 ASCII characters; a digest keeps any run id short.
    """
    digest = hashlib.sha256(f"{cluster}\0{workload}\0{run_id}".encode()).hexdigest()
    return f"residency-{digest[:40]}"


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """`--env K=V` options as a dict; the last one for a name wins."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name):
            raise UsageError(f"invalid --env {pair!r}: use NAME=VALUE (NAME like RUN_MODE)")
        env[name] = value
    return env


@dataclass(frozen=True)
class RunOptions:
    run_id: str
    count: int = 1
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise UsageError(f"--count must be between 1 and {MAX_COUNT}, got {self.count}")


def build_request(
    config: Config, name: str, options: RunOptions, container: str | None
) -> dict[str, Any]:
    """The exact RunTask request of CONTRACT.md section 4."""
    workload = config.workload(name)
    tags = [
        {"key": WORKLOAD_TAG, "value": name},
        {"key": LOCATION_TAG, "value": " ".join(workload.locations)},
        {"key": RUN_ID_TAG, "value": options.run_id},
        *({"key": k, "value": v} for k, v in workload.tags.items()),
    ]
    request: dict[str, Any] = {
        "cluster": config.cluster,
        "taskDefinition": workload.task_definition,
        "launchType": "EXTERNAL",
        "count": options.count,
        "placementConstraints": build_constraints(config.location_attribute, workload.locations),
        "startedBy": STARTED_BY,
        "tags": tags,
        "clientToken": client_token(config.cluster, name, options.run_id),
    }
    override = _container_override(workload, options.env, container)
    if override:
        request["overrides"] = {"containerOverrides": [override]}
    return request


def _container_override(
    workload: Workload, extra_env: Mapping[str, str], container: str | None
) -> dict[str, Any] | None:
    environment = {**workload.environment, **extra_env}
    if container is not None:  # the data guard gets the map's locations (docs/enforcement.md)
        environment = with_guard(environment, workload.locations)
    if not environment and workload.command is None:
        return None
    if container is None:
        raise UsageError("cannot override the command or environment: no container to override")
    override: dict[str, Any] = {"name": container}
    if workload.command is not None:
        override["command"] = list(workload.command)
    if environment:
        override["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    return override


def aws_cli_command(request: Mapping[str, Any], region: str | None) -> str:
    """The equivalent `aws ecs run-task` command line, quoted to paste into a shell."""
    flags = {
        "cluster": "--cluster",
        "taskDefinition": "--task-definition",
        "launchType": "--launch-type",
        "count": "--count",
        "placementConstraints": "--placement-constraints",
        "startedBy": "--started-by",
        "tags": "--tags",
        "overrides": "--overrides",
        "clientToken": "--client-token",
    }
    words = ["aws", "ecs", "run-task"]
    if region:
        words += ["--region", region]
    for key, flag in flags.items():
        if key not in request:
            continue
        value = request[key]
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        words += [flag, str(text)]
    return " ".join(shlex.quote(word) for word in words)


# --- placement verification ------------------------------------------------------------


def placed(host: Host) -> PlacedHost:
    return PlacedHost(host.container_instance_arn, host.instance_id, host.hostname, host.location)


def placed_hosts(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, tasks: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[PlacedHost, dict[str, str]]]:
    """Where each placed task is (task ARN -> host, its attributes), read back from the
    container instances in one DescribeContainerInstances and one SSM call for them all.
    A task not placed yet is left out; a host ECS no longer knows has no attributes."""
    placed_tasks = [t for t in tasks if t.get("containerInstanceArn")]
    if not placed_tasks:
        return {}
    hosts = hosts_of_tasks(ecs, ssm, config, [dict(t) for t in placed_tasks])
    found: dict[str, tuple[PlacedHost, dict[str, str]]] = {}
    for task in placed_tasks:
        instance_arn = str(task["containerInstanceArn"])
        host = hosts.get(instance_arn)
        found[str(task["taskArn"])] = (
            (placed(host), dict(host.attributes))
            if host is not None
            else (PlacedHost(instance_arn, None, None, None), {})
        )
    return found


def placement_allowed(config: Config, workload: Workload, attributes: Mapping[str, str]) -> bool:
    location = attributes.get(config.location_attribute)
    expression = build_expression(config.location_attribute, workload.locations)
    return evaluate(expression, attributes) and location in workload.locations


def stop_misplaced(
    ecs: ECSClient, config: Config, task_arn: str, host: PlacedHost, allowed: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """Stop the task; the reason given to ECS, and the task as StopTask answered it."""
    where = host.hostname or host.instance_id or host.container_instance_arn
    reason = (
        f"{VIOLATION_REASON_PREFIX}{where} is in {host.location or 'no location'}, "
        f"outside {', '.join(allowed)}"
    )
    with aws_errors(f"stopping misplaced task {task_arn}"):
        answer = ecs.stop_task(cluster=config.cluster, task=task_arn, reason=reason[:255])
    return reason, dict(answer.get("task") or {})


def record_placement(ecs: ECSClient, tracker: Tracker, location: str) -> None:
    """Tag the task with the location it was verified on. A missing ecs:TagResource
    permission costs only that record (audit then judges by the host's current label)."""
    tags = [{"key": HOST_LOCATION_TAG, "value": location}]
    try:
        ecs.tag_resource(resourceArn=tracker.arn, tags=tags)  # type: ignore[arg-type]
    except Exception as error:
        if not is_aws_error(error):
            raise
        return
    tracker.task = {**tracker.task, "tags": [*(tracker.task.get("tags") or []), *tags]}


# --- waiting and outcomes --------------------------------------------------------------


class Observer(Protocol):
    """What the waiting loop reports as it goes; the CLI renders it, tests record it."""

    def status(self, task: Mapping[str, Any], previous: str | None) -> None: ...

    def placed(self, task_arn: str, host: PlacedHost, allowed: bool) -> None: ...

    def log(self, event: LogEvent) -> None: ...


class SilentObserver:
    def status(self, task: Mapping[str, Any], previous: str | None) -> None:
        return None

    def placed(self, task_arn: str, host: PlacedHost, allowed: bool) -> None:
        return None

    def log(self, event: LogEvent) -> None:
        return None


def iso_time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value) if value else None


def task_tag(task: Mapping[str, Any], key: str) -> str | None:
    return next((t.get("value") for t in task.get("tags") or [] if t.get("key") == key), None)


# stopCodes that mean the container never ran to completion whatever exit code it reports.
_NOT_STARTED_CODES = ("TaskFailedToStart", "SpotInterruption", "TerminationNotice")


def task_outcome(
    config: Config,
    name: str,
    task: Mapping[str, Any],
    container: str | None,
    *,
    host: PlacedHost | None,
    run_id: str | None,
    stream: tuple[str, str] | None,
    outcome: str | None = None,
) -> TaskOutcome:
    """The outcome of one described task (STOPPED -> succeeded/failed/not_started)."""
    workload = config.workload(name)
    status = task.get("lastStatus")
    chosen: Mapping[str, Any] = next(
        (
            c
            for c in task.get("containers") or []
            if container is None or c.get("name") == container
        ),
        {},
    )
    exit_code = chosen.get("exitCode")
    stop_code = task.get("stopCode")
    reason = task.get("stoppedReason") or chosen.get("reason") or None
    if outcome is None and str(reason or "").startswith(VIOLATION_REASON_PREFIX):
        outcome = "violation"
    if outcome is None:
        if status != "STOPPED":
            outcome = "dispatched"
        elif exit_code is None or stop_code in _NOT_STARTED_CODES:
            outcome = "not_started"
        else:
            outcome = "succeeded" if exit_code == 0 else "failed"
    return TaskOutcome(
        workload=name,
        locations=list(workload.locations),
        cluster=config.cluster,
        run_id=run_id,
        outcome=outcome,
        task_arn=task.get("taskArn"),
        host=host,
        status=status,
        exit_code=exit_code,
        stop_code=stop_code,
        stopped_reason=reason,
        log_group=stream[0] if stream else None,
        log_stream=stream[1] if stream else None,
        started_at=iso_time(task.get("startedAt")),
        stopped_at=iso_time(task.get("stoppedAt")),
    )


@dataclass
class Tracker:
    """What the waiting loop knows of one task of a workload."""

    arn: str
    task: dict[str, Any]
    workload: str
    host: PlacedHost | None = None
    attributes: dict[str, str] | None = None
    verified_running: bool = False
    violation: str | None = None

    @property
    def status(self) -> str | None:
        return self.task.get("lastStatus")


@dataclass
class Waiter:
    """Waits for tasks to stop (of one run, or of several runs of any workloads: one
    DescribeTasks per tick for up to 100 of them), following their logs on the same tick.
    Each task's placement is judged against its own workload."""

    ecs: ECSClient
    ssm: SSMClient | None
    config: Config
    observer: Observer
    sleep: Sleep
    now: Clock
    follower: LogFollower | None = None
    interval: PollInterval = field(default_factory=PollInterval)
    drain_grace: float = DRAIN_GRACE_SECONDS
    # `run` and `attach` end at the first violation (exit 4); waiting on several runs goes
    # on with the others (the misplaced task is stopped all the same).
    stop_on_violation: bool = True

    def verify(self, trackers: Sequence[Tracker]) -> None:
        """Read the hosts back; stop at once each task whose location is not allowed."""
        found = placed_hosts(self.ecs, self.ssm, self.config, [t.task for t in trackers])
        for tracker in trackers:
            if tracker.arn not in found:
                continue
            host, attributes = found[tracker.arn]
            workload = self.config.workload(tracker.workload)
            allowed = placement_allowed(self.config, workload, attributes)
            if host != tracker.host or not allowed:
                self.observer.placed(tracker.arn, host, allowed)
            if allowed and host.location and task_tag(tracker.task, HOST_LOCATION_TAG) is None:
                record_placement(self.ecs, tracker, host.location)
            tracker.host = host
            tracker.attributes = dict(attributes)
            if not allowed:
                tracker.violation, stopped = stop_misplaced(
                    self.ecs, self.config, tracker.arn, host, workload.locations
                )
                if stopped:  # its status as of the stop, not as of RunTask
                    tracker.task = {**stopped, "tags": tracker.task.get("tags") or []}

    def wait(self, trackers: list[Tracker], timeout: float | None) -> bool:
        """True when every task stopped; False on timeout. With `stop_on_violation`, a
        violation returns at once."""
        deadline = Deadline(self.now, timeout)
        # The tasks were just described (by RunTask or by attach): the first look is due
        # one interval from now, so DescribeTasks is never called more than once a second.
        last_describe = self.now()
        while True:
            changed = False
            tick = self.now()
            if tick - last_describe >= self.interval.floor:
                last_describe = tick
                changed = self._refresh(trackers)
                if self.stop_on_violation and any(t.violation for t in trackers):
                    return True
            events = self.follower.poll() if self.follower else []
            for event in events:
                self.observer.log(event)
            changed = changed or bool(events)
            if all(t.status == "STOPPED" for t in trackers):
                self._drain()
                return True
            if deadline.expired:
                return False
            throttled = bool(self.follower and self.follower.throttled)
            if self.follower and self.follower.behind and not throttled:
                pause = 0.0
            else:
                pause = self.interval.next(self.now(), changed=changed, throttled=throttled)
            remaining = deadline.remaining()
            self.sleep(pause if remaining is None else min(pause, max(remaining, 0.0)))

    def _refresh(self, trackers: list[Tracker]) -> bool:
        active = [t for t in trackers if t.status != "STOPPED"]
        if not active:
            return False
        described = {
            t["taskArn"]: t
            for t in describe_tasks(self.ecs, self.config.cluster, [t.arn for t in active])
        }
        changed = False
        unverified: list[Tracker] = []
        for tracker in active:
            task = described.get(tracker.arn)
            if task is None:
                continue
            previous = tracker.status
            tracker.task = task
            if task.get("lastStatus") != previous:
                changed = True
                self.observer.status(task, previous)
            if tracker.violation is None and (
                tracker.host is None
                or (task.get("lastStatus") == "RUNNING" and not tracker.verified_running)
            ):
                tracker.verified_running = task.get("lastStatus") == "RUNNING"
                unverified.append(tracker)
        if unverified:
            self.verify(unverified)
        return changed

    def _drain(self) -> None:
        if self.follower is None:
            return
        from residency_cli.logs import drain

        for event in drain(
            self.follower, sleep=self.sleep, now=self.now, grace_seconds=self.drain_grace
        ):
            self.observer.log(event)


def task_log_streams(
    ecs: ECSClient, definition_arn: str, task_arns: Sequence[str]
) -> dict[str, list[LogStream]]:
    """Each task's awslogs streams (none when the task definition has no awslogs setup)."""
    from residency_cli.logs import locate_streams

    with aws_errors(f"reading task definition {definition_arn}"):
        definition = ecs.describe_task_definition(taskDefinition=definition_arn)["taskDefinition"]
    try:
        return {arn: locate_streams(definition, arn) for arn in task_arns}
    except UsageError:
        return {}


# --- run and attach --------------------------------------------------------------------

_ECS_FAILURES = {
    "MemberOf placement constraint unsatisfied.": "no ACTIVE host in the cluster satisfies the "
    "placement (a host may have drained or lost its label since pre-flight)",
    "RESOURCE:CPU": "no compliant host has enough free CPU",
    "RESOURCE:MEMORY": "no compliant host has enough free memory",
    "AGENT": "the ECS agent of every compliant host is disconnected",
    "ATTRIBUTE": "no host has an attribute the task definition requires",
    "MISSING": "ECS could not find a resource the request names",
}


def explain_failures(failures: Sequence[Mapping[str, Any]]) -> str:
    """ECS RunTask failures in words a person understands, ECS's own reason kept."""
    lines = []
    for failure in failures:
        reason = str(failure.get("reason", "unknown"))
        plain = _ECS_FAILURES.get(reason, "ECS refused to place the task")
        detail = f" ({failure['detail']})" if failure.get("detail") else ""
        lines.append(f"{plain} (ECS: {reason}{detail})")
    return "; ".join(dict.fromkeys(lines)) or "ECS started no task"


@dataclass(frozen=True)
class DryRun:
    check: WorkloadCheck
    request: dict[str, Any]
    aws_cli: str
    run_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "workload": self.check.workload,
            "run_id": self.run_id,
            "ready": self.check.ready,
            "request": self.request,
            "aws_cli": self.aws_cli,
            "check": self.check.to_json(),
        }


@dataclass
class Dispatcher:
    """Everything `run` and `attach` need: clients, the map, time, and who to tell."""

    ecs: ECSClient
    ssm: SSMClient | None
    config: Config
    sleep: Sleep
    now: Clock
    observer: Observer = field(default_factory=SilentObserver)
    logs_client: Callable[[Sequence[Any]], CloudWatchLogsClient] | None = None
    region: str | None = None
    interval: PollInterval = field(default_factory=PollInterval)
    drain_grace: float = DRAIN_GRACE_SECONDS

    def dry_run(self, name: str, options: RunOptions) -> DryRun:
        result = check(self.ecs, self.ssm, self.config, [name])[0]
        request = build_request(self.config, name, options, result.container)
        return DryRun(result, request, aws_cli_command(request, self.region), options.run_id)

    def run(
        self,
        name: str,
        options: RunOptions,
        *,
        wait: bool = True,
        follow: bool = True,
        timeout: float | None = None,
    ) -> RunResult:
        preflight = check(self.ecs, self.ssm, self.config, [name])[0]
        request = build_request(self.config, name, options, preflight.container)
        if not preflight.ready:
            return self._refused(name, options.run_id, request, preflight.refusal)
        with aws_errors(f"starting {name}"):
            response = self.ecs.run_task(**request)
        tasks = [dict(t) for t in response.get("tasks") or []]
        if not tasks:
            return self._refused(
                name, options.run_id, request, explain_failures(response.get("failures") or [])
            )
        trackers = [Tracker(str(t["taskArn"]), t, name) for t in tasks]
        waiter = self._waiter()
        waiter.verify(trackers)
        return self._follow(
            waiter,
            name,
            trackers,
            options.run_id,
            request,
            wait=wait,
            follow=follow,
            timeout=timeout,
        )

    def attach(
        self, task_ref: str, *, follow: bool = True, timeout: float | None = None
    ) -> RunResult:
        described = describe_tasks(self.ecs, self.config.cluster, [check_task_ref(task_ref)])
        if not described:
            raise AwsError(
                f"task {task_ref} not found in cluster {self.config.cluster}",
                hint="ECS forgets stopped tasks after about an hour; see `residency tasks`",
            )
        task = described[0]
        name = workload_for_task(self.config, task)
        if name is None:
            raise UsageError(
                f"task {task_ref} does not belong to a workload of the map",
                hint="attach follows tasks of the map's workloads only",
            )
        tracker = Tracker(str(task["taskArn"]), task, name)
        waiter = self._waiter()
        waiter.verify([tracker])
        return self._follow(
            waiter,
            name,
            [tracker],
            task_tag(task, RUN_ID_TAG),
            None,
            wait=True,
            follow=follow,
            timeout=timeout,
        )

    def wait(self, runs: Sequence[RunResult], *, timeout: float | None = None) -> list[RunResult]:
        """Wait on the tasks of several runs (`run(..., wait=False)`, any workloads) in one
        loop: one DescribeTasks per tick for up to 100 tasks, the hosts of newly placed or
        newly running tasks read back together, each task judged against its own workload
        (a misplaced one is stopped, its run's outcome is `violation`, the others go on).
        Logs are not followed (`residency logs` reads them). The runs in the same order,
        their outcomes final, or `timeout`/`interrupted` for tasks still running."""
        pending: list[tuple[RunResult, list[Tracker]]] = []
        every: list[Tracker] = []
        arns = [t.task_arn for run in runs for t in run.tasks if t.task_arn]
        described = {
            str(t["taskArn"]): t for t in describe_tasks(self.ecs, self.config.cluster, arns)
        }
        for run in runs:
            trackers = []
            for task in run.tasks:
                if task.task_arn is None or task.task_arn not in described:
                    continue
                tracker = Tracker(
                    task.task_arn, described[task.task_arn], task.workload, host=task.host
                )
                tracker.attributes = run.host_attributes.get(task.task_arn)
                if task.outcome == "violation":
                    tracker.violation = task.message or task.stopped_reason or "violation"
                trackers.append(tracker)
            pending.append((run, trackers))
            every += trackers
        waiter = self._waiter()
        waiter.stop_on_violation = False
        still_running: str | None = None
        try:
            if not waiter.wait(every, timeout):
                still_running = "timeout"
        except (KeyboardInterrupt, OutputClosed):
            still_running = "interrupted"
        results = []
        for run, trackers in pending:
            if not trackers:
                results.append(run)
                continue
            streams = {
                t.task_arn: (t.log_group, t.log_stream)
                for t in run.tasks
                if t.task_arn and t.log_group and t.log_stream
            }
            run_id = run.tasks[0].run_id
            name = trackers[0].workload
            results.append(
                self._result(name, trackers, run_id, run.request, streams, still_running)
            )
        return results

    def _waiter(self) -> Waiter:
        return Waiter(
            self.ecs,
            self.ssm,
            self.config,
            self.observer,
            self.sleep,
            self.now,
            interval=self.interval,
            drain_grace=self.drain_grace,
        )

    def _refused(self, name: str, run_id: str, request: dict[str, Any], why: str) -> RunResult:
        workload = self.config.workload(name)
        outcome = TaskOutcome(
            workload=name,
            locations=list(workload.locations),
            cluster=self.config.cluster,
            run_id=run_id,
            outcome="refused",
            message=why,
        )
        return RunResult([outcome], request, message=why)

    def _follow(
        self,
        waiter: Waiter,
        name: str,
        trackers: list[Tracker],
        run_id: str | None,
        request: dict[str, Any] | None,
        *,
        wait: bool,
        follow: bool,
        timeout: float | None,
    ) -> RunResult:
        container = self.config.workload(name).container
        definition = str(trackers[0].task.get("taskDefinitionArn"))
        located = task_log_streams(self.ecs, definition, [t.arn for t in trackers])
        streams = {
            arn: next(((s.group, s.stream) for s in found if s.container == container),
                      (found[0].group, found[0].stream))
            for arn, found in located.items()
        }  # fmt: skip
        if any(t.violation for t in trackers) or not wait:
            return self._result(name, trackers, run_id, request, streams, None)
        if follow and self.logs_client is not None and located:
            from residency_cli.logs import LogFollower

            every = [stream for found in located.values() for stream in found]
            waiter.follower = LogFollower(self.logs_client(every), every)
        try:
            finished = waiter.wait(trackers, timeout)
        except (KeyboardInterrupt, OutputClosed):
            # Ctrl-C, or the reader of our output went away: the task is left running.
            return self._result(name, trackers, run_id, request, streams, "interrupted")
        return self._result(
            name, trackers, run_id, request, streams, None if finished else "timeout"
        )

    def _result(
        self,
        name: str,
        trackers: list[Tracker],
        run_id: str | None,
        request: dict[str, Any] | None,
        streams: Mapping[str, tuple[str, str]],
        pending_outcome: str | None,
    ) -> RunResult:
        container = self.config.workload(name).container
        outcomes = []
        for tracker in trackers:
            outcome = "violation" if tracker.violation else None
            if outcome is None and tracker.status != "STOPPED" and pending_outcome:
                outcome = pending_outcome
            result = task_outcome(
                self.config,
                name,
                tracker.task,
                container,
                host=tracker.host,
                run_id=run_id,
                stream=streams.get(tracker.arn),
                outcome=outcome,
            )
            if tracker.violation:
                result = TaskOutcome(
                    **{
                        **result.__dict__,
                        "message": tracker.violation,
                        "stopped_reason": result.stopped_reason or tracker.violation,
                    }
                )
            outcomes.append(result)
        attributes = {t.arn: t.attributes or {} for t in trackers}
        return RunResult(outcomes, request, host_attributes=attributes)


def list_workload_tasks(
    ecs: ECSClient, config: Config, names: Sequence[str], statuses: Sequence[str]
) -> list[dict[str, Any]]:
    """Described tasks (with tags) of these workloads' families that ECS still returns."""
    from residency_cli.config import task_definition_family

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
