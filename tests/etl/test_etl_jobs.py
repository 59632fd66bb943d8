"""The jobs end to end (in-process main(), S3 mocked by moto): results, validation, S3."""

from __future__ import annotations

import csv
import os
import shutil
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import boto3
import pytest

import christmas_bonus
import common
import tax_amount
from tests.support.etl import FAKE_KEY_ID, FAKE_SECRET, SAMPLE, OpenWatch, object_keys, write_label

HEADER = "id;first_name;last_name;yearly_salary\n"
JOBS = {"bonus": christmas_bonus, "tax": tax_amount}


def by_hand(path: Path) -> tuple[list[list[str]], int]:
    """Expected bonus rows and tax total, worked out with Decimal from the raw file."""
    rows, tax = [], 0
    with open(path, newline="", encoding="utf-8-sig") as stream:
        for row in csv.DictReader(stream, delimiter=";"):
            salary = Decimal(row["yearly_salary"])
            rate = Decimal("0.05") if salary <= Decimal(70000) else Decimal("0.03")
            bonus = (salary * rate).to_integral_value(rounding=ROUND_DOWN)
            rows.append([*row.values(), str(bonus)])
            tax += int((salary * Decimal("0.21")).to_integral_value(rounding=ROUND_DOWN))
    return rows, tax


def run(job: str, *args: str) -> int:
    return JOBS[job].main(list(args))


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as stream:
        return list(csv.reader(stream, delimiter=";"))


# ----------------------------------------------------------------------------- golden


def test_golden_bonus_on_the_sample(s3: object, tmp_path: Path) -> None:
    out = tmp_path / "salary_with_bonus.csv"
    assert run("bonus", "-i", str(SAMPLE), "-o", str(out), "-b", "reports", "-f", "acme/x") == 0
    expected, _ = by_hand(SAMPLE)
    rows = read_rows(out)
    assert rows[0] == ["id", "first_name", "last_name", "yearly_salary", "bonus"]
    assert rows[1:] == expected
    assert rows[1] == ["1", "Ingar", "Raeburn", "66841.47", "3342"]  # pinned: 3342.07
    assert rows[2] == ["2", "Bartholomeus", "Scutts", "79161.18", "2374"]  # 3%: 2374.83
    assert sum(int(row[4]) for row in rows[1:]) == 132441
    body = s3.get_object(Bucket="reports", Key="acme/x/salary_with_bonus.csv")["Body"].read()
    assert body == out.read_bytes()


def test_golden_tax_on_the_sample(s3: object, tmp_path: Path) -> None:
    out = tmp_path / "tax_amount.csv"
    assert run("tax", "-i", str(SAMPLE), "-o", str(out), "-b", "reports", "-f", "acme") == 0
    _, tax = by_hand(SAMPLE)
    assert tax == 752172
    assert out.read_text() == "tax_amount\n752172\n"
    body = s3.get_object(Bucket="reports", Key="acme/tax_amount.csv")["Body"].read()
    assert body == b"tax_amount\n752172\n"


def test_many_batches_match_decimal(tmp_path: Path, aws_env: None) -> None:
    # Enough rows for several Arrow batches, salaries of every shape, ids out of order.
    source = tmp_path / "big.csv"
    with open(source, "w") as stream:
        stream.write(HEADER)
        for n in range(60_000):
            whole, cents = (n * 7919) % 150_001, n % 100
            salary = [f"{whole}", f"{whole}.{cents // 10}", f"{whole}.{cents:02d}"][n % 3]
            stream.write(f"{(n * 37) % 60_000 + 1};F{n};L{n};{salary}\n")
    assert run("bonus", "-i", str(source), "-o", str(tmp_path / "b.csv")) == 0
    assert run("tax", "-i", str(source), "-o", str(tmp_path / "t.csv")) == 0
    expected, tax = by_hand(source)
    assert read_rows(tmp_path / "b.csv")[1:] == expected
    assert (tmp_path / "t.csv").read_text() == f"tax_amount\n{tax}\n"


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("content", "rows", "tax"),
    [
        pytest.param(
            b"id;first_name;last_name;yearly_salary\r\n1;A;B;70000\r\n2;C;D;70000.01\r\n",
            [["1", "A", "B", "70000", "3500"], ["2", "C", "D", "70000.01", "2100"]],
            29400,
            id="crlf",
        ),
        pytest.param(
            b"\xef\xbb\xbfid;first_name;last_name;yearly_salary\n1;A;B;100\n",
            [["1", "A", "B", "100", "5"]],
            21,
            id="utf8-bom",
        ),
        pytest.param(
            b'id;first_name;last_name;yearly_salary\n1;"Smith; Jr";"O""Neil";100\n',
            [["1", "Smith; Jr", 'O"Neil', "100", "5"]],
            21,
            id="quoted-semicolon",
        ),
        pytest.param(
            b'"id";"first_name";"last_name";"yearly_salary"\n1;"Zo\xc3\xab";B;"100.5"\n',
            [["1", "Zoë", "B", "100.5", "5"]],
            21,
            id="quoted-header-and-salary-utf8",
        ),
        pytest.param(
            b"id;first_name;last_name;yearly_salary\n\n1;A;B;100\n\n",
            [["1", "A", "B", "100", "5"]],
            21,
            id="blank-lines",
        ),
        pytest.param(
            b"id;first_name;last_name;yearly_salary\r\n\r\n1;A;B;100\r\n\r\n\r\n",
            [["1", "A", "B", "100", "5"]],
            21,
            id="blank-lines-crlf",
        ),
        pytest.param(
            b'id;first_name;last_name;yearly_salary\n1;"x\n\n;;;\n";B;100\n\n2;;C;70000\n',
            [["1", "x\n\n;;;\n", "B", "100", "5"], ["2", "", "C", "70000", "3500"]],
            14721,
            id="empty-lines-inside-a-quoted-field",
        ),
        pytest.param(b"id;first_name;last_name;yearly_salary\n", [], 0, id="header-only"),
        pytest.param(b"id;first_name;last_name;yearly_salary\r\n", [], 0, id="header-only-crlf"),
        pytest.param(
            b"\xef\xbb\xbfid;first_name;last_name;yearly_salary\r\n\r\n",
            [],
            0,
            id="header-bom-crlf-and-a-blank-line",
        ),
        pytest.param(b"id;first_name;last_name;yearly_salary", [], 0, id="header-no-newline"),
    ],
)
def test_input_formats(
    tmp_path: Path, aws_env: None, content: bytes, rows: list[list[str]], tax: int
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    assert run("bonus", "-i", str(source), "-o", str(tmp_path / "b.csv")) == 0
    assert run("tax", "-i", str(source), "-o", str(tmp_path / "t.csv")) == 0
    assert read_rows(tmp_path / "b.csv")[1:] == rows
    assert (tmp_path / "t.csv").read_text() == f"tax_amount\n{tax}\n"


def test_quoted_line_breaks_across_block_boundaries(tmp_path: Path) -> None:
    # Every row holds a quoted line break, so some Arrow block boundary falls inside one.
    source = tmp_path / "in.csv"
    rows = [f'{n};"First\nname {n}";"Last;\r\n{n}";{n}.5\n' for n in range(1, 3001)]
    source.write_bytes((HEADER + "".join(rows)).encode())
    batches = list(common.read_employees(source, block_size=4096))
    assert len(batches) > 10
    names = [name for batch in batches for name in batch.first_names.to_pylist()]
    assert names == [f"First\nname {n}" for n in range(1, 3001)]
    cents = [cent for batch in batches for cent in batch.cents.to_pylist()]
    assert cents == [n * 100 + 50 for n in range(1, 3001)]


def test_default_output_is_beside_the_input(tmp_path: Path, aws_env: None) -> None:
    source = tmp_path / "employee_data.csv"
    source.write_bytes(SAMPLE.read_bytes())
    assert run("bonus", "--input_file", str(source)) == 0
    assert run("tax", "--input_file", str(source)) == 0
    assert (tmp_path / "salary_with_bonus.csv").exists()
    assert (tmp_path / "tax_amount.csv").read_text() == "tax_amount\n752172\n"


# ----------------------------------------------------------------------------- malformed

GOOD = "1;Ingar;Raeburn;66841.47\n2;Bart;Scutts;79161.18\n"
MALFORMED = [
    # (content, line, text expected in the message)
    pytest.param("", 1, "missing header", id="empty-file"),
    pytest.param("id;first;last;salary\n" + GOOD, 1, "id;first;last;salary", id="wrong-header"),
    pytest.param(GOOD, 1, "1;Ingar;Raeburn;66841.47", id="no-header"),
    pytest.param(HEADER + GOOD + "3;A;B;abc\n", 4, "'abc'", id="text-salary"),
    pytest.param(HEADER + GOOD + "3;A;B;-5\n", 4, "'-5'", id="negative"),
    pytest.param(HEADER + "3;A;B;70000.001\n" + GOOD, 2, "'70000.001'", id="three-places"),
    pytest.param(HEADER + GOOD + "3;A;B;1e3\n", 4, "'1e3'", id="exponent"),
    pytest.param(HEADER + GOOD + "3;A;B;1,5\n", 4, "'1,5'", id="comma"),
    pytest.param(HEADER + GOOD + "3;A;B; 5\n", 4, "' 5'", id="space"),
    pytest.param(HEADER + GOOD + "3;A;B;\n", 4, "''", id="empty-salary"),
    pytest.param(HEADER + GOOD + "3;A;B\n", 4, "'3;A;B'", id="three-fields"),
    pytest.param(HEADER + GOOD + "3;A;B;5;x\n", 4, "'3;A;B;5;x'", id="five-fields"),
    pytest.param(HEADER + GOOD + ";A;B;5\n", 4, "empty id", id="empty-id"),
    pytest.param(HEADER + GOOD + "1;A;B;5\n", 4, "duplicate id '1' (first on line 2)", id="dup-id"),
    pytest.param(
        HEADER + "a-7;A;B;5\nb;C;D;6\na-7;E;F;7\n", 4, "duplicate id 'a-7'", id="dup-text"
    ),
    pytest.param(
        HEADER + '1;"multi\nline";B;5\n2;A;B;x\n', 4, "'x'", id="line-after-multiline-field"
    ),
    pytest.param(
        HEADER.replace("\n", "\r") + GOOD, 1, "yearly_salary\\r1;Ingar", id="header-lone-cr"
    ),
    pytest.param(HEADER + '1;"A\nB;5\n', 2, "found 2: '1;A\\nB;5\\n'", id="unclosed-quote"),
]


def _rows_of_empty_fields() -> list[object]:
    """A row of empty fields (or too few of them) is no blank line: it stops the job, located.

    Each bad row in the middle of the file, as the last line, and as the last line without
    a line ending, with LF and with CRLF line endings.
    """
    cases = [
        (";;;", "empty id: ';;;'", "semicolons"),
        ('"";"";"";""', "empty id: ';;;'", "quoted-empties"),
        (";", "expected 4 fields, found 2: ';'", "one-semicolon"),
        (";;", "expected 4 fields, found 3: ';;'", "two-semicolons"),
    ]
    first, second = "1;Ingar;Raeburn;66841.47", "2;Bart;Scutts;79161.18"
    params = []
    for newline, ending in (("\n", "lf"), ("\r\n", "crlf")):
        head = HEADER.replace("\n", newline)
        for bad, detail, name in cases:
            layouts = {
                "middle": ([first, bad, second], 3),
                "last": ([first, second, bad], 4),
            }
            for where, (lines, line) in layouts.items():
                content = head + "".join(f"{text}{newline}" for text in lines)
                params.append(pytest.param(content, line, detail, id=f"{name}-{where}-{ending}"))
            content = head + f"{first}{newline}{second}{newline}{bad}"
            params.append(pytest.param(content, 4, detail, id=f"{name}-last-unended-{ending}"))
    return params


MALFORMED += _rows_of_empty_fields()


@pytest.mark.parametrize("job", ["bonus", "tax"])
@pytest.mark.parametrize(("content", "line", "detail"), MALFORMED)
def test_malformed_input_stops_the_job(
    s3: object,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    job: str,
    content: str,
    line: int,
    detail: str,
) -> None:
    source = tmp_path / "employee_data.csv"
    source.write_text(content)
    out = tmp_path / "out" / "report.csv"
    out.parent.mkdir()
    out.write_text("previous report\n")
    code = run(job, "-i", str(source), "-o", str(out), "-b", "reports", "-f", "f")
    assert code == common.EXIT_FAILED
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].startswith(f"{source}, line {line}: ")
    assert detail in errors[0]
    assert object_keys(s3) == []  # nothing uploaded
    assert out.read_text() == "previous report\n"  # the old report is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.csv"]  # no temp file left


@pytest.mark.parametrize("job", ["bonus", "tax"])
def test_bad_row_deep_in_a_large_file(s3: object, tmp_path: Path, caplog, job: str) -> None:
    source = tmp_path / "employee_data.csv"
    rows = [f"{n};First;Last;{n}.25\n" for n in range(1, 80_001)]
    rows[77_776] = "77777;First;Last;12.345\n"  # line 77778
    source.write_text(HEADER + "".join(rows))
    assert run(job, "-i", str(source), "-o", str(tmp_path / "r.csv"), "-b", "reports") == 1
    assert f"{source}, line 77778: yearly_salary '12.345'" in caplog.text
    assert object_keys(s3) == []
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("job", ["bonus", "tax"])
def test_duplicate_far_apart_is_found_through_spilled_runs(
    tmp_path: Path, aws_env: None, monkeypatch: pytest.MonkeyPatch, caplog, job: str
) -> None:
    monkeypatch.setattr(common, "RUN_SIZE", 1000)
    source = tmp_path / "in.csv"
    ids = [str(n) for n in range(5000, 0, -1)] + ["4321"]
    source.write_text(HEADER + "".join(f"{i};A;B;1\n" for i in ids))
    out = tmp_path / "r.csv"
    assert run(job, "-i", str(source), "-o", str(out)) == 1
    assert "line 5002: duplicate id '4321' (first on line 681)" in caplog.text


def test_invalid_utf8(tmp_path: Path, aws_env: None, caplog) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(HEADER.encode() + b"1;A;B;5\n2;\xff\xfe;B;6\n")
    assert run("bonus", "-i", str(source), "-o", str(tmp_path / "r.csv")) == 1
    assert "line 3: not valid UTF-8" in caplog.text


@pytest.mark.parametrize("job", ["bonus", "tax"])
@pytest.mark.parametrize("column", ["first_name", "last_name"])
def test_invalid_utf8_in_a_name_is_refused_by_both_jobs(
    s3: object, tmp_path: Path, caplog, job: str, column: str
) -> None:
    """The tax job does not use the names, but it refuses the same files the bonus job does
    (it used to upload a total computed from a file with a stray Latin-1 byte)."""
    row = {"first_name": b"2;J\xf6rg;B;6\n", "last_name": b"2;Jorg;M\xfcller;6\n"}[column]
    source = tmp_path / "in.csv"
    source.write_bytes(HEADER.encode() + b"1;A;B;5\n" + row)
    out = tmp_path / "r.csv"
    assert run(job, "-i", str(source), "-o", str(out), "-b", "reports") == 1
    assert f"{source}, line 3: not valid UTF-8" in caplog.text
    assert object_keys(s3) == []
    assert not out.exists()


def test_read_header_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    """Whatever the guard says, the reader itself never reads a special file: /dev/zero
    would never end a line, a FIFO would block open() (both are run, memory- and
    time-bounded, in test_etl_scripts.py). stat() says what they are without opening them."""
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    for path, kind in (("/dev/null", "a character device"), (tmp_path, "a directory"),
                       (fifo, "a FIFO")):  # fmt: skip
        with pytest.raises(common.InputError, match=rf"not a regular file \({kind}\)"):
            common.read_header(path)


@pytest.mark.parametrize("job", ["bonus", "tax"])
def test_output_to_a_directory_goes_inside_it(
    tmp_path: Path, aws_env: None, caplog, job: str
) -> None:
    """`-o /tmp`: the report is /tmp/<default name>, its temporary file beside it in /tmp
    (it used to be made in /, the directory's parent, and the rename then failed)."""
    source = tmp_path / "employee_data.csv"
    shutil.copy(SAMPLE, source)
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run(job, "-i", str(source), "-o", str(out_dir)) == 0, caplog.text
    name = {"bonus": "salary_with_bonus.csv", "tax": "tax_amount.csv"}[job]
    assert sorted(p.name for p in out_dir.iterdir()) == [name]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made beside reports/
    assert f"report at '{out_dir / name}'" in caplog.text


@pytest.mark.parametrize("job", ["bonus", "tax"])
def test_the_guard_refuses_before_reading_writing_or_uploading(
    s3: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog, job: str
) -> None:
    """New York's data on a job allowed only its own location (testland): exit 77, the data
    file never opened (inotify would see Arrow's C++ reader too), no report, no upload."""
    data = tmp_path / "newyork-host"
    data.mkdir()
    write_label(data, "newyork")
    source = data / "employee_data.csv"
    shutil.copy(SAMPLE, source)
    watch = OpenWatch(source)
    out = tmp_path / "out"
    out.mkdir()
    code = run(job, "-i", str(source), "-o", str(out / "r.csv"), "-b", "reports",
               "--expected-region", "eu-central-1")  # fmt: skip
    assert code == common.EXIT_GUARD == 77
    assert not watch.opened()
    watch.close()
    assert list(out.iterdir()) == []
    assert object_keys(s3) == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("residency-guard: refused to read ")
    assert f"'{data}' on host '{os.uname().nodename}'" in err
    assert err.endswith("(label: newyork; allowed: testland)\n")
    assert caplog.records == []  # not even "Running on host": nothing else happened


def test_missing_input_file(tmp_path: Path, aws_env: None, caplog) -> None:
    assert run("tax", "-i", str(tmp_path / "nope.csv")) == 1
    assert "No such file or directory" in caplog.text


# ----------------------------------------------------------------------------- S3


def test_sse_kms(s3: object, tmp_path: Path) -> None:
    args = ["-i", str(SAMPLE), "-o", str(tmp_path / "t.csv"), "-b", "reports", "-f", "k"]
    assert run("tax", *args, "--sse", "aws:kms", "--kms-key-id", "alias/acme-hr") == 0
    head = s3.head_object(Bucket="reports", Key="k/t.csv")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/acme-hr")


def test_sse_aes256(s3: object, tmp_path: Path) -> None:
    args = ["-i", str(SAMPLE), "-o", str(tmp_path / "t.csv"), "-b", "reports"]
    assert run("tax", *args, "--sse", "AES256") == 0
    assert s3.head_object(Bucket="reports", Key="t.csv")["ServerSideEncryption"] == "AES256"


def test_kms_key_without_kms_is_a_usage_error(tmp_path: Path, aws_env: None) -> None:
    with pytest.raises(SystemExit) as stopped:
        run("tax", "-i", str(SAMPLE), "--kms-key-id", "k", "--sse", "AES256")
    assert stopped.value.code == common.EXIT_USAGE


def test_region_refusal_happens_before_reading(
    s3: object, tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("read the data before checking the region")

    monkeypatch.setattr(common, "read_employees", must_not_read)
    out = tmp_path / "t.csv"
    args = ["-i", str(SAMPLE), "-o", str(out), "-b", "reports", "--expected-region", "us-east-1"]
    assert run("tax", *args) == common.EXIT_REFUSED
    assert "refusing to write to bucket 'reports': it is in eu-central-1" in caplog.text
    assert "Reading CSV file" not in caplog.text
    assert not out.exists()
    assert object_keys(s3) == []


def test_us_east_1_bucket_has_no_location_constraint(s3: object, tmp_path: Path) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="us-reports")
    assert s3.get_bucket_location(Bucket="us-reports")["LocationConstraint"] is None
    args = ["-i", str(SAMPLE), "-o", str(tmp_path / "t.csv"), "-b", "us-reports"]
    assert run("tax", *args, "--expected-region", "us-east-1") == 0
    assert object_keys(s3, "us-reports") == ["t.csv"]
    assert run("tax", *args, "--expected-region", "eu-central-1") == common.EXIT_REFUSED


def test_matching_region_uploads(s3: object, tmp_path: Path) -> None:
    args = ["-i", str(SAMPLE), "-o", str(tmp_path / "t.csv"), "-b", "reports", "-f", "a/b/"]
    assert run("tax", *args, "--expected_region", "eu-central-1") == 0
    assert object_keys(s3) == ["a/b/t.csv"]


def test_upload_failure_is_one_line_without_secrets(
    s3: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["-i", str(SAMPLE), "-o", str(tmp_path / "t.csv"), "-b", "no-such-bucket"]
    assert run("tax", *args) == common.EXIT_S3
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "\n" not in errors[0]
    assert "upload to 's3://no-such-bucket/t.csv' failed" in errors[0]
    assert "NoSuchBucket" in errors[0]
    assert FAKE_SECRET not in caplog.text and FAKE_KEY_ID not in caplog.text


def test_no_bucket_keeps_the_report_local(tmp_path: Path, aws_env: None, caplog) -> None:
    assert run("tax", "-i", str(SAMPLE), "-o", str(tmp_path / "t.csv")) == 0
    assert "No S3 bucket given" in caplog.text


def test_bucket_and_folder_from_the_environment(
    s3: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_BUCKET", "reports")
    monkeypatch.setenv("S3_FOLDER", "from-env")
    assert run("tax", "-i", str(SAMPLE), "-o", str(tmp_path / "t.csv")) == 0
    assert object_keys(s3) == ["from-env/t.csv"]
