"""Pre-flight at fleet scale: what `run --dry-run`, `check`, `hosts --location` and a full
`run` ask of AWS with 100, 1,000 and 5,000 hosts in 50 locations, beside the approach before
issue 17 (describe the whole fleet, ask SSM for every host), measured in the same run.

Against the in-process sandbox (as bench/fanout_bench.py), which pages ListContainerInstances
at 100 and honours its `filter` as ECS does. The fleet is registered straight into the
sandbox's backends (`SandboxFixture.add_fleet`: no request, about a second for 5,000 hosts),
labelled loc00 ... loc49 in turn; the workload `scale` may run in loc07 only (a 50th of the
fleet). Every request the sandbox receives is counted (bench/calllog.py). Wall time is the
median of `--runs` rounds, measured in this process (the sandbox's own work included).

- `run --dry-run`: `Dispatcher.dry_run` (new: `dispatch.preflight`); before: `dispatch.check`
  of the one workload (every host described), as `dry_run` did;
- `check`: the same requests both ways (a diagnosis reads the whole fleet), so the difference
  is the text output: grouped by reason (new) or a row per host (before, now `--all-hosts`);
- `hosts --location loc07`: `hosts.list_hosts` (new: a filtered listing); before: every host
  described and named by SSM, then filtered here;
- a full `run` (`sh -c 'exit 0'`, waited on until it stopped, logs not followed): new, and with
  `dispatch.preflight` swapped for the old full-fleet pre-flight. The target counts the
  requests before RunTask (the pre-flight).

Targets (issue 17): ECS requests of the pre-flight at most 2 + ceil(compliant hosts / 100),
SSM requests only for the hosts shown (one DescribeInstanceInformation per 50).

    .venv/bin/python bench/scale_bench.py [--sizes 100,1000,5000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calllog import CallLog

LOCATIONS = [f"loc{i:02d}" for i in range(50)]
TARGET = "loc07"
WORKLOAD = "scale"
SIZES = (100, 1000, 5000)


def _map(sandbox: Any, workdir: Path) -> Any:
    from residency_cli.config import parse_config

    text = sandbox.config_path.read_text(encoding="utf-8")
    extra = "".join(f"  {name}: {{}}\n" for name in LOCATIONS)
    text = text.replace("\nlocations:\n", "\nlocations:\n" + extra, 1)
    text += f"  {WORKLOAD}:\n    task_definition: bench-scale\n    location: {TARGET}\n"
    path = workdir / "scale.yaml"
    path.write_text(text, encoding="utf-8")
    return parse_config(text, str(path))


# --- the approach before issue 17 (kept here, for the comparison) ------------------------


def _old_preflight(ecs: Any, ssm: Any, config: Any, name: str) -> Any:
    """Every host of the cluster described and named by SSM, then judged (`dispatch.check`,
    which `run` and `run --dry-run` called before issue 17)."""
    from residency_cli.dispatch import check

    return check(ecs, ssm, config, [name])[0]


def _old_hosts_location(clients: Any, config: Any, location: str) -> list[Any]:
    from residency_cli.hosts import (
        describe_container_instances,
        host_from_instance,
        managed_instance_hostnames,
    )

    instances = describe_container_instances(clients.ecs, config.cluster)
    names = managed_instance_hostnames(clients.ssm, (i.get("ec2InstanceId", "") for i in instances))
    hosts = [host_from_instance(i, config.location_attribute, names) for i in instances]
    return [h for h in hosts if h.location == location]


# --- the scenarios ------------------------------------------------------------------------


def _dry_run(clients: Any, config: Any, old: bool, tag: str) -> dict[str, Any]:
    import residency_cli.dispatch as dispatch

    with _preflight(old):
        plan = dispatch.Dispatcher.create(clients, config, journal=None).dry_run(
            WORKLOAD, dispatch.RunOptions(run_id=tag)
        )
    return {"ready": plan.check.ready, "hosts_shown": len(plan.check.hosts)}


def _check(clients: Any, config: Any, old: bool, tag: str) -> dict[str, Any]:
    from residency_cli.cli import render
    from residency_cli.cli.state import OutputFormat
    from residency_cli.dispatch import check
    from residency_cli.results import CheckList

    checks = CheckList(check(clients.ecs, clients.ssm, config, [WORKLOAD]), all_hosts=old)
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(io.StringIO()):
        render.render(checks, OutputFormat.text)
    return {"ready": checks.checks[0].ready, "output_lines": text.getvalue().count("\n")}


def _hosts(clients: Any, config: Any, old: bool, tag: str) -> dict[str, Any]:
    from residency_cli.hosts import list_hosts

    if old:
        found = _old_hosts_location(clients, config, TARGET)
    else:
        found = list_hosts(clients.ecs, clients.ssm, config, TARGET)
    return {"hosts_shown": len(found)}


def _run(clients: Any, config: Any, old: bool, tag: str) -> dict[str, Any]:
    import residency_cli.dispatch as dispatch

    with _preflight(old):
        result = dispatch.Dispatcher.create(clients, config, journal=None).run(
            WORKLOAD, dispatch.RunOptions(run_id=tag), follow=False, timeout=120
        )
    return {"outcome": result.outcome.value}


@contextlib.contextmanager
def _preflight(old: bool) -> Any:
    import residency_cli.dispatch as dispatch

    new = dispatch.preflight
    if old:
        dispatch.preflight = _old_preflight  # type: ignore[assignment]
    try:
        yield
    finally:
        dispatch.preflight = new


SCENARIOS: dict[str, Callable[[Any, Any, bool, str], dict[str, Any]]] = {
    "run --dry-run": _dry_run,
    "check": _check,
    "hosts --location": _hosts,
    "run": _run,
}


def _split(log: CallLog) -> tuple[Counter[str], Counter[str]]:
    """(every request, the requests before the first RunTask)."""
    everything = Counter(name for _, name in log.entries)
    sent = log.first("RunTask")
    before = Counter(name for when, name in log.entries if sent is None or when < sent)
    return everything, before


def _target(compliant: int) -> int:
    return 2 + math.ceil(compliant / 100)


def measure(sizes: list[int], runs: int) -> dict[str, Any]:
    from residency_cli.sandbox.testing import SandboxFixture, start_server

    log = CallLog().install()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        os.environ["RESIDENCY_STATE_DIR"] = str(workdir / "state")  # the runs' journal
        server = start_server(workdir)
        try:
            for size in sizes:
                sandbox = SandboxFixture(server).reset(label_hosts=True)
                config = _map(sandbox, workdir)
                sandbox.register_task_definition(
                    "bench-scale", ["sh", "-c", "exit 0"], cpu=16, memory=16
                )
                began = time.monotonic()
                sandbox.add_fleet(size, LOCATIONS)
                seeded = time.monotonic() - began
                compliant = sum(1 for i in range(size) if LOCATIONS[i % len(LOCATIONS)] == TARGET)
                clients = sandbox.clients()
                clients.ecs, clients.ssm, clients.sts  # noqa: B018 - made before any thread
                for scenario, function in SCENARIOS.items():
                    for approach in ("new", "before"):
                        walls, counted, detail = [], None, None
                        if size == sizes[0]:  # a first, unmeasured round: imports, caches
                            function(clients, config, approach == "before", f"warm-{approach}")
                        for index in range(runs):
                            log.clear()
                            start = time.monotonic()
                            detail = function(
                                clients, config, approach == "before", f"{approach}-{size}-{index}"
                            )
                            walls.append(time.monotonic() - start)
                            counted = _split(log)
                        assert counted is not None
                        every, before = counted
                        preflight = before if scenario == "run" else every
                        ecs = sum(v for k, v in preflight.items() if k.startswith("ecs:"))
                        ssm = sum(v for k, v in preflight.items() if k.startswith("ssm:"))
                        results.append(
                            {
                                "hosts": size,
                                "compliant": compliant,
                                "scenario": scenario,
                                "approach": approach,
                                "calls": dict(sorted(every.items())),
                                "calls_total": sum(every.values()),
                                "preflight_ecs": ecs,
                                "preflight_ssm": ssm,
                                "ecs_target": _target(compliant),
                                "wall_median": statistics.median(walls),
                                "walls": walls,
                                "detail": detail,
                                "seed_seconds": seeded,
                            }
                        )
                sandbox.close()
        finally:
            server.stop()
    return {"runs": runs, "sizes": sizes, "locations": len(LOCATIONS), "results": results}


def targets_met(result: dict[str, Any]) -> bool:
    """Every new pre-flight within the ECS target (`check`, the diagnosis, excepted)."""
    return all(
        r["preflight_ecs"] <= r["ecs_target"]
        for r in result["results"]
        if r["approach"] == "new" and r["scenario"] != "check"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = measure([int(s) for s in args.sizes.split(",")], args.runs)
    result["targets_met"] = targets_met(result)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in result["results"]:
        print(
            f"{r['hosts']:>5} hosts  {r['scenario']:<17} {r['approach']:<6} "
            f"ECS {r['preflight_ecs']:>4} (target {r['ecs_target']}) SSM {r['preflight_ssm']:>4} "
            f"all {r['calls_total']:>4}  {r['wall_median']:.3f} s  {r['detail']}"
        )
    print(f"targets met: {result['targets_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
