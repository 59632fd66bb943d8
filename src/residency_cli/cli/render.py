"""The only module that prints: `render(result, output)` for every command's result,
`ConsoleObserver` while a run waits, and the primitives below. Text is for people (rich;
colour only on a TTY and never with NO_COLOR); JSON is one document on stdout for scripts;
diagnostics go to stderr."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

    from residency_cli.activation import Activation
    from residency_cli.audit import AuditReport
    from residency_cli.cli.state import OutputFormat
    from residency_cli.dispatch import DryRun, DryRunList
    from residency_cli.hosts import SyncPlan
    from residency_cli.journal import JournalRecords, VerifyReport
    from residency_cli.logs import LogEvent
    from residency_cli.results import (
        CheckList,
        HostList,
        LabelChange,
        PlacedHost,
        RunResult,
        RunResults,
        TaskList,
        TasksStopped,
        ValidateSummary,
        WorkloadCheck,
    )
    from residency_cli.sandbox.control import JoinResult, SandboxStarted, SandboxStatus, StopResult

PIPE_WIDTH = 200
# How to call residency again, with the global options in effect (`--sandbox`, `--config`,
# ...), for the follow-up commands that hints print: set once by the CLI's root.
_command = ["residency"]


def set_command(words: Sequence[str]) -> None:
    _command[:] = list(words) or ["residency"]


def command() -> str:
    """`residency` and the global options in effect, quoted for the shell."""
    import shlex

    return " ".join(shlex.quote(word) for word in _command)


# Shown escaped (`\x1b`), never interpreted by the terminal: C0/C1 control characters (ESC
# starts the escape sequences that recolour, retitle or rewrite a terminal), line and
# paragraph separators, and the bidirectional overrides of "Trojan Source" (CVE-2021-42574);
# and lone surrogates (a YAML "\ud804" escape), which cannot even be written as UTF-8.
# Values from a map, from AWS or from a task's name reach the screen only through these.
_UNSAFE_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: object, *, newlines: bool = False) -> str:
    """`text` with every character a terminal would act on written as an escape (`\x1b`,
    `\n` unless `newlines`), so that one value prints as one visible line."""
    value = str(text)
    if value.isprintable():  # the common case: nothing to escape
        return value
    import unicodedata

    return "".join(
        char
        if (newlines and char == "\n")
        or not (unicodedata.category(char) in _UNSAFE_CATEGORIES or char in _BIDI_CONTROLS)
        else char.encode("unicode_escape").decode("ascii")
        for char in value
    )


@contextmanager
def _to_stdout() -> Iterator[None]:
    """A reader that stopped reading (`| head`) ends output, not the program with a traceback:
    stdout becomes /dev/null (so nothing fails at exit) and OutputClosed says so."""
    try:
        yield
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        from residency_cli.errors import OutputClosed

        raise OutputClosed("stdout was closed") from None


def _console(stderr: bool) -> Console:
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR"))
    stream = sys.stderr if stderr else sys.stdout
    # Piped output is read by scripts and logs: wide enough that tables never fold.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, no_color=no_color, highlight=False, soft_wrap=False, width=width)


def stdout() -> Console:
    return _console(stderr=False)


def stderr() -> Console:
    return _console(stderr=True)


def emit_json(data: Any) -> None:
    from residency_cli.results import to_jsonable

    with _to_stdout():
        sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")
        sys.stdout.flush()


def emit_json_line(data: Any) -> None:
    from residency_cli.results import to_jsonable

    with _to_stdout():
        sys.stdout.write(json.dumps(to_jsonable(data), default=str, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def error(message: str) -> None:
    """One line per problem on stderr, prefixed so scripts can grep it. Problems are separated
    by newlines; anything else a terminal would act on inside one is escaped."""
    for line in message.split("\n"):
        sys.stderr.write(f"error: {printable(line)}\n")
    sys.stderr.flush()


def raw(line: str) -> None:
    """One line on stdout exactly as given (for `eval "$(residency sandbox env)"`)."""
    with _to_stdout():
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def note(message: str) -> None:
    """A diagnostic for people, on stderr so that stdout stays clean for scripts. Plain text
    needs no rich (a note is printed before RunTask: the run id)."""
    sys.stderr.write(printable(message, newlines=True) + "\n")
    sys.stderr.flush()


def show(message: str, *, markup: bool = True) -> None:
    with _to_stdout():
        stdout().print(printable(message, newlines=True), markup=markup)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("-" if cell is None else escape(printable(cell)) for cell in row))
    with _to_stdout():
        stdout().print(grid)


def plain(text: object) -> str:
    """User or AWS text made safe to embed in a rich markup string (`[a, b]` stays)."""
    from rich.markup import escape

    return escape(printable(text))


def confirm(question: str) -> bool:
    """Ask on the terminal (stderr), default no. Callers ask only when stdin is a TTY."""
    import typer

    return bool(typer.confirm(printable(question), default=False, err=True))


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


_DIM = "\x1b[2m"
_CYAN = "\x1b[36m"
_RESET = "\x1b[0m"


def format_event(event: LogEvent, *, show_container: bool, colour: bool = False) -> str:
    """One text line: `2024-05-01T12:00:00.123Z  [container  ]message` (no newline)."""
    stamp = event.iso_timestamp
    message = event.message.rstrip("\r\n")
    if colour:
        stamp = f"{_DIM}{stamp}{_RESET}"
    if not show_container:
        return f"{stamp}  {message}"
    container = f"{_CYAN}{event.container}{_RESET}" if colour else event.container
    return f"{stamp}  {container}  {message}"


class LogPrinter:
    """Prints log events as they come: text lines (timestamp column, container column when
    the task has several) or JSON Lines.

    Log output is written as is, not through rich: rich's per-line rendering costs ~90 us a
    line (9 s for 100,000 lines), wraps at the terminal width and turns `:smile:` into emoji.
    Colour follows the console's rules (a TTY and no NO_COLOR).
    """

    def __init__(self, *, json_lines: bool, show_container: bool, to_stderr: bool = False) -> None:
        self.json_lines = json_lines
        self.show_container = show_container
        self._to_stderr = to_stderr
        self.file = sys.stderr if to_stderr else sys.stdout
        self.count = 0

    @functools.cached_property
    def colour(self) -> bool:
        """Whether log lines are coloured: asked of rich at the first line, not before (rich
        is imported after RunTask is sent, never on its way)."""
        console = stderr() if self._to_stderr else stdout()
        return bool(console.is_terminal and not console.no_color and console.color_system)

    def line(self, event: LogEvent) -> str:
        return format_event(event, show_container=self.show_container, colour=self.colour)

    def __call__(self, event: LogEvent) -> None:
        self.count += 1
        if self.json_lines:
            emit_json_line(event)
            return
        with _to_stdout():
            self.file.write(self.line(event) + "\n")
            self.file.flush()


# --------------------------------------------------------------------------- results


def render(result: Any, output: OutputFormat) -> None:
    """Print a command's result: JSON (its `to_json()`) for scripts, text for people."""
    from residency_cli.cli.state import OutputFormat

    if output is OutputFormat.json:
        emit_json(result)
        return
    text = _TEXT.get(type(result).__name__)
    if text is None:  # pragma: no cover - a result type without a text form is a bug
        raise TypeError(f"no text form for {type(result).__name__}")
    text(result)


def _hosts(result: HostList) -> None:
    if not result.hosts:
        note(f"cluster {result.cluster} has no container instances (that match)")
    rows = [
        [
            h.container_instance_id,
            h.instance_id,
            h.hostname,
            h.location,
            h.status,
            yes_no(h.agent_connected),
            h.running_tasks,
            h.cpu_available,
            h.memory_available,
        ]
        for h in result.hosts
    ]
    columns = ["id", "instance", "hostname", "location", "status", "agent", "tasks", "cpu"]
    table(f"Hosts of {result.cluster}", [*columns, "memory"], rows)


def _label_change(change: LabelChange) -> None:
    host = change.host.label
    prefix = "would " if change.dry_run else ""
    attribute = change.attribute
    if change.action == "unchanged":
        state = f"{attribute}={change.location}" if change.location else f"no {attribute}"
        show(f"{host} already has {state}; nothing to do", markup=False)
        return
    if change.action == "remove":
        verb = "remove" if change.dry_run else "removed"
        show(f"{prefix}{verb} {attribute}={change.previous} from {host}", markup=False)
    else:
        moved = f" (was {change.previous})" if change.previous else ""
        show(f"{prefix}set {attribute}={change.location} on {host}{moved}", markup=False)
    if change.dry_run and change.request is not None:
        note("request (ECS " + ("PutAttributes" if change.location else "DeleteAttributes") + "):")
        emit_json(change.request)


def _sync_plan(plan: SyncPlan) -> None:
    """Before applying: the plan; after: what was applied (the plan was shown first)."""
    if plan.applied:
        show(f"applied {len(plan.steps)} change(s)", markup=False)
        return
    if plan.steps:
        rows = [[s.action, s.host.label, s.previous, s.location, s.declared_as] for s in plan.steps]
        table("Plan", ["action", "host", "from", "to", "declared as"], rows)
    if plan.unchanged:
        show(f"already right: {', '.join(plan.unchanged)}", markup=False)
    if not plan.steps:
        show("the cluster's labels already match the map", markup=False)
    elif plan.dry_run:
        show(f"dry run: {len(plan.steps)} change(s) planned, nothing changed", markup=False)


def _checks(result: CheckList) -> None:
    for check in result.checks:
        mark = "[green]ready[/green]" if check.ready else "[red]not ready[/red]"
        show(
            f"{plain(check.workload)}: {mark} — {plain(check.task_definition)}, "
            f"placement `{plain(check.expression)}`, "
            f"needs {check.cpu} CPU / {check.memory} MiB"
        )
        for problem in check.problems:
            show(f"  [red]✗[/red] {plain(problem)}")
        guard = check.guard  # a warning, never a refusal: `run` passes the map's locations
        if guard is not None and guard.warning:
            show(f"  [yellow]![/yellow] data guard: {plain(guard.warning)}")
        elif guard is not None:
            enforced = plain(", ".join(guard.enforced or []))
            show(f"  [green]✓[/green] data guard: enforces {enforced}, as the map")
        _check_hosts(check, result.all_hosts)


def _check_hosts(check: WorkloadCheck, all_hosts: bool) -> None:
    """Every host (a few, or `--all-hosts`); on a large fleet the compliant hosts counted
    and the excluded ones grouped by reason, with counts and the first few names."""
    from residency_cli.results import GROUP_HOSTS_ABOVE, excluded_by_reason, named_few

    if not check.hosts:
        if not check.problems:
            show("  [red]✗[/red] the cluster has no container instances")
        return
    if all_hosts or len(check.hosts) <= GROUP_HOSTS_ABOVE:
        rows = [
            [v.host.label, v.host.location, yes_no(v.compliant), "; ".join(v.reasons) or "-"]
            for v in check.hosts
        ]
        table(None, ["host", "location", "compliant", "why not"], rows)
        return
    compliant = [v.host.label for v in check.compliant_hosts]
    rows = [[str(len(compliant)), yes_no(True), "-", named_few(compliant) if compliant else "-"]]
    rows += [
        [str(len(labels)), yes_no(False), why, named_few(labels)]
        for why, labels in excluded_by_reason(check.hosts)
    ]
    table(None, ["hosts", "compliant", "why not", "which"], rows)
    note(f"{len(check.hosts)} hosts, grouped by reason; --all-hosts lists each one")


def _run(result: RunResult) -> None:
    for task in result.tasks:
        host = task.host
        where = ""
        if host is not None:
            name = host.hostname or host.instance_id or host.container_instance_arn
            where = plain(f" on {name} ({host.location or 'no location'})")
        colour = {"succeeded": "green", "dispatched": "cyan"}.get(task.outcome.value, "red")
        ended = task.exit_code is not None and task.status in ("STOPPED", "DELETED")
        exit_text = f", exit code {task.exit_code}" if ended else ""
        show(f"[{colour}]{task.outcome.value}[/{colour}] {plain(task.workload)}{where}{exit_text}")
        if task.task_id:
            show(f"  task {task.task_id}  run id {task.run_id or '-'}", markup=False)
            if task.outcome.value == "dispatched":
                show(
                    f"  arn {task.task_arn}\n  follow it: {command()} attach {task.task_id}",
                    markup=False,
                )
        if task.log_stream:
            show(f"  logs {task.log_group} {task.log_stream}", markup=False)
    for failure in result.failures:
        show(f"  not started: {failure.get('reason')} ({failure.get('arn') or '-'})", markup=False)


def _dry_run(plan: DryRun) -> None:
    note("RunTask request (nothing was sent):")
    emit_json(plan.request)
    note("equivalent AWS CLI command:")
    raw(plan.aws_cli)


def _runs(result: RunResults) -> None:
    """Each run's report as a single `run` prints it, then a summary line."""
    for run in result.runs:
        _run(run)
    if len(result.runs) > 1:
        colour = "green" if result.outcome.exit_code == 0 else "red"
        show(f"[{colour}]{plain(result.summary)}[/{colour}]")


def _dry_runs(result: DryRunList) -> None:
    for plan in result.plans:
        ready = "ready" if plan.check.ready else "not ready (pre-flight failed)"
        note(f"{plan.check.workload}: {ready}")
        _dry_run(plan)


def _stop(result: TasksStopped) -> None:
    for task in result.tasks:
        if task.stopped:
            show(
                f"stopped {task.task_id} ({task.workload}), was {task.status_before or '-'}",
                markup=False,
            )
        else:
            show(
                f"{task.task_id} ({task.workload}) had already stopped "
                f"({task.status_before or '-'}); nothing sent",
                markup=False,
            )
    note(f"reason: {result.reason}")


def _tasks(result: TaskList) -> None:
    rows = [
        [
            t.task_id,
            t.workload,
            (t.host.hostname or t.host.instance_id) if t.host else None,
            t.host.location if t.host else None,
            t.status,
            t.exit_code,
            t.started_at,
            t.stopped_at,
        ]
        for t in result.tasks
    ]
    columns = ["task", "workload", "host", "location", "status", "exit", "started", "stopped"]
    table(f"Tasks of {result.cluster}", columns, rows)


def _audit(report: AuditReport) -> None:
    rows = [
        [
            f.task_id,
            f.workload,
            ", ".join(f.allowed),
            f.host,
            f.location_then,
            f.location_now,
            f.status,
            f.verdict if f.reason is None else f"{_VERDICT_TEXT[f.verdict]}: {f.reason}",
        ]
        for f in report.findings
    ]
    table(
        "Residency audit",
        ["task", "workload", "allowed", "host", "then", "now", "status", "verdict"],
        rows,
    )
    counts = {v: sum(1 for f in report.findings if f.verdict == v) for v in _VERDICT_TEXT}
    if any(counts.values()):
        shown = ", ".join(
            f"{n} {'violation(s)' if v == 'violation' else _VERDICT_TEXT[v].lower()}"
            for v, n in counts.items()
            if n
        )
        show(f"{len(report.findings)} task(s) audited, [red]{shown}[/red]")
    else:
        show(f"{len(report.findings)} task(s) audited, [green]no violation[/green]")


# Verdicts that are findings (audit exits 4), as the table shows them.
_VERDICT_TEXT = {
    "violation": "VIOLATION",
    "guard-overridden": "GUARD OVERRIDDEN",
    "blocked": "BLOCKED AT THE DATA",
}


def _validate(summary: ValidateSummary) -> None:
    show(
        f"[green]✓[/green] {plain(summary.source)} is valid: cluster {plain(summary.cluster)}, "
        f"{len(summary.workloads)} workload(s), {len(summary.locations)} location(s), "
        f"{len(summary.hosts)} declared host(s)"
    )
    rows: list[list[Any]] = [
        [name, definition, ", ".join(summary.workloads[name]), expression]
        for name, (definition, expression) in summary.workload_details.items()
    ]
    table("Workloads", ["workload", "task definition", "locations", "placement"], rows)
    described = [
        [
            name,
            region,
            description,
            ", ".join(h for h, where in summary.hosts.items() if where == name),
        ]
        for name, (region, description) in summary.location_details.items()
    ]
    table("Locations", ["location", "data region", "description", "declared hosts"], described)


_TEXT: dict[str, Callable[[Any], None]] = {
    "HostList": _hosts,
    "LabelChange": _label_change,
    "SyncPlan": _sync_plan,
    "CheckList": _checks,
    "RunResult": _run,
    "DryRun": _dry_run,
    "RunResults": _runs,
    "DryRunList": _dry_runs,
    "TaskList": _tasks,
    "TasksStopped": _stop,
    "AuditReport": _audit,
    "ValidateSummary": _validate,
}


# --------------------------------------------------------------------------- while waiting


class ConsoleObserver:
    """Status changes, placement and log lines as they happen: a live spinner on a terminal,
    one line per change otherwise. Log lines go to stdout in text mode (they are the job's
    output) and to stderr with --output json (stdout holds the one JSON document)."""

    def __init__(self, output: OutputFormat, *, name_workloads: bool = False) -> None:
        from residency_cli.cli.state import OutputFormat

        # Several workloads in one run: each status line says whose task it is.
        self.name_workloads = name_workloads
        self._err: Console | None = None
        self.live: Status | None = None
        self.states: dict[str, str] = {}  # task id -> its last status, for the live line
        self.printer = LogPrinter(
            json_lines=False, show_container=True, to_stderr=output is OutputFormat.json
        )
        # Not on a terminal, rich waits until there is something to print: nothing it does
        # is needed before RunTask is sent (bench/dispatch_start.py).
        if sys.stderr.isatty() and sys.stdout.isatty() and self.err.is_terminal:
            self.live = self.err.status("dispatching…")
            self.live.start()

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = stderr()
        return self._err

    @staticmethod
    def _short(arn: str) -> str:
        return arn.rsplit("/", 1)[-1]

    def status(self, task: Mapping[str, Any], previous: str | None) -> None:
        """One line per change (`previous` None: the status found on attaching)."""
        import time

        current = str(task.get("lastStatus"))
        task_id = self._short(str(task.get("taskArn")))
        if self.name_workloads:
            from residency_cli.config import task_tag_value
            from residency_cli.constants import WORKLOAD_TAG

            workload = task_tag_value(task, WORKLOAD_TAG)
            task_id += f" ({workload})" if workload else ""
        line = (
            f"task {task_id}: {previous} → {current}" if previous else f"task {task_id}: {current}"
        )
        self.states[task_id] = current
        self._spin()
        self.err.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {plain(line)}")

    def _spin(self) -> None:
        """The live status line: each task's current state (counts when there are many)."""
        if self.live is None or not self.states:
            return
        if len(self.states) <= 3:
            text = ", ".join(f"task {t}: {s}" for t, s in self.states.items())
        else:
            counts: dict[str, int] = {}
            for state in self.states.values():
                counts[state] = counts.get(state, 0) + 1
            text = f"{len(self.states)} tasks: " + ", ".join(f"{n} {s}" for s, n in counts.items())
        self.live.update(plain(text) + "…")

    def placed(self, task_arn: str, host: PlacedHost, allowed: bool) -> None:
        where = host.hostname or host.instance_id or host.container_instance_arn
        verdict = "[green]allowed[/green]" if allowed else "[red]NOT ALLOWED — stopping it[/red]"
        location = host.location or "no location"
        placed = plain(f"task {self._short(task_arn)} placed on {where} in {location}")
        self.err.print(f"{placed}: {verdict}")
        if self.live is not None and self._short(task_arn) not in self.states:
            self.live.update(plain(f"task {self._short(task_arn)} placed on {where}") + "…")

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


# --------------------------------------------------------------------------- sandbox, journal


def _sandbox_started(started: SandboxStarted) -> None:
    result = started.status
    if result.stale_pid is not None:
        note(f"removed the record of a sandbox that had died (pid {result.stale_pid})")
    took = f" in {result.seconds:.1f}s" if result.seconds is not None else ""
    show(
        f"sandbox listening on {result.endpoint} (pid {result.pid}, region {result.region}){took}",
        markup=False,
    )
    note(f"seeded from {result.config}; log: {result.log_file}")
    if result.faults:
        note(f"injecting faults {result.faults} (--fault-seed {result.fault_seed})")
    note(
        'use it with `residency --sandbox ...`, or `eval "$(residency sandbox env)"` for other '
        "AWS clients; stop it with `residency sandbox down`"
    )


def _sandbox_stopped(result: StopResult) -> None:
    if result.stale_pid is not None:
        note(f"removed the record of a sandbox that had died (pid {result.stale_pid})")
    if not result.was_running:
        show("the sandbox is not running", markup=False)
    else:
        how = " (it had to be killed)" if result.forced else ""
        show(f"sandbox stopped (pid {result.pid}){how}", markup=False)
    if result.removed:
        note(f"removed its files: {', '.join(result.removed)}")
    if result.kept:
        note(f"kept its files (--keep): {', '.join(result.kept)}")


def _sandbox_status(result: SandboxStatus) -> None:
    if result.stale_pid is not None:
        note(f"removed the record of a sandbox that had died (pid {result.stale_pid})")
    if not result.running:
        show("not running", markup=False)
        return
    health = "answering" if result.answering else "NOT answering"
    show(
        f"running at {result.endpoint} (pid {result.pid}, region {result.region}, {health})",
        markup=False,
    )
    note(f"map: {result.config}; log: {result.log_file}")
    if result.faults:
        note(f"injecting faults {result.faults} (--fault-seed {result.fault_seed})")


def _sandbox_joined(result: JoinResult) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in result.attributes.items()) or "no attributes"
    show(
        f"{result.hostname} joined cluster {result.cluster} ({result.region}) as "
        f"{result.instance_id} ({shown})",
        markup=False,
    )
    note(f"container instance: {result.container_instance_arn}")


def _activation(activation: Activation) -> None:
    show(
        f"activation {activation.activation_id} for {activation.registration_limit} host(s) "
        f"of {activation.location}, valid until {activation.expires_at}",
        markup=False,
    )
    note("on each new host, run:")
    for line in activation.commands:
        raw(line)
    if activation.sandbox_command:
        note("on the sandbox, a simulated host joins with:")
        raw(activation.sandbox_command)


def _journal_records(result: JournalRecords) -> None:
    if not result.records:
        return
    columns = ["time", "seq", "event", "who", "workload", "run id", "host", "location"]
    table(None, [*columns, "outcome", "exit code"], [_row(r) for r in result.records])


def _journal_verified(report: VerifyReport) -> None:
    for line in report.notes:
        note(f"note: {line}")
    if not report.exists:
        show(f"no journal yet at {report.path}", markup=False)
        return
    show(
        f"journal {report.path}: {report.records} record(s), intact; "
        f"last seq {report.last_seq}, hash {report.last_hash}",
        markup=False,
    )


def _who(record: dict[str, Any]) -> str | None:
    who = record.get("who")
    if isinstance(who, dict) and who.get("arn"):
        arn = str(who["arn"])
        # arn:aws:sts::123456789012:assumed-role/Role/session -> assumed-role/Role/session
        return arn.split(":", 5)[-1] if arn.count(":") >= 5 else arn
    origin = record.get("origin")
    if isinstance(origin, dict) and origin.get("user"):
        return f"{origin['user']}@{origin.get('hostname') or '?'} (local)"
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _row(record: dict[str, Any]) -> list[Any]:
    result = _mapping(record.get("result"))
    host = _mapping(result.get("host"))
    host_label = host.get("hostname") or host.get("instance_id")
    if host_label is None and host.get("container_instance_arn"):
        host_label = str(host["container_instance_arn"]).rsplit("/", 1)[-1]
    return [
        record.get("time"),
        record.get("seq"),
        record.get("event", "run"),
        _who(record),
        record.get("workload"),
        record.get("run_id"),
        host_label,
        host.get("location"),
        result.get("outcome"),
        result.get("exit_code"),
    ]


_TEXT.update(
    {
        "SandboxStarted": _sandbox_started,
        "StopResult": _sandbox_stopped,
        "SandboxStatus": _sandbox_status,
        "JoinResult": _sandbox_joined,
        "Activation": _activation,
        "JournalRecords": _journal_records,
        "VerifyReport": _journal_verified,
    }
)
