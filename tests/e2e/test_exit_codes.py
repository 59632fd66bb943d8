"""Exit codes 3 and 4 of `run` and `check` through the CLI, on the sandbox (CONTRACT.md 3, 4, 6):
a misplaced task is stopped and exits 4; a refusal (pre-flight or ECS) exits 3 and starts
nothing; pre-flight names, host by host, exactly why each one is excluded."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from residency_cli.cli.app import main
from residency_cli.sandbox.seed import EXAMPLE_MAP, load_bundle
from tests.support.world import World


def _cli(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    """`residency --sandbox -c MAP ARGS...`: its exit code, its JSON document, its stderr."""
    code = main(["--sandbox", "-c", str(world.map_path), *args])
    captured = capsys.readouterr()
    assert captured.out, f"exit {code}, no JSON on stdout; stderr:\n{captured.err}"
    return code, json.loads(captured.out), captured.err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _add_workload(world: World, name: str, **definition: Any) -> None:
    """A newyork workload `name` on a new task definition `test-<name>` (sandbox defaults
    but for `definition`), appended to the map the CLI reads."""
    world.sandbox.register_task_definition(f"test-{name}", ["true"], **definition)
    with world.map_path.open("a", encoding="utf-8") as file:
        file.write(f"  {name}:\n    task_definition: test-{name}\n    location: newyork\n")


def _task_arns(world: World, family: str) -> list[str]:
    ecs = world.sandbox._internal("ecs")
    return [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(
            cluster=world.sandbox.cluster, family=family, desiredStatus=status
        )["taskArns"]
    ]


# --- exit 4: a task the control plane misplaced ---------------------------------------------


def test_run_misplaced_task_exits_4_and_is_stopped(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.misplace_next_run_task("tax.host")
    world.sandbox.reset_calls()
    code, document, err = _cli(world, capsys, "run", "slow", "-o", "json")
    assert code == 4, err
    assert document["outcome"] == "violation"
    assert document["host"]["hostname"] == "tax.host"
    assert document["host"]["location"] == "frankfurt"
    assert document["host"]["instance_id"] == world.sandbox.host("tax.host").instance_id
    errors = _error_lines(err)
    assert len(errors) == 1, err
    assert "tax.host" in errors[0] and "frankfurt" in errors[0], errors
    assert document["task_id"] in errors[0]
    assert "NOT ALLOWED" in err  # the placement line, as it happened
    assert world.sandbox.calls("RunTask") == 1
    assert world.sandbox.calls("StopTask") == 1  # residency stopped it, nothing else did
    stopped = world.sandbox.wait_for_task(document["task_arn"])
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "residency: host tax.host is in frankfurt, outside newyork"
    assert document["stopped_reason"] == stopped["stoppedReason"]


# --- exit 3: refused, nothing ran -------------------------------------------------------------


def test_run_ecs_placement_failure_after_preflight_exits_3(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pre-flight passes, then the only newyork host drains before RunTask: ECS answers
    `failures`, which is a refusal (exit 3) that keeps ECS's own reason."""
    import residency_cli.dispatch as dispatch

    real_check = dispatch.preflight

    def check_then_drain(*args: Any, **kwargs: Any) -> Any:
        checked = real_check(*args, **kwargs)
        assert checked.ready  # pre-flight really passed
        world.sandbox.drain("bonus.host")
        return checked

    monkeypatch.setattr(dispatch, "preflight", check_then_drain)
    world.sandbox.use(monkeypatch)
    world.sandbox.reset_calls()
    code, document, err = _cli(world, capsys, "run", "slow", "-o", "json")
    assert code == 3, err
    assert document["outcome"] == "refused"
    assert (document["task_arn"], document["host"], document["status"]) == (None, None, None)
    assert _error_lines(err) == [
        "error: refused to dispatch slow: no ACTIVE host in the cluster satisfies the "
        "placement (a host may have drained or lost its label since pre-flight) "
        "(ECS: MemberOf placement constraint unsatisfied.)"
    ]
    assert world.sandbox.calls("RunTask") == 1
    assert _task_arns(world, "test-slow") == []


def test_run_without_a_compliant_host_exits_3_and_never_calls_run_task(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.drain("bonus.host")  # the only newyork host
    world.sandbox.reset_calls()
    code, document, err = _cli(world, capsys, "run", "slow", "-o", "json")
    assert code == 3, err
    assert document["outcome"] == "refused" and document["task_arn"] is None
    errors = _error_lines(err)
    assert (
        errors[0]
        == "error: refused to dispatch slow: no compliant host for slow (allowed: newyork)"
    )
    # Pre-flight asks ECS for the hosts of the workload's location only (issue 17): the
    # frankfurt host is neither described nor named; `check` diagnoses the whole fleet.
    assert errors[1:] == ["error:   bonus.host: status DRAINING, not ACTIVE"]
    assert world.sandbox.calls("RunTask") == 0
    assert _task_arns(world, "test-slow") == []


# --- pre-flight: why each host is excluded -----------------------------------------------------

_SEED = load_bundle(EXAMPLE_MAP)  # what the `sandbox` fixture seeds from
CPU = _SEED.host_cpu  # every seeded host registers this much CPU and memory
MEMORY = _SEED.host_memory
OTHER = "location frankfurt, not newyork"  # tax.host, whatever the case


def _disconnect(world: World) -> str:
    world.sandbox.disconnect_agent("bonus.host")
    return "hello"


def _cpu_hungry(world: World) -> str:
    _add_workload(world, "hungry", cpu=CPU + 1024, memory=128)
    return "hungry"


def _memory_hungry(world: World) -> str:
    _add_workload(world, "hungry", cpu=256, memory=MEMORY + 1024)
    return "hungry"


def _unlabel(world: World) -> str:
    world.sandbox.label("bonus.host", None)
    return "hello"


def _move(world: World) -> str:
    world.sandbox.label("bonus.host", "frankfurt")
    return "hello"


@pytest.mark.parametrize(
    ("arrange", "bonus_host", "tax_host"),
    [
        pytest.param(_disconnect, ["agent disconnected"], [OTHER], id="agent-disconnected"),
        pytest.param(
            _cpu_hungry,
            [f"not enough CPU ({CPU} free, {CPU + 1024} needed)"],
            [OTHER, f"not enough CPU ({CPU} free, {CPU + 1024} needed)"],
            id="not-enough-cpu",
        ),
        pytest.param(
            _memory_hungry,
            [f"not enough memory ({MEMORY} MiB free, {MEMORY + 1024} needed)"],
            [OTHER, f"not enough memory ({MEMORY} MiB free, {MEMORY + 1024} needed)"],
            id="not-enough-memory",
        ),
        pytest.param(
            _unlabel, ["no location attribute, not newyork"], [OTHER], id="no-location-attribute"
        ),
        pytest.param(_move, [OTHER], [OTHER], id="another-location"),
    ],
)
def test_check_names_why_each_host_is_excluded(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arrange: Callable[[World], str],
    bonus_host: list[str],
    tax_host: list[str],
) -> None:
    world.sandbox.use(monkeypatch)
    workload = arrange(world)
    code, document, err = _cli(world, capsys, "check", workload, "-o", "json")
    assert code == 3, err
    assert [c["workload"] for c in document] == [workload]
    checked = document[0]
    assert checked["ready"] is False and checked["problems"] == []
    reasons = {h["hostname"]: h["reasons"] for h in checked["hosts"]}
    assert reasons == {"bonus.host": bonus_host, "tax.host": tax_host}
    assert not any(h["compliant"] for h in checked["hosts"])
    assert _error_lines(err) == [f"error: not ready: {workload}"]


def test_check_passes_with_the_seeded_hosts(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline the cases above change: bonus.host takes `hello` (exit 0)."""
    world.sandbox.use(monkeypatch)
    code, document, err = _cli(world, capsys, "check", "hello", "-o", "json")
    assert code == 0, err
    reasons = {h["hostname"]: h["reasons"] for h in document[0]["hosts"]}
    assert reasons == {"bonus.host": [], "tax.host": [OTHER]}
    assert document[0]["ready"] is True


def _problem_ec2_only(world: World) -> str:
    arn = world.sandbox.task_definitions["test-incompatible"]
    return (
        f"task definition {arn} requires EC2, not EXTERNAL: add EXTERNAL to requiresCompatibilities"
    )


def _problem_no_logs(world: World) -> str:
    return (
        "container main has no awslogs log configuration: add logConfiguration "
        "{logDriver: awslogs, options: {awslogs-group, awslogs-region, awslogs-stream-prefix}}"
    )


@pytest.mark.parametrize(
    ("definition", "problem", "log_configured"),
    [
        pytest.param({"requiresCompatibilities": ["EC2"]}, _problem_ec2_only, True, id="ec2-only"),
        pytest.param({"log_group": None}, _problem_no_logs, False, id="no-log-configuration"),
    ],
)
def test_check_and_run_refuse_an_unfit_task_definition(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    definition: dict[str, Any],
    problem: Callable[[World], str],
    log_configured: bool,
) -> None:
    """A compliant host is not enough: the task definition itself must be runnable on
    EXTERNAL instances and send its logs somewhere `run` can follow them."""
    world.sandbox.use(monkeypatch)
    _add_workload(world, "incompatible", **definition)
    expected = problem(world)
    code, document, err = _cli(world, capsys, "check", "incompatible", "-o", "json")
    assert code == 3, err
    checked = document[0]
    assert checked["ready"] is False
    assert checked["problems"] == [expected]
    assert checked["log_configured"] is log_configured
    compliant = [h["hostname"] for h in checked["hosts"] if h["compliant"]]
    assert compliant == ["bonus.host"]  # the host is fine; the definition is not
    assert _error_lines(err) == ["error: not ready: incompatible"]

    world.sandbox.reset_calls()
    code, document, err = _cli(world, capsys, "run", "incompatible", "-o", "json")
    assert code == 3, err
    assert document["outcome"] == "refused"
    assert f"error: refused to dispatch incompatible: {expected}" in _error_lines(err)
    assert world.sandbox.calls("RunTask") == 0
