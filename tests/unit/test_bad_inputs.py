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
