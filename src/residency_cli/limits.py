"""ECS's documented limits on what `run` sends, shared by the map's validation (so a map
that could never dispatch fails `validate`, exit 2, instead of RunTask, exit 7) and the
sandbox (which refuses such a RunTask as ECS does).

Source: ECS API Reference, RunTask and Tag (botocore's ecs service-2.json carries the same
numbers): tags at most 50 per task, keys 1-128 and values 0-256 characters of
`[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`, no `aws:` prefix in any case on keys or values; overrides at
most 8192 characters "including the JSON formatting characters"; a placement expression at
most 2000 characters; at most 10 placement constraints (the task definition's included).
"""

from __future__ import annotations

import unicodedata

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_OVERRIDES_CHARACTERS = 8192
MAX_EXPRESSION_CHARACTERS = 2000
MAX_PLACEMENT_CONSTRAINTS = 10
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


def tag_text(text: str) -> bool:
    """`[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`: Unicode letters, separators, numbers and those marks."""
    return all(unicodedata.category(c)[0] in "LZN" or c in _TAG_PUNCTUATION for c in text)


def tag_problem(key: str, value: str) -> str | None:
    """Why ECS would refuse this tag (None when it would not)."""
    if not 1 <= len(key) <= MAX_TAG_KEY:
        return f"Tag key must be 1-{MAX_TAG_KEY} characters: {key[:40]!r}."
    if len(value) > MAX_TAG_VALUE:
        return f"Tag value of {key!r} must be at most {MAX_TAG_VALUE} characters."
    for text in (key, value):
        if not tag_text(text):
            return f"Tag {key!r} has characters outside [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]."
        if text.lower().startswith("aws:"):
            return f"Tag {key!r}: the aws: prefix is reserved for AWS use."
    return None
