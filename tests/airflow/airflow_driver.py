"""Run by the Airflow virtual environment (not the test environment): parse the example DAGs
with DagBag, then run each with `dag.test()` against the AWS endpoint in the environment
(the sandbox). Prints one JSON object on the last line of stdout:
{"import_errors": {...}, "dags": {"residency_bonus": {"state": "success", "task_arn": ...}}}.

Usage: python airflow_driver.py DAG_FOLDER [DAG_ID...]
"""

from __future__ import annotations

import json
import sys


def main(folder: str, dag_ids: list[str]) -> int:
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
        run = dag.test()
        tasks = {}
        for ti in run.get_task_instances():
            tasks[ti.task_id] = {"state": str(ti.state)}
        runs[dag_id] = {"state": str(run.state), "run_id": run.run_id, "tasks": tasks}
    result["dags"] = runs
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
