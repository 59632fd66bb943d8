"""Issue 6 end to end on the sandbox: real local processes as ECS tasks, their output in
CloudWatch Logs streams, followed through residency's own clients (or a raw client where the
test needs the SDK not to retry).

Waiting is real where it is short; where back-off would slow a test, `CompressedClock` sleeps at
most 20 ms and lets `now()` jump by the rest, so the code under test sees the intervals it
asked for.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from residency_cli.cli.app import main
from residency_cli.errors import UsageError
from residency_cli.logs import LogEvent, read_logs, tail_task, task_streams
from residency_cli.waiting import WaitReport
from tests.support.clock import CompressedClock

TEST_IMAGE = "sandbox/shell:latest"


def python(code: str) -> list[str]:
    return ["python3", "-c", code]


def start(sandbox: Any, family: str, command: list[str], **kwargs: Any) -> str:
    definition = sandbox.register_task_definition(family, command, **kwargs)
    return str(sandbox.start_task_on("bonus.host", definition))


def tail(
    sandbox: Any,
    task_arn: str,
    *,
    clock: CompressedClock | None = None,
    logs_client: Any = None,
    **kwargs: Any,
) -> tuple[list[LogEvent], WaitReport]:
    clients = sandbox.clients()
    _, streams = task_streams(clients.ecs, sandbox.cluster, task_arn)
    shown: list[LogEvent] = []
    result = tail_task(
        clients.ecs,
        logs_client or clients.logs,
        sandbox.cluster,
        task_arn,
        streams,
        sleep=clock.sleep if clock else time.sleep,
        now=clock.now if clock else time.monotonic,
        on_event=shown.append,
        **kwargs,
    )
    return shown, result


def messages(events: list[LogEvent]) -> list[str]:
    return [e.message for e in events]


def test_short_task_every_line_then_ends_by_itself(sandbox: Any) -> None:
    arn = start(sandbox, "five", python("for i in range(5): print(f'line {i}')"))
    shown, result = tail(sandbox, arn)  # real time: this is what a user waits
    assert messages(shown) == [f"line {i}" for i in range(5)]
    # Ended by itself, not by the 30 s cap; how long after STOPPED is measured, not asserted
    # (bench/logs_follow.py, "the short task" in BENCHMARKS.md): the calls bound the work.
    assert result.status == "STOPPED" and result.drain_complete is True
    assert sandbox.calls("GetLogEvents") == result.log_api_calls <= 10
    # task_streams made one DescribeTasks; following the rest.
    assert sandbox.calls("DescribeTasks") == result.describe_calls + 1 <= 6


def test_long_task_lines_while_it_runs(sandbox: Any) -> None:
    code = (
        "import time\n"
        "for i in range(300):\n"
        "    print(f'tick {i}', flush=True)\n"
        "    if i % 20 == 0: time.sleep(0.1)\n"
    )
    arn = start(sandbox, "long", python(code))
    shown, result = tail(sandbox, arn, clock=CompressedClock())
    assert messages(shown) == [f"tick {i}" for i in range(300)]
    assert [e.timestamp for e in shown] == sorted(e.timestamp for e in shown)
    assert result.log_api_calls < 100  # one call per poll, never one per line


def test_same_timestamp_lines_are_all_shown_once(sandbox: Any) -> None:
    arn = start(sandbox, "burst", python("for i in range(3000): print(f'burst {i}')"))
    shown, _ = tail(sandbox, arn, clock=CompressedClock())
    assert messages(shown) == [f"burst {i}" for i in range(3000)]
    stamps = [e.timestamp for e in shown]
    assert len(set(stamps)) < len(stamps)  # the test did exercise shared timestamps


def test_empty_stream(sandbox: Any) -> None:
    arn = start(sandbox, "silent", ["true"])
    shown, result = tail(sandbox, arn, clock=CompressedClock())
    assert shown == [] and result.status == "STOPPED" and result.drain_complete is True


def test_task_without_log_configuration(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = start(sandbox, "unlogged", python("print('lost')"), log_group=None)
    with pytest.raises(UsageError, match="has no awslogs log configuration"):
        task_streams(sandbox.clients().ecs, sandbox.cluster, arn)
    sandbox.use(monkeypatch)
    code = main(["--sandbox", "logs", arn])
    err = capsys.readouterr().err
    assert code == 2
    assert "task definition" in err and "no awslogs log configuration" in err
    assert "awslogs-group" in err and "awslogs-stream-prefix" in err


def test_stream_not_yet_created_when_following_starts(sandbox: Any) -> None:
    # What CloudWatch answers before the log driver has created the stream.
    sandbox.fail_next(
        "GetLogEvents",
        "ResourceNotFoundException",
        message="The specified log stream does not exist.",
        times=3,
    )
    code = "import time; time.sleep(0.5); print('late hello'); print('late bye')"
    arn = start(sandbox, "late", python(code))
    shown, result = tail(sandbox, arn, clock=CompressedClock())
    assert messages(shown) == ["late hello", "late bye"]
    assert result.missing_streams == []


def test_throttling_retried_by_the_sdk_is_invisible(sandbox: Any) -> None:
    sandbox.throttle("GetLogEvents", times=2)
    arn = start(sandbox, "throttled", python("for i in range(20): print(f'row {i}')"))
    shown, result = tail(sandbox, arn, clock=CompressedClock())
    assert messages(shown) == [f"row {i}" for i in range(20)]
    assert sandbox.calls("GetLogEvents") == result.log_api_calls + 2


def test_throttling_past_the_sdk_backs_off_and_is_never_fatal(sandbox: Any) -> None:
    raw = sandbox.client("logs", retries={"mode": "standard", "total_max_attempts": 1})
    sandbox.throttle("GetLogEvents", times=4)
    sandbox.throttle("DescribeTasks", times=1)
    arn = start(sandbox, "throttled2", python("for i in range(20): print(f'row {i}')"))
    clock = CompressedClock()
    shown, result = tail(sandbox, arn, clock=clock, logs_client=raw)
    assert messages(shown) == [f"row {i}" for i in range(20)]
    assert result.throttled_polls == 4 and result.status == "STOPPED"
    assert clock.sleeps.count(2.0) >= 4  # backed off to the maximum interval each time


def test_several_containers_each_line_once(sandbox: Any, tmp_path: Path) -> None:
    done = tmp_path / "side-done"
    side = {
        "name": "side",
        "image": TEST_IMAGE,
        "essential": False,
        "command": python(
            "import pathlib, time\n"
            "for i in range(5):\n print(f'side {i}', flush=True); time.sleep(0.05)\n"
            f"pathlib.Path({str(done)!r}).touch()"
        ),
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": "/residency/tests",
                "awslogs-region": sandbox.region,
                "awslogs-stream-prefix": "test",
            },
        },
    }
    # The essential container waits for the sidecar: when it exits, the sidecar is stopped.
    code = (
        "import pathlib, time\n"
        "for i in range(5):\n print(f'main {i}', flush=True); time.sleep(0.05)\n"
        f"deadline = time.time() + 20\n"
        f"while not pathlib.Path({str(done)!r}).exists() and time.time() < deadline:\n"
        " time.sleep(0.02)"
    )
    arn = start(sandbox, "pair", python(code), extra_containers=[side])
    shown, _ = tail(sandbox, arn, clock=CompressedClock())
    # Each container's lines once and in order; within one poll the containers are merged
    # by timestamp (a later poll may bring an earlier line of the other container).
    assert [e.message for e in shown if e.container == "main"] == [f"main {i}" for i in range(5)]
    assert [e.message for e in shown if e.container == "side"] == [f"side {i}" for i in range(5)]


def test_read_logs_of_a_stopped_task(sandbox: Any) -> None:
    arn = start(sandbox, "done", python("for i in range(50): print(i)"))
    sandbox.wait_for_task(arn)
    clients = sandbox.clients()
    _, streams = task_streams(clients.ecs, sandbox.cluster, arn)
    events = list(read_logs(clients.logs, streams, since_ms=None))
    assert messages(events) == [str(i) for i in range(50)]


def test_cli_follow_json_lines(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.use(monkeypatch)
    arn = start(sandbox, "cli", python("for i in range(5): print(f'cli {i}')"))
    code = main(["--sandbox", "logs", arn.rsplit("/", 1)[-1], "--follow", "-o", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [e["message"] for e in events] == [f"cli {i}" for i in range(5)]
    assert {e["container"] for e in events} == {"main"}


def test_cli_text_of_a_stopped_task(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.use(monkeypatch)
    arn = start(sandbox, "clitext", python("print('hello'); print('bye')"))
    sandbox.wait_for_task(arn)
    code = main(["--sandbox", "logs", arn])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [row.split("  ", 1)[1] for row in captured.out.splitlines()] == ["hello", "bye"]
