"""The only module that prints. Text is for people (rich; colour only on a TTY and never
with NO_COLOR); JSON is one document on stdout for scripts; diagnostics go to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from residency_cli.logs import LogEvent

PIPE_WIDTH = 200
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
    """A diagnostic for people, on stderr so that stdout stays clean for scripts."""
    stderr().print(printable(message, newlines=True), markup=False)


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
        console = stderr() if to_stderr else stdout()
        self.colour = bool(console.is_terminal and not console.no_color and console.color_system)
        self.file = sys.stderr if to_stderr else sys.stdout
        self.count = 0

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
