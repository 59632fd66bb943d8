"""A task's CloudWatch log events: find its streams, read them, follow them, drain them.

Every ECS task runner gets the same four things wrong; this module is built against them:

- *The last lines of a short task are missing*: after the task STOPPED the awslogs driver may
  still be delivering. `drain` keeps reading until every stream is exhausted *and* a grace
  period has passed since the task stopped and since the last new event.
- *Lines with the same timestamp are dropped* (or doubled): runners that poll with
  `startTime=last_timestamp + 1` drop them, `startTime=last_timestamp` doubles them. We read
  with `GetLogEvents` forward tokens, which are positional, so neither happens. If a token has
  to be abandoned (expired or rejected) we restart at the last timestamp and skip exactly the
  events already delivered at that timestamp (`_StreamCursor`).
- *The tail never ends*: `follow_task` watches the task and ends by itself once it stopped
  and the streams are drained.
- *Polling throttles the account* (GetLogEvents has a small account-wide TPS quota): one call
  per stream per poll, an adaptive, bounded interval (`PollPolicy`) shared with the task
  polling, and throttling backs off instead of failing.

GetLogEvents semantics relied on
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html):
with `startFromHead=True` and the previous `nextForwardToken` the call returns the events
after the last one returned; at the end of the stream it returns the token it was given.
A page holds at most 10,000 events or 1 MB, and may be empty before the end, so "nothing new"
means "the token came back unchanged", never "the page was empty".
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from residency_cli.aws import (
    THROTTLING_CODES,
    aws_errors,
    error_code,
    is_aws_error,
    translate_error,
)
from residency_cli.errors import AwsError, UsageError
from residency_cli.waiting import (
    DEFAULT_POLICY,
    DRAIN_GRACE_SECONDS,
    DRAIN_MAX_SECONDS,
    Clock,
    Engine,
    PollPolicy,
    Sleep,
    Tracker,
    WaitReport,
    check_task_ref,
    describe_tasks,
    monotonic,
    real_sleep,
    wall_clock,
)

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient

    from residency_cli.aws import Clients

# A GetLogEvents page is full at 10,000 events or 1,048,576 bytes, each event counting its
# UTF-8 message plus 26 bytes. A (nearly) full page means more is waiting.
PAGE_EVENTS = 10_000
PAGE_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
_NEARLY_FULL_BYTES = PAGE_BYTES - 64 * 1024

AWSLOGS_HINT = (
    "add to each container definition: logConfiguration: {logDriver: awslogs, options: "
    "{awslogs-group: <group>, awslogs-region: <region>, awslogs-stream-prefix: <prefix>}}"
)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LogStream:
    """Where one container of one task writes: `<prefix>/<container>/<task-id>` in `group`."""

    container: str
    group: str
    stream: str
    region: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "group": self.group,
            "stream": self.stream,
            "region": self.region,
        }


@dataclass(frozen=True)
class LogEvent:
    """One line a container wrote. `timestamp` is milliseconds since the epoch (UTC)."""

    timestamp: int
    container: str
    message: str

    @property
    def iso_timestamp(self) -> str:
        """`2024-05-01T12:00:00.123Z`: ISO 8601, UTC, milliseconds."""
        return format_timestamp(self.timestamp)

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.iso_timestamp,
            "container": self.container,
            "message": self.message,
        }


def format_timestamp(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


# --------------------------------------------------------------------------- locating


def task_id_of(task_arn: str) -> str:
    """`arn:aws:ecs:r:a:task/cluster/abc` (or the old `task/abc`, or `abc`) -> `abc`."""
    return task_arn.rsplit("/", 1)[-1]


def locate_streams(task_definition: Mapping[str, Any], task_arn: str) -> list[LogStream]:
    """The log stream of every container that logs with `awslogs`, in definition order.

    `task_definition` is `describe_task_definition()["taskDefinition"]`. Containers without
    an awslogs configuration are skipped; if none has one, or one lacks the group or the stream
    prefix (without a prefix the stream is named after the Docker container id, which the task
    definition cannot tell), this raises UsageError saying what to add.
    """
    name = str(task_definition.get("taskDefinitionArn") or task_definition.get("family") or "?")
    task_id = task_id_of(task_arn)
    streams: list[LogStream] = []
    drivers: list[str] = []
    for container in task_definition.get("containerDefinitions") or []:
        config = container.get("logConfiguration") or {}
        driver = config.get("logDriver")
        if driver != "awslogs":
            if driver:
                drivers.append(f"{container.get('name')}: {driver}")
            continue
        options = config.get("options") or {}
        group = options.get("awslogs-group")
        prefix = options.get("awslogs-stream-prefix")
        missing = [
            key
            for key, value in (("awslogs-group", group), ("awslogs-stream-prefix", prefix))
            if not value
        ]
        if missing:
            raise UsageError(
                f"task definition {name}: container {container.get('name')!r} logs with "
                f"awslogs but has no {' or '.join(missing)} option",
                hint=f"add {', '.join(missing)} to its logConfiguration options",
            )
        streams.append(
            LogStream(
                container=str(container["name"]),
                group=str(group),
                stream=f"{prefix}/{container['name']}/{task_id}",
                region=options.get("awslogs-region") or None,
            )
        )
    if not streams:
        other = f" (log drivers: {', '.join(drivers)})" if drivers else ""
        raise UsageError(
            f"task definition {name} has no awslogs log configuration{other}",
            hint=AWSLOGS_HINT,
        )
    return streams


def task_streams(
    ecs: ECSClient, cluster: str, task_ref: str
) -> tuple[dict[str, Any], list[LogStream]]:
    """DescribeTasks + DescribeTaskDefinition: the task and the streams of its containers.

    A task ECS does not know is AWS's "not found" (exit 7), as for `attach`.
    """
    found = describe_tasks(ecs, cluster, [check_task_ref(task_ref)])
    task = found[0] if found else None
    if task is None:
        raise AwsError(
            f"task {task_ref} not found in cluster {cluster}",
            hint="give a task id or ARN of this cluster; ECS forgets stopped tasks after "
            "about an hour (`residency tasks --status all` lists recent ones)",
        )
    definition_arn = str(task["taskDefinitionArn"])
    with aws_errors(f"reading task definition {definition_arn}"):
        definition = ecs.describe_task_definition(taskDefinition=definition_arn)
    return task, locate_streams(definition["taskDefinition"], str(task["taskArn"]))


def logs_client_for(clients: Clients, streams: Sequence[LogStream]) -> CloudWatchLogsClient:
    """A CloudWatch Logs client for the region the streams are in (`awslogs-region`).

    The task's logs may live in another region than the cluster's control plane. Streams of
    one task in several regions are not supported (UsageError).
    """
    regions = {stream.region for stream in streams if stream.region}
    if len(regions) > 1:
        raise UsageError(
            f"the task's containers log to several regions ({', '.join(sorted(regions))})",
            hint="use one awslogs-region for every container of the task definition",
        )
    return clients.in_region(regions.pop()).logs if regions else clients.logs


# --------------------------------------------------------------------------- reading


@dataclass
class _StreamCursor:
    """Where reading one stream has got to; one GetLogEvents call per `fetch()`."""

    stream: LogStream
    start_time_ms: int | None
    token: str | None = None
    exhausted: bool = False  # the last fetch found nothing new (token unchanged, or no stream)
    missing: bool = False  # the last fetch found no such group or stream (not yet created?)
    behind: bool = False  # the last fetch suggests more is waiting right now
    throttled: bool = False  # the last fetch was throttled (after botocore's own retries)
    found: bool = False  # the stream has existed at some point
    last_timestamp: int | None = None
    delivered_at_last: int = 0  # events delivered with timestamp == last_timestamp
    # After abandoning a token: re-read from `skip_until`, skipping events before it and the
    # first `skip_count` events at it (the ones already delivered).
    skip_until: int | None = None
    skip_count: int = 0
    restarts: int = 0
    query_start_ms: int | None = None  # startTime sent with every call of the current token

    def __post_init__(self) -> None:
        self.query_start_ms = self.start_time_ms

    def fetch(self, client: CloudWatchLogsClient) -> list[LogEvent]:
        params: dict[str, Any] = {
            "logGroupName": self.stream.group,
            "logStreamName": self.stream.stream,
            "startFromHead": True,
        }
        # startTime goes with every call, token or not: some implementations (moto) count
        # token positions within the startTime-filtered events.
        if self.query_start_ms is not None:
            params["startTime"] = self.query_start_ms
        if self.token is not None:
            params["nextToken"] = self.token
        self.throttled = False
        self.behind = False
        try:
            response = client.get_log_events(**params)
        except Exception as error:
            return self._failed(error)
        self.missing = False
        self.found = True
        token = response.get("nextForwardToken")
        raw = response.get("events") or []
        unchanged = self.token is not None and token == self.token
        self.exhausted = unchanged or (token is None and not raw)
        if token is not None:
            self.token = token
        size = sum(len(e.get("message", "").encode()) + EVENT_OVERHEAD_BYTES for e in raw)
        full = len(raw) >= PAGE_EVENTS or size >= _NEARLY_FULL_BYTES
        # An empty page with a new token can happen before the end on AWS: read on at once.
        self.behind = full or (not raw and not self.exhausted and token is not None)
        return self._deliver(raw)

    def _failed(self, error: Exception) -> list[LogEvent]:
        code = error_code(error)
        if code == "ResourceNotFoundException":
            # The group or stream does not exist (yet): the awslogs driver creates the stream
            # with the container's first line, and a silent container never creates it.
            self.missing = True
            self.exhausted = True
            return []
        if code in THROTTLING_CODES:
            self.throttled = True
            self.exhausted = False
            return []
        message = str(getattr(error, "response", {}).get("Error", {}).get("Message", ""))
        if (
            code == "InvalidParameterException"
            and self.token is not None
            and "token" in (message.lower())
        ):
            self._restart()
            return []
        if is_aws_error(error):
            raise translate_error(
                error, f"reading log stream {self.stream.stream} in {self.stream.group}"
            ) from error
        raise error

    def _restart(self) -> None:
        """Abandon the token (expired, rejected): re-read from the last timestamp, skipping
        exactly what was already delivered there, so that nothing is doubled or dropped."""
        self.token = None
        self.exhausted = False
        self.behind = True
        self.restarts += 1
        if self.last_timestamp is not None:
            self.query_start_ms = self.last_timestamp
            self.skip_until = self.last_timestamp
            self.skip_count = self.delivered_at_last

    def _deliver(self, raw: Sequence[Mapping[str, Any]]) -> list[LogEvent]:
        events: list[LogEvent] = []
        container = self.stream.container
        for item in raw:
            timestamp = int(item.get("timestamp", 0))
            if self.skip_until is not None:
                if timestamp < self.skip_until:
                    continue
                if timestamp == self.skip_until and self.skip_count > 0:
                    self.skip_count -= 1
                    continue
                self.skip_until = None
            if self.start_time_ms is not None and timestamp < self.start_time_ms:
                continue
            if timestamp == self.last_timestamp:
                self.delivered_at_last += 1
            else:
                self.last_timestamp = timestamp
                self.delivered_at_last = 1
            events.append(LogEvent(timestamp, container, str(item.get("message", ""))))
        return events


class LogFollower:
    """Follows the streams of one task: each `poll()` makes exactly one GetLogEvents call per
    stream and returns the new events of all of them, merged in timestamp order (stable:
    same-timestamp events keep their stream's order, streams in the order given).

    A stream or group that does not exist yet yields nothing and is not an error; throttling
    yields nothing this poll and sets `throttled` so that the caller backs off.
    """

    def __init__(
        self,
        logs_client: CloudWatchLogsClient,
        streams: Sequence[LogStream],
        *,
        start_time_ms: int | None = None,
    ) -> None:
        self.client = logs_client
        self.streams = list(streams)
        self._cursors = [_StreamCursor(s, start_time_ms) for s in self.streams]
        self._clients = [logs_client] * len(self._cursors)  # each cursor's (its region's)
        self._start_time_ms = start_time_ms
        self.api_calls = 0
        self.polls = 0
        self.events_read = 0
        self.throttle_count = 0
        self.throttled = False
        self.drain_complete: bool | None = None  # set by drain(): False if it hit max_seconds

    def add(self, logs_client: CloudWatchLogsClient, streams: Sequence[LogStream]) -> None:
        """Follow more streams, read with their own client (`run W1 W2 ...`: workloads whose
        tasks log to another region)."""
        for stream in streams:
            self.streams.append(stream)
            self._cursors.append(_StreamCursor(stream, self._start_time_ms))
            self._clients.append(logs_client)

    def poll(self) -> list[LogEvent]:
        self.polls += 1
        merged: list[LogEvent] = []
        for cursor, client in zip(self._cursors, self._clients, strict=True):
            self.api_calls += 1
            merged.extend(cursor.fetch(client))
        self.throttled = any(c.throttled for c in self._cursors)
        if self.throttled:
            self.throttle_count += 1
        if len(self._cursors) > 1:
            merged.sort(key=lambda event: event.timestamp)  # stable
        self.events_read += len(merged)
        return merged

    @property
    def exhausted(self) -> bool:
        """The last poll found nothing new in any stream (and was not throttled)."""
        return all(c.exhausted for c in self._cursors)

    @property
    def behind(self) -> bool:
        """The last poll of some stream suggests more is waiting: poll again without waiting."""
        return any(c.behind for c in self._cursors)

    @property
    def missing_streams(self) -> list[LogStream]:
        """Streams that did not exist at their last poll."""
        return [c.stream for c in self._cursors if c.missing]


def drain(
    follower: LogFollower,
    *,
    sleep: Callable[[float], None],
    now: Callable[[], float],
    grace_seconds: float = DRAIN_GRACE_SECONDS,
    max_seconds: float = DRAIN_MAX_SECONDS,
    policy: PollPolicy = DEFAULT_POLICY,
) -> Iterator[LogEvent]:
    """After the task STOPPED: every remaining event, then the end.

    Polls until every stream is exhausted *and* `grace_seconds` have passed since the drain
    began and since the last new event (the log driver may still be delivering the last
    lines), or until `max_seconds` (then `follower.drain_complete` is False).
    """
    start = now()
    last_new = start
    interval = policy.log_minimum
    while True:
        events = follower.poll()
        yield from events
        moment = now()
        if events:
            last_new = moment
        if follower.exhausted and moment - last_new >= grace_seconds:
            follower.drain_complete = True
            return
        if moment - start >= max_seconds:
            follower.drain_complete = False
            return
        interval = policy.next_log_interval(
            interval,
            new_events=bool(events),
            throttled=follower.throttled,
            behind=follower.behind,
        )
        if follower.exhausted:
            # Do not overshoot the grace period by much: its end is when we may stop.
            interval = min(interval, max(0.0, last_new + grace_seconds - moment))
        sleep(min(interval, max(0.0, start + max_seconds - moment)))


def read_logs(
    logs_client: CloudWatchLogsClient,
    streams: Sequence[LogStream],
    *,
    since_ms: int | None,
    sleep: Callable[[float], None] = real_sleep,
    on_missing: Callable[[LogStream], None] | None = None,
    policy: PollPolicy = DEFAULT_POLICY,
) -> Iterator[LogEvent]:
    """Every event from `since_ms` (or the start) to the current end, paginating; the streams
    merged in timestamp order. Throttling waits and retries; it is never fatal."""

    def one(cursor: _StreamCursor) -> Iterator[LogEvent]:
        while True:
            events = cursor.fetch(logs_client)
            yield from events
            if cursor.missing:
                if on_missing is not None:
                    on_missing(cursor.stream)
                return
            if cursor.throttled:
                sleep(policy.log_maximum)
                continue
            if cursor.exhausted:
                return

    cursors = [_StreamCursor(stream, since_ms) for stream in streams]
    if len(cursors) == 1:
        yield from one(cursors[0])
        return
    yield from heapq.merge(*(one(c) for c in cursors), key=lambda event: event.timestamp)


# --------------------------------------------------------------------------- following a task


def tail_task(
    ecs: ECSClient,
    logs_client: CloudWatchLogsClient,
    cluster: str,
    task_arn: str,
    streams: Sequence[LogStream],
    *,
    on_event: Callable[[LogEvent], None],
    sleep: Sleep = real_sleep,
    now: Clock = monotonic,
    wall: Callable[[], float] = wall_clock,
    policy: PollPolicy = DEFAULT_POLICY,
    start_time_ms: int | None = None,
    grace_seconds: float = DRAIN_GRACE_SECONDS,
    drain_max_seconds: float = DRAIN_MAX_SECONDS,
    on_status: Callable[[Mapping[str, Any]], None] | None = None,
) -> WaitReport:
    """`logs --follow`: the task's logs until it has ended and every event has been read,
    through the engine's one waiting loop (no placement verification: reading logs changes
    nothing). Throttling backs off; Ctrl-C propagates. The report's `task` is the task as
    last described (None when ECS forgot it)."""
    tracker = Tracker(task_arn, {"taskArn": task_arn}, workload="")
    engine = Engine(
        ecs,
        cluster,
        sleep=sleep,
        now=now,
        wall=wall,
        observer=_Callbacks(on_event, on_status),
        policy=policy,
        follower=LogFollower(logs_client, streams, start_time_ms=start_time_ms),
        drain_grace=grace_seconds,
        drain_max=drain_max_seconds,
    )
    return engine.wait([tracker], None, described=False)


@dataclass
class _Callbacks:
    """The engine's observer for `tail_task`: events and status changes to two callbacks."""

    on_event: Callable[[LogEvent], None]
    on_status: Callable[[Mapping[str, Any]], None] | None

    def status(self, task: Mapping[str, Any], previous: str | None) -> None:
        if self.on_status is not None:
            self.on_status(task)

    def placed(self, task_arn: str, host: Any, allowed: bool) -> None:
        return None

    def log(self, event: LogEvent) -> None:
        self.on_event(event)
