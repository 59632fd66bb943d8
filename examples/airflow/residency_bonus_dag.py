"""The `bonus` workload (the Christmas bonus of the New York staff, computed in
New York), dispatched by ResidencyRunOperator as `residency run bonus` does it: pre-flight,
the map's placement, placement verified, the job's log in the task log, the outcome in XCom,
the journal record; a retry after a worker crash reattaches to the running ECS task."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from residency_cli.airflow import ResidencyRunOperator

# The map. Default: the ACME example of this repository. The DAG file makes no AWS call and
# does not read the map when Airflow parses it; the operator reads it when the task runs.
MAP = Path(
    os.environ.get("RESIDENCY_CONFIG")
    or Path(__file__).resolve().parents[1] / "acme/residency.yaml"
)

with DAG(
    dag_id="residency_bonus",
    description="Christmas bonus of the New York staff, computed in New York",
    schedule=None,
    start_date=datetime(2024, 12, 1),
    catchup=False,
    tags=["residency"],
):
    ResidencyRunOperator(task_id="bonus", workload="bonus", config_path=MAP)
