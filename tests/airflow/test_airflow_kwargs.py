"""`ecs_run_task_kwargs`: the EcsRunTaskOperator arguments of a workload, without Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from residency_cli.airflow import ecs_run_task_kwargs
from residency_cli.config import parse_config
from residency_cli.dispatch import RunOptions, build_request
from residency_cli.errors import ConfigError, UsageError

ACME = Path(__file__).resolve().parents[2] / "examples" / "acme"
MAP = """
version: 1
cluster: acme-etl
location_attribute: site
locations:
  newyork: {}
  sanfrancisco: {}
workloads:
  bonus:
    task_definition: christmas-bonus:3
    location: [newyork, sanfrancisco]
    command: ["python3", "/app/christmas_bonus.py"]
    environment: {RUN_MODE: full}
    timeout: 30m
    tags: {cost-centre: hr}
  plain:
    task_definition: plain
    location: newyork
"""
DEFINITION: dict[str, Any] = {
    "family": "christmas-bonus",
    "containerDefinitions": [
        {"name": "sidecar", "essential": False},
        {
            "name": "christmas_bonus",
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/residency/acme",
                    "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "bonus",
                },
            },
        },
    ],
}


@pytest.fixture
def map_path(tmp_path: Path) -> Path:
    path = tmp_path / "residency.yaml"
    path.write_text(MAP)
    return path


def test_same_request_as_residency_run(map_path: Path) -> None:
    kwargs = ecs_run_task_kwargs("bonus", map_path, task_definition=DEFINITION, run_id="r-1")
    config = parse_config(MAP)
    request = build_request(config, "bonus", RunOptions(run_id="r-1"), container="christmas_bonus")
    assert kwargs["cluster"] == request["cluster"] == "acme-etl"
    assert kwargs["task_definition"] == request["taskDefinition"] == "christmas-bonus:3"
    assert kwargs["launch_type"] == request["launchType"] == "EXTERNAL"
    assert kwargs["placement_constraints"] == request["placementConstraints"]
    assert kwargs["placement_constraints"] == [
        {"type": "memberOf", "expression": "attribute:site in [newyork, sanfrancisco]"}
    ]
    assert kwargs["overrides"] == request["overrides"]
    assert kwargs["tags"] == {t["key"]: t["value"] for t in request["tags"]}
    assert kwargs["execution_timeout"] == timedelta(minutes=30)
    assert kwargs["reattach"] is True


def test_logs_and_container_come_from_the_task_definition(map_path: Path) -> None:
    kwargs = ecs_run_task_kwargs("plain", map_path, task_definition=DEFINITION)
    assert kwargs["container_name"] == "christmas_bonus"  # the first essential container
    assert kwargs["awslogs_group"] == "/residency/acme"
    assert kwargs["awslogs_region"] == "us-east-1"
    assert kwargs["awslogs_stream_prefix"] == "bonus"
    # The only override: the map's locations for the jobs' data guard, as `run` sends them.
    assert kwargs["overrides"] == {
        "containerOverrides": [
            {
                "name": "christmas_bonus",
                "environment": [{"name": "RESIDENCY_ALLOWED_LOCATIONS", "value": "newyork"}],
            }
        ]
    }
    assert kwargs["tags"]["residency:run-id"] == "{{ run_id }}"  # rendered by Airflow
    assert "region_name" not in kwargs  # the map names no region: the connection's


def test_describe_task_definition_response_and_json_file_are_accepted(map_path: Path) -> None:
    described = ecs_run_task_kwargs(
        "plain", map_path, task_definition={"taskDefinition": DEFINITION}
    )
    assert described["awslogs_group"] == "/residency/acme"
    from_file = ecs_run_task_kwargs(
        "bonus",
        ACME / "residency.yaml",
        task_definition=ACME / "task-definitions" / "christmas-bonus.json",
    )
    assert from_file["region_name"] == "eu-central-1"
    assert from_file["container_name"] == "christmas_bonus"
    assert from_file["awslogs_stream_prefix"] == "bonus"


def test_without_a_task_definition_there_is_no_log_streaming(map_path: Path) -> None:
    kwargs = ecs_run_task_kwargs("plain", map_path, run_id=None)
    assert not any(key.startswith("awslogs") for key in kwargs)
    assert "container_name" not in kwargs
    assert kwargs["overrides"] == {}  # no container to override: the definition's own guard
    assert "residency:run-id" not in kwargs["tags"]


def test_the_task_definition_beside_the_map_is_read_by_default(map_path: Path) -> None:
    acme = ecs_run_task_kwargs("tax", ACME / "residency.yaml")
    assert acme["container_name"] == "tax_amount"
    assert (acme["awslogs_group"], acme["awslogs_stream_prefix"]) == ("/residency/acme", "tax")
    folder = map_path.parent / "task-definitions"
    folder.mkdir()
    (folder / "plain.json").write_text(json.dumps(DEFINITION), encoding="utf-8")
    assert ecs_run_task_kwargs("plain", map_path)["awslogs_region"] == "us-east-1"
    given = ecs_run_task_kwargs("plain", map_path, task_definition={"containerDefinitions": []})
    assert "awslogs_group" not in given  # an explicit task_definition wins


def test_overrides_need_a_container(map_path: Path) -> None:
    with pytest.raises(UsageError, match="container"):
        ecs_run_task_kwargs("bonus", map_path)


def test_awslogs_without_stream_prefix_is_not_followed(map_path: Path) -> None:
    definition = json.loads(json.dumps(DEFINITION))
    del definition["containerDefinitions"][1]["logConfiguration"]["options"][
        "awslogs-stream-prefix"
    ]
    kwargs = ecs_run_task_kwargs("plain", map_path, task_definition=definition)
    assert "awslogs_group" not in kwargs


def test_unknown_workload_and_container_are_usage_errors(map_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown workload 'bonsu'"):
        ecs_run_task_kwargs("bonsu", map_path)
    text = MAP.replace("    timeout: 30m", "    container: nope\n    timeout: 30m")
    map_path.write_text(text)
    with pytest.raises(UsageError, match="container 'nope'"):
        ecs_run_task_kwargs("bonus", map_path, task_definition=DEFINITION)
    with pytest.raises(UsageError, match="cannot read task definition"):
        ecs_run_task_kwargs("plain", map_path, task_definition=map_path.parent / "none.json")


def test_importable_without_airflow_or_boto3() -> None:
    code = (
        "import sys; import residency_cli.airflow; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'boto3', 'botocore')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_operator_without_airflow_is_a_clear_import_error() -> None:
    try:
        import airflow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Airflow is installed here: the operator imports")
    with pytest.raises(ImportError, match="needs Apache Airflow 3"):
        from residency_cli.airflow import ResidencyRunOperator  # noqa: F401
