"""`residency sandbox up|down|status|env|join`: the local stand-in for AWS (CONTRACT.md
section 5).

Exit codes: `up` 0 started, 2 already running / port in use / bad map; `status` 0 running,
3 not running (like `systemctl status`); `env` 7 when no sandbox runs (as `--sandbox`);
`down` 0 whether or not one was running (it deletes the sandbox's files unless `--keep`);
`join` 0 joined, 2 refused (bad or used-up activation, hostname taken, bad attributes,
a label that contradicts the activation's location), 7 when no sandbox runs.
"""

from __future__ import annotations

from typing import Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state

sandbox_app = typer.Typer(
    help="The local sandbox: ECS, SSM, CloudWatch Logs and S3 on 127.0.0.1, no AWS account.",
    no_args_is_help=True,
)

STATUS_NOT_RUNNING = 3

# The variable lets a script (or the README quick-start test) move every `sandbox up` off the
# default port without editing the commands it runs.
PORT_OPTION: Any = typer.Option(
    None,
    "--port",
    "-p",
    envvar="RESIDENCY_SANDBOX_PORT",
    metavar="PORT",
    help="Port on 127.0.0.1 (default 4599; 0 picks a free one).",
)


@sandbox_app.command("up")
def up(
    ctx: typer.Context,
    port: int | None = PORT_OPTION,
    label_hosts: bool = typer.Option(
        False, "--label-hosts", help="Label the hosts with the map's hosts: locations."
    ),
    faults: str | None = typer.Option(
        None,
        "--faults",
        metavar="SPEC",
        help="Fail a share of requests, e.g. throttle=0.2,error=0.05,reset=0.05,slow=0.1 "
        "(slow_seconds=S; per operation throttle:RunTask=0.5; S3 only when named: "
        "throttle:s3=0.1).",
    ),
    fault_seed: int | None = typer.Option(
        None, "--fault-seed", metavar="N", help="Seed of the faults (default: random, shown)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Start the sandbox in the background, seeded from the map (or the ACME example)."""
    from residency_cli.sandbox.control import DEFAULT_PORT, SandboxStarted
    from residency_cli.sandbox.control import up as start
    from residency_cli.sandbox.seed import resolve_map

    map_path = resolve_map(app_state(ctx).config_path)
    result = start(
        map_path,
        DEFAULT_PORT if port is None else port,
        label_hosts=label_hosts,
        faults=faults,
        fault_seed=fault_seed,
    )
    render.render(SandboxStarted(result), output)


@sandbox_app.command("down")
def down(
    keep: bool = typer.Option(
        False,
        "--keep",
        help="Keep the sandbox's files (its log, the simulated hosts' disks, task folders).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Stop the sandbox and every task process it runs, and delete its files (unless --keep)."""
    from residency_cli.sandbox.control import down as stop

    render.render(stop(keep=keep), output)


@sandbox_app.command("status")
def status(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Is the sandbox running, and where? Exit 0 when it runs, 3 when it does not."""
    from residency_cli.sandbox.control import status as read

    result = read()
    render.render(result, output)
    if not result.running:
        raise typer.Exit(STATUS_NOT_RUNNING)


@sandbox_app.command("env")
def env(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Print `export` lines that point other AWS clients at the sandbox."""
    from residency_cli.sandbox.control import environment, export_lines

    variables = environment()
    if output is OutputFormat.json:
        render.emit_json(variables)
        return
    for line in export_lines(variables):
        render.raw(line)


@sandbox_app.command("join")
def join(
    hostname: str = typer.Argument(
        ..., metavar="HOSTNAME", help="The new host's name (its SSM ComputerName)."
    ),
    activation_id: str = typer.Option(
        ..., "--activation-id", help="ActivationId from `residency activate`."
    ),
    activation_code: str = typer.Option(
        ..., "--activation-code", help="ActivationCode from `residency activate`."
    ),
    attributes: str | None = typer.Option(
        None,
        "--attributes",
        help='ECS_INSTANCE_ATTRIBUTES as JSON, e.g. \'{"location":"newyork"}\'.',
    ),
    region: str | None = typer.Option(
        None, "--region", help="Region of the activation (default: the sandbox's)."
    ),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Cluster to join (default: the sandbox's map's cluster)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """A new simulated host joins the sandbox with an SSM activation, already labelled (what
    the ECS Anywhere install script does on a real host). Exit 2 when refused."""
    from residency_cli.sandbox.control import join as join_host
    from residency_cli.sandbox.control import parse_attributes

    labels = parse_attributes(attributes)
    result = join_host(
        hostname,
        activation_id,
        activation_code,
        attributes=labels,
        region=region,
        cluster=cluster,
    )
    render.render(result, output)
