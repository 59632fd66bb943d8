"""`hosts`, `register-host`, `unregister-host`: where each host is, and relabelling it."""

from __future__ import annotations

from typing import Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import DRY_RUN_OPTION, OUTPUT_OPTION, OutputFormat, app_state

hosts_app = typer.Typer(help="The cluster's hosts and their locations.", no_args_is_help=False)

HOST_ARGUMENT: Any = typer.Argument(
    ...,
    metavar="HOST",
    help="Container-instance ARN or id, mi-/i- instance id, or hostname.",
    show_default=False,
)


@hosts_app.callback(invoke_without_command=True)
def hosts(
    ctx: typer.Context,
    location: str | None = typer.Option(
        None, "--location", "-l", metavar="LOCATION", help="Only hosts of this location."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Container instances of the cluster: location, status, agent, tasks, CPU and memory."""
    if ctx.invoked_subcommand is not None:
        return
    from residency_cli.hosts import list_hosts
    from residency_cli.results import HostList

    state = app_state(ctx)
    config = state.config()
    clients = state.clients()
    found = list_hosts(clients.ecs, clients.ssm, config, location)
    render.render(HostList(config.cluster, found), output)


def register_host(
    ctx: typer.Context,
    host: str = HOST_ARGUMENT,
    location: str = typer.Option(
        ..., "--location", "-l", metavar="LOCATION", help="A location declared in the map."
    ),
    force: bool = typer.Option(False, "--force", help="Move a host that carries another location."),
    dry_run: bool = DRY_RUN_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Put the location attribute on one host."""
    from residency_cli.hosts import register_host as register

    state = app_state(ctx)
    config = state.config()
    config.require_location(location)
    clients = state.clients()
    change = register(
        clients.ecs, clients.ssm, config, host, location, force=force, dry_run=dry_run
    )
    render.render(change, output)


def unregister_host(
    ctx: typer.Context,
    host: str = HOST_ARGUMENT,
    dry_run: bool = DRY_RUN_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Remove the location attribute from one host."""
    from residency_cli.hosts import unregister_host as unregister

    state = app_state(ctx)
    clients = state.clients()
    change = unregister(clients.ecs, clients.ssm, state.config(), host, dry_run=dry_run)
    render.render(change, output)


@hosts_app.command("sync")
def sync(
    ctx: typer.Context,
    dry_run: bool = DRY_RUN_OPTION,
    force: bool = typer.Option(
        False, "--force", help="Strip the last host of a location its workloads still need."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Make the cluster's labels match the map's hosts: section (plan first)."""
    from residency_cli.hosts import SyncPlan, apply_sync, check_sync

    state = app_state(ctx)
    config = state.config()
    clients = state.clients()
    plan = check_sync(clients.ecs, clients.ssm, config, force=force)
    if dry_run:
        plan = SyncPlan(plan.steps, plan.unchanged, dry_run=True, applied=False)
    elif output is OutputFormat.text:
        render.render(plan, output)  # the plan first, then what was applied
    if not dry_run and plan.steps:
        plan = apply_sync(clients.ecs, config, plan)
    render.render(plan, output)
