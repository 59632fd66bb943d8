"""`activate`: the SSM request and the commands a new host runs."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from residency_cli.activation import create_activation, install_commands
from residency_cli.config import parse_config
from residency_cli.errors import UsageError
from tests.support.maps import VALID

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "etl"))
import residency_guard  # the image's guard, a plain module in etl/

CONFIG = parse_config(VALID)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def test_install_commands_label_the_host_before_it_registers() -> None:
    commands = install_commands(CONFIG, "newyork", "eu-central-1", "act-id", "c0de")
    assert commands[0].startswith("curl --proto")
    line = 'ECS_INSTANCE_ATTRIBUTES={"location":"newyork"}'
    assert shlex.split(commands[2]) == [
        "echo",
        line,
        "|",
        "sudo",
        "tee",
        "-a",
        "/etc/ecs/ecs.config",
    ]
    assert shlex.split(commands[-1]) == [
        "sudo", "bash", "/tmp/ecs-anywhere-install.sh", "--region", "eu-central-1",
        "--cluster", "acme-etl", "--activation-id", "act-id", "--activation-code", "c0de",
    ]  # fmt: skip


def test_install_commands_label_the_data_for_the_guard(tmp_path: Path) -> None:
    """The label commands, run by a shell (with a `sudo` that just runs its command, and
    /data moved under tmp_path), leave a label the data guard of the image accepts."""
    commands = install_commands(CONFIG, "newyork", "eu-central-1", "act-id", "c0de")
    labelling = [c for c in commands if "/data" in c]
    assert labelling and commands.index(labelling[-1]) < len(commands) - 1  # before joining
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (tools / "sudo").chmod(0o755)
    data = tmp_path / "data"
    script = "set -e\n" + "\n".join(c.replace("/data", str(data)) for c in labelling)
    done = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert residency_guard.read_label(str(data)) == "newyork"
    assert (data / ".residency-label.json").stat().st_mode & 0o777 == 0o644


def test_create_activation_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    ssm = boto3.client("ssm", region_name="eu-central-1")
    stubber = Stubber(ssm)
    stubber.add_response(
        "create_activation",
        {"ActivationId": "a1b2", "ActivationCode": "c" * 20},
        {
            "Description": "residency: hosts of frankfurt for cluster acme-etl",
            "DefaultInstanceName": "frankfurt-host",
            "IamRole": "ecsAnywhereRole",
            "RegistrationLimit": 3,
            "ExpirationDate": datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc),
            "Tags": [{"Key": "residency:location", "Value": "frankfurt"}],
        },
    )
    with stubber:
        activation = create_activation(
            ssm, CONFIG, "frankfurt", region="eu-central-1", count=3, now=NOW, sandbox=True
        )
    assert (activation.activation_id, activation.expires_at) == ("a1b2", "2026-11-24T12:00:00Z")
    assert activation.sandbox_command is not None
    assert f"--activation-code {'c' * 20}" in activation.sandbox_command


@pytest.mark.parametrize(
    ("location", "count", "expires", "message"),
    [
        ("paris", 1, 3600, "unknown location"),
        ("newyork", 0, 3600, "--count"),
        ("newyork", 1, 31 * 86400, "30d"),
    ],
)
def test_bad_activation_requests_change_nothing(
    location: str, count: int, expires: float, message: str
) -> None:
    ssm = boto3.client("ssm", region_name="eu-central-1")
    with Stubber(ssm), pytest.raises(UsageError, match=message):
        create_activation(
            ssm, CONFIG, location, region="eu-central-1", count=count, expires_seconds=expires
        )
