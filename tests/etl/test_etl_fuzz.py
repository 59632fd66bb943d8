"""Whatever file the jobs are given, they either read it whole or stop with one located error
(JobError): never another exception, never a partial result."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import common

HEADER = "id;first_name;last_name;yearly_salary"
cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
rows = st.lists(st.lists(cells, min_size=0, max_size=6), max_size=8)


def _consume(content: bytes) -> int | str:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "employees.csv"
        path.write_bytes(content)
        try:
            return sum(len(batch.ids) for batch in common.read_employees(path))
        except common.JobError as error:
            assert str(error)
            return "refused"


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
