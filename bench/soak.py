"""Soak: many consecutive `run`s on the sandbox, across both locations, under mild faults.

Against an in-process sandbox (as bench/dispatch_bench.py): N runs (default 500) alternating
a newyork and a frankfurt workload (short `python3` tasks that print one line), each through
`Dispatcher.run` with its logs followed, under random faults (default
throttle=0.05,error=0.02,reset=0.01; the seed is printed). Every run is checked: the outcome
is `succeeded`, the host's location is one the workload allows (else: misplaced), and the
outcome, exit code and log line are there (else: lost). The process's memory (RSS, the
sandbox and the client share it) and open files (/proc/self/fd) are sampled every 50 runs.

    .venv/bin/python bench/soak.py [--runs 500] [--faults SPEC] [--seed N] [--output PATH]

`make soak` runs it with a fixed seed and writes `.bench/soak.md`, which `make bench` copies
into BENCHMARKS.md.

Prints a Markdown summary; exits 1 if any run was misplaced or lost, or failed otherwise.
Not part of `make test` (about 15 minutes on 2 cores: botocore backs off 1 s × 2^n on
throttling, so most of the time is spent in retries).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from residency_cli.aws import Clients
from residency_cli.config import Config, parse_config
from residency_cli.dispatch import Dispatcher, RunOptions
from residency_cli.errors import ResidencyError
from residency_cli.sandbox.testing import SandboxFixture, start_server
from residency_cli.waiting import PollPolicy

WORKLOADS = {"soak-ny": ("newyork", "bonus.host"), "soak-fra": ("frankfurt", "tax.host")}


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, task: Any, previous: str | None) -> None:
        return None

    def placed(self, task_arn: str, host: Any, allowed: bool) -> None:
        return None

    def log(self, event: Any) -> None:
        self.lines.append(event.message)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


SANDBOX_PACKAGES = ("residency_cli/sandbox", "moto", "werkzeug", "flask")


def _growth_by_package(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> Counter[str]:
    """Bytes held at the end that were not at the start, by package (e.g. `moto/ecs`)."""
    by_package: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        path = stat.traceback[0].filename
        if "site-packages/" in path:
            parts = path.split("site-packages/", 1)[1].split("/")
        elif "/lib/python3." in path:
            parts = ["stdlib", path.split("/lib/python3.", 1)[1].split("/", 1)[-1]]
        else:
            parts = path.split("/")
        if "residency_cli" in parts:
            parts = parts[parts.index("residency_cli") :]
        package = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
        by_package[package] += stat.size_diff
    return by_package


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--faults", default="throttle=0.05,error=0.02,reset=0.01")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument(
        "--sandbox-minutes-per-run",
        type=float,
        default=6.0,
        help="advance the sandbox clock this much after each run, so that what ECS forgets "
        "(stopped tasks after an hour, clientTokens after a day) is forgotten during the soak",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="also write the Markdown summary here"
    )
    parser.add_argument(
        "--reuse-clients",
        action="store_true",
        help="one set of boto3 clients for every run (a long-lived process) instead of fresh "
        "ones per run (what each `residency run` process has)",
    )
    return parser.parse_args()


@dataclass
class Tally:
    """What the soak saw: samples of (runs, RSS KiB, open files, elapsed s), the runs that
    went wrong, and the counts the summary reports."""

    started: float
    samples: list[tuple[int, int, int, float]] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    task_arns: set[str] = field(default_factory=set)
    growth: Counter[str] = field(default_factory=Counter)
    injected: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    def sample(self, done: int) -> None:
        gc.collect()
        self.samples.append((done, rss_kib(), open_files(), time.monotonic() - self.started))
        print(
            f"{done} runs, {self.samples[-1][3]:.0f} s, RSS {self.samples[-1][1] / 1024:.1f} "
            f"MiB, {self.samples[-1][2]} open files, misplaced {len(self.misplaced)}, "
            f"lost {len(self.lost)}",
            file=sys.stderr,
            flush=True,
        )

    def check(self, index: int, name: str, result: Any, observer: Lines) -> None:
        """Counts one run's outcome; notes it if it ran on a host the workload does not
        allow (misplaced) or its outcome, exit code or log line is missing (lost)."""
        location, hostname = WORKLOADS[name]
        primary = result.primary
        self.task_arns.update(t.task_arn for t in result.tasks if t.task_arn)
        self.outcomes[primary.outcome] += 1
        host = primary.host
        if host is None or host.location != location or host.hostname != hostname:
            self.misplaced.append(f"{index}: {name} on {host}")
        if (
            primary.outcome != "succeeded"
            or primary.exit_code != 0
            or observer.lines != [f"{name} done"]
        ):
            self.lost.append(
                f"{index}: {name} {primary.outcome} exit {primary.exit_code} "
                f"lines {observer.lines} ({primary.stopped_reason})"
            )


def _sandbox_config(sandbox: SandboxFixture) -> Config:
    """The sandbox's configuration plus one workload per entry of WORKLOADS."""
    text = sandbox.config_path.read_text(encoding="utf-8")
    for name, (location, _) in WORKLOADS.items():
        sandbox.register_task_definition(
            name, ["python3", "-c", f"print('{name} done')"], cpu=64, memory=32
        )
        text += f"  {name}:\n    task_definition: {name}\n    location: {location}\n"
    return parse_config(text, "soak.yaml")


def _soak(args: argparse.Namespace, seed: int, tally: Tally) -> None:
    """Runs the workloads in turn against an in-process sandbox, filling `tally`."""
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            sandbox = SandboxFixture(server).reset(label_hosts=True)
            config = _sandbox_config(sandbox)
            shared = sandbox.clients()
            sandbox.set_faults(args.faults, seed=seed)
            names = list(WORKLOADS)
            baseline: tracemalloc.Snapshot | None = None
            tally.sample(0)
            for index in range(args.runs):
                name = names[index % len(names)]
                observer = Lines()
                # Fresh clients (and so a fresh adaptive rate limiter) per run, as each
                # `residency run` process has; one session, so the service models load once.
                clients = (
                    shared if args.reuse_clients else Clients(shared.settings, shared.session())
                )
                dispatcher = Dispatcher.create(
                    clients,
                    config,
                    observer=observer,
                    journal=None,
                    policy=PollPolicy(describe_floor=0.05, describe_ceiling=0.5),
                    drain_grace=0.05,
                )
                sandbox.clock.advance(args.sandbox_minutes_per_run * 60)
                began = time.monotonic()
                try:
                    result = dispatcher.run(name, RunOptions(run_id=f"soak-{seed}-{index}"))
                except ResidencyError as error:  # exit 7 after botocore's retries
                    tally.errors[str(error).split(":", 1)[0]] += 1
                    tally.outcomes["error"] += 1
                    continue
                tally.durations.append(time.monotonic() - began)
                tally.check(index, name, result, observer)
                if (index + 1) % args.every == 0:
                    tally.sample(index + 1)
                    if index + 1 == args.every:
                        # After warm-up: where does the memory that is still growing go?
                        tracemalloc.start()
                        baseline = tracemalloc.take_snapshot()
            if baseline:
                tally.growth = _growth_by_package(baseline, tracemalloc.take_snapshot())
            tracemalloc.stop()
            tally.injected = sandbox.faults_injected()
            tally.calls = sandbox.calls()
        finally:
            server.stop()


def _growth_lines(growth: Counter[str], runs_traced: int) -> list[str]:
    """The tracemalloc rows: memory allocated after warm-up and still held, by package."""
    if not growth:
        return []
    in_sandbox = sum(n for p, n in growth.items() if p.startswith(SANDBOX_PACKAGES))
    lines = [
        "| Python memory held at the end, allocated after warm-up (`tracemalloc`) | "
        f"{sum(growth.values()) / 1024 / runs_traced:.1f} KiB per run in all; "
        f"the sandbox's ({', '.join(SANDBOX_PACKAGES)}): "
        f"{in_sandbox / 1024 / runs_traced:.2f} KiB per run |",
        f"\nBy package, the largest (over {runs_traced} runs):\n",
        "| package | KiB held | KiB per run |\n|---|---|---|",
    ]
    for package, size in growth.most_common(8):
        lines.append(f"| {package} | {size / 1024:.0f} | {size / 1024 / runs_traced:.2f} |")
    return lines


def _report(args: argparse.Namespace, seed: int, tally: Tally, elapsed: float) -> str:
    """The Markdown summary."""
    samples, durations = tally.samples, tally.durations
    first, last = samples[0], samples[-1]
    after_warmup = samples[1] if len(samples) > 2 else first
    lines: list[str] = []
    out = lines.append

    how = "one set of clients" if args.reuse_clients else "fresh clients per run"
    out(f"## Soak: {args.runs} runs, faults `{args.faults}`, seed {seed}, {how}\n")
    simulated = args.runs * args.sandbox_minutes_per_run / 60
    out(
        f"The sandbox clock advanced {args.sandbox_minutes_per_run:g} min a run "
        f"({simulated:.0f} h in all), so that it forgets what ECS forgets (stopped tasks "
        "after an hour, clientTokens after a day) while the soak runs.\n"
    )
    out("| measure | value |\n|---|---|")
    out(f"| wall time | {elapsed:.0f} s ({elapsed / max(args.runs, 1):.2f} s per run) |")
    if durations:
        out(
            f"| run time | median {statistics.median(durations):.2f} s, "
            f"p95 {sorted(durations)[int(len(durations) * 0.95) - 1]:.2f} s, "
            f"max {max(durations):.2f} s |"
        )
    out(f"| outcomes | {', '.join(f'{k} {v}' for k, v in sorted(tally.outcomes.items()))} |")
    out(f"| misplaced tasks | {len(tally.misplaced)} |")
    out(f"| lost outcomes (not succeeded with exit 0 and its log line) | {len(tally.lost)} |")
    errors = tally.errors
    out(f"| errors after retries (exit 7) | {sum(errors.values())} {dict(errors) or ''} |")
    out(f"| distinct tasks started | {len(tally.task_arns)} |")
    out(f"| AWS calls | {tally.calls} |")
    kinds = {k: v for k, v in tally.injected.items() if " " not in k}
    out(f"| faults injected | {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))} |")
    out(
        f"| RSS | {first[1] / 1024:.1f} MiB at start, {after_warmup[1] / 1024:.1f} MiB after "
        f"{after_warmup[0]} runs, {last[1] / 1024:.1f} MiB after {last[0]} runs |"
    )
    runs_traced = max(last[0] - after_warmup[0], 1)
    per_run = (last[1] - after_warmup[1]) / runs_traced
    out(
        "| RSS growth after warm-up (tracemalloc's own bookkeeping included) "
        f"| {per_run:.1f} KiB per run |"
    )
    out(f"| open files | {first[2]} at start, {' → '.join(str(s[2]) for s in samples[1:])} |")
    lines.extend(_growth_lines(tally.growth, runs_traced))
    out("\n| runs | RSS MiB | open files | elapsed s |\n|---|---|---|---|")
    for done, rss, fds, at in samples:
        out(f"| {done} | {rss / 1024:.1f} | {fds} | {at:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    args = _parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    started = time.monotonic()
    tally = Tally(started)
    _soak(args, seed, tally)
    report = _report(args, seed, tally, time.monotonic() - started)
    sys.stdout.write(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
    for problem in (tally.misplaced + tally.lost)[:20]:
        print(f"- {problem}", file=sys.stderr)
    samples = tally.samples
    after_warmup = samples[1] if len(samples) > 2 else samples[0]
    files_grew = samples[-1][2] > after_warmup[2]
    if files_grew:
        print("- open files grew after warm-up", file=sys.stderr)
    return 1 if tally.misplaced or tally.lost or tally.errors or files_grew else 0


if __name__ == "__main__":
    sys.exit(main())
