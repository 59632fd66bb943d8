"""`run W1 W2 ...` and `run --all` on the sandbox (issue 17, part 4): several workloads
dispatched together, all or none, waited on in the engine's one loop, reported each, the
exit code of the most severe run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from residency_cli.dispatch import Dispatcher, RunOptions
from residency_cli.journal import read
from residency_cli.results import Outcome, TaskOutcome
from tests.support.cli import cli
from tests.support.running import InterruptedOnce, start_until_running
from tests.support.world import World

SLOW = ["sleep", "30"]
# The keys of one run's JSON object (CONTRACT.md section 4): each element of the list.
SINGLE_RUN_KEYS = set(TaskOutcome("w", [], "c", None, Outcome.SUCCEEDED).to_json())


def _counting_ticks(dispatcher: Dispatcher) -> list[Any]:
    """Record, in order, each DescribeTasks (the tasks it asked for) and each pause of the
    waiting loop (`"tick"`), so that a test can count DescribeTasks per tick."""
    seen: list[Any] = []
    describe = dispatcher.ecs.describe_tasks
    sleep = dispatcher.sleep

    def describe_tasks(**kwargs: Any) -> Any:
        seen.append(set(kwargs["tasks"]))
        return describe(**kwargs)

    def pause(seconds: float) -> None:
        seen.append("tick")
        sleep(seconds)

    dispatcher.ecs.describe_tasks = describe_tasks  # type: ignore[method-assign]
    dispatcher.sleep = pause
    return seen


def test_bonus_and_tax_succeed_on_their_own_hosts_in_one_waiting_loop(world: World) -> None:
    dispatcher = world.dispatcher()
    seen = _counting_ticks(dispatcher)
    world.sandbox.reset_calls()

    results = dispatcher.run_many(["bonus", "tax"], RunOptions(run_id="both"))

    assert [r.outcome for r in results.runs] == ["succeeded", "succeeded"]
    where = [(r.primary.workload, r.primary.host) for r in results.runs]
    assert [(w, h.hostname, h.location) for w, h in where if h] == [
        ("bonus", "bonus.host", "newyork"),
        ("tax", "tax.host", "frankfurt"),
    ]
    assert {r.primary.run_id for r in results.runs} == {"both"}
    arns = {str(r.primary.task_arn) for r in results.runs}
    describes = [entry for entry in seen if entry != "tick"]
    # One loop: its first DescribeTasks asks for both tasks, and no tick sends two.
    assert describes and describes[0] == arns
    assert all(tasks <= arns for tasks in describes)
    per_tick = [0]
    for entry in seen:
        if entry == "tick":
            per_tick.append(0)
        else:
            per_tick[-1] += 1
    assert max(per_tick) == 1 and len(per_tick) > 1, seen
    assert len(describes) == world.sandbox.calls("DescribeTasks")
    assert world.sandbox.calls("RunTask") == 2
    # Both jobs' logs were followed, each line prefixed with its workload.
    assert {c.split("/")[0] for c in world.recorder.containers} == {"bonus", "tax"}


def test_a_misplaced_task_is_a_violation_and_the_other_workload_goes_on(world: World) -> None:
    world = world.with_workloads({"slow-fra": (SLOW, "frankfurt")})
    world.sandbox.misplace_next_run_task("bonus.host")  # the first RunTask: slow-fra's
    results = world.dispatcher().run_many(["slow-fra", "small"], RunOptions(run_id="mis"))
    assert [r.outcome for r in results.runs] == ["violation", "succeeded"]
    assert results.exit_code() == 4
    stopped = world.sandbox.describe_task(str(results.runs[0].primary.task_arn))
    assert (
        stopped["stopCode"] == "UserInitiated" and "outside frankfurt" in stopped["stoppedReason"]
    )


def test_ctrl_c_during_the_first_run_task_dispatches_nothing_else(world: World) -> None:
    clients = world.sandbox.clients()
    ecs = InterruptedOnce(clients.ecs)
    dispatcher = Dispatcher(ecs, clients.ssm, world.config)  # type: ignore[arg-type]
    results = dispatcher.run_many(["slow", "small"], RunOptions(run_id="cc"))
    assert [r.outcome for r in results.runs] == ["interrupted", "refused"]
    assert results.exit_code() == 130
    assert ecs.run_tasks == 2  # slow's request again (same task), never small's
    running = clients.ecs.list_tasks(cluster=world.config.cluster)["taskArns"]
    assert running == [results.runs[0].primary.task_arn]
    explained = str(results.explanation())
    assert f"attach {results.runs[0].primary.task_id}" in explained
    assert "not dispatched: interrupted before its RunTask" in explained
    journal = read(Path(os.environ["RESIDENCY_JOURNAL"]))
    runs = {(r["workload"], r["result"]["outcome"]) for r in journal if r["event"] == "run"}
    assert runs == {("slow", "interrupted"), ("small", "refused")}


# --- through the command line ---------------------------------------------------------


@pytest.fixture
def base(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    world.sandbox.use(monkeypatch)
    return ["--sandbox", "-c", str(world.map_path)]


def test_cli_json_is_a_list_of_the_single_run_objects(
    world: World, base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, *base, "run", "bonus", "tax", "--run-id", "j", "-o", "json")
    assert code == 0, err
    documents = json.loads(out)
    assert isinstance(documents, list) and [d["workload"] for d in documents] == ["bonus", "tax"]
    assert all(set(d) == SINGLE_RUN_KEYS for d in documents)
    assert [(d["outcome"], d["run_id"], d["host"]["location"]) for d in documents] == [
        ("succeeded", "j", "newyork"),
        ("succeeded", "j", "frankfurt"),
    ]
    # One run id for the command, printed once; the logs on stderr, prefixed per workload.
    assert err.count("run id j ") == 1
    assert "bonus/christmas_bonus" in err and "tax/tax_amount" in err
    # The same run id again: the journal knows both runs, no second task of either.
    world.sandbox.reset_calls()
    code, out, _ = cli(capsys, *base, "run", "bonus", "tax", "--run-id", "j", "-o", "json")
    assert code == 0 and world.sandbox.calls("RunTask") == 0
    assert [d["task_arn"] for d in json.loads(out)] == [d["task_arn"] for d in documents]


def test_cli_exit_code_is_the_most_severe_and_text_reports_each(
    base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, *base, "run", "hello", "fail", "--no-follow")
    assert code == 1, err
    assert "succeeded hello on bonus.host (newyork), exit code 0" in out
    assert "failed fail on bonus.host (newyork), exit code 3" in out
    assert out.rstrip().endswith("2 workloads: 1 failed, 1 succeeded")
    assert "error: fail failed: its container exited with code 3" in err
    # Each status line says whose task it is.
    assert "(hello): " in err and "(fail): " in err and "→ STOPPED" in err
    code, _, _ = cli(capsys, *base, "run", "fail", "hello", "--exit-code", "container")
    assert code == 3


def test_cli_all_runs_every_workload_of_the_map(
    world: World, base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = world.map_path.read_text(encoding="utf-8")
    head = text[: text.index("workloads:")]
    only_two = tmp_path / "two.yaml"
    only_two.write_text(
        head + "workloads:\n"
        "  hello:\n    task_definition: test-hello\n    location: newyork\n"
        "  fail:\n    task_definition: test-fail\n    location: newyork\n",
        encoding="utf-8",
    )
    code, out, err = cli(capsys, "--sandbox", "-c", str(only_two), "run", "--all", "-o", "json")
    documents = json.loads(out)
    assert code == 1, err
    assert [(d["workload"], d["outcome"]) for d in documents] == [
        ("hello", "succeeded"),
        ("fail", "failed"),
    ]
    # --all prints a list even when the map has a single workload (the shape is the form's).
    single = tmp_path / "one.yaml"
    single.write_text(
        head + "workloads:\n  hello:\n    task_definition: test-hello\n    location: newyork\n",
        encoding="utf-8",
    )
    code, out, _ = cli(capsys, "--sandbox", "-c", str(single), "run", "--all", "-o", "json")
    assert code == 0 and [d["workload"] for d in json.loads(out)] == ["hello"]


def test_cli_one_refused_workload_dispatches_none(
    world: World, base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.drain("tax.host")
    world.sandbox.reset_calls()
    code, out, err = cli(capsys, *base, "run", "bonus", "tax", "-o", "json")
    assert code == 3, err
    assert [(d["workload"], d["outcome"]) for d in json.loads(out)] == [
        ("bonus", "refused"),
        ("tax", "refused"),
    ]
    assert world.sandbox.calls("RunTask") == 0
    assert "refused to dispatch tax: " in err
    assert "refused to dispatch bonus: not dispatched: tax refused" in err


def test_cli_dry_run_prints_each_plan_and_changes_nothing(
    world: World, base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.reset_calls()
    code, out, _ = cli(capsys, *base, "run", "bonus", "tax", "--dry-run", "-o", "json")
    plans = json.loads(out)
    assert code == 0 and [(p["workload"], p["ready"]) for p in plans] == [
        ("bonus", True),
        ("tax", True),
    ]
    assert {p["request"]["clientToken"] for p in plans} != {plans[0]["request"]["clientToken"]}
    counts = world.sandbox.call_counts()
    changing = [
        op for op in counts if not op.split(":")[-1].startswith(("Describe", "List", "Get"))
    ]
    assert changing == [], counts
    code, out, err = cli(capsys, *base, "run", "bonus", "tax", "--dry-run")
    assert code == 0 and out.count("aws ecs run-task") == 2
    assert "bonus: ready" in err and "tax: ready" in err


def test_cli_no_wait_reports_each_dispatched_task(
    base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, *base, "run", "hello", "small", "--no-wait", "-o", "json")
    documents = json.loads(out)
    assert code == 0, err
    assert [(d["workload"], d["outcome"]) for d in documents] == [
        ("hello", "dispatched"),
        ("small", "dispatched"),
    ]


def test_ctrl_c_leaves_every_task_running_with_its_attach_command(world: World) -> None:
    world = world.with_workloads({"slow-fra": (SLOW, "frankfurt")})
    env = {**os.environ, **world.sandbox.env()}
    process, seen = start_until_running(
        ["-c", str(world.map_path), "run", "slow", "slow-fra", "--run-id", "two"], env
    )
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, seen + err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: interrupted; task ")]
    assert len(lines) == 2 and all(f"residency --config {world.map_path} " in x for x in lines)
    task_ids = [line.split(" attach ")[-1].strip() for line in lines]
    for task_id in task_ids:
        assert world.sandbox.describe_task(task_id)["lastStatus"] in ("PENDING", "RUNNING")
    journal = read(Path(env["RESIDENCY_JOURNAL"]))
    runs = {(r["workload"], r["result"]["outcome"]) for r in journal if r["event"] == "run"}
    assert runs == {("slow", "interrupted"), ("slow-fra", "interrupted")}
