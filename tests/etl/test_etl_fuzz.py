"""Whatever file the jobs are given, they either read it whole or stop with one located error
(JobError): never another exception, never a partial result, never a row lost or invented."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import common

HEADER = "id;first_name;last_name;yearly_salary"
cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
rows = st.lists(st.lists(cells, min_size=0, max_size=6), max_size=8)
LINE_BREAK = re.compile(rb"\r\n|\r|\n")  # what Arrow and the csv module both end a line on


class Accepted:
    def __init__(self, rows: int, cents: int) -> None:
        self.rows, self.cents = rows, cents


def _non_blank_data_lines(content: bytes) -> int:
    """The rows an accepted file must yield: one per data line that is not physically empty.

    Without quotes a line is a row; with them a quoted field may span lines, so the records
    are counted by the csv module instead (an empty line is the only record it reads as []).
    """
    body = content[len(content.split(b"\n", 1)[0]) + 1 :]  # what follows the header line
    if b'"' not in body:
        return sum(1 for line in LINE_BREAK.split(body) if line)
    text = io.StringIO(body.decode("utf-8"), newline="")
    return sum(1 for record in csv.reader(text, delimiter=";") if record)


def _consume(content: bytes) -> Accepted | common.JobError:
    """Read ``content`` as the input file and check the contract whichever way it goes.

    A refusal names the file and a line (``<file>, line N: <problem>``, on one line); an
    acceptance yields exactly one row per non-blank data line.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "employees.csv"
        path.write_bytes(content)
        try:
            batches = list(common.read_employees(path))
        except common.JobError as error:
            message = str(error)
            assert isinstance(error, common.InputError), message
            assert re.match(rf"{re.escape(str(path))}, line [1-9][0-9]*: \S", message), message
            assert error.line is not None and f", line {error.line}: " in message
            assert "\n" not in message and "\r" not in message, message
            return error
    accepted = Accepted(
        sum(len(batch.ids) for batch in batches),
        sum(sum(batch.cents.to_pylist()) for batch in batches),
    )
    assert accepted.rows == _non_blank_data_lines(content), content
    return accepted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused(content: bytes) -> None:
    _consume(content)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.sampled_from(["\n", "\r\n"]))
def test_any_rows_under_a_good_header_are_read_or_refused(
    table: list[list[str]], newline: str
) -> None:
    text = newline.join([HEADER, *(";".join(row) for row in table)]) + newline
    _consume(text.encode("utf-8"))


# Rows whose fate is known in advance: good ones (a unique id, names that may be quoted and
# hold ';' or line breaks), physically empty lines, and bad ones, rows of empty fields first.
names = st.sampled_from(["A", "Zoë", '"Smith; Jr"', '"O""Neil"', '"two\nlines"', '""', ""])
salaries = st.sampled_from(["0", "5", "19.99", "70000", "70000.01", "100.5", "999999999999.99"])
BAD_ROWS = [";;;", '"";"";"";""', ";", ";;", ";A;B;5", "A;B;5", "1;A;B;5;6", "1;A;B;x", " "]
lines = st.one_of(
    st.tuples(st.just("good"), names, names, salaries),
    st.tuples(st.just("blank")),
    st.tuples(st.just("bad"), st.sampled_from(BAD_ROWS)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(lines, max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.booleans(),
)
def test_rows_of_known_fate(
    table: list[tuple[str, ...]], newline: str, last_newline: bool, bom: bool
) -> None:
    texts, first_bad, line, rows, cents = [], None, 2, 0, 0
    for number, (kind, *fields) in enumerate(table, start=1):
        text = ""
        if kind == "good":
            text = f"{number};{';'.join(fields)}"
            rows, cents = rows + 1, cents + int(Decimal(fields[2]) * 100)
        elif kind == "bad":
            text = fields[0]
            first_bad = line if first_bad is None else first_bad
        texts.append(text.replace("\n", newline))
        line += 1 + text.count("\n")
    content = newline.join([HEADER, *texts]) + (newline if last_newline else "")
    outcome = _consume(("\ufeff" if bom else "").encode() + content.encode())
    if first_bad is None:
        assert isinstance(outcome, Accepted)
        assert (outcome.rows, outcome.cents) == (rows, cents)
    else:
        assert isinstance(outcome, common.InputError)
        assert outcome.line == first_bad
