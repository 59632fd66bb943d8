"""The example DAGs under a real Apache Airflow, against the in-process sandbox.

Airflow lives in its own virtual environment (`make test-airflow` builds .venv-airflow from
examples/airflow/requirements.txt and sets RESIDENCY_AIRFLOW_PYTHON); without it this test is
skipped. The DAGs are parsed with DagBag (no import errors allowed), then each runs with
`dag.test()`: ResidencyRunOperator pre-flights the workload, calls RunTask on the sandbox
(which evaluates the placement constraint and runs the job on a simulated host), verifies the
placement, copies the job's log into the task log and puts the outcome in XCom. The stock
EcsRunTaskOperator with `ecs_run_task_kwargs` is run too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from residency_cli.config import task_tag_value
from residency_cli.constants import AIRFLOW_DAG_TAG, AIRFLOW_RUN_TAG, AIRFLOW_TASK_TAG
from residency_cli.journal import RunJournal
from tests.support.airflow import AIRFLOW_PYTHON, EXAMPLE_DAGS, ROOT, airflow_env, drive, migrate

pytestmark = pytest.mark.skipif(
    not AIRFLOW_PYTHON, reason="RESIDENCY_AIRFLOW_PYTHON is not set (run `make test-airflow`)"
)


def test_example_dags_dispatch_to_the_right_hosts(sandbox: Any, tmp_path: Path) -> None:
    assert sandbox.config_path.resolve() == (ROOT / "examples/acme/residency.yaml").resolve()
    env = airflow_env(sandbox, tmp_path / "airflow")
    migrate(env)

    # No host carries a location yet: pre-flight refuses, and RunTask is never called.
    sandbox.reset_calls()
    refused, output = drive(env, EXAMPLE_DAGS, "residency_bonus")
    assert refused["dags"]["residency_bonus"]["state"] == "failed"
    assert "refused to dispatch bonus" in output
    assert "bonus.host: no location attribute" in output
    assert sandbox.calls("RunTask") == 0
    xcom = refused["dags"]["residency_bonus"]["tasks"]["bonus"]["xcom"]
    assert xcom["residency_result"]["outcome"] == "refused"

    sandbox.label_all()
    report, output = drive(env, EXAMPLE_DAGS, "residency_bonus", "residency_tax")
    assert report["import_errors"] == {}
    assert report["dag_ids"] == ["residency_bonus", "residency_tax"]
    expected = {"bonus": ("bonus.host", "newyork"), "tax": ("tax.host", "frankfurt")}
    ecs = sandbox.client("ecs")
    for workload, (hostname, location) in expected.items():
        run = report["dags"][f"residency_{workload}"]
        assert run["state"] == "success", output[-5000:]
        task = run["tasks"][workload]
        assert task["state"] == "success"
        # The outcome in XCom: `residency run -o json`'s document.
        outcome = task["xcom"]["return_value"]
        assert outcome == task["xcom"]["residency_result"]
        assert outcome["outcome"] == "succeeded" and outcome["exit_code"] == 0
        assert (outcome["host"]["hostname"], outcome["host"]["location"]) == (hostname, location)
        # The job's log lines in the task log, and the verified placement.
        assert f"Running on host '{hostname}'" in output
        assert f"placed on {hostname} in {location}: allowed" in output
        described = ecs.describe_tasks(
            cluster=sandbox.cluster, tasks=[outcome["task_arn"]], include=["TAGS"]
        )["tasks"][0]
        assert described["containerInstanceArn"] == sandbox.host(hostname).container_instance_arn
        assert described["startedBy"] == "residency"
        assert task_tag_value(described, AIRFLOW_DAG_TAG) == f"residency_{workload}"
        assert task_tag_value(described, AIRFLOW_RUN_TAG) == run["run_id"]
        assert task_tag_value(described, AIRFLOW_TASK_TAG) == workload
        assert task_tag_value(described, "residency:host-location") == location
    # The journal: the refusal, then an intent and a run record per workload.
    events = [(r["workload"], r["event"]) for r in RunJournal().records()]
    assert events == [
        ("bonus", "run"),
        ("bonus", "intent"),
        ("bonus", "run"),
        ("tax", "intent"),
        ("tax", "run"),
    ]


# The stock operator with the kwargs helper, its placement constraint dropped (an old DAG, a
# hurried fix): what the data guard is there for.
UNCONSTRAINED_DAG = """
from datetime import datetime
from pathlib import Path

from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.sdk import DAG

from residency_cli.airflow import ecs_run_task_kwargs

ACME = Path({acme!r})
kwargs = ecs_run_task_kwargs(
    "tax", ACME / "residency.yaml", task_definition=ACME / "task-definitions/tax-amount.json"
)
with DAG(
    dag_id="residency_tax_unconstrained",
    schedule=None,
    start_date=datetime(2024, 12, 1),
    catchup=False,
):
    EcsRunTaskOperator(
        task_id="tax", **{{k: v for k, v in kwargs.items() if k != "placement_constraints"}}
    )
"""


def test_a_dag_without_its_constraint_is_refused_at_the_data(sandbox: Any, tmp_path: Path) -> None:
    """The stock EcsRunTaskOperator with `ecs_run_task_kwargs`, its placement constraint
    dropped: ECS puts the task on bonus.host (New York), where the job's guard refuses New
    York's data with exit 77; Frankfurt's report is unchanged and audit says blocked at the
    data."""
    from residency_cli.audit import audit

    sandbox.label_all()
    good = sandbox.start_task_on("tax.host", sandbox.task_definitions["tax-amount"])
    assert sandbox.wait_for_task(good, timeout=60)["containers"][0]["exitCode"] == 0
    s3 = sandbox.client("s3", "eu-central-1")
    report = {"Bucket": "acme-frankfurt-reports", "Key": "tax-amount/tax_amount.csv"}
    before = s3.get_object(**report)["Body"].read()

    dags = tmp_path / "dags"
    dags.mkdir()
    source = UNCONSTRAINED_DAG.format(acme=str(ROOT / "examples" / "acme"))
    (dags / "residency_tax_unconstrained.py").write_text(source, encoding="utf-8")

    env = airflow_env(sandbox, tmp_path / "airflow", dags)
    migrate(env)
    result, output = drive(env, dags, "residency_tax_unconstrained")
    assert result["import_errors"] == {}
    assert result["dags"]["residency_tax_unconstrained"]["state"] == "failed", output[-5000:]
    assert "(label: newyork; allowed: frankfurt)" in output  # the job's log, via the operator

    ecs = sandbox.client("ecs")
    arns = ecs.list_tasks(cluster=sandbox.cluster, desiredStatus="STOPPED")["taskArns"]
    (task,) = [
        t
        for t in ecs.describe_tasks(cluster=sandbox.cluster, tasks=arns)["tasks"]
        if t["taskArn"] != good
    ]
    assert task["containerInstanceArn"] == sandbox.host("bonus.host").container_instance_arn
    assert task["containers"][0]["exitCode"] == 77
    assert s3.get_object(**report)["Body"].read() == before

    clients = sandbox.clients()
    findings = {f.task_arn: f for f in audit(clients.ecs, clients.ssm, sandbox.config)}
    assert findings[task["taskArn"]].verdict == "blocked"
    assert findings[task["taskArn"]].blocked_at_data
    assert findings[good].verdict == "compliant"
