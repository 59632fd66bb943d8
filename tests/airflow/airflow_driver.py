"""Run by the Airflow virtual environment (not the test environment): parse the DAGs of a
folder with DagBag, then run each named DAG with `dag.test()` against the AWS endpoint in the
environment (the sandbox). Prints one JSON object on the last line of stdout:
{"import_errors": {...}, "dag_ids": [...], "dags": {"residency_bonus": {"state": "success",
"run_id": ..., "tasks": {"bonus": {"state": ..., "try_number": ..., "xcom": {key: value}}}}}}.

With `--logical-date`, the DAG run of that date and run id (`manual__<date>`): running it again
replaces that DAG run (dag.test() deletes it and creates it again) and runs its task
instances again: the same (DAG id, run id, task id, map index), as a retry or a clear has.

Usage: python airflow_driver.py DAG_FOLDER [DAG_ID...] [--logical-date ISO]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any


def _xcoms(ti: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index
        )
        return {row.key: XComModel.deserialize_value(row) for row in rows}


def main(folder: str, dag_ids: list[str], logical_date: datetime | None) -> int:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    result: dict[str, object] = {
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dag_ids": sorted(bag.dag_ids),
        "dags": {},
    }
    runs: dict[str, object] = {}
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            runs[dag_id] = {"state": "missing"}
            continue
        # A fixed run_after too: the same run id (manual__<run_after>) every time.
        run = (
            dag.test(logical_date=logical_date, run_after=logical_date)
            if logical_date
            else dag.test()
        )
        tasks = {}
        for ti in run.get_task_instances():
            tasks[ti.task_id] = {
                "state": str(ti.state),
                "try_number": ti.try_number,
                "xcom": _xcoms(ti),
            }
        runs[dag_id] = {"state": str(run.state), "run_id": run.run_id, "tasks": tasks}
    result["dags"] = runs
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("dag_ids", nargs="*")
    parser.add_argument("--logical-date", type=datetime.fromisoformat, default=None)
    arguments = parser.parse_args()
    sys.exit(main(arguments.folder, arguments.dag_ids, arguments.logical_date))
