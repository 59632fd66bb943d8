"""Christmas bonus job: every employee's row plus a ``bonus`` column.

The bonus is 5% of the yearly salary when the salary is at most 70000, else 3%,
truncated to a whole unit. Run as ``python3 /app/christmas_bonus.py --input_file=...``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError as missing:  # the image has it; a bare host may not: one line, no traceback
    sys.exit(f"error: {missing.name} is not installed: pip install -r docker/requirements.txt")

import common

OUTPUT_HEADER = "id;first_name;last_name;yearly_salary;bonus\n"
DEFAULT_OUTPUT_NAME = "salary_with_bonus.csv"
THRESHOLD_CENTS = 70_000_00  # salaries up to and including 70000 get the higher rate
LOW_RATE_PERCENT = 3
HIGH_RATE_PERCENT = 5


def bonus_for(salary_cents: int) -> int:
    """Whole units of bonus for a salary given in cents."""
    percent = HIGH_RATE_PERCENT if salary_cents <= THRESHOLD_CENTS else LOW_RATE_PERCENT
    return salary_cents * percent // 100_00  # cents * percent / 100 -> cents; / 100 -> units


def bonus_column(salary_cents: pa.Array) -> pa.Array:
    """``bonus_for`` over an int64 column (salaries are never negative: // is truncation)."""
    percent = pc.if_else(
        pc.less_equal(salary_cents, THRESHOLD_CENTS), HIGH_RATE_PERCENT, LOW_RATE_PERCENT
    )
    return pc.divide(pc.multiply(salary_cents, percent), 100_00)


def quote_column(values: pa.Array) -> pa.Array:
    """CSV-quote the values that contain the delimiter, a quote or a line break."""
    needs_quotes = pc.match_substring_regex(values, '[;"\r\n]')
    if not pc.any(needs_quotes).as_py():
        return values
    escaped = pc.replace_substring(values, '"', '""')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.if_else(needs_quotes, quoted, values)


def report_lines(batch: common.EmployeeBatch) -> pa.Array:
    """One output line (with its newline) per employee of the batch."""
    bonus = pc.cast(bonus_column(batch.cents), pa.string())
    ids = batch.ids if batch.plain_ids else quote_column(batch.ids)
    fields = [ids, quote_column(batch.first_names), quote_column(batch.last_names)]
    row = pc.binary_join_element_wise(*fields, batch.salaries, bonus, ";")
    return pc.binary_join_element_wise(row, "", "\n")


def write_lines(stream: BinaryIO, lines: pa.Array) -> None:
    """Write a string array's characters as they sit in memory: no per-row Python."""
    if len(lines) == 0:
        return
    _, offsets, data = lines.buffers()
    bounds = pa.Array.from_buffers(pa.int32(), len(lines) + 1, [None, offsets], offset=lines.offset)
    stream.write(data[bounds[0].as_py() : bounds[-1].as_py()])


def write_report(batches: Iterable[common.EmployeeBatch], stream: BinaryIO) -> None:
    stream.write(OUTPUT_HEADER.encode())
    for lines in common.pipelined(report_lines, batches):  # formatting runs on workers
        write_lines(stream, lines)


def create_report(source: Path, target: Path) -> None:
    common.logger.info(f"Creating the yearly salary with bonus report at '{target}'")
    with common.atomic_output(target) as stream:
        write_report(common.read_employees(source), stream)


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_job(
        argv,
        description="Calculate every employee's Christmas bonus",
        default_output_name=DEFAULT_OUTPUT_NAME,
        write_report=create_report,
    )


if __name__ == "__main__":
    sys.exit(main())
