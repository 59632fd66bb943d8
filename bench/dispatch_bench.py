"""How fast `run` notices a task stopped, and what it costs in DescribeTasks calls.

Against the in-process sandbox: a task that runs 3 s, dispatched N times. For each run,
latency = the moment the waiting loop saw STOPPED - the task's stoppedAt. The reference in
the same run is `aws ecs wait tasks-stopped` (the AWS CLI's waiter polls every 6 s), when
the AWS CLI is available (`.venv-awscli/bin/aws`, made by `make bench`).

    .venv/bin/python bench/dispatch_bench.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from residency_cli.config import parse_config
from residency_cli.dispatch import Dispatcher, RunOptions
from residency_cli.sandbox.testing import SandboxFixture, start_server

AWS_CLI = Path(__file__).resolve().parent.parent / ".venv-awscli" / "bin" / "aws"


class StopWatch:
    def __init__(self) -> None:
        self.stopped_seen: float | None = None

    def status(self, task: Any, previous: str | None) -> None:
        if task.get("lastStatus") == "STOPPED" and self.stopped_seen is None:
            self.stopped_seen = time.time()

    def placed(self, task_arn: str, host: Any, allowed: bool) -> None:
        return None

    def log(self, event: Any) -> None:
        return None


def _stopped_at(sandbox: SandboxFixture, arn: str) -> float:
    stopped = sandbox.wait_for_task(arn, timeout=30)["stoppedAt"]
    assert isinstance(stopped, datetime)
    return stopped.astimezone(timezone.utc).timestamp()


def measure(runs: int) -> dict[str, Any]:
    """The figures, as numbers: residency's latencies and DescribeTasks rates, the AWS CLI's
    latencies (None without the AWS CLI), and the `--count 10` call count."""
    result: dict[str, Any] = {"runs": runs}
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            sandbox = SandboxFixture(server).reset(label_hosts=True)
            # 3 s, plus a different fraction of the poll interval each run: a task that always
            # ran exactly 3 s would stop in phase with 1 s polling and flatter the median.
            for index in range(runs):
                duration = f"{3 + index / runs:.2f}"
                sandbox.register_task_definition(f"bench-sleep-{index}", ["sleep", duration])
            sandbox.register_task_definition("bench-small", ["sleep", "2"], cpu=64, memory=32)
            text = sandbox.config_path.read_text(encoding="utf-8") + (
                "".join(
                    f"  sleep{i}:\n    task_definition: bench-sleep-{i}\n    location: newyork\n"
                    for i in range(runs)
                )
                + ""
                "  small:\n    task_definition: bench-small\n    location: newyork\n"
            )
            config = parse_config(text, "bench.yaml")
            clients = sandbox.clients()
            latencies: list[float] = []
            rates: list[float] = []
            for index in range(runs):
                watch = StopWatch()
                dispatcher = Dispatcher.create(
                    clients, config, observer=watch, journal=None, drain_grace=0.0
                )
                sandbox.reset_calls()
                began = time.time()
                outcome = dispatcher.run(
                    f"sleep{index}", RunOptions(run_id=f"bench-{index}"), follow=False
                )
                elapsed = time.time() - began
                arn = outcome.primary.task_arn
                assert arn and watch.stopped_seen is not None
                latencies.append(watch.stopped_seen - _stopped_at(sandbox, arn))
                rates.append(sandbox.calls("DescribeTasks") / elapsed)
            result["residency"] = {"latencies": latencies, "describe_tasks_per_second": rates}

            result["aws"] = None
            if AWS_CLI.exists():
                cli_latencies = []
                ecs = sandbox.client("ecs")
                env = {**os.environ, **sandbox.env()}
                for index in range(runs):
                    arn = ecs.run_task(
                        cluster=config.cluster,
                        taskDefinition=f"bench-sleep-{index}",
                        launchType="EXTERNAL",
                        placementConstraints=[
                            {"type": "memberOf", "expression": "attribute:location == newyork"}
                        ],
                    )["tasks"][0]["taskArn"]
                    subprocess.run(
                        [
                            str(AWS_CLI),
                            "ecs",
                            "wait",
                            "tasks-stopped",
                            "--cluster",
                            config.cluster,
                            "--tasks",
                            arn,
                        ],
                        check=True,
                        env=env,
                    )
                    cli_latencies.append(time.time() - _stopped_at(sandbox, arn))
                result["aws"] = {"latencies": cli_latencies}

            sandbox.reset_calls()
            counting = Dispatcher.create(clients, config, journal=None, drain_grace=0.0)
            ten = counting.run("small", RunOptions(run_id="bench-ten", count=10), follow=False)
            result["count10"] = {
                "tasks": len(ten.tasks),
                "outcome": ten.outcome,
                "describe_tasks": sandbox.calls("DescribeTasks"),
            }
        finally:
            server.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = measure(args.runs)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    latencies = result["residency"]["latencies"]
    print(f"residency run: {args.runs} runs of a task of 3 to 4 s")
    print(
        f"  notice STOPPED after stoppedAt: median {statistics.median(latencies):.2f} s, "
        f"max {max(latencies):.2f} s"
    )
    rates = result["residency"]["describe_tasks_per_second"]
    print(f"  DescribeTasks calls per second of waiting: max {max(rates):.2f}")
    if result["aws"] is not None:
        cli_latencies = result["aws"]["latencies"]
        print(
            f"aws ecs wait tasks-stopped: median {statistics.median(cli_latencies):.2f} s, "
            f"max {max(cli_latencies):.2f} s"
        )
    else:
        print(f"aws ecs wait tasks-stopped: skipped ({AWS_CLI} not installed)", file=sys.stderr)
    ten = result["count10"]
    print(
        f"--count 10 (2 s tasks): {ten['tasks']} tasks, outcome {ten['outcome']}, "
        f"{ten['describe_tasks']} DescribeTasks calls in all (each covers all ten tasks)"
    )


if __name__ == "__main__":
    main()
