"""`residency demo`: the whole story on a fresh sandbox it starts and stops itself.

ACME keeps US employees' data in New York and EU data in Frankfurt. The demo labels the two
hosts by hostname, checks both workloads, runs them (each lands on its own site's host and
writes to its own region's bucket), shows where each ran and what it wrote, and audits.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from residency_cli.cli import render
from residency_cli.cli.state import OutputFormat


def _step(number: int, title: str) -> None:
    render.show(f"\n[bold cyan]── {number}. {title}[/bold cyan]")


def demo() -> None:
    """Run the whole story on a fresh local sandbox (starts and stops it itself)."""
    from residency_cli.audit import AuditReport, audit
    from residency_cli.aws import Clients
    from residency_cli.dispatch import Dispatcher, RunOptions, check, new_run_id
    from residency_cli.errors import ResidencyError
    from residency_cli.hosts import list_hosts, register_host
    from residency_cli.results import CheckList, HostList
    from residency_cli.sandbox.embedded import embedded_sandbox
    from residency_cli.sandbox.seed import EXAMPLE_MAP

    started = time.monotonic()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="residency-demo-") as workdir:
        render.note("starting a local sandbox (127.0.0.1 only, no AWS account needed)…")
        with embedded_sandbox(EXAMPLE_MAP, Path(workdir)) as box:
            config = box.config
            clients = Clients(box.settings())
            render.show(
                f"sandbox at {box.endpoint}: cluster [bold]{config.cluster}[/bold], "
                f"map {EXAMPLE_MAP}"
            )

            _step(1, "The hosts, as they joined the cluster: no location yet")
            text = OutputFormat.text
            render.render(
                HostList(config.cluster, list_hosts(clients.ecs, clients.ssm, config)), text
            )

            _step(2, "Label each host by hostname (residency register-host HOST --location LOC)")
            for hostname, location in config.hosts.items():
                change = register_host(clients.ecs, clients.ssm, config, hostname, location)
                render.render(change, text)
            render.render(
                HostList(config.cluster, list_hosts(clients.ecs, clients.ssm, config)), text
            )

            _step(3, "Pre-flight every workload (residency check)")
            checks = CheckList(check(clients.ecs, clients.ssm, config))
            render.render(checks, text)
            failures += [f"check {name}" for name in checks.not_ready]

            for number, name in enumerate(config.workloads, start=4):
                allowed = ", ".join(config.workloads[name].locations)
                _step(number, f"residency run {name}  (allowed: {allowed})")
                observer = render.ConsoleObserver(text)
                dispatcher = Dispatcher.create(clients, config, observer=observer)
                try:
                    result = dispatcher.run(name, RunOptions(run_id=new_run_id()))
                finally:
                    observer.close()
                render.render(result, text)
                if result.outcome != "succeeded":
                    failures.append(f"run {name}: {result.outcome}")

            _step(len(config.workloads) + 4, "What each job wrote, and where")
            for bucket, region in sorted(box.seeded.buckets.items()):
                s3 = clients.in_region(region).s3
                listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                keys = ", ".join(f"{o['Key']} ({o['Size']} bytes)" for o in listed) or "nothing"
                render.show(f"s3://{bucket} (region {region}): {keys}", markup=False)
                if not listed:
                    failures.append(f"no report in s3://{bucket}")

            _step(len(config.workloads) + 5, "Audit: did every task run where its data lives?")
            report = AuditReport(audit(clients.ecs, clients.ssm, config))
            render.render(report, text)
            failures += [f"audit: {f.task_id} {f.reason}" for f in report.violations]
        render.note(f"sandbox stopped; demo took {time.monotonic() - started:.1f} s")
    if failures:
        raise ResidencyError("the demo failed: " + "; ".join(failures))
    render.show("[green]✓ every job ran where its data lives[/green]")
