"""Dispatch: pre-flight, the RunTask request, placement verification, and `Dispatcher`,
which puts them together with the waiting engine (waiting.py) for `run` and `attach`.

The promise of `run` is that a workload only ever runs on a host whose location it allows,
and that the user learns exactly how it ended. ECS is asked to place the task with a
`memberOf` constraint, but we never take its word for it: right after RunTask, and again
when the task reaches RUNNING, the host's location is read back and a misplaced task is
stopped at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from residency_cli.aws import aws_errors, error_code, is_aws_error
from residency_cli.config import Config, Workload, workload_for_task
from residency_cli.config import task_tag_value as task_tag
from residency_cli.constants import (
    HOST_LOCATION_TAG,
    LOCATION_TAG,
    RUN_ID_TAG,
    STARTED_BY,
    VIOLATION_REASON_PREFIX,
    WORKLOAD_TAG,
)
from residency_cli.errors import AwsError, OutputClosed, UsageError
from residency_cli.guarding import definition_guard, with_guard
from residency_cli.hosts import (
    cluster_hosts,
    cluster_is_empty,
    describe_hosts,
    filtered_host_pages,
    hosts_of_tasks,
    inventory_conflict,
    list_instance_arns,
    list_instance_page,
)
from residency_cli.journal import JournalError, RunJournal
from residency_cli.placement import build_constraints, build_expression, evaluate
from residency_cli.results import (
    Host,
    HostVerdict,
    Outcome,
    PlacedHost,
    RunResult,
    RunResults,
    StoppedTask,
    TaskOutcome,
    TasksStopped,
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
    tracker_outcome,
)

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_ssm import SSMClient

    from residency_cli.aws import Clients
    from residency_cli.guarding import GuardStatus
    from residency_cli.journal import JournalStore
    from residency_cli.logs import LogFollower, LogStream

MAX_COUNT = 10  # RunTask starts at most 10 tasks per call
MAX_STOP_REASON = 255  # StopTask's reason: "Up to 255 characters are allowed"
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
    host: Host,
    expression: str,
    allowed: Sequence[str],
    cpu: int,
    memory: int,
    attribute: str,
    conflict: str | None = None,
) -> list[str]:
    """Every reason this host cannot take the workload (empty: it can). `conflict`: how
    its label contradicts the map's inventory, if it does."""
    reasons: list[str] = []
    if not evaluate(expression, host.attributes) or host.location not in allowed:
        where = f"location {host.location}" if host.location else f"no {attribute} attribute"
        reasons.append(f"{where}, not {' or '.join(allowed)}")
    elif conflict:
        reasons.append(conflict)
    if host.status != "ACTIVE":
        reasons.append(f"status {host.status}, not ACTIVE")
    if not host.agent_connected:
        reasons.append("agent disconnected")
    if host.cpu_available is not None and host.cpu_available < cpu:
        reasons.append(f"not enough CPU ({host.cpu_available} free, {cpu} needed)")
    if host.memory_available is not None and host.memory_available < memory:
        reasons.append(f"not enough memory ({host.memory_available} MiB free, {memory} needed)")
    return reasons


@dataclass(frozen=True)
class _DefinitionFacts:
    """What pre-flight learns from a workload's task definition."""

    resolved: str
    problems: list[str]
    cpu: int = 0
    memory: int = 0
    container: str | None = None
    log_configured: bool = False
    guard: GuardStatus | None = None


def _container_problems(
    definition: Mapping[str, Any], container: Mapping[str, Any], resolved: str
) -> list[str]:
    name = container.get("name")
    log = container.get("logConfiguration") or {}
    if log.get("logDriver") != "awslogs":
        return [
            f"container {name} has no awslogs log configuration: add "
            "logConfiguration {logDriver: awslogs, options: {awslogs-group, "
            "awslogs-region, awslogs-stream-prefix}}"
        ]
    if not definition.get("executionRoleArn"):
        # ECS Anywhere: the awslogs driver sends logs with the task execution role's
        # credentials; without one the task fails to start (ECS developer guide,
        # "External instances (Amazon ECS Anywhere)", considerations).
        return [
            f"task definition {resolved} logs with awslogs but has no "
            "executionRoleArn: on ECS Anywhere the task would fail to start; set "
            "executionRoleArn to a role with logs:CreateLogStream and logs:PutLogEvents "
            "(`residency iam-policy` prints one)"
        ]
    return []


def _definition_facts(workload: Workload, definition: dict[str, Any] | None) -> _DefinitionFacts:
    if definition is None:
        return _DefinitionFacts(
            workload.task_definition,
            [f"task definition {workload.task_definition} does not exist: register it first"],
            container=workload.container,
        )
    resolved = str(definition.get("taskDefinitionArn", workload.task_definition))
    problem = _external_problem(definition)
    problems = [problem] if problem else []
    cpu, memory = task_size(definition)
    container = _essential_container(definition, workload.container)
    guard = definition_guard(container, workload.locations)
    if container is None:
        names = ", ".join(str(c.get("name")) for c in definition.get("containerDefinitions") or [])
        problems.append(
            f"task definition has no container {workload.container!r} (it has: {names})"
        )
        return _DefinitionFacts(resolved, problems, cpu, memory, workload.container, guard=guard)
    log = container.get("logConfiguration") or {}
    return _DefinitionFacts(
        resolved,
        problems + _container_problems(definition, container, resolved),
        cpu,
        memory,
        str(container.get("name")),
        log.get("logDriver") == "awslogs",
        guard,
    )


def _judged(
    config: Config,
    name: str,
    facts: _DefinitionFacts,
    hosts: Sequence[Host],
    absent: str | None = None,
) -> WorkloadCheck:
    """The pre-flight of workload `name`: its task definition's facts, each host judged."""
    workload = config.workload(name)
    expression = build_expression(config.location_attribute, workload.locations)
    verdicts = [
        HostVerdict(
            host,
            judge_host(
                host,
                expression,
                workload.locations,
                facts.cpu,
                facts.memory,
                config.location_attribute,
                inventory_conflict(config, host),
            ),
        )
        for host in hosts
    ]
    return WorkloadCheck(
        workload=name,
        task_definition=facts.resolved,
        locations=list(workload.locations),
        expression=expression,
        problems=list(facts.problems),
        hosts=verdicts,
        cpu=facts.cpu,
        memory=facts.memory,
        container=facts.container,
        log_configured=facts.log_configured,
        guard=facts.guard,
        absent=absent,
    )


def check_workload(
    ecs: ECSClient, config: Config, name: str, hosts: Sequence[Host]
) -> WorkloadCheck:
    """Pre-flight one workload against hosts already described."""
    workload = config.workload(name)
    definition = _describe_definition(ecs, workload.task_definition)
    return _judged(config, name, _definition_facts(workload, definition), hosts)


def check(
    ecs: ECSClient, ssm: SSMClient | None, config: Config, names: Sequence[str] = ()
) -> list[WorkloadCheck]:
    """Pre-flight every (or the named) workload against every host of the cluster, described
    once: the diagnosis of `check`, which shows why each host is excluded."""
    selected = list(names) or list(config.workloads)
    for name in selected:
        config.workload(name)
    hosts = cluster_hosts(ecs, ssm, config)
    with aws_errors("checking task definitions"):
        return [check_workload(ecs, config, name, hosts) for name in selected]


_A = TypeVar("_A")
_B = TypeVar("_B")


def _side_by_side(first: Callable[[], _A], second: Callable[[], _B]) -> tuple[_A, _B]:
    """`first()` here while `second()` runs in a thread: two independent requests in the
    time of the slower one. boto3 clients are thread-safe (sessions are not: the clients
    exist before this is called)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="residency-preflight") as pool:
        later = pool.submit(second)
        return first(), later.result()


def preflight(ecs: ECSClient, ssm: SSMClient | None, config: Config, name: str) -> WorkloadCheck:
    """The pre-flight of `run` (and of `run --dry-run`), whatever the fleet's size: ECS lists
    only the hosts the workload's own placement expression admits (ACTIVE ones), a page of
    up to 100 at a time, while the task definition is read; a page is described and SSM is
    asked for its hosts' names only. It stops at the first page with a compliant host (ECS
    places the task; placement is verified after). Typically 3 ECS calls: the task
    definition, one list, one describe. With no compliant host, the refusal says why (see
    `_explain_absence`)."""
    workload = config.workload(name)
    expression = build_expression(config.location_attribute, workload.locations)
    pages = filtered_host_pages(ecs, ssm, config, expression, status="ACTIVE")
    definition, hosts = _side_by_side(
        lambda: _describe_definition(ecs, workload.task_definition),
        lambda: next(pages, []),
    )
    facts = _definition_facts(workload, definition)
    result = _judged(config, name, facts, hosts)
    while not result.compliant_hosts:
        page = next(pages, None)
        if page is None:
            return _explain_absence(ecs, ssm, config, name, facts, hosts)
        hosts = [*hosts, *page]
        result = _judged(config, name, facts, hosts)
    return result


def _explain_absence(
    ecs: ECSClient,
    ssm: SSMClient | None,
    config: Config,
    name: str,
    facts: _DefinitionFacts,
    active: list[Host],
) -> WorkloadCheck:
    """No ACTIVE host of the workload's locations can take it: say why without describing
    the fleet. The ACTIVE ones were described (disconnected, short of CPU or memory, or
    contradicting the map, each with its reason); one more filtered listing finds the
    location's hosts in another status (DRAINING, REGISTERING...), described for their
    reason; when the locations have no host at all, the first page of unlabelled hosts
    (`attribute:NAME !exists`: a host that lost its label shows up with that reason), and
    else one listing of a single ARN tells an empty cluster from one whose hosts all
    carry other locations."""
    workload = config.workload(name)
    expression = build_expression(config.location_attribute, workload.locations)
    seen = {h.container_instance_arn for h in active}
    others = [a for a in list_instance_arns(ecs, config.cluster, expression) if a not in seen]
    hosts = [*active, *describe_hosts(ecs, ssm, config, others)]
    absent = None
    if not hosts:
        unlabelled, _ = list_instance_page(
            ecs, config.cluster, expression=f"attribute:{config.location_attribute} !exists"
        )
        hosts = describe_hosts(ecs, ssm, config, unlabelled)
        labelled = f"{config.location_attribute}={' or '.join(workload.locations)}"
        absent = f"no host of cluster {config.cluster} is labelled {labelled}"
    if not hosts and cluster_is_empty(ecs, config.cluster):
        absent = "the cluster has no container instances"
    return _judged(config, name, facts, hosts, absent)


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


MAX_COMMAND_CHARS = 8192  # ECS: the overrides of a RunTask request, as JSON, at most 8 KiB


def parse_command(value: str) -> list[str]:
    """`run --command`: a JSON list of strings when it starts with `[`, else split like a
    shell would (`shlex.split`). Empty or unparsable is a usage error (exit 2)."""
    text = value.strip()
    problem = None
    words: Any = None
    if text.startswith("["):
        try:
            words = json.loads(text)
        except ValueError as error:
            problem = f"not a JSON list ({error})"
        else:
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                problem = "a JSON list must hold strings only"
    else:
        try:
            words = shlex.split(text)
        except ValueError as error:
            problem = f"cannot split it like a shell ({error})"
    if problem is None and (not words or not words[0]):
        problem = "it is empty"
    if problem is None and len(json.dumps(words)) > MAX_COMMAND_CHARS:
        problem = f"longer than ECS's {MAX_COMMAND_CHARS} characters of overrides"
    if problem is not None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise UsageError(
            f"invalid --command {shown!r}: {problem}",
            hint="e.g. --command 'python job.py --day 2024-05-01' or "
            '--command \'["python", "job.py"]\'',
        )
    return [str(w) for w in words]


@dataclass(frozen=True)
class RunOptions:
    run_id: str
    count: int = 1
    env: dict[str, str] = field(default_factory=dict)
    # `run --command`: replaces the container's (and the workload's) command.
    command: list[str] | None = None
    # Tags added after the workload's own (the Airflow operator's task-instance tags).
    tags: dict[str, str] = field(default_factory=dict)

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
        *({"key": k, "value": v} for k, v in options.tags.items()),
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
    override = _container_override(workload, options.env, container, options.command)
    if override:
        request["overrides"] = {"containerOverrides": [override]}
    return request


def _container_override(
    workload: Workload,
    extra_env: Mapping[str, str],
    container: str | None,
    command: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The workload's container override: its environment (with the data guard's) and its
    command, `run --command`'s when given, else the map's."""
    environment = {**workload.environment, **extra_env}
    if container is not None:  # the data guard gets the map's locations (docs/enforcement.md)
        environment = with_guard(environment, workload.locations)
    command = command if command is not None else workload.command
    if not environment and command is None:
        return None
    if container is None:
        raise UsageError("cannot override the command or environment: no container to override")
    override: dict[str, Any] = {"name": container}
    if command is not None:
        override["command"] = list(command)
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


def default_stop_reason() -> str:
    """StopTask's reason when `stop` is given none: who stopped it, from where."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"stopped by residency stop ({user}@{socket.gethostname()})"[:MAX_STOP_REASON]


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


def placement_allowed(
    config: Config, workload: Workload, attributes: Mapping[str, str], host: PlacedHost
) -> bool:
    """The host's label satisfies the workload's placement, and (when the map has an
    inventory that names the host) the map agrees with the label."""
    location = attributes.get(config.location_attribute)
    expression = build_expression(config.location_attribute, workload.locations)
    if not (evaluate(expression, attributes) and location in workload.locations):
        return False
    declared = config.declared_location(
        hostname=host.hostname,
        instance_id=host.instance_id,
        container_instance_arn=host.container_instance_arn or "",
    )
    return declared is None or declared[0] == location


def stop_misplaced(
    ecs: ECSClient, config: Config, task_arn: str, host: PlacedHost, allowed: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """Stop the task; the reason given to ECS, and the task as StopTask answered it."""
    where = host.hostname or host.instance_id or host.container_instance_arn
    reason = (
        f"{VIOLATION_REASON_PREFIX}{where} is in {host.location or 'no location'}, "
        f"outside {', '.join(allowed)}"
    )
    declared = config.declared_location(
        hostname=host.hostname,
        instance_id=host.instance_id,
        container_instance_arn=host.container_instance_arn or "",
    )
    if declared is not None and declared[0] != host.location:
        if host.location in allowed:
            reason = (
                f"{VIOLATION_REASON_PREFIX}{where} is labelled {host.location} but the map "
                f"declares it {declared[0]} ({declared[1]}), outside {', '.join(allowed)}"
            )
        else:
            reason += f" (the map declares it {declared[0]})"
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
        allowed = placement_allowed(self.config, workload, attributes, host)
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


class Prefetch(Generic[_A]):
    """A value fetched once: in a thread from `start()` on (then waited for when called), or
    when first called. The caller's identity for the journal (one STS call) is fetched while
    pre-flight runs, so it need not delay RunTask; a dry run never asks for it."""

    def __init__(self, fetch: Callable[[], _A]) -> None:
        self._fetch = fetch
        self._thread: Any = None
        self._done = False
        self._value: _A | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        import threading

        if self._thread is None and not self._done:
            self._thread = threading.Thread(
                target=self._run, name="residency-prefetch", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fetch()
        except BaseException as error:  # raised in the caller's thread, when it asks
            self._error = error
        self._done = True

    def __call__(self) -> _A:
        if self._thread is None and not self._done:
            self._run()
        elif self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


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


@dataclass(frozen=True)
class DryRunList:
    """`run W1 W2 ... --dry-run`: each workload's plan (JSON: the list of `DryRun` objects)."""

    plans: list[DryRun]

    def to_json(self) -> list[Any]:
        return [plan.to_json() for plan in self.plans]


@dataclass
class _Started:
    """A run whose tasks exist (just started, or known to the journal): what it takes to
    verify, wait on and report them."""

    name: str
    run_id: str | None
    request: dict[str, Any] | None
    trackers: list[Tracker]
    failures: list[dict[str, str | None]] = field(default_factory=list)
    event: str = "run"
    interrupted: bool = False  # Ctrl-C came while (or before) its tasks were started


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
        journal_store: JournalStore | None = None,
        **options: Any,
    ) -> Dispatcher:
        """The one way to assemble a dispatcher from clients: real time, logs read in the
        streams' own region, the caller's identity in the journal (`journal_store`: where;
        default `$RESIDENCY_JOURNAL`, else the map's `journal:`, else the local file)."""
        from residency_cli.journal import caller_identity, journal_location, open_journal

        def logs_client(streams: Sequence[Any]) -> CloudWatchLogsClient:
            from residency_cli.logs import logs_client_for  # after RunTask, not before

            return logs_client_for(clients, streams)

        ecs, ssm, region = clients.ecs, clients.ssm, clients.region
        if journal is None:
            if journal_store is None:  # $RESIDENCY_JOURNAL, else the map's, else the file
                where = journal_location(map_journal=config.journal_location)
                journal_store = open_journal(where, s3_client=lambda: clients.s3)
            sts = clients.sts  # made here: a session is not thread-safe, its clients are
            journal = RunJournal(store=journal_store, who=Prefetch(lambda: caller_identity(sts)))
        return cls(
            ecs,
            ssm,
            config,
            observer=observer or SilentObserver(),
            logs_client=logs_client,
            region=region,
            journal=journal,
            **options,
        )

    def dry_run(self, name: str, options: RunOptions) -> DryRun:
        result = preflight(self.ecs, self.ssm, self.config, name)
        request = build_request(self.config, name, options, result.container)
        return DryRun(result, request, aws_cli_command(request, self.region), options.run_id)

    def dry_runs(self, names: Sequence[str], options: RunOptions) -> DryRunList:
        """`run W1 W2 ... --dry-run`: each workload's plan (each pre-flight of its own hosts)."""
        plans = []
        for result in self._preflights(names):
            request = build_request(self.config, result.workload, options, result.container)
            plans.append(
                DryRun(result, request, aws_cli_command(request, self.region), options.run_id)
            )
        return DryRunList(plans)

    def run(
        self,
        name: str,
        options: RunOptions,
        *,
        wait: bool = True,
        follow: bool = True,
        timeout: float | None = None,
    ) -> RunResult:
        self._before_dispatch()
        checked = preflight(self.ecs, self.ssm, self.config, name)
        request = build_request(self.config, name, options, checked.container)
        earlier = self._earlier_run(name, options.run_id, request)
        if earlier:  # the journal knows this run: never a second task (CONTRACT.md section 8)
            return self._rerun(name, earlier, options.run_id, request, follow, timeout, wait)
        if not checked.ready:
            return self._refused(name, options.run_id, request, checked.refusal)
        started = self._start(name, options.run_id, request)
        if isinstance(started, RunResult):
            return started
        try:
            return self._finish(
                name,
                started.trackers,
                options.run_id,
                request,
                wait=wait and not started.interrupted,
                follow=follow,
                timeout=timeout,
                failures=started.failures,
                pending=Outcome.INTERRUPTED if started.interrupted else None,
            )
        except AwsError as error:
            self._journal_started([started], error)
            raise

    def run_many(
        self,
        names: Sequence[str],
        options: RunOptions,
        *,
        wait: bool = True,
        follow: bool = True,
        timeout: float | None = None,
    ) -> RunResults:
        """`run W1 W2 ...`: several workloads dispatched together and waited on in the
        engine's one loop (one DescribeTasks a tick for all their tasks, each task judged
        against its own workload: a misplaced one is stopped, the others go on).

        All or none: every workload is pre-flighted before anything is sent; when one is
        refused nothing is dispatched and every run is reported `refused` (the others "not
        dispatched"). One run id serves them all (the clientToken is per workload and run
        id); a run the journal knows is attached to, as a single `run` does. Ctrl-C leaves
        every started task running (`interrupted`)."""
        self._before_dispatch()
        plans = self._plans(names, options)
        refused = [c.workload for c, _, earlier in plans if not earlier and not c.ready]
        if refused:
            why = f"not dispatched: {', '.join(refused)} refused (several workloads: all or none)"
            return RunResults(
                [
                    self._refused(
                        c.workload,
                        options.run_id,
                        request,
                        c.refusal if c.workload in refused else why,
                    )
                    for c, request, _ in plans
                ]
            )
        entries = self._start_many(plans, options.run_id)
        return RunResults(self._finish_many(entries, wait=wait, follow=follow, timeout=timeout))

    def _before_dispatch(self) -> None:
        """An unusable journal is exit 2 before any dispatch; who is dispatching is asked
        (STS) while pre-flight runs."""
        if self.journal is None:
            return
        self.journal.check()
        if isinstance(self.journal.who, Prefetch):
            self.journal.who.start()

    def _plans(
        self, names: Sequence[str], options: RunOptions
    ) -> list[tuple[WorkloadCheck, dict[str, Any], list[dict[str, Any]]]]:
        """Each workload's pre-flight, request and journal records of this run id (a run id
        used with other parameters is a usage error here, before anything is sent)."""
        plans = []
        for checked in self._preflights(names):
            name = checked.workload
            request = build_request(self.config, name, options, checked.container)
            plans.append((checked, request, self._earlier_run(name, options.run_id, request)))
        return plans

    def _preflights(self, names: Sequence[str]) -> list[WorkloadCheck]:
        """Each workload's `preflight` (its own hosts only, whatever the fleet's size), side
        by side: they are independent, and boto3 clients are thread-safe."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(names)) or 1) as pool:
            return list(
                pool.map(lambda name: preflight(self.ecs, self.ssm, self.config, name), names)
            )

    def _start_many(
        self,
        plans: Sequence[tuple[WorkloadCheck, dict[str, Any], list[dict[str, Any]]]],
        run_id: str,
    ) -> list[_Started | RunResult]:
        """RunTask for each workload in turn (or its journalled run). After Ctrl-C no other
        RunTask is sent: those not sent yet are reported as not dispatched, the started ones
        as interrupted."""
        entries: list[_Started | RunResult] = []
        interrupted = False
        for checked, request, earlier in plans:
            name = checked.workload
            entry: _Started | RunResult | None = None
            if not interrupted:
                try:
                    entry = (
                        self._recorded(name, earlier, run_id, request)
                        if earlier
                        else self._start(name, run_id, request)
                    )
                except KeyboardInterrupt:
                    interrupted = True
            if entry is None:
                why = "not dispatched: interrupted before its RunTask"
                entry = self._refused(name, run_id, request, why)
            interrupted = interrupted or (isinstance(entry, _Started) and entry.interrupted)
            entries.append(entry)
        for entry in entries:
            if isinstance(entry, _Started):
                entry.interrupted = interrupted
        return entries

    def _finish_many(
        self,
        entries: Sequence[_Started | RunResult],
        *,
        wait: bool,
        follow: bool,
        timeout: float | None,
    ) -> list[RunResult]:
        """Verify, wait on every started task in one loop, and report (and journal) each run."""
        started = [e for e in entries if isinstance(e, _Started)]
        pending = Outcome.INTERRUPTED if any(s.interrupted for s in started) else None
        try:
            if started:
                waited = self._wait_many(started, wait and pending is None, follow, timeout)
                pending = pending or waited
        except KeyboardInterrupt:
            pending = Outcome.INTERRUPTED
        except AwsError as error:
            self._journal_started(started, error)
            raise
        return [
            entry if isinstance(entry, RunResult) else self._started_result(entry, pending)
            for entry in entries
        ]

    def _journal_started(self, started: Sequence[_Started], error: AwsError) -> None:
        """Tasks started, then AWS failed: whatever failed after, each run is journalled and
        the error names its tasks."""
        for entry in started:
            self._started_result(entry, None)
        error.task_ids = [t.arn.rsplit("/", 1)[-1] for entry in started for t in entry.trackers]

    def _started_result(self, entry: _Started, pending: Outcome | None) -> RunResult:
        return self._result(
            entry.trackers,
            entry.run_id,
            entry.request,
            pending,
            event=entry.event,
            failures=entry.failures,
        )

    def _wait_many(
        self, started: Sequence[_Started], wait: bool, follow: bool, timeout: float | None
    ) -> Outcome | None:
        """Placement verified for every task at once, their streams located, then (with
        `wait`) the engine's one loop over all of them, following their logs, each line
        prefixed with its workload (`bonus/main`)."""
        every = [tracker for entry in started for tracker in entry.trackers]
        Verifier(self.ecs, self.ssm, self.config, self.observer)(every)
        streams: list[LogStream] = []
        for entry in started:
            located = self._locate_streams(entry.name, entry.trackers)
            streams += [
                dataclasses.replace(stream, container=f"{entry.name}/{stream.container}")
                for found in located.values()
                for stream in found
            ]
        if not wait:
            return None
        follower = self._follower(streams) if follow else None
        return self._wait_engine(every, timeout, follower, stop_on_violation=False)

    def _follower(self, streams: Sequence[LogStream]) -> LogFollower | None:
        """One follower for the streams of several workloads, each region's streams read
        with that region's client (None: nothing to follow)."""
        if not streams or self.logs_client is None:
            return None
        from residency_cli.logs import LogFollower

        by_region: dict[str | None, list[LogStream]] = {}
        for stream in streams:
            by_region.setdefault(stream.region, []).append(stream)
        follower: LogFollower | None = None
        for group in by_region.values():
            client = self.logs_client(group)
            if follower is None:
                follower = LogFollower(client, group)
            else:
                follower.add(client, group)
        return follower

    def _start(self, name: str, run_id: str, request: dict[str, Any]) -> _Started | RunResult:
        """Journal the intent and send RunTask: the started tasks, or the refusal when ECS
        started none (`interrupted`: Ctrl-C came while RunTask was in flight)."""
        self._journal_intent(name, run_id, request)
        response, interrupted = self._run_task(name, run_id, request)
        tasks = [dict(t) for t in response.get("tasks") or []]
        if not tasks:
            return self._refused(
                name, run_id, request, explain_failures(response.get("failures") or [])
            )
        tasks = self._complete(tasks)
        failures = [
            {"arn": f.get("arn"), "reason": f.get("reason")} for f in response.get("failures") or []
        ]
        trackers = [Tracker(str(t["taskArn"]), t, name) for t in tasks]
        return _Started(name, run_id, request, trackers, failures, interrupted=interrupted)

    def _run_task(
        self, name: str, run_id: str, request: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """RunTask; (its answer, whether the user interrupted while it was in flight).

        Ctrl-C (or SIGTERM) during the call may come after ECS started the task: the same
        request again is answered with the same task (the clientToken makes RunTask
        idempotent), so the run can say which task is left running instead of losing it."""
        try:
            return self._send_run_task(name, run_id, request), False
        except KeyboardInterrupt:
            return self._send_run_task(name, run_id, request), True

    def _send_run_task(self, name: str, run_id: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            with aws_errors(f"starting {name}"):
                return dict(self.ecs.run_task(**request))
        except AwsError as error:
            if error_code(error.__cause__ or error) != "ConflictException":
                raise
            # RunTask API reference: the same clientToken with other parameters.
            cause = getattr(error.__cause__, "response", {})
            existing = ", ".join(str(a).rsplit("/", 1)[-1] for a in cause.get("resourceIds") or [])
            raise UsageError(
                f"run id {run_id} was already used for {name} with other parameters"
                + (f" (task {existing})" if existing else ""),
                hint="use another --run-id, or repeat the first run's options",
            ) from None

    def _complete(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """RunTask replayed with the clientToken of a task that already stopped answers only
        `taskArn`, `lastStatus` and `desiredStatus` (ECS developer guide, "Ensuring
        idempotency"): describe such tasks before going on."""
        short = [str(t["taskArn"]) for t in tasks if "taskDefinitionArn" not in t]
        if not short:
            return tasks
        described = {
            str(t["taskArn"]): t for t in describe_tasks(self.ecs, self.config.cluster, short)
        }
        return [described.get(str(t["taskArn"]), t) for t in tasks]

    def _earlier_run(
        self, name: str, run_id: str, request: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The journal's records of this run id for this workload (empty: a new run). The
        same run id with other parameters is a usage error (exit 2)."""
        if self.journal is None:
            return []
        records = [
            r
            for r in self.journal.records()
            if r.get("run_id") == run_id
            and r.get("workload") == name
            and (r.get("request") or {}).get("cluster") == self.config.cluster
        ]
        for record in records:
            if record.get("request") != _jsonable(request):
                raise UsageError(
                    f"run id {run_id} was already used for {name} with other parameters "
                    f"(journal record {record.get('seq')}, {record.get('time')})",
                    hint="use another --run-id, or repeat the first run's options",
                )
        return [r for r in records if _recorded_arns(r)]

    def _rerun(
        self,
        name: str,
        records: list[dict[str, Any]],
        run_id: str,
        request: dict[str, Any],
        follow: bool,
        timeout: float | None,
        wait: bool,
    ) -> RunResult:
        """A run id the journal knows: attach to its task(s) while ECS still knows them,
        else report how the journal says they ended. Nothing is started."""
        recorded = self._recorded(name, records, run_id, request)
        if isinstance(recorded, RunResult):
            return recorded
        return self._finish(
            name,
            recorded.trackers,
            run_id,
            request,
            wait=wait,
            follow=follow,
            timeout=timeout,
            event="rerun",
        )

    def _recorded(
        self, name: str, records: list[dict[str, Any]], run_id: str, request: dict[str, Any]
    ) -> _Started | RunResult:
        """The journal's last run of this run id: its tasks while ECS still knows them all,
        else how the journal says they ended."""
        arns = _recorded_arns(records[-1])
        found = describe_tasks(self.ecs, self.config.cluster, arns)
        if found and len(found) == len(arns):
            trackers = [Tracker(str(t["taskArn"]), t, name) for t in found]
            return _Started(name, run_id, request, trackers, event="rerun")
        result = dict(records[-1].get("result") or {})
        tasks = [TaskOutcome.from_json(t) for t in result.get("tasks") or [result]]
        return RunResult(tasks, request, message="as journalled: ECS no longer knows the task")

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
        self.observer.status(task, None)  # where it stands now (the engine reports changes)
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

    def running_tasks(self, name: str) -> list[str]:
        """The ARNs of the RUNNING tasks of a workload of the map (`stop --all-running`)."""
        from residency_cli.tasks import list_workload_tasks

        self.config.workload(name)
        described = list_workload_tasks(self.ecs, self.config, [name], ["RUNNING"])
        return [
            str(t["taskArn"])
            for t in described
            if workload_for_task(self.config, t) == name and t.get("lastStatus") != "STOPPED"
        ]

    def stop(self, task_refs: Sequence[str], reason: str | None = None) -> TasksStopped:
        """Stop tasks of the map's workloads (by id or ARN), each stop journalled. Every
        task is described first: one ECS does not know or one of no mapped workload (by its
        task definition) refuses the lot before anything is stopped."""
        refs = list(dict.fromkeys(check_task_ref(ref) for ref in task_refs))
        if not refs:
            raise UsageError("name at least one task to stop")
        if self.journal is not None:  # an unusable journal: exit 2 before anything stops
            self.journal.check()
        why = (reason if reason is not None else default_stop_reason()).strip()
        if not why:
            raise UsageError("--reason is empty")
        why = why[:MAX_STOP_REASON]
        described = describe_tasks(self.ecs, self.config.cluster, refs)
        known = {str(t["taskArn"]): t for t in described}
        missing = [
            ref for ref in refs if not any(arn == ref or arn.endswith("/" + ref) for arn in known)
        ]
        if missing:
            raise AwsError(
                f"task {', '.join(missing)} not found in cluster {self.config.cluster}; "
                "nothing was stopped",
                hint="ECS forgets stopped tasks after about an hour; see `residency tasks`",
            )
        owners = {arn: workload_for_task(self.config, task) for arn, task in known.items()}
        foreign = [arn.rsplit("/", 1)[-1] for arn, owner in owners.items() if owner is None]
        if foreign:
            raise UsageError(
                f"task {', '.join(foreign)} does not belong to a workload of the map; "
                "nothing was stopped",
                hint="stop stops tasks of the map's workloads only",
            )
        stopped = [self._stop_one(task, str(owners[arn]), why) for arn, task in known.items()]
        return TasksStopped(self.config.cluster, why, stopped)

    def _stop_one(self, task: Mapping[str, Any], name: str, reason: str) -> StoppedTask:
        arn = str(task["taskArn"])
        before = task.get("lastStatus")
        ended = before in ("STOPPED", "DELETED") or task.get("desiredStatus") == "STOPPED"
        status = before
        if not ended:
            with aws_errors(f"stopping task {arn.rsplit('/', 1)[-1]}"):
                answer = self.ecs.stop_task(cluster=self.config.cluster, task=arn, reason=reason)
            status = (answer.get("task") or {}).get("lastStatus", before)
        result = StoppedTask(
            arn, name, task_tag(task, RUN_ID_TAG), before, status, stopped=not ended
        )
        if self.journal is not None:
            problem = self.journal.record(
                workload=name,
                run_id=result.run_id,
                request=None,
                locations=list(self.config.workload(name).locations),
                outcome={"outcome": "stopped", "reason": reason, **result.to_json()},
                host_attributes=None,
                event="stop",
            )
            if problem is not None:
                self.journal_problems.append(problem.replace("this run", "this stop"))
        return result

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
        pending: Outcome | None = None,
    ) -> RunResult:
        """Verify where the tasks landed, then (unless `wait` is off or a task was misplaced)
        wait for them in the engine, following their logs. `failures`: RunTask's, for the
        tasks it did not start (a partial start is reported, the started ones followed)."""
        Verifier(self.ecs, self.ssm, self.config, self.observer)(trackers)
        located = self._locate_streams(name, trackers)
        if any(t.violation for t in trackers) or not wait:
            return self._result(trackers, run_id, request, pending, event=event, failures=failures)
        every = [stream for found in located.values() for stream in found]
        follower = self._follower(every) if follow else None
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

    def _journal_intent(self, name: str, run_id: str, request: dict[str, Any]) -> None:
        """Before RunTask: the run id, the request and its clientToken are journalled, so a
        run that dies after sending it is never unaccounted for."""
        if self.journal is None:
            return
        problem = self.journal.record(
            workload=name,
            run_id=run_id,
            request=request,
            locations=list(self.config.workload(name).locations),
            outcome={"outcome": None, "task_arn": None},
            host_attributes=None,
            event="intent",
        )
        if problem is None:
            return
        if self.journal.unusable:  # a location that cannot be written: exit 2, no RunTask
            raise JournalError(f"{problem}; nothing was dispatched")
        self.journal_problems.append(problem)  # a damaged journal: run, warn, exit 8

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


def _recorded_arns(record: Mapping[str, Any]) -> list[str]:
    """The task ARNs a journal record names (none for an intent or a refusal)."""
    result = record.get("result") or {}
    tasks = result.get("tasks") or [result]
    return [str(t["task_arn"]) for t in tasks if isinstance(t, dict) and t.get("task_arn")]


def _jsonable(value: Any) -> Any:
    """As the journal stores it (JSON), for comparing a request with a recorded one."""
    return json.loads(json.dumps(value, default=str))


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
