"""`audit`: prove that every task of a mapped workload ran where its data may be processed."""

from __future__ import annotations

from typing import Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state


def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", help="Only tasks started this recently (1h, 30m)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Was every task of a mapped workload on a host its workload allows? Exit 4 if not."""
    from residency_cli.audit import AuditReport
    from residency_cli.audit import audit as run_audit
    from residency_cli.durations import parse_duration
    from residency_cli.errors import UsageError, ViolationError

    window: Any = None
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as error:
            raise UsageError(f"--since: {error}") from None
    state = app_state(ctx)
    config = state.config()
    clients = state.clients()
    report = AuditReport(
        run_audit(
            clients.ecs,
            clients.ssm,
            config,
            since_seconds=window,
            recorded=_recorded_placements(),
        )
    )
    render.render(report, output)
    violations = report.violations
    if violations:
        raise ViolationError(
            f"{len(violations)} task(s) outside their allowed locations: "
            + "; ".join(f"{f.task_id} ({f.workload}) {f.reason}" for f in violations)
        )


def _recorded_placements() -> dict[str, str]:
    """Where the journal says each task ran (an unreadable journal: nothing, with a note)."""
    from residency_cli.journal import JournalError, default_journal_path, recorded_placements

    try:
        return recorded_placements(default_journal_path())
    except JournalError as error:
        render.note(f"warning: audit could not read the journal: {error}")
        return {}
