"""`residency iam-policy` through main()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from residency_cli.cli.app import main

MAP = """
version: 1
cluster: acme-etl
region: eu-central-1
locations:
  newyork: {}
workloads:
  bonus:
    task_definition: christmas-bonus
    location: newyork
"""


@pytest.fixture
def map_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "residency.yaml"
    path.write_text(MAP)
    monkeypatch.setenv("RESIDENCY_CONFIG", str(path))
    monkeypatch.setenv("NO_COLOR", "1")
    return path


def test_json_is_one_policy_document(map_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["iam-policy", "-o", "json", "--account-id", "123456789012"])
    out, err = capsys.readouterr()
    assert code == 0
    policy = json.loads(out)
    assert policy["Version"] == "2012-10-17"
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["ListClusterHosts"] == (
        "arn:aws:ecs:eu-central-1:123456789012:cluster/acme-etl"
    )
    assert err == ""  # JSON mode: nothing but the document


def test_text_prints_the_document_and_notes_on_stderr(
    map_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["iam-policy"])
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out)["Statement"]
    assert "--log-group" in err and "--account-id" in err


def test_options_narrow_the_policy(map_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--region",
            "us-east-1",
            "iam-policy",
            "-o",
            "json",
            "--log-group",
            "/residency/acme",
            "--pass-role",
            "ecsTaskExecutionRole",
            "--no-activation",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    by_sid = {s["Sid"]: s for s in json.loads(out)["Statement"]}
    assert by_sid["ListClusterHosts"]["Resource"] == "arn:aws:ecs:us-east-1:*:cluster/acme-etl"
    assert by_sid["ReadTaskLogs"]["Resource"] == (
        "arn:aws:logs:*:*:log-group:/residency/acme:log-stream:*"
    )
    assert (
        by_sid["PassTaskRolesToEcsTasks"]["Resource"] == "arn:aws:iam::*:role/ecsTaskExecutionRole"
    )
    assert "CreateLocationActivations" not in by_sid


def test_bad_account_id_exits_2(map_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", "--account-id", "nope"]) == 2
    assert "--account-id" in capsys.readouterr().err


def test_invalid_map_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESIDENCY_CONFIG", str(tmp_path / "missing.yaml"))
    assert main(["iam-policy"]) == 2
    assert "no residency map" in capsys.readouterr().err
