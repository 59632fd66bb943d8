"""Dispatch: pre-flight, the RunTask request, placement verification, and `Dispatcher`,
which puts them together with the waiting engine (waiting.py) for `run` and `attach`.

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
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors, error_code, is_aws_error
from residency_cli.config import Config, Workload, workload_for_task
from residency_cli.constants import (
    HOST_LOCATION_TAG,
    LOCATION_TAG,
    RUN_ID_TAG,
    STARTED_BY,
    VIOLATION_REASON_PREFIX,
    WORKLOAD_TAG,
)
from residency_cli.errors import AwsError, OutputClosed, UsageError
from residency_cli.hosts import (
    describe_container_instances,
    host_from_instance,
    hosts_of_tasks,
    managed_instance_hostnames,
)
from residency_cli.journal import RunJournal
from residency_cli.placement import build_constraints, build_expression, evaluate
from residency_cli.results import (
    Host,
    HostVerdict,
    Outcome,
    PlacedHost,
    RunResult,
    TaskOutcome,
    WorkloadCheck,
)
from residency_cli.waiting import (
    DEFAULT_POLICY,
    DRAIN_GRACE_SECONDS,
    HOST_LOST_AFTER_SECONDS,
    Clock,
    Engine,
    Observer,
    PollPolicy,
    SilentObserver,
    Sleep,
    Tracker,
    check_task_ref,
    describe_tasks,
    monotonic,
    real_sleep,
    task_tag,
    tracker_outcome,
)

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_ssm import SSMClient

    from residency_cli.aws import Clients
    from residency_cli.logs import LogFollower, LogStream

MAX_COUNT = 10  # RunTask starts at most 10 tasks per call
_RUN_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EXTERNAL_NETWORK_MODES = (None, "bridge", "host", "none")


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


@dataclass
class Verifier:
    """Placement verification: read the hosts of placed tasks back and stop at once each
    task whose host's location its own workload does not allow. The engine calls it for
    tasks just placed and again when they reach RUNNING."""

    ecs: ECSClient
    ssm: SSMClient | None
    config: Config
    observer: Observer

    def __call__(self, trackers: Sequence[Tracker]) -> None:
        found = placed_hosts(self.ecs, self.ssm, self.config, [t.task for t in trackers])
        for tracker in trackers:
            if tracker.arn in found:
                self._judge(tracker, *found[tracker.arn])

    def _judge(self, tracker: Tracker, host: PlacedHost, attributes: dict[str, str]) -> None:
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
    """`run`, `attach` and waiting on several runs: pre-flight, RunTask, placement verified,
    the engine's one waiting loop, the outcome, and the journal record of each run.

    Build it with `Dispatcher.create(clients, config)` (real time, the journal of the
    environment); tests pass fakes for the clients, `sleep` and `now`."""

    ecs: ECSClient
    ssm: SSMClient | None
    config: Config
    sleep: Sleep = real_sleep
    now: Clock = monotonic
    observer: Observer = field(default_factory=SilentObserver)
    logs_client: Callable[[Sequence[Any]], CloudWatchLogsClient] | None = None
    region: str | None = None
    policy: PollPolicy = DEFAULT_POLICY
    drain_grace: float = DRAIN_GRACE_SECONDS
    host_lost_after: float = HOST_LOST_AFTER_SECONDS
    journal: RunJournal | None = field(default_factory=RunJournal)
    # Journal problems seen by this dispatcher (the CLI prints them as warnings).
    journal_problems: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        clients: Clients,
        config: Config,
        *,
        observer: Observer | None = None,
        journal: RunJournal | None = None,
        **options: Any,
    ) -> Dispatcher:
        """The one way to assemble a dispatcher from clients: real time, logs read in the
        streams' own region, the caller's identity in the journal."""
        from residency_cli.journal import caller_identity
        from residency_cli.logs import logs_client_for

        return cls(
            clients.ecs,
            clients.ssm,
            config,
            observer=observer or SilentObserver(),
            logs_client=lambda streams: logs_client_for(clients, streams),
            region=clients.region,
            journal=journal or RunJournal(who=lambda: caller_identity(clients.sts)),
            **options,
        )

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
        if any("taskDefinitionArn" not in t for t in tasks):
            # A replayed RunTask answers a task stopped under an hour ago with only its ARN
            # and statuses (ECS_Idempotency.html): read the whole task before going on.
            with aws_errors(f"reading the tasks of {name}"):
                arns = [str(t["taskArn"]) for t in tasks]
                whole = {
                    str(t["taskArn"]): t
                    for t in describe_tasks(self.ecs, self.config.cluster, arns)
                }
            tasks = [whole.get(str(t["taskArn"]), t) for t in tasks]
        trackers = [Tracker(str(t["taskArn"]), t, name) for t in tasks]
        failures = [
            {"arn": f.get("arn"), "reason": f.get("reason")} for f in response.get("failures") or []
        ]
        return self._finish(
            name,
            trackers,
            options.run_id,
            request,
            wait=wait,
            follow=follow,
            timeout=timeout,
            failures=failures,
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
        return self._finish(
            name,
            [tracker],
            task_tag(task, RUN_ID_TAG),
            None,
            wait=True,
            follow=follow,
            timeout=timeout,
            event="attach",
        )

    def outcomes(
        self, runs: Sequence[RunResult], *, timeout: float | None = None
    ) -> list[RunResult]:
        """Wait on the tasks of several runs (`run(..., wait=False)`, any workloads) in the
        engine's one loop: one DescribeTasks per tick for up to 100 tasks, each task judged
        against its own workload (a misplaced one is stopped, its run's outcome is
        `violation`, the others go on). Logs are not followed (`residency logs` reads them).
        The runs in the same order, their outcomes final (and journalled), or
        `timeout`/`interrupted` for tasks still running."""
        arns = [t.task_arn for run in runs for t in run.tasks if t.task_arn]
        described = {
            str(t["taskArn"]): t for t in describe_tasks(self.ecs, self.config.cluster, arns)
        }
        pending = [(run, _trackers_of(run, described)) for run in runs]
        every = [tracker for _, trackers in pending for tracker in trackers]
        pending_outcome = self._wait_engine(every, timeout, None, stop_on_violation=False)
        return [
            self._result(
                trackers,
                run.tasks[0].run_id,
                run.request,
                pending_outcome,
                event="wait",
                failures=run.failures,
            )
            if trackers
            else run
            for run, trackers in pending
        ]

    def _finish(
        self,
        name: str,
        trackers: list[Tracker],
        run_id: str | None,
        request: dict[str, Any] | None,
        *,
        wait: bool,
        follow: bool,
        timeout: float | None,
        event: str = "run",
        failures: Sequence[dict[str, str | None]] = (),
    ) -> RunResult:
        """Verify where the tasks landed, then (unless `wait` is off or a task was misplaced)
        wait for them in the engine, following their logs. `failures`: RunTask's, for the
        tasks it did not start (a partial start is reported, the started ones followed)."""
        Verifier(self.ecs, self.ssm, self.config, self.observer)(trackers)
        located = self._locate_streams(name, trackers)
        if any(t.violation for t in trackers) or not wait:
            return self._result(trackers, run_id, request, None, event=event, failures=failures)
        follower = None
        if follow and self.logs_client is not None and located:
            from residency_cli.logs import LogFollower

            every = [stream for found in located.values() for stream in found]
            follower = LogFollower(self.logs_client(every), every)
        pending = self._wait_engine(trackers, timeout, follower, stop_on_violation=True)
        return self._result(trackers, run_id, request, pending, event=event, failures=failures)

    def _locate_streams(self, name: str, trackers: list[Tracker]) -> dict[str, list[LogStream]]:
        """Each task's log streams; the tracker keeps the one of the workload's container."""
        container = self.config.workload(name).container
        definition = str(trackers[0].task.get("taskDefinitionArn"))
        located = task_log_streams(self.ecs, definition, [t.arn for t in trackers])
        for tracker in trackers:
            found = located.get(tracker.arn) or []
            chosen = next((s for s in found if s.container == container), None)
            chosen = chosen or (found[0] if found else None)
            tracker.stream = (chosen.group, chosen.stream) if chosen else None
        return located

    def _wait_engine(
        self,
        trackers: list[Tracker],
        timeout: float | None,
        follower: LogFollower | None,
        *,
        stop_on_violation: bool,
    ) -> Outcome | None:
        """Wait in the engine; the outcome of tasks that did not end (None: all ended)."""
        engine = Engine(
            self.ecs,
            self.config.cluster,
            sleep=self.sleep,
            now=self.now,
            observer=self.observer,
            policy=self.policy,
            follower=follower,
            verify=Verifier(self.ecs, self.ssm, self.config, self.observer),
            drain_grace=self.drain_grace,
            agents=self._agents,
            host_lost_after=self.host_lost_after,
            stop_on_violation=stop_on_violation,
        )
        try:
            finished = engine.wait(trackers, timeout).finished
        except (KeyboardInterrupt, OutputClosed):
            # Ctrl-C, or the reader of our output went away: the tasks are left running.
            return Outcome.INTERRUPTED
        return None if finished else Outcome.TIMEOUT

    def _refused(self, name: str, run_id: str, request: dict[str, Any], why: str) -> RunResult:
        workload = self.config.workload(name)
        outcome = TaskOutcome(
            workload=name,
            locations=list(workload.locations),
            cluster=self.config.cluster,
            run_id=run_id,
            outcome=Outcome.REFUSED,
            message=why,
        )
        return self._journalled(RunResult([outcome], request, message=why), "run")

    def _result(
        self,
        trackers: list[Tracker],
        run_id: str | None,
        request: dict[str, Any] | None,
        pending: Outcome | None,
        *,
        event: str,
        failures: Sequence[dict[str, str | None]] = (),
    ) -> RunResult:
        outcomes = [tracker_outcome(self.config, t, run_id, pending) for t in trackers]
        attributes = {t.arn: t.attributes or {} for t in trackers}
        result = RunResult(outcomes, request, host_attributes=attributes, failures=list(failures))
        return self._journalled(result, event)

    def _agents(self, instance_arns: Sequence[str]) -> dict[str, bool]:
        """Whether each host's ECS agent is connected: one call for up to 100 hosts."""
        connected: dict[str, bool] = {}
        with aws_errors("reading the hosts of running tasks"):
            for start in range(0, len(instance_arns), 100):
                answer = self.ecs.describe_container_instances(
                    cluster=self.config.cluster,
                    containerInstances=list(instance_arns[start : start + 100]),
                )
                for instance in answer.get("containerInstances") or []:
                    arn = str(instance.get("containerInstanceArn"))
                    connected[arn] = bool(instance.get("agentConnected"))
        return connected

    def _journalled(self, result: RunResult, event: str) -> RunResult:
        """Record the run in the journal (a problem is kept as a warning, never raised)."""
        if self.journal is None:
            return result
        primary = result.primary
        problem = self.journal.record(
            workload=primary.workload,
            run_id=primary.run_id,
            request=result.request,
            locations=primary.locations,
            outcome=result.to_json(),
            host_attributes=result.host_attributes.get(primary.task_arn or ""),
            event=event,
        )
        if problem is not None:
            self.journal_problems.append(problem)
        return result


def _trackers_of(run: RunResult, described: Mapping[str, dict[str, Any]]) -> list[Tracker]:
    """Trackers for the tasks of an earlier run, as just described."""
    trackers = []
    for task in run.tasks:
        if task.task_arn is None or task.task_arn not in described:
            continue
        tracker = Tracker(task.task_arn, described[task.task_arn], task.workload, host=task.host)
        tracker.attributes = run.host_attributes.get(task.task_arn)
        if task.log_group and task.log_stream:
            tracker.stream = (task.log_group, task.log_stream)
        if task.outcome is Outcome.VIOLATION:
            tracker.violation = task.message or task.stopped_reason or "violation"
        trackers.append(tracker)
    return trackers
