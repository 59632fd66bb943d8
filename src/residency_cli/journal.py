"""The dispatch journal: one hash-chained JSON Lines record per `run`
(docs/governance.md, "The dispatch journal").

Every record carries `seq` (1, 2, 3, ...), `prev` (the `hash` of the record before it;
`GENESIS` for the first) and `hash`: the SHA-256 of the record's canonical JSON without
`hash`. Editing a record breaks its hash; removing, inserting or reordering records breaks
`seq` and `prev`. Removing records from the *end* leaves a valid chain, so every append also
writes the last `seq` and `hash` to a small sidecar, `<journal>.head`, that `verify` compares.

A hash chain without a secret only detects changes made by someone who does not recompute
it: whoever can write the files can rewrite the whole chain and the head. Copy the head hash
(`residency journal verify -o json`) somewhere they cannot write to anchor it.

Appends are serialised with an exclusive `flock` on the journal, written as one `os.write`
of one whole line with `O_APPEND`, and fsynced (the journal, the head, their directory).
A write that fails is rolled back; a crash can leave at most a final line without its
newline (a torn tail): readers ignore it, `verify` reports it, the next append removes it.

The journal may also live on S3 (`journal_s3.py`, one object per record, appended with
conditional puts). Both stores implement `JournalStore` (`LocalJournal` is the functions
below) and are checked by the one verifier, `_Chain`; `open_journal(location)` picks one.

Kept free of heavy imports: only the standard library, loaded when called (boto3 only when
an S3 journal is used).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from residency_cli.errors import ResidencyError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

FORMAT_VERSION = 1
GENESIS = "0" * 64  # the `prev` of the first record
JOURNAL_ENV = "RESIDENCY_JOURNAL"
JOURNAL_FILE = "journal.jsonl"
HEAD_SUFFIX = ".head"
LOCK_TIMEOUT_SECONDS = 10.0
_CHUNK = 64 * 1024

# `journal_notes` kinds that an append writes into the chain. Benign ones are crash
# leftovers; the others mean the journal had been changed before that append, and `verify`
# keeps reporting them (the chain must not launder them).
NOTE_TORN_TAIL = "torn_tail_removed"
NOTE_NEWLINE_ADDED = "missing_newline_added"
NOTE_HEAD_MISMATCH = "head_mismatch"
NOTE_HEAD_MISSING = "head_missing"
PROBLEM_NOTES = frozenset({NOTE_HEAD_MISMATCH, NOTE_HEAD_MISSING})


class JournalError(ResidencyError):
    """The journal cannot be read or written (a directory, no permission, disk full).

    Exit 2, like a configuration error: the path is wrong or unusable; nothing was recorded.
    """

    exit_code = 2


class JournalCorruptError(JournalError):
    """The journal is not intact: `verify` found problems, or an append cannot continue the
    chain because the last record is unreadable. Exit 1 (like `sha256sum --check`)."""

    exit_code = 1


# --- paths and records -----------------------------------------------------------------


def default_journal_path() -> Path:
    """`$RESIDENCY_JOURNAL` when it is a path, else `journal.jsonl` under the state
    directory (the local default; `journal_location` says where the journal is)."""
    explicit = os.environ.get(JOURNAL_ENV)
    if explicit and "://" not in explicit:
        return Path(explicit).expanduser()
    from residency_cli.sandbox.state import state_dir

    return state_dir() / JOURNAL_FILE


def journal_location(explicit: str | None = None, map_journal: str | None = None) -> str | None:
    """Where the journal is: `explicit` (`--journal`) > `$RESIDENCY_JOURNAL` > the map's
    `journal:` > None (the local default file)."""
    return explicit or os.environ.get(JOURNAL_ENV) or map_journal or None


def head_path(path: Path) -> Path:
    return path.with_name(path.name + HEAD_SUFFIX)


def caller_identity(sts_client: STSClient) -> dict[str, str] | None:
    """Who is dispatching, per STS; None on any error (the journal never fails a run)."""
    try:
        identity = sts_client.get_caller_identity()
        return {
            "account": str(identity["Account"]),
            "arn": str(identity["Arn"]),
            "user_id": str(identity["UserId"]),
        }
    except Exception:
        return None


def _origin() -> dict[str, str | None]:
    """The local user and machine that dispatched: known even when STS is not."""
    import getpass
    import socket

    try:
        user: str | None = getpass.getuser()
    except Exception:  # no login name and no passwd entry (some containers)
        user = None
    try:
        machine: str | None = socket.gethostname()
    except OSError:
        machine = None
    return {"user": user, "hostname": machine}


def _utc(now: datetime) -> str:
    moment = now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
    stamp = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    """Plain JSON (what the hash is computed over must read back identically)."""
    try:
        return json.loads(json.dumps(value, default=str, allow_nan=False))
    except (ValueError, RecursionError) as error:
        raise JournalError(f"cannot journal this record: {error}") from error


def build_record(
    *,
    who: Mapping[str, str] | None,
    workload: str,
    run_id: str | None,
    request: Mapping[str, Any] | None,
    locations: Sequence[str],
    outcome: Mapping[str, Any],
    host_attributes: Mapping[str, str] | None,
    now: datetime,
    event: str = "run",
) -> dict[str, Any]:
    """One run, ready for `append`: who, what, where and how it ended.

    `outcome` is `RunResult.to_json()` (its `host` is where the task ran); `host_attributes`
    are that host's attributes as read at placement. A naive `now` is taken as UTC. `event`:
    `run` (a dispatch), `attach` (a later look at how a dispatched task ended).
    """
    return dict(
        _jsonable(
            {
                "v": FORMAT_VERSION,
                "time": _utc(now),
                "event": event,
                "who": dict(who) if who is not None else None,
                "origin": _origin(),
                "workload": workload,
                "run_id": run_id,
                "request": dict(request) if request is not None else None,
                "locations": list(locations),
                "host_attributes": dict(host_attributes) if host_attributes is not None else None,
                "result": dict(outcome),
            }
        )
    )


def canonical(record: Mapping[str, Any]) -> bytes:
    """The one serialisation hashed and written: sorted keys, no spaces, ASCII."""
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the record without its `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


# --- append ----------------------------------------------------------------------------


def _lock(
    fd: int, path: Path, *, shared: bool = False, timeout: float = LOCK_TIMEOUT_SECONDS
) -> None:
    """flock the journal: exclusive to append, shared to verify (never a half-done append)."""
    import fcntl
    import time

    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise JournalError(
                    f"the journal {path} stayed locked for {timeout:.0f}s",
                    hint="another residency process is writing it, or is stuck",
                ) from None
            time.sleep(0.01)


@dataclass(frozen=True)
class _Tail:
    end: int  # offset just after the last newline: where complete lines end
    last_line: bytes | None  # the last complete line, without its newline
    fragment: bytes  # what follows `end` (a torn write), usually empty


def _read_tail(fd: int, size: int) -> _Tail:
    """The last complete line and any torn fragment, reading backwards from the end."""
    buffer = b""
    position = size
    while position > 0:
        step = min(_CHUNK, position)
        position -= step
        buffer = os.pread(fd, step, position) + buffer
        last = buffer.rfind(b"\n")
        if last >= 0 and buffer.rfind(b"\n", 0, last) >= 0:
            break
    last = buffer.rfind(b"\n")
    if last < 0:
        return _Tail(0, None, buffer)
    start = buffer.rfind(b"\n", 0, last) + 1
    return _Tail(position + last + 1, buffer[start:last], buffer[last + 1 :])


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting, not a record
        return None
    return value if isinstance(value, dict) else None


def _read_head(path: Path) -> dict[str, Any] | None:
    """The head sidecar; None when absent. Raises JournalCorruptError when unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise JournalError(f"cannot read {path}: {error.strerror}") from error
    head = _parse(data)
    if (
        head is None
        or not isinstance(head.get("seq"), int)
        or not isinstance(head.get("hash"), str)
    ):
        raise JournalCorruptError(f"{path} is not a journal head")
    return head


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_head(path: Path, record: Mapping[str, Any]) -> None:
    """Replace the head atomically: temporary file, fsync, rename, fsync the directory."""
    target = head_path(path)
    temporary = target.with_name(target.name + ".tmp")
    data = canonical(
        {
            "v": FORMAT_VERSION,
            "seq": record["seq"],
            "hash": record["hash"],
            "time": record.get("time"),
        }
    )
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    _fsync_dir(target.parent)


def _head_notes(head: Mapping[str, Any] | None, last: Mapping[str, Any] | None) -> list[Any]:
    """What appending after `last` would hide about the journal's end, as journal notes."""
    last_seq: int = last["seq"] if last else 0
    last_hash = last.get("hash") if last else None
    if head is None:
        if last_seq > 1:
            return [
                {
                    "kind": NOTE_HEAD_MISSING,
                    "detail": f"the head file was missing while the journal ended at seq "
                    f"{last_seq}: records may have been removed from the end",
                }
            ]
        return []
    if head["seq"] == last_seq and head["hash"] == last_hash:
        return []
    if last and head["seq"] == last_seq - 1 and head["hash"] == last.get("prev"):
        return []  # a crash between the journal write and the head update
    return [
        {
            "kind": NOTE_HEAD_MISMATCH,
            "detail": f"the journal ended at seq {last_seq} but its head said seq {head['seq']} "
            f"(hash {str(head['hash'])[:12]}): records were removed, edited or added by hand",
        }
    ]


def append(path: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """Append one record (from `build_record`) and return it as stored, with `seq`, `prev`
    and `hash` (and `journal_notes` when this append found something to report).

    Under an exclusive lock: a torn tail left by a crash is cut off (it was never
    acknowledged; noted in the new record), the line is written with one `os.write`, the
    journal is fsynced, then the head is replaced and the directory fsynced. A failed write
    is rolled back. Raises JournalError (unusable path) or JournalCorruptError (the last
    record is unreadable, so the chain cannot continue).
    """
    body = {k: v for k, v in _jsonable(dict(record)).items() if k not in ("seq", "prev", "hash")}
    body.pop("journal_notes", None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise JournalError(f"cannot open the journal {path}: {error.strerror}") from error
    try:
        _lock(fd, path)
        return _append_locked(fd, path, body)
    except OSError as error:
        raise JournalError(f"cannot write the journal {path}: {error.strerror}") from error
    finally:
        os.close(fd)  # also releases the lock


def _append_locked(fd: int, path: Path, body: dict[str, Any]) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    tail = _read_tail(fd, size)
    notes: list[Any] = []
    last_line = tail.last_line
    if tail.fragment:
        whole = _parse(tail.fragment)
        if whole is not None and whole.get("hash") == record_hash(whole):
            # A whole record without its newline (a crash just before the last byte, or an
            # editor): its own hash vouches for it, so keep it rather than cut data.
            os.write(fd, b"\n")
            last_line = tail.fragment
            notes.append(
                {"kind": NOTE_NEWLINE_ADDED, "detail": "the last record had no final newline"}
            )
        else:
            os.ftruncate(fd, tail.end)
            notes.append(
                {
                    "kind": NOTE_TORN_TAIL,
                    "detail": f"removed {len(tail.fragment)} bytes of an interrupted write",
                    "sha256": hashlib.sha256(tail.fragment).hexdigest(),
                }
            )
        size = os.fstat(fd).st_size
    last = None
    if last_line is not None:
        last = _parse(last_line)
        if last is None or not isinstance(last.get("seq"), int) or "hash" not in last:
            raise JournalCorruptError(
                f"cannot append to {path}: its last record is unreadable",
                hint="run `residency journal verify`; move the journal and its .head aside "
                "to start a new one",
            )
    try:
        head = _read_head(head_path(path))
    except JournalCorruptError as problem:
        notes.append({"kind": NOTE_HEAD_MISMATCH, "detail": f"unreadable head: {problem}"})
    else:
        notes.extend(_head_notes(head, last))
    stored: dict[str, Any] = dict(body)
    stored["seq"] = last["seq"] + 1 if last else 1
    stored["prev"] = str(last["hash"]) if last else GENESIS
    if notes:
        stored["journal_notes"] = notes
    stored["hash"] = record_hash(stored)
    line = canonical(stored) + b"\n"
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(28, f"short write ({written} of {len(line)} bytes)")
        os.fsync(fd)
    except BaseException:
        with suppress(OSError):
            os.ftruncate(fd, size)  # never leave half a record behind
        raise
    _write_head(path, stored)
    return stored


# --- read and verify -------------------------------------------------------------------


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without newline, complete?) for every line of the journal."""
    for number, raw in enumerate(stream, start=1):
        complete = raw.endswith(b"\n")
        yield number, raw[:-1] if complete else raw, complete


@contextmanager
def _opened(path: Path, *, lock: bool = False) -> Iterator[BinaryIO | None]:
    """The journal open for reading (None when it does not exist), optionally share-locked."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        raise JournalError(f"cannot read the journal {path}: {error.strerror}") from error
    with stream:
        if lock:
            _lock(stream.fileno(), path, shared=True)
        try:
            yield stream
        except OSError as error:
            raise JournalError(f"cannot read the journal {path}: {error.strerror}") from error


def read(
    path: Path, *, workload: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The journal's records in order (the last `limit` ones, of `workload` if given).

    Lenient: lines that are not records and a torn tail are skipped (`verify` reports them).
    A missing journal has no records.
    """
    with _opened(path) as stream:
        lines = _lines(stream) if stream is not None else ()
        return kept_records(
            (_parse(line) if complete else None for _, line, complete in lines), workload, limit
        )


def kept_records(
    records: Iterable[dict[str, Any] | None], workload: str | None, limit: int | None
) -> list[dict[str, Any]]:
    """What `read` returns from a store's records in order (None: not a record, skipped):
    the last `limit` ones, of `workload` if given."""
    kept: deque[dict[str, Any]] = deque(maxlen=limit if limit is not None and limit >= 0 else None)
    for record in records:
        if record is not None and (workload is None or record.get("workload") == workload):
            kept.append(record)
    return list(kept)


def recorded_placements(source: Path | JournalStore) -> dict[str, str]:
    """task ARN -> the location its host had when `run` verified the placement, from every
    record that knows it: what audit uses once StopTask has deleted the task's tags."""
    found: dict[str, str] = {}
    records = read(source) if isinstance(source, Path) else source.read()
    for record in records:
        result = record.get("result")
        if not isinstance(result, dict):
            continue
        for task in [result, *(result.get("tasks") or [])]:
            host = task.get("host") if isinstance(task, dict) else None
            if isinstance(host, dict) and task.get("task_arn") and host.get("location"):
                found[str(task["task_arn"])] = str(host["location"])
    return found


@dataclass(frozen=True)
class JournalRecords:
    """`journal show`: the records, oldest first (JSON: the list)."""

    records: list[dict[str, Any]]

    def to_json(self) -> list[dict[str, Any]]:
        return self.records


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found: `ok` when no problem; `notes` are benign (crash leftovers)."""

    path: str
    exists: bool
    records: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_seq: int | None = None
    last_hash: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "ok": self.ok,
            "records": self.records,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "problems": self.problems,
            "notes": self.notes,
        }


@dataclass
class _Chain:
    """The one verifier of a chain, whichever store holds it: fed each record's bytes with
    its position (`line 7` in a file, `object PREFIX/...07.json` on S3), then the head.
    Every message names that position, so both stores report problems the same way."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0
    previous: dict[str, Any] | None = None  # the last readable record
    previous_position: str = ""
    synced: bool = True  # False after an unreadable record: the next prev cannot be checked
    seen: dict[int, str] = field(default_factory=dict)  # seq -> first position
    max_seq: int = 0
    head_name: str = "head file"
    # seq -> hash of every record, kept when the head may lag by more than one record
    # (concurrent writers on S3); None for the local file, whose head lags by one at most.
    hashes: dict[int, str] | None = None

    def check(self, position: str, line: bytes, expected_seq: int | None = None) -> None:
        """One record; `expected_seq`: the seq its place implies (an S3 key), if any."""
        record = _parse(line)
        if record is None:
            self.problems.append(f"{position}: not a JSON object (edited or corrupted)")
            self.synced = False
            return
        seq, prev, stored = record.get("seq"), record.get("prev"), record.get("hash")
        if not isinstance(seq, int) or not isinstance(prev, str) or not isinstance(stored, str):
            self.problems.append(f"{position}: missing seq, prev or hash (not a journal record)")
            self.synced = False
            return
        self.records += 1
        where = f"{position} (seq {seq})"
        if record_hash(record) != stored:
            self.problems.append(f"{where}: hash mismatch: the record was edited")
        elif canonical(record) != line:
            self.problems.append(f"{where}: not in canonical form: the line was edited by hand")
        if expected_seq is not None and seq != expected_seq:
            self.problems.append(
                f"{where}: stored in the place of seq {expected_seq}: "
                "a record was moved, copied or reordered"
            )
        self._linked(where, record, seq, prev)
        if seq in self.seen:
            self.problems.append(f"{where}: seq {seq} also on {self.seen[seq]} (duplicated)")
        else:
            self.seen[seq] = position
        if self.hashes is not None:
            self.hashes.setdefault(seq, stored)
        for note in record.get("journal_notes") or []:
            if not isinstance(note, dict):
                continue
            text = f"{where}: when this record was appended: {note.get('detail', note.get('kind'))}"
            (self.problems if note.get("kind") in PROBLEM_NOTES else self.notes).append(text)
        self.max_seq = max(self.max_seq, seq)
        self.previous, self.previous_position, self.synced = record, position, True

    def _linked(self, where: str, record: Mapping[str, Any], seq: int, prev: str) -> None:
        """`prev` names the record before, and `seq` grows."""
        expected = self.previous["hash"] if self.previous else GENESIS
        if self.synced and prev != expected:
            before = (
                f"{self.previous_position} (seq {self.previous['seq']})"
                if self.previous
                else "the start of the journal"
            )
            self.problems.append(
                f"{where}: prev does not match the hash of {before}: "
                "a record was removed, inserted or reordered"
            )
        if self.previous is not None and seq <= self.previous["seq"]:
            self.problems.append(
                f"{where}: out of order: follows seq {self.previous['seq']} "
                "(reordered or duplicated)"
            )

    def missing(self) -> None:
        absent = [s for s in range(1, self.max_seq + 1) if s not in self.seen]
        if absent:
            shown = ", ".join(str(s) for s in absent[:20]) + (" ..." if len(absent) > 20 else "")
            self.problems.append(f"seq {shown} missing: record(s) deleted")

    def _hash_at(self, seq: int) -> str | None:
        """The hash of the record at `seq` as read (GENESIS before the first)."""
        last = self.previous
        if seq == 0:
            return GENESIS
        if last is not None and seq == last["seq"] - 1:
            return str(last.get("prev"))
        return self.hashes.get(seq) if self.hashes is not None else None

    def against_head(self, head: Mapping[str, Any] | None, exists: bool) -> None:
        last = self.previous
        last_seq = last["seq"] if last else 0
        name = self.head_name
        if head is None:
            if last_seq > 1:
                self.problems.append(
                    f"the {name} is missing: cannot tell whether records after seq {last_seq} "
                    "were removed"
                )
            elif last_seq == 1:
                self.notes.append(f"no {name} (a crash right after the first append?)")
            return
        if not exists and head["seq"] > 0:
            self.problems.append(
                f"the journal is missing but its head says seq {head['seq']}: it was deleted"
            )
            return
        if head["seq"] == last_seq and (last is None or head["hash"] == last["hash"]):
            return
        if head["seq"] < last_seq and head["hash"] == self._hash_at(head["seq"]):
            behind = last_seq - head["seq"]
            self.notes.append(
                f"the head is one record behind (seq {head['seq']}): a crash between the journal "
                "write and the head update; the next append fixes it"
                if behind == 1
                else f"the head is {behind} records behind (seq {head['seq']}): writers that "
                "stopped between their append and the head update, or appends still going on; "
                "the next append fixes it"
            )
            return
        self._head_disagrees(head, last, last_seq)

    def _head_disagrees(
        self, head: Mapping[str, Any], last: Mapping[str, Any] | None, last_seq: int
    ) -> None:
        if head["seq"] > last_seq:
            self.problems.append(
                f"the journal ends at seq {last_seq} but its head says seq {head['seq']}: "
                "records were removed from the end"
            )
        else:
            self.problems.append(
                f"the journal ends at seq {last_seq} (hash {str(last and last['hash'])[:12]}) but "
                f"its head says seq {head['seq']} (hash {str(head['hash'])[:12]}): "
                "the end of the journal was edited or written by something else"
            )

    def report(self, location: str, exists: bool) -> VerifyReport:
        self.missing()
        last = self.previous
        return VerifyReport(
            path=location,
            exists=exists,
            records=self.records,
            problems=self.problems,
            notes=self.notes,
            last_seq=last["seq"] if last else None,
            last_hash=last["hash"] if last else None,
        )


def verify(path: Path) -> VerifyReport:
    """Check the whole chain and the head. Missing journal and head: ok, no records."""
    chain = _Chain()
    with _opened(path, lock=True) as stream:
        exists = stream is not None
        for number, line, complete in _lines(stream) if stream is not None else ():
            if not complete:
                chain.problems.append(
                    f"line {number}: torn final line ({len(line)} bytes without a newline): an "
                    "interrupted write; the next append removes it"
                )
                continue
            chain.check(f"line {number}", line)
        try:
            head = _read_head(head_path(path))
        except JournalCorruptError as problem:
            chain.problems.append(str(problem))
        else:
            chain.against_head(head, exists)
    return chain.report(str(path), exists)


# --- stores ----------------------------------------------------------------------------


class JournalStore(Protocol):
    """Where a chain lives: the local file (`LocalJournal`) or S3 (`journal_s3.S3Journal`).
    Both append with the same record format and verify with the same `_Chain`."""

    @property
    def location(self) -> str:
        """The path or `s3://` URL, as messages and `VerifyReport.path` show it."""
        ...

    def check(self) -> None:
        """Raise JournalError (exit 2) when the location cannot be used; called before
        anything is dispatched. Changes nothing."""
        ...

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]: ...

    def read(
        self, *, workload: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]: ...

    def verify(self) -> VerifyReport: ...


@dataclass(frozen=True)
class LocalJournal:
    """The journal file (the default store): the functions above, behind the interface."""

    path: Path

    @property
    def location(self) -> str:
        return str(self.path)

    def check(self) -> None:
        """The file, or the directory it would be created in, must be writable."""
        if self.path.is_dir():
            raise JournalError(f"cannot open the journal {self.path}: Is a directory")
        existing = self.path if self.path.exists() else _nearest_existing(self.path.parent)
        if existing.is_file() and existing != self.path:
            raise JournalError(
                f"cannot open the journal {self.path}: {existing} is a file, not a directory"
            )
        if not os.access(existing, os.W_OK):
            raise JournalError(f"cannot open the journal {self.path}: Permission denied")

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return append(self.path, record)

    def read(
        self, *, workload: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return read(self.path, workload=workload, limit=limit)

    def verify(self) -> VerifyReport:
        return verify(self.path)


def _nearest_existing(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


@dataclass(frozen=True)
class S3Location:
    """`s3://BUCKET/PREFIX`: the records are `PREFIX/<seq, 20 digits>.json`."""

    bucket: str
    prefix: str  # "" or ending with "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


# Bucket names: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Safe key characters (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html),
# in `/`-separated non-empty segments.
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()=-]+(/[A-Za-z0-9!_.*'()=-]+)*")
MAX_PREFIX_CHARS = 900  # keys are at most 1024 bytes; a record's name needs 26 of them


def parse_location(text: str) -> Path | S3Location:
    """A journal location: `s3://BUCKET[/PREFIX]`, else a file path. Raises UsageError
    (exit 2) for an `s3://` URL that is not one, or another scheme."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        if not text.strip():
            raise UsageError("the journal location is empty", hint=_LOCATION_HINT)
        return Path(text).expanduser()
    if scheme.lower() != "s3":
        raise UsageError(
            f"unsupported journal location {text!r}: only s3:// URLs and file paths",
            hint=_LOCATION_HINT,
        )
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise UsageError(
            f"invalid journal location {text!r}: {bucket!r} is not an S3 bucket name "
            "(3-63 characters: a-z 0-9 . -)",
            hint=_LOCATION_HINT,
        )
    if prefix and (not _PREFIX.fullmatch(prefix) or len(prefix) > MAX_PREFIX_CHARS):
        raise UsageError(
            f"invalid journal location {text!r}: the prefix may hold only letters, digits "
            f"and !_.*'()=- in /-separated parts (at most {MAX_PREFIX_CHARS} characters)",
            hint=_LOCATION_HINT,
        )
    return S3Location(bucket, f"{prefix}/" if prefix else "")


_LOCATION_HINT = "use s3://BUCKET/PREFIX or a file path (docs/governance.md)"


def open_journal(
    location: str | Path | None = None, *, s3_client: Callable[[], S3Client] | None = None
) -> JournalStore:
    """The store at `location` (None: `$RESIDENCY_JOURNAL`, else the local default file).
    `s3_client` makes the S3 client (from `aws.py`, with the profile, region and endpoint in
    effect); boto3 is imported only when an S3 journal is used."""
    if location is None:
        location = os.environ.get(JOURNAL_ENV) or None
    where = parse_location(location) if isinstance(location, str) else location
    if where is None:
        return LocalJournal(default_journal_path())
    if isinstance(where, Path):
        return LocalJournal(where)
    from residency_cli.journal_s3 import S3Journal

    return S3Journal(where, s3_client or _default_s3_client)


def _default_s3_client() -> S3Client:
    from residency_cli.aws import AwsSettings, Clients

    return Clients(AwsSettings()).s3


def _nobody() -> dict[str, str] | None:
    return None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RunJournal:
    """How the core journals runs: `run`, `attach`, `demo` and library callers (Airflow)
    all record through `record`, so no path forgets it. A journal problem never changes a
    run's outcome: `record` returns it as a sentence for a warning instead of raising."""

    path: Path | None = None  # None: `default_journal_path()` when writing
    who: Callable[[], Mapping[str, str] | None] = _nobody
    now: Callable[[], datetime] = _utc_now
    store: JournalStore | None = None  # wins over `path` (e.g. an S3 journal)
    # Set when a record failed because the location could not be written (not because the
    # journal's content is damaged): the dispatcher then starts nothing (exit 2).
    unusable: bool = field(default=False, init=False)
    _identity: Mapping[str, str] | None = field(default=None, init=False, repr=False)
    _asked: bool = field(default=False, init=False, repr=False)

    def journal(self) -> JournalStore:
        """The store records go to (`store`, else the file at `path`, else the default)."""
        if self.store is None:
            self.store = open_journal(self.path)
        return self.store

    def check(self) -> None:
        """Raise JournalError (exit 2) when the journal cannot be used: before dispatch."""
        self.journal().check()

    def records(self) -> list[dict[str, Any]]:
        """Every record (an unreadable journal: none; `journal verify` says why)."""
        try:
            return self.journal().read()
        except (ResidencyError, OSError):
            return []

    def record(
        self,
        *,
        workload: str,
        run_id: str | None,
        request: Mapping[str, Any] | None,
        locations: Sequence[str],
        outcome: Mapping[str, Any],
        host_attributes: Mapping[str, str] | None,
        event: str = "run",
    ) -> str | None:
        """Append one record; None when written, else why it was not."""
        self.unusable = False
        if not self._asked:  # one STS call per journal, however many runs it records
            self._asked = True
            self._identity = self.who()
        try:
            self.journal().append(
                build_record(
                    who=self._identity,
                    workload=workload,
                    run_id=run_id,
                    request=request,
                    locations=locations,
                    outcome=outcome,
                    host_attributes=host_attributes,
                    now=self.now(),
                    event=event,
                ),
            )
        except JournalCorruptError as error:  # the location works; its last record does not
            return f"this run was not journalled: {error}"
        except ResidencyError as error:  # JournalError, or an AWS error of an S3 journal
            self.unusable = True
            return f"this run was not journalled: {error}"
        except (OSError, ValueError, RecursionError) as error:  # never lose the run's result
            return f"this run was not journalled: {type(error).__name__}: {error}"
        return None
