"""The journal on the sandbox's S3 with real processes: concurrent writers form one chain,
tampering is caught by `journal verify`, a killed writer leaves a chain that verifies; and
the sandbox's conditional puts are atomic (moto_ext._conditional_put_object)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from residency_cli.journal import open_journal
from tests.support.cli import cli
from tests.support.journal_writer import run_writers

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "acme-journal"
URL = f"s3://{BUCKET}/dispatch"


def key(seq: int) -> str:
    return f"dispatch/{seq:020d}.json"


@pytest.fixture
def s3(sandbox: Any) -> Any:
    client = sandbox.client("s3")
    where = {} if sandbox.region == "us-east-1" else {"LocationConstraint": sandbox.region}
    client.create_bucket(Bucket=BUCKET, **({"CreateBucketConfiguration": where} if where else {}))
    return client


def verify_cli(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], str]:
    sandbox.use(monkeypatch)
    code, out, err = cli(capsys, "--sandbox", "--journal", URL, "journal", "verify", "-o", "json")
    return code, json.loads(out), err


def test_conditional_puts_are_atomic_in_the_sandbox(
    sandbox: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 threads put the same new key with If-None-Match: * at once; moto's write is made
    slow (20 ms) to widen the gap between its check and its write: exactly one put wins
    (without the sandbox's lock, stock moto 5.2.5 lets most of them win here)."""
    import time

    from moto.s3.models import S3Backend

    slow = S3Backend.put_object

    def slow_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.02)
        return slow(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put)
    clients = [sandbox.client("s3") for _ in range(16)]
    for trial in range(3):
        barrier = threading.Barrier(16)
        winners: list[int] = []
        threads = [
            threading.Thread(target=_race, args=(clients[i], f"race/{trial}", barrier, winners, i))
            for i in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1, (trial, winners)


def _race(client: Any, name: str, barrier: Any, winners: list[int], index: int) -> None:
    barrier.wait()
    try:
        client.put_object(Bucket=BUCKET, Key=name, Body=b"x" * 10_000, IfNoneMatch="*")
        winners.append(index)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        assert code in ("PreconditionFailed", "ConditionalRequestConflict"), code


def test_16_processes_appending_25_records_each_form_one_chain(
    sandbox: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    times = run_writers(
        URL,
        16,
        25,
        endpoint=sandbox.endpoint,
        region=sandbox.region,
        credentials=sandbox.credentials.boto(),
    )
    assert len(times) == 16
    code, report, err = verify_cli(sandbox, monkeypatch, capsys)
    assert code == 0, err
    assert report["ok"] and report["records"] == 400 and report["last_seq"] == 400
    assert report["problems"] == []
    records = open_journal(URL, s3_client=lambda: sandbox.client("s3")).read()
    assert [r["seq"] for r in records] == list(range(1, 401))
    for writer in times:  # each writer's 25 records, once each, in the order it wrote them
        mine = [r["run_id"] for r in records if r["workload"] == writer]
        assert mine == [f"{writer}-{i}" for i in range(25)]


def _fill(sandbox: Any, count: int) -> None:
    journal = open_journal(URL, s3_client=lambda: sandbox.client("s3"))
    for index in range(count):
        journal.append(_record(index))


def _record(index: int) -> dict[str, Any]:
    from tests.support.journal_writer import _record as make

    return make("bonus", index)


def _body(s3: Any, seq: int) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key(seq))["Body"].read())


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("delete", f"object {key(4)} (seq 4): prev does not match the hash of object {key(2)}"),
        ("edit", f"object {key(3)} (seq 3): hash mismatch: the record was edited"),
        ("reorder", f"object {key(3)} (seq 4): stored in the place of seq 3"),
        ("delete-last", "the journal ends at seq 4 but its head says seq 6: records were removed"),
    ],
)
def test_verify_catches_deleted_edited_reordered_and_truncated_objects(
    sandbox: Any,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tamper: str,
    expected: str,
) -> None:
    _fill(sandbox, 6)
    if tamper == "delete":
        s3.delete_object(Bucket=BUCKET, Key=key(3))
    elif tamper == "edit":
        s3.put_object(Bucket=BUCKET, Key=key(3), Body=_body(s3, 3).replace(b"bonus", b"bogus"))
    elif tamper == "reorder":
        third, fourth = _body(s3, 3), _body(s3, 4)
        s3.put_object(Bucket=BUCKET, Key=key(3), Body=fourth)
        s3.put_object(Bucket=BUCKET, Key=key(4), Body=third)
    else:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key(5)}, {"Key": key(6)}]})
    code, report, err = verify_cli(sandbox, monkeypatch, capsys)
    assert code == 1 and not report["ok"]
    assert any(expected in problem for problem in report["problems"]), report["problems"]
    assert f"error: journal {URL} is not intact" in err and expected in err


def _writer(sandbox: Any, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.journal_writer", URL, "1", "killed", mode],
        cwd=ROOT,
        env={**os.environ, **sandbox.env()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["--hang-before-put", "--die-after-put"])
def test_a_writer_killed_mid_append_leaves_a_chain_that_verifies(
    sandbox: Any,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    """Killed (SIGKILL) between reading the tail and its conditional put, or right after the
    put and before moving the head: the chain verifies, and the next append continues it."""
    _fill(sandbox, 3)
    process = _writer(sandbox, mode)
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "ready"
        process.stdin.write("go\n")
        process.stdin.flush()
        if mode == "--hang-before-put":
            assert process.stdout.readline().split() == ["tail", "3"]
            process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    written = 4 if mode == "--die-after-put" else 3
    code, report, err = verify_cli(sandbox, monkeypatch, capsys)
    assert code == 0 and report["ok"] and report["records"] == written, err
    if mode == "--die-after-put":
        assert report["notes"] == [
            "the head is one record behind (seq 3): a crash between the journal write and the "
            "head update; the next append fixes it"
        ]
    _fill(sandbox, 1)
    code, report, err = verify_cli(sandbox, monkeypatch, capsys)
    assert code == 0 and report["records"] == written + 1 and report["notes"] == [], err
