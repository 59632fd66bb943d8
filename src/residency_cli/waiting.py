"""The task-lifecycle engine: one loop that waits for tasks to end.

`run`, `attach`, waiting on several runs at once, and `logs --follow` all wait through
`Engine.wait`. Each tick of its loop:

1. refreshes every task still going with one DescribeTasks per 100 tasks (never more than
   once per `PollPolicy.describe_floor`, backing off while nothing changes),
2. hands tasks that were just placed, or just reached RUNNING, to the placement verifier,
3. reads the next page of every followed log stream,
4. once every task has stopped, drains the logs (the last lines of a short task arrive after
   it stopped) and returns.

Time is injected (`sleep`, `now`, `wall`): tests run the loop in milliseconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from residency_cli.aws import THROTTLING_CODES, aws_errors, error_code
from residency_cli.config import Config
from residency_cli.constants import VIOLATION_REASON_PREFIX
from residency_cli.errors import AwsError, UsageError
from residency_cli.results import Outcome, PlacedHost, TaskOutcome

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

    from residency_cli.logs import LogEvent, LogFollower, LogStream

DESCRIBE_BATCH = 100
# Never more than one DescribeTasks a second per waiting loop (`run`, `attach`, `logs -f`).
DESCRIBE_FLOOR_SECONDS = 1.0
# CloudWatch Logs can show an event a few seconds after the awslogs driver sent it: after the
# task stops, keep reading this long past the last new event so the last line is never lost.
DRAIN_GRACE_SECONDS = 2.0
DRAIN_MAX_SECONDS = 30.0
# "DELETED" follows STOPPED in the task lifecycle (ECS developer guide, "Task lifecycle");
# DescribeTasks may show either, and both mean the task has ended.
FINAL_STATUSES = frozenset({"STOPPED", "DELETED"})
# DescribeTasks answers `failures: [{reason: MISSING}]` for a task it does not know (any more,
# or not yet: its APIs are eventually consistent). This many misses in a row: it is gone.
FORGET_AFTER_MISSES = 3
# On ECS Anywhere a host that loses power or its network does not stop its tasks: the
# container instance shows `agentConnected: false` and its tasks stay RUNNING to the API
# (ECS developer guide, "External instances (Amazon ECS Anywhere)": the agent reconnects
# several times an hour in normal operation). Disconnected this long: the host is lost.
HOST_LOST_AFTER_SECONDS = 300.0
# A task id (32 hex digits; older tasks and the sandbox: a UUID) or a task ARN, with or
# without the cluster name (the older ARN format).
_TASK_ID = r"[A-Za-z0-9][A-Za-z0-9-]{0,63}"
_TASK_REF = re.compile(
    rf"(?:arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{{12}}:task/(?:[A-Za-z0-9_-]{{1,255}}/)?)?{_TASK_ID}"
)

Sleep = Callable[[float], None]
Clock = Callable[[], float]


def check_task_ref(task_ref: str) -> str:
    """The task id or ARN as given; UsageError (exit 2) when it cannot be one, before any
    AWS call. Whether ECS knows it is for DescribeTasks to say."""
    if not _TASK_REF.fullmatch(task_ref):
        shown = task_ref if len(task_ref) <= 80 else task_ref[:77] + "..."
        raise UsageError(
            f"{shown!r} is not a task id or ARN",
            hint="give the id `residency run` printed (or its ARN); `residency tasks` lists them",
        )
    return task_ref


def describe_tasks(ecs: ECSClient, cluster: str, task_refs: Sequence[str]) -> list[dict[str, Any]]:
    """Describe tasks in batches of 100 (one call for up to 100), with their tags."""
    described: list[dict[str, Any]] = []
    with aws_errors("describing tasks"):
        for start in range(0, len(task_refs), DESCRIBE_BATCH):
            batch = list(task_refs[start : start + DESCRIBE_BATCH])
            response = ecs.describe_tasks(cluster=cluster, tasks=batch, include=["TAGS"])
            described.extend(response.get("tasks", []))  # type: ignore[arg-type]
    return described


# The real clock, looked up at each call (so a test that patches `time` is honoured).
def monotonic() -> float:
    return time.monotonic()


def real_sleep(seconds: float) -> None:
    time.sleep(seconds)


def wall_clock() -> float:
    return time.time()


@dataclass
class Deadline:
    """When waiting gives up; `None` seconds means never."""

    now: Clock
    seconds: float | None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.now()

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.now() - self.started >= self.seconds

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - (self.now() - self.started))


# --- the poll policy ------------------------------------------------------------------


@dataclass(frozen=True)
class PollPolicy:
    """The one policy of every waiting loop.

    DescribeTasks: at most once per `describe_floor`; after `quiet_grace` seconds without a
    change, `factor` times less often, down to once per `describe_ceiling`; throttled: the
    ceiling. While a log stream has a backlog, reading catches up first (DescribeTasks at most
    once per `log_maximum`). Logs: every `log_minimum` while lines arrive, `factor` times
    slower after each empty poll up to `log_maximum`; no pause while a stream has a backlog;
    throttled: `log_maximum`.
    """

    describe_floor: float = DESCRIBE_FLOOR_SECONDS
    describe_ceiling: float = 10.0
    quiet_grace: float = 20.0
    log_minimum: float = 0.25
    log_maximum: float = 2.0
    factor: float = 1.5

    def next_log_interval(
        self, current: float, *, new_events: bool, throttled: bool = False, behind: bool = False
    ) -> float:
        if throttled:
            return self.log_maximum
        if behind:
            return 0.0
        if new_events:
            return self.log_minimum
        return min(self.log_maximum, max(current, self.log_minimum) * self.factor)


DEFAULT_POLICY = PollPolicy()


@dataclass
class _Pace:
    """Where the loop stands against its policy: when it last described, how often it
    describes now, how long logs wait."""

    policy: PollPolicy
    last_describe: float
    quiet_since: float
    describe_interval: float = 0.0
    log_interval: float = 0.0

    def __post_init__(self) -> None:
        self.describe_interval = self.policy.describe_floor
        self.log_interval = self.policy.log_minimum

    def describe_due(self, moment: float, behind: bool) -> bool:
        wait = self.describe_interval
        if behind:
            wait = max(wait, self.policy.log_maximum)
        return moment - self.last_describe >= wait

    def described(self, moment: float, *, changed: bool, throttled: bool) -> None:
        self.last_describe = moment
        if throttled:
            self.describe_interval = self.policy.describe_ceiling
            self.quiet_since = moment
        elif changed:
            self.describe_interval = self.policy.describe_floor
            self.quiet_since = moment
        elif moment - self.quiet_since >= self.policy.quiet_grace:
            self.describe_interval = min(
                self.policy.describe_ceiling, self.describe_interval * self.policy.factor
            )

    def pause(self, moment: float, follower: LogFollower | None, new_events: bool) -> float:
        if follower is None:
            return max(0.0, self.last_describe + self.describe_interval - moment)
        self.log_interval = self.policy.next_log_interval(
            self.log_interval,
            new_events=new_events,
            throttled=follower.throttled,
            behind=follower.behind,
        )
        # Following logs, the tick is the log interval (DescribeTasks goes when it is due).
        return self.log_interval


# --- what the loop knows of a task ----------------------------------------------------


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
    misses: int = 0
    # The task's awslogs stream of the workload's container: (group, stream).
    stream: tuple[str, str] | None = None
    # When its host's agent was first seen disconnected (engine clock), and, once that lasted
    # longer than the engine's `host_lost_after`, why the host is taken as lost.
    disconnected_since: float | None = None
    host_lost: str | None = None

    @property
    def status(self) -> str | None:
        return self.task.get("lastStatus")

    @property
    def gone(self) -> bool:
        """ECS no longer returns it (it stopped long ago)."""
        return self.misses >= FORGET_AFTER_MISSES

    @property
    def ended(self) -> bool:
        return self.gone or self.status in FINAL_STATUSES

    @property
    def settled(self) -> bool:
        """Nothing more to wait for: it ended, or its host is lost."""
        return self.ended or self.host_lost is not None

    def needs_verifying(self) -> bool:
        """Just placed (a host to read back), or just RUNNING (read it back once more)."""
        if self.violation is not None or not self.task.get("containerInstanceArn"):
            return False
        return self.host is None or (self.status == "RUNNING" and not self.verified_running)


Verify = Callable[[Sequence[Tracker]], None]
# Container instance ARNs -> whether each one's agent is connected (absent: ECS forgot it).
AgentCheck = Callable[[Sequence[str]], dict[str, bool]]


@dataclass
class WaitReport:
    """How a wait ended and what it cost."""

    finished: bool  # every task ended (or a violation ended the wait)
    trackers: Sequence[Tracker] = ()
    describe_calls: int = 0
    throttled_describes: int = 0
    follower: LogFollower | None = None

    @property
    def task(self) -> dict[str, Any] | None:
        """The (first) task as last described; None when ECS forgot it."""
        first = self.trackers[0] if self.trackers else None
        return None if first is None or first.gone else first.task

    @property
    def status(self) -> str | None:
        return None if self.task is None else self.task.get("lastStatus")

    @property
    def throttled_polls(self) -> int:
        """Log polls that were throttled."""
        return self.follower.throttle_count if self.follower else 0

    @property
    def events(self) -> int:
        return self.follower.events_read if self.follower else 0

    @property
    def log_api_calls(self) -> int:
        return self.follower.api_calls if self.follower else 0

    @property
    def drain_complete(self) -> bool | None:
        return self.follower.drain_complete if self.follower else None

    @property
    def missing_streams(self) -> list[LogStream]:
        return self.follower.missing_streams if self.follower else []


# --- the loop -------------------------------------------------------------------------


@dataclass
class Engine:
    """Waits for tasks to end: one DescribeTasks a tick for up to 100 of them, their hosts
    read back by `verify` as they are placed, their logs followed and drained."""

    ecs: ECSClient
    cluster: str
    sleep: Sleep = real_sleep
    now: Clock = monotonic
    wall: Callable[[], float] = wall_clock
    observer: Observer = field(default_factory=SilentObserver)
    policy: PollPolicy = DEFAULT_POLICY
    follower: LogFollower | None = None
    verify: Verify | None = None
    drain_grace: float = DRAIN_GRACE_SECONDS
    drain_max: float = DRAIN_MAX_SECONDS
    # Watch the agents of the hosts running the tasks (None: do not).
    agents: AgentCheck | None = None
    host_lost_after: float = HOST_LOST_AFTER_SECONDS
    # `run` and `attach` end at the first violation (exit 4); waiting on several runs goes
    # on with the others (the misplaced task is stopped all the same).
    stop_on_violation: bool = True
    # When the last DescribeTasks was answered (the describe floor counts from there).
    _answered: float = field(default=0.0, init=False, repr=False)

    def wait(
        self, trackers: Sequence[Tracker], timeout: float | None, *, described: bool = True
    ) -> WaitReport:
        """Until every task ended (then the logs are drained), the deadline passed, or (with
        `stop_on_violation`) a task was found misplaced. `described`: the trackers' tasks
        were just described, so the first DescribeTasks is due one interval from now.
        KeyboardInterrupt propagates; the tasks are left as they are."""
        deadline = Deadline(self.now, timeout)
        start = self.now()
        pace = _Pace(self.policy, last_describe=start if described else -1e18, quiet_since=start)
        report = WaitReport(finished=False, trackers=trackers, follower=self.follower)
        while True:
            moment = self.now()
            changed = False
            if pace.describe_due(moment, bool(self.follower and self.follower.behind)):
                report.describe_calls += 1
                self._answered = moment
                changed, throttled = self._refresh(trackers, moment)
                report.throttled_describes += throttled
                # Counted from the answer, not the request (nor the host read-back after
                # it): ECS never sees two calls closer than the floor, whatever its latency.
                pace.described(self._answered, changed=changed, throttled=throttled)
                if self.stop_on_violation and any(t.violation for t in trackers):
                    report.finished = True
                    return report
            if all(t.settled for t in trackers):
                self._drain(trackers)
                report.finished = True
                return report
            new_events = self._read_logs()
            if deadline.expired:
                return report
            pause = pace.pause(self.now(), self.follower, new_events or changed)
            remaining = deadline.remaining()
            self.sleep(pause if remaining is None else min(pause, remaining))

    def _refresh(self, trackers: Sequence[Tracker], moment: float) -> tuple[bool, bool]:
        """Describe the tasks still going; (whether a status changed, whether throttled)."""
        active = [t for t in trackers if not t.settled]
        if not active:
            return False, False
        try:
            found = describe_tasks(self.ecs, self.cluster, [t.arn for t in active])
        except AwsError as error:
            if error_code(error.__cause__ or error) not in THROTTLING_CODES:
                raise
            self._answered = self.now()
            return False, True
        self._answered = self.now()
        described = {str(t["taskArn"]): t for t in found}
        changed = False
        for tracker in active:
            task = described.get(tracker.arn)
            tracker.misses = 0 if task is not None else tracker.misses + 1
            if task is None:
                changed = changed or tracker.gone
                continue
            previous = tracker.status
            tracker.task = task
            if task.get("lastStatus") != previous:
                changed = True
                self.observer.status(task, previous)
        unverified = [t for t in active if t.needs_verifying()]
        if unverified and self.verify is not None:
            for tracker in unverified:
                tracker.verified_running = tracker.status == "RUNNING"
            self.verify(unverified)
        return changed or self._watch_agents(active, moment), False

    def _watch_agents(self, active: Sequence[Tracker], moment: float) -> bool:
        """One DescribeContainerInstances for the hosts of the RUNNING tasks: a host whose
        agent stays disconnected longer than `host_lost_after` is lost (a brief reconnect
        resets the clock). True while a host is disconnected: the loop keeps looking at its
        fastest pace until the host is back or lost."""
        running = [
            t
            for t in active
            if t.status == "RUNNING" and t.task.get("containerInstanceArn") and not t.violation
        ]
        if self.agents is None or not running:
            return False
        connected = self.agents(
            list(dict.fromkeys(str(t.task["containerInstanceArn"]) for t in running))
        )
        disconnected = False
        for tracker in running:
            if connected.get(str(tracker.task["containerInstanceArn"]), False):
                tracker.disconnected_since = None
                continue
            disconnected = True
            if tracker.disconnected_since is None:
                tracker.disconnected_since = moment
            if moment - tracker.disconnected_since >= self.host_lost_after:
                tracker.host_lost = _lost_message(tracker, moment - tracker.disconnected_since)
        return disconnected

    def _read_logs(self) -> bool:
        if self.follower is None:
            return False
        events = self.follower.poll()
        for event in events:
            self.observer.log(event)
        return bool(events)

    def _drain(self, trackers: Sequence[Tracker]) -> None:
        """Every remaining event. A task that stopped longer ago than the grace period (or
        that ECS forgot) gets no grace: its logs were complete long ago."""
        if self.follower is None:
            return
        from residency_cli.logs import drain

        ages = [_seconds_since(t.task.get("stoppedAt"), self.wall) for t in trackers]
        recent = [age for age in ages if age is None or age <= self.drain_grace]
        grace = self.drain_grace if recent and not all(t.gone for t in trackers) else 0.0
        for event in drain(
            self.follower,
            sleep=self.sleep,
            now=self.now,
            grace_seconds=grace,
            max_seconds=self.drain_max,
            policy=self.policy,
        ):
            self.observer.log(event)


def _lost_message(tracker: Tracker, seconds: float) -> str:
    host = tracker.host
    where = (host.hostname or host.instance_id) if host else None
    where = where or str(tracker.task.get("containerInstanceArn", "")).rsplit("/", 1)[-1]
    return (
        f"host {where} is unreachable: its ECS agent has been disconnected for "
        f"{int(seconds)} s (ECS Anywhere leaves its tasks RUNNING)"
    )


def _seconds_since(value: Any, wall: Callable[[], float]) -> float | None:
    if isinstance(value, datetime):
        return wall() - value.timestamp()
    if isinstance(value, int | float):
        return wall() - float(value)
    return None


# --- from a described task to its outcome ----------------------------------------------


def iso_time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value) if value else None


# stopCodes that mean the container never ran to completion whatever exit code it reports.
_NOT_STARTED_CODES = ("TaskFailedToStart", "SpotInterruption", "TerminationNotice")


def _ended_outcome(task: Mapping[str, Any], exit_code: Any, reason: str | None) -> Outcome:
    if str(reason or "").startswith(VIOLATION_REASON_PREFIX):
        return Outcome.VIOLATION
    if task.get("lastStatus") not in FINAL_STATUSES:
        return Outcome.DISPATCHED
    if exit_code is None or task.get("stopCode") in _NOT_STARTED_CODES:
        return Outcome.NOT_STARTED
    return Outcome.SUCCEEDED if exit_code == 0 else Outcome.FAILED


def task_outcome(
    config: Config,
    name: str,
    task: Mapping[str, Any],
    container: str | None,
    *,
    host: PlacedHost | None,
    run_id: str | None,
    stream: tuple[str, str] | None,
    outcome: Outcome | None = None,
    message: str | None = None,
) -> TaskOutcome:
    """The outcome of one described task (ended -> succeeded/failed/not_started); `outcome`
    overrides what the task alone says (a violation, a timeout, an interruption)."""
    workload = config.workload(name)
    chosen: Mapping[str, Any] = next(
        (
            c
            for c in task.get("containers") or []
            if container is None or c.get("name") == container
        ),
        {},
    )
    exit_code = chosen.get("exitCode")
    reason = task.get("stoppedReason") or chosen.get("reason") or None
    return TaskOutcome(
        workload=name,
        locations=list(workload.locations),
        cluster=config.cluster,
        run_id=run_id,
        outcome=outcome or _ended_outcome(task, exit_code, reason),
        task_arn=task.get("taskArn"),
        host=host,
        status=task.get("lastStatus"),
        exit_code=exit_code,
        stop_code=task.get("stopCode"),
        stopped_reason=reason or (message if outcome is Outcome.VIOLATION else None),
        log_group=stream[0] if stream else None,
        log_stream=stream[1] if stream else None,
        started_at=iso_time(task.get("startedAt")),
        stopped_at=iso_time(task.get("stoppedAt")),
        message=message,
    )


def tracker_outcome(
    config: Config, tracker: Tracker, run_id: str | None, pending: Outcome | None
) -> TaskOutcome:
    """A tracked task's outcome once waiting is over; `pending` is what a task that has not
    ended gets (timeout, interrupted)."""
    outcome = Outcome.VIOLATION if tracker.violation else None
    if outcome is None and not tracker.ended and tracker.host_lost:
        outcome = Outcome.HOST_LOST
    if outcome is None and not tracker.ended and pending is not None:
        outcome = pending
    return task_outcome(
        config,
        tracker.workload,
        tracker.task,
        config.workload(tracker.workload).container,
        host=tracker.host,
        run_id=run_id,
        stream=tracker.stream,
        outcome=outcome,
        message=tracker.violation or (tracker.host_lost if not tracker.ended else None),
    )
