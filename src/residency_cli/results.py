"""Frozen result types: what core functions return and the renderer prints.

`to_json()` shapes are part of the contract (CONTRACT.md); tests pin them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


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
