"""Fakes for the log tests: a CloudWatch Logs client with AWS's GetLogEvents semantics and
an ECS client that tells a scripted task status (the clock is tests.support.clock.FakeClock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from residency_cli.logs import LogStream

GROUP = "/ecs/residency"


def client_error(code: str, operation: str = "GetLogEvents", message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or code}, "ResponseMetadata": {}},
        operation,
    )


def throttling(operation: str = "GetLogEvents") -> ClientError:
    return client_error("ThrottlingException", operation, "Rate exceeded")


def stream(container: str = "app", task_id: str = "t1", group: str = GROUP) -> LogStream:
    return LogStream(
        container=container, group=group, stream=f"etl/{container}/{task_id}", region=None
    )


@dataclass
class FakeLogs:
    """GetLogEvents as AWS documents it: forward tokens are positions; at the end the token
    given comes back; `page` bounds a page; `empty_pages_before_end` makes the service return
    empty pages with a *new* token while events remain (AWS may do that)."""

    page: int = 10_000
    empty_pages_before_end: int = 0
    streams: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)  # raised by the next calls
    calls: list[dict[str, Any]] = field(default_factory=list)
    reject_next_token: bool = False  # the next call that carries a token is told it expired
    _hops: int = 0

    def create(self, s: LogStream) -> None:
        self.streams.setdefault((s.group, s.stream), [])

    def put(self, s: LogStream, *events: tuple[int, str]) -> None:
        self.create(s)
        self.streams[(s.group, s.stream)].extend(
            {"timestamp": ts, "message": msg, "ingestionTime": ts} for ts, msg in events
        )

    def get_log_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        assert params.get("startFromHead") is True
        if self.errors:
            raise self.errors.pop(0)
        key = (params["logGroupName"], params["logStreamName"])
        if key not in self.streams:
            raise client_error(
                "ResourceNotFoundException", message="The specified log stream does not exist."
            )
        start = params.get("startTime")
        events = [e for e in self.streams[key] if start is None or e["timestamp"] >= start]
        token = params.get("nextToken")
        position = 0
        if token is not None:
            if self.reject_next_token or not token.startswith("f/"):
                self.reject_next_token = False
                raise client_error(
                    "InvalidParameterException", message="The specified nextToken is invalid."
                )
            position = int(token[2:].split("#")[0])
        if position < len(events) and self._hops < self.empty_pages_before_end:
            self._hops += 1
            return {"events": [], "nextForwardToken": f"f/{position}#{self._hops}"}
        page = events[position : position + self.page]
        if not page and token is not None:
            return {"events": [], "nextForwardToken": token}
        return {"events": [dict(e) for e in page], "nextForwardToken": f"f/{position + len(page)}"}


@dataclass
class FakeEcs:
    """DescribeTasks for one task whose status follows `statuses` (the last one repeats);
    `on_describe(n)` runs before the n-th answer (0-based)."""

    task_arn: str
    statuses: list[str]
    on_describe: Callable[[int], None] | None = None
    errors: list[BaseException] = field(default_factory=list)
    calls: int = 0
    stopped_at: Any = None
    definition: dict[str, Any] | None = None

    def describe_tasks(self, **params: Any) -> dict[str, Any]:
        n = self.calls
        self.calls += 1
        if self.on_describe is not None:
            self.on_describe(n)
        if self.errors:
            raise self.errors.pop(0)
        if not self.statuses:
            return {"tasks": [], "failures": [{"arn": params["tasks"][0], "reason": "MISSING"}]}
        status = self.statuses[min(n, len(self.statuses) - 1)]
        task: dict[str, Any] = {
            "taskArn": self.task_arn,
            "lastStatus": status,
            "taskDefinitionArn": "arn:aws:ecs:eu-central-1:123456789012:task-definition/etl:1",
        }
        if status == "STOPPED" and self.stopped_at is not None:
            task["stoppedAt"] = self.stopped_at
        return {"tasks": [task], "failures": []}

    def describe_task_definition(self, **params: Any) -> dict[str, Any]:
        assert self.definition is not None
        return {"taskDefinition": self.definition}
