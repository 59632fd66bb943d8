"""The Outcome enum: every outcome's JSON value, exit code, severity and sentence in one place."""

from __future__ import annotations

import json

import pytest

from residency_cli.results import Outcome, RunResult, RunResults, TaskOutcome


def _task(outcome: Outcome, **facts: object) -> TaskOutcome:
    base: dict[str, object] = {
        "workload": "bonus",
        "locations": ["newyork"],
        "cluster": "acme-etl",
        "run_id": "r1",
        "outcome": outcome,
        "task_arn": "arn:aws:ecs:eu-central-1:123456789012:task/acme-etl/abc",
    }
    return TaskOutcome(**{**base, **facts})  # type: ignore[arg-type]


def test_values_and_exit_codes_are_the_contract() -> None:
    # CONTRACT.md sections 4 and 6.
    assert {o.value: o.exit_code for o in Outcome} == {
        "succeeded": 0,
        "dispatched": 0,
        "failed": 1,
        "not_started": 5,
        "timeout": 6,
        "refused": 3,
        "interrupted": 130,
        "violation": 4,
        "host_lost": 5,
        "partial": 3,
    }
    assert json.dumps(Outcome.FAILED) == '"failed"' and Outcome.FAILED == "failed"


def test_severity_orders_a_violation_first() -> None:
    order = [o.value for o in Outcome.by_severity()]
    assert order[-1] == "violation" and order[0] == "succeeded"
    assert len({o.severity for o in Outcome}) == len(Outcome)


def test_the_worst_task_decides_a_run() -> None:
    run = RunResult(
        [_task(Outcome.SUCCEEDED), _task(Outcome.VIOLATION, message="residency: host x is in y")]
    )
    assert run.outcome is Outcome.VIOLATION and run.exit_code() == 4
    assert run.to_json()["outcome"] == "violation" and len(run.to_json()["tasks"]) == 2


@pytest.mark.parametrize(
    ("outcome", "facts", "sentence"),
    [
        (Outcome.SUCCEEDED, {}, None),
        (
            Outcome.FAILED,
            {"exit_code": 3},
            "bonus failed: its container exited with code 3 (task abc)",
        ),
        (
            Outcome.NOT_STARTED,
            {"stop_code": "TaskFailedToStart"},
            "task abc never ran to completion: TaskFailedToStart: no reason given",
        ),
        (
            Outcome.TIMEOUT,
            {},
            "timed out waiting for task abc; it is left running: residency --sandbox attach abc"
            " (or residency --sandbox stop abc)",
        ),
        (
            Outcome.INTERRUPTED,
            {},
            "interrupted; task abc is left running: residency --sandbox attach abc",
        ),
        (
            Outcome.VIOLATION,
            {"message": "residency: host tax.host is in frankfurt, outside newyork"},
            "residency violation: host tax.host is in frankfurt, outside newyork "
            "(task abc was stopped)",
        ),
        (Outcome.REFUSED, {"message": "no host"}, "refused to dispatch bonus: no host"),
    ],
)
def test_each_outcome_explains_itself(
    outcome: Outcome, facts: dict[str, object], sentence: str | None
) -> None:
    assert _task(outcome, **facts).explanation("residency --sandbox") == sentence


def test_host_lost_names_the_host_and_what_to_do() -> None:
    lost = _task(Outcome.HOST_LOST, status="RUNNING", message="host bonus.host is unreachable: x")
    assert lost.explanation("residency") == (
        "host bonus.host is unreachable: x; task abc was last seen RUNNING: "
        "residency attach abc later, or residency stop abc"
    )


def test_a_partial_start_is_its_own_outcome_unless_something_worse_happened() -> None:
    failures: list[dict[str, str | None]] = [{"arn": "ci/1", "reason": "RESOURCE:MEMORY"}]
    run = RunResult([_task(Outcome.SUCCEEDED, exit_code=0)], failures=failures)
    assert run.outcome is Outcome.PARTIAL and run.exit_code() == 3
    assert run.explanation() == (
        "bonus: ECS started fewer tasks than asked for: started 1 of 2 (RESOURCE:MEMORY)"
    )
    document = run.to_json()
    assert document["outcome"] == "partial" and document["failures"] == failures
    worse = RunResult([_task(Outcome.VIOLATION, message="m")], failures=failures)
    assert worse.outcome is Outcome.VIOLATION


def test_container_exit_code_mode() -> None:
    failed = RunResult([_task(Outcome.FAILED, exit_code=3)])
    assert failed.exit_code() == 1 and failed.exit_code(container_code=True) == 3
    done = RunResult([_task(Outcome.SUCCEEDED, exit_code=0)])
    assert done.exit_code(container_code=True) == 0


def _run(workload: str, *outcomes: Outcome, **facts: object) -> RunResult:
    return RunResult(
        [
            _task(o, workload=workload, task_arn=f"arn:aws:ecs:r:1:task/c/{workload}{i}", **facts)
            for i, o in enumerate(outcomes)
        ]
    )


def test_the_most_severe_run_decides_a_multi_workload_command() -> None:
    runs = RunResults(
        [
            _run("bonus", Outcome.SUCCEEDED),
            _run("tax", Outcome.FAILED, exit_code=3),
            _run("report", Outcome.TIMEOUT),
        ]
    )
    assert runs.outcome is Outcome.TIMEOUT and runs.exit_code() == 6
    assert runs.summary == "3 workloads: 1 timeout, 1 failed, 1 succeeded"
    # JSON: the list of single-run objects, each exactly what one run prints.
    assert runs.to_json() == [run.to_json() for run in runs.runs]
    explained = str(runs.explanation("residency")).split("\n")
    assert explained[0].startswith("timed out waiting for task report0")
    assert explained[1].startswith("tax failed: its container exited with code 3")
    assert len(explained) == 2  # nothing to say about the run that succeeded


def test_a_violation_beats_an_interruption_and_container_codes_follow_the_worst() -> None:
    violation = _run("tax", Outcome.VIOLATION, message="residency: host x is in y")
    interrupted = _run("bonus", Outcome.INTERRUPTED)
    assert RunResults([interrupted, violation]).exit_code() == 4
    failed = RunResults(
        [_run("bonus", Outcome.SUCCEEDED), _run("tax", Outcome.FAILED, exit_code=7)]
    )
    assert failed.exit_code() == 1 and failed.exit_code(container_code=True) == 7
    assert RunResults([_run("bonus", Outcome.SUCCEEDED)] * 2).explanation() is None


def test_every_task_left_running_is_named_with_its_attach_command() -> None:
    runs = RunResults(
        [
            _run("bonus", Outcome.INTERRUPTED, Outcome.INTERRUPTED),
            _run("tax", Outcome.INTERRUPTED),
            _run("report", Outcome.SUCCEEDED),
        ]
    )
    explained = str(runs.explanation("residency --sandbox"))
    for task_id in ("bonus0", "bonus1", "tax0"):
        assert f"residency --sandbox attach {task_id}" in explained
    assert runs.exit_code() == 130
