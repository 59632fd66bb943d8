"""The bad-input suite: whatever a user (or a file) gives, the answer is a clear error of the
contract, never a traceback; and no value can change a placement expression's meaning."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from residency_cli.config import parse_config
from residency_cli.dispatch import parse_env, validate_run_id
from residency_cli.durations import parse_duration
from residency_cli.errors import ConfigError, UsageError
from residency_cli.hosts import match_host
from residency_cli.placement import ExpressionError, build_expression, evaluate, name_problem
from tests.support.maps import VALID

PROBLEM = re.compile(r"^m\.yaml:\d+: \S.*")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _loads_or_refuses(text: str) -> Any:
    try:
        config = parse_config(text, "m.yaml")
    except ConfigError as error:
        assert error.problems, "a refusal names at least one problem"
        for problem in error.problems:
            assert PROBLEM.match(problem), problem
        return None
    return config


@SLOW
@given(st.text(max_size=200))
def test_any_text_is_a_map_or_a_list_of_located_problems(text: str) -> None:
    _loads_or_refuses(text)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*path, index))
    return found


@SLOW
@given(data=st.data())
def test_any_value_anywhere_in_a_valid_map_is_accepted_safely_or_refused(
    data: st.DataObject,
) -> None:
    document = yaml.safe_load(VALID)
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    replacement = data.draw(values)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = replacement
    config = _loads_or_refuses(yaml.safe_dump(document))
    if config is None:
        return
    for name, workload in config.workloads.items():
        assert name_problem(name) is None
        expression = build_expression(config.location_attribute, workload.locations)
        for location in config.locations:
            assert evaluate(expression, {config.location_attribute: location}) is (
                location in workload.locations
            )
    for location in config.hosts.values():
        assert location in config.locations


@SLOW
@given(st.text(max_size=60), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_the_evaluator_answers_or_says_what_it_cannot_read(
    expression: str, attributes: dict[str, str]
) -> None:
    try:
        answer = evaluate(expression, attributes)
    except ExpressionError as error:
        message = str(error)
        assert message and "\n" not in message  # one line the user can act on
        return
    assert answer is True or answer is False
    # An expression it can read means the same thing whatever is around it.
    assert evaluate(f"({expression})", attributes) is answer
    assert evaluate(f"not ({expression})", attributes) is (not answer)


@SLOW
@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False)))
def test_durations_parse_or_say_why(text: Any) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and "duration" in message
        return
    assert seconds > 0 and math.isfinite(seconds)


@SLOW
@given(st.lists(st.text(max_size=20), max_size=5))
def test_env_options_parse_or_say_why(pairs: list[str]) -> None:
    try:
        env = parse_env(pairs)
    except UsageError as error:
        assert "--env" in str(error)
        return
    assert set(env) <= {p.partition("=")[0] for p in pairs}


@SLOW
@given(st.text(max_size=80))
def test_run_ids_are_accepted_or_refused_clearly(run_id: str) -> None:
    try:
        assert validate_run_id(run_id) == run_id
    except UsageError as error:
        assert "--run-id" in str(error)


INSTANCES = [
    {
        "containerInstanceArn": "arn:aws:ecs:eu-central-1:123456789012:container-instance/c/"
        "0123456789abcdef0123456789abcdef",
        "ec2InstanceId": "mi-0123456789abcdef0",
    }
]
DIRECTORY = [{"InstanceId": "mi-0123456789abcdef0", "ComputerName": "bonus.host"}]


@SLOW
@given(st.text(max_size=60))
def test_host_references_resolve_or_are_usage_errors(reference: str) -> None:
    try:
        instance, _ = match_host(INSTANCES, reference, lambda: DIRECTORY, "c")
    except UsageError:
        return
    assert instance is INSTANCES[0]


@pytest.mark.parametrize("reference", ["bonus.host", "BONUS.HOST", "mi-0123456789abcdef0"])
def test_host_references_that_resolve(reference: str) -> None:
    assert match_host(INSTANCES, reference, lambda: DIRECTORY, "c")[0] is INSTANCES[0]


# --- issue 14 items 9-12: sizes, depth, key types, control characters ------------------------

_BRACKETS = {"[": "]", "{": "}", "- ": "", "block": ""}


def _nested(kind: str, depth: int, closed: bool) -> str:
    if kind == "block":
        return "".join(" " * level + "a:\n" for level in range(depth))
    return kind * depth + (_BRACKETS[kind] * depth if closed else "")


@SLOW
@given(
    st.sampled_from(sorted(_BRACKETS)),
    st.integers(min_value=1, max_value=3000),
    st.booleans(),
)
def test_any_nesting_depth_is_a_map_or_located_problems(
    kind: str, depth: int, closed: bool
) -> None:
    _loads_or_refuses(_nested(kind, depth, closed))


keys = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.dates(),
)
SECTIONS = [
    ("locations",),
    ("hosts",),
    ("workloads",),
    ("workloads", "bonus", "tags"),
    ("workloads", "bonus", "environment"),
    ("locations", "newyork"),
    ("workloads", "bonus"),
    (),
]


@SLOW
@given(st.sampled_from(SECTIONS), keys, values)
def test_any_key_of_any_type_anywhere_is_a_map_or_located_problems(
    section: tuple[str, ...], key: Any, value: Any
) -> None:
    document = yaml.safe_load(VALID)
    parent = document
    for step in section:
        parent = parent[step]
    parent[key] = value
    _loads_or_refuses(yaml.safe_dump(document, allow_unicode=True))


CONTROL = st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Co"]) | st.sampled_from(
    ["\x1b", "\x9b", "\n", "\r", "\u202e", "\u2028", "\x00", "\x07"]
)
hostile_text = st.lists(st.one_of(CONTROL, st.characters()), max_size=30).map("".join)


@SLOW
@given(st.sampled_from(["description", "name", "tag", "env", "host"]), hostile_text)
def test_control_characters_in_map_values_load_or_are_refused(where: str, text: str) -> None:
    document = yaml.safe_load(VALID)
    if where == "description":
        document["locations"]["newyork"]["description"] = text
    elif where == "name":
        document["locations"][text] = {}
    elif where == "tag":
        document["workloads"]["bonus"]["tags"][text] = text
    elif where == "env":
        document["workloads"]["bonus"]["environment"]["X"] = text
    else:
        document["hosts"][text] = "newyork"
    try:
        dumped = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return  # not even representable as YAML
    _loads_or_refuses(dumped)


_SHOWN_UNSAFE = re.compile(
    "[\ud800-\udfff\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


@SLOW
@given(hostile_text)
def test_what_reaches_the_terminal_has_no_control_characters(text: str) -> None:
    from residency_cli.cli.render import printable

    shown = printable(text)
    assert not _SHOWN_UNSAFE.search(shown)
    assert printable(shown) == shown  # escaping twice changes nothing more
    kept = printable(text, newlines=True)
    assert kept.count("\n") == text.count("\n")
    assert not _SHOWN_UNSAFE.search(kept.replace("\n", ""))


@SLOW
@given(st.lists(hostile_text, min_size=1, max_size=4))
def test_an_error_is_one_prefixed_line_per_problem(
    problems: list[str],
) -> None:
    import contextlib
    import io

    from residency_cli.cli.render import error

    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        error("\n".join(problems))
    lines = stream.getvalue().split("\n")
    assert lines[-1] == ""
    assert len(lines[:-1]) == sum(p.count("\n") + 1 for p in problems)
    for line in lines[:-1]:
        assert line.startswith("error: ") and not _SHOWN_UNSAFE.search(line)


@SLOW
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=12))
def test_aliases_are_refused_exactly_beyond_the_budget(levels: int, fan: int) -> None:
    """Anchors a1..aN, each a list of `fan` aliases of the one before: the aliases add
    sum(S_l - 1) values, S_l = 1 + fan * S_(l-1), S_0 = 1. Refused for that iff it is over
    the budget, else for the extra keys alone; never expanded to find out."""
    from residency_cli.config import MAX_ALIAS_EXPANSION

    lines = ["a0: &a0 x"]
    sizes = [1]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fan)}]")
        sizes.append(1 + fan * sizes[-1])
    added = sum(size - 1 for size in sizes)
    with pytest.raises(ConfigError) as raised:
        parse_config(VALID + "\n".join(lines) + "\n", "m.yaml")
    message = "\n".join(raised.value.problems)
    assert all(PROBLEM.match(p) for p in raised.value.problems)
    if added > MAX_ALIAS_EXPANSION:
        assert f"YAML aliases expand the map by more than {MAX_ALIAS_EXPANSION} values" in message
        assert f"({added})" in message
    else:
        assert "YAML aliases" not in message and "unknown key 'a0'" in message


@SLOW
@given(st.integers(min_value=0, max_value=4000))
def test_maps_over_the_size_limit_are_refused_whatever_they_hold(
    padding: int,
) -> None:
    from unittest import mock

    limit = len(VALID) + 2000
    text = VALID + "#" * padding + "\n"
    with mock.patch("residency_cli.config.MAX_MAP_BYTES", limit):
        config = _loads_or_refuses(text)
    if len(text.encode()) > limit:
        assert config is None
    else:
        assert config is not None


@SLOW
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="0123456789١٠٢٣۴５６.", min_size=1, max_size=4),
            st.sampled_from(["", "s", "m", "h", "d"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_durations_are_ascii_with_each_unit_once_largest_first(
    parts: list[tuple[str, str]],
) -> None:
    text = "".join(number + unit for number, unit in parts)
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        assert "\n" not in str(error) and "duration" in str(error)
        return
    assert text.isascii()
    order = ["dhms".index(char) for char in text if char.isalpha()]
    assert order == sorted(set(order))  # each unit once, largest first
    assert seconds > 0


@SLOW
@given(st.text(max_size=80))
def test_role_names_are_iam_names_or_refused(role: str) -> None:
    from residency_cli.activation import role_problem

    problem = role_problem(role)
    if problem is None:
        assert 1 <= len(role) <= 64
        assert re.fullmatch(r"[A-Za-z0-9_+=,.@/-]+", role)
    else:
        assert "\n" not in problem and "--role" in problem


hostile_maps = st.one_of(
    st.builds(_nested, st.sampled_from(sorted(_BRACKETS)), st.integers(1, 3000), st.booleans()),
    st.builds(
        lambda key, text: VALID.replace("{RUN_MODE: full}", f"{{{key}: {json_scalar(text)}}}"),
        st.sampled_from(["1", "null", "true", "2.5", "[a]", "2024-01-01", "RUN"]),
        hostile_text,
    ),
    st.builds(lambda text: VALID.replace("ACME US data centre", json_scalar(text)), hostile_text),
    st.builds(
        lambda text: VALID.replace("  frankfurt:\n", f"  {json_scalar(text)}:\n"), hostile_text
    ),
)


def json_scalar(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's) holding `text`."""
    import json

    return json.dumps(text)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=hostile_maps)
def test_the_cli_answers_any_hostile_map_with_exit_0_or_2(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import tempfile
    from pathlib import Path

    from residency_cli.cli.app import main

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "residency.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        code = main(["--config", str(path), "validate"])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err
    assert all(line.startswith("error: ") for line in err.splitlines())
    assert not _SHOWN_UNSAFE.search(err.replace("\n", ""))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(number=st.one_of(st.integers(), st.integers(min_value=2**62)))
def test_any_journal_limit_is_exit_0_or_2(number: int, capsys: pytest.CaptureFixture[str]) -> None:
    from residency_cli.cli.app import main

    code = main(["journal", "show", "--limit", str(number), "-o", "json"])
    err = capsys.readouterr().err
    assert code == (0 if 0 <= number <= 1_000_000_000 else 2), err
    assert "internal error" not in err
