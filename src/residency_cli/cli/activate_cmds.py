"""`activate`: onboard new on-prem hosts of a location, labelled before they join."""

from __future__ import annotations

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state


def activate(
    ctx: typer.Context,
    location: str = typer.Option(
        ..., "--location", "-l", metavar="LOCATION", help="A location declared in the map."
    ),
    count: int = typer.Option(
        1, "--count", metavar="N", help="How many hosts may register (1-1000)."
    ),
    expires: str = typer.Option(
        "24h", "--expires", metavar="DUR", help="Valid for this long (at most 30d)."
    ),
    role: str = typer.Option(
        "ecsAnywhereRole", "--role", metavar="ROLE", help="IAM role the hosts' SSM agent assumes."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create an SSM activation and print the commands that join a host, already labelled."""
    from residency_cli.activation import create_activation
    from residency_cli.durations import parse_duration
    from residency_cli.errors import UsageError

    state = app_state(ctx)
    config = state.config()
    config.require_location(location)
    try:
        seconds = parse_duration(expires)
    except ValueError as error:
        raise UsageError(f"--expires: {error}") from None
    clients = state.clients()
    activation = create_activation(
        clients.ssm,
        config,
        location,
        region=clients.region,
        count=count,
        expires_seconds=seconds,
        role=role,
        sandbox=state.sandbox,
    )
    render.render(activation, output)
    if config.hosts:
        # The inventory is the truth: a host it does not name loses its label at `hosts sync`.
        render.note(
            f"{config.source} declares its hosts: add each new host under hosts: as "
            f"`  HOSTNAME: {location}` once it has joined (`residency hosts sync` refuses to "
            "leave the map and the cluster disagreeing)"
        )
