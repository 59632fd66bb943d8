"""The placement evaluator: what pre-flight, audit and the sandbox judge hosts with."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residency_cli.placement import (
    ExpressionError,
    attribute_name_problem,
    build_constraints,
    build_expression,
    evaluate,
    name_problem,
)

NAME_ALPHABET = string.ascii_letters + string.digits + "_.-"
names = st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=20).filter(
    lambda n: name_problem(n) is None
)
attribute_names = names.filter(lambda n: attribute_name_problem(n) is None)


def test_single_location_builds_exact_contract_expression() -> None:
    assert build_constraints("location", ["newyork"]) == [
        {"type": "memberOf", "expression": "attribute:location == newyork"}
    ]


def test_several_locations_keep_declared_order() -> None:
    assert build_expression("site", ["b", "a"]) == "attribute:site in [b, a]"


@pytest.mark.parametrize(
    ("expression", "attributes", "expected"),
    [
        ("attribute:location == newyork", {"location": "newyork"}, True),
        ("attribute:location == newyork", {"location": "frankfurt"}, False),
        ("attribute:location == newyork", {}, False),
        ("attribute:location != newyork", {}, True),
        ("attribute:location != newyork", {"location": "newyork"}, False),
        ("attribute:location in [a, b]", {"location": "b"}, True),
        ("attribute:location in [a,b]", {"location": "c"}, False),
        ("attribute:location not in [a, b]", {"location": "c"}, True),
        ("attribute:location not in [a, b]", {"location": "a"}, False),
        ("attribute:location NOT IN [a, b]", {}, True),
        ("attribute:location not_in [a, b]", {"location": "b"}, False),
        ("not attribute:location not in [a]", {"location": "a"}, True),
        ("attribute:location not_in [a, b]", {"location": "c"}, True),
        ("attribute:location !in [a, b]", {"location": "a"}, False),
        ("attribute:location not_in [a]", {}, True),
        ("attribute:gpu exists", {"gpu": "yes"}, True),
        ("attribute:gpu exists", {}, False),
        ("attribute:gpu !exists", {}, True),
        ("attribute:a == 1 and attribute:b == 2", {"a": "1", "b": "2"}, True),
        ("attribute:a == 1 && attribute:b == 2", {"a": "1", "b": "3"}, False),
        ("attribute:a == 1 or attribute:b == 2", {"a": "0", "b": "2"}, True),
        ("attribute:a == 1 || attribute:b == 2", {}, False),
        ("not attribute:a == 1", {"a": "1"}, False),
        ("!(attribute:a == 1)", {"a": "2"}, True),
        (
            "(attribute:a == 1 or attribute:a == 2) and attribute:b exists",
            {"a": "2", "b": "x"},
            True,
        ),
        ("attribute:a == 1 or attribute:a == 2 and attribute:b exists", {"a": "1"}, True),
        ("attribute:a =~ ny.*", {"a": "nyc"}, True),
        ("attribute:a !~ ny.*", {"a": "nyc"}, False),
        ("  attribute:location   ==   newyork  ", {"location": "newyork"}, True),
        ("attribute:location == 'newyork'", {"location": "newyork"}, True),
    ],
)
def test_evaluates_supported_subset(
    expression: str, attributes: dict[str, str], expected: bool
) -> None:
    assert evaluate(expression, attributes) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "attribute:a ==",
        "attribute:a == 1 and",
        "(attribute:a == 1",
        "attribute:a in a, b",
        "attribute:a in [a b]",
        "attribute:a <> 1",
        "attribute:a == 1 attribute:b == 2",
        "runningTasksCount == 1",
    ],
)
def test_rejects_what_it_cannot_evaluate(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, {"a": "1"})


@pytest.mark.parametrize(
    "value",
    [
        "new york",
        "a==b",
        "a or attribute:x exists",
        "[a]",
        "a,b",
        "'a'",
        '"a"',
        "a(b)",
        "",
        "x" * 129,
        "ü",
    ],
)
def test_names_that_could_change_an_expression_are_rejected(value: str) -> None:
    assert name_problem(value) is not None
    with pytest.raises(ValueError):
        build_expression("location", [value])


def test_reserved_attribute_prefix_is_rejected() -> None:
    assert attribute_name_problem("ecs.os-type") is not None
    assert attribute_name_problem("location") is None


@settings(max_examples=300, deadline=None)
@given(
    attribute=attribute_names,
    allowed=st.lists(names, min_size=1, max_size=5, unique=True),
    host_value=st.one_of(st.none(), names),
    noise=st.dictionaries(attribute_names, names, max_size=3),
)
def test_built_expression_matches_exactly_hosts_with_an_allowed_location(
    attribute: str, allowed: list[str], host_value: str | None, noise: dict[str, str]
) -> None:
    attributes = {k: v for k, v in noise.items() if k != attribute}
    if host_value is not None:
        attributes[attribute] = host_value
    expected = host_value is not None and host_value in allowed
    assert evaluate(build_expression(attribute, allowed), attributes) is expected


@settings(max_examples=300, deadline=None)
@given(value=st.text(min_size=0, max_size=40))
def test_no_value_can_change_an_expressions_meaning(value: str) -> None:
    """Anything accepted as a name yields an expression comparing exactly that one value."""
    if name_problem(value) is not None:
        with pytest.raises(ValueError):
            build_expression("location", [value])
        return
    expression = build_expression("location", [value])
    assert evaluate(expression, {"location": value})
    assert not evaluate(expression, {"location": value + "x"})
    assert not evaluate(expression, {})
