"""The only module that prints. Text is for people (rich; colour only on a TTY and never
with NO_COLOR); JSON is one document on stdout for scripts; diagnostics go to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

PIPE_WIDTH = 200


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

    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_json_line(data: Any) -> None:
    from residency_cli.results import to_jsonable

    sys.stdout.write(json.dumps(to_jsonable(data), default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """One line per problem on stderr, prefixed so scripts can grep it."""
    for line in message.splitlines() or [""]:
        sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def raw(line: str) -> None:
    """One line on stdout exactly as given (for `eval "$(residency sandbox env)"`)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A diagnostic for people, on stderr so that stdout stays clean for scripts."""
    stderr().print(message, markup=False)


def show(message: str, *, markup: bool = True) -> None:
    stdout().print(message, markup=markup)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("-" if cell is None else str(cell) for cell in row))
    stdout().print(grid)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"
