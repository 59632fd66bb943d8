"""Appends per second to the dispatch journal on S3, for one writer and for 16 concurrent
writer processes, against the in-process sandbox's S3; the local-file journal (flock) is the
reference, measured the same way in the same run.

One writer appends `--records` records; 16 writer processes append `--each` records each,
all released at once (a barrier) and timed from the release to the last one done. Writers are
processes forked from a forkserver that has boto3 and residency imported already, so
interpreter start-up is not counted; each makes its own S3 client (as a `residency run`
does) and calls `store.check()` before the barrier. Every run ends with `verify` of the whole
chain (its time is reported too) and fails the benchmark unless the chain is intact and
complete. The S3 requests the sandbox received are counted per appended record.

    .venv/bin/python bench/journal_s3_bench.py [--runs 3] [--records 200] [--each 25] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

WRITERS = 16
BUCKET = "bench-journal"


def _record(name: str, index: int) -> dict[str, Any]:
    from residency_cli.journal import build_record

    return build_record(
        who=None,
        workload=name,
        run_id=f"{name}-{index}",
        request={"cluster": "acme-etl", "taskDefinition": "christmas-bonus"},
        locations=["newyork"],
        outcome={"outcome": "succeeded", "exit_code": 0},
        host_attributes={"location": "newyork"},
        now=datetime.now(timezone.utc),
    )


def _store(location: str, aws: dict[str, Any]) -> Any:
    from residency_cli.aws import AwsSettings, Clients
    from residency_cli.journal import open_journal

    if not location.startswith("s3://"):
        return open_journal(location)
    clients = Clients(AwsSettings(**aws))
    return open_journal(location, s3_client=lambda: clients.s3)


def _writer(
    location: str, aws: dict[str, Any], name: str, count: int, barrier: Any, done: Any
) -> None:
    store = _store(location, aws)
    store.check()
    barrier.wait()
    for index in range(count):
        store.append(_record(name, index))
    done.put(time.monotonic())


def _concurrent(location: str, aws: dict[str, Any], writers: int, each: int) -> float:
    """Seconds from the release of `writers` processes to the last one done."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["boto3", "botocore.client", "residency_cli.journal_s3"])
    barrier = context.Barrier(writers + 1)
    done = context.Queue()
    processes = [
        context.Process(target=_writer, args=(location, aws, f"w{i:02d}", each, barrier, done))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=120)
    released = time.monotonic()
    ended = max(done.get(timeout=600) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        if process.exitcode != 0:
            raise SystemExit(f"a writer failed ({process.exitcode})")
    return ended - released


def _single(location: str, aws: dict[str, Any], records: int) -> float:
    store = _store(location, aws)
    store.check()
    began = time.monotonic()
    for index in range(records):
        store.append(_record("single", index))
    return time.monotonic() - began


def _verified(location: str, aws: dict[str, Any], expected: int) -> float:
    store = _store(location, aws)
    began = time.monotonic()
    report = store.verify()
    seconds = time.monotonic() - began
    if not report.ok or report.records != expected:
        raise SystemExit(f"{location}: {report.records} of {expected} records: {report.problems}")
    return seconds


def measure(runs: int, records: int, each: int) -> dict[str, Any]:
    from residency_cli.sandbox.testing import SandboxFixture, start_server

    figures: dict[str, Any] = {
        "runs": runs,
        "records": records,
        "writers": WRITERS,
        "each": each,
        "local": {"single": [], "concurrent": [], "verify": []},
        "s3": {"single": [], "concurrent": [], "verify": [], "requests_per_record": []},
    }
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            sandbox = SandboxFixture(server).reset()
            client = sandbox.client("s3")
            where = {} if sandbox.region == "us-east-1" else {"LocationConstraint": sandbox.region}
            client.create_bucket(
                Bucket=BUCKET, **({"CreateBucketConfiguration": where} if where else {})
            )
            aws = {
                "region": sandbox.region,
                "endpoint_url": sandbox.endpoint,
                "credentials": sandbox.credentials.boto(),
            }
            for run in range(runs):
                for kind in ("local", "s3"):  # alternately, in the same run
                    base = (
                        f"{workdir}/local-{run}" if kind == "local" else f"s3://{BUCKET}/run-{run}"
                    )
                    sandbox.reset_calls()
                    one = _single(
                        f"{base}/single" + (".jsonl" if kind == "local" else ""), aws, records
                    )
                    many_at = f"{base}/concurrent" + (".jsonl" if kind == "local" else "")
                    many = _concurrent(many_at, aws, WRITERS, each)
                    calls = sum(
                        n for op, n in sandbox.call_counts().items() if op.startswith("s3:")
                    )
                    figures[kind]["single"].append(records / one)
                    figures[kind]["concurrent"].append(WRITERS * each / many)
                    figures[kind]["verify"].append(_verified(many_at, aws, WRITERS * each))
                    if kind == "s3":
                        figures[kind]["requests_per_record"].append(
                            calls / (records + WRITERS * each)
                        )
                    sys.stderr.write(
                        f"run {run + 1}/{runs} {kind}: one writer {records / one:.0f}/s, "
                        f"{WRITERS} writers {WRITERS * each / many:.0f}/s\n"
                    )
        finally:
            sandbox.close()
            server.stop()
    for kind in ("local", "s3"):
        for name in ("single", "concurrent", "verify", "requests_per_record"):
            if figures[kind].get(name):
                figures[kind][f"{name}_median"] = statistics.median(figures[kind][name])
    return figures


def table(figures: dict[str, Any]) -> str:
    local, s3 = figures["local"], figures["s3"]
    n = figures["writers"] * figures["each"]
    return "\n".join(
        [
            "| journal | 1 writer (appends/s) | 16 writer processes (appends/s) | "
            f"verify {n} records (s) |",
            "|---|---|---|---|",
            f"| local file (flock) | {local['single_median']:.0f} | "
            f"{local['concurrent_median']:.0f} | {local['verify_median']:.2f} |",
            f"| S3 (sandbox, conditional puts) | {s3['single_median']:.0f} | "
            f"{s3['concurrent_median']:.0f} | {s3['verify_median']:.2f} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=200, help="records of the one writer")
    parser.add_argument("--each", type=int, default=25, help="records of each of the 16")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.runs, args.records, args.each)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(table(figures))
        per_record = figures["s3"]["requests_per_record_median"]
        print(f"S3 requests per appended record (median): {per_record:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
