"""`--journal s3://...` through main() against stock moto: run, attach, audit and
`journal show|verify` on one S3 chain; where the location comes from; an unusable location is
exit 2 before RunTask; `iam-policy` grants what the journal needs."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from residency_cli.cli.state import AppState
from tests.support.cli import cli
from tests.support.moto_cluster import REGION, MotoCluster, register_bonus

BUCKET = "acme-journal"
URL = f"s3://{BUCKET}/ci/dispatch"


@pytest.fixture
def bucket(moto_cluster: MotoCluster) -> object:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


@pytest.fixture
def ready(moto_cluster: MotoCluster) -> MotoCluster:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    return moto_cluster


def _keys(client: object) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET)  # type: ignore[attr-defined]
    return [str(o["Key"]) for o in listed.get("Contents", [])]


def test_run_then_show_and_verify_on_s3(
    ready: MotoCluster, bucket: object, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["-c", str(map_path), "--journal", URL]
    code, out, err = cli(capsys, *base, "run", "bonus", "--no-wait", "-o", "json", "--run-id", "r1")
    assert code == 0, err
    task = json.loads(out)["task_arn"]
    assert _keys(bucket) == [
        "ci/dispatch/00000000000000000001.json",  # the intent, before RunTask
        "ci/dispatch/00000000000000000002.json",  # how the dispatch ended
        "ci/dispatch/head.json",
    ]
    code, out, err = cli(capsys, *base, "journal", "show", "-o", "json")
    assert code == 0, err
    records = json.loads(out)
    assert [(r["seq"], r["event"]) for r in records] == [(1, "intent"), (2, "run")]
    assert records[1]["result"]["task_arn"] == task
    code, out, err = cli(capsys, *base, "journal", "verify", "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report == {
        "path": URL,
        "exists": True,
        "ok": True,
        "records": 2,
        "last_seq": 2,
        "last_hash": records[1]["hash"],
        "problems": [],
        "notes": [],
    }
    code, out, _ = cli(capsys, *base, "journal", "verify")
    assert code == 0 and out.startswith(f"journal {URL}: 2 record(s), intact")
    # The journal group's own --journal (as before) names the same chain.
    code, out, _ = cli(
        capsys, "-c", str(map_path), "journal", "--journal", URL, "show", "-o", "json"
    )
    assert code == 0 and len(json.loads(out)) == 2
    # A rerun with the same run id: the journal on S3 knows it, nothing is started.
    code, out, err = cli(capsys, *base, "run", "bonus", "--no-wait", "-o", "json", "--run-id", "r1")
    assert code == 0, err
    assert json.loads(out)["task_arn"] == task
    assert len(ready.ecs.list_tasks(cluster="acme-etl")["taskArns"]) == 1
    code, _, err = cli(capsys, *base, "audit")
    assert "could not read the journal" not in err


def test_tampering_on_s3_fails_verify_with_one_error_line_per_problem(
    ready: MotoCluster, bucket: object, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["-c", str(map_path), "--journal", URL]
    for run_id in ("a", "b"):
        assert cli(capsys, *base, "run", "bonus", "--no-wait", "--run-id", run_id)[0] == 0
    bucket.delete_object(Bucket=BUCKET, Key="ci/dispatch/00000000000000000004.json")  # type: ignore[attr-defined]
    code, out, err = cli(capsys, *base, "journal", "verify")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"error: journal {URL} is not intact: 1 problem(s) in 3 record(s)",
        "error: the journal ends at seq 3 but its head says seq 4: records were removed from "
        "the end",
    ]


def test_where_the_journal_is_option_then_environment_then_map(
    ready: MotoCluster,
    bucket: object,
    map_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("RESIDENCY_JOURNAL")
    map_path.write_text(
        map_path.read_text(encoding="utf-8") + f"journal: s3://{BUCKET}/from-map\n",
        encoding="utf-8",
    )
    base = ["-c", str(map_path)]
    assert cli(capsys, *base, "run", "bonus", "--no-wait", "--run-id", "m")[0] == 0
    assert "from-map/00000000000000000002.json" in _keys(bucket)
    monkeypatch.setenv("RESIDENCY_JOURNAL", f"s3://{BUCKET}/from-env")
    assert cli(capsys, *base, "run", "bonus", "--no-wait", "--run-id", "e")[0] == 0
    assert "from-env/00000000000000000002.json" in _keys(bucket)
    local = tmp_path / "explicit.jsonl"
    assert cli(capsys, *base, "--journal", str(local), "run", "bonus", "--no-wait")[0] == 0
    assert len(local.read_text(encoding="utf-8").splitlines()) == 2
    code, out, _ = cli(capsys, *base, "journal", "show", "-o", "json")  # the environment's
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == ["e", "e"]
    monkeypatch.delenv("RESIDENCY_JOURNAL")
    code, out, _ = cli(capsys, *base, "journal", "show", "-o", "json")  # the map's
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == ["m", "m"]


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("s3://Not_A_Bucket/x", "is not an S3 bucket name"),
        ("ftp://host/x", "unsupported journal location"),
        (f"s3://no-such-bucket-{BUCKET}/x", "the bucket does not exist (NoSuchBucket)"),
    ],
)
def test_an_unusable_journal_is_exit_2_before_run_task(
    ready: MotoCluster,
    bucket: object,
    map_path: Path,
    capsys: pytest.CaptureFixture[str],
    location: str,
    words: str,
) -> None:
    code, out, err = cli(
        capsys, "-c", str(map_path), "--journal", location, "run", "bonus", "-o", "json"
    )
    assert code == 2 and out == ""
    problem = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(problem) == 1 and words in problem[0], err
    assert "Traceback" not in err
    assert ready.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []  # no RunTask
    code, out, err = cli(capsys, "-c", str(map_path), "--journal", location, "journal", "show")
    assert code == 2 and words in err


def test_an_invalid_journal_in_the_map_is_a_map_error(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    map_path.write_text(
        map_path.read_text(encoding="utf-8") + "journal: s3://x/y\n", encoding="utf-8"
    )
    code, _, err = cli(capsys, "-c", str(map_path), "validate")
    assert code == 2
    assert err == (
        f"error: {map_path}:18: journal: 's3://x/y': 'x' is not an S3 bucket name (3-63 "
        "characters: a-z 0-9 . -); use s3://BUCKET/PREFIX or a file path\n"
    )


def test_hints_repeat_the_journal_option() -> None:
    state = AppState(config_path="m.yaml", journal="s3://acme-journal/a b")
    assert state.command_words() == [
        "residency",
        "--config",
        "m.yaml",
        "--journal",
        "s3://acme-journal/a b",
    ]


def test_iam_policy_grants_the_maps_s3_journal(
    map_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESIDENCY_JOURNAL")
    code, out, _ = cli(capsys, "-c", str(map_path), "iam-policy", "-o", "json")
    assert code == 0 and not any(s["Sid"].endswith("Journal") for s in json.loads(out)["Statement"])
    map_path.write_text(
        map_path.read_text(encoding="utf-8") + f"journal: s3://{BUCKET}/ci/dispatch\n",
        encoding="utf-8",
    )
    code, out, _ = cli(capsys, "-c", str(map_path), "iam-policy", "-o", "json")
    assert code == 0
    statements = {s["Sid"]: s for s in json.loads(out)["Statement"]}
    assert statements["ListJournal"] == {
        "Sid": "ListJournal",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": f"arn:aws:s3:::{BUCKET}",
        "Condition": {"StringLike": {"s3:prefix": ["ci/dispatch/*"]}},
    }
    assert statements["ReadJournal"]["Resource"] == f"arn:aws:s3:::{BUCKET}/ci/dispatch/*"
    assert statements["AppendJournalRecords"]["Condition"] == {
        "Null": {"s3:if-none-match": "false"}
    }
    assert statements["MoveJournalHead"]["Resource"] == (
        f"arn:aws:s3:::{BUCKET}/ci/dispatch/head.json"
    )


def test_a_journal_that_cannot_be_written_stops_the_run_before_run_task(
    ready: MotoCluster,
    bucket: object,
    map_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bucket is readable but the intent record cannot be put (AccessDenied on
    PutObject): exit 2, no RunTask."""
    from botocore.exceptions import ClientError

    from residency_cli.journal_s3 import S3Journal

    def denied(self: S3Journal, key: str, body: bytes, **condition: str) -> str | None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    monkeypatch.setattr(S3Journal, "_put", denied)
    code, out, err = cli(capsys, "-c", str(map_path), "--journal", URL, "run", "bonus")
    assert code == 2 and out == ""
    assert "error: this run was not journalled: cannot write the journal" in err
    assert "access denied (AccessDenied)" in err and "nothing was dispatched" in err
    assert ready.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []


def test_a_directory_as_the_journal_is_exit_2_before_run_task(
    ready: MotoCluster, map_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "-c", str(map_path), "--journal", str(tmp_path), "run", "bonus")
    assert code == 2 and f"error: cannot open the journal {tmp_path}: Is a directory" in err
    assert ready.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []
