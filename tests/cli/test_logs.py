"""`residency logs` through main() against moto: text, JSON Lines, --since, --follow, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from residency_cli.cli.app import main
from tests.support.clock import FakeClock
from tests.support.moto_cluster import REGION, MotoCluster
from tests.support.moto_logs import GROUP, now_ms, put, register, start_task

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def logs(moto_cluster: MotoCluster) -> Any:
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName=GROUP)
    return client


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """`logs --follow` sleeps through time.sleep / time.monotonic: make them instant."""
    fake = FakeClock()
    monkeypatch.setattr("residency_cli.cli.logs_cmds.time.sleep", fake.sleep)
    monkeypatch.setattr("residency_cli.cli.logs_cmds.time.monotonic", fake.now)
    return fake


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def task_with_lines(
    cluster: MotoCluster, logs: Any, lines: list[str], **kw: Any
) -> tuple[str, str, int]:
    register(cluster.ecs, **kw)
    arn = start_task(cluster)
    task_id = arn.rsplit("/", 1)[-1]
    base = now_ms()
    if lines:
        put(logs, f"etl/app/{task_id}", [(base + i, line) for i, line in enumerate(lines)])
    return arn, task_id, base


def test_logs_text_has_a_timestamp_column(
    moto_cluster: MotoCluster, logs: Any, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, task_id, _ = task_with_lines(moto_cluster, logs, ["hello", "same :smile: [bold]x[/]", "bye"])
    code, out, err = run_cli(capsys, "-c", str(map_path), "logs", task_id)
    assert code == 0, err
    rows = out.splitlines()
    assert len(rows) == 3
    for row, message in zip(rows, ["hello", "same :smile: [bold]x[/]", "bye"], strict=True):
        stamp, text = row.split("  ", 1)
        assert ISO.match(stamp) and text == message  # no markup, no emoji, no wrapping
    assert "\x1b" not in out


def test_logs_json_lines_shape(
    moto_cluster: MotoCluster, logs: Any, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn, _, _base = task_with_lines(moto_cluster, logs, ["one", "two"])
    code, out, err = run_cli(capsys, "-c", str(map_path), "logs", arn, "-o", "json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [set(e) for e in events] == [{"timestamp", "container", "message"}] * 2
    assert [e["message"] for e in events] == ["one", "two"]
    assert all(ISO.match(e["timestamp"]) and e["container"] == "app" for e in events)


def test_logs_of_several_containers_show_the_container(
    moto_cluster: MotoCluster, logs: Any, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _arn, task_id, base = task_with_lines(
        moto_cluster, logs, ["from app"], containers=("app", "side")
    )
    put(logs, f"etl/side/{task_id}", [(base - 1, "from side")])
    code, out, err = run_cli(capsys, "-c", str(map_path), "logs", task_id)
    assert code == 0, err
    assert [row.split("  ", 1)[1] for row in out.splitlines()] == [
        "side  from side",
        "app  from app",
    ]


def test_logs_since(
    moto_cluster: MotoCluster, logs: Any, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, task_id, base = task_with_lines(moto_cluster, logs, [])
    put(logs, f"etl/app/{task_id}", [(base - 3_600_000, "old"), (base, "recent")])
    code, out, _ = run_cli(capsys, "-c", str(map_path), "logs", task_id, "--since", "10m")
    assert code == 0 and out.endswith("recent\n") and "old" not in out


def test_logs_bad_since_is_a_usage_error(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "-c", str(map_path), "logs", "abc", "--since", "soon")
    assert code == 2 and "--since" in err and "invalid duration" in err


def test_logs_of_a_task_without_log_configuration(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(moto_cluster.ecs, log=False)
    arn = start_task(moto_cluster)
    code, out, err = run_cli(capsys, "-c", str(map_path), "logs", arn)
    assert code == 2 and out == ""
    assert "no awslogs log configuration" in err and "awslogs-stream-prefix" in err
    assert "Traceback" not in err


def test_logs_of_an_unknown_task(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "-c", str(map_path), "logs", "0123")
    assert code == 7 and "task 0123 not found in cluster acme-etl" in err


def test_logs_of_a_silent_task_says_so(
    moto_cluster: MotoCluster, logs: Any, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, task_id, _ = task_with_lines(moto_cluster, logs, [])
    code, out, err = run_cli(capsys, "-c", str(map_path), "logs", task_id)
    assert code == 0 and out == ""
    assert "does not exist" in err and "no log events" in err


def test_follow_ends_by_itself_once_the_task_stopped(
    moto_cluster: MotoCluster,
    logs: Any,
    map_path: Path,
    clock: FakeClock,
    manual_tasks: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn, task_id, base = task_with_lines(moto_cluster, logs, ["first"])
    stream = f"etl/app/{task_id}"
    script = [
        lambda: put(logs, stream, [(base + 1, "second"), (base + 1, "second")]),
        lambda: moto_cluster.ecs.stop_task(cluster=moto_cluster.config.cluster, task=arn),
        lambda: put(logs, stream, [(base + 2, "last, after STOPPED")]),
    ]
    clock.on_sleep = lambda _: script.pop(0)() if script else None
    code, out, err = run_cli(capsys, "-c", str(map_path), "logs", task_id, "--follow", "-o", "json")
    assert code == 0, err
    assert [json.loads(line)["message"] for line in out.splitlines()] == [
        "first",
        "second",
        "second",
        "last, after STOPPED",
    ]
    assert clock.t < 10
