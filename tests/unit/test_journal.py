"""The dispatch journal: the hash chain, its head, tamper detection, crash safety, locking."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import stat
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from residency_cli import journal
from residency_cli.journal import (
    GENESIS,
    JournalCorruptError,
    JournalError,
    append,
    build_record,
    caller_identity,
    default_journal_path,
    head_path,
    read,
    record_hash,
    verify,
)

T0 = datetime(2024, 12, 24, 9, 0, tzinfo=timezone.utc)
WHO = {"account": "123456789012", "arn": "arn:aws:sts::123456789012:user/alice", "user_id": "AID"}


def outcome(workload: str = "bonus", exit_code: int | None = 0) -> dict[str, Any]:
    return {
        "workload": workload,
        "locations": ["newyork"],
        "cluster": "acme-etl",
        "run_id": "r1",
        "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/acme-etl/abc",
        "task_id": "abc",
        "host": {
            "container_instance_arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/x/ci1",
            "instance_id": "mi-0123",
            "hostname": "bonus.host",
            "location": "newyork",
        },
        "outcome": "succeeded" if exit_code == 0 else "failed",
        "status": "STOPPED",
        "exit_code": exit_code,
        "stop_code": "EssentialContainerExited",
        "stopped_reason": None,
        "log_group": "/ecs/christmas-bonus",
        "log_stream": "etl/christmas_bonus/abc",
        "started_at": "2024-12-24T09:00:01Z",
        "stopped_at": "2024-12-24T09:00:09Z",
    }


def record(index: int = 0, workload: str = "bonus", **extra: Any) -> dict[str, Any]:
    return build_record(
        who=WHO,
        workload=workload,
        run_id=f"run-{index}",
        request={"cluster": "acme-etl", "taskDefinition": "christmas-bonus", **extra},
        locations=["newyork"],
        outcome=outcome(workload),
        host_attributes={"location": "newyork", "ecs.os-type": "linux"},
        now=T0 + timedelta(minutes=index),
    )


def fill(path: Path, count: int, workload: str = "bonus") -> list[dict[str, Any]]:
    return [append(path, record(i, workload)) for i in range(count)]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, content: list[bytes]) -> None:
    path.write_bytes(b"".join(content))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.jsonl"


# --- records ---------------------------------------------------------------------------


def test_build_record_carries_who_what_where_and_outcome() -> None:
    built = build_record(
        who=WHO,
        workload="bonus",
        run_id="r1",
        request={"cluster": "acme-etl", "when": datetime(2024, 1, 1, tzinfo=timezone.utc)},
        locations=["newyork", "sanfrancisco"],
        outcome=outcome(),
        host_attributes={"location": "newyork"},
        now=datetime(2024, 12, 24, 9, 0, 0, 123456),  # naive: taken as UTC
    )
    assert built["time"] == "2024-12-24T09:00:00.123Z"
    assert built["who"] == WHO
    assert built["workload"] == "bonus" and built["run_id"] == "r1"
    assert built["locations"] == ["newyork", "sanfrancisco"]
    assert built["host_attributes"] == {"location": "newyork"}
    assert built["result"]["host"]["hostname"] == "bonus.host"
    assert built["result"]["log_stream"] == "etl/christmas_bonus/abc"
    assert built["request"]["when"] == "2024-01-01 00:00:00+00:00"  # plain JSON only
    assert set(built["origin"]) == {"user", "hostname"}
    assert "seq" not in built and "hash" not in built
    json.dumps(built, allow_nan=False)


def test_build_record_without_identity_or_request() -> None:
    built = build_record(
        who=None,
        workload="bonus",
        run_id=None,
        request=None,
        locations=["newyork"],
        outcome=outcome(),
        host_attributes=None,
        now=T0,
    )
    assert built["who"] is None and built["request"] is None and built["host_attributes"] is None


def test_default_path_env_and_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESIDENCY_JOURNAL", raising=False)
    monkeypatch.setenv("RESIDENCY_STATE_DIR", str(tmp_path / "st"))
    assert default_journal_path() == tmp_path / "st" / "journal.jsonl"
    monkeypatch.setenv("RESIDENCY_JOURNAL", str(tmp_path / "elsewhere.jsonl"))
    assert default_journal_path() == tmp_path / "elsewhere.jsonl"
    monkeypatch.setenv("RESIDENCY_JOURNAL", "")
    assert default_journal_path() == tmp_path / "st" / "journal.jsonl"


def test_caller_identity_from_sts(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        identity = caller_identity(boto3.client("sts", region_name="us-east-1"))
    assert identity is not None
    assert set(identity) == {"account", "arn", "user_id"}
    assert identity["account"] == "123456789012"
    assert identity["arn"].startswith("arn:aws:")


def test_caller_identity_never_fails_a_run() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    class Broken:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def get_caller_identity(self) -> Any:
            raise self.error

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetCallerIdentity")
    unreachable = EndpointConnectionError(endpoint_url="https://sts.example")
    for error in (denied, unreachable, RuntimeError("boom")):
        assert caller_identity(Broken(error)) is None  # type: ignore[arg-type]


# --- append ----------------------------------------------------------------------------


def test_append_chains_records_and_writes_the_head(path: Path) -> None:
    stored = fill(path, 3)
    assert [r["seq"] for r in stored] == [1, 2, 3]
    assert stored[0]["prev"] == GENESIS
    assert stored[1]["prev"] == stored[0]["hash"] and stored[2]["prev"] == stored[1]["hash"]
    for r in stored:
        assert r["hash"] == record_hash(r)
    on_disk = [json.loads(line) for line in lines(path)]
    assert on_disk == stored
    assert all(line.endswith(b"\n") for line in lines(path))
    head = json.loads(head_path(path).read_text())
    assert (head["seq"], head["hash"]) == (3, stored[2]["hash"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = verify(path)
    assert report.ok and report.records == 3 and report.last_seq == 3, report.problems
    assert report.notes == []


def test_append_ignores_caller_supplied_chain_fields(path: Path) -> None:
    fill(path, 1)
    forged = {**record(1), "seq": 99, "prev": "x", "hash": "y", "journal_notes": ["z"]}
    stored = append(path, forged)
    assert stored["seq"] == 2 and "journal_notes" not in stored
    assert verify(path).ok


def test_append_fsyncs_the_journal_the_head_and_the_directory(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(path, 1)
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    append(path, record(1))
    assert path.stat().st_ino in synced
    assert head_path(path).stat().st_ino in synced
    assert path.parent.stat().st_ino in synced
    assert synced.index(path.stat().st_ino) < synced.index(head_path(path).stat().st_ino)


def test_first_append_creates_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "journal.jsonl"
    append(target, record())
    assert verify(target).ok


def test_a_failed_write_leaves_no_half_record(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(path, 2)
    before = path.read_bytes()
    real_write = os.write

    def half_then_fail(fd: int, data: bytes) -> int:
        if b'"workload"' in data:
            real_write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(JournalError, match="No space left"):
        append(path, record(2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert verify(path).ok
    assert append(path, record(2))["seq"] == 3


def test_a_short_write_is_rolled_back(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(path, 1)
    before = path.read_bytes()
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        if b'"workload"' in data:
            return real_write(fd, data[:10])
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", short)
    with pytest.raises(JournalError, match="short write"):
        append(path, record(1))
    monkeypatch.undo()
    assert path.read_bytes() == before


def test_unusable_path_is_a_configuration_error(tmp_path: Path) -> None:
    directory = tmp_path / "dir.jsonl"
    directory.mkdir()
    for action in (
        lambda: append(directory, record()),
        lambda: verify(directory),
        lambda: read(directory),
    ):
        with pytest.raises(JournalError) as raised:
            action()
        assert raised.value.exit_code == 2
        assert not isinstance(raised.value, JournalCorruptError)


def test_append_refuses_to_continue_an_unreadable_last_record(path: Path) -> None:
    fill(path, 2)
    content = lines(path)
    write_lines(path, [content[0], b"{not json\n"])
    with pytest.raises(JournalCorruptError) as raised:
        append(path, record(3))
    assert raised.value.exit_code == 1
    assert lines(path) == [content[0], b"{not json\n"]  # nothing written


# --- read ------------------------------------------------------------------------------


def test_read_filters_and_limits(path: Path) -> None:
    assert read(path) == []  # no journal yet
    fill(path, 3, "bonus")
    fill(path, 2, "tax")
    assert [r["seq"] for r in read(path)] == [1, 2, 3, 4, 5]
    assert [r["seq"] for r in read(path, workload="tax")] == [4, 5]
    assert [r["seq"] for r in read(path, limit=2)] == [4, 5]
    assert [r["seq"] for r in read(path, workload="bonus", limit=2)] == [2, 3]
    assert read(path, limit=0) == []


def test_read_skips_a_torn_tail(path: Path) -> None:
    fill(path, 2)
    with path.open("ab") as stream:
        stream.write(b'{"seq":3,"wor')
    assert [r["seq"] for r in read(path)] == [1, 2]


# --- verify: tamper detection ----------------------------------------------------------


def test_verify_missing_journal_is_ok(path: Path) -> None:
    report = verify(path)
    assert report.ok and not report.exists and report.records == 0
    assert report.to_json()["ok"] is True


def test_edited_field_is_a_hash_mismatch(path: Path) -> None:
    fill(path, 4)
    content = lines(path)
    edited = json.loads(content[1])
    edited["result"]["host"]["location"] = "frankfurt"
    content[1] = journal.canonical(edited) + b"\n"
    write_lines(path, content)
    report = verify(path)
    assert not report.ok
    assert report.problems == ["line 2 (seq 2): hash mismatch: the record was edited"]


def test_edited_record_with_recomputed_hash_breaks_the_next_prev(path: Path) -> None:
    fill(path, 4)
    content = lines(path)
    edited = json.loads(content[1])
    edited["result"]["exit_code"] = 0 if edited["result"]["exit_code"] else 1
    edited["hash"] = record_hash(edited)
    content[1] = journal.canonical(edited) + b"\n"
    write_lines(path, content)
    report = verify(path)
    assert not report.ok
    assert any(p.startswith("line 3 (seq 3): prev does not match") for p in report.problems)


def test_reformatted_line_is_reported(path: Path) -> None:
    fill(path, 2)
    content = lines(path)
    content[0] = json.dumps(json.loads(content[0]), indent=None).encode() + b"\n"  # spaces
    write_lines(path, content)
    report = verify(path)
    assert report.problems == ["line 1 (seq 1): not in canonical form: the line was edited by hand"]


def test_deleted_middle_record(path: Path) -> None:
    fill(path, 5)
    content = lines(path)
    del content[2]
    write_lines(path, content)
    report = verify(path)
    assert not report.ok
    assert any(p.startswith("line 3 (seq 4): prev does not match") for p in report.problems)
    assert "seq 3 missing: record(s) deleted" in report.problems


def test_deleted_first_record(path: Path) -> None:
    fill(path, 3)
    write_lines(path, lines(path)[1:])
    report = verify(path)
    assert any("the start of the journal" in p for p in report.problems)
    assert "seq 1 missing: record(s) deleted" in report.problems


def test_deleted_last_record_is_caught_by_the_head(path: Path) -> None:
    fill(path, 4)
    write_lines(path, lines(path)[:-1])
    report = verify(path)
    assert not report.ok
    assert report.problems == [
        "the journal ends at seq 3 but its head says seq 4: records were removed from the end"
    ]


def test_deleted_last_record_and_head(path: Path) -> None:
    fill(path, 4)
    write_lines(path, lines(path)[:-1])
    head_path(path).unlink()
    report = verify(path)
    assert not report.ok
    assert any("head file is missing" in p for p in report.problems)


def test_appending_after_a_deletion_does_not_launder_it(path: Path) -> None:
    fill(path, 4)
    write_lines(path, lines(path)[:-1])
    stored = append(path, record(9))
    assert stored["seq"] == 4
    assert stored["journal_notes"][0]["kind"] == journal.NOTE_HEAD_MISMATCH
    report = verify(path)
    assert not report.ok
    assert len(report.problems) == 1
    assert "line 4 (seq 4): when this record was appended" in report.problems[0]
    assert "head said seq 4" in report.problems[0]


def test_deleted_journal_with_head_left_behind(path: Path) -> None:
    fill(path, 2)
    path.unlink()
    report = verify(path)
    assert not report.ok and any("journal is missing" in p for p in report.problems)


def test_reordered_records(path: Path) -> None:
    fill(path, 4)
    content = lines(path)
    content[1], content[2] = content[2], content[1]
    write_lines(path, content)
    report = verify(path)
    assert not report.ok
    assert any("line 3 (seq 2): out of order: follows seq 3" in p for p in report.problems)
    assert any(p.startswith("line 2 (seq 3): prev does not match") for p in report.problems)


def test_duplicated_record(path: Path) -> None:
    fill(path, 3)
    content = lines(path)
    write_lines(path, [*content[:2], content[1], content[2]])
    report = verify(path)
    assert any("seq 2 also on line 2 (duplicated)" in p for p in report.problems)


def test_garbage_line(path: Path) -> None:
    fill(path, 3)
    content = lines(path)
    content.insert(1, b"hello\n")
    write_lines(path, content)
    report = verify(path)
    assert "line 2: not a JSON object (edited or corrupted)" in report.problems
    # after an unreadable line the next prev is not held against it
    assert not any(p.startswith("line 3") for p in report.problems)


def test_corrupt_head_is_a_problem_and_append_still_records(path: Path) -> None:
    fill(path, 2)
    head_path(path).write_text("nonsense")
    assert any("is not a journal head" in p for p in verify(path).problems)
    stored = append(path, record(2))
    assert stored["journal_notes"][0]["kind"] == journal.NOTE_HEAD_MISMATCH
    assert not verify(path).ok


# --- verify: crash leftovers -----------------------------------------------------------


def test_torn_tail_is_reported_then_repaired_by_the_next_append(path: Path) -> None:
    fill(path, 2)
    torn = b'{"hash":"abc","seq":3,"wor'
    with path.open("ab") as stream:
        stream.write(torn)
    report = verify(path)
    assert not report.ok
    assert report.problems == [
        f"line 3: torn final line ({len(torn)} bytes without a newline): an interrupted write; "
        "the next append removes it"
    ]
    stored = append(path, record(2))
    assert stored["seq"] == 3
    assert stored["journal_notes"][0]["kind"] == journal.NOTE_TORN_TAIL
    report = verify(path)
    assert report.ok, report.problems
    assert len(report.notes) == 1 and "interrupted write" in report.notes[0]
    assert len(lines(path)) == 3


def test_complete_record_without_newline_is_kept(path: Path) -> None:
    fill(path, 2)
    path.write_bytes(path.read_bytes()[:-1])  # an editor dropped the final newline
    assert not verify(path).ok
    stored = append(path, record(2))
    assert stored["seq"] == 3  # record 2 was kept, not cut off
    assert [r["seq"] for r in read(path)] == [1, 2, 3]
    report = verify(path)
    assert report.ok, report.problems  # its hash vouches for it: a note, not a problem
    assert any("had no final newline" in n for n in report.notes)


def test_head_one_record_behind_is_a_crash_not_tampering(path: Path) -> None:
    fill(path, 2)
    saved_head = head_path(path).read_bytes()
    append(path, record(2))
    head_path(path).write_bytes(saved_head)  # as if we crashed before replacing the head
    report = verify(path)
    assert report.ok, report.problems
    assert any("one record behind" in n for n in report.notes)
    stored = append(path, record(3))
    assert "journal_notes" not in stored
    assert verify(path).notes == []


def test_first_record_without_head_is_a_note(path: Path) -> None:
    fill(path, 1)
    head_path(path).unlink()
    report = verify(path)
    assert report.ok and report.notes


# --- properties ------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.text(max_size=8), JSON, max_size=4), min_size=1, max_size=5))
def test_any_requests_round_trip_and_verify(requests: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "journal.jsonl"
        stored = [
            append(
                target,
                build_record(
                    who=None,
                    workload="w",
                    run_id=None,
                    request=request,
                    locations=["l"],
                    outcome={"outcome": "succeeded"},
                    host_attributes=None,
                    now=T0,
                ),
            )
            for request in requests
        ]
        assert read(target) == stored
        report = verify(target)
        assert report.ok and report.records == len(requests), report.problems


@functools.cache
def _journal_bytes(count: int) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "journal.jsonl"
        for i in range(count):
            append(target, record(i))
        return target.read_bytes(), head_path(target).read_bytes()


def _verify_bytes(content: bytes) -> journal.VerifyReport:
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / "journal.jsonl"
        target.write_bytes(content)
        head_path(target).write_bytes(_journal_bytes(3)[1])
        return verify(target)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_single_byte_change_is_detected(data: st.DataObject) -> None:
    content, _ = _journal_bytes(3)
    position = data.draw(st.integers(0, len(content) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]), label="byte")
    changed = content[:position] + bytes([value]) + content[position + 1 :]
    assert not _verify_bytes(changed).ok


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_every_deletion_insertion_or_swap_of_lines_is_detected(data: st.DataObject) -> None:
    content = _journal_bytes(3)[0].splitlines(keepends=True)
    action = data.draw(st.sampled_from(["delete", "swap", "duplicate", "truncate"]))
    changed = list(content)
    if action == "delete":
        del changed[data.draw(st.integers(0, len(content) - 1))]
    elif action == "swap":
        i, j = data.draw(
            st.lists(st.integers(0, len(content) - 1), min_size=2, max_size=2, unique=True)
        )
        changed[i], changed[j] = changed[j], changed[i]
    elif action == "duplicate":
        i = data.draw(st.integers(0, len(content) - 1))
        changed.insert(data.draw(st.integers(0, len(content))), content[i])
    else:
        cut = data.draw(st.integers(0, len(_journal_bytes(3)[0]) - 1))
        assert not _verify_bytes(_journal_bytes(3)[0][:cut]).ok
        return
    assert not _verify_bytes(b"".join(changed)).ok


# --- concurrency -----------------------------------------------------------------------

WRITERS = 4
PER_WRITER = 15


def _writer(target: str, writer: int, barrier: Any) -> None:
    barrier.wait(timeout=60)
    for i in range(PER_WRITER):
        append(Path(target), record(i, workload=f"w{writer}", marker=f"{writer}-{i}"))


def test_concurrent_appends_from_processes_never_interleave(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    processes = [
        context.Process(target=_writer, args=(str(path), n, barrier)) for n in range(WRITERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    for process in processes:
        if process.is_alive():  # pragma: no cover - only on a hang
            process.kill()
    assert [p.exitcode for p in processes] == [0] * WRITERS
    report = verify(path)
    assert report.ok, report.problems
    assert report.records == WRITERS * PER_WRITER
    stored = read(path)
    assert [r["seq"] for r in stored] == list(range(1, WRITERS * PER_WRITER + 1))
    markers = sorted(r["request"]["marker"] for r in stored)
    assert markers == sorted(f"{w}-{i}" for w in range(WRITERS) for i in range(PER_WRITER))
