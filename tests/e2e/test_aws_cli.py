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


def test_a_raw_dispatch_of_tax_on_new_york_is_refused_at_the_data(tmp_path: Path) -> None:
    """Issue 15's story: `aws ecs run-task` with no constraint puts tax-amount on bonus.host
    (New York). The job's guard refuses New York's data (exit 77) before opening it,
    Frankfurt's report stays byte for byte what the real tax run wrote, and `residency audit`
    says the task was blocked at the data."""
    from tests.support.etl import OpenWatch

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESIDENCY_"))}
    env["RESIDENCY_STATE_DIR"] = str(tmp_path / "state")
    env["RESIDENCY_JOURNAL"] = str(tmp_path / "journal.jsonl")
    env["HOME"] = str(tmp_path)
    up = _residency(env, "sandbox", "up", "--port", "0")
    assert up.returncode == 0, up.stderr
    try:
        aws_env = dict(env)
        for line in _residency(env, "sandbox", "env").stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            aws_env[name] = value.strip("'\"")
        for host, location in (("bonus.host", "newyork"), ("tax.host", "frankfurt")):
            labelled = _residency(env, "--sandbox", "register-host", host, "--location", location)
            assert labelled.returncode == 0, labelled.stderr
        ran = _residency(env, "--sandbox", "run", "tax", "--no-follow", "-o", "json")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["host"]["hostname"] == "tax.host"
        report = ["--bucket", "acme-frankfurt-reports", "--key", "tax-amount/tax_amount.csv"]
        _aws(aws_env, "s3api", "get-object", *report, str(tmp_path / "before.csv"))
        before = (tmp_path / "before.csv").read_bytes()
        assert before == b"tax_amount\n557548\n"

        data = tmp_path / "state" / "sandbox" / "hosts" / "bonus.host" / "data"
        watch = OpenWatch(data / "employee_data.csv")
        started = _aws(
            aws_env, "ecs", "run-task", "--cluster", "acme-etl",
            "--task-definition", "tax-amount", "--launch-type", "EXTERNAL",
        )  # fmt: skip
        (task,) = started["tasks"]
        arn = task["taskArn"]
        (instance,) = _aws(
            aws_env, "ecs", "describe-container-instances", "--cluster", "acme-etl",
            "--container-instances", task["containerInstanceArn"],
        )["containerInstances"]  # fmt: skip
        (info,) = _aws(
            aws_env, "ssm", "describe-instance-information",
            "--filters", f"Key=InstanceIds,Values={instance['ec2InstanceId']}",
        )["InstanceInformationList"]  # fmt: skip
        assert info["ComputerName"] == "bonus.host"  # New York: ECS was never told otherwise
        waited = subprocess.run(
            [str(AWS), "ecs", "wait", "tasks-stopped", "--cluster", "acme-etl", "--tasks", arn],
            env=aws_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert waited.returncode == 0, waited.stderr
        (stopped,) = _aws(aws_env, "ecs", "describe-tasks", "--cluster", "acme-etl",
                          "--tasks", arn)["tasks"]  # fmt: skip
        assert stopped["containers"][0]["exitCode"] == 77
        assert not watch.opened()  # New York's employee file was never opened
        watch.close()
        _aws(aws_env, "s3api", "get-object", *report, str(tmp_path / "after.csv"))
        assert (tmp_path / "after.csv").read_bytes() == before

        logs = _residency(env, "--sandbox", "logs", arn)
        assert "(label: newyork; allowed: frankfurt)" in logs.stdout, logs.stderr
        audited = _residency(env, "--sandbox", "audit", "-o", "json")
        assert audited.returncode == 4, audited.stderr
        findings = {f["task_arn"]: f for f in json.loads(audited.stdout)}
        assert findings[arn]["verdict"] == "blocked" and findings[arn]["blocked_at_data"]
        assert findings[arn]["host"] == "bonus.host"
        assert [f["verdict"] for a, f in findings.items() if a != arn] == ["compliant"]
        text = _residency(env, "--sandbox", "audit")
        assert "BLOCKED AT THE DATA: blocked at the data" in text.stdout
        assert "1 blocked at the data" in text.stdout
    finally:
        down = _residency(env, "sandbox", "down")
        assert down.returncode == 0, down.stderr
