"""`Dispatcher.outcomes`: several runs of several workloads, dispatched without waiting, then
waited on by one loop (the fan-out of issue 8: one DescribeTasks a tick for them all)."""

from __future__ import annotations

from typing import Any

from residency_cli.config import parse_config
from residency_cli.dispatch import RunOptions
from tests.support.world import World

FRANKFURT_JOB = ["python3", "-c", "print('small in frankfurt')"]


def _with_frankfurt_workload(world: World) -> World:
    """Adds `small-fra` (prints a line) and `slow-fra` (sleeps 30 s), both in frankfurt."""
    world.sandbox.register_task_definition("test-small-fra", FRANKFURT_JOB, cpu=64, memory=32)
    world.sandbox.register_task_definition("test-slow-fra", ["sleep", "30"], cpu=64, memory=32)
    text = world.map_path.read_text(encoding="utf-8")
    text += "  small-fra:\n    task_definition: test-small-fra\n    location: frankfurt\n"
    text += "  slow-fra:\n    task_definition: test-slow-fra\n    location: frankfurt\n"
    world.map_path.write_text(text, encoding="utf-8")
    return World(world.sandbox, parse_config(text, str(world.map_path)), world.map_path)


def _counting_describes(world: World) -> tuple[Any, list[int]]:
    """A dispatcher whose ECS client records how many tasks each DescribeTasks asked for."""
    dispatcher = world.dispatcher()
    sizes: list[int] = []
    real = dispatcher.ecs.describe_tasks

    def describe_tasks(**kwargs: Any) -> Any:
        sizes.append(len(kwargs["tasks"]))
        return real(**kwargs)

    dispatcher.ecs.describe_tasks = describe_tasks  # type: ignore[method-assign]
    return dispatcher, sizes


def test_runs_of_both_locations_are_waited_on_together(world: World) -> None:
    world = _with_frankfurt_workload(world)
    dispatcher, sizes = _counting_describes(world)
    plan = [("small", "ny-1", 5), ("small-fra", "fra-1", 5), ("small", "ny-2", 4)]
    runs = [
        dispatcher.run(name, RunOptions(run_id=run_id, count=count), wait=False)
        for name, run_id, count in plan
    ]
    assert [r.outcome for r in runs] == ["dispatched"] * 3
    world.sandbox.reset_calls()
    sizes.clear()

    results = dispatcher.outcomes(runs)

    assert [r.outcome for r in results] == ["succeeded"] * 3
    for (name, run_id, count), result in zip(plan, results, strict=True):
        assert len(result.tasks) == count
        expected = ("tax.host", "frankfurt") if name == "small-fra" else ("bonus.host", "newyork")
        for task in result.tasks:
            assert (task.workload, task.run_id, task.exit_code) == (name, run_id, 0)
            assert task.host is not None and (task.host.hostname, task.host.location) == expected
    # One DescribeTasks per tick covers every task still running, never one call per run.
    assert sizes and sizes[0] == 14 and len(sizes) == world.sandbox.calls("DescribeTasks")
    # Hosts are read back in batches: far fewer calls than the 14 tasks.
    assert world.sandbox.calls("DescribeContainerInstances") < 14
    assert world.sandbox.calls("RunTask") == 0


def test_a_misplaced_run_is_a_violation_and_the_others_go_on(world: World) -> None:
    world = _with_frankfurt_workload(world)
    dispatcher = world.dispatcher()
    good = dispatcher.run("small", RunOptions(run_id="good", count=2), wait=False)
    world.sandbox.misplace_next_run_task("bonus.host")  # frankfurt's job on a newyork host
    # A task that would not end by itself, so that only residency's StopTask can end it.
    bad = dispatcher.run("slow-fra", RunOptions(run_id="bad"), wait=False)
    assert bad.outcome == "violation"  # found at once, from the RunTask answer

    results = dispatcher.outcomes([good, bad])

    assert [r.outcome for r in results] == ["succeeded", "violation"]
    violation = results[1].primary
    assert violation.host is not None and violation.host.location == "newyork"
    assert "outside frankfurt" in (violation.message or "")
    stopped = world.sandbox.describe_task(violation.task_arn)
    assert stopped["lastStatus"] == "STOPPED" and stopped["stopCode"] == "UserInitiated"


def test_misplaced_when_running_is_found_by_the_shared_loop(world: World) -> None:
    """The host's label changes between RunTask and RUNNING: the check at RUNNING (batched
    with the other tasks') stops that task; the other run is not disturbed."""
    world = _with_frankfurt_workload(world)
    dispatcher = world.dispatcher()
    slow = dispatcher.run("slow", RunOptions(run_id="slow"), wait=False)
    fra = dispatcher.run("small-fra", RunOptions(run_id="fra"), wait=False)
    world.sandbox.label("bonus.host", "frankfurt")  # `slow` allows newyork only

    results = dispatcher.outcomes([slow, fra], timeout=20)

    assert [r.outcome for r in results] == ["violation", "succeeded"]
    assert "outside newyork" in (results[0].primary.message or "")


def test_timeout_leaves_tasks_running_and_says_so(world: World) -> None:
    dispatcher = world.dispatcher()
    runs = [dispatcher.run("slow", RunOptions(run_id=f"t{i}"), wait=False) for i in range(2)]
    results = dispatcher.outcomes(runs, timeout=0.3)
    assert [r.outcome for r in results] == ["timeout", "timeout"]
    for result in results:
        assert world.sandbox.describe_task(result.primary.task_arn)["lastStatus"] == "RUNNING"


def test_a_refused_run_is_returned_as_it_was(world: World) -> None:
    world.sandbox.drain("bonus.host")
    refused = world.dispatcher().run("small", RunOptions(run_id="r"), wait=False)
    assert refused.outcome == "refused"
    assert world.dispatcher().outcomes([refused]) == [refused]
