"""The engine's one loop without I/O: batching, pacing, ends (STOPPED, DELETED, forgotten),
throttling, verification hooks, deadlines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from botocore.exceptions import ClientError

from residency_cli.waiting import Engine, PollPolicy, Tracker
from tests.support.clock import FakeClock

ARN = "arn:aws:ecs:eu-central-1:123456789012:task/acme-etl/"


@dataclass
class Ecs:
    """DescribeTasks: each task follows its own script of statuses (None: ECS forgot it);
    the last entry repeats. `throttle` lists the call numbers (0-based) that are throttled."""

    scripts: dict[str, list[str | None]]
    throttle: set[int] = field(default_factory=set)
    batches: list[int] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    def describe_tasks(self, **params: Any) -> dict[str, Any]:
        n = len(self.batches)
        self.batches.append(len(params["tasks"]))
        if n in self.throttle:
            error = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}
            raise ClientError(error, "DescribeTasks")  # type: ignore[arg-type]
        tasks = []
        for arn in params["tasks"]:
            script = self.scripts[arn]
            k = self.seen[arn] = self.seen.get(arn, -1) + 1
            status = script[min(k, len(script) - 1)]
            if status is not None:
                tasks.append({"taskArn": arn, "lastStatus": status, "containerInstanceArn": "ci"})
        return {"tasks": tasks, "failures": []}


def trackers(count: int, status: str = "PENDING") -> list[Tracker]:
    return [
        Tracker(f"{ARN}{i}", {"taskArn": f"{ARN}{i}", "lastStatus": status}, "w")
        for i in range(count)
    ]


def engine(ecs: Ecs, clock: FakeClock, **options: Any) -> Engine:
    return Engine(ecs, "acme-etl", sleep=clock.sleep, now=clock.now, **options)  # type: ignore[arg-type]


def test_one_describe_per_tick_for_up_to_100_tasks() -> None:
    tasks = trackers(150)
    ecs = Ecs({t.arn: ["RUNNING", "RUNNING", "STOPPED"] for t in tasks})
    clock = FakeClock()
    report = engine(ecs, clock).wait(tasks, None)
    assert report.finished and all(t.status == "STOPPED" for t in tasks)
    assert ecs.batches == [100, 50, 100, 50, 100, 50]  # three ticks, two calls each
    assert report.describe_calls == 3 and all(pause >= 1.0 for pause in clock.sleeps)


def test_deleted_ends_the_wait_like_stopped() -> None:
    tasks = trackers(1)
    ecs = Ecs({tasks[0].arn: ["RUNNING", "DELETED"]})
    report = engine(ecs, FakeClock()).wait(tasks, 60)
    assert report.finished and tasks[0].ended and tasks[0].status == "DELETED"


def test_a_task_ecs_forgot_ends_after_three_misses() -> None:
    tasks = trackers(1)
    ecs = Ecs({tasks[0].arn: ["RUNNING", None]})
    report = engine(ecs, FakeClock()).wait(tasks, 60)
    assert report.finished and tasks[0].gone and report.task is None
    assert report.describe_calls == 4  # RUNNING, then three misses in a row


def test_throttled_describe_backs_off_and_goes_on() -> None:
    tasks = trackers(1)
    ecs = Ecs({tasks[0].arn: ["RUNNING", "RUNNING", "STOPPED"]}, throttle={0})
    clock = FakeClock()
    policy = PollPolicy(describe_floor=1.0, describe_ceiling=8.0)
    report = engine(ecs, clock, policy=policy).wait(tasks, None)
    assert report.finished and report.throttled_describes == 1
    assert clock.sleeps[1] == 8.0  # after the throttled call: the ceiling


def test_quiet_tasks_are_described_less_often_up_to_the_ceiling() -> None:
    tasks = trackers(1, "RUNNING")
    ecs = Ecs({tasks[0].arn: ["RUNNING"]})
    clock = FakeClock()
    policy = PollPolicy(describe_floor=1.0, describe_ceiling=10.0, quiet_grace=20.0)
    report = engine(ecs, clock, policy=policy).wait(tasks, 300)
    assert not report.finished and clock.t == 300
    assert max(clock.sleeps) == 10.0 and clock.sleeps[:20] == [1.0] * 20
    assert report.describe_calls < 60  # about 300 at the floor


def test_verify_sees_each_task_when_placed_and_again_when_running() -> None:
    tasks = trackers(2)
    ecs = Ecs({t.arn: ["PENDING", "RUNNING", "STOPPED"] for t in tasks})
    seen: list[list[str]] = []

    def verify(batch: Sequence[Tracker]) -> None:
        seen.append([t.status or "" for t in batch])
        for tracker in batch:
            tracker.host = object()  # type: ignore[assignment]

    engine(ecs, FakeClock(), verify=verify).wait(tasks, None, described=False)
    assert seen == [["PENDING", "PENDING"], ["RUNNING", "RUNNING"]]


def test_describe_calls_are_a_floor_apart_from_answer_to_request() -> None:
    # ECS answers after 0.3 s and the hosts are read back for 0.4 s more: the next
    # DescribeTasks still goes a full second after the answer, never after the request.
    tasks = trackers(1)
    clock = FakeClock()
    requests: list[tuple[float, float]] = []  # (sent, answered)

    @dataclass
    class SlowEcs(Ecs):
        def describe_tasks(self, **params: Any) -> dict[str, Any]:
            sent = clock.t
            clock.t += 0.3
            requests.append((sent, clock.t))
            return super().describe_tasks(**params)

    def verify(batch: Sequence[Tracker]) -> None:
        clock.t += 0.4
        for tracker in batch:
            tracker.host = object()  # type: ignore[assignment]

    ecs = SlowEcs({tasks[0].arn: ["PENDING", "RUNNING", "RUNNING", "STOPPED"]})
    engine(ecs, clock, verify=verify).wait(tasks, None, described=False)
    assert len(requests) == 4
    gaps = [sent - answered for (_, answered), (sent, _) in pairwise(requests)]
    assert all(abs(gap - 1.0) < 1e-9 for gap in gaps), gaps


def test_a_violation_ends_the_wait_at_once_unless_told_otherwise() -> None:
    tasks = trackers(2)
    ecs = Ecs({t.arn: ["RUNNING"] for t in tasks})

    def verify(batch: Sequence[Tracker]) -> None:
        batch[0].violation = "residency: host x is in y, outside z"

    report = engine(ecs, FakeClock(), verify=verify).wait(tasks, 60)
    assert report.finished and report.describe_calls == 1
    clock = FakeClock()
    again = trackers(2)
    ecs = Ecs({t.arn: ["RUNNING"] for t in again})
    report = engine(ecs, clock, verify=verify, stop_on_violation=False).wait(again, 5)
    assert not report.finished and clock.t == 5


def test_a_host_disconnected_past_the_grace_is_lost_and_ends_the_wait() -> None:
    tasks = trackers(1, "RUNNING")
    ecs = Ecs({tasks[0].arn: ["RUNNING"]})
    clock = FakeClock()
    asked: list[list[str]] = []

    def agents(arns: Sequence[str]) -> dict[str, bool]:
        asked.append(list(arns))
        return {"ci": False}

    report = engine(ecs, clock, agents=agents, host_lost_after=30).wait(tasks, 600)
    assert report.finished and tasks[0].host_lost and not tasks[0].ended
    assert 30 <= clock.t <= 32 and all(batch == ["ci"] for batch in asked)
    assert "disconnected for 30 s" in str(tasks[0].host_lost)


def test_a_brief_reconnect_is_not_a_lost_host() -> None:
    tasks = trackers(1, "RUNNING")
    ecs = Ecs({tasks[0].arn: ["RUNNING"] * 50 + ["STOPPED"]})
    clock = FakeClock()

    def agents(arns: Sequence[str]) -> dict[str, bool]:
        return {"ci": int(clock.t) % 20 != 19}  # disconnected for a moment every 20 s

    report = engine(ecs, clock, agents=agents, host_lost_after=5).wait(tasks, 600)
    assert report.finished and tasks[0].host_lost is None and tasks[0].status == "STOPPED"
