"""Placement rules: build and evaluate ECS cluster-query-language expressions.

Pure code, no AWS. `run` builds its constraint here; pre-flight, audit and the sandbox all
judge hosts with the same `evaluate`, so what we promise and what we check never drift apart.
See https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cluster-query-language.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_RESERVED_PREFIX = "ecs."
# Words of the cluster query language: as a bare value they would read as an operator.
RESERVED_WORDS = frozenset(
    {"and", "or", "not", "in", "not_in", "exists", "not_exists", "equals", "not_equals"}
    | {"matches", "not_matches"}
)


class ExpressionError(ValueError):
    """An expression that is not in the supported subset of the cluster query language."""


def name_problem(value: object, what: str = "value") -> str | None:
    """Why `value` cannot be a location name or attribute value, or None if it can.

    Anything outside `A-Z a-z 0-9 _ . -` is rejected rather than escaped: a space, quote,
    bracket, comma or `==` could otherwise change the meaning of a placement expression.
    """
    if not isinstance(value, str):
        return f"{what} must be a string, got {type(value).__name__} (quote it in YAML)"
    if not value:
        return f"{what} must not be empty"
    if len(value) > 128:
        return f"{what} is {len(value)} characters long; at most 128 are allowed"
    if not NAME_PATTERN.fullmatch(value):
        bad = sorted({c for c in value if not NAME_PATTERN.fullmatch(c)})
        shown = " ".join(repr(c) for c in bad)
        return f"{what} {value!r} contains {shown}; use only letters, digits, '_', '.' and '-'"
    if value.lower() in RESERVED_WORDS:
        return f"{what} {value!r} is a word of the ECS query language; choose another name"
    return None


def attribute_name_problem(value: object) -> str | None:
    """Why `value` cannot be a custom attribute name, or None if it can."""
    problem = name_problem(value, "attribute name")
    if problem is None and isinstance(value, str) and value.startswith(_RESERVED_PREFIX):
        return f"attribute name {value!r} starts with 'ecs.', which AWS reserves"
    return problem


def _require_name(value: str, what: str) -> None:
    problem = name_problem(value, what)
    if problem:
        raise ValueError(problem)


def build_expression(attribute: str, locations: Sequence[str]) -> str:
    """The `memberOf` expression that admits exactly the hosts labelled with `locations`."""
    problem = attribute_name_problem(attribute)
    if problem:
        raise ValueError(problem)
    if not locations:
        raise ValueError("at least one location is required")
    for location in locations:
        _require_name(location, "location")
    if len(locations) == 1:
        return f"attribute:{attribute} == {locations[0]}"
    return f"attribute:{attribute} in [{', '.join(locations)}]"


def build_constraints(attribute: str, locations: Sequence[str]) -> list[dict[str, str]]:
    """The `placementConstraints` of a RunTask request (CONTRACT.md section 2)."""
    return [{"type": "memberOf", "expression": build_expression(attribute, locations)}]


# --- evaluation -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) | (?P<lbracket>\[) | (?P<rbracket>\]) | (?P<comma>,)
      | (?P<op>==|!=|=~|!~|&&|\|\||!in\b|!exists\b|!)
      | (?P<quoted>"[^"]*"|'[^']*')
      | (?P<word>[^\s()\[\],!=~&|"']+)
    )""",
    re.VERBOSE,
)

_COMPARISONS = {
    "==": "==",
    "equals": "==",
    "!=": "!=",
    "not_equals": "!=",
    "in": "in",
    "not_in": "not_in",
    "!in": "not_in",
    "=~": "matches",
    "matches": "matches",
    "!~": "not_matches",
    "not_matches": "not_matches",
}
_UNARY = {"exists": "exists", "!exists": "not_exists", "not_exists": "not_exists"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    stripped_end = len(expression.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise ExpressionError(f"unexpected character at position {position}: {expression!r}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "quoted":
            kind, text = "word", text[1:-1]
        tokens.append(_Token(kind, text, match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over: or_expr := and_expr (or and_expr)*; and_expr := unary (and unary)*;
    unary := not unary | '(' or_expr ')' | subject operator [argument]."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.index = 0

    def parse(self) -> Any:
        if not self.tokens:
            raise ExpressionError("empty expression")
        node = self._or()
        if self.index != len(self.tokens):
            token = self.tokens[self.index]
            raise ExpressionError(f"unexpected {token.text!r} at position {token.position}")
        return node

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise ExpressionError(f"expression ends too early: {self.expression!r}")
        self.index += 1
        return token

    def _is_word(self, *words: str) -> bool:
        token = self._peek()
        return token is not None and token.text.lower() in words and token.kind in ("word", "op")

    def _or(self) -> Any:
        node = self._and()
        while self._is_word("or", "||"):
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._unary()
        while self._is_word("and", "&&"):
            self._take()
            node = ("and", node, self._unary())
        return node

    def _unary(self) -> Any:
        token = self._peek()
        if token is not None and (token.text == "!" or (token.kind, token.text) == ("word", "not")):
            self._take()
            return ("not", self._unary())
        if token is not None and token.kind == "lparen":
            self._take()
            node = self._or()
            if self._take().kind != "rparen":
                raise ExpressionError(f"missing ')' in {self.expression!r}")
            return node
        return self._comparison()

    def _comparison(self) -> Any:
        subject = self._take()
        if subject.kind != "word":
            raise ExpressionError(f"expected a subject at position {subject.position}")
        operator = self._take()
        name = operator.text.lower()
        if name == "not" and self._is_word("in"):  # `not in [..]`, as people write it
            self._take()
            name = "not_in"
        if name in _UNARY:
            return (_UNARY[name], subject.text)
        if name not in _COMPARISONS:
            raise ExpressionError(f"unknown operator {operator.text!r} at {operator.position}")
        kind = _COMPARISONS[name]
        if kind in ("in", "not_in"):
            return (kind, subject.text, self._list())
        value = self._take()
        if value.kind != "word":
            raise ExpressionError(f"expected a value at position {value.position}")
        return (kind, subject.text, value.text)

    def _list(self) -> tuple[str, ...]:
        if self._take().kind != "lbracket":
            raise ExpressionError(f"'in' needs a [list] in {self.expression!r}")
        values: list[str] = []
        while True:
            token = self._take()
            if token.kind == "rbracket" and not values:
                return ()
            if token.kind != "word":
                raise ExpressionError(f"expected a list value at position {token.position}")
            values.append(token.text)
            separator = self._take()
            if separator.kind == "rbracket":
                return tuple(values)
            if separator.kind != "comma":
                raise ExpressionError(f"expected ',' or ']' at position {separator.position}")


def parse_expression(expression: str) -> Any:
    """Parse into a small tuple tree; raises ExpressionError outside the supported subset."""
    return _Parser(expression).parse()


def _subject_value(subject: str, fields: Mapping[str, str]) -> str | None:
    if subject.startswith("attribute:"):
        return fields.get(subject[len("attribute:") :])
    if subject in fields:
        return fields[subject]
    raise ExpressionError(f"unsupported subject {subject!r}: only attribute:NAME is evaluated")


# Complexity exception (C901): one branch per operator of the placement language, a table
# read top to bottom; splitting it would scatter the language over several functions.
def _evaluate(node: Any, fields: Mapping[str, str]) -> bool:  # noqa: C901
    kind = node[0]
    if kind == "or":
        return _evaluate(node[1], fields) or _evaluate(node[2], fields)
    if kind == "and":
        return _evaluate(node[1], fields) and _evaluate(node[2], fields)
    if kind == "not":
        return not _evaluate(node[1], fields)
    value = _subject_value(node[1], fields)
    if kind == "exists":
        return value is not None
    if kind == "not_exists":
        return value is None
    if kind == "==":
        return bool(value == node[2])
    if kind == "!=":
        return bool(value != node[2])
    if kind == "in":
        return value is not None and value in node[2]
    if kind == "not_in":
        return value is None or value not in node[2]
    if kind in ("matches", "not_matches"):
        try:
            pattern = re.compile(node[2])
        except re.error as error:
            raise ExpressionError(f"invalid pattern {node[2]!r}: {error}") from None
        found = value is not None and pattern.fullmatch(value) is not None
        return found if kind == "matches" else not found
    raise ExpressionError(f"unknown node {kind!r}")  # pragma: no cover - parser never builds it


def evaluate(expression: str, attributes: Mapping[str, str]) -> bool:
    """Does a host with these attributes (name -> value) satisfy `expression`?"""
    return _evaluate(parse_expression(expression), attributes)


def allowed_location(location: str | None, allowed: Sequence[str]) -> bool:
    """The one residency rule: a host's location must be one the workload names."""
    return location is not None and location in allowed
