"""The residency map (`residency.yaml`): load, validate once, freeze.

Every problem is reported before any AWS call, each as one line naming the file, the line
and the field, with a suggestion where one helps (CONTRACT.md section 1).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from residency_cli.constants import RESERVED_TAG_PREFIXES, RESIDENCY_TAGS, WORKLOAD_TAG
from residency_cli.durations import parse_duration
from residency_cli.errors import ConfigError
from residency_cli.limits import (
    MAX_EXPRESSION_CHARACTERS,
    MAX_OVERRIDES_CHARACTERS,
    MAX_TAGS,
    tag_problem,
)
from residency_cli.placement import attribute_name_problem, build_expression, name_problem

DEFAULT_PATH = "residency.yaml"
DEFAULT_TIMEOUT_SECONDS = 3600.0
ENV_VAR = "RESIDENCY_CONFIG"

# Limits that keep a hostile or broken file from costing minutes and gigabytes (issue 14):
# refused before any parsing or right after composing the YAML, never after expanding it.
# A map of 3,000 workloads is about 300 KB; PyYAML (pure Python) reads ~1 MB a second.
MAX_MAP_BYTES = 1024 * 1024
# The map's own structure is at most 5 levels deep (workloads.NAME.tags.KEY).
MAX_DEPTH = 32
# YAML aliases may repeat values ("billion laughs": 10 lines that expand to 10^9 values);
# the values they add when expanded are counted, and a map beyond this many is refused.
MAX_ALIAS_EXPANSION = 10_000

_CLUSTER = re.compile(
    r"[A-Za-z0-9_-]{1,255}|arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9_-]{1,255}"
)
_TASK_DEFINITION = re.compile(
    r"[A-Za-z0-9_-]{1,255}(:[1-9]\d*)?"
    r"|arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/[A-Za-z0-9_-]{1,255}(:[1-9]\d*)?"
)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_CONTAINER = re.compile(r"[A-Za-z0-9_-]{1,255}")
_HOST_KEY = re.compile(r"[A-Za-z0-9_.:/\-]{1,1600}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid {what}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Location(_Model):
    description: str | None = None
    data_region: str | None = Field(
        default=None, description="The only AWS region where data from this location may be written"
    )

    @field_validator("data_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else _check(_REGION, value, "AWS region (like eu-central-1)")


class Workload(_Model):
    task_definition: str = Field(description="family, family:revision, or ARN")
    location: str | list[str] = Field(description="one location, or a list of them")
    container: str | None = None
    command: list[str] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    timeout: str | int = Field(default="1h", description="wait timeout: seconds, or 30s, 10m, 1h")
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("task_definition")
    @classmethod
    def _task_definition(cls, value: str) -> str:
        return _check(_TASK_DEFINITION, value, "task definition (family, family:revision or ARN)")

    @field_validator("location")
    @classmethod
    def _location(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names:
            raise ValueError("name at least one location")
        for name in names:
            problem = name_problem(name, "location")
            if problem:
                raise ValueError(problem)
        if len(set(names)) != len(names):
            raise ValueError("a location is listed twice")
        return value

    @field_validator("container")
    @classmethod
    def _container(cls, value: str | None) -> str | None:
        return None if value is None else _check(_CONTAINER, value, "container name")

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("command must not be empty; leave it out to use the image's command")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _check(_ENV_NAME, name, "environment variable name")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | int) -> str | int:
        parse_duration(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        # RunTask adds residency's own tags (constants.RESIDENCY_TAGS, at most 4) to these.
        room = MAX_TAGS - len(RESIDENCY_TAGS)
        if len(value) > room:
            raise ValueError(
                f"{len(value)} tags: ECS allows {MAX_TAGS} per task, {len(RESIDENCY_TAGS)} of "
                f"them residency's, so at most {room}"
            )
        for key, tag_value in value.items():
            if key.lower().startswith(RESERVED_TAG_PREFIXES):
                raise ValueError(f"tag {key!r} uses a reserved prefix (aws:, residency:)")
            problem = tag_problem(key, tag_value)
            if problem:
                raise ValueError(f"ECS would refuse it: {problem}")
        return value

    @model_validator(mode="after")
    def _overrides_fit(self) -> Workload:
        """The container override `run` sends (command, environment, the data guard's
        variable, a container name) within ECS's 8192 characters, JSON included."""
        override = {
            "containerOverrides": [
                {
                    "name": self.container or "x" * 255,
                    "command": list(self.command or []),
                    "environment": [
                        {"name": k, "value": v}
                        for k, v in {
                            **self.environment,
                            "RESIDENCY_ALLOWED_LOCATIONS": ",".join(self.locations),
                        }.items()
                    ],
                }
            ]
        }
        size = len(json.dumps(override, separators=(",", ":")))
        if size > MAX_OVERRIDES_CHARACTERS:
            raise ValueError(
                f"command and environment make a container override of {size} characters; "
                f"ECS allows {MAX_OVERRIDES_CHARACTERS}"
            )
        return self

    @property
    def locations(self) -> tuple[str, ...]:
        return (self.location,) if isinstance(self.location, str) else tuple(self.location)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class Config(_Model):
    version: Literal[1] = Field(description="format version; always 1")
    cluster: str = Field(description="ECS cluster name or ARN")
    region: str | None = Field(default=None, description="control-plane region")
    location_attribute: str = Field(
        default="location", description="container-instance attribute carrying a host's location"
    )
    locations: dict[str, Location] = Field(min_length=1)
    hosts: dict[str, str] = Field(default_factory=dict, description="host -> location")
    workloads: dict[str, Workload] = Field(min_length=1)
    journal: str | None = Field(
        default=None,
        description="the dispatch journal of everyone using this map: s3://BUCKET/PREFIX, "
        "or a file path (relative to the map); --journal and RESIDENCY_JOURNAL override it",
    )

    _source: str = PrivateAttr(default=DEFAULT_PATH)
    # hosts: key -> its line in the map (to name the line that a contradiction breaks)
    _host_lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        return self._source

    def declared_location(
        self, *, hostname: str | None, instance_id: str | None, container_instance_arn: str
    ) -> tuple[str, str] | None:
        """The map's inventory (`hosts:`) entry for this host, as (location, where), where
        is `file:line: hosts.KEY`; None when the map does not declare it. A hostname entry
        matches the host's name short or fully qualified (`bonus.host` = `bonus.host.acme.net`)."""
        ids = {container_instance_arn, container_instance_arn.rsplit("/", 1)[-1], instance_id}
        for key, location in self.hosts.items():
            if key in ids or (hostname is not None and same_hostname(key, hostname)):
                line = self._host_lines.get(key)
                where = f"{self._source}:{line}: hosts.{key}" if line else f"hosts.{key}"
                return location, where
        return None

    @property
    def journal_location(self) -> str | None:
        """`journal:` with a relative file path made relative to the map's directory."""
        if self.journal is None or "://" in self.journal:
            return self.journal
        path = Path(self.journal).expanduser()
        return str(path if path.is_absolute() else Path(self._source).parent / path)

    @field_validator("journal")
    @classmethod
    def _journal(cls, value: str | None) -> str | None:
        from residency_cli.errors import ResidencyError
        from residency_cli.journal import parse_location

        if value is not None:
            try:
                parse_location(value)
            except ResidencyError as error:
                why = error.message.removeprefix("invalid journal location ")
                raise ValueError(f"{why}; use s3://BUCKET/PREFIX or a file path") from None
        return value

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return _check(_CLUSTER, value, "cluster name or ARN")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else _check(_REGION, value, "AWS region (like eu-central-1)")

    @field_validator("location_attribute")
    @classmethod
    def _attribute(cls, value: str) -> str:
        problem = attribute_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _expressions_fit(self) -> Config:
        """Each workload's placement expression within ECS's 2000 characters."""
        for name, workload in self.workloads.items():
            expression = build_expression(self.location_attribute, workload.locations)
            if len(expression) > MAX_EXPRESSION_CHARACTERS:
                raise ValueError(
                    f"workloads.{name}: its placement expression has {len(expression)} "
                    f"characters; ECS allows {MAX_EXPRESSION_CHARACTERS}: name fewer locations"
                )
        return self

    def workload(self, name: str) -> Workload:
        """The named workload, or a usage error naming the known ones."""
        if name in self.workloads:
            return self.workloads[name]
        known = ", ".join(sorted(self.workloads))
        raise ConfigError(
            [f"unknown workload {name!r}{_suggest(name, self.workloads)}; known: {known}"]
        )

    def require_location(self, name: str) -> str:
        if name in self.locations:
            return name
        known = ", ".join(self.locations)
        raise ConfigError(
            [f"unknown location {name!r}{_suggest(name, self.locations)}; declared: {known}"]
        )


def _suggest(word: str, choices: Mapping[str, Any] | list[str]) -> str:
    # a broken map may have keys that are not strings (`1:`): they are no suggestion
    names = [choice for choice in choices if isinstance(choice, str)]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


# --- YAML with line numbers ----------------------------------------------------------------


def _key_value(node: yaml.Node) -> Any:
    """A mapping key as PyYAML constructs it (`yes` is True), so paths match the data."""
    if node.tag == "tag:yaml.org,2002:str" or not isinstance(node, yaml.ScalarNode):
        return node.value
    try:
        return yaml.safe_load(node.value)
    except yaml.YAMLError:
        return node.value


class _LineIndex:
    """Maps a path inside the document (keys and list indices) to its 1-based line."""

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self.duplicates: list[tuple[tuple[Any, ...], int]] = []

    def walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = _key_value(key_node)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                self.lines[child] = key_node.start_mark.line + 1
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def line(self, path: tuple[Any, ...]) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


def _dotted(path: tuple[Any, ...]) -> str:
    """`workloads.bonus.tags[0]`; a key that is not a printable string is shown as Python
    writes it (`locations['new\\nyork']`, `environment[None]`), so that a newline or an
    escape sequence in a key never reaches the terminal nor splits the message's line."""

    def part(p: Any) -> str:
        if isinstance(p, str) and p.isprintable():
            return p
        return f"[{p}]" if isinstance(p, int) else f"[{p!r}]"

    return ".".join(part(p) for p in path).replace(".[", "[")


# Complexity exception (C901): a table from pydantic's error types to the messages a map's
# author reads, one branch per type; the table is clearer in one place than split.
def _pydantic_messages(  # noqa: C901
    error: ValidationError, fields: dict[tuple[Any, ...], set[str]]
) -> Iterator[tuple[tuple[Any, ...], str]]:
    reported: set[tuple[Any, ...]] = set()
    for item in error.errors(include_url=False):
        if "[key]" in item["loc"]:
            # A mapping key that is not a string (`1:`, `null:`, `true:` under tags: or
            # environment:); _key_problems names the sections' own keys first.
            key = item.get("input")
            # pydantic names the key by its own rendering (True as 1): use the key itself
            path = (*item["loc"][: item["loc"].index("[key]") - 1], key)
            yield (
                path,
                f"key {key!r} must be a string, got {type(key).__name__} (quote it in YAML)",
            )
            continue
        loc = tuple(
            p for p in item["loc"] if p not in ("str", "list[str]", "int", "function-after")
        )
        if loc in reported:
            continue  # a union type fails once per member; its first reason is enough
        reported.add(loc)
        kind = item["type"]
        if kind == "extra_forbidden":
            key = loc[-1]
            allowed = sorted(fields.get(_model_path(loc[:-1]), set()))
            yield (
                loc,
                f"unknown key {key!r}{_suggest(str(key), allowed)} (allowed: {', '.join(allowed)})",
            )
        elif kind == "missing":
            yield loc, f"missing required field {loc[-1]!r}"
        elif kind == "literal_error" and loc == ("version",):
            yield loc, f"unsupported version {item.get('input')!r}; this residency reads version: 1"
        elif kind in ("string_type", "int_type") and loc and loc[-1] == "timeout":
            yield loc, "timeout must be seconds or a duration like 30m or 1h"
        elif kind == "too_short" and loc in (("locations",), ("workloads",)):
            yield loc, f"declare at least one entry under {loc[0]}:"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            yield loc, "expected a mapping of fields here (key: value lines)"
        elif kind == "list_type":
            yield loc, 'expected a list here, like ["a", "b"]'
        elif kind == "string_type":
            shown = item.get("input")
            yield loc, f"expected a string, got {type(shown).__name__} {shown!r} (quote it in YAML)"
        else:
            message = item["msg"].removeprefix("Value error, ")
            yield loc, message


def _model_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Collapse dict keys so that ('workloads', 'bonus') names the Workload model."""
    if len(loc) >= 2 and loc[0] in ("workloads", "locations"):
        return (loc[0], "*")
    return loc


def _known_fields() -> dict[tuple[Any, ...], set[str]]:
    return {
        (): set(Config.model_fields),
        ("workloads", "*"): set(Workload.model_fields),
        ("locations", "*"): set(Location.model_fields),
    }


def _key_problems(data: Mapping[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Names used as keys, reported on their own line (pydantic would name only the section)."""
    checks = {"locations": "location name", "workloads": "workload name"}
    for section, what in checks.items():
        entries = data.get(section)
        for name in entries if isinstance(entries, Mapping) else ():
            problem = name_problem(name, what)
            if problem:
                yield (section, name), problem
    hosts = data.get("hosts")
    for host, location in hosts.items() if isinstance(hosts, Mapping) else ():
        if not isinstance(host, str) or not _HOST_KEY.fullmatch(host):
            yield (
                ("hosts", host),
                f"{host!r} is not a valid host (hostname, mi-/i- id, container-instance id or ARN)",
            )
        elif isinstance(location, str) and name_problem(location, "location"):
            yield ("hosts", host), str(name_problem(location, "location"))


def _cross_references(data: Mapping[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    declared = data.get("locations") or {}
    if not isinstance(declared, Mapping) or not declared:
        return  # "declare at least one location" already says it all
    hosts = data.get("hosts")
    for host, location in hosts.items() if isinstance(hosts, Mapping) else ():
        if _is_undeclared(location, declared):
            yield ("hosts", host), _unknown_location(location, declared)
    workloads = data.get("workloads")
    for name, workload in workloads.items() if isinstance(workloads, Mapping) else ():
        if not isinstance(workload, Mapping):
            continue
        raw = workload.get("location")
        names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        for index, location in enumerate(names):
            if _is_undeclared(location, declared):
                path: tuple[Any, ...] = ("workloads", name, "location")
                yield (
                    (path if isinstance(raw, str) else (*path, index)),
                    _unknown_location(location, declared),
                )


def _is_undeclared(location: object, declared: Mapping[str, Any]) -> bool:
    """Only well-formed names are looked up; a malformed one already has its own message."""
    return isinstance(location, str) and name_problem(location) is None and location not in declared


def _unknown_location(location: str, declared: Mapping[str, Any]) -> str:
    known = ", ".join(str(name) for name in declared) or "none"
    suggestion = _suggest(location, list(declared))
    fix = suggestion if suggestion else "; declare it under locations:"
    return f"unknown location {location!r}{fix} (declared: {known})"


class _MapLoadError(yaml.MarkedYAMLError):
    """A map over one of the limits, reported as a YAML error is (with its line)."""


class _MapLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses nesting deeper than MAX_DEPTH while composing:
    PyYAML composes recursively, so 5000 `[` would end in RecursionError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _MapLoadError(
                    problem=f"the map nests deeper than {MAX_DEPTH} levels (a residency map "
                    "needs at most 5)",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> int:
    """Refuse a composed document whose aliases expand it beyond MAX_ALIAS_EXPANSION values,
    nest it deeper than MAX_DEPTH, or make it contain itself. An alias is the very node of
    its anchor, so sizes are computed once per distinct node (memoised, iteratively): the
    cost is that of the text, never that of the expansion. Returns the nodes visited."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = {id(root)}
    stack: list[tuple[yaml.Node, Iterator[yaml.Node]]] = [(root, iter(_children(root)))]
    visited = 1
    while stack:
        node, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            on_path.discard(id(node))
            parts = _children(node)
            size[id(node)] = 1 + sum(size[id(c)] for c in parts)
            height[id(node)] = 1 + max((height[id(c)] for c in parts), default=0)
            continue
        if id(child) in on_path:
            raise _MapLoadError(
                problem="a YAML alias refers to a collection that contains it",
                problem_mark=child.start_mark,
            )
        if id(child) not in size:
            visited += 1
            on_path.add(id(child))
            stack.append((child, iter(_children(child))))
    expansion = size[id(root)] - len(size)
    if expansion > MAX_ALIAS_EXPANSION:
        raise _MapLoadError(
            problem=f"YAML aliases expand the map by more than {MAX_ALIAS_EXPANSION} values "
            f"({expansion}); write the values out, or use fewer aliases",
            problem_mark=root.start_mark,
        )
    if height[id(root)] > MAX_DEPTH:
        raise _MapLoadError(
            problem=f"YAML aliases nest the map deeper than {MAX_DEPTH} levels",
            problem_mark=root.start_mark,
        )
    return visited


def _load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node graph and its data, composed once, checked before construction."""
    loader = _MapLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _too_large(size: int, source: str) -> ConfigError:
    return ConfigError(
        [
            f"{source}:1: the map is {size} bytes, over the limit of {MAX_MAP_BYTES} bytes "
            "(1 MiB); is this the right file?"
        ]
    )


def _yaml_error(error: yaml.YAMLError, source: str) -> ConfigError:
    """PyYAML's error as one `source:line: ...` line; its context (the construct the problem
    is in) is added when it starts on another line, where the real mistake often is."""
    mark = getattr(error, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context, context_mark = (
        getattr(error, "context", None),
        getattr(error, "context_mark", None),
    )
    if context and context_mark is not None and context_mark.line + 1 != line:
        problem += f" ({context} that starts on line {context_mark.line + 1})"
    what = "" if isinstance(error, _MapLoadError) else "YAML syntax error: "
    return ConfigError([f"{source}:{line}: {what}{problem}"])


def _by_line(found: list[tuple[tuple[Any, ...], str]], index: _LineIndex, source: str) -> list[str]:
    """The problems as `source:line: field: message` lines, in line order."""
    # One message per field: the first said (a name's own problem before its side effects).
    first: dict[tuple[Any, ...], str] = {}
    for path, message in found:
        first.setdefault(tuple(str(p) for p in path), message)
    problems = sorted(
        {
            (
                index.line(path),
                f"{source}:{index.line(path)}: {_dotted(path) or '(top level)'}: {message}",
            )
            for path, message in found
            if first.get(tuple(str(p) for p in path)) == message
        }
    )
    return [message for _, message in problems]


def parse_config(text: str, source: str = DEFAULT_PATH) -> Config:
    """Validate YAML text as a residency map; raises ConfigError listing every problem."""
    if len(text) > MAX_MAP_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_MAP_BYTES:
        raise _too_large(len(text.encode("utf-8", "surrogatepass")), source)
    try:
        node, data = _load_yaml(text)
    except RecursionError:  # a path PyYAML walks recursively that MAX_DEPTH did not cover
        raise ConfigError(
            [f"{source}:1: the map nests too deeply (a residency map needs at most 5 levels)"]
        ) from None
    except yaml.YAMLError as error:
        raise _yaml_error(error, source) from None
    if node is None or data is None:
        raise ConfigError(
            [
                f"{source}:1: the file is empty; start from `residency schema` "
                "or the example in docs/map.md"
            ]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{source}:1: expected a mapping (version, cluster, ...), got {type(data).__name__}"]
        )
    index = _LineIndex()
    index.walk(node, ())
    found: list[tuple[tuple[Any, ...], str]] = [
        (path, "key appears twice; keep one") for path, _ in index.duplicates
    ]
    found += [*_key_problems(data), *_cross_references(data)]
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        found += list(_pydantic_messages(error, _known_fields()))
        config = None
    if found:
        raise ConfigError(_by_line(found, index, source))
    if config is None:  # pragma: no cover - every pydantic error yields a message above
        raise ConfigError([f"{source}:1: the map is not valid (run `residency schema`)"])
    config._source = source
    config._host_lines = {str(key): index.line(("hosts", key)) for key in config.hosts}
    return config


def resolve_config_path(explicit: str | None) -> Path:
    """`--config`, else `$RESIDENCY_CONFIG`, else `./residency.yaml`."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def _read_map(path: Path) -> str:
    """The map's text: a regular file of at most MAX_MAP_BYTES, read no further than that.
    Opened without blocking (a FIFO would wait for a writer) and checked before reading
    (`/dev/zero` never ends, a 55 MB file costs a minute to parse)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as stream:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                [f"cannot read residency map {path}: not a regular file (a map is a YAML file)"]
            )
        if info.st_size > MAX_MAP_BYTES:
            raise _too_large(info.st_size, str(path))
        data = stream.read(MAX_MAP_BYTES + 1)
    if len(data) > MAX_MAP_BYTES:  # it grew since fstat
        raise _too_large(len(data), str(path))
    return data.decode("utf-8")


def load_config(explicit: str | None = None) -> Config:
    """Read and validate the residency map from the resolved path."""
    path = resolve_config_path(explicit)
    try:
        text = _read_map(path)
    except FileNotFoundError:
        raise ConfigError(
            [
                f"no residency map at {path}: "
                f"pass --config PATH, set {ENV_VAR}, or create {DEFAULT_PATH}"
            ]
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            [f"cannot read residency map {path}: not UTF-8 text (byte {error.start})"]
        ) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError([f"cannot read residency map {path}: {reason}"]) from None
    return parse_config(text, str(path))


def config_schema() -> dict[str, Any]:
    """The JSON Schema of residency.yaml, for editors."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "residency map (residency.yaml)"
    return schema


def task_definition_family(reference: str) -> str:
    """'arn:...:task-definition/fam:3', 'fam:3' and 'fam' all name family 'fam'."""
    return reference.rsplit("/", 1)[-1].split(":", 1)[0]


def same_hostname(declared: str, actual: str) -> bool:
    """Hostnames are equal ignoring case, and a short name equals its fully qualified form
    (SSM's ComputerName is the fully qualified name of the host)."""
    a, b = declared.lower().rstrip("."), actual.lower().rstrip(".")
    return a == b or b.startswith(a + ".") or a.startswith(b + ".")


def workload_for_task(config: Config, task: Mapping[str, Any]) -> str | None:
    """Which workload of the map a described task belongs to: decided by its task definition
    (family, and revision when the map pins one), never by a tag alone, since anyone allowed
    to call RunTask can put any tag on a task. The `residency:workload` tag only chooses among
    workloads that share the task definition."""
    candidates = workloads_of_definition(config, str(task.get("taskDefinitionArn", "")))
    if not candidates:
        return None
    tagged = task_tag_value(task, WORKLOAD_TAG)
    return tagged if tagged in candidates else candidates[0]


def workloads_of_definition(config: Config, definition_arn: str) -> list[str]:
    """The map's workloads that run this task definition (ARN or family:revision)."""
    family = task_definition_family(definition_arn)
    revision = (
        definition_arn.rsplit(":", 1)[-1] if ":" in definition_arn.rsplit("/", 1)[-1] else None
    )
    found = []
    for name, workload in config.workloads.items():
        reference = workload.task_definition
        if task_definition_family(reference) != family:
            continue
        pinned = reference.rsplit(":", 1)[-1] if ":" in reference.rsplit("/", 1)[-1] else None
        if pinned is None or revision is None or pinned == revision:
            found.append(name)
    return found


def task_tag_value(task: Mapping[str, Any], key: str) -> str | None:
    return next((t.get("value") for t in task.get("tags") or [] if t.get("key") == key), None)
