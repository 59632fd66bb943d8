"""Tax amount job: the total tax payable, 21% of each yearly salary truncated to a whole unit.

Run as ``python3 /app/tax_amount.py --input_file=...``; the report is a header
``tax_amount`` and one row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError as missing:  # the image has it; a bare host may not: one line, no traceback
    sys.exit(f"error: {missing.name} is not installed: pip install -r docker/requirements.txt")

import common

DEFAULT_OUTPUT_NAME = "tax_amount.csv"
TAX_PERCENT = 21


def tax_for(salary_cents: int) -> int:
    """Whole units of tax on one salary given in cents."""
    return salary_cents * TAX_PERCENT // 100_00


def tax_column(salary_cents: pa.Array) -> pa.Array:
    """``tax_for`` over an int64 column (salaries are never negative: // is truncation)."""
    return pc.divide(pc.multiply(salary_cents, TAX_PERCENT), 100_00)


def total_tax(batches: Iterable[common.EmployeeBatch]) -> int:
    """The sum over every employee of ``tax_for`` (a Python int: it cannot overflow)."""
    return sum(pc.sum(tax_column(batch.cents)).as_py() or 0 for batch in batches)


def report_text(total: int) -> str:
    return f"tax_amount\n{total}\n"


def create_report(source: Path, target: Path) -> None:
    common.logger.info(f"Creating the total tax payable report at '{target}'")
    with common.atomic_output(target) as stream:
        total = total_tax(common.read_employees(source))
        stream.write(report_text(total).encode())


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_job(
        argv,
        description="Calculate the total tax payable for all employees",
        default_output_name=DEFAULT_OUTPUT_NAME,
        write_report=create_report,
    )


if __name__ == "__main__":
    sys.exit(main())
