"""`hosts`, `register-host`, `unregister-host`: where each host is, and relabelling it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import DRY_RUN_OPTION, OUTPUT_OPTION, OutputFormat, app_state

if TYPE_CHECKING:
    from residency_cli.results import Host, LabelChange

hosts_app = typer.Typer(help="The cluster's hosts and their locations.", no_args_is_help=False)

HOST_ARGUMENT: Any = typer.Argument(
    ...,
    metavar="HOST",
    help="Container-instance ARN or id, mi-/i- instance id, or hostname.",
    show_default=False,
)


def render_hosts(hosts: list[Host], cluster: str) -> None:
    if not hosts:
        render.note(f"cluster {cluster} has no container instances (that match)")
    rows = [
        [
            h.container_instance_id,
            h.instance_id,
            h.hostname,
            h.location,
            h.status,
            render.yes_no(h.agent_connected),
            h.running_tasks,
            h.cpu_available,
            h.memory_available,
        ]
        for h in hosts
    ]
    columns = [
        "id",
        "instance",
        "hostname",
        "location",
        "status",
        "agent",
        "tasks",
        "cpu",
        "memory",
    ]
    render.table(f"Hosts of {cluster}", columns, rows)


@hosts_app.callback(invoke_without_command=True)
def hosts(
    ctx: typer.Context,
    location: str | None = typer.Option(
        None, "--location", "-l", help="Only hosts of this location."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Container instances of the cluster: location, status, agent, tasks, CPU and memory."""
    if ctx.invoked_subcommand is not None:
        return
    from residency_cli.hosts import list_hosts

    state = app_state(ctx)
    config = state.config()
    clients = state.clients()
    found = list_hosts(clients.ecs, clients.ssm, config, location)
    if output is OutputFormat.json:
        render.emit_json(found)
    else:
        render_hosts(found, config.cluster)


def render_change(change: LabelChange, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        render.emit_json(change)
        return
    host = change.host.label
    prefix = "would " if change.dry_run else ""
    attribute = change.attribute
    if change.action == "unchanged":
        state = f"{attribute}={change.location}" if change.location else f"no {attribute}"
        render.show(f"{host} already has {state}; nothing to do", markup=False)
        return
    if change.action == "remove":
        verb = "remove" if change.dry_run else "removed"
        render.show(f"{prefix}{verb} {attribute}={change.previous} from {host}", markup=False)
    else:
        verb = "set"
        moved = f" (was {change.previous})" if change.previous else ""
        render.show(f"{prefix}{verb} {attribute}={change.location} on {host}{moved}", markup=False)
    if change.dry_run and change.request is not None:
        render.note(
            "request (ECS " + ("PutAttributes" if change.location else "DeleteAttributes") + "):"
        )
        render.emit_json(change.request)


def register_host(
    ctx: typer.Context,
    host: str = HOST_ARGUMENT,
    location: str = typer.Option(..., "--location", "-l", help="A location declared in the map."),
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
    render_change(change, output)


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
    render_change(change, output)


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
    from residency_cli.hosts import apply_sync, check_sync

    state = app_state(ctx)
    config = state.config()
    clients = state.clients()
    plan = check_sync(clients.ecs, clients.ssm, config, force=force)
    if output is OutputFormat.json:
        if not dry_run:
            plan = apply_sync(clients.ecs, config, plan)
        render.emit_json(plan)
        return
    rows = [[s.action, s.host.label, s.previous, s.location, s.declared_as] for s in plan.steps]
    render.table("Plan", ["action", "host", "from", "to", "declared as"], rows)
    if plan.unchanged:
        render.show(f"already right: {', '.join(plan.unchanged)}", markup=False)
    if not plan.steps:
        render.show("the cluster's labels already match the map", markup=False)
    elif dry_run:
        render.show(f"dry run: {len(plan.steps)} change(s) planned, nothing changed", markup=False)
    else:
        apply_sync(clients.ecs, config, plan)
        render.show(f"applied {len(plan.steps)} change(s)", markup=False)
