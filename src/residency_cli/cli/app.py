"""The Typer root: global options, command registration, and `main()`, the one place that
maps errors to exit codes (CONTRACT.md section 6)."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperArgument

from residency_cli import __version__
from residency_cli.cli import (
    activate_cmds,
    audit_cmds,
    config_cmds,
    demo_cmds,
    dispatch_cmds,
    hosts_cmds,
    iam_cmds,
    journal_cmds,
    logs_cmds,
    sandbox_cmds,
)
from residency_cli.cli.state import AppState

try:  # Typer >= 0.20 vendors click; its exceptions are not those of the `click` package.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

app = typer.Typer(
    name="residency",
    help="Residency-aware task dispatch on AWS ECS Anywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich would double `--help` time
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"residency {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="PATH",
        help="The residency map (default: $RESIDENCY_CONFIG, else ./residency.yaml).",
    ),
    profile: str | None = typer.Option(
        None, "--profile", metavar="PROFILE", envvar="AWS_PROFILE", help="AWS profile."
    ),
    region: str | None = typer.Option(
        None,
        "--region",
        metavar="REGION",
        help="AWS region (default: the map's region, else AWS_REGION/AWS_DEFAULT_REGION).",
    ),
    endpoint_url: str | None = typer.Option(
        None,
        "--endpoint-url",
        metavar="URL",
        envvar="AWS_ENDPOINT_URL",
        help="Send AWS requests here.",
    ),
    sandbox: bool = typer.Option(False, "--sandbox", help="Target the running local sandbox."),
    journal: str | None = typer.Option(
        None,
        "--journal",
        metavar="PATH|s3://BUCKET/PREFIX",
        help="The dispatch journal (default: $RESIDENCY_JOURNAL, else the map's journal:, "
        "else journal.jsonl in the state directory).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Residency-aware task dispatch on AWS ECS Anywhere."""
    from residency_cli.cli import render

    state = AppState(
        config_path=config,
        profile=profile,
        region=region,
        endpoint_url=endpoint_url,
        sandbox=sandbox,
        verbose=verbose,
        journal=journal,
    )
    ctx.obj = state
    render.set_command(state.command_words())


app.command("validate")(config_cmds.validate)
app.command("schema")(config_cmds.schema)
app.add_typer(hosts_cmds.hosts_app, name="hosts")
app.command("register-host")(hosts_cmds.register_host)
app.command("unregister-host")(hosts_cmds.unregister_host)
app.command("check")(dispatch_cmds.check)
app.command("run")(dispatch_cmds.run)
app.command("attach")(dispatch_cmds.attach)
app.command("stop")(dispatch_cmds.stop)
app.command("tasks")(dispatch_cmds.tasks)
app.command("logs")(logs_cmds.logs)
app.command("audit")(audit_cmds.audit)
app.command("activate")(activate_cmds.activate)
app.command("iam-policy")(iam_cmds.iam_policy)
app.add_typer(sandbox_cmds.sandbox_app, name="sandbox")
app.add_typer(journal_cmds.journal_app, name="journal")
app.command("demo")(demo_cmds.demo)


class _NamedArgument(TyperArgument):
    """An argument whose metavar says it all (`[WORKLOAD]...`, `TASK`): help and usage show
    the metavar as written, not Typer's `{TASK}`, `[[WORKLOAD]...]...` or `<list[str]>`."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _rich_display_name(self) -> str:
        return str(self.metavar)

    def _usage_display_name(self) -> str:
        return str(self.metavar)


def plain_metavars(command: Any) -> Any:
    """Every argument with a metavar of this command tree shown as `_NamedArgument` does."""
    for param in getattr(command, "params", []):
        if type(param) is TyperArgument and param.metavar:
            param.__class__ = _NamedArgument
    for sub in (getattr(command, "commands", None) or {}).values():
        plain_metavars(sub)
    return command


def _verbose(argv: list[str]) -> bool:
    return "--verbose" in argv or "-v" in argv


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; each error of the contract becomes its exit code, never a traceback."""
    from residency_cli.cli import signals

    args = list(sys.argv[1:] if argv is None else argv)
    with signals.sigterm_as_interrupt():
        code = _main(args)
    return signals.exit_code(code)


def _main(args: list[str]) -> int:
    from residency_cli.cli import render
    from residency_cli.errors import OutputClosed, ResidencyError

    command = plain_metavars(typer.main.get_command(app))
    try:
        result: Any = command.main(args=args, prog_name="residency", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exit_:
        return int(exit_.exit_code)
    except click_exceptions.NoArgsIsHelpError as problem:
        problem.show()  # `residency hosts` alone: the group's help
        return 2
    except click_exceptions.ClickException as problem:
        render.error(_click_message(problem))
        return 2
    except (KeyboardInterrupt, typer.Abort):
        render.error("interrupted")
        return 130
    except OutputClosed:
        return 0  # the reader had enough (`residency logs TASK | head`)
    except ResidencyError as problem:
        _report(problem, args)
        return problem.exit_code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as problem:
        return _unexpected(problem, args)


def _unexpected(problem: Exception, args: list[str]) -> int:
    """An AWS error that escaped translation (exit 7 and the like), else a bug: one line and
    exit 1 (the traceback with --verbose)."""
    from residency_cli.aws import is_aws_error, translate_error
    from residency_cli.cli import render

    if not is_aws_error(problem):
        if _verbose(args):
            raise problem
        render.error(f"internal error: {type(problem).__name__}: {problem} (rerun with --verbose)")
        return 1
    translated = translate_error(problem)
    render.error(str(translated))
    return translated.exit_code


def _click_message(problem: Any) -> str:
    """Click's complaint as the tool's own `error:` lines: what is wrong, the nearest
    command or option when there is one, and where help is (never the Usage block)."""
    import difflib
    import re

    ctx = getattr(problem, "ctx", None)
    command = getattr(ctx, "command", None)
    if isinstance(problem, click_exceptions.NoSuchOption):
        name = problem.option_name
        known = [
            opt
            for param in (command.params if command is not None else [])
            for opt in [*param.opts, *param.secondary_opts]
            if opt.startswith("-")
        ]
        candidates = [*(problem.possibilities or []), *known]
        near = difflib.get_close_matches(name, dict.fromkeys(candidates), n=1, cutoff=0.7)
        message = f"no such option {name}" + (f" (did you mean {near[0]}?)" if near else "")
    else:
        message = problem.format_message().rstrip(".")
        typo = re.match(r"No such command '(.*?)'", message)
        if typo and command is not None and hasattr(command, "list_commands"):
            near = difflib.get_close_matches(typo.group(1), command.list_commands(ctx), n=1)
            message = f"no such command {typo.group(1)!r}"
            message += f" (did you mean {near[0]!r}?)" if near else ""
        message = message[:1].lower() + message[1:]
    if ctx is not None:
        message += f"\ntry '{ctx.command_path} --help'"
    return message


def _report(problem: Any, args: list[str]) -> None:
    """One `error:` line (per line of the message), the tasks it left running, the cause."""
    from residency_cli.cli import render

    render.error(str(problem))
    for task_id in problem.task_ids:
        render.note(f"task {task_id} was started and is left running: "
                    f"{render.command()} attach {task_id}")  # fmt: skip
    if _verbose(args) and problem.__cause__ is not None:
        render.note(f"cause: {problem.__cause__!r}")


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
