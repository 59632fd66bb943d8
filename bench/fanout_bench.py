"""Fan-out: 100 tasks across both locations, dispatched and waited on by one process.

Against the in-process sandbox (as bench/dispatch_bench.py): 50 tasks in newyork (bonus.host)
and 50 in frankfurt (tax.host), each `sleep 3` with 16 CPU units and 16 MiB, dispatched as
ten `run`s of `count=10` (RunTask starts at most 10 tasks a call) by one process, then waited
on until every task is seen STOPPED. Every request is counted and timestamped by the sandbox
(bench/calllog.py), so DescribeTasks per second is measured, not inferred.

Two ways are measured:

- `one-loop`: the ten runs dispatched one after the other with `wait=False`, then
  `Dispatcher.outcomes(runs)`: one loop, one DescribeTasks per tick for all 100 tasks, the hosts
  of newly placed or newly running tasks read back together;
- `threads` (the reference): ten `Dispatcher.run(..., count=10, follow=False)` in ten
  threads, each dispatching and waiting on its own ten tasks (what ten
  `residency run --count 10` in parallel would do, in one process).

    .venv/bin/python bench/fanout_bench.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from calllog import CallLog, max_in_window

WORKLOADS = {"fan-ny": ("newyork", "bonus.host"), "fan-fra": ("frankfurt", "tax.host")}
RUNS_PER_WORKLOAD = 5
COUNT = 10
TASK_SECONDS = 3


def _setup(sandbox: Any) -> Any:
    from residency_cli.config import parse_config

    text = sandbox.config_path.read_text(encoding="utf-8")
    for name, (location, _) in WORKLOADS.items():
        sandbox.register_task_definition(
            f"bench-{name}", ["sleep", str(TASK_SECONDS)], cpu=16, memory=16
        )
        text += f"  {name}:\n    task_definition: bench-{name}\n    location: {location}\n"
    return parse_config(text, "bench.yaml")


def _plan() -> list[tuple[str, int]]:
    """(workload, index) of the ten runs, the locations alternating."""
    return [(name, i) for i in range(RUNS_PER_WORKLOAD) for name in WORKLOADS]


def _threads(clients: Any, config: Any, tag: str) -> tuple[int, int, list[str]]:
    """Ten runs, each dispatched and waited on in its own thread: (tasks, succeeded, what
    went wrong with the others)."""
    from residency_cli.dispatch import Dispatcher, RunOptions

    results: list[Any] = []
    errors: list[BaseException] = []

    def one(name: str, index: int) -> None:
        dispatcher = Dispatcher.create(clients, config, journal=None)
        try:
            results.append(
                dispatcher.run(
                    name, RunOptions(run_id=f"{tag}-{name}-{index}", count=COUNT), follow=False
                )
            )
        except BaseException as error:  # reported below, never lost in a thread
            errors.append(error)

    threads = [threading.Thread(target=one, args=job) for job in _plan()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return _tally([t for r in results for t in r.tasks])


def _one_loop(clients: Any, config: Any, tag: str) -> tuple[int, int, list[str]]:
    """Ten runs dispatched without waiting, then `Dispatcher.outcomes` on all ten in one loop:
    (tasks, succeeded, what went wrong with the others)."""
    from residency_cli.dispatch import Dispatcher, RunOptions

    dispatcher = Dispatcher.create(clients, config, journal=None)
    runs = [
        dispatcher.run(name, RunOptions(run_id=f"{tag}-{name}-{index}", count=COUNT), wait=False)
        for name, index in _plan()
    ]
    results = dispatcher.outcomes(runs, timeout=120)
    return _tally([t for r in results for t in r.tasks])


def _tally(tasks: list[Any]) -> tuple[int, int, list[str]]:
    """(tasks, succeeded on a host of the workload's location, what went wrong with the
    others)."""
    good = [
        t
        for t in tasks
        if t.outcome == "succeeded" and t.host and t.host.location == WORKLOADS[t.workload][0]
    ]
    problems = [
        f"{t.workload} {t.task_id}: {t.outcome}, status {t.status}, exit {t.exit_code}, "
        f"on {t.host}, {t.stopped_reason or t.message}"
        for t in tasks
        if t not in good
    ]
    return len(tasks), len(good), problems


MODES = {"threads": _threads, "one-loop": _one_loop}


def measure(runs: int) -> dict[str, Any]:
    from residency_cli.sandbox.testing import SandboxFixture, start_server

    log = CallLog().install()
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            for index in range(runs):
                for mode, function in MODES.items():
                    sandbox = SandboxFixture(server).reset(label_hosts=True)
                    config = _setup(sandbox)
                    clients = sandbox.clients()
                    clients.ecs, clients.ssm  # noqa: B018 - made before the threads share them
                    log.clear()
                    began = time.monotonic()
                    tasks, succeeded, problems = function(clients, config, f"{mode}-{index}")
                    wall = time.monotonic() - began
                    describes = log.times("DescribeTasks")
                    calls = Counter(name for _, name in log.entries)
                    samples[mode].append(
                        {
                            "tasks": tasks,
                            "succeeded": succeeded,
                            "problems": problems,
                            "wall_seconds": wall,
                            "describe_tasks": len(describes),
                            "describe_tasks_per_second": len(describes) / wall,
                            "describe_tasks_max_in_1s": max_in_window(describes),
                            "calls": dict(sorted(calls.items())),
                            "calls_total": sum(calls.values()),
                        }
                    )
                    sandbox.close()
        finally:
            server.stop()
    result: dict[str, Any] = {
        "runs": runs,
        "tasks_per_scenario": len(_plan()) * COUNT,
        "task_seconds": TASK_SECONDS,
    }
    for mode, values in samples.items():
        median_run = sorted(values, key=lambda v: v["wall_seconds"])[len(values) // 2]
        result[mode] = {
            "samples": values,
            "wall_median": statistics.median(v["wall_seconds"] for v in values),
            "describe_tasks_median": statistics.median(v["describe_tasks"] for v in values),
            "describe_tasks_per_second_median": statistics.median(
                v["describe_tasks_per_second"] for v in values
            ),
            "describe_tasks_max_in_1s": max(v["describe_tasks_max_in_1s"] for v in values),
            "all_succeeded": all(v["succeeded"] == v["tasks"] for v in values),
            "problems": [p for v in values for p in v["problems"]],
            "calls_of_median_run": median_run["calls"],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = measure(args.runs)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for mode in MODES:
            found = result[mode]
            print(
                f"{mode}: wall median {found['wall_median']:.2f} s; DescribeTasks median "
                f"{found['describe_tasks_median']} ({found['describe_tasks_per_second_median']:.2f}"
                f"/s, at most {found['describe_tasks_max_in_1s']} in any second); all succeeded: "
                f"{found['all_succeeded']}; calls (median run) {found['calls_of_median_run']}"
            )
            for problem in found["problems"]:
                print(f"  not succeeded: {problem}")
    return 0 if all(result[mode]["all_succeeded"] for mode in MODES) else 1


if __name__ == "__main__":
    sys.exit(main())
