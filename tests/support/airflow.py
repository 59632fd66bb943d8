"""The map of the Airflow operator's tests: the sandbox's example map plus test workloads
(task definitions registered in the sandbox), written to a file the operator reads."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from residency_cli.config import Config, parse_config

# name: the job's command (each runs on a simulated host of newyork, like `bonus`)
AIRFLOW_WORKLOADS: dict[str, list[str]] = {
    "quick": ["python3", "-c", "import time; print('quick starts'); time.sleep(1); print('done')"],
    "slow": ["sleep", "60"],
}


def write_airflow_map(
    sandbox: Any, folder: Path, workloads: dict[str, list[str]] | None = None
) -> tuple[Path, Config]:
    """Register the workloads' task definitions and write the map; its path and Config."""
    lines = [sandbox.config_path.read_text(encoding="utf-8").rstrip(), ""]
    for name, command in (workloads or AIRFLOW_WORKLOADS).items():
        sandbox.register_task_definition(f"airflow-{name}", command, cpu=64, memory=32)
        lines += [
            f"  {name}:",
            f"    task_definition: airflow-{name}",
            "    location: newyork",
            "    timeout: 2m",
        ]
    text = "\n".join(lines) + "\n"
    path = folder / "residency.yaml"
    path.write_text(text, encoding="utf-8")
    return path, parse_config(text, str(path))


# --- a real Airflow (its own virtual environment, `make test-airflow`) ---------------------

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "examples" / "airflow"
DRIVER = ROOT / "tests" / "airflow" / "airflow_driver.py"
AIRFLOW_PYTHON = os.environ.get("RESIDENCY_AIRFLOW_PYTHON")
AIRFLOW_TIMEOUT = 300


def airflow_env(sandbox: Any, home: Path, dags: Path = EXAMPLE_DAGS) -> dict[str, str]:
    """The environment of an Airflow process talking to the sandbox: its endpoint and
    credentials, a private AIRFLOW_HOME, the DAG folder, residency_cli from src/. The test's
    RESIDENCY_STATE_DIR and RESIDENCY_JOURNAL are kept (the operator journals there)."""
    skip = ("AWS_", "AIRFLOW", "RESIDENCY_CONFIG", "RESIDENCY_TASK_DEFINITIONS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(sandbox.env())
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(ROOT / "src"),  # residency_cli.airflow, without installing it
            "NO_COLOR": "1",
        }
    )
    return env


def run_airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=AIRFLOW_TIMEOUT, check=False
    )


_MIGRATED: list[Path] = []  # this test process's freshly migrated, empty metadata database


def migrate(env: dict[str, str]) -> None:
    """The metadata database of this AIRFLOW_HOME, as `airflow db migrate` leaves it: migrated
    once per test process (8 s of CPU each time), then copied (an empty SQLite file)."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not _MIGRATED:
        template = Path(tempfile.mkdtemp(prefix="airflow-db-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        assert AIRFLOW_PYTHON is not None
        airflow = str(Path(AIRFLOW_PYTHON).with_name("airflow"))
        done = run_airflow([airflow, "db", "migrate"], {**env, "AIRFLOW_HOME": str(template)})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _MIGRATED.append(template / "airflow.db")
    shutil.copyfile(_MIGRATED[0], home / "airflow.db")


def driver_command(dags: Path, *dag_ids: str, logical_date: str | None = None) -> list[str]:
    assert AIRFLOW_PYTHON is not None
    dated = ["--logical-date", logical_date] if logical_date else []
    return [AIRFLOW_PYTHON, str(DRIVER), str(dags), *dag_ids, *dated]


def drive(
    env: dict[str, str], dags: Path, *dag_ids: str, logical_date: str | None = None
) -> tuple[dict[str, Any], str]:
    """Run DAGs with `dag.test()` (airflow_driver.py): its report and its whole output."""
    done = run_airflow(driver_command(dags, *dag_ids, logical_date=logical_date), env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    return last_json(done.stdout), output


def last_json(stdout: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return report


def operator_dags(folder: Path, map_path: Path, workloads: list[str]) -> Path:
    """A DAG folder with one DAG `residency_<workload>` per workload, each one
    ResidencyRunOperator task named after its workload."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "residency_test_dags.py").write_text(
        OPERATOR_DAGS.format(workloads=workloads, map=str(map_path)), encoding="utf-8"
    )
    return folder


OPERATOR_DAGS = """
from datetime import datetime

from airflow.sdk import DAG

from residency_cli.airflow import ResidencyRunOperator

for workload in {workloads!r}:
    with DAG(
        dag_id=f"residency_{{workload}}",
        schedule=None,
        start_date=datetime(2024, 12, 1),
        catchup=False,
    ):
        ResidencyRunOperator(task_id=workload, workload=workload, config_path={map!r})
"""
