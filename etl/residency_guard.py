"""The data guard: a job refuses data whose residency label it may not process.

Placement (the ECS constraint, residency's verification) decides where a task runs; this
module is the last layer, inside the job: before any data file is opened it reads the
residency label of the data directory and refuses unless the label is one of the job's
allowed locations. It stops what placement cannot see: a task started with no or the wrong
constraint (a console click, an old DAG, a script) or on a relabelled host.

The label is a small JSON file in the data directory, written when the host is provisioned:

    /data/.residency-label.json     {"location": "newyork"}

(an optional ``"version": 1`` may accompany it; any other key is refused). The allowed
locations come from ``--allowed`` (the wrapper) or ``$RESIDENCY_ALLOWED_LOCATIONS``, comma
separated. A refusal is one line on stderr and exit code 77 (sysexits' EX_NOPERM); nothing is
read, written or uploaded. Everything fails closed: no label, an unreadable or malformed one,
a symbolic link, an unreadable data directory and an empty allowed list are all refusals.

Two ways to use it, standard library only (it runs in the ETL image and anywhere else):

    python3 -m residency_guard --allowed frankfurt -- python3 /app/tax_amount.py ...
    import residency_guard; residency_guard.check_input(path)   # raises Refused

See docs/enforcement.md for what it stops and what it cannot.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import socket
import stat
import sys
from collections.abc import Mapping, Sequence

LABEL_FILE = ".residency-label.json"
ALLOWED_ENV = "RESIDENCY_ALLOWED_LOCATIONS"
DATA_DIR_ENV = "RESIDENCY_DATA_DIR"
DEFAULT_DATA_DIR = "/data"
EXIT_REFUSED = 77  # EX_NOPERM: distinct from the jobs' own codes (0-4) and from signals
EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126  # what a shell answers for a command it cannot execute
EXIT_NOT_FOUND = 127
MAX_LABEL_BYTES = 4096
LABEL_KEYS = ("location", "version")
# The residency map's rule for location names: nothing that could change a placement
# expression, so a label can never smuggle one in.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_PYTHON_NAMES = ("python", "python3")


class Refused(Exception):
    """The guard refuses the data; ``line()`` is the one line for stderr."""

    def __init__(
        self,
        data_dir: str,
        problem: str,
        label: str | None = None,
        allowed: Sequence[str] = (),
        hostname: str | None = None,
    ) -> None:
        super().__init__(problem)
        self.data_dir = data_dir
        self.problem = problem
        self.label = label
        self.allowed = tuple(allowed)
        self.hostname = hostname

    def line(self) -> str:
        host = self.hostname or socket.gethostname()
        allowed = ", ".join(self.allowed) or "none"
        return _one_line(
            f"residency-guard: refused to read {_quoted(self.data_dir)} on host {_quoted(host)}: "
            f"{self.problem} (label: {self.label or 'none'}; allowed: {allowed})"
        )


def _one_line(text: str) -> str:
    # Paths and hostnames come from outside: no control character may split or colour the line.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _quoted(text: str) -> str:
    return "'" + text + "'"


def _shown(value: object, limit: int = 60) -> str:
    """A value from a label, for a message: its repr, cut short (a label may be 4 KiB)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_allowed(text: str | None) -> tuple[str, ...]:
    """``"frankfurt, munich"`` -> ``("frankfurt", "munich")``; ValueError for a bad name.

    None or blank gives ``()``, which allows nothing.
    """
    if text is None or not text.strip():
        return ()
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{_shown(name)} is not a location name (1-128 of A-Z a-z 0-9 _ . -)"
                if name
                else "an empty location name"
            )
    return tuple(dict.fromkeys(names))


def allowed_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """$RESIDENCY_ALLOWED_LOCATIONS; ValueError for a malformed list."""
    return parse_allowed((os.environ if environ is None else environ).get(ALLOWED_ENV))


def parse_label(raw: bytes) -> str:
    """The location of a label file's bytes; ValueError (one line) when malformed."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("the label is not UTF-8") from None
    except (ValueError, RecursionError):
        raise ValueError("the label is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError('the label is not a JSON object like {"location": "newyork"}')
    unknown = sorted(str(key) for key in value if key not in LABEL_KEYS)
    if unknown:
        raise ValueError(f"the label has unknown keys: {_shown(unknown)[1:-1]}")
    if "version" in value and (value["version"] != 1 or isinstance(value["version"], bool)):
        raise ValueError(f"the label's version {_shown(value['version'])} is not 1")
    location = value.get("location")
    if not isinstance(location, str) or not _NAME.fullmatch(location):
        raise ValueError(f"the label's location {_shown(location)} is not a location name")
    return location


def read_label(data_dir: str) -> str:
    """The location the data directory is labelled with; ValueError (one line) otherwise.

    The directory is opened first and the label read relative to it, without following a
    symbolic link: the label judged is the regular file inside the directory judged, never
    one elsewhere on the host. Only the directory and the label are opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        directory = os.open(data_dir, flags | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise ValueError("the data directory does not exist") from None
    except NotADirectoryError:
        raise ValueError("the data directory is not a directory") from None
    except PermissionError:
        raise ValueError("the data directory cannot be read (permission denied)") from None
    except OSError as error:
        raise ValueError(f"the data directory cannot be opened ({error.strerror})") from None
    try:
        return _read_label_at(directory)
    finally:
        os.close(directory)


# Complexity exception (C901): the guard's checks of a hostile label (missing, unreadable,
# symbolic link, FIFO or device, oversized) stay next to the open and read they protect, so
# that a review sees every refusal of the security check in one place.
def _read_label_at(directory: int) -> str:  # noqa: C901
    # O_NONBLOCK: a FIFO planted as the label must not hang the guard in open().
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        handle = os.open(LABEL_FILE, flags, dir_fd=directory)
    except FileNotFoundError:
        raise ValueError(f"no residency label ({LABEL_FILE} is missing)") from None
    except PermissionError:
        raise ValueError(f"the label {LABEL_FILE} cannot be read (permission denied)") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            try:
                target = os.readlink(LABEL_FILE, dir_fd=directory)
            except OSError:
                target = "?"
            raise ValueError(
                f"the label {LABEL_FILE} is a symbolic link (to {_quoted(target)}), "
                "not a regular file in the data directory"
            ) from None
        raise ValueError(f"the label {LABEL_FILE} cannot be opened ({error.strerror})") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"the label {LABEL_FILE} is not a regular file")
        if info.st_size > MAX_LABEL_BYTES:
            raise ValueError(f"the label {LABEL_FILE} is over {MAX_LABEL_BYTES} bytes")
        chunks = []
        remaining = MAX_LABEL_BYTES + 1
        while remaining > 0:
            chunk = os.read(handle, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        raw = b"".join(chunks)
    except OSError as error:
        raise ValueError(f"the label {LABEL_FILE} cannot be read ({error.strerror})") from None
    finally:
        os.close(handle)
    if len(raw) > MAX_LABEL_BYTES:
        raise ValueError(f"the label {LABEL_FILE} is over {MAX_LABEL_BYTES} bytes")
    return parse_label(raw)


def check(data_dir: str | os.PathLike[str], allowed: Sequence[str] | None = None) -> str:
    """Raise Refused unless ``data_dir``'s label is one of ``allowed`` (default: from
    $RESIDENCY_ALLOWED_LOCATIONS); return the label."""
    where = os.fspath(data_dir)
    allowed_problem = None
    if allowed is None:
        try:
            allowed = allowed_from_environment()
        except ValueError as error:
            allowed, allowed_problem = (), f"{ALLOWED_ENV} is malformed: {error}"
    try:
        label = read_label(where)
    except ValueError as error:
        raise Refused(where, allowed_problem or str(error), None, allowed) from None
    if allowed_problem:
        raise Refused(where, allowed_problem, label, allowed)
    if not allowed:
        raise Refused(
            where,
            f"no allowed locations are given (--allowed or {ALLOWED_ENV})",
            label,
            allowed,
        )
    if label not in allowed:
        raise Refused(where, "the data's label is not an allowed location", label, allowed)
    return label


def data_dir_of(path: str | os.PathLike[str]) -> str:
    """The directory a file really lives in (symbolic links resolved): whose label counts."""
    return os.path.dirname(os.path.realpath(os.fspath(path)))


def check_input(path: str | os.PathLike[str], allowed: Sequence[str] | None = None) -> str:
    """``check`` for the directory of the input file a job is about to read."""
    return check(data_dir_of(path), allowed)


# --------------------------------------------------------------------------------------
# The wrapper: python3 -m residency_guard [--allowed LOCS] [--data-dir DIR] [-- CMD ...]
# --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m residency_guard",
        description=(
            "Run COMMAND only if the data directory's residency label is an allowed location; "
            f"otherwise print one line on stderr and exit {EXIT_REFUSED}. Without COMMAND, "
            "only check."
        ),
        usage="%(prog)s [--allowed LOCATIONS] [--data-dir DIR] [-- COMMAND [ARG ...]]",
    )
    parser.add_argument(
        "--allowed",
        metavar="LOCATIONS",
        help=f"comma-separated allowed locations (default: ${ALLOWED_ENV})",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"the data directory whose label is checked (default: ${DATA_DIR_ENV}, "
        f"else {DEFAULT_DATA_DIR})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in arguments:
        split = arguments.index("--")
        arguments, command = arguments[:split], arguments[split + 1 :]
    parser = _parser()
    options = parser.parse_args(arguments)
    data_dir = options.data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    if options.allowed is not None:
        try:
            allowed: tuple[str, ...] | None = parse_allowed(options.allowed)
        except ValueError as error:
            parser.error(f"--allowed: {error}")
    else:
        allowed = None
    try:
        label = check(data_dir, allowed)
    except Refused as refused:
        sys.stderr.write(refused.line() + "\n")
        return EXIT_REFUSED
    if allowed is None:
        allowed = allowed_from_environment()
    if not command:
        sys.stdout.write(
            _one_line(f"residency-guard: {data_dir} is labelled {label}: allowed") + "\n"
        )
        return 0
    environment = dict(os.environ)
    # A guarded job started by the wrapper checks again, with the same list.
    environment[ALLOWED_ENV] = ",".join(allowed)
    program = command[0]
    if program in _PYTHON_NAMES:
        # The image has one interpreter, the guard's own; using it also keeps a job under a
        # sandbox's simulated host on the interpreter its dependencies are installed in.
        program = sys.executable
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # argv[0] is the program itself: Python finds its environment from it.
        os.execvpe(program, [program, *command[1:]], environment)
    except FileNotFoundError:
        sys.stderr.write(_one_line(f"residency-guard: {command[0]}: command not found") + "\n")
        return EXIT_NOT_FOUND
    except OSError as error:
        message = f"residency-guard: {command[0]}: cannot execute ({error.strerror})"
        sys.stderr.write(_one_line(message) + "\n")
        return EXIT_NOT_EXECUTABLE
    return EXIT_NOT_EXECUTABLE  # not reached: execvpe only returns by raising


if __name__ == "__main__":
    sys.exit(main())
