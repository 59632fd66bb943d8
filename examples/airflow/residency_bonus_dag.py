"""The `bonus` workload (the Christmas bonus of the New York staff, computed in
New York), dispatched by Airflow's EcsRunTaskOperator with the same placement
constraint and tags as `residency run bonus`."""

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
    dag_id="residency_bonus",
    description="Christmas bonus of the New York staff, computed in New York",
    schedule=None,
    start_date=datetime(2024, 12, 1),
    catchup=False,
    tags=["residency"],
):
    EcsRunTaskOperator(
        task_id="bonus",
        **ecs_run_task_kwargs(
            "bonus", MAP, task_definition=TASK_DEFINITIONS / "christmas-bonus.json"
        ),
    )
