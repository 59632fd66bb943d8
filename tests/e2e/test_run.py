"""`run` and `attach` end to end on the sandbox: real processes, real logs, real outcomes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from residency_cli.cli.app import main
from residency_cli.dispatch import RunOptions
from residency_cli.errors import AwsError
from tests.support.running import start_until_running
from tests.support.world import World


def test_bonus_runs_on_its_host_with_every_log_line(world: World) -> None:
    result = world.dispatcher().run("bonus", RunOptions(run_id="b1"))
    task = result.primary
    assert (result.outcome, task.exit_code, task.stop_code) == (
        "succeeded",
        0,
        "EssentialContainerExited",
    )
    assert task.host is not None and (task.host.hostname, task.host.location) == (
        "bonus.host",
        "newyork",
    )
    assert world.recorder.placements and all(ok for _, ok in world.recorder.placements)
    messages = [line.split(" - ")[-1] for line in world.recorder.lines]
    assert messages[0] == "Running on host 'bonus.host'"
    assert [m.split(" ")[0] for m in messages] == ["Running", "Reading", "Creating", "Uploading"]
    assert task.log_stream == f"bonus/christmas_bonus/{task.task_id}"
    assert world.recorder.lines == world.sandbox.log_messages(task.task_arn)


def test_container_failure_is_failed_with_its_code(world: World) -> None:
    result = world.dispatcher().run("fail", RunOptions(run_id="f"))
    assert (result.outcome, result.primary.exit_code) == ("failed", 3)
    assert world.recorder.lines == ["going down"]


def test_command_not_found_never_started(world: World) -> None:
    result = world.dispatcher().run("missing", RunOptions(run_id="m"))
    task = result.primary
    assert result.outcome == "not_started"
    assert task.stop_code == "TaskFailedToStart" and task.exit_code is None
    assert task.stopped_reason


def test_no_compliant_host_makes_no_run_task_call(world: World) -> None:
    world.sandbox.label("bonus.host", None)
    world.sandbox.reset_calls()
    result = world.dispatcher().run("bonus", RunOptions(run_id="n"))
    assert result.outcome == "refused"
    assert "bonus.host: no location attribute" in (result.message or "")
    assert world.sandbox.calls("RunTask") == 0


def test_ecs_placement_failure_after_a_race(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import residency_cli.dispatch as dispatch

    real_check = dispatch.preflight

    def check_then_drain(*args: Any, **kwargs: Any) -> Any:
        checked = real_check(*args, **kwargs)
        world.sandbox.drain("bonus.host")  # the host drains between pre-flight and RunTask
        return checked

    monkeypatch.setattr(dispatch, "preflight", check_then_drain)
    result = world.dispatcher().run("bonus", RunOptions(run_id="race"))
    assert result.outcome == "refused"
    assert "ECS:" in (result.message or "")
    assert world.sandbox.calls("RunTask") == 1


def test_misplaced_task_is_stopped_at_once(world: World) -> None:
    world.sandbox.misplace_next_run_task("tax.host")
    result = world.dispatcher().run("slow", RunOptions(run_id="v"))
    task = result.primary
    assert result.outcome == "violation"
    assert task.host is not None and (task.host.hostname, task.host.location) == (
        "tax.host",
        "frankfurt",
    )
    stopped = world.sandbox.wait_for_task(task.task_arn)
    assert stopped["stopCode"] == "UserInitiated"
    assert "outside newyork" in stopped["stoppedReason"]


def test_timeout_leaves_the_task_running(world: World) -> None:
    result = world.dispatcher().run("slow", RunOptions(run_id="t"), timeout=0.5)
    assert result.outcome == "timeout"
    assert world.sandbox.describe_task(result.primary.task_arn)["lastStatus"] == "RUNNING"


def test_same_run_id_never_starts_a_second_task(world: World) -> None:
    first = world.dispatcher().run("slow", RunOptions(run_id="same"), wait=False)
    second = world.dispatcher().run("slow", RunOptions(run_id="same"), wait=False)
    assert first.primary.task_arn == second.primary.task_arn
    listed = world.sandbox.client("ecs").list_tasks(cluster="acme-etl", family="test-slow")
    assert listed["taskArns"] == [first.primary.task_arn]


def test_ten_tasks_all_run_and_are_reported(world: World) -> None:
    result = world.dispatcher().run("small", RunOptions(run_id="ten", count=10))
    assert len(result.tasks) == 10 and result.outcome == "succeeded"
    assert len({t.task_arn for t in result.tasks}) == 10
    assert result.to_json()["tasks"][9]["exit_code"] == 0


def test_attach_to_running_and_to_stopped_tasks(world: World) -> None:
    dispatched = world.dispatcher().run("hello", RunOptions(run_id="a"), wait=False)
    arn = dispatched.primary.task_arn
    assert arn is not None
    attached = world.dispatcher().attach(arn.rsplit("/", 1)[-1])
    assert attached.outcome == "succeeded" and attached.primary.run_id == "a"
    again = world.dispatcher().attach(arn)
    assert again.outcome == "succeeded"


def test_attach_unknown_task_is_aws_not_found(world: World) -> None:
    with pytest.raises(AwsError, match="not found") as raised:
        world.dispatcher().attach("0123456789abcdef0123456789abcdef")
    assert raised.value.exit_code == 7


def test_dry_run_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.reset_calls()
    assert main(["-c", str(world.map_path), "run", "bonus", "--dry-run", "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["ready"] is True and plan["request"]["launchType"] == "EXTERNAL"
    counts = world.sandbox.call_counts()
    changing = [
        op for op in counts if not op.split(":")[-1].startswith(("Describe", "List", "Get"))
    ]
    assert changing == [], counts


def test_cli_run_json_and_exit_codes(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    code = main(["--sandbox", "-c", str(world.map_path), "run", "fail", "-o", "json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert code == 1 and document["outcome"] == "failed" and document["exit_code"] == 3
    assert "going down" in captured.err  # log lines go to stderr when stdout holds JSON
    code = main(
        [
            "--sandbox",
            "-c",
            str(world.map_path),
            "run",
            "fail",
            "--exit-code",
            "container",
            "--no-follow",
        ]
    )
    captured = capsys.readouterr()
    assert code == 3 and "going down" not in captured.out
    code = main(["--sandbox", "-c", str(world.map_path), "run", "missing"])
    assert code == 5 and "TaskFailedToStart" in capsys.readouterr().err
    code = main(["--sandbox", "-c", str(world.map_path), "run", "slow", "--timeout", "1s"])
    captured = capsys.readouterr()
    # The hint repeats the global options, so that pasting it works (CONTRACT.md section 8).
    assert code == 6 and "residency --sandbox --config " in captured.err
    assert " attach " in captured.err


def test_cli_run_text_shows_logs_and_where(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    code = main(["--sandbox", "-c", str(world.map_path), "run", "hello"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "  main  hello" in captured.out and "  main  world" in captured.out
    assert captured.out.index("hello") < captured.out.index("world")
    assert "succeeded hello on bonus.host (newyork), exit code 0" in captured.out
    assert "→ STOPPED" in captured.err and captured.err.count("placed on bonus.host") == 1


def test_ctrl_c_leaves_task_running_and_says_how_to_attach(world: World) -> None:
    env = {**os.environ, **world.sandbox.env()}
    process, seen = start_until_running(
        ["-c", str(world.map_path), "run", "slow", "--run-id", "ctrlc"], env
    )
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, seen + err
    assert f"residency --config {world.map_path} " in err and "Traceback" not in err
    task_id = err.split(" attach ")[-1].split()[0]
    assert world.sandbox.describe_task(task_id)["lastStatus"] == "RUNNING"


def test_a_reader_that_stops_reading_ends_run_quietly(world: World, tmp_path: Path) -> None:
    """`residency run ... | head -1`: no traceback; the task is left running with a hint."""
    world.sandbox.register_task_definition(
        "test-chatty", ["sh", "-c", "echo one; sleep 4; echo two; sleep 30; echo three"]
    )
    map_path = tmp_path / "chatty.yaml"
    map_path.write_text(
        world.map_path.read_text(encoding="utf-8")
        + "  chatty:\n    task_definition: test-chatty\n    location: newyork\n",
        encoding="utf-8",
    )
    env = {**os.environ, **world.sandbox.env()}
    process = subprocess.Popen(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()",
         "-c", str(map_path), "run", "chatty"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().rstrip().endswith("one")
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err
    assert process.returncode == 130, err
    assert f"residency --config {map_path} " in err and " attach " in err


def test_json_knows_streams_without_waiting_and_tasks_names_violations(world: World) -> None:
    from residency_cli.tasks import recent_tasks

    dispatched = world.dispatcher().run("slow", RunOptions(run_id="nw"), wait=False).primary
    assert dispatched.log_stream == f"test/main/{dispatched.task_id}"
    # The misplaced task sleeps, so only residency's StopTask can end it: a task that exits by
    # itself first keeps its own stoppedReason, and the listing could not tell (seen under load).
    world.sandbox.misplace_next_run_task("tax.host")
    violation = world.dispatcher().run("slow", RunOptions(run_id="vv")).primary
    assert violation.outcome == "violation" and violation.stopped_reason
    world.sandbox.wait_for_task(str(violation.task_arn))
    clients = world.sandbox.clients()
    listed = {
        t.task_arn: t.outcome
        for t in recent_tasks(clients.ecs, clients.ssm, world.config, "slow", "all")
    }
    assert listed[violation.task_arn] == "violation"
