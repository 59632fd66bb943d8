"""Frozen result types: what core functions return and the renderer prints.

`to_json()` shapes are part of the contract (CONTRACT.md); tests pin them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from residency_cli.guarding import GuardStatus


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_json"):
            return value.to_json()
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Host:
    """One container instance of the cluster, as `hosts` shows it."""

    container_instance_arn: str
    container_instance_id: str
    instance_id: str | None
    hostname: str | None
    location: str | None
    status: str
    agent_connected: bool
    running_tasks: int
    pending_tasks: int
    cpu_available: int | None
    memory_available: int | None
    attributes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "container_instance_arn": self.container_instance_arn,
            "container_instance_id": self.container_instance_id,
            "instance_id": self.instance_id,
            "hostname": self.hostname,
            "location": self.location,
            "status": self.status,
            "agent_connected": self.agent_connected,
            "running_tasks": self.running_tasks,
            "pending_tasks": self.pending_tasks,
            "cpu_available": self.cpu_available,
            "memory_available": self.memory_available,
        }

    @property
    def label(self) -> str:
        """How to name this host to a person: hostname, else instance id, else CI id."""
        return self.hostname or self.instance_id or self.container_instance_id


@dataclass(frozen=True)
class LabelChange:
    """The outcome (or plan, with dry_run) of register-host / unregister-host."""

    host: Host
    attribute: str
    previous: str | None
    location: str | None
    action: str  # "add" | "change" | "remove" | "unchanged"
    dry_run: bool
    request: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host.to_json(),
            "attribute": self.attribute,
            "previous_location": self.previous,
            "location": self.location,
            "action": self.action,
            "dry_run": self.dry_run,
            "request": self.request,
        }


@dataclass(frozen=True)
class ValidateSummary:
    source: str
    cluster: str
    region: str | None
    location_attribute: str
    locations: list[str]
    hosts: dict[str, str]
    workloads: dict[str, list[str]]
    # For people (not in the JSON): workload -> (task definition, placement expression);
    # location -> (data region, description).
    workload_details: dict[str, tuple[str, str]] = field(default_factory=dict)
    location_details: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.source,
            "valid": True,
            "cluster": self.cluster,
            "region": self.region,
            "location_attribute": self.location_attribute,
            "locations": self.locations,
            "hosts": self.hosts,
            "workloads": self.workloads,
        }


@dataclass(frozen=True)
class HostVerdict:
    """One host as pre-flight judged it for one workload; no reasons means compliant."""

    host: Host
    reasons: list[str]

    @property
    def compliant(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        return {
            "container_instance_arn": self.host.container_instance_arn,
            "instance_id": self.host.instance_id,
            "hostname": self.host.hostname,
            "location": self.host.location,
            "compliant": self.compliant,
            "reasons": self.reasons,
        }


# More hosts than this and `check` (text) and a refusal group the excluded hosts by reason
# with counts and the first few names (`check --all-hosts`: every host; JSON: always every host).
GROUP_HOSTS_ABOVE = 20
NAMES_SHOWN = 3


def excluded_by_reason(verdicts: list[HostVerdict]) -> list[tuple[str, list[str]]]:
    """The excluded hosts grouped by their reasons: (the reasons, the hosts' labels), the
    largest group first."""
    groups: dict[str, list[str]] = {}
    for verdict in verdicts:
        if verdict.reasons:
            groups.setdefault("; ".join(verdict.reasons), []).append(verdict.host.label)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def named_few(labels: list[str], shown: int = NAMES_SHOWN) -> str:
    """The first few names, and how many more: "a, b, c and 97 more"."""
    named = ", ".join(labels[:shown])
    return named if len(labels) <= shown else f"{named} and {len(labels) - shown} more"


@dataclass(frozen=True)
class WorkloadCheck:
    """Pre-flight of one workload: ready when it has no problems and a compliant host."""

    workload: str
    task_definition: str
    locations: list[str]
    expression: str
    problems: list[str]
    hosts: list[HostVerdict]
    cpu: int
    memory: int
    container: str | None
    log_configured: bool
    guard: GuardStatus | None = None  # what the task definition tells the data guard
    # Why ECS listed no host for the placement, when it listed none (pre-flight of `run`
    # asks ECS for the workload's hosts only); not part of the JSON.
    absent: str | None = None

    @property
    def compliant_hosts(self) -> list[HostVerdict]:
        return [h for h in self.hosts if h.compliant]

    @property
    def ready(self) -> bool:
        return not self.problems and bool(self.compliant_hosts)

    @property
    def refusal(self) -> str:
        """Why this workload cannot be dispatched, in one paragraph."""
        reasons = list(self.problems)
        if not self.compliant_hosts:
            where = ", ".join(self.locations)
            if self.absent is not None:
                reasons.append(self.absent)
            elif not self.hosts:
                reasons.append("the cluster has no container instances")
            reasons.append(f"no compliant host for {self.workload} (allowed: {where})")
            if len(self.hosts) > GROUP_HOSTS_ABOVE:
                reasons.extend(
                    f"  {len(labels)} host(s): {why} ({named_few(labels)})"
                    for why, labels in excluded_by_reason(self.hosts)
                )
            else:
                reasons.extend(f"  {v.host.label}: {'; '.join(v.reasons)}" for v in self.hosts)
        return "\n".join(reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "ready": self.ready,
            "task_definition": self.task_definition,
            "locations": self.locations,
            "placement": self.expression,
            "container": self.container,
            "cpu": self.cpu,
            "memory": self.memory,
            "log_configured": self.log_configured,
            "guard": self.guard.to_json() if self.guard else None,
            "problems": self.problems,
            "hosts": [h.to_json() for h in self.hosts],
        }


@dataclass(frozen=True)
class PlacedHost:
    container_instance_arn: str | None
    instance_id: str | None
    hostname: str | None
    location: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "container_instance_arn": self.container_instance_arn,
            "instance_id": self.instance_id,
            "hostname": self.hostname,
            "location": self.location,
        }


class Outcome(str, enum.Enum):
    """How a dispatched task ended (CONTRACT.md sections 4, 6 and 8): its JSON value, the exit
    code it gives `run`/`attach`, its severity (the most severe task decides a run, the most
    severe run decides a multi-workload command), and the sentence that explains it on stderr.

    The sentence is a `str.format` template over `TaskOutcome.facts()`. Adding an outcome is
    adding a member here; nothing else lists them.
    """

    # value, exit code, severity, sentence (None: success, nothing to explain)
    SUCCEEDED = ("succeeded", 0, 0, None)
    DISPATCHED = ("dispatched", 0, 1, None)
    FAILED = (
        "failed",
        1,
        2,
        "{workload} failed: its container exited with code {exit_code} (task {task_id})",
    )
    NOT_STARTED = ("not_started", 5, 3, "task {task_id} never ran to completion: {stop_reason}")
    HOST_LOST = (
        "host_lost",
        5,
        4,
        "{message}; task {task_id} was last seen {status}: {attach} later, or {stop}",
    )
    TIMEOUT = (
        "timeout",
        6,
        5,
        "timed out waiting for task {task_id}; it is left running: {attach} (or {stop})",
    )
    PARTIAL = (
        "partial",
        3,
        6,
        "{workload}: ECS started fewer tasks than asked for: {message}",
    )
    REFUSED = ("refused", 3, 7, "refused to dispatch {workload}: {message}")
    INTERRUPTED = (
        "interrupted",
        130,
        8,
        "interrupted; task {task_id} is left running: {attach}",
    )
    VIOLATION = (
        "violation",
        4,
        9,
        "residency violation: {message} (task {task_id} was stopped)",
    )

    exit_code: int
    severity: int
    sentence: str | None

    def __new__(cls, value: str, exit_code: int, severity: int, sentence: str | None) -> Outcome:
        member = str.__new__(cls, value)
        member._value_ = value
        member.exit_code = exit_code
        member.severity = severity
        member.sentence = sentence
        return member

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def named(cls, value: str) -> Outcome:
        """The member whose JSON value is `value` (ValueError if none)."""
        found = next((outcome for outcome in cls if outcome.value == value), None)
        if found is None:
            raise ValueError(f"unknown outcome {value!r}")
        return found

    @classmethod
    def by_severity(cls) -> list[Outcome]:
        """Least severe first: the order the README documents for multi-workload runs."""
        return sorted(cls, key=lambda outcome: outcome.severity)


@dataclass(frozen=True)
class TaskOutcome:
    """How one dispatched task ended (or where it stands): the JSON of CONTRACT.md section 4."""

    workload: str
    locations: list[str]
    cluster: str
    run_id: str | None
    outcome: Outcome
    task_arn: str | None = None
    host: PlacedHost | None = None
    status: str | None = None
    exit_code: int | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    log_group: str | None = None
    log_stream: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    message: str | None = None

    @property
    def task_id(self) -> str | None:
        return self.task_arn.rsplit("/", 1)[-1] if self.task_arn else None

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TaskOutcome:
        """Back from `to_json()` (a journal record's result)."""
        host = document.get("host")
        return cls(
            workload=str(document.get("workload")),
            locations=list(document.get("locations") or []),
            cluster=str(document.get("cluster")),
            run_id=document.get("run_id"),
            outcome=Outcome.named(str(document.get("outcome") or "dispatched")),
            task_arn=document.get("task_arn"),
            host=PlacedHost(**host) if isinstance(host, dict) else None,
            status=document.get("status"),
            exit_code=document.get("exit_code"),
            stop_code=document.get("stop_code"),
            stopped_reason=document.get("stopped_reason"),
            log_group=document.get("log_group"),
            log_stream=document.get("log_stream"),
            started_at=document.get("started_at"),
            stopped_at=document.get("stopped_at"),
        )

    def explanation(self, command: str = "residency", fallback: str | None = None) -> str | None:
        """This task's outcome in one sentence (None when there is nothing to explain)."""
        if self.outcome.sentence is None:
            return None
        stop = [self.stop_code, self.stopped_reason or "no reason given"]
        facts = {
            "workload": self.workload,
            "task_id": self.task_id,
            "exit_code": self.exit_code,
            "message": (self.message or fallback or "").removeprefix("residency: "),
            "stop_reason": ": ".join(filter(None, stop)),
            "status": self.status,
            "attach": f"{command} attach {self.task_id}",
            "stop": f"{command} stop {self.task_id}",
        }
        return self.outcome.sentence.format(**facts)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "locations": self.locations,
            "cluster": self.cluster,
            "run_id": self.run_id,
            "task_arn": self.task_arn,
            "task_id": self.task_id,
            "host": self.host.to_json() if self.host else None,
            "outcome": self.outcome.value,
            "status": self.status,
            "exit_code": self.exit_code,
            "stop_code": self.stop_code,
            "stopped_reason": self.stopped_reason,
            "log_group": self.log_group,
            "log_stream": self.log_stream,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
        }


@dataclass(frozen=True)
class RunResult:
    """The outcome of `run`/`attach`: one object, or one per task with --count."""

    tasks: list[TaskOutcome]
    request: dict[str, Any] | None = None
    message: str | None = None
    # task ARN -> the host's attributes when placement was verified (for the journal)
    host_attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    # RunTask's `failures` for tasks it did not start (`--count N` can start fewer than N).
    failures: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        worst = max((t.outcome for t in self.tasks), key=lambda outcome: outcome.severity)
        if self.failures and worst.severity < Outcome.PARTIAL.severity:
            return Outcome.PARTIAL
        return worst

    @property
    def primary(self) -> TaskOutcome:
        """The task that decides the outcome (the first one with the worst outcome)."""
        worst = max((t.outcome for t in self.tasks), key=lambda outcome: outcome.severity)
        return next(t for t in self.tasks if t.outcome is worst)

    def exit_code(self, *, container_code: bool = False) -> int:
        """The process's exit code (CONTRACT.md section 6); with `container_code`, a failed
        job exits with its container's own code (`--exit-code container`)."""
        code = self.primary.exit_code
        if container_code and self.outcome is Outcome.FAILED and code:
            return int(code)
        return self.outcome.exit_code

    def explanation(self, command: str = "residency") -> str | None:
        """The outcome's sentence for stderr (None on success). `command` is how to call
        residency again (with the global options in effect) for the hints it contains."""
        if self.outcome is Outcome.PARTIAL:
            started = f"started {len(self.tasks)} of {len(self.tasks) + len(self.failures)}"
            reasons = "; ".join(dict.fromkeys(str(f.get("reason")) for f in self.failures))
            facts = {"workload": self.primary.workload, "message": f"{started} ({reasons})"}
            return str(Outcome.PARTIAL.sentence).format(**facts)
        return self.primary.explanation(command, fallback=self.message)

    def to_json(self) -> dict[str, Any]:
        document = self.primary.to_json()
        if len(self.tasks) > 1 or self.failures:
            document["outcome"] = self.outcome.value
            document["tasks"] = [t.to_json() for t in self.tasks]
        if self.failures:
            document["failures"] = list(self.failures)
        return document


@dataclass(frozen=True)
class RunResults:
    """`run W1 W2 ...` / `run --all`: one `RunResult` per workload, in the command's order
    (JSON: the list of the single-run objects). The most severe run decides the outcome and
    the exit code (`Outcome.severity`; the first of equally severe runs)."""

    runs: list[RunResult]

    @property
    def worst(self) -> RunResult:
        return max(self.runs, key=lambda run: run.outcome.severity)

    @property
    def outcome(self) -> Outcome:
        return self.worst.outcome

    def exit_code(self, *, container_code: bool = False) -> int:
        return self.worst.exit_code(container_code=container_code)

    def explanation(self, command: str = "residency") -> str | None:
        """One sentence per run that did not succeed, most severe first, naming every task
        left running (each with its `attach` command); None when all succeeded."""
        lines: list[str] = []
        for run in sorted(self.runs, key=lambda run: -run.outcome.severity):
            if run.outcome is Outcome.PARTIAL or len(run.tasks) == 1:
                sentences = [run.explanation(command)]
            else:
                sentences = [t.explanation(command, fallback=run.message) for t in run.tasks]
            lines += [s for s in sentences if s and s not in lines]
        return "\n".join(lines) or None

    @property
    def summary(self) -> str:
        """`3 workloads: 1 failed, 2 succeeded` (most severe first)."""
        counts: dict[Outcome, int] = {}
        for run in self.runs:
            counts[run.outcome] = counts.get(run.outcome, 0) + 1
        ordered = sorted(counts.items(), key=lambda item: -item[0].severity)
        return f"{len(self.runs)} workloads: " + ", ".join(f"{n} {o.value}" for o, n in ordered)

    def to_json(self) -> list[Any]:
        return [run.to_json() for run in self.runs]


@dataclass(frozen=True)
class HostList:
    """`hosts`: the cluster's hosts (JSON: the list)."""

    cluster: str
    hosts: list[Host]

    def to_json(self) -> list[Any]:
        return [h.to_json() for h in self.hosts]


@dataclass(frozen=True)
class CheckList:
    """`check`: one pre-flight per workload (JSON: the list)."""

    checks: list[WorkloadCheck]
    # Text only: every host in the table even on a large fleet (`check --all-hosts`).
    all_hosts: bool = False

    @property
    def not_ready(self) -> list[str]:
        return [c.workload for c in self.checks if not c.ready]

    def to_json(self) -> list[Any]:
        return [c.to_json() for c in self.checks]


@dataclass(frozen=True)
class TaskList:
    """`tasks`: recent tasks of the map's workloads (JSON: the list)."""

    cluster: str
    tasks: list[TaskOutcome]

    def to_json(self) -> list[Any]:
        return [t.to_json() for t in self.tasks]


@dataclass(frozen=True)
class StoppedTask:
    """One task `stop` was asked to stop: its status before, and as StopTask answered."""

    task_arn: str
    workload: str
    run_id: str | None
    status_before: str | None
    status: str | None
    # False: it had already stopped (or was stopping), so nothing was sent for it.
    stopped: bool

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "task_arn": self.task_arn,
            "task_id": self.task_id,
            "workload": self.workload,
            "run_id": self.run_id,
            "status_before": self.status_before,
            "status": self.status,
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class TasksStopped:
    """`stop`: the tasks stopped and the reason given to ECS (JSON: one object)."""

    cluster: str
    reason: str
    tasks: list[StoppedTask]

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "reason": self.reason,
            "tasks": [t.to_json() for t in self.tasks],
        }
