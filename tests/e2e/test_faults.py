"""`run` and `attach` when things go wrong around them: a flaky control plane (throttling,
5xx, dropped connections), a host that disappears mid-task, a sandbox that dies mid-wait."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from residency_cli.cli.app import main
from residency_cli.config import parse_config
from residency_cli.dispatch import RunOptions
from residency_cli.sandbox.seed import EXAMPLE_DIR
from residency_cli.sandbox.world import decide, parse_fault_spec
from tests.support.world import Recorder, World

FLAKY = "throttle=0.2,error=0.05"
# Seed 7: the first RunTask is answered 500 *after* the sandbox started the task (the answer
# is lost, botocore retries with the same clientToken), and no operation residency calls
# gets more than 5 faults in a row in its first 200 calls (6 would exhaust the retries: a
# correct exit 7, but not what this test is about). Both are checked below, not assumed.
FLAKY_SEED = 7
OPERATIONS = [
    ("ecs", "ListContainerInstances"),
    ("ecs", "DescribeContainerInstances"),
    ("ecs", "DescribeTaskDefinition"),
    ("ecs", "RunTask"),
    ("ecs", "DescribeTasks"),
    ("ecs", "TagResource"),
    ("ssm", "DescribeInstanceInformation"),
    ("logs", "GetLogEvents"),
]


def _longest_fault_streak(spec: str, seed: int, calls: int) -> int:
    plan = parse_fault_spec(spec)
    worst = 0
    for service, operation in OPERATIONS:
        streak = 0
        for n in range(1, calls + 1):
            injection = decide(plan, seed, service, operation, n)
            streak = streak + 1 if injection is not None and injection.kind != "slow" else 0
            worst = max(worst, streak)
    return worst


def _tasks(world: World, family: str) -> list[str]:
    ecs = world.sandbox._internal("ecs")
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        arns += ecs.list_tasks(cluster=world.sandbox.cluster, family=family, desiredStatus=status)[
            "taskArns"
        ]
    return arns


def test_seed_exercises_a_lost_run_task_answer() -> None:
    first = decide(parse_fault_spec(FLAKY), FLAKY_SEED, "ecs", "RunTask", 1)
    assert first is not None and first.kind == "error" and first.after
    assert _longest_fault_streak(FLAKY, FLAKY_SEED, 200) <= 5


CHATTY = ["python3", "-c", "for i in range(20): print(f'line {i}')\nraise SystemExit(3)"]


def test_run_under_throttling_and_errors_ends_right_with_one_task_and_every_line(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """20% throttling and 5% 5xx on every call residency makes (RunTask's first answer
    lost after the task started): exit 1 for a job that exits 3, exactly one task, every
    log line once and in order."""
    world.sandbox.register_task_definition("test-chatty", CHATTY)
    path = world.map_path.with_name("chatty.yaml")
    path.write_text(
        world.map_path.read_text(encoding="utf-8")
        + "  chatty:\n    task_definition: test-chatty\n    location: frankfurt\n",
        encoding="utf-8",
    )
    world.sandbox.use(monkeypatch)
    world.sandbox.set_faults(FLAKY, seed=FLAKY_SEED)
    code = main(["--sandbox", "-c", str(path), "run", "chatty", "-o", "json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    document = json.loads(captured.out)
    assert document["outcome"] == "failed" and document["exit_code"] == 3
    assert document["host"]["hostname"] == "tax.host"
    shown = [line.split("  ")[-1] for line in captured.err.splitlines() if "  line " in line]
    assert shown == [f"line {i}" for i in range(20)], captured.err
    assert _tasks(world, "test-chatty") == [document["task_arn"]]  # exactly one task
    assert world.sandbox.calls("RunTask") == 2  # the lost answer, then the same task again
    injected = world.sandbox.faults_injected()
    assert injected["error ecs:RunTask"] == 1 and injected["throttle"] >= 2, injected


@pytest.mark.parametrize("lost", ["error", "reset"])
def test_run_task_answer_lost_after_it_started_the_task(world: World, lost: str) -> None:
    if lost == "error":
        world.sandbox.fail_next("RunTask", "InternalFailure", status=500, after=True, times=2)
    else:
        world.sandbox.drop_next("RunTask", after=True, times=2)
    result = world.dispatcher().run("hello", RunOptions(run_id=f"lost-{lost}"))
    assert result.primary.outcome == "succeeded"
    assert world.sandbox.calls("RunTask") == 3
    assert _tasks(world, "test-hello") == [result.primary.task_arn]


def test_run_task_never_answered_is_exit_7_and_rerun_with_the_run_id_finds_its_task(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every RunTask attempt is handled but its answer lost: exit 7, although a task runs.
    The run id is printed first, and the same run id finds that task instead of a second."""
    world.sandbox.use(monkeypatch)
    command = ["--sandbox", "-c", str(world.map_path), "run", "hello", "--run-id", "lost-all"]
    world.sandbox.drop_next("RunTask", after=True, times=6)
    code = main(command)
    err = capsys.readouterr().err
    assert code == 7 and world.sandbox.calls("RunTask") == 6  # botocore's total_max_attempts
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "starting hello" in error_lines[0], err
    assert "Traceback" not in err and "lost-all" in err
    started = _tasks(world, "test-hello")
    assert len(started) == 1
    code = main(command)
    assert code == 0 and _tasks(world, "test-hello") == started


def test_run_task_never_reaching_the_sandbox_starts_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.drop_next("RunTask", times=6)
    code = main(["--sandbox", "-c", str(world.map_path), "run", "hello"])
    assert code == 7 and _tasks(world, "test-hello") == []
    assert "Traceback" not in capsys.readouterr().err


class _LoseHostWhenRunning(Recorder):
    """Takes bonus.host dark when the task is seen RUNNING; with `back_after`, brings it back
    that many seconds later; with `stopped`, as an EC2 instance that was stopped."""

    def __init__(self, world: World, back_after: float | None = None, stopped: bool = False):
        super().__init__()
        self.world = world
        self.back_after = back_after
        self.stopped = stopped
        self.lost = False

    def status(self, task: Any, previous: str | None) -> None:
        super().status(task, previous)
        if task["lastStatus"] == "RUNNING" and not self.lost:
            self.lost = True
            self.world.sandbox.lose_host("bonus.host", stopped=self.stopped)
            if self.back_after is not None:
                timer = threading.Timer(
                    self.back_after, self.world.sandbox.connect_agent, ("bonus.host",)
                )
                timer.daemon = True
                timer.start()


def _add_nap(world: World) -> None:
    """A workload that runs long enough to lose its host, short enough to finish after."""
    world.sandbox.register_task_definition("test-nap", ["sh", "-c", "sleep 1.5; echo awake"])
    world.config = parse_config(
        world.map_path.read_text(encoding="utf-8")
        + "  nap:\n    task_definition: test-nap\n    location: newyork\n",
        str(world.map_path),
    )


def test_host_lost_mid_task_ends_as_host_lost_with_the_task_still_running(world: World) -> None:
    """ECS Anywhere: the host's agent disconnects and its task stays RUNNING to the API; after
    --host-lost-after the run ends as host_lost (exit 5) with the last known state."""
    observer = _LoseHostWhenRunning(world)
    result = world.dispatcher(observer=observer, host_lost_after=0.5).run(
        "slow", RunOptions(run_id="lost-host")
    )
    primary = result.primary
    assert primary.outcome == "host_lost" and primary.outcome.exit_code == 5
    assert primary.status == "RUNNING" and primary.exit_code is None
    assert (primary.host is not None) and primary.host.hostname == "bonus.host"
    assert primary.message is not None and "bonus.host is unreachable" in primary.message
    task = world.sandbox.describe_task(primary.task_arn)
    assert task["lastStatus"] == "RUNNING"  # still, as far as ECS knows


def test_host_back_within_the_grace_lets_the_run_reach_its_real_end(world: World) -> None:
    _add_nap(world)
    observer = _LoseHostWhenRunning(world, back_after=0.3)
    result = world.dispatcher(observer=observer, host_lost_after=5).run(
        "nap", RunOptions(run_id="back-again")
    )
    primary = result.primary
    assert primary.outcome == "succeeded" and primary.exit_code == 0
    assert observer.lost and observer.lines == ["awake"]


def test_ec2_style_host_loss_is_not_started_with_the_reason(world: World) -> None:
    observer = _LoseHostWhenRunning(world, stopped=True)
    result = world.dispatcher(observer=observer).run("slow", RunOptions(run_id="ec2-lost"))
    primary = result.primary
    instance = world.sandbox.host("bonus.host").instance_id
    assert primary.outcome == "not_started" and primary.exit_code is None
    assert primary.stopped_reason == f"Host EC2 (instance {instance}) stopped/terminated"
    assert observer.statuses[-1] == ("RUNNING", "STOPPED")


def test_cli_attach_to_a_task_on_a_lost_host_exits_5(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    code = main(["--sandbox", "-c", str(world.map_path), "run", "slow", "--no-wait", "-o", "json"])
    task_id = json.loads(capsys.readouterr().out)["task_id"]
    world.sandbox.wait_for_task(task_id, "RUNNING")
    world.sandbox.lose_host("bonus.host")
    code = main(
        ["--sandbox", "-c", str(world.map_path), "attach", task_id, "--host-lost-after", "1s"]
    )
    err = capsys.readouterr().err
    assert code == 5, err
    assert "bonus.host is unreachable" in err and "RUNNING" in err, err
    assert world.sandbox.describe_task(task_id)["lastStatus"] == "RUNNING"


# --- the sandbox daemon killed while `run` waits -------------------------------------------

SLEEPER = {
    "family": "sleeper",
    "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
    "requiresCompatibilities": ["EXTERNAL"],
    "networkMode": "host",
    "cpu": "128",
    "memory": "64",
    "containerDefinitions": [
        {
            "name": "sleeper",
            "image": "sandbox/shell:latest",
            "essential": True,
            "command": ["sh", "-c", "echo sleeping; sleep 30"],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/residency/sleeper",
                    "awslogs-region": "eu-central-1",
                    "awslogs-stream-prefix": "test",
                },
            },
        }
    ],
}


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env["HOME"],
    )


def test_sandbox_killed_mid_wait_is_exit_7_and_attach_after_restart_is_honest(
    tmp_path: Path,
) -> None:
    maps = tmp_path / "acme"
    shutil.copytree(EXAMPLE_DIR, maps)
    (maps / "task-definitions" / "sleeper.json").write_text(json.dumps(SLEEPER))
    with (maps / "residency.yaml").open("a", encoding="utf-8") as text:
        text.write("  sleeper:\n    task_definition: sleeper\n    location: newyork\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESIDENCY_"))}
    env.update(
        RESIDENCY_STATE_DIR=str(tmp_path / "state"),
        RESIDENCY_JOURNAL=str(tmp_path / "state" / "journal.jsonl"),
        RESIDENCY_CONFIG=str(maps / "residency.yaml"),
        HOME=str(tmp_path),
        NO_COLOR="1",
    )
    bad = _cli(env, "sandbox", "up", "--port", "0", "--faults", "throttle=2")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --faults: 'throttle=2'")
    assert len(bad.stderr.strip().splitlines()) == 1
    assert _cli(env, "sandbox", "status").returncode == 3  # nothing was started

    up = _cli(
        env,
        "sandbox",
        "up",
        "--port",
        "0",
        "--label-hosts",
        "--faults",
        "slow=0.05,slow_seconds=0.01",
        "--fault-seed",
        "5",
    )
    assert up.returncode == 0, up.stderr
    status = json.loads(_cli(env, "sandbox", "status", "-o", "json").stdout)
    assert status["faults"] == "slow=0.05,slow_seconds=0.01" and status["fault_seed"] == 5
    try:
        command = [sys.executable, "-c", "from residency_cli.cli.app import run; run()"]
        run = subprocess.Popen(
            [*command, "--sandbox", "run", "sleeper", "--no-follow"],
            env=env,
            cwd=env["HOME"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        running = threading.Event()

        def read_stderr() -> None:
            assert run.stderr is not None
            for line in run.stderr:
                lines.append(line)
                if "→ RUNNING" in line:
                    running.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        assert running.wait(20), "".join(lines)
        os.kill(status["pid"], signal.SIGKILL)
        killed = time.monotonic()
        code = run.wait(60)
        took = time.monotonic() - killed
        reader.join(5)
        assert code == 7, "".join(lines)
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and "cannot reach http://127.0.0.1:" in errors[0], "".join(lines)
        assert "Traceback" not in "".join(lines)
        print(f"exit 7 {took:.2f}s after the sandbox was killed")  # a figure, not a test
        task_id = next(
            line.split("task ", 1)[1].split(":", 1)[0] for line in lines if "→ RUNNING" in line
        )

        again = _cli(env, "sandbox", "up", "--port", "0", "--label-hosts")
        assert again.returncode == 0, again.stderr
        assert "removed the record of a sandbox that had died" in again.stderr
        attach = _cli(env, "--sandbox", "attach", task_id)
        assert attach.returncode == 7, attach.stderr
        assert f"task {task_id} not found in cluster acme-etl" in attach.stderr
    finally:
        _cli(env, "sandbox", "down")
