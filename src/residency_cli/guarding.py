"""The data guard, as residency sees it: labels, allowed locations, and what tasks reveal.

The guard itself runs inside the job (`etl/residency_guard.py`, standard library only, in
the image). This module is residency's side of the same contract, pure functions only:
- the label file a provisioned host carries in its data directory (the sandbox writes it);
- the environment variable that carries a task's allowed locations, which `run` (and the
  Airflow helper) sets from the map so that a map change takes effect at once;
- whether a task definition enforces the map's locations (`check`);
- whether a stopped task was refused by the guard, and whether a task's overrides told the
  guard to allow locations the map does not (`audit`).

The names and the exit code must agree with etl/residency_guard.py (a test pins them).
docs/enforcement.md describes the three layers and what each stops.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from residency_cli.errors import UsageError

LABEL_FILE = ".residency-label.json"
ALLOWED_ENV = "RESIDENCY_ALLOWED_LOCATIONS"
GUARD_EXIT_CODE = 77
GUARD_MODULE = "residency_guard"
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


# --- labels ----------------------------------------------------------------------------


def label_text(location: str) -> str:
    """The label file's content: `{"location": "newyork"}` and a newline."""
    return json.dumps({"location": location}) + "\n"


def write_label(directory: Path, location: str, mode: int = 0o644) -> Path:
    """Label a host's data directory (atomically; 0644 on a real host: the jobs read it,
    never write it; the sandbox keeps its files its owner's alone)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / LABEL_FILE
    handle, partial = tempfile.mkstemp(dir=directory, prefix=f"{LABEL_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(label_text(location))
        os.chmod(partial, mode)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


# --- allowed locations -----------------------------------------------------------------


def allowed_value(locations: Sequence[str]) -> str:
    """The variable's value for these locations: `newyork,frankfurt`."""
    return ",".join(locations)


def parse_allowed(text: str) -> list[str]:
    """`"newyork, frankfurt"` -> `["newyork", "frankfurt"]`, as the guard reads it;
    ValueError for what the guard would refuse as malformed."""
    if not text.strip():
        return []
    names = [part.strip() for part in text.split(",")]
    bad = [name for name in names if not _NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a location name")
    return list(dict.fromkeys(names))


def with_guard(environment: Mapping[str, str], locations: Sequence[str]) -> dict[str, str]:
    """A container override's environment plus the map's allowed locations.

    The map is the only source: a `--env` or map `environment:` that sets the variable to
    other locations is refused (exit 2), since it would tell the guard to let data of other
    locations through."""
    wanted = allowed_value(locations)
    given = environment.get(ALLOWED_ENV)
    if given is not None:
        try:
            same = set(parse_allowed(given)) == set(locations)
        except ValueError:
            same = False
        if not same:
            raise UsageError(
                f"{ALLOWED_ENV}={given!r} would let the data guard allow other locations "
                f"than the map's ({wanted}); residency sets it from the map",
                hint="change the workload's location in the map instead",
            )
    return {**environment, ALLOWED_ENV: wanted}


def command_allowed(argv: Sequence[str]) -> str | None:
    """The `--allowed` value of a guard wrapper in a command line, if there is one:
    `python3 -m residency_guard --allowed frankfurt -- ...` or `.../residency_guard.py`."""
    words = [str(word) for word in argv]
    for index, word in enumerate(words):
        module = word == GUARD_MODULE and index > 0 and words[index - 1] == "-m"
        if not (module or word.endswith(f"/{GUARD_MODULE}.py") or word == f"{GUARD_MODULE}.py"):
            continue
        options = words[index + 1 :]
        if "--" in options:
            options = options[: options.index("--")]
        for position, option in enumerate(options):
            if option.startswith("--allowed="):
                return option.partition("=")[2]
            if option == "--allowed" and position + 1 < len(options):
                return options[position + 1]
        return None
    return None


def _environment(entries: Any) -> dict[str, str]:
    return {
        str(entry.get("name")): str(entry.get("value", ""))
        for entry in entries or []
        if isinstance(entry, Mapping)
    }


# --- check: does the task definition enforce the map's locations? ----------------------


@dataclass(frozen=True)
class GuardStatus:
    """What a task definition's container tells the data guard, against the map.

    `enforced` is None when it sets nothing (the guard then refuses every dispatch that does
    not pass the locations, as `run` does); `source` says where the list was found."""

    map_locations: list[str]
    enforced: list[str] | None
    source: str | None  # "environment" | "command" | None
    container: str | None
    problem: str | None = None  # the value is malformed: the guard refuses all data

    @property
    def matches_map(self) -> bool:
        return (
            self.problem is None
            and self.enforced is not None
            and set(self.enforced) == set(self.map_locations)
        )

    @property
    def warning(self) -> str | None:
        """Why a task started outside residency is not held to the map (None: it is)."""
        wanted = allowed_value(self.map_locations)
        if self.problem is not None:
            return (
                f"the task definition's data guard setting is malformed ({self.problem}): "
                "its jobs refuse all data unless the dispatcher overrides it"
            )
        if self.enforced is None:
            where = f"container {self.container}'s" if self.container else "the container's"
            return (
                "the task definition enforces no data guard locations: a task started "
                f"outside residency is not held to the map; set {ALLOWED_ENV}={wanted} in "
                f"{where} environment"
            )
        if not self.matches_map:
            return (
                f"the task definition's data guard allows {', '.join(self.enforced) or 'none'}, "
                f"the map allows {', '.join(self.map_locations)}: a task started outside "
                "residency follows the task definition"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "enforced": self.enforced,
            "source": self.source,
            "matches_map": self.matches_map,
            "warning": self.warning,
        }


def definition_guard(container: Mapping[str, Any] | None, locations: Sequence[str]) -> GuardStatus:
    """Judge a task definition's container: a guard wrapper's `--allowed` in its command
    wins (the wrapper reads the variable only without it), else the environment variable."""
    name = str(container.get("name")) if container and container.get("name") else None
    raw: str | None = None
    source: str | None = None
    if container is not None:
        argv = [*(container.get("entryPoint") or []), *(container.get("command") or [])]
        raw = command_allowed(argv)
        source = "command" if raw is not None else None
        if raw is None:
            raw = _environment(container.get("environment")).get(ALLOWED_ENV)
            source = "environment" if raw is not None else None
    if raw is None:
        return GuardStatus(list(locations), None, None, name)
    try:
        enforced = parse_allowed(raw)
    except ValueError as error:
        return GuardStatus(list(locations), [], source, name, problem=str(error))
    return GuardStatus(list(locations), enforced, source, name)


# --- audit: what a task's record says about the guard ---------------------------------


def blocked_at_data(task: Mapping[str, Any], container: str | None) -> bool:
    """Did the task stop because its data guard refused (the guard's exit code)? The
    workload's container when the map names one, else any container."""
    if task.get("lastStatus") not in ("STOPPED", "DELETED"):
        return False
    for described in task.get("containers") or []:
        if container is not None and described.get("name") != container:
            continue
        if described.get("exitCode") == GUARD_EXIT_CODE:
            return True
    return False


def guard_override(task: Mapping[str, Any], locations: Sequence[str]) -> str | None:
    """Why the task's overrides bypass the guard: they set its allowed locations (the
    environment variable, or a wrapper's `--allowed` in an overridden command) to include a
    location the map does not allow. None when they do not. A stricter list is no bypass."""
    overrides = task.get("overrides") or {}
    for override in overrides.get("containerOverrides") or []:
        found: list[tuple[str, str]] = []
        value = _environment(override.get("environment")).get(ALLOWED_ENV)
        if value is not None:
            found.append((f"{ALLOWED_ENV}={value}", value))
        command = command_allowed(override.get("command") or [])
        if command is not None:
            found.append((f"--allowed {command}", command))
        for shown, raw in found:
            try:
                extra = [name for name in parse_allowed(raw) if name not in locations]
            except ValueError:
                continue  # malformed: the guard refuses everything, which bypasses nothing
            if extra:
                return (
                    f"overrides of container {override.get('name')} set {shown}: the data guard "
                    f"was told to allow {', '.join(extra)}, outside {', '.join(locations)}"
                )
    return None
