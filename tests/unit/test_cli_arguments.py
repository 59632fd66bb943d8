"""What the command line refuses before any AWS call: exit 2, one `error:` line, no traceback.

These go through `main()` like a user, but with every AWS API call forbidden (`no_aws`): a case
here that reached AWS would fail on the spot instead of waiting for a stand-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from residency_cli.cli.app import main
from tests.support.cli import cli


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(client: Any, operation: str, params: Any) -> Any:
        raise AssertionError(f"this case must be refused before any AWS call ({operation})")

    # Every boto3 client's API call goes through this method (clients may still be made).
    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", forbidden)


def test_check_unknown_workload(map_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "-c", str(map_path), "check", "bonsu")
    assert code == 2 and "did you mean 'bonus'" in err and "known: bonus, tax" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--count", "11"], "--count"),
        (["--env", "1A=x"], "--env"),
        (["--run-id", "has space"], "--run-id"),
        (["--timeout", "soon"], "--timeout"),
        (["--exit-code", "other"], "exit-code"),
    ],
)
def test_run_bad_arguments_are_usage_errors(
    args: list[str], words: str, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "-c", str(map_path), "run", "bonus", "--dry-run", *args)
    assert code == 2 and words in err and "Traceback" not in err


# What cannot be a task id or ARN: exit 2 before any AWS call. (A well-formed reference that
# ECS does not know is AWS's "not found", exit 7: tests/cli/test_dispatch_cli.py.)
MALFORMED_TASK_REFS = [
    "",
    " ",
    "x" * 300,
    "arn:aws:ecs:eu-central-1:1:task/x",
    "../../etc",
    "ü;rm -rf",
]


@pytest.mark.parametrize("reference", MALFORMED_TASK_REFS)
@pytest.mark.parametrize("command", ["attach", "logs"])
def test_malformed_task_reference_is_refused_before_any_aws_call(
    map_path: Path, capsys: pytest.CaptureFixture[str], command: str, reference: str
) -> None:
    code = main(["-c", str(map_path), command, reference])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "Traceback" not in err and "internal error" not in err
    assert "is not a task id or ARN" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--all", "bonus"], "--all runs every workload of the map; it takes no WORKLOAD"),
        ([], "name a workload to run (known: bonus, tax), or --all"),
        (["bonus", "bonsu"], "unknown workload 'bonsu'"),
        (["bonus", "tax", "bonus"], "workload bonus named more than once"),
        (["bonus", "tax", "--command", "echo hi"], "--command overrides one workload's command"),
        (["--all", "--command", "echo hi"], "--command overrides one workload's command"),
        (["bonus", "tax", "--count", "0"], "--count"),
    ],
)
def test_run_of_several_workloads_refuses_bad_combinations(
    args: list[str], words: str, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any AWS call and before the run id is printed: nothing was dispatched."""
    code, out, err = cli(capsys, "-c", str(map_path), "run", *args)
    assert code == 2 and words in err and "Traceback" not in err, err
    assert "run id" not in err and out == ""
