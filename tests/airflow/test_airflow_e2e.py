"""The example DAGs under a real Apache Airflow, against the in-process sandbox.

Airflow lives in its own virtual environment (`make test-airflow` builds .venv-airflow from
examples/airflow/requirements.txt and sets RESIDENCY_AIRFLOW_PYTHON); without it this test is
skipped. The DAGs are parsed with DagBag (no import errors allowed), then each runs with
`dag.test()`: EcsRunTaskOperator calls RunTask on the sandbox, which evaluates the placement
constraint, runs the job on a simulated host and streams its log to CloudWatch Logs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "examples" / "airflow"
DRIVER = Path(__file__).with_name("airflow_driver.py")
PYTHON = os.environ.get("RESIDENCY_AIRFLOW_PYTHON")
TIMEOUT = 300

pytestmark = pytest.mark.skipif(
    not PYTHON, reason="RESIDENCY_AIRFLOW_PYTHON is not set (run `make test-airflow`)"
)


def _airflow_env(sandbox: Any, home: Path) -> dict[str, str]:
    # The DAGs' own default map (examples/acme) is the one the sandbox is seeded from.
    skip = ("AWS_", "AIRFLOW", "RESIDENCY_CONFIG", "RESIDENCY_TASK_DEFINITIONS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(sandbox.env())
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(ROOT / "src"),  # residency_cli.airflow, without installing it
            "NO_COLOR": "1",
        }
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_example_dags_dispatch_to_the_right_hosts(sandbox: Any, tmp_path: Path) -> None:
    assert PYTHON is not None
    assert sandbox.config_path.resolve() == (ROOT / "examples/acme/residency.yaml").resolve()
    env = _airflow_env(sandbox, tmp_path / "airflow")
    migrate = _run([str(Path(PYTHON).with_name("airflow")), "db", "migrate"], env)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    # No host carries a location yet: the placement constraint leaves ECS nowhere to go.
    refused = _run([PYTHON, str(DRIVER), str(DAGS), "residency_bonus"], env)
    assert refused.returncode == 0, (refused.stdout + refused.stderr)[-5000:]
    assert (
        json.loads(refused.stdout.strip().splitlines()[-1])["dags"]["residency_bonus"]["state"]
        == "failed"
    )
    assert "MemberOf placement constraint unsatisfied" in refused.stdout + refused.stderr

    sandbox.label_all()

    done = _run([PYTHON, str(DRIVER), str(DAGS), "residency_bonus", "residency_tax"], env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["import_errors"] == {}
    assert report["dag_ids"] == ["residency_bonus", "residency_tax"]
    for dag_id, task_id in (("residency_bonus", "bonus"), ("residency_tax", "tax")):
        run = report["dags"][dag_id]
        assert run["state"] == "success", output[-5000:]
        assert run["tasks"][task_id]["state"] == "success"
    # The operator followed the job's CloudWatch stream (awslogs_* from the task definition).
    assert "Running on host 'bonus.host'" in output
    assert "Running on host 'tax.host'" in output

    ecs = sandbox.client("ecs")
    arns = ecs.list_tasks(cluster=sandbox.cluster, desiredStatus="STOPPED")["taskArns"]
    tasks = ecs.describe_tasks(cluster=sandbox.cluster, tasks=arns, include=["TAGS"])["tasks"]
    assert len(tasks) == 2
    for task in tasks:
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        workload = tags["residency:workload"]
        expected = {"bonus": ("bonus.host", "newyork"), "tax": ("tax.host", "frankfurt")}
        hostname, location = expected[workload]
        host = sandbox.host(hostname)
        assert task["containerInstanceArn"] == host.container_instance_arn
        assert tags["residency:location"] == location
        assert tags["residency:run-id"] == report["dags"][f"residency_{workload}"]["run_id"]
        assert task["launchType"] == "EXTERNAL"
        assert task["containers"][0]["exitCode"] == 0
        described = ecs.describe_container_instances(
            cluster=sandbox.cluster, containerInstances=[task["containerInstanceArn"]]
        )["containerInstances"][0]
        attributes = {a["name"]: a.get("value") for a in described["attributes"]}
        assert attributes["location"] == location


def test_a_dag_without_its_constraint_is_refused_at_the_data(sandbox: Any, tmp_path: Path) -> None:
    """The tax DAG edited to drop its placement constraint (an old DAG, a hurried fix):
    ECS puts the task on bonus.host (New York), where the job's guard refuses New York's data
    with exit 77; Frankfurt's report is unchanged and audit says blocked at the data."""
    assert PYTHON is not None
    from residency_cli.audit import audit

    sandbox.label_all()
    good = sandbox.start_task_on("tax.host", sandbox.task_definitions["tax-amount"])
    assert sandbox.wait_for_task(good, timeout=60)["containers"][0]["exitCode"] == 0
    s3 = sandbox.client("s3", "eu-central-1")
    report = {"Bucket": "acme-frankfurt-reports", "Key": "tax-amount/tax_amount.csv"}
    before = s3.get_object(**report)["Body"].read()

    dags = tmp_path / "dags"
    dags.mkdir()
    source = (DAGS / "residency_tax_dag.py").read_text(encoding="utf-8")
    call = 'ecs_run_task_kwargs("tax", MAP, task_definition=TASK_DEFINITIONS / "tax-amount.json")'
    assert call in source
    edited = source.replace(
        f"**{call},",
        f"**{{k: v for k, v in {call}.items() if k != 'placement_constraints'}},",
    ).replace('dag_id="residency_tax"', 'dag_id="residency_tax_unconstrained"')
    assert edited.count("placement_constraints") == 1
    (dags / "residency_tax_unconstrained.py").write_text(edited, encoding="utf-8")

    env = _airflow_env(sandbox, tmp_path / "airflow")
    env["RESIDENCY_CONFIG"] = str(ROOT / "examples" / "acme" / "residency.yaml")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)  # dag.test() runs only DAGs Airflow serialized
    migrate = _run([str(Path(PYTHON).with_name("airflow")), "db", "migrate"], env)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    done = _run([PYTHON, str(DRIVER), str(dags), "residency_tax_unconstrained"], env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
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
