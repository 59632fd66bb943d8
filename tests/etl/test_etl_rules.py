"""The money rules, one value at a time and as columns, against Decimal worked by hand."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_DOWN, Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import christmas_bonus
import common
import tax_amount


def decimal_bonus(salary: str) -> int:
    value = Decimal(salary)
    rate = Decimal("0.05") if value <= 70000 else Decimal("0.03")
    return int((value * rate).to_integral_value(rounding=ROUND_DOWN))


def decimal_tax(salary: str) -> int:
    return int((Decimal(salary) * Decimal("0.21")).to_integral_value(rounding=ROUND_DOWN))


@pytest.mark.parametrize(
    ("salary", "bonus"),
    [
        ("70000", 3500),  # at the line: 5%
        ("70000.0", 3500),
        ("70000.00", 3500),
        ("70000.01", 2100),  # one cent over: 3% (2100.0003)
        ("69999.99", 3499),  # 3499.9995, truncated
        ("0", 0),
        ("0.00", 0),
        ("19.99", 0),
        ("20", 1),
        ("33333.33", 1666),
        ("100000", 3000),
        ("999999999999.99", 29999999999),
    ],
)
def test_bonus_at_the_boundaries(salary: str, bonus: int) -> None:
    cents = common.parse_salary_cents(salary)
    assert christmas_bonus.bonus_for(cents) == bonus == decimal_bonus(salary)
    column = christmas_bonus.bonus_column(pa.array([cents], pa.int64()))
    assert column.to_pylist() == [bonus]


@pytest.mark.parametrize(
    ("salary", "tax"),
    [("100", 21), ("4.76", 0), ("4.77", 1), ("66841.47", 14036), ("70000.01", 14700)],
)
def test_tax_truncates_each_salary(salary: str, tax: int) -> None:
    assert tax_amount.tax_for(common.parse_salary_cents(salary)) == tax == decimal_tax(salary)


@pytest.mark.parametrize(
    ("text", "cents"),
    [("0", 0), ("7", 700), ("7.5", 750), ("7.05", 705), ("007.10", 710), ("70000", 7000000)],
)
def test_parse_salary_cents(text: str, cents: int) -> None:
    assert common.parse_salary_cents(text) == cents
    assert common.salary_cents_column(pa.array([text])).to_pylist() == [cents]


BAD_SALARIES = [
    "",
    " 5",
    "5 ",
    "-5",
    "+5",
    "1e3",
    "5.",
    ".5",
    "5.001",
    "5,00",
    "NaN",
    "inf",
    "٣",
    "1_000",
    "0x10",
    "1234567890123",
    "5.0.0",
]


@pytest.mark.parametrize("text", BAD_SALARIES)
def test_bad_salaries_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        common.parse_salary_cents(text)
    assert common.salary_cents_column(pa.array(["1.00", text])) is None


salary_texts = st.builds(
    lambda whole, places, digits: whole if places == 0 else f"{whole}.{digits[:places]}",
    st.integers(0, 10**12 - 1).map(str),
    st.integers(0, 2),
    st.text("0123456789", min_size=2, max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(salary_texts, min_size=1, max_size=40))
def test_columns_agree_with_decimal(salaries: list[str]) -> None:
    cents = common.salary_cents_column(pa.array(salaries))
    assert cents is not None
    assert christmas_bonus.bonus_column(cents).to_pylist() == [decimal_bonus(s) for s in salaries]
    assert tax_amount.tax_column(cents).to_pylist() == [decimal_tax(s) for s in salaries]
    assert [common.parse_salary_cents(s) for s in salaries] == cents.to_pylist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=30))
def test_id_keys_agree(ids: list[str]) -> None:
    assert common.id_key_column(pa.array(ids)).to_pylist() == [common.id_key(i) for i in ids]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.integers(-50, 50), max_size=20), max_size=12),
    st.integers(1, 25),
    st.integers(1, 7),
)
def test_duplicate_keys_in_memory_and_spilled(
    batches: list[list[int]], run_size: int, chunk_size: int
) -> None:
    finder = common.DuplicateKeys(run_size=run_size, chunk_size=chunk_size)
    for keys in batches:
        finder.add(pa.array(keys, pa.int64()))
    counts = Counter(key for keys in batches for key in keys)
    assert finder.duplicates() == {key for key, n in counts.items() if n > 1}


def test_s3_key_and_region_names() -> None:
    assert common.s3_key("reports/2024/", "x.csv") == "reports/2024/x.csv"
    assert common.s3_key("/a/b", "x.csv") == "a/b/x.csv"
    assert common.s3_key("", "x.csv") == "x.csv"
    assert common.bucket_region(None) == "us-east-1"
    assert common.bucket_region("") == "us-east-1"
    assert common.bucket_region("EU") == "eu-west-1"
    assert common.bucket_region("eu-central-1") == "eu-central-1"


def test_redact_removes_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    text = "denied for AKIAABCDEFGHIJKLMNOP with s3cr3t-value\nand token tok-123"
    assert common.redact(text, ["tok-123"]) == "denied for *** with *** and token ***"


def test_report_lines_quote_only_what_needs_it() -> None:
    batch = common.EmployeeBatch(
        ids=pa.array(["1", "2"]),
        first_names=pa.array(["Ann;Marie", 'Jo "JJ"']),
        last_names=pa.array(["O'Neil", "Smith"]),
        salaries=pa.array(["70000", "70000.01"]),
        cents=pa.array([7000000, 7000001], pa.int64()),
        plain_ids=True,
    )
    lines = christmas_bonus.report_lines(batch).to_pylist()
    assert lines == ['1;"Ann;Marie";O\'Neil;70000;3500\n', '2;"Jo ""JJ""";Smith;70000.01;2100\n']


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text("0123456789.-+e ,٣", max_size=16), min_size=1, max_size=20))
def test_column_validation_agrees_with_the_pattern(texts: list[str]) -> None:
    def scalar(text: str) -> int | None:
        try:
            return common.parse_salary_cents(text)
        except ValueError:
            return None

    expected = [scalar(text) for text in texts]
    column = common.salary_cents_column(pa.array(texts))
    if None in expected:
        assert column is None
    else:
        assert column is not None and column.to_pylist() == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("0123456789a-+ ", min_size=1, max_size=20), min_size=1, max_size=10))
def test_canonical_ids_agree_with_the_pattern(ids: list[str]) -> None:
    expected = all(common._CANONICAL_INT_RE.fullmatch(i) for i in ids)
    assert common.all_canonical_ints(pa.array(ids)) == expected
