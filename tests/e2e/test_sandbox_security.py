"""The sandbox daemon as another local user would probe it, and as its owner uses it
(issue 14 items 4 and 5): only requests signed with the credentials `sandbox up` generated
are served; moto's management API is closed; its files are its owner's alone (0700/0600,
task outputs included) and `sandbox down` deletes them unless `--keep`. The AWS CLI, an
independent client, works with what `sandbox env` prints."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

AWS = Path(__file__).resolve().parents[2] / ".venv-awscli" / "bin" / "aws"
ECS_TARGET = "AmazonEC2ContainerServiceV20141113"


def _residency(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()", *args],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
        cwd=env["HOME"],
    )  # fmt: skip


def _aws(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AWS), *args, "--output", "json"], capture_output=True, text=True, env=env, timeout=60
    )


def _send(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _modes(root: Path) -> dict[str, str]:
    """Every file and folder under `root` that others could read or enter, with its mode."""
    loose = {}
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose[str(path.relative_to(root))] = oct(mode)
    return loose


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESIDENCY_"))}
    env["RESIDENCY_STATE_DIR"] = str(tmp_path / "state")
    env["RESIDENCY_JOURNAL"] = str(tmp_path / "journal.jsonl")
    env["HOME"] = str(tmp_path)
    env["NO_COLOR"] = "1"
    return env


def test_only_the_owner_drives_the_sandbox_and_its_files_are_private(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    state = Path(user_env["RESIDENCY_STATE_DIR"])
    up = _residency(user_env, "sandbox", "up", "--port", "0", "--label-hosts")
    assert up.returncode == 0, up.stderr
    try:
        record = json.loads((state / "sandbox.json").read_text())
        endpoint = record["endpoint"]
        exported = _residency(user_env, "sandbox", "env", "-o", "json")
        assert exported.returncode == 0, exported.stderr
        variables = json.loads(exported.stdout)
        # the credentials are the sandbox's own, generated at `up`, kept in its 0600 record
        assert variables["AWS_ACCESS_KEY_ID"] == record["access_key_id"]
        assert variables["AWS_ACCESS_KEY_ID"].startswith("SBOX")
        assert variables["AWS_SECRET_ACCESS_KEY"] == record["secret_access_key"]
        assert len(variables["AWS_SECRET_ACCESS_KEY"]) >= 40

        # another local user, without them: RunTask of a command is refused, nothing runs
        marker = tmp_path / "pwned"
        body = {
            "cluster": "acme-etl",
            "taskDefinition": "christmas-bonus",
            "launchType": "EXTERNAL",
            "overrides": {
                "containerOverrides": [
                    {"name": "christmas_bonus", "command": ["sh", "-c", f"id > {marker}"]}
                ]
            },
        }
        refused = _send(
            endpoint + "/",
            data=json.dumps(body).encode(),
            headers={
                "X-Amz-Target": f"{ECS_TARGET}.RunTask",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        assert refused == 403
        assert _send(endpoint + "/moto-api/data.json") == 403
        assert _send(endpoint + "/moto-api/reset", data=b"") == 403

        # the owner's own commands and the AWS CLI with `sandbox env` work
        ran = _residency(user_env, "--sandbox", "run", "bonus", "--no-follow", "-o", "json")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["outcome"] == "succeeded"
        if AWS.exists():
            aws_env = {**user_env, **variables}
            tasks = _aws(aws_env, "ecs", "list-tasks", "--cluster", "acme-etl",
                         "--desired-status", "STOPPED")  # fmt: skip
            assert tasks.returncode == 0, tasks.stderr
            assert len(json.loads(tasks.stdout)["taskArns"]) == 1  # bonus; not the refused one
            upload = tmp_path / "note.txt"
            upload.write_text("hello\n")
            copied = _aws(
                aws_env, "s3", "cp", str(upload), "s3://acme-frankfurt-reports/notes/note.txt"
            )
            assert copied.returncode == 0, copied.stderr
            back = _aws(aws_env, "s3", "cp", "s3://acme-frankfurt-reports/notes/note.txt", "-")
            assert back.returncode == 0 and back.stdout == "hello\n", back.stderr
            presigned = _aws(aws_env, "s3", "presign", "s3://acme-frankfurt-reports/notes/note.txt")
            assert presigned.returncode == 0, presigned.stderr
            assert _send(presigned.stdout.strip()) == 200
            stranger = {
                **aws_env,
                "AWS_ACCESS_KEY_ID": "SBOXAAAAAAAAAAAAAAAA",
                "AWS_SECRET_ACCESS_KEY": "not-the-secret-not-the-secret-not-the-sec",
            }
            denied = _aws(stranger, "ecs", "list-clusters")
            assert denied.returncode != 0 and "UnrecognizedClientException" in denied.stderr
            wrong = {**aws_env, "AWS_SECRET_ACCESS_KEY": stranger["AWS_SECRET_ACCESS_KEY"]}
            denied = _aws(wrong, "ecs", "list-clusters")
            assert denied.returncode != 0 and "InvalidSignatureException" in denied.stderr
        assert not marker.exists()

        # everything the sandbox and its jobs wrote is its owner's alone
        workdir = state / "sandbox"
        reports = [p for p in workdir.rglob("*.csv") if "bonus" in p.name]
        assert reports, "the bonus job wrote its report under the host's disk"
        employees = list(workdir.rglob("employee*.csv"))
        assert employees, "the hosts' disks hold copies of the employee files"
        assert _modes(state) == {}
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "sandbox.json").stat().st_mode) == 0o600
    finally:
        kept = _residency(user_env, "sandbox", "down", "--keep")
    assert kept.returncode == 0, kept.stderr
    assert "kept its files" in kept.stderr
    # --keep: the files stay for reading; the record and its credentials go with the sandbox
    assert (state / "sandbox").is_dir() and (state / "sandbox.log").is_file()
    assert not (state / "sandbox.json").exists()
    assert _residency(user_env, "sandbox", "env").returncode == 7
    # a plain `down` removes what --keep left
    down = _residency(user_env, "sandbox", "down")
    assert down.returncode == 0, down.stderr
    assert sorted(p.name for p in state.iterdir()) == []


def test_down_removes_the_sandboxs_files(user_env: dict[str, str]) -> None:
    state = Path(user_env["RESIDENCY_STATE_DIR"])
    journal = state / "journal.jsonl"
    up = _residency(user_env, "sandbox", "up", "--port", "0")
    assert up.returncode == 0, up.stderr
    journal.write_text("")  # not the sandbox's: stays
    before = sum(1 for _ in (state / "sandbox").rglob("*"))
    assert before > 0
    down = _residency(user_env, "sandbox", "down", "-o", "json")
    assert down.returncode == 0, down.stderr
    result: dict[str, Any] = json.loads(down.stdout)
    assert result["was_running"] and result["kept"] == []
    assert set(result["removed"]) == {str(state / "sandbox"), str(state / "sandbox.log")}
    assert sorted(p.name for p in state.iterdir()) == ["journal.jsonl"]
