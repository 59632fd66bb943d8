"""An independent client, the AWS CLI, pointed at a sandbox daemon by `residency sandbox env`,
sees the cluster, the hosts with their location attributes, and the tasks, with ECS's
defaults, filters and paging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AWS = Path(__file__).resolve().parents[2] / ".venv-awscli" / "bin" / "aws"
pytestmark = pytest.mark.skipif(
    not AWS.exists(), reason="the AWS CLI is not installed (make test installs it in .venv-awscli)"
)


def _residency(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()", *args],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _aws(env: dict[str, str], *args: str) -> Any:
    result = subprocess.run(
        [str(AWS), *args, "--output", "json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_aws_cli_sees_what_residency_did(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESIDENCY_"))}
    env["RESIDENCY_STATE_DIR"] = str(tmp_path / "state")
    env["RESIDENCY_JOURNAL"] = str(tmp_path / "journal.jsonl")
    env["HOME"] = str(tmp_path)
    up = _residency(env, "sandbox", "up", "--port", "0")
    assert up.returncode == 0, up.stderr
    try:
        exports = _residency(env, "sandbox", "env").stdout
        aws_env = dict(env)
        for line in exports.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            aws_env[name] = value.strip("'\"")
        assert "AWS_ENDPOINT_URL" in aws_env
        labelled = _residency(
            env, "--sandbox", "register-host", "bonus.host", "--location", "newyork"
        )
        assert labelled.returncode == 0, labelled.stderr
        ran = _residency(env, "--sandbox", "run", "bonus", "--no-follow", "-o", "json")
        assert ran.returncode == 0, ran.stderr
        task_arn = json.loads(ran.stdout)["task_arn"]

        clusters = _aws(aws_env, "ecs", "list-clusters")["clusterArns"]
        assert [arn.rsplit("/", 1)[-1] for arn in clusters] == ["acme-etl"]
        arns = _aws(aws_env, "ecs", "list-container-instances", "--cluster", "acme-etl")
        described = _aws(
            aws_env, "ecs", "describe-container-instances", "--cluster", "acme-etl",
            "--container-instances", *arns["containerInstanceArns"],
        )["containerInstances"]  # fmt: skip
        locations = {
            i["ec2InstanceId"]: {a["name"]: a.get("value") for a in i["attributes"]}.get("location")
            for i in described
        }
        assert set(locations.values()) == {"newyork", None}
        tasks = _aws(aws_env, "ecs", "describe-tasks", "--cluster", "acme-etl", "--tasks", task_arn)
        (task,) = tasks["tasks"]
        assert task["lastStatus"] == "STOPPED" and task["containers"][0]["exitCode"] == 0
        info = _aws(aws_env, "ssm", "describe-instance-information")["InstanceInformationList"]
        assert {i["ComputerName"] for i in info} == {"bonus.host", "tax.host"}
        bonus = next(i for i in described if locations[i["ec2InstanceId"]] == "newyork")

        # What ECS answers (issue 13, row 10): ListTasks defaults to desiredStatus RUNNING,
        # ListContainerInstances honours `filter`, ListAttributes works with a name alone.
        assert _aws(aws_env, "ecs", "list-tasks", "--cluster", "acme-etl")["taskArns"] == []
        stopped = _aws(
            aws_env, "ecs", "list-tasks", "--cluster", "acme-etl", "--desired-status", "STOPPED"
        )
        assert stopped["taskArns"] == [task_arn]
        filtered = _aws(
            aws_env, "ecs", "list-container-instances", "--cluster", "acme-etl",
            "--filter", "attribute:location == newyork",
        )  # fmt: skip
        assert filtered["containerInstanceArns"] == [bonus["containerInstanceArn"]]
        paged = _aws(
            aws_env, "ecs", "list-container-instances", "--cluster", "acme-etl",
            "--page-size", "1",
        )  # fmt: skip
        assert sorted(paged["containerInstanceArns"]) == sorted(arns["containerInstanceArns"])
        attributes = _aws(
            aws_env, "ecs", "list-attributes", "--cluster", "acme-etl",
            "--target-type", "container-instance", "--attribute-name", "location",
        )["attributes"]  # fmt: skip
        assert attributes == [
            {"name": "location", "value": "newyork", "targetId": bonus["containerInstanceArn"]}
        ]
    finally:
        down = _residency(env, "sandbox", "down")
        assert down.returncode == 0, down.stderr
