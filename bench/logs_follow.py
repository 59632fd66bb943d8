"""Benchmark: following a task's logs to the end (issue 6).

Two tasks: one that prints 100,000 lines, one that prints 5 lines and exits at once. For each:
every line shown exactly once and in order (checked), lines per second followed, the API
calls made (counted on the wire, retries included), and how long after STOPPED the follow
ended by itself.

    .venv/bin/python bench/logs_follow.py                  # on moto (ThreadedMotoServer)
    .venv/bin/python bench/logs_follow.py --lines 20000    # smaller
    .venv/bin/python bench/logs_follow.py --json           # one JSON document
    .venv/bin/python bench/logs_follow.py --target sandbox # real processes on the sandbox

On moto the "task" is an ECS task whose output a producer thread writes the way the awslogs
driver does (batches of PutLogEvents while it runs, several lines per millisecond, the last
batch right as the task stops). The follower uses the project's own clients (aws.py: adaptive
retries, timeouts) and the same code as `residency logs --follow`, formatting each line as the
CLI does into a null sink.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REGION = "eu-central-1"
CLUSTER = "bench"
GROUP = "/ecs/bench"


@dataclass
class Outcome:
    scenario: str
    lines: int
    shown: int
    exactly_once_in_order: bool
    seconds: float
    lines_per_second: float
    stopped_to_end_seconds: float
    calls: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # lines the task printed that were never shown
    duplicated: int = 0  # lines shown more than once (each extra showing counts)


def _lost_duplicated(shown: list[str], expected: list[str]) -> dict[str, int]:
    seen = Counter(shown)
    return {
        "lost": sum(1 for line in expected if line not in seen),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1),
    }


def _count_calls(client: Any, counter: Counter[str]) -> None:
    def before_send(**kwargs: Any) -> None:
        name = kwargs.get("event_name", "")
        counter[name.rsplit(".", 1)[-1]] += 1

    client.meta.events.register("before-send", before_send)


class MotoWorld:
    """moto's server in-process, a cluster with one container instance, an awslogs task def."""

    def __init__(self) -> None:
        import boto3
        from moto.moto_api import state_manager
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        session = boto3.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION
        )
        self.admin_ecs = session.client("ecs", endpoint_url=self.endpoint)
        self.admin_logs = session.client("logs", endpoint_url=self.endpoint)
        ec2 = session.client("ec2", endpoint_url=self.endpoint)
        self.admin_ecs.create_cluster(clusterName=CLUSTER)
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        document = json.dumps({"instanceId": instance["Instances"][0]["InstanceId"]})
        self.admin_ecs.register_container_instance(
            cluster=CLUSTER,
            instanceIdentityDocument=document,
            totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 8192},
            ],
        )
        self.admin_ecs.register_task_definition(
            family="bench",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": "bench",
                    "memory": 128,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": GROUP,
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": "bench",
                        },
                    },
                }
            ],
        )
        self.admin_logs.create_log_group(logGroupName=GROUP)

    def clients(self) -> Any:
        from residency_cli.aws import AwsSettings, Clients

        return Clients(
            AwsSettings(
                region=REGION,
                endpoint_url=self.endpoint,
                credentials={"aws_access_key_id": "b", "aws_secret_access_key": "b"},
            )
        )

    def start_task(self) -> str:
        task = self.admin_ecs.run_task(cluster=CLUSTER, taskDefinition="bench")["tasks"][0]
        return str(task["taskArn"])

    def produce(self, task_arn: str, lines: list[str], batch: int, stopped: list[float]) -> None:
        """Write `lines` as the awslogs driver would, then stop the task right after."""
        stream = f"bench/app/{task_arn.rsplit('/', 1)[-1]}"
        self.admin_logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        base = int(time.time() * 1000)
        for start in range(0, len(lines), batch):
            chunk = lines[start : start + batch]
            events = [
                # ~4 lines per millisecond: many lines share a timestamp.
                {"timestamp": base + (start + i) // 4, "message": line}
                for i, line in enumerate(chunk)
            ]
            self.admin_logs.put_log_events(
                logGroupName=GROUP, logStreamName=stream, logEvents=events
            )
        self.admin_ecs.stop_task(cluster=CLUSTER, task=task_arn, reason="essential exited")
        stopped.append(time.monotonic())

    def close(self) -> None:
        self.server.stop()


def run_scenario(world: MotoWorld, name: str, count: int, batch: int) -> Outcome:
    from residency_cli.cli.render import format_event
    from residency_cli.logs import tail_task, task_streams

    lines = [f"line {i:06d} " + "x" * 40 for i in range(count)]
    clients = world.clients()
    calls: Counter[str] = Counter()
    _count_calls(clients.ecs, calls)
    _count_calls(clients.logs, calls)
    task_arn = world.start_task()
    stopped_at: list[float] = []
    producer = threading.Thread(
        target=world.produce, args=(task_arn, lines, batch, stopped_at), daemon=True
    )
    sink = io.StringIO()
    shown: list[str] = []

    def on_event(event: Any) -> None:
        shown.append(event.message)
        sink.write(format_event(event, show_container=False) + "\n")

    started = time.monotonic()
    _, streams = task_streams(clients.ecs, CLUSTER, task_arn)
    producer.start()
    tail_task(
        clients.ecs,
        clients.logs,
        CLUSTER,
        task_arn,
        streams,
        sleep=time.sleep,
        now=time.monotonic,
        on_event=on_event,
    )
    ended = time.monotonic()
    producer.join()
    seconds = ended - started
    return Outcome(
        scenario=name,
        lines=count,
        shown=len(shown),
        exactly_once_in_order=shown == lines,
        seconds=round(seconds, 3),
        lines_per_second=round(len(shown) / seconds) if seconds else 0,
        stopped_to_end_seconds=round(ended - (stopped_at[0] if stopped_at else ended), 3),
        calls=dict(sorted(calls.items())),
        **_lost_duplicated(shown, lines),
    )


def read_scenario(world: MotoWorld, count: int, batch: int) -> Outcome:
    """`residency logs TASK` (no --follow) of a stopped task's `count` lines: pure reading."""
    from residency_cli.cli.render import format_event
    from residency_cli.logs import read_logs, task_streams

    lines = [f"line {i:06d} " + "x" * 40 for i in range(count)]
    task_arn = world.start_task()
    world.produce(task_arn, lines, batch, [])
    clients = world.clients()
    calls: Counter[str] = Counter()
    _count_calls(clients.ecs, calls)
    _count_calls(clients.logs, calls)
    sink = io.StringIO()
    shown: list[str] = []
    started = time.monotonic()
    _, streams = task_streams(clients.ecs, CLUSTER, task_arn)
    for event in read_logs(clients.logs, streams, since_ms=None):
        shown.append(event.message)
        sink.write(format_event(event, show_container=False) + "\n")
    seconds = time.monotonic() - started
    return Outcome(
        scenario=f"read {count} lines of a stopped task (no --follow)",
        lines=count,
        shown=len(shown),
        exactly_once_in_order=shown == lines,
        seconds=round(seconds, 3),
        lines_per_second=round(len(shown) / seconds) if seconds else 0,
        stopped_to_end_seconds=0.0,
        calls=dict(sorted(calls.items())),
        **_lost_duplicated(shown, lines),
    )


def sandbox_scenarios(count: int) -> list[Outcome]:
    """The sandbox: a real local process prints the lines; the sandbox's awslogs stand-in puts
    each line as it is written; calls are counted by the sandbox itself."""
    import tempfile
    from pathlib import Path

    from residency_cli.cli.render import format_event
    from residency_cli.logs import tail_task, task_streams
    from residency_cli.sandbox.testing import SandboxFixture, start_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    outcomes = []
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            for name, lines in (
                (f"{count} lines (sandbox)", count),
                ("5 lines, exits at once (sandbox)", 5),
            ):
                sandbox = SandboxFixture(server).reset()
                try:
                    code = f"for i in range({lines}): print(f'line {{i:06d}} ' + 'x' * 40)"
                    definition = sandbox.register_task_definition("bench", ["python3", "-c", code])
                    clients = sandbox.clients()
                    sink = io.StringIO()
                    shown: list[str] = []

                    def on_event(event: Any, shown: list[str] = shown, sink: Any = sink) -> None:
                        shown.append(event.message)
                        sink.write(format_event(event, show_container=False) + "\n")

                    started = time.monotonic()
                    task_arn = sandbox.start_task_on("bonus.host", definition)
                    _, streams = task_streams(clients.ecs, sandbox.cluster, task_arn)
                    tail_task(
                        clients.ecs,
                        clients.logs,
                        sandbox.cluster,
                        task_arn,
                        streams,
                        sleep=time.sleep,
                        now=time.monotonic,
                        on_event=on_event,
                    )
                    ended = time.monotonic()
                    task = sandbox.describe_task(task_arn)
                    stopped = task["stoppedAt"].timestamp()
                    tail = time.time() - stopped - (time.monotonic() - ended)
                    expected = [f"line {i:06d} " + "x" * 40 for i in range(lines)]
                    seconds = ended - started
                    outcomes.append(
                        Outcome(
                            scenario=name,
                            lines=lines,
                            shown=len(shown),
                            exactly_once_in_order=shown == expected,
                            seconds=round(seconds, 3),
                            lines_per_second=round(len(shown) / seconds),
                            stopped_to_end_seconds=round(tail, 3),
                            calls=sandbox.call_counts(),
                            **_lost_duplicated(shown, expected),
                        )
                    )
                finally:
                    sandbox.close()
        finally:
            server.stop()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000, help="lines per PutLogEvents")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--target", choices=["moto", "sandbox"], default="moto")
    args = parser.parse_args(argv)
    if args.target == "sandbox":
        outcomes = sandbox_scenarios(args.lines)
    else:
        world = MotoWorld()
        try:
            outcomes = [
                run_scenario(world, f"{args.lines} lines", args.lines, args.batch),
                run_scenario(world, "5 lines, exits at once", 5, args.batch),
                read_scenario(world, args.lines, args.batch),
            ]
        finally:
            world.close()
    if args.json:
        json.dump([o.__dict__ for o in outcomes], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for o in outcomes:
            verdict = "yes" if o.exactly_once_in_order else "NO"
            sys.stdout.write(
                f"{o.scenario}: shown {o.shown}/{o.lines}, exactly once in order: {verdict} "
                f"(lost {o.lost}, duplicated {o.duplicated}); "
                f"{o.seconds} s, {o.lines_per_second} lines/s; ended "
                f"{o.stopped_to_end_seconds} s after STOPPED; calls {o.calls}\n"
            )
    return 0 if all(o.exactly_once_in_order for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
