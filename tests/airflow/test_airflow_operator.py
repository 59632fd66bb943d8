"""ResidencyRunOperator under a real Apache Airflow, against the in-process sandbox: a
placement violation fails the task and stops the ECS task; a worker killed mid-run and the
task instance run again reattaches to the ECS task still running (one ECS task in all); a
task instance that succeeded and is cleared runs the workload again."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from residency_cli.constants import VIOLATION_REASON_PREFIX
from residency_cli.journal import RunJournal
from tests.support.airflow import (
    AIRFLOW_PYTHON,
    AIRFLOW_TIMEOUT,
    airflow_env,
    drive,
    driver_command,
    last_json,
    migrate,
    operator_dags,
    write_airflow_map,
)

pytestmark = pytest.mark.skipif(
    not AIRFLOW_PYTHON, reason="RESIDENCY_AIRFLOW_PYTHON is not set (run `make test-airflow`)"
)
LOGICAL_DATE = "2024-12-24T00:00:00+00:00"
WAIT = 120.0  # seconds a state of the world is waited for, at most


def _until(what: str, condition: Callable[[], Any]) -> Any:
    """Poll `condition` (every 50 ms) until it is truthy; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not (value := condition()):
        assert time.monotonic() < deadline, f"not {what} after {WAIT:.0f}s"
        time.sleep(0.05)
    return value


def _tasks_of(sandbox: Any, family: str, status: str) -> list[dict[str, Any]]:
    """The sandbox's tasks of a family in this lastStatus (uncounted calls)."""
    ecs = sandbox._internal("ecs")
    arns = [
        *ecs.list_tasks(cluster=sandbox.cluster, family=family)["taskArns"],
        *ecs.list_tasks(cluster=sandbox.cluster, family=family, desiredStatus="STOPPED")[
            "taskArns"
        ],
    ]
    if not arns:
        return []
    found = ecs.describe_tasks(cluster=sandbox.cluster, tasks=arns)["tasks"]
    return [t for t in found if t["lastStatus"] == status]


def _ended(process: subprocess.Popen[Any], log: Path) -> None:
    """Fail the test (with the process's output) if it ended."""
    assert process.poll() is None, log.read_text(encoding="utf-8")[-5000:]


@pytest.fixture
def airflow(sandbox: Any, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The sandbox labelled, the test map, a DAG per workload, Airflow's database."""
    sandbox.label_all()
    release = tmp_path / "release"
    hold = ["python3", "-c", HOLD.format(release=str(release))]
    map_path, _ = write_airflow_map(
        sandbox,
        tmp_path,
        {"quick": ["python3", "-c", "print('quick starts'); print('done')"], "hold": hold},
    )
    dags = operator_dags(tmp_path / "dags", map_path, ["quick", "hold"])
    env = airflow_env(sandbox, tmp_path / "airflow", dags)
    migrate(env)
    sandbox.reset_calls()
    return env, dags


# The job waits (at most 3 minutes) until the test creates the release file. Its path is in
# the code, not an argument: the sandbox maps arguments under /tmp to the task's own /tmp.
HOLD = """
import os, time
print("holding", flush=True)
end = time.time() + 180
while not os.path.exists({release!r}) and time.time() < end:
    time.sleep(0.1)
print("released")
"""


def test_a_host_relabelled_during_the_run_fails_the_task_and_stops_it(
    sandbox: Any, airflow: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, dags = airflow
    # Each DescribeContainerInstances answers 8 s late with the label as it is then: the
    # host is relabelled while the operator reads where its task was placed.
    sandbox.set_faults("slow:DescribeContainerInstances=1,slow_seconds=8")
    with open(tmp_path / "driver.log", "w+", encoding="utf-8") as log:
        driver = subprocess.Popen(
            driver_command(dags, "residency_hold"), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _until(
                "placed",
                lambda: (
                    _tasks_of(sandbox, "airflow-hold", "PENDING")
                    or _tasks_of(sandbox, "airflow-hold", "RUNNING")
                ),
            )
            sandbox.label("bonus.host", "frankfurt")
            driver.wait(timeout=AIRFLOW_TIMEOUT)
        finally:
            driver.kill()
            sandbox.clear_faults()
        log.seek(0)
        output = log.read()
    report = last_json(output)
    run = report["dags"]["residency_hold"]
    assert run["state"] == "failed", output[-5000:]
    outcome = run["tasks"]["hold"]["xcom"]["residency_result"]
    assert outcome["outcome"] == "violation"
    # The Airflow task fails with the host and its location.
    assert (
        "AirflowException: residency violation: host bonus.host is in frankfurt, outside "
        "newyork (the map declares it newyork)" in output
    )
    assert "placed on bonus.host in frankfurt: NOT ALLOWED" in output
    (stopped,) = _until("stopped", lambda: _tasks_of(sandbox, "airflow-hold", "STOPPED"))
    assert stopped["stoppedReason"].startswith(VIOLATION_REASON_PREFIX + "bonus.host")
    assert sandbox.calls("RunTask") == 1
    assert [r["result"]["outcome"] for r in RunJournal().records() if r["event"] == "run"] == [
        "violation"
    ]


def test_a_killed_worker_retried_reattaches_to_the_running_task(
    sandbox: Any, airflow: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, dags = airflow
    command = driver_command(dags, "residency_hold", logical_date=LOGICAL_DATE)
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "w", encoding="utf-8") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        (running,) = _until(
            "running",
            lambda: _tasks_of(sandbox, "airflow-hold", "RUNNING") or _ended(worker, worker_log),
        )
    finally:
        worker.kill()  # SIGKILL: no on_kill, no journal record, the ECS task keeps running
        worker.wait(timeout=60)
    still = [t["taskArn"] for t in _tasks_of(sandbox, "airflow-hold", "RUNNING")]
    assert still == [running["taskArn"]]

    with open(tmp_path / "retry.log", "w+", encoding="utf-8") as log:
        retry = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _until("reattached", lambda: "reattaching to task" in Path(log.name).read_text())
            (tmp_path / "release").touch()  # the job ends (exit 0) once the retry is attached
            retry.wait(timeout=AIRFLOW_TIMEOUT)
        finally:
            retry.kill()
        log.seek(0)
        output = log.read()
    run = last_json(output)["dags"]["residency_hold"]
    assert run["state"] == "success", output[-5000:]
    task = run["tasks"]["hold"]
    assert task["xcom"]["return_value"]["task_arn"] == running["taskArn"]
    assert task["xcom"]["return_value"]["outcome"] == "succeeded"
    assert sandbox.calls("RunTask") == 1  # one ECS task in all
    assert "holding" in output  # the job's log, followed by the retry
    events = [r["event"] for r in RunJournal().records()]
    assert events == ["intent", "attach"]  # try 1 died before its record


def test_a_cleared_task_instance_runs_the_workload_again(
    sandbox: Any, airflow: tuple[dict[str, str], Path]
) -> None:
    env, dags = airflow
    first, _ = drive(env, dags, "residency_quick", logical_date=LOGICAL_DATE)
    again, output = drive(env, dags, "residency_quick", logical_date=LOGICAL_DATE)
    tries = [r["dags"]["residency_quick"]["tasks"]["quick"] for r in (first, again)]
    assert [t["state"] for t in tries] == ["success", "success"], output[-5000:]
    # dag.test() deleted the DAG run and created it again: the same task instance (DAG id, run
    # id, task id, map index), a new try (its own Airflow id) that starts a new ECS task.
    assert first["dags"]["residency_quick"]["run_id"] == again["dags"]["residency_quick"]["run_id"]
    arns = [t["xcom"]["return_value"]["task_arn"] for t in tries]
    assert arns[0] != arns[1]
    assert sandbox.calls("RunTask") == 2
    runs = [r for r in RunJournal().records() if r["event"] == "run"]
    assert [r["result"]["task_arn"] for r in runs] == arns
    assert runs[0]["run_id"] != runs[1]["run_id"]


def test_on_kill_stops_the_ecs_task_and_journals_it(
    sandbox: Any, airflow: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """SIGTERM to the worker (Airflow's kill: the UI, a shutdown): Airflow calls on_kill,
    which stops the ECS task through Dispatcher.stop; the try fails."""
    env, dags = airflow
    log_path = tmp_path / "worker.log"
    with open(log_path, "w", encoding="utf-8") as log:
        worker = subprocess.Popen(
            driver_command(dags, "residency_hold"), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        (running,) = _until(
            "running",
            lambda: _tasks_of(sandbox, "airflow-hold", "RUNNING") or _ended(worker, log_path),
        )
        _until("followed", lambda: "[main] holding" in log_path.read_text(encoding="utf-8"))
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=AIRFLOW_TIMEOUT)
    finally:
        worker.kill()
    output = log_path.read_text(encoding="utf-8")
    (stopped,) = _until("stopped", lambda: _tasks_of(sandbox, "airflow-hold", "STOPPED"))
    assert stopped["taskArn"] == running["taskArn"]
    assert stopped["stoppedReason"].startswith(
        "stopped by Airflow: task instance residency_hold/"
    ), output[-5000:]
    assert f"stopped ECS task {running['taskArn'].rsplit('/', 1)[-1]}" in output
    stops = [r for r in RunJournal().records() if r["event"] == "stop"]
    assert [r["result"]["task_arn"] for r in stops] == [running["taskArn"]]
