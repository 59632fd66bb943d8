"""A journal writer in its own process, for the S3 journal's concurrency and crash tests
and bench/journal_s3_bench.py:

    python -m tests.support.journal_writer LOCATION COUNT NAME [--hang-before-put | --die-after-put]

Points at AWS as the environment says (AWS_ENDPOINT_URL, credentials, region). Prints
`ready` and waits for a line on stdin (so that every writer starts at once), appends COUNT
records of workload NAME, prints `done SECONDS` and exits 0. `--hang-before-put`: after
reading the tail, print `tail` and sleep before the first conditional put (to be killed
there); `--die-after-put`: SIGKILL itself right after its first record is written, before
the head object is moved.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Any


def _record(name: str, index: int) -> dict[str, Any]:
    from residency_cli.journal import build_record

    return build_record(
        who=None,
        workload=name,
        run_id=f"{name}-{index}",
        request={"cluster": "acme-etl"},
        locations=["newyork"],
        outcome={"outcome": "succeeded", "exit_code": 0},
        host_attributes=None,
        now=datetime.now(timezone.utc),
    )


def _settings_store(
    location: str, endpoint: str | None, region: str | None, credentials: dict[str, str]
) -> Any:
    from residency_cli.aws import AwsSettings, Clients
    from residency_cli.journal import open_journal

    clients = Clients(AwsSettings(region=region, endpoint_url=endpoint, credentials=credentials))
    return open_journal(location, s3_client=lambda: clients.s3)


def _writer(
    location: str,
    count: int,
    name: str,
    aws: tuple[str | None, str | None, dict[str, str]],
    barrier: Any,
    results: Any,
) -> None:
    store = _settings_store(location, *aws)
    store.check()
    barrier.wait()
    started = time.perf_counter()
    for index in range(count):
        store.append(_record(name, index))
    results.put((name, time.perf_counter() - started))


def run_writers(
    location: str,
    writers: int,
    count: int,
    *,
    endpoint: str | None,
    region: str | None,
    credentials: dict[str, str],
    timeout: float = 120,
) -> dict[str, float]:
    """`writers` processes appending `count` records each to `location`, all released at
    once; {writer name: seconds its appends took}. Processes come from a forkserver that
    has boto3 and residency imported already, so that start-up is not what is measured
    (a fork from a single-threaded server: safe, unlike forking a test process whose
    sandbox server runs threads)."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["boto3", "botocore.client", "residency_cli.journal_s3", "residency_cli.aws", __name__]
    )
    barrier = context.Barrier(writers)
    results = context.Queue()
    aws = (endpoint, region, dict(credentials))
    processes = [
        context.Process(target=_writer, args=(location, count, f"w{i:02d}", aws, barrier, results))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    try:
        times = dict(results.get(timeout=timeout) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    return times


def main(argv: list[str]) -> int:
    from residency_cli.aws import AwsSettings, Clients
    from residency_cli.journal import open_journal
    from residency_cli.journal_s3 import S3Journal

    location, count, name = argv[0], int(argv[1]), argv[2]
    mode = argv[3] if len(argv) > 3 else ""
    clients = Clients(AwsSettings(region=os.environ.get("AWS_REGION")))
    store = open_journal(location, s3_client=lambda: clients.s3)
    assert isinstance(store, S3Journal)
    if mode == "--hang-before-put":
        original_put = store._try_put

        def hang(stored: dict[str, Any]) -> bool:
            print("tail", stored["seq"] - 1, flush=True)
            time.sleep(3600)
            return original_put(stored)

        store._try_put = hang  # type: ignore[method-assign]
    if mode == "--die-after-put":

        def die(stored: Any, *, force: bool) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        store._advance_head = die  # type: ignore[method-assign]
    store.check()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for index in range(count):
        store.append(_record(name, index))
    print(f"done {time.perf_counter() - started:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
