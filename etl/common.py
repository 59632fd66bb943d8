"""Shared plumbing of the ETL jobs: arguments, logging, the validated employee stream, S3.

The jobs run as ``python3 /app/christmas_bonus.py`` inside the image, so this module is
imported as a sibling (``import common``), never as part of a package.

Money is exact: a salary is parsed into an integer number of cents and every computation
is integer arithmetic (Arrow int64 columns for the bulk, Python ints for the rules written
out one row at a time). Binary floating point appears nowhere.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import logging
import os
import re
import socket
import stat
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

import residency_guard

HEADER = ("id", "first_name", "last_name", "yearly_salary")
DELIMITER = ";"

# A salary is plain digits, optionally followed by a point and one or two digits.
# At most 12 integer digits keeps every intermediate product far inside int64.
SALARY_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
_CANONICAL_INT_PATTERN = r"^(0|[1-9][0-9]{0,17})$"
_SALARY_RE = re.compile(SALARY_PATTERN)
_CANONICAL_INT_RE = re.compile(_CANONICAL_INT_PATTERN)

EXIT_OK = 0
EXIT_FAILED = 1  # bad input, unreadable input, unwritable output
EXIT_USAGE = 2  # argparse's own code
EXIT_REFUSED = 3  # the bucket is outside --expected-region
EXIT_S3 = 4  # S3 rejected or could not be reached
EXIT_GUARD = residency_guard.EXIT_REFUSED  # 77: the data's residency label is not allowed here

BLOCK_SIZE = 1 << 19  # bytes of CSV per Arrow batch (about 15k rows); peak memory scales with it
RUN_SIZE = 1_000_000  # id keys held in memory before a sorted run is spilled to disk
WORKERS = max(2, min(4, os.cpu_count() or 2))  # threads validating/formatting batches

_In = TypeVar("_In")
_Out = TypeVar("_Out")

logger = logging.getLogger("common")


class JobError(Exception):
    """A failure that ends the job with a one-line reason and a non-zero exit code."""

    exit_code = EXIT_FAILED


class InputError(JobError):
    """The input file is malformed; the message names the file, the line and the value."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, problem: str) -> None:
        where = f"{os.fspath(path)}, line {line}" if line is not None else os.fspath(path)
        # One line, even when the value shown holds line breaks (a quoted field, a lone CR).
        shown = problem.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(f"{where}: {shown}")
        self.path = os.fspath(path)
        self.line = line
        self.problem = problem


class RegionRefused(JobError):
    exit_code = EXIT_REFUSED


class S3Error(JobError):
    exit_code = EXIT_S3


# --------------------------------------------------------------------------------------
# The rules, one value at a time (pure and readable; the column versions must agree).
# --------------------------------------------------------------------------------------


def parse_salary_cents(text: str) -> int:
    """``"70000.1"`` -> ``7000010``. Raises ValueError unless SALARY_PATTERN matches."""
    if not _SALARY_RE.fullmatch(text):
        raise ValueError(text)
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction.ljust(2, "0"))


def id_key(employee_id: str) -> int:
    """An int64 key for an id: the number itself for canonical integers, else a hash.

    Equal ids always get equal keys; two different ids may share a key (a hash
    collision), which is why a key seen twice is confirmed on the real ids before
    anything is reported.
    """
    if _CANONICAL_INT_RE.fullmatch(employee_id):  # at most 18 digits: always an int64
        return int(employee_id)
    digest = hashlib.blake2b(employee_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


# --------------------------------------------------------------------------------------
# Column versions.
# --------------------------------------------------------------------------------------


def salary_cents_column(salaries: pa.Array) -> pa.Array | None:
    """Salary strings -> int64 cents, or None if any value breaks SALARY_PATTERN.

    The same rule as ``parse_salary_cents``, spelled with cheap column kernels instead of
    a regular expression: at most one point, digits everywhere else, one or two places
    after the point, one to twelve digits before it.
    """
    digits_text = pc.replace_substring(salaries, ".", "")
    if not _all(pc.ascii_is_decimal(digits_text)):
        return None
    length = pc.binary_length(salaries)
    points = pc.subtract(length, pc.binary_length(digits_text))
    point = pc.find_substring(salaries, ".")  # -1 when there is none
    whole_digits = pc.if_else(pc.equal(point, -1), length, point)
    places = pc.if_else(pc.equal(point, -1), 0, pc.subtract(length, pc.add(point, 1)))
    valid = pc.and_(
        pc.and_(pc.less_equal(points, 1), pc.less_equal(places, 2)),
        pc.and_(
            pc.and_(pc.greater_equal(whole_digits, 1), pc.less_equal(whole_digits, 12)),
            pc.or_(pc.equal(point, -1), pc.greater_equal(places, 1)),
        ),
    )
    if not _all(valid):
        return None
    # "1234.5" -> 12345 (the digits) * 10 ** (2 - 1 place) = 123450 cents.
    scale = pc.power(10, pc.cast(pc.subtract(2, places), pa.int64()))
    return pc.multiply(pc.cast(digits_text, pa.int64()), scale)


def all_canonical_ints(ids: pa.Array) -> bool:
    """True when every id is a plain integer such as ``42`` (no sign, no leading zero).

    ``_CANONICAL_INT_PATTERN``, with column kernels: digits only, 1 to 18 of them, and no
    leading zero unless the id is ``0`` itself.
    """
    if not _all(pc.ascii_is_decimal(ids)):
        return False
    length = pc.binary_length(ids)
    if (pc.max(length).as_py() or 0) > 18:
        return False
    return not pc.any(pc.and_(pc.starts_with(ids, "0"), pc.greater(length, 1))).as_py()


def _all(mask: pa.Array) -> bool:
    return pc.all(mask).as_py() is not False  # an empty column is all right


def id_key_column(ids: pa.Array, canonical: bool | None = None) -> pa.Array:
    """``id_key`` over a column; vectorised when every id is a canonical integer."""
    if canonical is None:
        canonical = all_canonical_ints(ids)
    if canonical:
        return pc.cast(ids, pa.int64())
    return pa.array([id_key(value) for value in ids.to_pylist()], pa.int64())


# --------------------------------------------------------------------------------------
# Duplicate detection in bounded memory.
# --------------------------------------------------------------------------------------


class DuplicateKeys:
    """Collects int64 keys and reports the ones seen more than once.

    At most ``run_size`` keys stay in memory; beyond that they are sorted and spilled to
    temporary files ("runs") that are merged chunk by chunk at the end, so memory stays
    bounded however many rows the input has.
    """

    def __init__(self, run_size: int = RUN_SIZE, chunk_size: int = 1 << 16) -> None:
        self._run_size = run_size
        self._chunk_size = chunk_size
        self._pending: list[pa.Array] = []
        self._pending_count = 0
        self._runs: list[BinaryIO] = []
        self._increasing = True  # so far every key is larger than the one before
        self._last: int | None = None

    def add(self, keys: pa.Array) -> None:
        if len(keys) == 0:
            return
        if self._increasing:
            first = keys[0].as_py()
            self._increasing = (self._last is None or first > self._last) and (
                len(keys) < 2 or pc.all(pc.greater(keys[1:], keys[:-1])).as_py()
            )
            self._last = keys[-1].as_py()
        self._pending.append(keys)
        self._pending_count += len(keys)
        if self._pending_count >= self._run_size:
            self._spill()

    def _take_pending(self) -> pa.Array:
        keys = pa.concat_arrays(self._pending) if self._pending else pa.array([], pa.int64())
        self._pending, self._pending_count = [], 0
        return keys

    def _spill(self) -> None:
        keys = self._take_pending()
        keys = keys if self._increasing else _sorted(keys)
        run = tempfile.TemporaryFile(prefix="etl-ids-")  # noqa: SIM115 (closed by duplicates())
        run.write(keys.buffers()[1][keys.offset * 8 : (keys.offset + len(keys)) * 8])
        run.seek(0)
        self._runs.append(run)

    def duplicates(self) -> set[int]:
        """Every key added more than once (consumes the collector)."""
        if self._increasing:  # the usual case, ids in ascending order: nothing to merge
            for run in self._runs:
                run.close()
            return set()
        if not self._runs:
            keys = self._take_pending()
            if len(pc.unique(keys)) == len(keys):
                return set()
            return _repeated(_sorted(keys))
        self._spill()
        try:
            return self._merge_runs()
        finally:
            for run in self._runs:
                run.close()

    def _merge_runs(self) -> set[int]:
        # Each round takes, from every run, the keys up to the smallest "last key of the
        # current chunk": no key of a later round can equal one of this round except the
        # boundary value, which is carried over.
        readers = [_RunReader(run, self._chunk_size) for run in self._runs]
        found: set[int] = set()
        previous: int | None = None
        while True:
            readers = [reader for reader in readers if reader.has_more()]
            if not readers:
                return found
            upper = min(reader.last() for reader in readers)
            merged = _sorted(pa.concat_arrays([reader.take_through(upper) for reader in readers]))
            found |= _repeated(merged)
            if previous is not None and merged[0].as_py() == previous:
                found.add(previous)
            previous = merged[-1].as_py()


class _RunReader:
    def __init__(self, run: BinaryIO, chunk_size: int) -> None:
        self._run = run
        self._chunk_size = chunk_size
        self._chunk = pa.array([], pa.int64())

    def has_more(self) -> bool:
        if len(self._chunk) == 0:
            data = self._run.read(self._chunk_size * 8)
            self._chunk = pa.Array.from_buffers(
                pa.int64(), len(data) // 8, [None, pa.py_buffer(data)]
            )
        return len(self._chunk) > 0

    def last(self) -> int:
        return int(self._chunk[-1].as_py())

    def take_through(self, upper: int) -> pa.Array:
        end = pc.search_sorted(self._chunk, pa.scalar(upper, pa.int64()), side="right").as_py()
        taken, self._chunk = self._chunk[:end], self._chunk[end:]
        return taken


def _sorted(keys: pa.Array) -> pa.Array:
    return keys.take(pc.array_sort_indices(keys))


def _repeated(sorted_keys: pa.Array) -> set[int]:
    if len(sorted_keys) < 2:
        return set()
    same = pc.equal(sorted_keys[1:], sorted_keys[:-1])
    return set(pc.unique(sorted_keys[1:].filter(same)).to_pylist())


# --------------------------------------------------------------------------------------
# Reading: a fast Arrow path that only detects problems, and a plain Python pass that
# explains the first one (file, line, value). The slow pass runs only for bad input.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmployeeBatch:
    """Validated rows: the original text columns and the salary in integer cents."""

    ids: pa.Array
    first_names: pa.Array
    last_names: pa.Array
    salaries: pa.Array  # the text as written in the input
    cents: pa.Array  # int64
    plain_ids: bool  # every id is a canonical integer (never needs CSV quoting)


class _Malformed(Exception):
    """The fast path saw a problem; the slow pass will say where."""


def _require_regular_file(path: str | os.PathLike[str]) -> None:
    """Refuse a device, FIFO, socket or directory: reading one never ends (``/dev/zero``)
    or blocks before the first byte (a FIFO nobody writes to). stat() opens nothing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # open() says what is wrong (missing, permission) in the usual words
    if not stat.S_ISREG(mode):
        kind = (
            "a directory" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "not a file"
        )  # fmt: skip
        raise InputError(path, None, f"not a regular file ({kind})")


def read_header(path: str | os.PathLike[str]) -> int:
    """Check the header line; return its length in bytes (where the rows start)."""
    _require_regular_file(path)
    with open(path, "rb") as stream:
        first = stream.readline()
    if not first.strip():
        raise InputError(path, 1, f"missing header; expected '{DELIMITER.join(HEADER)}'")
    try:
        text = first.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, 1, "header is not valid UTF-8") from None
    try:
        fields = next(csv.reader([text], delimiter=DELIMITER))
    except csv.Error:  # a line break inside the line, such as a lone '\r'
        fields = None
    if fields is None or tuple(fields) != HEADER:
        raise InputError(path, 1, f"header '{text}' is not '{DELIMITER.join(HEADER)}'")
    return len(first)


def read_employees(
    path: str | os.PathLike[str],
    *,
    block_size: int = BLOCK_SIZE,
    run_size: int = RUN_SIZE,
) -> Iterator[EmployeeBatch]:
    """Stream validated batches; raise InputError for the first malformed line.

    Every column is converted, the names too when a job does not use them: conversion is
    what checks a field is UTF-8, and both jobs must refuse the same files (converting
    two more columns costs nothing measurable at 1,000,000 rows). Duplicate ids
    are only known at the end: the InputError then comes after the last batch, which is
    why writers must not publish anything before this iterator is exhausted.
    """
    start = read_header(path)
    duplicates = DuplicateKeys(run_size)
    try:
        yield from _fast_batches(path, start, block_size, duplicates)
    except (_Malformed, pa.ArrowInvalid) as exc:
        problem = _first_problem(path, set())
        if problem is None:  # the engines disagree: still refuse, without a line number
            raise InputError(path, None, f"cannot parse the file ({exc})") from None
        raise problem from None
    repeated = duplicates.duplicates()
    if repeated:
        problem = _first_problem(path, repeated)
        if problem is not None:  # otherwise the keys collided but the ids differ
            raise problem


def _fast_batches(
    path: str | os.PathLike[str],
    start: int,
    block_size: int,
    duplicates: DuplicateKeys,
) -> Iterator[EmployeeBatch]:
    source = pa.OSFile(os.fspath(path))
    if start >= source.size():
        source.close()
        return
    source.seek(start)
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=list(HEADER), block_size=block_size),
        parse_options=pacsv.ParseOptions(
            delimiter=DELIMITER,
            # Only a physically empty line (nothing but its line ending) is skipped; a row
            # of empty fields (';;;', '"";"";"";""') is kept, and refused as an empty id.
            ignore_empty_lines=True,
            # A quoted field may hold line breaks; without this, one that straddles a
            # block boundary puts Arrow's chunker out of step and valid input is refused.
            newlines_in_values=True,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(HEADER, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    with source:
        for batch, keys in pipelined(_check_batch, reader):
            duplicates.add(keys)
            if batch is not None:
                yield batch


def _check_batch(batch: pa.RecordBatch) -> tuple[EmployeeBatch | None, pa.Array]:
    """Validate one Arrow batch (runs on a worker thread; Arrow releases the GIL)."""
    if batch.num_rows == 0:
        return None, pa.array([], pa.int64())
    ids = batch.column("id")
    # Arrow already skipped the physically empty lines: any empty id, including a row of
    # empty fields such as ';;;', is an error that the slow pass will locate.
    if pc.any(pc.equal(ids, "")).as_py():
        raise _Malformed("empty id")
    salaries = batch.column("yearly_salary")
    cents = salary_cents_column(salaries)
    if cents is None:
        raise _Malformed("bad salary")
    canonical = all_canonical_ints(ids)
    employees = EmployeeBatch(
        ids=ids,
        first_names=batch.column("first_name"),
        last_names=batch.column("last_name"),
        salaries=salaries,
        cents=cents,
        plain_ids=canonical,
    )
    return employees, id_key_column(ids, canonical)


def pipelined(work: Callable[[_In], _Out], items: Iterable[_In]) -> Iterator[_Out]:
    """``map(work, items)`` on WORKERS threads, in order, with few items in flight.

    The reader parses the next block while workers validate or format earlier ones; the
    bounded queue keeps memory independent of the input size.
    """
    with ThreadPoolExecutor(WORKERS) as pool:
        in_flight: deque[Future[_Out]] = deque()
        for item in items:
            in_flight.append(pool.submit(work, item))
            if len(in_flight) > WORKERS:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def _first_problem(path: str | os.PathLike[str], repeated_keys: set[int]) -> InputError | None:
    """Walk the file with the csv module and describe the first bad line, if any.

    With ``repeated_keys`` it also looks for duplicate ids among the rows whose key is
    in that set (so memory stays bounded by the number of suspects).
    """
    seen: dict[str, int] = {}
    with open(path, "rb") as stream:
        rows = csv.reader(_decoded_lines(stream), delimiter=DELIMITER)
        line = 1
        try:
            next(rows)  # the header, already checked
            line = rows.line_num + 1
            for row in rows:
                problem = _row_problem(row, line, seen, repeated_keys)
                if problem:
                    return InputError(path, line, problem)
                line = rows.line_num + 1
        except _NotUtf8 as exc:
            return InputError(path, exc.line, "not valid UTF-8")
        except csv.Error as exc:
            return InputError(path, line, f"unreadable CSV ({exc})")
    return None


class _NotUtf8(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _decoded_lines(stream: BinaryIO) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.removeprefix(b"\xef\xbb\xbf" if number == 1 else b"").decode("utf-8")
        except UnicodeDecodeError:
            raise _NotUtf8(number) from None


def _row_problem(row: list[str], line: int, seen: dict[str, int], repeated: set[int]) -> str:
    if not row:
        return ""  # a physically empty line (the csv module reads ';;;' as four fields)
    if len(row) != len(HEADER):
        return f"expected {len(HEADER)} fields, found {len(row)}: '{DELIMITER.join(row)}'"
    employee_id, salary = row[0], row[3]
    if not employee_id:
        return f"empty id: '{DELIMITER.join(row)}'"
    if not _SALARY_RE.fullmatch(salary):
        return (
            f"yearly_salary '{salary}' is not a non-negative decimal with at most two places"
            " (digits, optionally '.' and one or two digits; at most 12 digits before the point)"
        )
    if repeated and id_key(employee_id) in repeated:
        if employee_id in seen:
            return f"duplicate id '{employee_id}' (first on line {seen[employee_id]})"
        seen[employee_id] = line
    return ""


# --------------------------------------------------------------------------------------
# Writing: a temporary file beside the target, renamed only when complete.
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block finishes."""
    target = Path(path)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


# --------------------------------------------------------------------------------------
# S3.
# --------------------------------------------------------------------------------------

_KEY_ID_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """One line, with credentials (from the environment or given) replaced by ``***``."""
    for secret in (*secrets, *(os.environ.get(name, "") for name in _SECRET_VARIABLES)):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _KEY_ID_RE.sub("***", text)
    return " ".join(text.split())


def s3_key(folder: str, file_name: str) -> str:
    """``("reports/2024/", "x.csv")`` -> ``"reports/2024/x.csv"``; no folder -> the name."""
    return "/".join(part for part in (folder.strip("/"), file_name) if part)


def bucket_region(location_constraint: str | None) -> str:
    """GetBucketLocation's answer as a region name.

    us-east-1 buckets report no constraint at all, and very old EU buckets report "EU":
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html
    """
    if not location_constraint:
        return "us-east-1"
    if location_constraint == "EU":
        return "eu-west-1"
    return location_constraint


def s3_client() -> Any:
    import boto3  # imported here: jobs that do not upload do not pay for it

    return boto3.client("s3")


def _s3_failure(action: str, exc: Exception) -> S3Error:
    return S3Error(redact(f"{action}: {type(exc).__name__}: {exc}"))


def check_bucket_region(client: Any, bucket: str, expected: str) -> None:
    try:
        answer = client.get_bucket_location(Bucket=bucket)
    except Exception as exc:  # botocore raises many unrelated types
        raise _s3_failure(f"cannot find the region of bucket '{bucket}'", exc) from None
    actual = bucket_region(answer.get("LocationConstraint"))
    if actual != expected:
        raise RegionRefused(
            f"refusing to write to bucket '{bucket}': it is in {actual}, "
            f"but --expected-region is {expected}"
        )
    # Not at INFO: the contract's log lines are exactly four, in order.
    logger.debug(f"Bucket '{bucket}' is in {actual}, as expected")


def upload(client: Any, local: Path, bucket: str, key: str, extra: dict[str, str]) -> None:
    logger.info(f"Uploading local file '{local}' to 's3://{bucket}/{key}'")
    try:
        client.upload_file(str(local), bucket, key, ExtraArgs=extra or None)
    except Exception as exc:
        raise _s3_failure(f"upload to 's3://{bucket}/{key}' failed", exc) from None


# --------------------------------------------------------------------------------------
# The command line and the job skeleton both scripts share.
# --------------------------------------------------------------------------------------


def parse_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--input_file", "-i", required=True, help="CSV file of employees (';'-separated)"
    )
    parser.add_argument(
        "--output_file",
        "-o",
        help="where to write the report (default: beside the input file)",
    )
    parser.add_argument(
        "--s3_bucket",
        "-b",
        default=os.environ.get("S3_BUCKET") or None,
        help="S3 bucket to upload the report to (default: $S3_BUCKET; none: no upload)",
    )
    parser.add_argument(
        "--s3_folder",
        "-f",
        default=os.environ.get("S3_FOLDER", ""),
        help="folder (key prefix) in the bucket, like 'my/folder' (default: $S3_FOLDER)",
    )
    parser.add_argument(
        "--sse",
        choices=("AES256", "aws:kms"),
        help="server-side encryption of the uploaded object",
    )
    parser.add_argument(
        "--kms-key-id", "--kms_key_id", dest="kms_key_id", help="KMS key for --sse aws:kms"
    )
    parser.add_argument(
        "--expected-region",
        "--expected_region",
        dest="expected_region",
        help="refuse, before reading any data, to write to a bucket in any other region",
    )
    args = parser.parse_args(argv)
    if args.kms_key_id and args.sse != "aws:kms":
        parser.error("--kms-key-id needs --sse aws:kms")
    if args.expected_region and not args.s3_bucket:
        parser.error("--expected-region needs --s3_bucket (or S3_BUCKET)")
    return args


def setup_logging() -> None:
    # A no-op when the root logger already has handlers (a test runner's, say).
    logging.basicConfig(
        format="%(asctime)s - %(name)s - %(levelname)s - %(message)s", stream=sys.stderr
    )
    logging.getLogger().setLevel(logging.INFO)
    # Their debug output carries request headers; keep them quiet whatever the root says.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


WriteReport = Callable[[Path, Path], None]


def run_job(
    argv: Sequence[str] | None,
    *,
    description: str,
    default_output_name: str,
    write_report: WriteReport,
) -> int:
    """Parse, log, (check region), write the report atomically, upload. Return the exit code."""
    setup_logging()
    args = parse_args(description, argv)
    source = Path(args.input_file)
    # The data guard first: before any data, S3 client or output file exists.
    try:
        residency_guard.check_input(source)
    except residency_guard.Refused as refused:
        sys.stderr.write(refused.line() + "\n")
        sys.stderr.flush()
        return residency_guard.EXIT_REFUSED
    logger.info(f"Running on host '{socket.gethostname()}'")
    try:
        client = None
        if args.s3_bucket:
            client = s3_client()
            if args.expected_region:
                check_bucket_region(client, args.s3_bucket, args.expected_region)
        target = Path(args.output_file or source.parent / default_output_name)
        if target.is_dir():
            # Like cp: a directory receives the report under its default name (and the
            # temporary file is made in that directory, beside the report).
            target = target / default_output_name
        logger.info(f"Reading CSV file '{source}'")
        try:
            write_report(source, target)
        except OSError as exc:
            raise JobError(f"{exc.strerror or exc}: '{exc.filename or source}'") from None
        if client is None:
            logger.info(f"No S3 bucket given (--s3_bucket or S3_BUCKET): '{target}' stays local")
            return EXIT_OK
        extra = {}
        if args.sse:
            extra["ServerSideEncryption"] = args.sse
        if args.kms_key_id:
            extra["SSEKMSKeyId"] = args.kms_key_id
        upload(client, target, args.s3_bucket, s3_key(args.s3_folder, target.name), extra)
        return EXIT_OK
    except JobError as exc:
        logger.error(str(exc))
        return exc.exit_code
