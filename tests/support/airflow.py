"""The map of the Airflow operator's tests: the sandbox's example map plus test workloads
(task definitions registered in the sandbox), written to a file the operator reads."""

from __future__ import annotations

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
