"""`iam-policy`: the least-privilege IAM policy for this map, as one JSON document."""

from __future__ import annotations

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state


def iam_policy(
    ctx: typer.Context,
    account_id: str = typer.Option(
        "*", "--account-id", metavar="ID", help="AWS account id the ARNs name (default: any)."
    ),
    log_groups: list[str] = typer.Option(
        [],
        "--log-group",
        metavar="[REGION:]NAME",
        help="[REGION:]NAME of an awslogs group the task definitions use (repeatable); "
        "default: any group of the account.",
    ),
    pass_roles: list[str] = typer.Option(
        [],
        "--pass-role",
        metavar="ROLE",
        help="Execution/task role (name or ARN) the task definitions pass (repeatable); "
        "default: any role, to ecs-tasks.amazonaws.com only.",
    ),
    activation: bool = typer.Option(
        True, "--activation/--no-activation", help="Include what `residency activate` needs."
    ),
    activation_role: str = typer.Option(
        "ecsAnywhereRole",
        "--activation-role",
        metavar="ROLE",
        help="The role `residency activate --role` passes.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Print the IAM policy an operator needs for everything residency does with this map
    (and with its journal, when that is on S3)."""
    from residency_cli.iam import LogGroup, build_policy

    state = app_state(ctx)
    config = state.config()
    result = build_policy(
        config,
        account_id=account_id,
        region=state.region,
        log_groups=[LogGroup.parse(text) for text in log_groups],
        pass_roles=pass_roles,
        activation=activation,
        activation_role=activation_role,
        journal=state.journal_location(),
    )
    # Both formats print the policy document itself, ready for `aws iam create-policy
    # --policy-document file://...`; text mode adds the notes (on stderr).
    render.emit_json(result.document)
    if output is OutputFormat.text:
        for note in result.notes:
            render.note(f"note: {note}")
