"""`logs`: a task's CloudWatch log events, read to the end or followed until the task stops."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state

if TYPE_CHECKING:
    from residency_cli.logs import LogStream

TASK_ARGUMENT: Any = typer.Argument(
    ..., help="Task id or ARN in the map's cluster.", show_default=False, metavar="TASK"
)


def _since_ms(since: str | None) -> int | None:
    if since is None:
        return None
    from residency_cli.durations import parse_duration
    from residency_cli.errors import UsageError

    try:
        seconds = parse_duration(since)
    except ValueError as problem:
        raise UsageError(f"--since: {problem}") from None
    return int((time.time() - seconds) * 1000)


def _note_missing(stream: LogStream) -> None:
    render.note(
        f"log stream {stream.stream} does not exist in group {stream.group} "
        f"(container {stream.container} has written nothing yet)"
    )


def logs(
    ctx: typer.Context,
    task: str = TASK_ARGUMENT,
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Keep reading until the task has stopped and every event has been read.",
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only events from this long ago on (90s, 10m, 1h).", metavar="DUR"
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The task's CloudWatch log events (group and stream from its awslogs options)."""
    from residency_cli.logs import logs_client_for, read_logs, tail_task, task_streams

    since_ms = _since_ms(since)
    state = app_state(ctx)
    config = state.config()
    clients = state.clients()
    found, streams = task_streams(clients.ecs, config.cluster, task)
    logs_client = logs_client_for(clients, streams)
    printer = render.LogPrinter(
        json_lines=output is OutputFormat.json,
        show_container=len({s.container for s in streams}) > 1,
    )
    if follow:
        result = tail_task(
            clients.ecs,
            logs_client,
            config.cluster,
            str(found["taskArn"]),
            streams,
            on_event=printer,
            start_time_ms=since_ms,
        )
        for stream in result.missing_streams:
            _note_missing(stream)
        if result.drain_complete is False:
            render.note("stopped reading: the log stream was still growing 30 s after the task")
    else:
        for event in read_logs(logs_client, streams, since_ms=since_ms, on_missing=_note_missing):
            printer(event)
    if printer.count == 0 and output is OutputFormat.text:
        render.note("no log events" + (f" in the last {since}" if since else ""))
