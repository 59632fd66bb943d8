"""The `tax` workload (the tax amount of the Frankfurt staff, computed in
Frankfurt), dispatched by Airflow's EcsRunTaskOperator with the same placement
constraint and tags as `residency run tax`."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.sdk import DAG

from residency_cli.airflow import ecs_run_task_kwargs

# The map, and the folder of the task definitions' JSON files (read for the container and
# awslogs settings; no AWS call at parse time). Default: the ACME example of this repository.
MAP = Path(
    os.environ.get("RESIDENCY_CONFIG")
    or Path(__file__).resolve().parents[1] / "acme/residency.yaml"
)
TASK_DEFINITIONS = Path(
    os.environ.get("RESIDENCY_TASK_DEFINITIONS") or MAP.parent / "task-definitions"
)

with DAG(
    dag_id="residency_tax",
    description="Tax amount of the Frankfurt staff, computed in Frankfurt",
    schedule=None,
    start_date=datetime(2024, 12, 1),
    catchup=False,
    tags=["residency"],
):
    EcsRunTaskOperator(
        task_id="tax",
        **ecs_run_task_kwargs("tax", MAP, task_definition=TASK_DEFINITIONS / "tax-amount.json"),
    )
