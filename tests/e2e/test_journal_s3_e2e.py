"""The whole path on the sandbox: `residency --sandbox --journal s3://... run` writes its
records to the sandbox's S3, `attach` and `journal show|verify` read the same chain, and a
missing bucket stops the run before RunTask."""

from __future__ import annotations

import json

import pytest

from residency_cli.cli.app import main
from tests.support.world import World

BUCKET = "acme-journal"
URL = f"s3://{BUCKET}/e2e"


def test_run_attach_show_verify_on_the_sandboxs_s3(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = world.sandbox
    sandbox.use(monkeypatch)
    where = {} if sandbox.region == "us-east-1" else {"LocationConstraint": sandbox.region}
    sandbox.client("s3").create_bucket(
        Bucket=BUCKET, **({"CreateBucketConfiguration": where} if where else {})
    )
    base = ["--sandbox", "-c", str(world.map_path), "--journal", URL]
    assert main([*base, "run", "hello", "--run-id", "s3-1", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "succeeded"
    assert main([*base, "run", "hello", "--no-wait", "--run-id", "s3-2", "-o", "json"]) == 0
    task = json.loads(capsys.readouterr().out)["task_id"]
    assert main([*base, "attach", task, "-o", "json"]) == 0
    capsys.readouterr()
    assert main([*base, "journal", "show", "-o", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["event"], r["run_id"]) for r in records] == [
        ("intent", "s3-1"),
        ("run", "s3-1"),
        ("intent", "s3-2"),
        ("run", "s3-2"),
        ("attach", "s3-2"),
    ]
    assert records[1]["result"]["host"]["location"] == "newyork"
    assert main([*base, "journal", "verify", "-o", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["records"] == 5 and report["path"] == URL
    assert sandbox.s3_keys(BUCKET)[-1] == "e2e/head.json"


def test_a_missing_bucket_on_the_sandbox_is_exit_2_before_run_task(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.reset_calls()
    code = main(
        [
            "--sandbox",
            "-c",
            str(world.map_path),
            "--journal",
            "s3://no-such-journal/x",
            "run",
            "hello",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "the bucket does not exist (NoSuchBucket)" in err
    assert world.sandbox.calls("RunTask") == 0
