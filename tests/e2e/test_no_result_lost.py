"""Issue 14, "No result is lost": signals, reruns and a broken journal never lose a run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from residency_cli.cli.app import main
from residency_cli.dispatch import Dispatcher, RunOptions
from residency_cli.journal import read
from tests.support.running import InterruptedOnce, start_until_running
from tests.support.world import World


def test_ctrl_c_while_run_task_is_in_flight_names_the_task_it_started(world: World) -> None:
    clients = world.sandbox.clients()
    ecs = InterruptedOnce(clients.ecs)
    dispatcher = Dispatcher(ecs, clients.ssm, world.config)  # type: ignore[arg-type]
    result = dispatcher.run("slow", RunOptions(run_id="inflight"))
    assert result.outcome == "interrupted" and result.primary.task_id
    assert ecs.run_tasks == 2  # the same request again: the clientToken gives the same task
    running = clients.ecs.list_tasks(cluster=world.config.cluster)["taskArns"]
    assert running == [result.primary.task_arn]  # one task, not two
    events = [(r["event"], r["result"]["outcome"]) for r in read(_journal())]
    assert events == [("intent", None), ("run", "interrupted")]


def _journal() -> Path:
    return Path(os.environ["RESIDENCY_JOURNAL"])


def test_sigterm_is_handled_as_ctrl_c_with_exit_143(world: World) -> None:
    env = {**os.environ, **world.sandbox.env()}
    process, seen = start_until_running(
        ["-c", str(world.map_path), "run", "slow", "--run-id", "term"], env
    )
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143, seen + err
    assert f"residency --config {world.map_path} " in err and "Traceback" not in err
    task_id = err.split(" attach ")[-1].split()[0]
    assert world.sandbox.describe_task(task_id)["lastStatus"] == "RUNNING"
    last = read(Path(env["RESIDENCY_JOURNAL"]))[-1]
    assert (last["run_id"], last["result"]["outcome"]) == ("term", "interrupted")


def test_a_rerun_the_journal_knows_never_starts_a_second_task(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    base = ["--sandbox", "-c", str(world.map_path)]
    assert main([*base, "run", "hello", "--run-id", "once", "-o", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    world.sandbox.clock.advance(2 * 86400)  # ECS forgot the task and its clientToken
    world.sandbox.reset_calls()
    assert main([*base, "run", "hello", "--run-id", "once", "-o", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert world.sandbox.calls("RunTask") == 0
    assert (again["task_arn"], again["outcome"]) == (first["task_arn"], "succeeded")
    # The same run id with other parameters: exit 2, nothing started.
    assert main([*base, "run", "hello", "--run-id", "once", "--env", "A=1"]) == 2
    assert "already used for hello with other parameters" in capsys.readouterr().err
    assert world.sandbox.calls("RunTask") == 0


def test_an_empty_run_id_is_a_usage_error(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.reset_calls()
    assert main(["--sandbox", "-c", str(world.map_path), "run", "hello", "--run-id", ""]) == 2
    assert "invalid --run-id ''" in capsys.readouterr().err
    assert world.sandbox.calls("RunTask") == 0


def test_a_pathological_journal_never_hides_the_result(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    journal = _journal()
    journal.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    base = ["--sandbox", "-c", str(world.map_path)]
    code = main([*base, "run", "hello", "-o", "json"])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["outcome"] == "succeeded"  # the result is printed
    assert "Traceback" not in captured.err and code in (0, 8)
    assert main([*base, "journal", "verify"]) == 1  # reported, not a crash
    assert "internal error" not in capsys.readouterr().err
