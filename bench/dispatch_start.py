"""How long `residency run` takes from its start to the moment its RunTask reaches ECS.

Against the in-process sandbox (as bench/dispatch_bench.py), `residency run WORKLOAD
--no-wait` is started as a separate process, exactly as a user starts it (interpreter start,
imports, map loading, pre-flight checks, then RunTask). The latency is the moment the
sandbox received the RunTask request minus the moment the process was started, both read
from the benchmark's monotonic clock (the sandbox runs in the benchmark's process). The
reference, measured the same way and alternately, is `aws ecs run-task` (AWS CLI v1,
`.venv-awscli/bin/aws`) with the same cluster, task definition and placement constraint
(no pre-flight). One round of each is run first and discarded (cold caches).

    .venv/bin/python bench/dispatch_start.py [--runs 7] [--json]
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
from pathlib import Path
from typing import Any

from calllog import CallLog

ROOT = Path(__file__).resolve().parent.parent
RESIDENCY = ROOT / ".venv" / "bin" / "residency"
AWS_CLI = ROOT / ".venv-awscli" / "bin" / "aws"


def _measure(command: list[str], env: dict[str, str], log: CallLog) -> tuple[float, float]:
    """(start -> RunTask received, start -> process ended), in seconds."""
    log.clear()
    began = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    ended = time.monotonic()
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    received = log.first("RunTask")
    if received is None:
        raise SystemExit(f"no RunTask reached the sandbox: {' '.join(command)}")
    return received - began, ended - began


def measure(runs: int) -> dict[str, Any]:
    from residency_cli.sandbox.testing import SandboxFixture, start_server

    log = CallLog().install()
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            sandbox = SandboxFixture(server).reset(label_hosts=True)
            sandbox.register_task_definition("bench-start", ["sleep", "1"], cpu=16, memory=16)
            config = Path(workdir) / "bench.yaml"
            config.write_text(
                sandbox.config_path.read_text(encoding="utf-8")
                + "  start:\n    task_definition: bench-start\n    location: newyork\n",
                encoding="utf-8",
            )
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                **sandbox.env(),
                "RESIDENCY_CONFIG": str(config),
                "RESIDENCY_STATE_DIR": str(Path(workdir) / "state"),
                "NO_COLOR": "1",
            }
            ours = [str(RESIDENCY), "run", "start", "--no-wait", "--output", "json"]
            reference = [
                str(AWS_CLI),
                "ecs",
                "run-task",
                "--cluster",
                sandbox.cluster,
                "--task-definition",
                "bench-start",
                "--launch-type",
                "EXTERNAL",
                "--placement-constraints",
                json.dumps([{"type": "memberOf", "expression": "attribute:location == newyork"}]),
            ]
            samples: dict[str, list[tuple[float, float]]] = {"residency": [], "aws": []}
            for index in range(runs + 1):
                for name, command in (("residency", ours), ("aws", reference)):
                    if name == "residency":
                        command = [*command, "--run-id", f"bench-start-{index}"]
                    sample = _measure(command, env, log)
                    if index > 0:  # the first round warms the caches
                        samples[name].append(sample)
            calls_before = _calls_before_runtask(ours, env, log, runs)
        finally:
            server.stop()

    def summary(values: list[tuple[float, float]]) -> dict[str, Any]:
        to_run = [v[0] for v in values]
        total = [v[1] for v in values]
        return {
            "to_runtask": to_run,
            "to_runtask_median": statistics.median(to_run),
            "process": total,
            "process_median": statistics.median(total),
        }

    result = {name: summary(values) for name, values in samples.items()}
    result["runs"] = runs
    result["residency_calls_before_runtask"] = calls_before
    return result


def _calls_before_runtask(
    command: list[str], env: dict[str, str], log: CallLog, index: int
) -> dict[str, int]:
    """The requests `residency run` sends before its RunTask (its pre-flight), by operation."""
    _measure([*command, "--run-id", f"bench-start-calls-{index}"], env, log)
    received = log.first("RunTask")
    counts: dict[str, int] = {}
    for when, name in log.entries:
        if received is not None and when < received:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if not AWS_CLI.exists():
        raise SystemExit(f"{AWS_CLI} is missing: make .venv-awscli/.installed")
    result = measure(args.runs)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for name, label in (("residency", "residency run --no-wait"), ("aws", "aws ecs run-task")):
        found = result[name]
        print(
            f"{label}: start -> RunTask received median {found['to_runtask_median']:.3f} s; "
            f"process median {found['process_median']:.3f} s ({args.runs} runs)"
        )
    print(f"residency's requests before RunTask: {result['residency_calls_before_runtask']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
