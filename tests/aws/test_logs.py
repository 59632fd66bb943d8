"""Log reading and following against moto's ECS and CloudWatch Logs, with time injected.

moto's GetLogEvents returns the same nextForwardToken when there is nothing new (DESIGN.md),
like AWS. Its task lifecycle is pinned to "manual" so that a task stops when the test says.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from residency_cli.errors import AwsError, UsageError
from residency_cli.logs import LogEvent, LogFollower, read_logs, tail_task, task_streams
from tests.support.clock import FakeClock
from tests.support.fake_aws import throttling
from tests.support.moto_cluster import REGION, MotoCluster
from tests.support.moto_logs import GROUP, now_ms, put, register, start_task


@pytest.fixture
def logs(moto_cluster: MotoCluster) -> Any:
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName=GROUP)
    return client


class ThrottlingLogs:
    """A logs client whose calls number `throttled` (1-based) fail with ThrottlingException."""

    def __init__(self, inner: Any, throttled: set[int]) -> None:
        self.inner = inner
        self.throttled = throttled
        self.calls = 0

    def get_log_events(self, **params: Any) -> Any:
        self.calls += 1
        if self.calls in self.throttled:
            raise throttling()
        return self.inner.get_log_events(**params)


def tail(
    cluster: MotoCluster, logs: Any, task_arn: str, clock: FakeClock
) -> tuple[list[LogEvent], Any]:
    _, streams = task_streams(cluster.ecs, cluster.config.cluster, task_arn)
    shown: list[LogEvent] = []
    result = tail_task(
        cluster.ecs,
        logs,
        cluster.config.cluster,
        task_arn,
        streams,
        sleep=clock.sleep,
        now=clock.now,
        on_event=shown.append,
    )
    return shown, result


def stop_at(cluster: MotoCluster, task_arn: str, seconds: float) -> Any:
    def hook(clock: FakeClock) -> None:
        if clock.t >= seconds:
            cluster.ecs.stop_task(cluster=cluster.config.cluster, task=task_arn)

    return hook


# --------------------------------------------------------------------------- locating


def test_task_streams_from_the_task_definition(
    moto_cluster: MotoCluster, manual_tasks: None
) -> None:
    register(moto_cluster.ecs, containers=("app", "sidecar"))
    arn = start_task(moto_cluster)
    task_id = arn.rsplit("/", 1)[-1]
    task, streams = task_streams(moto_cluster.ecs, moto_cluster.config.cluster, task_id)
    assert task["taskArn"] == arn
    assert [(s.container, s.group, s.stream, s.region) for s in streams] == [
        ("app", GROUP, f"etl/app/{task_id}", REGION),
        ("sidecar", GROUP, f"etl/sidecar/{task_id}", REGION),
    ]


def test_task_without_log_configuration(moto_cluster: MotoCluster, manual_tasks: None) -> None:
    register(moto_cluster.ecs, "quiet", log=False)
    arn = start_task(moto_cluster, "quiet")
    with pytest.raises(UsageError, match="has no awslogs log configuration") as raised:
        task_streams(moto_cluster.ecs, moto_cluster.config.cluster, arn)
    assert raised.value.exit_code == 2 and "awslogs-stream-prefix" in str(raised.value)


def test_unknown_task(moto_cluster: MotoCluster) -> None:
    with pytest.raises(AwsError, match="task 0000 not found in cluster acme-etl"):
        task_streams(moto_cluster.ecs, moto_cluster.config.cluster, "0000")


# --------------------------------------------------------------------------- following


def test_short_task_every_line_including_the_last(
    moto_cluster: MotoCluster, logs: Any, manual_tasks: None
) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    stream = f"etl/app/{arn.rsplit('/', 1)[-1]}"
    base = now_ms()
    put(logs, stream, [(base + i, f"line {i}") for i in range(4)])
    moto_cluster.ecs.stop_task(cluster=moto_cluster.config.cluster, task=arn)
    written = False

    def last_line_arrives_late(clock: FakeClock) -> None:  # after STOPPED, within the grace
        nonlocal written
        if clock.t >= 1.0 and not written:
            written = True
            put(logs, stream, [(base + 4, "line 4")])

    clock = FakeClock(on_sleep=last_line_arrives_late)
    shown, result = tail(moto_cluster, logs, arn, clock)
    assert [e.message for e in shown] == [f"line {i}" for i in range(5)]
    assert result.status == "STOPPED" and result.drain_complete is True
    assert clock.t < 5.0


def test_long_task_lines_while_running(
    moto_cluster: MotoCluster, logs: Any, manual_tasks: None
) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    stream = f"etl/app/{arn.rsplit('/', 1)[-1]}"
    base = now_ms()
    lines = [(base + i // 3, f"line {i}") for i in range(30_000)]  # 3 lines per millisecond
    chunks = [lines[i : i + 2_500] for i in range(0, len(lines), 2_500)]

    def produce(clock: FakeClock) -> None:
        if chunks:
            put(logs, stream, chunks.pop(0))
        elif clock.t > 5.0:
            moto_cluster.ecs.stop_task(cluster=moto_cluster.config.cluster, task=arn)

    clock = FakeClock(on_sleep=produce)
    shown, result = tail(moto_cluster, logs, arn, clock)
    assert [(e.timestamp, e.message) for e in shown] == lines
    assert result.events == 30_000
    # One GetLogEvents per poll; each poll here returned at most 2,500 lines.
    assert result.log_api_calls < 40


def test_same_timestamp_lines(moto_cluster: MotoCluster, logs: Any, manual_tasks: None) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    stream = f"etl/app/{arn.rsplit('/', 1)[-1]}"
    ts = now_ms()
    put(logs, stream, [(ts, "same"), (ts, "same"), (ts, "other")])
    phases = [[(ts, "same"), (ts, "third same")], [(ts, "same"), (ts + 1, "next")]]

    def produce(clock: FakeClock) -> None:
        if phases:
            put(logs, stream, phases.pop(0))
        else:
            moto_cluster.ecs.stop_task(cluster=moto_cluster.config.cluster, task=arn)

    shown, _ = tail(moto_cluster, logs, arn, FakeClock(on_sleep=produce))
    assert [e.message for e in shown] == [
        "same",
        "same",
        "other",
        "same",
        "third same",
        "same",
        "next",
    ]


def test_empty_stream(moto_cluster: MotoCluster, logs: Any, manual_tasks: None) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    logs.create_log_stream(logGroupName=GROUP, logStreamName=f"etl/app/{arn.rsplit('/', 1)[-1]}")
    clock = FakeClock(on_sleep=stop_at(moto_cluster, arn, 1.0))
    shown, result = tail(moto_cluster, logs, arn, clock)
    assert shown == [] and result.drain_complete is True and result.missing_streams == []
    assert clock.t < 10.0


def test_stream_not_yet_created_when_following_starts(
    moto_cluster: MotoCluster, logs: Any, manual_tasks: None
) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    stream = f"etl/app/{arn.rsplit('/', 1)[-1]}"
    base = now_ms()

    def produce(clock: FakeClock) -> None:
        if clock.t >= 1.5 and not logs.describe_log_streams(logGroupName=GROUP)["logStreams"]:
            put(logs, stream, [(base, "hello"), (base + 1, "bye")])
        if clock.t >= 4.0:
            moto_cluster.ecs.stop_task(cluster=moto_cluster.config.cluster, task=arn)

    shown, result = tail(moto_cluster, logs, arn, FakeClock(on_sleep=produce))
    assert [e.message for e in shown] == ["hello", "bye"]
    assert result.missing_streams == []


def test_stream_never_created_is_reported_not_an_error(
    moto_cluster: MotoCluster, logs: Any, manual_tasks: None
) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    clock = FakeClock(on_sleep=stop_at(moto_cluster, arn, 1.0))
    shown, result = tail(moto_cluster, logs, arn, clock)
    assert shown == [] and [s.container for s in result.missing_streams] == ["app"]


def test_throttling_injected(moto_cluster: MotoCluster, logs: Any, manual_tasks: None) -> None:
    register(moto_cluster.ecs)
    arn = start_task(moto_cluster)
    stream = f"etl/app/{arn.rsplit('/', 1)[-1]}"
    base = now_ms()
    batches = [[(base + 10 * b + i, f"{b}.{i}") for i in range(5)] for b in range(6)]
    expected = [m for batch in batches for _, m in batch]

    def produce(clock: FakeClock) -> None:
        if batches:
            put(logs, stream, batches.pop(0))
        else:
            moto_cluster.ecs.stop_task(cluster=moto_cluster.config.cluster, task=arn)

    flaky = ThrottlingLogs(logs, throttled={1, 2, 4, 5, 6, 9})
    clock = FakeClock(on_sleep=produce)
    shown, result = tail(moto_cluster, flaky, arn, clock)
    assert [e.message for e in shown] == expected
    assert result.throttled_polls == 6
    assert 2.0 in clock.sleeps  # backed off to the maximum interval


def test_rejected_token_on_moto_restarts_without_doubling(logs: Any) -> None:
    from tests.support.fake_aws import stream as make_stream

    s = make_stream(group=GROUP)
    ts = now_ms()
    put(logs, s.stream, [(ts, "a"), (ts, "a"), (ts + 1, "b")])
    follower = LogFollower(logs, [s])
    first = follower.poll()
    put(logs, s.stream, [(ts + 1, "b"), (ts + 2, "c")])
    follower._cursors[0].token = "not-a-token"
    assert follower.poll() == []
    second = follower.poll()
    assert [e.message for e in first + second] == ["a", "a", "b", "b", "c"]


def test_read_logs_since(logs: Any) -> None:
    from tests.support.fake_aws import stream as make_stream

    s = make_stream(group=GROUP)
    base = now_ms()
    put(
        logs,
        s.stream,
        [(base - 3_600_000, "an hour ago"), (base - 1000, "a second ago"), (base, "now")],
    )
    events = list(read_logs(logs, [s], since_ms=base - 600_000))
    assert [e.message for e in events] == ["a second ago", "now"]
    assert next(e.message for e in read_logs(logs, [s], since_ms=None)) == "an hour ago"
