"""`check`, `run`, `attach`, `tasks`: dispatch with placement verified, and how it ended."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import typer

from residency_cli.cli import render
from residency_cli.cli.state import DRY_RUN_OPTION, OUTPUT_OPTION, AppState, OutputFormat, app_state

if TYPE_CHECKING:
    from residency_cli.config import Config
    from residency_cli.dispatch import Dispatcher, RunOptions
    from residency_cli.results import RunResult, RunResults


# The run did what it should but its journal record could not be written (README, "Exit
# codes"): only when nothing else failed.
JOURNAL_FAILED_EXIT = 8


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
    metavar="DUR",
    help="Give up waiting after this long (30s, 10m, 1h); the task keeps running.",
)
HOST_LOST_OPTION: Any = typer.Option(
    "5m",
    "--host-lost-after",
    metavar="DUR",
    help="End as host_lost (exit 5) when a running task's host stays disconnected this long.",
)
EXIT_CODE_OPTION: Any = typer.Option(
    ExitCodeMode.residency,
    "--exit-code",
    help="residency: 1 when the job fails; container: its own code.",
)


def check(
    ctx: typer.Context,
    workloads: list[str] = typer.Argument(
        None, metavar="[WORKLOAD]...", help="Workloads to check (default: all)."
    ),
    all_hosts: bool = typer.Option(
        False,
        "--all-hosts",
        help="List every host; by default more than 20 are grouped by reason (text only).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Pre-flight workloads: task definition, log configuration, a compliant host."""
    from residency_cli.dispatch import check as run_check
    from residency_cli.errors import RefusedError
    from residency_cli.results import CheckList

    state = app_state(ctx)
    config = state.config()
    for name in workloads or []:
        config.workload(name)
    clients = state.clients()
    checks = CheckList(
        run_check(clients.ecs, clients.ssm, config, workloads or []), all_hosts=all_hosts
    )
    render.render(checks, output)
    if checks.not_ready:
        raise RefusedError(f"not ready: {', '.join(checks.not_ready)}")


def _dispatcher(
    state: AppState, output: OutputFormat, host_lost_after: float, *, several: bool = False
) -> tuple[Dispatcher, render.ConsoleObserver]:
    from residency_cli.dispatch import Dispatcher

    observer = render.ConsoleObserver(output, name_workloads=several)
    dispatcher = Dispatcher.create(
        state.clients(),
        state.config(),
        observer=observer,
        host_lost_after=host_lost_after,
        journal_store=state.journal_store(),
    )
    return dispatcher, observer


def _duration(option: str, value: str | None, default: float) -> float:
    from residency_cli.durations import parse_duration
    from residency_cli.errors import UsageError

    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _finish(
    result: RunResult | RunResults,
    dispatcher: Dispatcher,
    output: OutputFormat,
    mode: ExitCodeMode,
) -> None:
    """Render the outcome, warn about the journal, end with the outcome's exit code (with
    several runs, the most severe one's)."""
    from residency_cli.errors import ResidencyError

    render.render(result, output)
    for problem in dispatcher.journal_problems:
        render.note(f"warning: {problem}")
    code = result.exit_code(container_code=mode is ExitCodeMode.container)
    if code:
        raise ResidencyError(result.explanation(render.command()) or "", exit_code=code)
    if dispatcher.journal_problems:
        # Nothing else failed, but the governance record is missing: say so in the exit code.
        raise ResidencyError(
            "the run succeeded but was not (fully) journalled", exit_code=JOURNAL_FAILED_EXIT
        )


def _workload_names(config: Config, named: list[str], every: bool) -> list[str]:
    """The workloads `run` dispatches: those named (each once, each in the map) or, with
    `--all`, every workload of the map."""
    from residency_cli.errors import UsageError

    known = ", ".join(config.workloads)
    if every and named:
        raise UsageError(
            f"--all runs every workload of the map; it takes no WORKLOAD (got {' '.join(named)})",
            hint="name the workloads, or give --all alone",
        )
    if every:
        return list(config.workloads)
    if not named:
        raise UsageError(f"name a workload to run (known: {known}), or --all for every one")
    for name in named:
        config.workload(name)  # unknown: exit 2 naming the known ones
    twice = [name for name in dict.fromkeys(named) if named.count(name) > 1]
    if twice:
        raise UsageError(
            f"workload {', '.join(twice)} named more than once: name each workload once",
            hint="use --count N for several tasks of one workload",
        )
    return named


def _dry_run(
    state: AppState, names: list[str], options: RunOptions, output: OutputFormat, single: bool
) -> None:
    """`run --dry-run`: each plan (one object for one workload, else a list); exit 3 when a
    pre-flight fails."""
    from residency_cli.dispatch import Dispatcher
    from residency_cli.errors import RefusedError

    dispatcher = Dispatcher.create(state.clients(), state.config(), journal=None)
    if single:
        plan = dispatcher.dry_run(names[0], options)
        render.render(plan, output)
        if not plan.check.ready:
            raise RefusedError(f"pre-flight failed: {plan.check.refusal}")
        return
    plans = dispatcher.dry_runs(names, options)
    render.render(plans, output)
    refused = [p.check for p in plans.plans if not p.check.ready]
    if refused:
        raise RefusedError(
            "\n".join(f"pre-flight failed for {c.workload}: {c.refusal}" for c in refused)
        )


def run(
    ctx: typer.Context,
    workloads: list[str] = typer.Argument(
        None,
        metavar="[WORKLOAD]...",
        help="Workloads of the map; several are dispatched together and waited on in one loop.",
    ),
    all_workloads: bool = typer.Option(
        False, "--all", help="Dispatch every workload of the map (takes no WORKLOAD)."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the task stops."),
    follow: bool = FOLLOW_OPTION,
    timeout: str | None = TIMEOUT_OPTION,
    host_lost_after: str = HOST_LOST_OPTION,
    env: list[str] = typer.Option(
        [], "--env", metavar="NAME=VALUE", help="Extra container environment NAME=VALUE."
    ),
    command: str | None = typer.Option(
        None,
        "--command",
        metavar="CMD",
        help="Override the container's command (one workload only): split like a shell, "
        """or a JSON list ('["python", "job.py"]').""",
    ),
    count: int = typer.Option(
        1, "--count", metavar="N", help="How many tasks to start (1-10), of each workload."
    ),
    run_id: str | None = typer.Option(
        None,
        "--run-id",
        metavar="ID",
        help="Idempotency id: the same id never starts a second task (of any workload).",
    ),
    dry_run: bool = DRY_RUN_OPTION,
    exit_code: ExitCodeMode = EXIT_CODE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Dispatch workloads to hosts of their locations, verify where they landed, and wait.
    With several workloads (or --all), pre-flight refuses them all if one is refused; the
    exit code is the most severe run's."""
    from residency_cli.dispatch import RunOptions, new_run_id, parse_command, parse_env
    from residency_cli.dispatch import validate_run_id as valid
    from residency_cli.errors import UsageError

    state = app_state(ctx)
    config = state.config()
    names = _workload_names(config, list(workloads or []), all_workloads)
    single = len(names) == 1 and not all_workloads
    if command is not None and len(names) > 1:
        raise UsageError(
            f"--command overrides one workload's command; {len(names)} workloads were given "
            f"({', '.join(names)})",
            hint="run that workload alone with --command",
        )
    options = RunOptions(
        run_id=valid(run_id) if run_id is not None else new_run_id(),
        count=count,
        env=parse_env(env),
        command=parse_command(command) if command is not None else None,
    )
    longest = max(config.workload(name).timeout_seconds for name in names)
    limit = _duration("--timeout", timeout, longest)
    lost_after = _duration("--host-lost-after", host_lost_after, 0)
    if dry_run:
        _dry_run(state, names, options, output, single)
        return
    # Before anything is sent: whatever happens next, the user can retry without a second task.
    render.note(
        f"run id {options.run_id} (retry with --run-id {options.run_id}: never a second task)"
    )
    dispatcher, observer = _dispatcher(state, output, lost_after, several=not single)
    result: RunResult | RunResults
    try:
        if single:
            result = dispatcher.run(names[0], options, wait=wait, follow=follow, timeout=limit)
        else:
            result = dispatcher.run_many(names, options, wait=wait, follow=follow, timeout=limit)
    finally:
        observer.close()
    _finish(result, dispatcher, output, exit_code)


def attach(
    ctx: typer.Context,
    task: str = typer.Argument(..., metavar="TASK", help="Task id or ARN."),
    follow: bool = FOLLOW_OPTION,
    timeout: str | None = TIMEOUT_OPTION,
    host_lost_after: str = HOST_LOST_OPTION,
    exit_code: ExitCodeMode = EXIT_CODE_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Resume waiting for (and following the logs of) a task dispatched earlier."""
    from residency_cli.config import DEFAULT_TIMEOUT_SECONDS

    state = app_state(ctx)
    limit = _duration("--timeout", timeout, DEFAULT_TIMEOUT_SECONDS)
    lost_after = _duration("--host-lost-after", host_lost_after, 0)
    dispatcher, observer = _dispatcher(state, output, lost_after)
    try:
        result = dispatcher.attach(task, follow=follow, timeout=limit)
    finally:
        observer.close()
    _finish(result, dispatcher, output, exit_code)


def tasks(
    ctx: typer.Context,
    workload: str | None = typer.Argument(None, metavar="[WORKLOAD]", help="Only this workload."),
    status: TaskStatusFilter = typer.Option(
        TaskStatusFilter.all, "--status", help="running, stopped or all."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Recent tasks of the map's workloads and where each ran."""
    from residency_cli.results import TaskList
    from residency_cli.tasks import recent_tasks

    state = app_state(ctx)
    config = state.config()
    if workload is not None:
        config.workload(workload)
    clients = state.clients()
    found = recent_tasks(clients.ecs, clients.ssm, config, workload, status.value)
    render.render(TaskList(config.cluster, found), output)


def stop(
    ctx: typer.Context,
    task_refs: list[str] = typer.Argument(
        None, metavar="[TASK]...", help="Task ids or ARNs (of the map's workloads)."
    ),
    reason: str | None = typer.Option(
        None,
        "--reason",
        metavar="TEXT",
        help="Why, as ECS records it (default: 'stopped by residency stop (user@host)'; "
        "at most 255 characters).",
    ),
    all_running: str | None = typer.Option(
        None,
        "--all-running",
        metavar="WORKLOAD",
        help="Stop every RUNNING task of this workload (asks first; --yes when not a terminal).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before --all-running."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Stop tasks of the map's workloads (journalled); a task of no mapped workload is
    refused (exit 2) and nothing is stopped."""
    import os
    import sys

    from residency_cli.errors import ResidencyError, UsageError

    state = app_state(ctx)
    refs = list(task_refs or [])
    if not refs and all_running is None:
        raise UsageError("name the tasks to stop, or --all-running WORKLOAD")
    from residency_cli.dispatch import Dispatcher

    dispatcher = Dispatcher.create(
        state.clients(), state.config(), journal_store=state.journal_store()
    )
    if all_running is not None:
        running = dispatcher.running_tasks(all_running)
        if not running:
            render.note(f"{all_running} has no RUNNING task")
        elif not yes:
            ids = ", ".join(arn.rsplit("/", 1)[-1] for arn in running)
            question = f"stop {len(running)} RUNNING task(s) of {all_running} ({ids})?"
            if os.environ.get("CI") or not sys.stdin.isatty():
                why = "CI is set" if os.environ.get("CI") else "stdin is not a terminal"
                raise UsageError(
                    f"--all-running {all_running} would {question[:-1]}; {why}, so nothing "
                    "asks: pass --yes to confirm"
                )
            if not render.confirm(question):
                raise ResidencyError("not confirmed: nothing was stopped", exit_code=1)
        refs += running
    if not refs:
        return
    result = dispatcher.stop(refs, reason)
    render.render(result, output)
    for problem in dispatcher.journal_problems:
        render.note(f"warning: {problem}")
    if dispatcher.journal_problems:
        raise ResidencyError(
            "the tasks were stopped but not (fully) journalled", exit_code=JOURNAL_FAILED_EXIT
        )
