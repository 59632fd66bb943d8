"""logs.py without I/O: locating streams, the follower's reading rules, drain, tail_task."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from residency_cli.errors import AwsError, UsageError
from residency_cli.logs import (
    AWSLOGS_HINT,
    LogEvent,
    LogFollower,
    LogStream,
    drain,
    format_timestamp,
    locate_streams,
    read_logs,
    tail_task,
    task_id_of,
    task_streams,
)
from residency_cli.waiting import PollPolicy
from tests.support.clock import FakeClock
from tests.support.fake_aws import FakeEcs, FakeLogs, client_error, stream, throttling

TASK_ARN = "arn:aws:ecs:eu-central-1:123456789012:task/acme-etl/0123456789abcdef"


def awslogs(
    group: str = "/ecs/etl", prefix: str | None = "etl", region: str | None = "eu-central-1"
) -> dict[str, Any]:
    options = {"awslogs-group": group}
    if prefix is not None:
        options["awslogs-stream-prefix"] = prefix
    if region is not None:
        options["awslogs-region"] = region
    return {"logDriver": "awslogs", "options": options}


def definition(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "taskDefinitionArn": "arn:aws:ecs:eu-central-1:123456789012:task-definition/etl:3",
        "family": "etl",
        "containerDefinitions": list(containers),
    }


def messages(events: list[LogEvent]) -> list[str]:
    return [e.message for e in events]


# --------------------------------------------------------------------------- locating


def test_locate_streams_builds_prefix_container_task_id() -> None:
    streams = locate_streams(definition({"name": "app", "logConfiguration": awslogs()}), TASK_ARN)
    assert streams == [
        LogStream(
            container="app",
            group="/ecs/etl",
            stream="etl/app/0123456789abcdef",
            region="eu-central-1",
        )
    ]


def test_locate_streams_every_awslogs_container_in_order_skipping_others() -> None:
    streams = locate_streams(
        definition(
            {"name": "app", "logConfiguration": awslogs(region=None)},
            {"name": "proxy"},
            {"name": "sidecar", "logConfiguration": awslogs(group="/ecs/side", prefix="s")},
        ),
        "0123",
    )
    assert [(s.container, s.group, s.stream, s.region) for s in streams] == [
        ("app", "/ecs/etl", "etl/app/0123", None),
        ("sidecar", "/ecs/side", "s/sidecar/0123", "eu-central-1"),
    ]


def test_locate_streams_without_awslogs_says_what_to_add() -> None:
    with pytest.raises(UsageError) as raised:
        locate_streams(
            definition({"name": "app", "logConfiguration": {"logDriver": "json-file"}}), TASK_ARN
        )
    error = raised.value
    assert error.exit_code == 2
    assert "has no awslogs log configuration" in error.message
    assert "task-definition/etl:3" in error.message and "app: json-file" in error.message
    assert error.hint == AWSLOGS_HINT
    for option in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
        assert option in str(error)


def test_locate_streams_with_no_log_configuration_at_all() -> None:
    with pytest.raises(UsageError, match="no awslogs log configuration"):
        locate_streams(definition({"name": "app"}), TASK_ARN)


def test_locate_streams_requires_a_stream_prefix() -> None:
    with pytest.raises(UsageError, match="awslogs-stream-prefix") as raised:
        locate_streams(
            definition({"name": "app", "logConfiguration": awslogs(prefix=None)}), TASK_ARN
        )
    assert "'app'" in raised.value.message


@pytest.mark.parametrize(
    ("arn", "task_id"),
    [
        (TASK_ARN, "0123456789abcdef"),
        ("arn:aws:ecs:us-east-1:123456789012:task/abc", "abc"),
        ("abc", "abc"),
    ],
)
def test_task_id_of(arn: str, task_id: str) -> None:
    assert task_id_of(arn) == task_id


def test_task_streams_describes_task_and_definition() -> None:
    ecs = FakeEcs(
        TASK_ARN, ["RUNNING"], definition=definition({"name": "app", "logConfiguration": awslogs()})
    )
    task, streams = task_streams(ecs, "acme-etl", "0123456789abcdef")  # type: ignore[arg-type]
    assert task["taskArn"] == TASK_ARN
    assert [s.stream for s in streams] == ["etl/app/0123456789abcdef"]


def test_task_streams_unknown_task_is_aws_not_found() -> None:
    ecs = FakeEcs(TASK_ARN, [])
    with pytest.raises(AwsError, match="task nope not found in cluster acme-etl") as raised:
        task_streams(ecs, "acme-etl", "nope")  # type: ignore[arg-type]
    assert raised.value.exit_code == 7


def test_task_streams_refuses_what_cannot_be_a_task_before_calling_aws() -> None:
    ecs = FakeEcs(TASK_ARN, [])
    with pytest.raises(UsageError, match=r"'\.\./x' is not a task id or ARN") as raised:
        task_streams(ecs, "acme-etl", "../x")  # type: ignore[arg-type]
    assert raised.value.exit_code == 2


# --------------------------------------------------------------------------- events


def test_event_json_shape_is_iso_utc_with_milliseconds() -> None:
    event = LogEvent(timestamp=1_714_564_800_007, container="app", message="hello")
    assert event.to_json() == {
        "timestamp": "2024-05-01T12:00:00.007Z",
        "container": "app",
        "message": "hello",
    }


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_format_timestamp_round_trips(milliseconds: int) -> None:
    text = format_timestamp(milliseconds)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert round(parsed.timestamp() * 1000) == milliseconds


# --------------------------------------------------------------------------- poll policy


def test_poll_policy_is_adaptive_and_bounded() -> None:
    policy = PollPolicy(log_minimum=0.25, log_maximum=2.0, factor=1.5)
    interval = policy.log_minimum
    seen = []
    for _ in range(10):
        interval = policy.next_log_interval(interval, new_events=False)
        seen.append(interval)
    assert seen[0] == pytest.approx(0.375)
    assert max(seen) == 2.0 and seen == sorted(seen)
    assert policy.next_log_interval(2.0, new_events=True) == 0.25
    assert policy.next_log_interval(0.25, new_events=True, behind=True) == 0.0
    assert policy.next_log_interval(0.25, new_events=True, behind=True, throttled=True) == 2.0


# --------------------------------------------------------------------------- the follower


def test_one_call_per_stream_per_poll_and_merged_in_timestamp_order() -> None:
    logs = FakeLogs()
    a, b = stream("a"), stream("b")
    logs.put(a, (1, "a1"), (3, "a3"), (3, "a3bis"))
    logs.put(b, (2, "b2"), (3, "b3"), (5, "b5"))
    follower = LogFollower(logs, [a, b])  # type: ignore[arg-type]
    events = follower.poll()
    assert len(logs.calls) == 2 and follower.api_calls == 2
    # Same timestamp: stream order (a before b), then each stream's own order.
    assert messages(events) == ["a1", "b2", "a3", "a3bis", "b3", "b5"]
    assert [e.container for e in events] == ["a", "b", "a", "a", "b", "b"]
    assert not follower.exhausted
    assert follower.poll() == []
    assert follower.exhausted and follower.api_calls == 4


def test_streams_added_with_another_client_are_read_with_it_and_merged() -> None:
    """`run W1 W2 ...` whose workloads log to two regions: one follower, one client each."""
    here, there = FakeLogs(), FakeLogs()
    a, b = stream("a"), stream("b")
    here.put(a, (1, "a1"), (4, "a4"))
    there.put(b, (2, "b2"))
    follower = LogFollower(here, [a])  # type: ignore[arg-type]
    follower.add(there, [b])  # type: ignore[arg-type]
    assert messages(follower.poll()) == ["a1", "b2", "a4"]
    assert (len(here.calls), len(there.calls), follower.api_calls) == (1, 1, 2)
    assert follower.streams == [a, b]


def test_same_timestamp_lines_are_neither_dropped_nor_doubled_across_polls() -> None:
    logs = FakeLogs()
    s = stream()
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    logs.put(s, (100, "x"), (100, "x"))
    first = follower.poll()
    logs.put(s, (100, "x"), (100, "y"), (101, "z"))
    second = follower.poll()
    assert messages(first) == ["x", "x"]
    assert messages(second) == ["x", "y", "z"]
    assert follower.poll() == [] and follower.exhausted


def test_forward_token_is_used_and_unchanged_token_means_exhausted() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "one"))
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    follower.poll()
    follower.poll()
    assert "nextToken" not in logs.calls[0]
    assert logs.calls[1]["nextToken"] == "f/1"
    assert follower.exhausted


def test_an_empty_page_with_a_new_token_is_not_the_end() -> None:
    logs = FakeLogs(empty_pages_before_end=2)
    s = stream()
    logs.put(s, (1, "one"), (2, "two"))
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    assert follower.poll() == [] and not follower.exhausted and follower.behind
    assert follower.poll() == [] and not follower.exhausted
    assert messages(follower.poll()) == ["one", "two"]
    assert follower.poll() == [] and follower.exhausted


def test_a_full_page_means_behind() -> None:
    logs = FakeLogs(page=3)
    s = stream()
    logs.put(s, *[(i, str(i)) for i in range(7)])
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    follower.poll()
    assert not follower.behind  # 3 < PAGE_EVENTS: the fake's small page is not "full"
    logs_full = FakeLogs()
    logs_full.put(s, *[(i, "m") for i in range(10_001)])
    full = LogFollower(logs_full, [s])  # type: ignore[arg-type]
    assert len(full.poll()) == 10_000 and full.behind
    assert len(full.poll()) == 1 and not full.behind


def test_stream_not_yet_created_is_no_events_then_reads_from_its_start() -> None:
    logs = FakeLogs()
    s = stream()
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    assert follower.poll() == []
    assert follower.missing_streams == [s] and follower.exhausted
    logs.put(s, (5, "first"), (6, "second"))
    assert messages(follower.poll()) == ["first", "second"]
    assert follower.missing_streams == []


def test_throttling_is_no_events_and_a_flag_then_it_resumes() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"), (2, "b"))
    logs.errors.append(throttling())
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    assert follower.poll() == []
    assert follower.throttled and follower.throttle_count == 1 and not follower.exhausted
    assert messages(follower.poll()) == ["a", "b"]
    assert not follower.throttled


def test_other_aws_errors_are_translated() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"))
    logs.errors.append(client_error("AccessDeniedException", message="no logs:GetLogEvents"))
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    with pytest.raises(AwsError, match="reading log stream etl/app/t1 in /ecs/residency") as raised:
        follower.poll()
    assert raised.value.exit_code == 7 and "AccessDeniedException" in str(raised.value)


def test_a_rejected_token_restarts_at_the_last_timestamp_without_doubling() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"), (2, "b"), (2, "b"), (2, "c"))
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    first = follower.poll()
    logs.put(s, (2, "c"), (3, "d"))
    logs.errors.append(
        client_error("InvalidParameterException", message="The specified nextToken is invalid.")
    )
    assert follower.poll() == []
    second = follower.poll()
    assert logs.calls[-1]["startTime"] == 2 and "nextToken" not in logs.calls[-1]
    assert messages(first) + messages(second) == ["a", "b", "b", "c", "c", "d"]
    follower.poll()
    assert follower.poll() == [] and follower.exhausted


def test_start_time_is_sent_with_every_call() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "old"), (10, "new"))
    follower = LogFollower(logs, [s], start_time_ms=5)  # type: ignore[arg-type]
    assert messages(follower.poll()) == ["new"]
    logs.put(s, (11, "newer"))
    assert messages(follower.poll()) == ["newer"]
    assert all(call["startTime"] == 5 for call in logs.calls)


# Any interleaving of appends (many at the same timestamp, repeated messages), polls,
# throttling and rejected tokens, with any page size: every event exactly once, in order.
_step = st.one_of(
    st.tuples(
        st.just("append"),
        st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["x", "y", "z"])), max_size=6),
    ),
    st.tuples(st.just("poll"), st.none()),
    st.tuples(st.just("throttle"), st.none()),
    st.tuples(st.just("bad-token"), st.none()),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, max_size=40), st.integers(1, 5), st.integers(0, 2))
def test_every_event_exactly_once_in_order(
    steps: list[tuple[str, Any]], page: int, empty_pages: int
) -> None:
    logs = FakeLogs(page=page, empty_pages_before_end=empty_pages)
    s = stream()
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    written: list[tuple[int, str]] = []
    shown: list[LogEvent] = []
    timestamp = 1000
    for kind, payload in steps:
        if kind == "append":
            for delta, message in payload:
                timestamp += delta
                written.append((timestamp, message))
                logs.put(s, (timestamp, message))
        elif kind == "poll":
            shown.extend(follower.poll())
        elif kind == "throttle":
            logs.errors.append(throttling())
        else:
            logs.reject_next_token = True
    # Drain with the real drain() and a fake clock: it must end by itself.
    clock = FakeClock()
    shown.extend(drain(follower, sleep=clock.sleep, now=clock.now, max_seconds=3600))
    assert follower.drain_complete is True
    assert [(e.timestamp, e.message) for e in shown] == written


# --------------------------------------------------------------------------- drain


def test_drain_waits_out_the_grace_period_for_late_lines() -> None:
    """The log driver delivers the last lines after the task stopped: drain shows them."""
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "early"))
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]

    def late(clock: FakeClock) -> None:
        if 1.0 <= clock.t < 1.5 and not any(
            e["message"] == "last" for e in logs.streams[(s.group, s.stream)]
        ):
            logs.put(s, (2, "last"))

    clock = FakeClock(on_sleep=late)
    shown = list(drain(follower, sleep=clock.sleep, now=clock.now, grace_seconds=2.0))
    assert messages(shown) == ["early", "last"]
    assert follower.drain_complete is True
    assert clock.t >= 1.0 + 2.0 - 1e-9  # grace counted from the last new line
    assert clock.t < 5.0


def test_drain_of_an_empty_stream_ends_after_the_grace_period() -> None:
    logs = FakeLogs()
    s = stream()
    logs.create(s)
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    clock = FakeClock()
    assert list(drain(follower, sleep=clock.sleep, now=clock.now, grace_seconds=2.0)) == []
    assert 2.0 <= clock.t < 2.5
    assert follower.api_calls <= 8  # economical: the interval grows while nothing happens


def test_drain_is_bounded() -> None:
    logs = FakeLogs()
    s = stream()
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    counter = iter(range(10**6))

    def chatty(clock: FakeClock) -> None:
        logs.put(s, (next(counter), "more"))

    clock = FakeClock(on_sleep=chatty)
    shown = list(drain(follower, sleep=clock.sleep, now=clock.now, max_seconds=30.0))
    assert follower.drain_complete is False
    assert 30.0 <= clock.t < 31.0 and shown


def test_drain_under_throttling_backs_off_and_still_delivers() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"), (2, "b"))
    logs.errors.extend([throttling(), throttling(), throttling()])
    follower = LogFollower(logs, [s])  # type: ignore[arg-type]
    clock = FakeClock()
    shown = list(drain(follower, sleep=clock.sleep, now=clock.now))
    assert messages(shown) == ["a", "b"]
    assert clock.sleeps[:3] == [2.0, 2.0, 2.0]


# --------------------------------------------------------------------------- read_logs


def test_read_logs_paginates_to_the_end_and_merges_streams() -> None:
    logs = FakeLogs(page=2)
    a, b = stream("a"), stream("b")
    logs.put(a, *[(t, f"a{t}") for t in (1, 3, 5, 7, 9)])
    logs.put(b, *[(t, f"b{t}") for t in (2, 3, 8)])
    events = list(read_logs(logs, [a, b], since_ms=None))  # type: ignore[arg-type]
    assert messages(events) == ["a1", "b2", "a3", "b3", "a5", "a7", "b8", "a9"]


def test_read_logs_since_and_missing_stream() -> None:
    logs = FakeLogs()
    a, b = stream("a"), stream("b")
    logs.put(a, (1, "old"), (50, "new"))
    missing: list[LogStream] = []
    events = list(read_logs(logs, [a, b], since_ms=10, on_missing=missing.append))  # type: ignore[arg-type]
    assert messages(events) == ["new"] and missing == [b]


def test_read_logs_retries_throttling_with_back_off() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"))
    logs.errors.extend([throttling(), throttling()])
    clock = FakeClock()
    events = list(read_logs(logs, [s], since_ms=None, sleep=clock.sleep))  # type: ignore[arg-type]
    assert messages(events) == ["a"] and clock.sleeps == [2.0, 2.0]


# --------------------------------------------------------------------------- tail_task


def test_tail_task_ends_by_itself_after_stop_with_every_line() -> None:
    logs = FakeLogs()
    s = stream(task_id="0123456789abcdef")

    def progress(n: int) -> None:
        if n == 1:
            logs.put(s, (10, "starting"))
        if n == 3:
            logs.put(s, (20, "working"), (20, "working"))
        if n == 5:  # the last line lands just as the task stops
            logs.put(s, (30, "done"))

    ecs = FakeEcs(
        TASK_ARN,
        ["PENDING", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "STOPPED"],
        on_describe=progress,
    )
    clock = FakeClock()
    shown: list[LogEvent] = []
    statuses: list[str] = []
    result = tail_task(
        ecs,  # type: ignore[arg-type]
        logs,  # type: ignore[arg-type]
        "acme-etl",
        TASK_ARN,
        [s],
        sleep=clock.sleep,
        now=clock.now,
        on_event=shown.append,
        on_status=lambda task: statuses.append(task["lastStatus"]),
    )
    assert messages(shown) == ["starting", "working", "working", "done"]
    assert statuses == ["PENDING", "RUNNING", "STOPPED"]
    assert result.status == "STOPPED" and result.drain_complete is True
    assert result.events == 4 and result.describe_calls == 6
    assert result.log_api_calls == len(logs.calls)
    assert all(0 <= pause <= 2.0 for pause in clock.sleeps)


def test_tail_task_describes_the_task_at_most_once_a_second() -> None:
    """Logs are polled every 0.25 s while lines arrive; DescribeTasks stays at 1/s at most."""
    logs = FakeLogs()
    s = stream()
    clock = FakeClock()
    described_at: list[float] = []

    def progress(n: int) -> None:
        described_at.append(clock.now())
        logs.put(s, (n, f"line {n}"))

    ecs = FakeEcs(TASK_ARN, ["RUNNING"] * 8 + ["STOPPED"], on_describe=progress)
    shown: list[LogEvent] = []
    result = tail_task(
        ecs,  # type: ignore[arg-type]
        logs,  # type: ignore[arg-type]
        "acme-etl",
        TASK_ARN,
        [s],
        sleep=clock.sleep,
        now=clock.now,
        on_event=shown.append,
        policy=PollPolicy(log_minimum=0.25, log_maximum=2.0),
    )
    gaps = [b - a for a, b in itertools.pairwise(described_at)]
    assert result.describe_calls == 9 and min(gaps) >= 1.0, gaps
    assert messages(shown) == [f"line {n}" for n in range(9)]
    assert len(logs.calls) > 2 * result.describe_calls  # the logs were polled faster


def test_tail_task_on_a_long_stopped_task_needs_no_grace() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"))
    ecs = FakeEcs(TASK_ARN, ["STOPPED"], stopped_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    clock = FakeClock()
    shown: list[LogEvent] = []
    result = tail_task(
        ecs, logs, "c", TASK_ARN, [s], sleep=clock.sleep, now=clock.now, on_event=shown.append
    )  # type: ignore[arg-type]
    assert messages(shown) == ["a"] and result.describe_calls == 1
    assert clock.t < 0.5 and len(logs.calls) == 2


def test_tail_task_of_a_task_ecs_forgot_reads_what_is_there() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"))
    ecs = FakeEcs(TASK_ARN, [])
    clock = FakeClock()
    shown: list[LogEvent] = []
    result = tail_task(
        ecs, logs, "c", TASK_ARN, [s], sleep=clock.sleep, now=clock.now, on_event=shown.append
    )  # type: ignore[arg-type]
    assert messages(shown) == ["a"] and result.task is None


def test_tail_task_survives_throttled_describe_and_logs() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, (1, "a"))
    logs.errors.extend([throttling(), throttling()])
    ecs = FakeEcs(TASK_ARN, ["RUNNING", "RUNNING", "STOPPED"])
    ecs.errors.append(throttling("DescribeTasks"))
    clock = FakeClock()
    shown: list[LogEvent] = []
    result = tail_task(
        ecs, logs, "c", TASK_ARN, [s], sleep=clock.sleep, now=clock.now, on_event=shown.append
    )  # type: ignore[arg-type]
    assert messages(shown) == ["a"] and result.status == "STOPPED"
    assert result.throttled_polls == 2
    assert clock.sleeps[0] == 2.0  # backed off to the maximum


def test_tail_task_propagates_other_describe_errors() -> None:
    ecs = FakeEcs(TASK_ARN, ["RUNNING"])
    ecs.errors.append(client_error("AccessDeniedException", "DescribeTasks"))
    clock = FakeClock()
    with pytest.raises(AwsError, match="describing task"):
        tail_task(
            ecs,
            FakeLogs(),
            "c",
            TASK_ARN,
            [stream()],
            sleep=clock.sleep,
            now=clock.now,
            on_event=print,
        )  # type: ignore[arg-type]


def test_tail_task_reads_a_backlog_without_waiting_or_describing_each_page() -> None:
    logs = FakeLogs()
    s = stream()
    logs.put(s, *[(i // 7, "line") for i in range(35_000)])
    ecs = FakeEcs(TASK_ARN, ["RUNNING", "STOPPED"])
    clock = FakeClock()
    shown: list[LogEvent] = []
    tail_task(
        ecs, logs, "c", TASK_ARN, [s], sleep=clock.sleep, now=clock.now, on_event=shown.append
    )  # type: ignore[arg-type]
    assert len(shown) == 35_000
    assert [e.timestamp for e in shown] == sorted(e.timestamp for e in shown)
    assert clock.sleeps[:3] == [0.0, 0.0, 0.0]
    # Pages 1-4 are read back to back with one DescribeTasks; the second one sees STOPPED.
    assert ecs.calls == 2 and len(logs.calls) >= 5


def test_tail_task_interrupt_propagates() -> None:
    ecs = FakeEcs(TASK_ARN, ["RUNNING"])
    clock = FakeClock()

    def interrupt(_: FakeClock) -> None:
        raise KeyboardInterrupt

    clock.on_sleep = interrupt
    with pytest.raises(KeyboardInterrupt):
        tail_task(
            ecs,
            FakeLogs(),
            "c",
            TASK_ARN,
            [stream()],
            sleep=clock.sleep,
            now=clock.now,
            on_event=print,
        )  # type: ignore[arg-type]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "poll", "throttle"]), st.integers(0, 3)), max_size=40
    )
)
def test_several_streams_each_once_in_order_and_each_poll_sorted(
    steps: list[tuple[str, int]],
) -> None:
    logs = FakeLogs(page=4)
    streams = {"a": stream("a"), "b": stream("b")}
    follower = LogFollower(logs, list(streams.values()))  # type: ignore[arg-type]
    written: dict[str, list[tuple[int, str]]] = {"a": [], "b": []}
    shown: list[LogEvent] = []
    timestamp = {"a": 0, "b": 0}
    for n, (kind, delta) in enumerate(steps):
        if kind in streams:
            timestamp[kind] += delta
            written[kind].append((timestamp[kind], f"{kind}{n}"))
            logs.put(streams[kind], written[kind][-1])
        elif kind == "throttle":
            logs.errors.append(throttling())
        else:
            polled = follower.poll()
            assert [e.timestamp for e in polled] == sorted(e.timestamp for e in polled)
            shown.extend(polled)
    clock = FakeClock()
    shown.extend(drain(follower, sleep=clock.sleep, now=clock.now, max_seconds=3600))
    for name in streams:
        assert [(e.timestamp, e.message) for e in shown if e.container == name] == written[name]
