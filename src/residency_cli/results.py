"""Frozen result types: what core functions return and the renderer prints.

`to_json()` shapes are part of the contract (CONTRACT.md); tests pin them.
"""

from __future__ import annotations

import dataclasses
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
            if not self.hosts:
                reasons.append("the cluster has no container instances")
            reasons.append(f"no compliant host for {self.workload} (allowed: {where})")
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


OUTCOMES = (
    "succeeded",
    "failed",
    "dispatched",
    "refused",
    "violation",
    "not_started",
    "timeout",
    "interrupted",
)


@dataclass(frozen=True)
class TaskOutcome:
    """How one dispatched task ended (or where it stands): the JSON of CONTRACT.md section 4."""

    workload: str
    locations: list[str]
    cluster: str
    run_id: str | None
    outcome: str
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

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "locations": self.locations,
            "cluster": self.cluster,
            "run_id": self.run_id,
            "task_arn": self.task_arn,
            "task_id": self.task_id,
            "host": self.host.to_json() if self.host else None,
            "outcome": self.outcome,
            "status": self.status,
            "exit_code": self.exit_code,
            "stop_code": self.stop_code,
            "stopped_reason": self.stopped_reason,
            "log_group": self.log_group,
            "log_stream": self.log_stream,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
        }


_SEVERITY = {
    name: rank
    for rank, name in enumerate(
        (
            "succeeded",
            "dispatched",
            "failed",
            "not_started",
            "timeout",
            "refused",
            "interrupted",
            "violation",
        )
    )
}


@dataclass(frozen=True)
class RunResult:
    """The outcome of `run`/`attach`: one object, or one per task with --count."""

    tasks: list[TaskOutcome]
    request: dict[str, Any] | None = None
    message: str | None = None
    # task ARN -> the host's attributes when placement was verified (for the journal)
    host_attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return max((t.outcome for t in self.tasks), key=lambda o: _SEVERITY[o])

    @property
    def primary(self) -> TaskOutcome:
        """The task that decides the outcome (the first one with the worst outcome)."""
        return next(t for t in self.tasks if t.outcome == self.outcome)

    def to_json(self) -> dict[str, Any]:
        document = self.primary.to_json()
        if len(self.tasks) > 1:
            document["outcome"] = self.outcome
            document["tasks"] = [t.to_json() for t in self.tasks]
        return document
