"""Run every benchmark and rewrite BENCHMARKS.md from what this run measured (`make bench`).

    .venv/bin/python bench/run_all.py --etl-python .venv-etl/bin/python \\
        --pandas-python .bench/venv/bin/python

Each benchmark runs as its own process (bench/*.py with `--json`); this script collects the
numbers, writes them all to .bench/results.json, and writes BENCHMARKS.md from the templates
below: the machine, the versions, every figure with its reference measured in the same run,
the targets met and missed, and what limits each figure. `--from-json` rewrites
BENCHMARKS.md from a saved .bench/results.json without measuring again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
RESIDENCY = ROOT / ".venv" / "bin" / "residency"
AWS_CLI = ROOT / ".venv-awscli" / "bin" / "aws"
RESULTS = ROOT / ".bench" / "results.json"
SOAK = ROOT / ".bench" / "soak.md"
OUTPUT = ROOT / "BENCHMARKS.md"


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def run_json(command: Sequence[str], timeout: float = 900) -> Any:
    """Run a benchmark that prints one JSON document; its stderr passes through."""
    done = subprocess.run(
        list(command), stdout=subprocess.PIPE, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if done.returncode not in (0, 1):  # 1: ran, but a check failed; the figures say which
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    return json.loads(done.stdout)


def output_of(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip()


# --- the machine and the versions -----------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "arch": output_of(["uname", "-m"]),
        "kernel": output_of(["uname", "-sr"]),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_kib / 2**20,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def versions(etl_python: str, pandas_python: str) -> dict[str, str]:
    from importlib.metadata import version

    from residency_cli import __version__

    def version_in(python: str, package: str) -> str:
        code = f"import importlib.metadata as m; print(m.version({package!r}))"
        return output_of([python, "-c", code]) or "?"

    aws = output_of([str(AWS_CLI), "--version"])
    return {
        "Python": platform.python_version(),
        "residency": __version__,
        "boto3": version("boto3"),
        "botocore": version("botocore"),
        "moto": version("moto"),
        "awscli": aws.split()[0].split("/", 1)[-1] if aws else "?",
        "awscli's botocore": (re.findall(r"botocore/(\S+)", aws) or ["?"])[0],
        "pyarrow (ETL image env)": version_in(etl_python, "pyarrow"),
        "pandas (reference)": version_in(pandas_python, "pandas"),
    }


# --- start-up ---------------------------------------------------------------------------------


def startup(rounds: int) -> dict[str, Any]:
    from residency_cli.sandbox.seed import EXAMPLE_MAP

    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "aws --version": [str(AWS_CLI), "--version"],
        "residency --help": [str(RESIDENCY), "--help"],
        "residency run --help": [str(RESIDENCY), "run", "--help"],
        "residency validate": [str(RESIDENCY), "--config", str(EXAMPLE_MAP), "validate"],
    }
    env = {k: v for k, v in os.environ.items() if k not in ("RESIDENCY_CONFIG",)}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(rounds + 1):  # round 0 warms the page cache and is not counted
        for name, command in commands.items():
            began = time.perf_counter()
            done = subprocess.run(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
            )
            elapsed = time.perf_counter() - began
            if done.returncode != 0:
                raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
            if index:
                samples[name].append(elapsed)
    imports = {
        name: biggest_imports(command[1:])
        for name, command in commands.items()
        if name.startswith("residency")
    }
    return {"rounds": rounds, "samples": samples, "imports": imports}


def biggest_imports(arguments: Sequence[str], top: int = 3) -> dict[str, Any]:
    """`python -X importtime` of the command: total import time and the largest top-level
    imports (cumulative microseconds)."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", str(RESIDENCY), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    top_level: list[tuple[int, str]] = []
    modules: set[str] = set()
    typer_us = 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        modules.add(match.group(4).split(".", 1)[0])
        if match.group(4) == "typer":
            typer_us = int(match.group(2))
        if len(match.group(3)) == 1:
            top_level.append((int(match.group(2)), match.group(4)))
    total = sum(us for us, _ in top_level)
    top_level = [(us, name) for us, name in top_level if name.split(".")[0] not in STARTUP]
    top_level.sort(reverse=True)
    return {
        "total_ms": total / 1000,
        "largest": [(name, us / 1000) for us, name in top_level[:top]],
        "heavy": [name for name in HEAVY if name in modules],
        "typer_ms": typer_us / 1000,
    }


# Imported by every interpreter start (not the program's choice), and the heavy packages.
STARTUP = {"encodings", "site", "_distutils_hack", "_virtualenv"}
HEAVY = ("boto3", "botocore", "moto", "pydantic", "rich", "yaml")


# --- everything else runs as its own process --------------------------------------------------


def dispatch_start(runs: int) -> Any:
    return run_json([PYTHON, str(BENCH / "dispatch_start.py"), "--runs", str(runs), "--json"])


def detection(runs: int) -> Any:
    return run_json([PYTHON, str(BENCH / "dispatch_bench.py"), "--runs", str(runs), "--json"])


def fanout(runs: int) -> Any:
    return run_json([PYTHON, str(BENCH / "fanout_bench.py"), "--runs", str(runs), "--json"])


def scale(runs: int) -> Any:
    return run_json([PYTHON, str(BENCH / "scale_bench.py"), "--runs", str(runs), "--json"])


def logs(runs: int, lines: int) -> Any:
    outcomes, short = [], []
    for index in range(runs):
        log(f"logs: run {index + 1} of {runs}")
        found = run_json(
            [
                PYTHON,
                str(BENCH / "logs_follow.py"),
                "--target",
                "sandbox",
                "--lines",
                str(lines),
                "--json",
            ]
        )
        outcomes.append(found[0])
        short.extend(found[1:])  # the task that prints 5 lines and exits at once
    log("logs: the follower alone (moto, once)")
    moto = run_json([PYTHON, str(BENCH / "logs_follow.py"), "--lines", str(lines), "--json"])
    return {"runs": runs, "lines": lines, "outcomes": outcomes, "short": short, "moto": moto}


def journal_s3(runs: int) -> Any:
    return run_json([PYTHON, str(BENCH / "journal_s3_bench.py"), "--runs", str(runs), "--json"])


def etl(args: argparse.Namespace) -> Any:
    figures = ROOT / ".bench" / "etl.json"
    figures.unlink(missing_ok=True)
    subprocess.run(
        [
            args.pandas_python,
            str(BENCH / "etl_bench.py"),
            "--rows",
            str(args.etl_rows),
            "--memory-rows",
            str(args.etl_large_rows),
            "--repeat",
            str(args.runs_etl),
            "--large-repeat",
            str(args.etl_large_repeat),
            "--etl-python",
            args.etl_python,
            "--output",
            str(ROOT / ".bench" / "etl-bench.md"),
            "--json",
            str(figures),
        ],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
        check=False,
        timeout=1800,
    )
    if not figures.exists():
        raise SystemExit("bench/etl_bench.py wrote no figures")
    return json.loads(figures.read_text())


# --- BENCHMARKS.md ----------------------------------------------------------------------------


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def s(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} s"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render(results: dict[str, Any]) -> str:
    parts = [
        header(results),
        targets(results),
        startup_section(results["startup"]),
        dispatch_section(results["dispatch_start"], results["detection"]),
        fanout_section(results["fanout"]),
        scale_section(results.get("scale"), results.get("dispatch_start")),
        logs_section(results["logs"]),
        etl_section(results["etl"]),
        journal_s3_section(results.get("journal_s3")),
        soak_section(),
    ]
    return "\n".join(part.rstrip() + "\n" for part in parts)


def header(results: dict[str, Any]) -> str:
    m, v = results["machine"], results["versions"]
    rows = "\n".join(f"| {name} | {value} |" for name, value in v.items())
    minutes, seconds = divmod(round(results["seconds"]), 60)
    return f"""# Benchmarks

Written by `make bench` (`bench/run_all.py`) on {m["date"]}: every figure below was measured in
that one run, and each is compared with its reference measured in the same run (alternately,
where both are timed). Speed targets live here, never in timed tests. Do not edit by hand:
the text is a template in `bench/run_all.py`; the raw numbers are in `.bench/results.json`.
The benchmarks took {minutes} min {seconds} s (the virtual environments already built).

Machine: {m["arch"]}, {m["cpu"]}, {m["cores"]} cores, {m["memory_gib"]:.1f} GiB of memory,
{m["kernel"]} (a shared, noisy development container: wall times vary by about ±10 % from one
run to the next).

| software | version |
|---|---|
{rows}
"""


def _startup_medians(found: dict[str, Any]) -> dict[str, float]:
    return {name: med(values) for name, values in found["samples"].items()}


def _fanout_ok(mode: dict[str, Any]) -> bool:
    return bool(mode["describe_tasks_max_in_1s"] <= 1)


def targets(results: dict[str, Any]) -> str:
    up = _startup_medians(results["startup"])
    ratio = up["residency --help"] / up["aws --version"]
    det = results["detection"]["residency"]["latencies"]
    fan = results["fanout"]
    threads, one_loop = fan["threads"], fan["one-loop"]
    outcomes = results["logs"]["outcomes"] + results["logs"].get("short", [])
    lost = sum(o["lost"] for o in outcomes)
    duplicated = sum(o["duplicated"] for o in outcomes)
    e = results["etl"]
    large = _ratios(e, "large")
    large_verdict = verdict(all(r <= 1.0 for r in large.values())) if large else "not measured"
    return f"""## Targets (issue 8)

| target | this run | verdict |
|---|---|---|
| `residency --help` at most half the time of `aws --version` | {s(up["residency --help"], 3)} vs {s(up["aws --version"], 3)}: {ratio:.2f} × | {verdict(ratio <= 0.5)} |
| STOPPED-detection latency, median at most 1 s | median {s(med(det))}, max {s(max(det))} ({len(det)} runs) | {verdict(med(det) <= 1.0)} |
| fan-out of 100 tasks: at most one DescribeTasks call per second | `Dispatcher.outcomes` on ten runs: at most {one_loop["describe_tasks_max_in_1s"]} in any second, {s(one_loop["wall_median"])} wall (ten runs waiting in ten threads, for comparison: up to {threads["describe_tasks_max_in_1s"]} in one second) | {verdict(_fanout_ok(one_loop))} |
| logs: {results["logs"]["lines"]:,} lines (and a 5-line task) followed, 0 lost and 0 duplicated | {lost} lost, {duplicated} duplicated over {len(outcomes)} runs of either | {verdict(lost == 0 and duplicated == 0)} |
| ETL (issue 3): no slower than pandas at {e["rows"]:,} rows, exact, under {e["memory_limit_mb"]} MB on {e["memory_rows"]:,} rows | etl/pandas {etl_ratios(e, "times")} | {verdict(bool(e["pass"]))} |
| ETL at {e["memory_rows"]:,} rows: no slower than pandas (not a stated target) | etl/pandas {etl_ratios(e, "large")} | {large_verdict} |
"""  # noqa: E501


def _ratios(e: dict[str, Any], key: str) -> dict[str, float]:
    """etl/pandas median wall time of each job, from `times` (small file) or `large`."""

    def seconds(values: list[Any]) -> float:
        return med([v["seconds"] if isinstance(v, dict) else v for v in values])

    found = e[key]
    return {
        job: seconds(found[f"{job} etl"]) / seconds(found[f"{job} pandas"])
        for job in ("bonus", "tax")
        if f"{job} pandas" in found
    }


def etl_ratios(e: dict[str, Any], key: str) -> str:
    return ", ".join(f"{job} {ratio:.2f}" for job, ratio in _ratios(e, key).items()) or "-"


def startup_section(found: dict[str, Any]) -> str:
    medians = _startup_medians(found)
    python, aws = medians["python -c pass"], medians["aws --version"]
    rows = []
    for name, values in found["samples"].items():
        m = medians[name]
        rows.append(
            f"| `{name}` | {s(m, 3)} | {s(min(values), 3)} | {s(max(values), 3)} "
            f"| {m / python:.1f} × | {m / aws:.2f} × |"
        )
    imports = []
    for name, found_imports in found["imports"].items():
        largest = ", ".join(f"`{module}` {ms:.0f} ms" for module, ms in found_imports["largest"])
        heavy = ", ".join(found_imports["heavy"]) or "none"
        imports.append(
            f"- `{name}`: {found_imports['total_ms']:.0f} ms of imports in all (Typer and the"
            f" click it vendors: {found_imports.get('typer_ms', 0):.0f} ms); largest {largest};"
            f" of {', '.join(HEAVY)} it imports: {heavy}"
        )
    return f"""## Start-up

Each command run {found["rounds"]} times, the five commands taking turns (one more round first,
not counted, to warm the page cache); wall time from `subprocess.run` start to its end
(`time.perf_counter`), output discarded. `python -c pass` is the venv's own interpreter;
`aws --version` is AWS CLI v1 from `.venv-awscli`; `residency validate` checks the packaged
example map (`residency_cli/sandbox/examples/acme/residency.yaml`) and prints its tables.

| command | median | min | max | × `python -c pass` | × `aws --version` |
|---|---|---|---|---|---|
{chr(10).join(rows)}

What limits them (`python -X importtime`, one run each; import time is most of what is
above the bare interpreter):
{chr(10).join(imports)}

`run --help` is slower because Typer's parameter adapter (`typer._adapters`) imports pydantic
for the command's typed options; `validate` loads the map with pydantic and YAML and prints
with rich. The AWS CLI spends its time importing botocore (its data-driven command table).
"""


def dispatch_section(start: dict[str, Any], detected: dict[str, Any]) -> str:
    ours, ref = start["residency"], start["aws"]
    pre = ", ".join(f"{name} {n}" for name, n in start["residency_calls_before_runtask"].items())

    def row(label: str, found: dict[str, Any]) -> str:
        values = found["to_runtask"]
        return (
            f"| {label} | {s(found['to_runtask_median'], 3)} | {s(min(values), 3)} "
            f"| {s(max(values), 3)} | {s(found['process_median'], 3)} "
            f"| {found['to_runtask_median'] / ref['to_runtask_median']:.2f} × |"
        )

    lat = detected["residency"]["latencies"]
    rates = detected["residency"]["describe_tasks_per_second"]
    cli = detected["aws"]
    cli_row = (
        f"| `aws ecs wait tasks-stopped` (AWS CLI v1, 6 s polling), same tasks | "
        f"{s(med(cli['latencies']))} | {s(max(cli['latencies']))} | one per 6 s |"
        if cli
        else "| `aws ecs wait tasks-stopped` | not measured (no AWS CLI) | | |"
    )
    ratio = f"{med(lat) / med(cli['latencies']):.2f} ×" if cli else "-"
    ten = detected["count10"]
    return f"""## Dispatch (on the sandbox)

### From `residency run` start to RunTask sent

`bench/dispatch_start.py`: the in-process sandbox (hosts labelled, a one-second `sleep` task
definition of 16 CPU units), and `residency run start --no-wait` started as a separate process
exactly as a user starts it; latency = when the sandbox received the RunTask request minus
when the process was started (one clock: the sandbox runs in the benchmark's process). The
reference, measured the same way, alternately, is `aws ecs run-task` with the same cluster,
task definition and placement constraint. {start["runs"]} runs each, one more round first
not counted.

| client | start → RunTask received, median | min | max | process ended, median | ratio to `aws ecs run-task` |
|---|---|---|---|---|---|
{row("`residency run --no-wait`", ours)}
{row("`aws ecs run-task`", ref)}

What limits it: interpreter start and imports (botocore, as the AWS CLI), then the
pre-flight requests `run` makes before RunTask: {pre}; the task definition and the host
listing go in parallel, the journal's STS identity meanwhile, and nothing else (rich, the
log reader) is imported before RunTask. After RunTask,
`run` reads the host back (placement verification) and tags the task before it exits.

### Noticing that a task stopped

`bench/dispatch_bench.py`: against the in-process sandbox, {detected["runs"]} tasks lasting
3.00 to {3 + (detected["runs"] - 1) / detected["runs"]:.2f} s (a different fraction of the poll
interval each, so that the stop is not in phase with the polling), each dispatched with
`Dispatcher.run` (`residency run --no-follow`); latency = when the waiting loop saw STOPPED
minus the task's `stoppedAt`. The reference waits for the same tasks, started by RunTask.

| waiter | median | max | DescribeTasks |
|---|---|---|---|
| `residency run` (`Dispatcher.run`, `--no-follow`) | {s(med(lat))} | {s(max(lat))} | at most {max(rates):.2f} calls per second of waiting |
{cli_row}

Ratio of the medians, residency to the AWS CLI waiter: {ratio}. What limits it: the 1 s
polling floor (one DescribeTasks a second at most, by design): a stop is seen on the next
look, on average half an interval later, plus one round trip. The first look is one interval
after RunTask (whose answer already describes the task), then one per second while anything
changes, backing off ×1.5 up to 10 s after 20 s without change.

`--count 10` with 2 s tasks: {ten["tasks"]} tasks, outcome {ten["outcome"]},
{ten["describe_tasks"]} DescribeTasks calls in all (one call covers all ten tasks).
"""  # noqa: E501


def fanout_section(found: dict[str, Any]) -> str:
    labels = {
        "threads": "ten `Dispatcher.run(count=10)` in ten threads",
        "one-loop": "ten runs `wait=False`, then `Dispatcher.outcomes(runs)`",
    }
    rows, calls = [], []
    for mode, label in labels.items():
        m = found[mode]
        walls = [v["wall_seconds"] for v in m["samples"]]
        rows.append(
            f"| {label} | {s(m['wall_median'])} ({s(min(walls))}-{s(max(walls))}) "
            f"| {m['describe_tasks_median']:g} | {m['describe_tasks_per_second_median']:.2f} "
            f"| {m['describe_tasks_max_in_1s']} "
            f"| {'yes' if m['all_succeeded'] else 'NO'} |"
        )
        by_operation = ", ".join(f"{op} {n}" for op, n in m["calls_of_median_run"].items())
        calls.append(f"- {label}: {by_operation}")
    threads, one_loop = found["threads"], found["one-loop"]
    median_calls = one_loop["calls_of_median_run"]
    readback = median_calls.get("ecs:DescribeContainerInstances", 0) + median_calls.get(
        "ssm:DescribeInstanceInformation", 0
    )
    tags = median_calls.get("ecs:TagResource", 0)
    problems = ""
    failed = [p for mode in labels for p in found[mode].get("problems", [])]
    if failed:
        problems = f"\nTasks that did not succeed, over all runs ({len(failed)}):\n" + "".join(
            f"- `{p}`\n" for p in failed[:10]
        )
    return f"""## Fan-out: 100 tasks, both locations, one process

`bench/fanout_bench.py`: against the in-process sandbox, 50 tasks in newyork (bonus.host)
and 50 in frankfurt (tax.host), each `sleep {found["task_seconds"]}` (16 CPU units, 16 MiB),
dispatched as ten `run`s of `count=10` (RunTask starts at most ten tasks a call) and waited
on until every task is seen STOPPED, by one process; {found["runs"]} runs of each way, the
sandbox reset before each. Every request is counted and timestamped by the sandbox; wall
time is from the first dispatch to the last task seen STOPPED; "succeeded" = every task
stopped with exit code 0 on a host of its workload's location.

`Dispatcher.outcomes(runs)` waits on the tasks of several runs (of any workloads) in one loop:
one DescribeTasks per tick for up to 100 tasks, the hosts of newly placed or newly running
tasks read back together (one DescribeContainerInstances and one SSM call), each task judged
against its own workload. The reference is what ten `residency run --count 10` in parallel
do: ten loops, each describing its own ten tasks.

| how | wall, median (range) | DescribeTasks, median | per second, median | most in any 1 s | all succeeded |
|---|---|---|---|---|---|
{chr(10).join(rows)}

API calls by operation (the run with the median wall time):
{chr(10).join(calls)}
{problems}
What limits it: the wall time is the tasks' own {found["task_seconds"]} s plus dispatching
ten runs one after the other (each `run` does its pre-flight and reads its hosts back before
the next starts) plus the last look (within one poll interval, 1 s). In the threads, ten
loops poll on their own, so their DescribeTasks add up: up to
{threads["describe_tasks_max_in_1s"]} in one second, where one call would do. Besides
DescribeTasks, each task is tagged with one TagResource (the location it was verified on;
ECS tags one resource a call): {tags} of them, and {readback} host read-back calls
(DescribeContainerInstances and SSM DescribeInstanceInformation, batched per run and per
tick) in the median one-loop run, for 100 tasks.
"""  # noqa: E501


def _scale_row(new: dict[str, Any], old: dict[str, Any]) -> str:
    met = new["scenario"] == "check" or new["preflight_ecs"] <= new["ecs_target"]
    target = "diagnosis" if new["scenario"] == "check" else verdict(met)
    return (
        f"| {new['hosts']:,} | `{new['scenario']}` | {new['preflight_ecs']} "
        f"| {new['preflight_ssm']} | {new['calls_total']} | {s(new['wall_median'], 3)} "
        f"| {old['preflight_ecs']} | {old['preflight_ssm']} | {old['calls_total']} "
        f"| {s(old['wall_median'], 3)} | {new['ecs_target']} | {target} |"
    )


def _start_ratio(start: dict[str, Any] | None) -> str:
    if not start:
        return "not measured in this run"
    ours, ref = start["residency"]["to_runtask_median"], start["aws"]["to_runtask_median"]
    return (
        f"{s(ours, 3)} vs {s(ref, 3)} for `aws ecs run-task`: {ours / ref:.2f} × "
        f"(target at most 1.0 ×: {verdict(ours <= ref)})"
    )


def scale_section(found: dict[str, Any] | None, start: dict[str, Any] | None = None) -> str:
    if not found:
        return "## Pre-flight at fleet scale\n\nNot measured in this run: `make bench-scale`.\n"
    rows = []
    by_key = {(r["hosts"], r["scenario"], r["approach"]): r for r in found["results"]}
    for (hosts, scenario, approach), new in by_key.items():
        if approach == "new":
            rows.append(_scale_row(new, by_key[(hosts, scenario, "before")]))
    seeded = ", ".join(
        f"{r['hosts']:,} in {s(r['seed_seconds'])}"
        for r in found["results"]
        if r["scenario"] == "run --dry-run" and r["approach"] == "new"
    )
    return f"""## Pre-flight at fleet scale (issue 17)

`bench/scale_bench.py`: the in-process sandbox (ListContainerInstances pages at 100 and
honours `filter`, as ECS does) with 100, 1,000 and 5,000 hosts in {found["locations"]}
locations (loc00 ... loc49 in turn); the workload may run in loc07 only, so a 50th of the
fleet is compliant. Every request the sandbox receives is counted; wall time is the median of
{found["runs"]} rounds in one process (the sandbox's own work included). "Before" is the
approach before issue 17, measured in the same run: `run` and `run --dry-run` described every
host of the cluster and asked SSM for every name; `hosts --location` did too, then filtered.
Now they list the hosts of the workload's (or the asked) location only, with the placement
expression as ListContainerInstances' `filter` (status ACTIVE for pre-flight), describe those
(while the task definition is read, in parallel) and ask SSM for their names only.
`check` is the diagnosis of the whole fleet: the same requests both ways; what changed is its
text, grouped by reason above 20 hosts (before: one row per host, now `--all-hosts`). For
`run`, the ECS and SSM columns count the requests before RunTask (the pre-flight), "all" every
request of the run, waiting included. Target: pre-flight ECS requests at most
2 + ⌈compliant hosts / 100⌉, SSM only for the hosts shown. Fleets seeded straight into the
sandbox's backends: {seeded}.

| hosts | command | ECS | SSM | all requests | wall | ECS before | SSM before | all before | wall before | ECS target | target |
|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Targets met at every size: {verdict(bool(found.get("targets_met")))}. From process start to
RunTask received (two hosts, [above](#from-residency-run-start-to-runtask-sent)):
{_start_ratio(start)}.
"""  # noqa: E501


def _calls(calls: dict[str, int]) -> str:
    """`logs:GetLogEvents 3, ...` -> `GetLogEvents 3, ...`."""
    return ", ".join(f"{op.split(':', 1)[1]} {n}" for op, n in calls.items())


def logs_section(found: dict[str, Any]) -> str:
    rows = []
    for index, o in enumerate(found["outcomes"], 1):
        calls = _calls(o["calls"])
        while_running = o["lines"] / max(o["seconds"] - o["stopped_to_end_seconds"], 1e-9)
        rows.append(
            f"| {index} | {o['shown']:,} / {o['lines']:,} | {o['lost']} | {o['duplicated']} "
            f"| {'yes' if o['exactly_once_in_order'] else 'NO'} | {s(o['seconds'])} "
            f"| {o['lines_per_second']:,} | {while_running:,.0f} "
            f"| {s(o['stopped_to_end_seconds'])} | {calls} |"
        )
    outcomes = found["outcomes"]
    short_rows = [
        f"| {index} | {o['shown']} / {o['lines']} | {o['lost']} | {o['duplicated']} "
        f"| {'yes' if o['exactly_once_in_order'] else 'NO'} | {s(o['seconds'])} "
        f"| {s(o['stopped_to_end_seconds'])} "
        f"| {_calls(o['calls'])} |"
        for index, o in enumerate(found.get("short", []), 1)
    ]
    short_table = (
        "| run | shown | lost | duplicated | exactly once, in order | wall time "
        "| ended after STOPPED | calls |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(short_rows)
        if short_rows
        else "(not measured in this run)"
    )
    read = [o for o in found.get("moto", []) if o["scenario"].startswith("read")]
    backlog = (
        f"on moto (`bench/logs_follow.py` without `--target`, once, this run) it read a stored "
        f"{read[0]['lines']:,}-line backlog in {s(read[0]['seconds'])} "
        f"({read[0]['lines_per_second']:,} lines/s, lost {read[0]['lost']}, duplicated "
        f"{read[0]['duplicated']})."
        if read
        else "(not measured in this run)."
    )
    return f"""## Following logs: {found["lines"]:,} lines

`bench/logs_follow.py --target sandbox`, {found["runs"]} times: a real `python3` process on
bonus.host prints {found["lines"]:,} lines (the sandbox puts each line as it is written), and
the same code as `residency logs --follow` follows them to the end (each line formatted as
the CLI prints it, into a null sink); every line is checked to have been shown exactly once
and in order. Lines per second = lines / wall time from the start of the task to the end of
the follow; "while running" leaves out the time after STOPPED.

| run | shown | lost | duplicated | exactly once, in order | wall time | lines/s | lines/s while running | ended after STOPPED | calls |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Medians: {med([o["lines_per_second"] for o in outcomes]):,.0f} lines/s, wall
{s(med([o["seconds"] for o in outcomes]))}, ended
{s(med([o["stopped_to_end_seconds"] for o in outcomes]))} after STOPPED.

The short task, in the same runs: a process on bonus.host that prints 5 lines and exits at
once, followed from its start (the case where runners lose the last lines):

{short_table}

What limits it: after the task stops, the follow ends only when the stream is exhausted and
a grace period of 2 s has passed (it is what makes the last line always appear), plus up to
a one-second poll to see STOPPED: that is the "ended after STOPPED" column, about half of
every wall time here. While the task runs, the producer (a Python process printing the
lines, the sandbox writing each as a log event) sets the pace. The follower itself is
faster: {backlog} The calls do not grow with the number of lines: one GetLogEvents per
stream per poll (up to 10,000 events a call), at most 4 polls a second.
"""  # noqa: E501


def etl_section(e: dict[str, Any]) -> str:
    times = {key: med(values) for key, values in e["times"].items()}
    rows = []
    for job in ("bonus", "tax"):
        ours, ref = times[f"{job} etl"], times[f"{job} pandas"]
        rows.append(f"| {job} | {ours:.3f} | {ref:.3f} | {ours / ref:.2f} |")
    large_rows = []
    for job in ("bonus", "tax"):
        ours = e["large"][f"{job} etl"]
        ref = e["large"].get(f"{job} pandas", [])
        ours_s = med([x["seconds"] for x in ours])
        ours_mb = max(x["peak_mb"] for x in ours)
        if ref:
            ref_s = med([x["seconds"] for x in ref])
            ref_mb = max(x["peak_mb"] for x in ref)
            large_rows.append(
                f"| {job} | {ours_s:.1f} | {ref_s:.1f} | {ours_s / ref_s:.2f} | {ours_mb} "
                f"| {ref_mb} |"
            )
        else:
            large_rows.append(f"| {job} | {ours_s:.1f} | - | - | {ours_mb} | - |")
    n_large = max(1, e["large_repeat"])
    few = " (fewer than five to keep `make bench` short: pandas' bonus alone takes tens of seconds)"
    few = few if n_large < 5 else ""
    return f"""## ETL jobs

`bench/etl_bench.py` (as `make bench-etl`, with `--large-repeat {e["large_repeat"]}`): each
job is a separate process (interpreter start and imports included, no upload) in an
environment built from `docker/requirements.txt` alone (`.venv-etl`, as in the image); it
alternates with a straightforward pandas version of the seed's logic (`read_csv`, vectorised
float arithmetic, `to_csv`, in `.bench/venv`), on the same generated file (ids ascending;
salaries of every shape, the 70000 boundary included).

{e["rows"]:,} rows, median of {e["repeat"]} runs:

| job | etl (s) | pandas (s) | ratio etl/pandas |
|---|---|---|---|
{chr(10).join(rows)}

Exactness, against Decimal arithmetic done by the benchmark itself: bonus column
{"exact" if e["exact_bonus"] else "WRONG"} for all {e["bonus_rows"]:,} rows; tax total
{e["etl_tax"]} ({"exact" if e["exact_tax"] else f"WRONG, expected {e['expected_tax']}"}).
The pandas version gets {e["pandas_bonuses_wrong"]:,} bonuses wrong and a tax total of
{e["pandas_tax"]} (binary floating point; expected {e["expected_tax"]}).

{e["memory_rows"]:,} rows ({e["memory_rows_mib"]:.0f} MiB of CSV), median of {n_large} runs{few};
peak memory = the highest
ru_maxrss of the job's process over those runs (started by a small launcher, so that the
benchmark's own memory is not counted), limit {e["memory_limit_mb"]} MB for the jobs:

| job | etl (s) | pandas (s) | ratio etl/pandas | etl peak (MB) | pandas peak (MB) |
|---|---|---|---|---|---|
{chr(10).join(large_rows)}

What limits them: parsing and writing CSV, and checking. The jobs stream the file in
batches with pyarrow (memory stays flat whatever the size), check every row (id, salary
pattern) and that no id repeats (beyond 1,000,000 ids by sorted runs spilled to disk and
merged), and compute in integer cents (exact); pandas reads the whole file into memory (its
peak grows with the file), checks nothing and computes in binary floating point. The tax job
writes one line, so it is all reading and checking: the checks and the exact parsing are the
cost pandas does not pay, which is why tax is the job closest to pandas, or slower (pandas
has no output to write there either). For both jobs interpreter start
and the pyarrow import are a fixed share that matters at 1,000,000 rows.

Result (issue 3's targets): {"PASS" if e["pass"] else "FAIL"}.
"""


def journal_s3_section(found: dict[str, Any] | None) -> str:
    """bench/journal_s3_bench.py: the journal on S3 against the local file (issue 16)."""
    if not found:
        return "## The journal on S3\n\nNot measured in this run: `make bench-journal-s3`.\n"
    local, s3 = found["local"], found["s3"]
    n = found["writers"] * found["each"]

    def rate(values: list[float]) -> str:
        return f"{med(values):.0f} ({min(values):.0f}-{max(values):.0f})"

    return f"""## The journal on S3

`bench/journal_s3_bench.py` (as `make bench-journal-s3`), {found["runs"]} runs, median (min-max)
appends per second: one writer appending {found["records"]} records, and {found["writers"]}
writer processes appending {found["each"]} records each at once (released together, timed to
the last one done; one chain of {n} records, verified intact after every run). S3 is the
in-process sandbox's (moto behind its SigV4 check, on this machine); the reference is the
local journal file, measured alternately in the same run.

| journal | 1 writer | {found["writers"]} writer processes | `verify` of {n} records |
|---|---|---|---|
| local file (flock, 3 fsyncs an append) | {rate(local["single"])} | {rate(local["concurrent"])} | {s(med(local["verify"]))} |
| S3 (conditional puts) | {rate(s3["single"])} | {rate(s3["concurrent"])} | {s(med(s3["verify"]))} |

S3 requests per appended record (all writers, lost races included): {med(s3["requests_per_record"]):.1f}.
What limits them: on S3, requests: an uncontended append is two puts (the record with
`If-None-Match: *`, the head with `If-Match`); a writer that loses the race pays a put and a
read of the head, then waits a random while in a window that adapts to contention, so 16
writers share one sequence with few wasted requests. The sandbox serves every request in one
Python process; real S3 answers a put in tens of milliseconds but serves writers in parallel.
Locally, fsync (journal, head, directory) bounds one writer and the flock serialises many.
`verify` on S3 is one GET per record (16 in parallel).
"""  # noqa: E501


def soak_section() -> str:
    """The last `make soak` (15 minutes, so not part of `make bench`), as it reported."""
    if not SOAK.exists():
        return "## Soak\n\nNot run on this machine yet: `make soak` (about 15 minutes).\n"
    day = time.strftime("%Y-%m-%d", time.gmtime(SOAK.stat().st_mtime))
    return f"""{SOAK.read_text(encoding="utf-8").rstrip()}

From `make soak` ({day}; `bench/soak.py --seed 20261123`), run apart from `make bench`; it
exits 1 on any misplaced or lost run, error after retries, or growth in open files. Targets:
zero misplaced tasks, zero lost outcomes, no growth in open files or memory of the sandbox.
The sandbox and the client share one process here, so RSS mixes both (and, after warm-up,
tracemalloc's own bookkeeping); the per-package table says whose memory grew. The client
side creates fresh boto3 clients for every run, as each `residency run` process does, and
botocore keeps some of every client it made in its process-wide caches: a one-process
artefact, since a real `run` ends after one. The sandbox keeps what AWS keeps while it must
(a stopped task for an hour, a clientToken for a day, every log event), then forgets the
tasks and tokens as ECS does.
"""


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etl-python", default=str(ROOT / ".venv-etl" / "bin" / "python"))
    parser.add_argument("--pandas-python", default=str(ROOT / ".bench" / "venv" / "bin" / "python"))
    parser.add_argument("--runs", type=int, default=7, help="start-up rounds, dispatch runs")
    parser.add_argument("--runs-fanout", type=int, default=5)
    parser.add_argument("--runs-logs", type=int, default=5)
    parser.add_argument("--runs-scale", type=int, default=3)
    parser.add_argument("--runs-etl", type=int, default=5)
    parser.add_argument("--runs-journal", type=int, default=3)
    parser.add_argument("--log-lines", type=int, default=100_000)
    parser.add_argument("--etl-rows", type=int, default=1_000_000)
    parser.add_argument("--etl-large-rows", type=int, default=10_000_000)
    parser.add_argument("--etl-large-repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--from-json", type=Path, help="rewrite BENCHMARKS.md from saved results; measure nothing"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        for needed in (RESIDENCY, AWS_CLI, Path(args.etl_python), Path(args.pandas_python)):
            if not needed.exists():
                raise SystemExit(f"{needed} is missing: run `make bench`, which builds it")
        import tempfile

        # The benches dispatch with fixed run ids: a journal of their own, never the user's
        # (a second `make bench` would otherwise find its first run's records).
        state = tempfile.mkdtemp(prefix="residency-bench-state-")
        os.environ["RESIDENCY_STATE_DIR"] = state
        os.environ.pop("RESIDENCY_JOURNAL", None)
        began = time.monotonic()
        results = {
            "machine": machine(),
            "versions": versions(args.etl_python, args.pandas_python),
        }
        steps = [
            ("startup", lambda: startup(args.runs)),
            ("dispatch_start", lambda: dispatch_start(args.runs)),
            ("detection", lambda: detection(args.runs)),
            ("fanout", lambda: fanout(args.runs_fanout)),
            ("scale", lambda: scale(args.runs_scale)),
            ("logs", lambda: logs(args.runs_logs, args.log_lines)),
            ("etl", lambda: etl(args)),
            ("journal_s3", lambda: journal_s3(args.runs_journal)),
        ]
        for name, step in steps:
            log(f"{name} ...")
            step_began = time.monotonic()
            results[name] = step()
            log(f"{name}: {time.monotonic() - step_began:.0f} s")
        results["seconds"] = time.monotonic() - began
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        import shutil

        shutil.rmtree(state, ignore_errors=True)
    args.output.write_text(render(results))
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
