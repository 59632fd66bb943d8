"""Audit: was every task of a mapped workload on a host whose location the workload allows?

And what the data guard saw (docs/enforcement.md): a task that stopped with the guard's exit
code was "blocked at the data" (misplaced, perhaps, but nothing was read), and a task whose
overrides told the guard to allow locations the map does not is a bypass ("guard-overridden").

ECS still returns RUNNING tasks and recently STOPPED ones (about an hour). For each, the
location *then* is the one `run` verified and tagged on the task; the location *now* is the
host's current label. A running task is judged by both (a host relabelled under a running task
puts it out of residency); a stopped one by where it ran, or by the host's label now when
nobody recorded it (a task started around residency).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from residency_cli.config import Config, workload_for_task
from residency_cli.config import task_tag_value as task_tag
from residency_cli.constants import HOST_LOCATION_TAG, WORKLOAD_TAG
from residency_cli.guarding import GUARD_EXIT_CODE, blocked_at_data, guard_override
from residency_cli.hosts import declared_location, hosts_of_tasks, inventory_conflict
from residency_cli.results import Host
from residency_cli.tasks import list_workload_tasks
from residency_cli.waiting import iso_time

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ssm import SSMClient


@dataclass(frozen=True)
class AuditFinding:
    task_arn: str
    workload: str
    allowed: list[str]
    status: str | None
    started_by: str | None
    host: str | None
    container_instance_arn: str | None
    location_then: str | None
    location_now: str | None
    started_at: str | None
    verdict: str  # "compliant" | "violation" | "guard-overridden" | "blocked" (at the data)
    reason: str | None
    # Where location_then came from: "tag", "journal", or "current label" (nobody recorded it)
    then_from: str = "tag"
    blocked_at_data: bool = False  # stopped with the data guard's exit code: nothing was read
    guard_override: str | None = None  # its overrides told the guard to allow other locations

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "task_arn": self.task_arn,
            "task_id": self.task_id,
            "workload": self.workload,
            "allowed_locations": self.allowed,
            "status": self.status,
            "started_by": self.started_by,
            "host": self.host,
            "container_instance_arn": self.container_instance_arn,
            "location_then": self.location_then,
            "location_now": self.location_now,
            "started_at": self.started_at,
            "verdict": self.verdict,
            "reason": self.reason,
            "location_then_from": self.then_from,
            "blocked_at_data": self.blocked_at_data,
            "guard_override": self.guard_override,
        }


def _started(task: dict[str, Any]) -> datetime | None:
    value = task.get("startedAt") or task.get("createdAt")
    return value if isinstance(value, datetime) else None


def _started_after(task: dict[str, Any], horizon: float) -> bool:
    started = _started(task)
    return started is None or started.timestamp() >= horizon


def judge(status: str | None, allowed: list[str], then: str | None, now: str | None) -> str | None:
    """Why this task breaks residency, or None when it does not."""
    if then is not None and then not in allowed:
        return f"ran in {then}, outside {', '.join(allowed)}"
    if status != "STOPPED" and now not in allowed:
        return f"runs on a host now in {now or 'no location'}, outside {', '.join(allowed)}"
    if then is None and now not in allowed:
        where = now or "no location"
        return (
            f"ran on a host now in {where} (unrecorded at placement), outside {', '.join(allowed)}"
        )
    return None


def _extra_findings(
    config: Config, task: dict[str, Any], name: str, host: Host | None
) -> str | None:
    """Findings beyond the location: a spoofed workload tag, a host the inventory contradicts."""
    tagged = task_tag(task, WORKLOAD_TAG)
    if tagged is not None and tagged != name:
        definition = str(task.get("taskDefinitionArn", "")).rsplit("/", 1)[-1]
        return f"tagged {WORKLOAD_TAG}={tagged} but runs {definition} (workload {name})"
    conflict = inventory_conflict(config, host) if host is not None else None
    if host is None or conflict is None:
        return None
    declared = declared_location(config, host)
    allowed = config.workloads[name].locations
    if declared is not None and declared[0] not in allowed:
        return f"ran on host {host.label}: {conflict}, which is outside {', '.join(allowed)}"
    return f"ran on host {host.label}: {conflict}"


# Most severe first: data read where it may not be, a guard told to let it through, a
# dispatch the guard stopped (nothing was read), then the rest.
VERDICT_ORDER = ("violation", "guard-overridden", "blocked", "compliant")


def guard_verdict(
    placement: str | None, blocked: bool, override: str | None
) -> tuple[str, str | None]:
    """The verdict and reason from the placement judgement and what the data guard saw.

    A task the guard stopped never read its data, so a misplacement is reported as
    "blocked" (at the data), not as a violation that ran; it is still a finding."""
    reasons = [r for r in (placement, override) if r]
    if blocked:
        why = f"blocked at the data: the job's guard refused it (exit {GUARD_EXIT_CODE})"
        return "blocked", "; ".join([why, *reasons])
    if placement:
        return "violation", "; ".join(reasons)
    if override:
        return "guard-overridden", override
    return "compliant", None


def audit(
    ecs: ECSClient,
    ssm: SSMClient | None,
    config: Config,
    *,
    since_seconds: float | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    recorded: Mapping[str, str] | None = None,
) -> list[AuditFinding]:
    """Every task of a mapped workload that ECS returns, judged; violations first.

    The location *then* comes from the task's `residency:host-location` tag, else from
    `recorded` (task ARN -> location, from the journal: StopTask deletes a task's tags),
    else it is unknown and the task is judged by its host's label now (`then_from` says so).
    """
    tasks = list_workload_tasks(ecs, config, list(config.workloads), ["RUNNING", "STOPPED"])
    if since_seconds is not None:
        horizon = now().timestamp() - since_seconds
        tasks = [t for t in tasks if _started_after(t, horizon)]
    hosts = hosts_of_tasks(ecs, ssm, config, tasks)
    findings: list[AuditFinding] = []
    for task in tasks:
        name = workload_for_task(config, task)
        if name is None:
            continue
        allowed = list(config.workloads[name].locations)
        instance_arn = task.get("containerInstanceArn")
        placed = hosts.get(str(instance_arn))
        then, then_from = _location_then(task, recorded or {})
        location_now = placed.location if placed else None
        placement = judge(task.get("lastStatus"), allowed, then, location_now)
        placement = placement or _extra_findings(config, task, name, placed)
        blocked = blocked_at_data(task, config.workloads[name].container)
        override = guard_override(task, allowed)
        verdict, reason = guard_verdict(placement, blocked, override)
        started = _started(task)
        findings.append(
            AuditFinding(
                task_arn=str(task["taskArn"]),
                workload=name,
                allowed=allowed,
                status=task.get("lastStatus"),
                started_by=task.get("startedBy"),
                host=placed.label if placed else None,
                container_instance_arn=str(instance_arn) if instance_arn else None,
                location_then=then,
                location_now=location_now,
                started_at=iso_time(started),
                verdict=verdict,
                reason=reason,
                then_from=then_from,
                blocked_at_data=blocked,
                guard_override=override,
            )
        )
    return sorted(findings, key=lambda f: (VERDICT_ORDER.index(f.verdict), f.started_at or ""))


def _location_then(task: dict[str, Any], recorded: Mapping[str, str]) -> tuple[str | None, str]:
    tagged = task_tag(task, HOST_LOCATION_TAG)
    if tagged is not None:
        return tagged, "tag"
    journalled = recorded.get(str(task.get("taskArn")))
    if journalled is not None:
        return journalled, "journal"
    return None, "current label"


@dataclass(frozen=True)
class AuditReport:
    """`audit`: every finding, violations first (JSON: the list)."""

    findings: list[AuditFinding]

    @property
    def violations(self) -> list[AuditFinding]:
        return [f for f in self.findings if f.reason]

    def to_json(self) -> list[Any]:
        return [f.to_json() for f in self.findings]
