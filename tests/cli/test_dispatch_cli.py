"""`check`, `run`, `tasks` through main() against stock moto (no waiting needed here)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from residency_cli.cli.app import main
from tests.support.cli import cli
from tests.support.moto_cluster import MotoCluster, register_bonus


def test_check_json_and_exit_codes(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    code, out, err = cli(capsys, "-c", str(map_path), "check", "bonus", "-o", "json")
    assert code == 0, err
    (result,) = json.loads(out)
    assert (
        result["ready"] is True
        and result["placement"] == "attribute:location in [newyork, sanfrancisco]"
    )
    code, out, err = cli(capsys, "-c", str(map_path), "check")
    assert code == 3 and "not ready: tax" in err
    assert "tax-amount does not exist" in out


def test_run_refused_json(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("eu", "frankfurt")
    code, out, err = cli(capsys, "-c", str(map_path), "run", "bonus", "-o", "json", "--run-id", "x")
    assert code == 3
    document = json.loads(out)
    assert document["outcome"] == "refused" and document["task_arn"] is None
    assert document["run_id"] == "x"
    assert set(document) == {
        "workload",
        "locations",
        "cluster",
        "run_id",
        "task_arn",
        "task_id",
        "host",
        "outcome",
        "status",
        "exit_code",
        "stop_code",
        "stopped_reason",
        "log_group",
        "log_stream",
        "started_at",
        "stopped_at",
    }
    # CONTRACT.md section 8: the run id on stderr before dispatch, then the refusal.
    first, rest = err.split("\n", 1)
    assert first.startswith("run id x ")
    assert rest.startswith("error: refused to dispatch bonus")
    assert moto_cluster.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []


def test_run_dry_run_prints_request_and_aws_cli(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    code, out, _ = cli(
        capsys, "-c", str(map_path), "run", "bonus", "--dry-run", "--run-id", "d", "--env", "A=b c"
    )
    assert code == 0
    request_text, command = out.rsplit("}\n", 1)
    request = json.loads(request_text + "}")
    assert request["launchType"] == "EXTERNAL"
    words = shlex.split(command)
    assert words[:3] == ["aws", "ecs", "run-task"]
    overrides = json.loads(words[words.index("--overrides") + 1])
    assert overrides["containerOverrides"][0]["environment"] == [
        {"name": "A", "value": "b c"},
        {"name": "RESIDENCY_ALLOWED_LOCATIONS", "value": "newyork,sanfrancisco"},
    ]
    assert moto_cluster.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []


def test_run_no_wait_then_tasks(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    code, out, err = cli(capsys, "-c", str(map_path), "run", "bonus", "--no-wait", "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    assert document["outcome"] == "dispatched" and document["host"]["location"] == "newyork"
    code, out, _ = cli(capsys, "-c", str(map_path), "tasks", "-o", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["task_id"] == document["task_id"] and row["workload"] == "bonus"


# A well-formed reference ECS does not know: AWS's "not found", exit 7. (What cannot be a
# task id or ARN at all is exit 2 before any AWS call: tests/unit/test_cli_arguments.py.)
TASK_REFS = [
    ("0" * 32, 7),
    ("arn:aws:ecs:eu-central-1:123456789012:task/acme-etl/" + "0" * 32, 7),
    ("arn:aws:ecs:eu-central-1:123456789012:task/" + "0" * 32, 7),
]


@pytest.mark.parametrize(("reference", "expected"), TASK_REFS)
@pytest.mark.parametrize("command", ["attach", "logs", "stop"])
def test_any_task_reference_gets_a_clear_answer(
    moto_cluster: MotoCluster,
    map_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    reference: str,
    expected: int,
) -> None:
    code = main(["-c", str(map_path), command, reference])
    err = capsys.readouterr().err
    assert code == expected, err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "Traceback" not in err and "internal error" not in err
    words = "not found in cluster acme-etl" if expected == 7 else "is not a task id or ARN"
    assert words in err
