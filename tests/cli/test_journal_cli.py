"""`residency journal show|verify` through main(), on a journal in a temporary directory."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from residency_cli.cli.app import main
from residency_cli.journal import append, build_record, head_path

T0 = datetime(2024, 12, 24, 9, 0, tzinfo=timezone.utc)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.jsonl"
    monkeypatch.setenv("RESIDENCY_JOURNAL", str(path))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("LOGNAME", "carol")  # getpass.getuser() reads it first
    return path


def add(path: Path, index: int, workload: str = "bonus", who: Any = "alice") -> dict[str, Any]:
    identity = (
        {"account": "1", "arn": f"arn:aws:iam::123456789012:user/{who}", "user_id": "AID"}
        if who
        else None
    )
    return append(
        path,
        build_record(
            who=identity,
            workload=workload,
            run_id=f"run-{index}",
            request={"cluster": "acme-etl"},
            locations=["newyork"],
            outcome={
                "workload": workload,
                "outcome": "failed" if index % 2 else "succeeded",
                "exit_code": index % 2,
                "host": {
                    "container_instance_arn": "arn:aws:ecs:r:1:container-instance/c/ci-9",
                    "instance_id": "mi-1",
                    "hostname": f"{workload}.host",
                    "location": "newyork",
                },
            },
            host_attributes={"location": "newyork"},
            now=T0 + timedelta(minutes=index),
        ),
    )


def test_show_and_verify_without_a_journal(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "journal", "show") == (0, "", "")
    code, out, _ = run_cli(capsys, "journal", "show", "-o", "json")
    assert (code, json.loads(out)) == (0, [])
    code, out, err = run_cli(capsys, "journal", "verify")
    assert code == 0, err
    assert out.strip() == f"no journal yet at {journal}"
    code, out, _ = run_cli(capsys, "journal", "verify", "-o", "json")
    assert code == 0 and json.loads(out)["exists"] is False


def test_show_text_table(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add(journal, 0)
    add(journal, 1, "tax", who=None)
    code, out, err = run_cli(capsys, "journal", "show")
    assert code == 0, err
    for heading in ("time", "seq", "who", "workload", "run id", "host", "location", "outcome"):
        assert heading in out
    assert "exit code" in out
    assert "user/alice" in out and "carol@" in out  # no STS identity: the local user
    assert "2024-12-24T09:00:00.000Z" in out and "bonus.host" in out and "tax.host" in out
    assert "succeeded" in out and "failed" in out and "run-1" in out
    assert "\x1b[" not in out


def test_show_json_filters_and_limits(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        add(journal, i)
    add(journal, 3, "tax")
    code, out, _ = run_cli(capsys, "journal", "show", "-o", "json")
    records = json.loads(out)
    assert code == 0 and [r["seq"] for r in records] == [1, 2, 3, 4]
    assert {"seq", "prev", "hash", "who", "workload", "result"} <= set(records[0])
    _, out, _ = run_cli(capsys, "journal", "show", "--workload", "bonus", "-o", "json")
    assert [r["seq"] for r in json.loads(out)] == [1, 2, 3]
    _, out, _ = run_cli(capsys, "journal", "show", "-w", "bonus", "--limit", "1", "-o", "json")
    assert [r["seq"] for r in json.loads(out)] == [3]
    code, _, err = run_cli(capsys, "journal", "show", "--limit", "-1")
    assert code == 2 and "limit" in err.lower()


def test_verify_intact(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored = [add(journal, i) for i in range(3)]
    code, out, err = run_cli(capsys, "journal", "verify")
    assert code == 0, err
    assert "3 record(s), intact" in out and stored[-1]["hash"] in out
    code, out, _ = run_cli(capsys, "journal", "verify", "-o", "json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["last_hash"] == stored[-1]["hash"]


def test_verify_reports_each_problem_and_exits_1(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(4):
        add(journal, i)
    content = journal.read_bytes().splitlines(keepends=True)
    edited = content[0].replace(b'"bonus"', b'"tax"', 1)
    journal.write_bytes(b"".join([edited, content[1], content[3]]))  # edit 1, delete 3
    code, out, err = run_cli(capsys, "journal", "verify")
    assert code == 1
    assert out == ""
    problems = err.splitlines()
    assert problems[0].startswith(f"error: journal {journal} is not intact: 3 problem(s)")
    assert "error: line 1 (seq 1): hash mismatch: the record was edited" in problems
    assert any(p.startswith("error: line 3 (seq 4): prev does not match") for p in problems)
    assert "error: seq 3 missing: record(s) deleted" in problems
    assert "Traceback" not in err
    code, out, _ = run_cli(capsys, "journal", "verify", "-o", "json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and len(report["problems"]) == 3


def test_verify_catches_a_deleted_last_record(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        add(journal, i)
    journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:-1]))
    code, _, err = run_cli(capsys, "journal", "verify")
    assert code == 1 and "removed from the end" in err


def test_verify_notes_go_to_stderr(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add(journal, 0)
    head_path(journal).unlink()
    code, out, err = run_cli(capsys, "journal", "verify")
    assert code == 0 and "intact" in out and "note: no head file" in err


def test_journal_option_overrides_the_environment(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other" / "j.jsonl"
    add(other, 0, "tax")
    add(journal, 0, "bonus")
    code, out, _ = run_cli(capsys, "journal", "--journal", str(other), "show", "-o", "json")
    assert code == 0 and [r["workload"] for r in json.loads(out)] == ["tax"]
    code, out, _ = run_cli(capsys, "journal", "show", "-o", "json")
    assert [r["workload"] for r in json.loads(out)] == ["bonus"]


def test_default_path_is_under_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RESIDENCY_JOURNAL", raising=False)
    monkeypatch.setenv("RESIDENCY_STATE_DIR", str(tmp_path / "state"))
    add(tmp_path / "state" / "journal.jsonl", 0)
    code, out, _ = run_cli(capsys, "journal", "show", "-o", "json")
    assert code == 0 and len(json.loads(out)) == 1


def test_unreadable_journal_is_exit_2(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal.mkdir()
    for command in ("show", "verify"):
        code, out, err = run_cli(capsys, "journal", command)
        assert code == 2 and out == ""
        assert err.startswith(f"error: cannot read the journal {journal}")


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "journal", "--help")
    assert code == 0 and "show" in out and "verify" in out and "--journal" in out
