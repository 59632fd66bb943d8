"""`residency journal show|verify`: the hash-chained record of every `run`, in a local
file or on S3 (docs/governance.md, "The dispatch journal").

Exit codes: `show` 0 (2 when the journal cannot be read); `verify` 0 intact or no journal yet,
1 when it found a problem (one `error:` line per problem on stderr), 2 when the journal
cannot be read (a directory, no permission; on S3: a missing bucket, access denied); other
AWS errors of an S3 journal are exit 7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state

if TYPE_CHECKING:
    from residency_cli.journal import JournalStore

journal_app = typer.Typer(
    help="The dispatch journal: who ran what, where, and how it ended.",
    no_args_is_help=True,
)

_PATH_KEY = "residency.journal"
# A deque keeps the last N records: N must fit a C ssize_t; a billion is past any journal.
MAX_LIMIT = 1_000_000_000


@journal_app.callback()
def journal(
    ctx: typer.Context,
    path: str | None = typer.Option(
        None,
        "--journal",
        metavar="PATH|s3://BUCKET/PREFIX",
        help="The journal (default: the global --journal, else $RESIDENCY_JOURNAL, else the "
        "map's journal:, else journal.jsonl in the state directory).",
        show_default=False,
    ),
) -> None:
    """The dispatch journal: who ran what, where, and how it ended."""
    ctx.meta[_PATH_KEY] = path


def journal_store(ctx: typer.Context) -> JournalStore:
    return app_state(ctx).journal_store(ctx.meta.get(_PATH_KEY))


@journal_app.command("show")
def show(
    ctx: typer.Context,
    workload: str | None = typer.Option(
        None, "--workload", "-w", metavar="WORKLOAD", help="Only this workload."
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        "-n",
        metavar="N",
        min=0,
        max=MAX_LIMIT,
        help="Only the last N records (after --workload).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List the journal's records, oldest first. Prints nothing when there are none."""
    from residency_cli.journal import JournalRecords

    records = journal_store(ctx).read(workload=workload, limit=limit)
    render.render(JournalRecords(records), output)


@journal_app.command("verify")
def verify(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Check that no record was edited, removed or reordered. Exit 1 if one was."""
    from residency_cli.journal import JournalCorruptError

    store = journal_store(ctx)
    report = store.verify()
    path = store.location
    if not report.ok:
        if output is OutputFormat.json:
            render.render(report, output)
        raise JournalCorruptError(
            "\n".join(
                [
                    f"journal {path} is not intact: {len(report.problems)} problem(s) "
                    f"in {report.records} record(s)",
                    *report.problems,
                ]
            )
        )
    render.render(report, output)
