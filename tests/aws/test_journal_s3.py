"""The journal on S3 (journal_s3.py) against stock moto (`mock_aws`): the chain, the head
object, lost races, tamper detection, crash leftovers, the cost of finding the tail.
Concurrency with real processes is in tests/sandbox/test_journal_s3_sandbox.py."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from residency_cli.errors import UsageError
from residency_cli.journal import (
    GENESIS,
    JournalCorruptError,
    JournalError,
    LocalJournal,
    RunJournal,
    S3Location,
    build_record,
    canonical,
    open_journal,
    parse_location,
    recorded_placements,
)
from residency_cli.journal_s3 import S3Journal

BUCKET = "acme-journal"
URL = f"s3://{BUCKET}/governance/dispatch"
PREFIX = "governance/dispatch/"
T0 = datetime(2024, 12, 24, 9, 0, tzinfo=timezone.utc)


class Calls:
    """S3 operations a client made (botocore's before-call event), by name."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-call.s3.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1

    def take(self) -> dict[str, int]:
        taken = dict(self.counts)
        self.counts.clear()
        return taken


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def store(client: Any, url: str = URL) -> S3Journal:
    opened = open_journal(url, s3_client=lambda: client)
    assert isinstance(opened, S3Journal)
    opened.sleep = lambda seconds: None
    return opened


def record(index: int, workload: str = "bonus", task: str | None = None) -> dict[str, Any]:
    return build_record(
        who=None,
        workload=workload,
        run_id=f"run-{index}",
        request={"cluster": "acme-etl"},
        locations=["newyork"],
        outcome={
            "outcome": "succeeded",
            "task_arn": task,
            "host": {"location": "newyork"} if task else None,
        },
        host_attributes=None,
        now=T0 + timedelta(minutes=index),
    )


def fill(journal: S3Journal, count: int) -> list[dict[str, Any]]:
    return [journal.append(record(i)) for i in range(count)]


def key(seq: int) -> str:
    return f"{PREFIX}{seq:020d}.json"


def body(client: Any, name: str) -> bytes:
    return bytes(client.get_object(Bucket=BUCKET, Key=name)["Body"].read())


def put(client: Any, name: str, data: bytes) -> None:
    client.put_object(Bucket=BUCKET, Key=name, Body=data)


# --- locations -------------------------------------------------------------------------


def test_locations_parse_to_a_bucket_and_prefix_or_a_path() -> None:
    assert parse_location("s3://acme-journal/a/b/") == S3Location("acme-journal", "a/b/")
    assert parse_location("S3://acme-journal") == S3Location("acme-journal", "")
    assert parse_location("s3://acme-journal/x").url == "s3://acme-journal/x"  # type: ignore[union-attr]
    assert str(parse_location("/tmp/j.jsonl")) == "/tmp/j.jsonl"
    assert isinstance(open_journal("/tmp/j.jsonl"), LocalJournal)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("s3://", "not an S3 bucket name"),
        ("s3://Acme_Journal/x", "not an S3 bucket name"),
        ("s3://ab/x", "not an S3 bucket name"),
        ("s3://acme..journal/x", "not an S3 bucket name"),
        ("s3://acme-journal/a//b", "the prefix may hold only"),
        ("s3://acme-journal/a b", "the prefix may hold only"),
        ("gs://acme-journal/x", "unsupported journal location"),
        ("", "the journal location is empty"),
    ],
)
def test_invalid_locations_are_usage_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as raised:
        parse_location(text)
    assert raised.value.exit_code == 2


# --- the chain -------------------------------------------------------------------------


def test_each_record_is_one_object_holding_its_canonical_line(s3: Any) -> None:
    journal = store(s3)
    stored = fill(journal, 3)
    assert [r["seq"] for r in stored] == [1, 2, 3]
    assert stored[0]["prev"] == GENESIS and stored[1]["prev"] == stored[0]["hash"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [key(1), key(2), key(3), f"{PREFIX}head.json"]
    assert body(s3, key(2)) == canonical(stored[1]) + b"\n"  # the local journal's line
    head = json.loads(body(s3, f"{PREFIX}head.json"))
    assert (head["seq"], head["hash"]) == (3, stored[2]["hash"])
    assert store(s3).read() == stored  # another reader, same records
    report = journal.verify()
    assert report.ok and report.records == 3 and report.last_seq == 3
    assert report.to_json()["path"] == URL and report.notes == []


def test_read_filters_and_limits_like_the_local_journal(s3: Any) -> None:
    journal = store(s3)
    for index in range(6):
        journal.append(record(index, "tax" if index % 2 else "bonus"))
    assert [r["seq"] for r in journal.read(limit=2)] == [5, 6]
    assert [r["seq"] for r in journal.read(workload="tax", limit=2)] == [4, 6]
    assert journal.read(limit=0) == []
    empty = store(s3, f"s3://{BUCKET}/nothing-here")
    assert empty.read() == [] and empty.verify().to_json() == {
        "path": f"s3://{BUCKET}/nothing-here",
        "exists": False,
        "ok": True,
        "records": 0,
        "last_seq": None,
        "last_hash": None,
        "problems": [],
        "notes": [],
    }


def test_writers_that_lose_the_race_chain_after_the_winner(s3: Any) -> None:
    """Two writers, each with an old idea of the tail: every lost conditional put reads the
    record that won and tries the next seq; one chain, no gap, fork or duplicate."""
    first, second = store(s3), store(s3)
    fill(first, 1)
    second.append(record(1))  # learns the tail from the head
    for index in range(2, 8):
        (first if index % 2 else second).append(record(index))
    report = first.verify()
    assert report.ok and report.records == 8, report.problems
    assert [r["run_id"] for r in first.read()] == [f"run-{i}" for i in range(8)]


def test_appending_costs_no_listing_however_long_the_journal(s3: Any) -> None:
    journal = store(s3)
    fill(journal, 30)
    calls = Calls(s3)
    journal.append(record(30))  # the tail is known: the record and the head
    assert calls.take() == {"PutObject": 2}
    later = store(s3)  # a new process: read the head and its record, then write
    later.check()
    later.append(record(31))
    assert calls.take() == {"GetObject": 2, "PutObject": 2}
    stale = store(s3)
    stale.check()
    fill(journal, 3)
    calls.take()
    # Three records behind: the record its head named, one lost race, then the head (read
    # once) names the newest record: the next put wins. The head's cached ETag is stale
    # (a put, a get, a put). However far behind, never a listing.
    stale.append(record(40))
    assert calls.take() == {"GetObject": 3, "PutObject": 4}


def test_a_conflict_is_retried_and_a_retried_put_of_our_own_is_no_duplicate(s3: Any) -> None:
    journal = store(s3)
    fill(journal, 1)
    real_put = s3.put_object
    answers = iter(["conflict", "lost-answer"])

    def flaky(**params: Any) -> Any:
        what = next(answers, None) if params["Key"].endswith("2.json") else None
        if what == "conflict":  # 409: a concurrent write to the key was in flight
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict"}}, "PutObject")
        if what == "lost-answer":  # written, but the answer lost; botocore's retry: 412
            real_put(**params)
            raise ClientError(
                {
                    "Error": {"Code": "PreconditionFailed"},
                    "ResponseMetadata": {"RetryAttempts": 1},
                },
                "PutObject",
            )
        return real_put(**params)

    s3.put_object = flaky
    stored = journal.append(record(1))
    s3.put_object = real_put
    assert stored["seq"] == 2
    report = journal.verify()
    assert report.ok and report.records == 2


# --- tampering -------------------------------------------------------------------------


def _delete(client: Any, *seqs: int) -> None:
    for seq in seqs:
        client.delete_object(Bucket=BUCKET, Key=key(seq))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda c: _delete(c, 3), ["prev does not match", "seq 3 missing: record(s) deleted"]),
        (
            lambda c: put(c, key(2), body(c, key(2)).replace(b"run-1", b"run-X")),
            [f"object {key(2)} (seq 2): hash mismatch: the record was edited"],
        ),
        (
            lambda c: _swap(c, 2, 3),
            [
                f"object {key(2)} (seq 3): stored in the place of seq 2",
                "prev does not match",
                "out of order",
            ],
        ),
        (
            lambda c: _delete(c, 5),
            ["the journal ends at seq 4 but its head says seq 5: records were removed from"],
        ),
        (
            lambda c: _delete(c, 4, 5),
            ["the journal ends at seq 3 but its head says seq 5: records were removed from"],
        ),
        (
            lambda c: c.delete_object(Bucket=BUCKET, Key=f"{PREFIX}head.json"),
            ["the head object is missing: cannot tell whether records after seq 5 were removed"],
        ),
        (
            lambda c: put(c, key(4), b"not json\n"),
            [f"object {key(4)}: not a JSON object (edited or corrupted)"],
        ),
        (
            lambda c: put(c, f"{PREFIX}head.json", b"[]"),
            ["is not a journal head"],
        ),
    ],
    ids=[
        "delete-one",
        "edit",
        "reorder",
        "delete-last",
        "delete-last-two",
        "delete-head",
        "garble",
        "garble-head",
    ],
)
def test_tampering_is_detected(s3: Any, tamper: Any, expected: list[str]) -> None:
    journal = store(s3)
    fill(journal, 5)
    assert journal.verify().ok
    tamper(s3)
    report = journal.verify()
    assert not report.ok
    for words in expected:
        assert any(words in problem for problem in report.problems), report.problems


def _swap(client: Any, a: int, b: int) -> None:
    first, second = body(client, key(a)), body(client, key(b))
    put(client, key(a), second)
    put(client, key(b), first)


def test_an_append_after_tampering_records_it_and_verify_keeps_reporting_it(s3: Any) -> None:
    journal = store(s3)
    fill(journal, 5)
    _delete(s3, 5)  # the head still says seq 5
    stored = store(s3).append(record(9))
    assert stored["seq"] == 5 and stored["journal_notes"][0]["kind"] == "head_mismatch"
    report = journal.verify()
    assert not report.ok
    assert any("when this record was appended" in p for p in report.problems)


# --- crashes ---------------------------------------------------------------------------


def test_a_writer_stopped_after_its_put_leaves_a_chain_that_verifies(s3: Any) -> None:
    """The record is written (a put is all or nothing), the head not moved: verify notes
    the head behind; the next append, by anyone, repairs it."""
    journal = store(s3)
    fill(journal, 3)
    crashing = store(s3)
    crashing._advance_head = lambda stored, force: None  # type: ignore[method-assign]
    crashing.append(record(3))
    crashing.append(record(4))
    report = journal.verify()
    assert report.ok and report.records == 5
    assert report.notes == [
        "the head is 2 records behind (seq 3): writers that stopped between their append and "
        "the head update, or appends still going on; the next append fixes it"
    ]
    store(s3).append(record(5))
    repaired = journal.verify()
    assert repaired.ok and repaired.notes == [] and repaired.records == 6


def test_a_new_journal_has_its_head_before_its_first_record(s3: Any) -> None:
    journal = store(s3)
    journal._advance_head = lambda stored, force: None  # type: ignore[method-assign]
    journal.append(record(0))  # then "crashed" before moving the head
    head = json.loads(body(s3, f"{PREFIX}head.json"))
    assert (head["seq"], head["hash"]) == (0, GENESIS)
    report = store(s3).verify()
    assert report.ok and report.notes[0].startswith("the head is one record behind (seq 0)")


def test_objects_that_are_not_records_are_noted(s3: Any) -> None:
    journal = store(s3)
    fill(journal, 1)
    put(s3, f"{PREFIX}README.txt", b"hello")
    report = journal.verify()
    assert report.ok and report.notes == [
        f"1 object(s) under the prefix are not records: {PREFIX}README.txt"
    ]


# --- unusable locations ----------------------------------------------------------------


def test_a_missing_bucket_is_exit_2_before_anything_is_written(s3: Any) -> None:
    journal = store(s3, "s3://no-such-journal-bucket/x")
    with pytest.raises(JournalError, match="the bucket does not exist") as raised:
        journal.check()
    assert raised.value.exit_code == 2
    with pytest.raises(JournalError):
        journal.verify()
    problem = RunJournal(store=journal).record(
        workload="bonus",
        run_id="r",
        request=None,
        locations=[],
        outcome={},
        host_attributes=None,
    )
    assert problem is not None and "the bucket does not exist" in problem


def test_access_denied_on_a_missing_head_is_read_as_missing(s3: Any) -> None:
    """Without s3:ListBucket on the whole bucket S3 answers 403 for a missing key; the
    journal lists the key (allowed on its prefix) to tell missing from denied."""
    journal = store(s3)
    real_get = s3.get_object

    def denied(**params: Any) -> Any:
        if params["Key"].endswith("head.json"):
            raise ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject")
        return real_get(**params)

    s3.get_object = denied
    journal.check()  # no head yet: fine
    fill(store(s3), 1)
    with pytest.raises(JournalError, match="access denied"):
        store(s3).check()  # the head exists and may not be read


def test_a_corrupt_tail_record_stops_appends(s3: Any) -> None:
    journal = store(s3)
    fill(journal, 2)
    put(s3, key(2), b"garbage")
    with pytest.raises(JournalCorruptError, match="is unreadable"):
        store(s3).append(record(3))


def test_recorded_placements_read_an_s3_journal(s3: Any) -> None:
    journal = store(s3)
    journal.append(record(0, task="arn:aws:ecs:r:1:task/acme-etl/t1"))
    assert recorded_placements(journal) == {"arn:aws:ecs:r:1:task/acme-etl/t1": "newyork"}


def test_library_callers_get_the_environments_or_the_maps_journal(
    s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A `RunJournal()` or `Dispatcher.create` without a store (the Airflow operator, the
    demo) writes where the CLI would: $RESIDENCY_JOURNAL, else the map's `journal:`."""
    from residency_cli.aws import AwsSettings, Clients
    from residency_cli.config import parse_config
    from residency_cli.dispatch import Dispatcher

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESIDENCY_JOURNAL", URL)
    opened = RunJournal().journal()
    assert isinstance(opened, S3Journal) and opened.location == URL
    monkeypatch.delenv("RESIDENCY_JOURNAL")
    config = parse_config(
        "version: 1\ncluster: acme-etl\nlocations: {newyork: {}}\n"
        "workloads: {bonus: {task_definition: b, location: newyork}}\n"
        f"journal: s3://{BUCKET}/from-map\n",
        "residency.yaml",
    )
    dispatcher = Dispatcher.create(Clients(AwsSettings(region="us-east-1")), config)
    assert dispatcher.journal is not None
    assert dispatcher.journal.journal().location == f"s3://{BUCKET}/from-map"
    assert not list(tmp_path.iterdir())  # no local "s3:" directory was made


def test_reading_again_gets_only_the_new_records(s3: Any, tmp_path: Any) -> None:
    """`run` reads the whole journal (for its run id): the read cache makes a second read
    cost the listing and the GETs of new or changed records only; verify never uses it."""
    journal = store(s3)
    journal.cache_dir = tmp_path / "cache"
    fill(journal, 5)
    calls = Calls(s3)
    assert len(journal.read()) == 5
    assert calls.take() == {"ListObjectsV2": 1, "GetObject": 5}
    journal.append(record(5))
    put(s3, key(2), body(s3, key(2)).replace(b"run-1", b"run-X"))  # a new ETag
    calls.take()
    records = journal.read()
    assert calls.take() == {"ListObjectsV2": 1, "GetObject": 2}
    assert [r["run_id"] for r in records][:3] == ["run-0", "run-X", "run-2"]
    assert journal.verify().records == 6
    assert calls.take()["GetObject"] == 7  # every record, and the head
    (cache,) = (tmp_path / "cache").iterdir()
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
