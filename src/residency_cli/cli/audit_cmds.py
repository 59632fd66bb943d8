"""`audit`: prove that every task of a mapped workload ran where its data may be processed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state

if TYPE_CHECKING:
    from residency_cli.journal import JournalStore

# What each kind of finding means, for the one-line error (audit exits 4 for each).
FINDING_WORDS = {
    "violation": "outside their allowed locations",
    "guard-overridden": "with overrides that widen the data guard",
    "blocked": "blocked at the data (nothing read)",
}


def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", metavar="DUR", help="Only tasks started this recently (1h, 30m)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Was every task of a mapped workload on a host its workload allows? Exit 4 if not.

    Also says which tasks the jobs' data guard blocked at the data (nothing read) and which
    had overrides telling the guard to allow other locations (a bypass)."""
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
            recorded=_recorded_placements(state.journal_store()),
        )
    )
    render.render(report, output)
    # Exit 4 for every finding: a task the guard blocked was still dispatched where (or how)
    # its workload may not run; the verdict says whether its data was read.
    groups = []
    for verdict, words in FINDING_WORDS.items():
        found = [f for f in report.findings if f.verdict == verdict]
        if found:
            groups.append(
                f"{len(found)} task(s) {words}: "
                + "; ".join(f"{f.task_id} ({f.workload}) {f.reason}" for f in found)
            )
    if groups:
        raise ViolationError("; ".join(groups))


def _recorded_placements(store: JournalStore) -> dict[str, str]:
    """Where the journal says each task ran (an unreadable journal: nothing, with a note)."""
    from residency_cli.errors import ResidencyError
    from residency_cli.journal import recorded_placements

    try:
        return recorded_placements(store)
    except ResidencyError as error:  # a JournalError, or an AWS error of an S3 journal
        render.note(f"warning: audit could not read the journal: {error}")
        return {}
