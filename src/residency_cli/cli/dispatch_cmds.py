"""`check`, `run`, `attach`, `tasks`: dispatch with placement verified, and how it ended."""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import DRY_RUN_OPTION, OUTPUT_OPTION, AppState, OutputFormat, app_state

if TYPE_CHECKING:
    from rich.status import Status

    from residency_cli.aws import Clients
    from residency_cli.config import Config
    from residency_cli.dispatch import Dispatcher
    from residency_cli.logs import LogEvent
    from residency_cli.results import PlacedHost, RunResult, WorkloadCheck


class ExitCodeMode(str, enum.Enum):
    residency = "residency"
    container = "container"


class TaskStatusFilter(str, enum.Enum):
    running = "running"
    stopped = "stopped"
    all = "all"


FOLLOW_OPTION: Any = typer.Option(True, "--follow/--no-follow", help="Follow the task's logs.")
TIMEOUT_OPTION: Any = typer.Option(
    None,
    "--timeout",
    help="Give up waiting after this long (30s, 10m, 1h); the task keeps running.",
)


def render_checks(checks: list[WorkloadCheck]) -> None:
    for result in checks:
        mark = "[green]ready[/green]" if result.ready else "[red]not ready[/red]"
        render.show(
            f"{render.plain(result.workload)}: {mark} — {render.plain(result.task_definition)}, "
            f"placement `{render.plain(result.expression)}`, "
            f"needs {result.cpu} CPU / {result.memory} MiB"
        )
        for problem in result.problems:
            render.show(f"  [red]✗[/red] {render.plain(problem)}")
        guard = result.guard  # a warning, never a refusal: `run` passes the map's locations
        if guard is not None and guard.warning:
            render.show(f"  [yellow]![/yellow] data guard: {render.plain(guard.warning)}")
        elif guard is not None:
            enforced = render.plain(", ".join(guard.enforced or []))
            render.show(f"  [green]✓[/green] data guard: enforces {enforced}, as the map")
        rows = [
            [
                v.host.label,
                v.host.location,
                "yes" if v.compliant else "no",
                "; ".join(v.reasons) or "-",
            ]
            for v in result.hosts
        ]
        if rows:
            render.table(None, ["host", "location", "compliant", "why not"], rows)
        elif not result.problems:
            render.show("  [red]✗[/red] the cluster has no container instances")


def check(
    ctx: typer.Context,
    workloads: list[str] = typer.Argument(
        None, metavar="WORKLOAD", help="Workloads to check (default: all)."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Pre-flight workloads: task definition, log configuration, a compliant host."""
    from residency_cli.dispatch import check as run_check
    from residency_cli.errors import RefusedError

    state = app_state(ctx)
    config = state.config()
    for name in workloads or []:
        config.workload(name)
    clients = state.clients()
    checks = run_check(clients.ecs, clients.ssm, config, workloads or [])
    if output is OutputFormat.json:
        render.emit_json(checks)
    else:
        render_checks(checks)
    not_ready = [c.workload for c in checks if not c.ready]
    if not_ready:
        raise RefusedError(f"not ready: {', '.join(not_ready)}")


class ConsoleObserver:
    """Status changes, placement and log lines as they happen: a live spinner on a terminal,
    one line per change otherwise. Log lines go to stdout in text mode (they are the job's
    output) and to stderr with --output json (stdout holds the one JSON document)."""

    def __init__(self, output: OutputFormat) -> None:
        self.output = output
        self.err = render.stderr()
        self.live: Status | None = None
        # Text mode: the job's output on stdout; JSON mode: stdout holds the one document.
        self.printer = render.LogPrinter(
            json_lines=False, show_container=True, to_stderr=output is OutputFormat.json
        )
        if self.err.is_terminal and render.stdout().is_terminal:
            self.live = self.err.status("dispatching…")
            self.live.start()

    @staticmethod
    def _short(arn: str) -> str:
        return arn.rsplit("/", 1)[-1]

    def status(self, task: Mapping[str, Any], previous: str | None) -> None:
        current = task.get("lastStatus")
        line = f"task {self._short(str(task.get('taskArn')))}: {previous or 'new'} → {current}"
        if self.live is not None:
            self.live.update(line)
        self.err.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}")

    def placed(self, task_arn: str, host: PlacedHost, allowed: bool) -> None:
        where = host.hostname or host.instance_id or host.container_instance_arn
        verdict = "[green]allowed[/green]" if allowed else "[red]NOT ALLOWED — stopping it[/red]"
        location = host.location or "no location"
        placed = render.plain(f"task {self._short(task_arn)} placed on {where} in {location}")
        self.err.print(f"{placed}: {verdict}")

    def log(self, event: LogEvent) -> None:
        if self.live is not None:
            # Through the live console, so the spinner line is redrawn below the log line.
            line = self.printer.line(event)
            self.err.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            self.printer(event)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def console_dispatcher(
    clients: Clients, config: Config, output: OutputFormat
) -> tuple[Dispatcher, ConsoleObserver]:
    """A Dispatcher with real time that reports to the console (also used by `demo`)."""
    from residency_cli.dispatch import Dispatcher
    from residency_cli.logs import logs_client_for

    observer = ConsoleObserver(output)
    dispatcher = Dispatcher(
        clients.ecs,
        clients.ssm,
        config,
        sleep=time.sleep,
        now=time.monotonic,
        observer=observer,
        logs_client=lambda streams: logs_client_for(clients, streams),
        region=clients.region,
    )
    return dispatcher, observer


def _timeout(value: str | None, default: float) -> float:
    from residency_cli.durations import parse_duration
    from residency_cli.errors import UsageError

    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as error:
        raise UsageError(f"--timeout: {error}") from None


def _finish(result: RunResult, output: OutputFormat, exit_mode: ExitCodeMode) -> None:
    """Render the outcome, then end with its exit code (CONTRACT.md section 6)."""
    from residency_cli.errors import OUTCOME_ERRORS

    if output is OutputFormat.json:
        render.emit_json(result)
    else:
        render_result(result)
    primary = result.primary
    error = OUTCOME_ERRORS[result.outcome]
    if error is None:
        return
    task = primary.task_id
    messages = {
        "failed": f"{primary.workload} failed: its container exited with code "
        f"{primary.exit_code} (task {task})",
        "refused": f"refused to dispatch {primary.workload}: {primary.message or result.message}",
        "violation": "residency violation: "
        f"{(primary.message or '').removeprefix('residency: ')} (task {task} was stopped)",
        "not_started": f"task {task} never ran to completion: "
        + ": ".join(filter(None, [primary.stop_code, primary.stopped_reason or "no reason given"])),
        "timeout": f"timed out waiting for task {task}; it is left running: "
        f"residency attach {task}",
        "interrupted": f"interrupted; task {task} is left running: residency attach {task}",
    }
    exit_code = None
    if result.outcome == "failed" and exit_mode is ExitCodeMode.container and primary.exit_code:
        exit_code = int(primary.exit_code)
    raise error(messages[result.outcome], exit_code=exit_code)


def render_result(result: RunResult) -> None:
    for task in result.tasks:
        host = task.host
        where = ""
        if host is not None:
            name = host.hostname or host.instance_id or host.container_instance_arn
            where = render.plain(f" on {name} ({host.location or 'no location'})")
        colour = {"succeeded": "green", "dispatched": "cyan"}.get(task.outcome, "red")
        exit_text = (
            f", exit code {task.exit_code}"
            if task.exit_code is not None and task.status == "STOPPED"
            else ""
        )
        render.show(f"[{colour}]{task.outcome}[/{colour}] {task.workload}{where}{exit_text}")
        if task.task_id:
            render.show(f"  task {task.task_id}  run id {task.run_id or '-'}", markup=False)
            if task.outcome == "dispatched":
                render.show(
                    f"  arn {task.task_arn}\n  follow it: residency attach {task.task_id}",
                    markup=False,
                )
        if task.log_stream:
            render.show(f"  logs {task.log_group} {task.log_stream}", markup=False)


def run(
    ctx: typer.Context,
    workload: str = typer.Argument(..., metavar="WORKLOAD", help="A workload of the map."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the task stops."),
    follow: bool = FOLLOW_OPTION,
    timeout: str | None = TIMEOUT_OPTION,
    env: list[str] = typer.Option([], "--env", help="Extra container environment NAME=VALUE."),
    count: int = typer.Option(1, "--count", help="How many tasks to start (1-10)."),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Idempotency id: the same id never starts a second task."
    ),
    dry_run: bool = DRY_RUN_OPTION,
    exit_code: ExitCodeMode = typer.Option(
        ExitCodeMode.residency,
        "--exit-code",
        help="residency: 1 when the job fails; container: its own code.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Dispatch a workload to a host of its location, verify it landed there, and wait."""
    from residency_cli.dispatch import RunOptions, new_run_id, parse_env, validate_run_id

    state = app_state(ctx)
    config = state.config()
    definition = config.workload(workload)
    options = RunOptions(
        run_id=validate_run_id(run_id) if run_id else new_run_id(),
        count=count,
        env=parse_env(env),
    )
    limit = _timeout(timeout, definition.timeout_seconds)
    if dry_run:
        _dry_run(state, workload, options, output)
        return
    if output is OutputFormat.text:
        render.note(
            f"run id {options.run_id} (retry with --run-id {options.run_id}: never a second task)"
        )
    dispatcher, observer = console_dispatcher(state.clients(), state.config(), output)
    try:
        result = dispatcher.run(workload, options, wait=wait, follow=follow, timeout=limit)
    finally:
        observer.close()
    _journal(state, workload, options.run_id, result)
    _finish(result, output, exit_code)


def _journal(state: AppState, workload: str, run_id: str, result: RunResult) -> None:
    """Append the run to the dispatch journal; a journal problem never changes the outcome."""
    from datetime import datetime, timezone

    from residency_cli import journal

    config = state.config()
    primary = result.primary
    try:
        journal.append(
            journal.default_journal_path(),
            journal.build_record(
                who=journal.caller_identity(state.clients().sts),
                workload=workload,
                run_id=run_id,
                request=result.request,
                locations=list(config.workload(workload).locations),
                outcome=result.to_json(),
                host_attributes=result.host_attributes.get(primary.task_arn or ""),
                now=datetime.now(timezone.utc),
            ),
        )
    except journal.JournalError as error:
        render.note(f"warning: this run was not journalled: {error}")


def _dry_run(state: AppState, workload: str, options: Any, output: OutputFormat) -> None:
    from residency_cli.dispatch import Dispatcher
    from residency_cli.errors import RefusedError

    clients = state.clients()
    dispatcher = Dispatcher(
        clients.ecs,
        clients.ssm,
        state.config(),
        sleep=time.sleep,
        now=time.monotonic,
        region=clients.region,
    )
    plan = dispatcher.dry_run(workload, options)
    if output is OutputFormat.json:
        render.emit_json(plan)
    else:
        render.note("RunTask request (nothing was sent):")
        render.emit_json(plan.request)
        render.note("equivalent AWS CLI command:")
        sys.stdout.write(plan.aws_cli + "\n")
    if not plan.check.ready:
        raise RefusedError(f"pre-flight failed: {plan.check.refusal}")


def attach(
    ctx: typer.Context,
    task: str = typer.Argument(..., metavar="TASK", help="Task id or ARN."),
    follow: bool = FOLLOW_OPTION,
    timeout: str | None = TIMEOUT_OPTION,
    exit_code: ExitCodeMode = typer.Option(ExitCodeMode.residency, "--exit-code"),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Resume waiting for (and following the logs of) a task dispatched earlier."""
    from residency_cli.config import DEFAULT_TIMEOUT_SECONDS

    state = app_state(ctx)
    limit = _timeout(timeout, DEFAULT_TIMEOUT_SECONDS)
    dispatcher, observer = console_dispatcher(state.clients(), state.config(), output)
    try:
        result = dispatcher.attach(task, follow=follow, timeout=limit)
    finally:
        observer.close()
    _finish(result, output, exit_code)


def tasks(
    ctx: typer.Context,
    workload: str | None = typer.Argument(None, metavar="WORKLOAD", help="Only this workload."),
    status: TaskStatusFilter = typer.Option(
        TaskStatusFilter.all, "--status", help="running, stopped or all."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Recent tasks of the map's workloads and where each ran."""
    from residency_cli.dispatch import recent_tasks

    state = app_state(ctx)
    config = state.config()
    if workload is not None:
        config.workload(workload)
    clients = state.clients()
    found = recent_tasks(clients.ecs, clients.ssm, config, workload, status.value)
    if output is OutputFormat.json:
        render.emit_json(found)
        return
    rows = [
        [
            t.task_id,
            t.workload,
            t.host.location if t.host else None,
            t.status,
            t.exit_code,
            t.started_at,
            t.stopped_at,
        ]
        for t in found
    ]
    render.table(
        f"Tasks of {config.cluster}",
        ["task", "workload", "location", "status", "exit", "started", "stopped"],
        rows,
    )
