"""`audit`: prove that every task of a mapped workload ran where its data may be processed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state

if TYPE_CHECKING:
    from residency_cli.audit import AuditFinding


# Verdicts that are findings (audit exits 4), as the table shows them.
VERDICT_TEXT = {
    "violation": "VIOLATION",
    "guard-overridden": "GUARD OVERRIDDEN",
    "blocked": "BLOCKED AT THE DATA",
}


FINDING_WORDS = {
    "violation": "outside their allowed locations",
    "guard-overridden": "with overrides that widen the data guard",
    "blocked": "blocked at the data (nothing read)",
}


def render_findings(findings: list[AuditFinding]) -> None:
    rows = [
        [
            f.task_id,
            f.workload,
            ", ".join(f.allowed),
            f.host,
            f.location_then,
            f.location_now,
            f.status,
            f.verdict if f.reason is None else f"{VERDICT_TEXT[f.verdict]}: {f.reason}",
        ]
        for f in findings
    ]
    render.table(
        "Residency audit",
        ["task", "workload", "allowed", "host", "then", "now", "status", "verdict"],
        rows,
    )
    counts = {v: sum(1 for f in findings if f.verdict == v) for v in VERDICT_TEXT}
    if any(counts.values()):
        shown = ", ".join(
            f"{n} {'violation(s)' if v == 'violation' else VERDICT_TEXT[v].lower()}"
            for v, n in counts.items()
            if n
        )
        render.show(f"{len(findings)} task(s) audited, [red]{shown}[/red]")
    else:
        render.show(f"{len(findings)} task(s) audited, [green]no violation[/green]")


def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", help="Only tasks started this recently (1h, 30m)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Was every task of a mapped workload on a host its workload allows? Exit 4 if not.

    Also says which tasks the jobs' data guard blocked at the data (nothing read) and which
    had overrides telling the guard to allow other locations (a bypass)."""
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
    findings = run_audit(clients.ecs, clients.ssm, config, since_seconds=window)
    if output is OutputFormat.json:
        render.emit_json(findings)
    else:
        render_findings(findings)
    # Exit 4 for every finding: a task the guard blocked was still dispatched where (or how)
    # its workload may not run; the verdict says whether its data was read.
    groups = []
    for verdict, words in FINDING_WORDS.items():
        found = [f for f in findings if f.verdict == verdict]
        if found:
            groups.append(
                f"{len(found)} task(s) {words}: "
                + "; ".join(f"{f.task_id} ({f.workload}) {f.reason}" for f in found)
            )
    if groups:
        raise ViolationError("; ".join(groups))
