"""The dispatch journal on S3 (`--journal s3://BUCKET/PREFIX`; docs/governance.md, "The
journal on S3"): one chain for every machine, CI runner and Airflow worker that names it.

Each record is its own object, `PREFIX/<seq as 20 digits>.json` (lexical order = seq order),
holding exactly the line the local journal would hold (canonical JSON and a newline), so
`aws s3 cp --recursive` and `cat` give a journal.jsonl. Appends are linearised by S3 itself:
a record is written with a conditional put, `If-None-Match: *`, which succeeds only if no
object has that key yet; S3 answers 412 Precondition Failed when one does, and 409
ConditionalRequestConflict when a concurrent write to the key is in flight (then retry)
(PutObject `IfNoneMatch` in botocore's s3 service model;
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). A writer that
loses the race reads the record that won, chains after it and tries the next seq: many
concurrent writers give one chain, with no gap, fork or duplicate. A put is atomic (the object
exists whole or not at all), so a writer killed mid-append leaves a chain that verifies.

`PREFIX/head.json` plays the local `.head` sidecar: the seq and hash of the last record, so
that records removed from the *end* are detected. It is created (seq 0) before the first
record, and only ever moved forward, with a compare-and-swap put (`If-Match: <ETag>`, same
documentation); a writer stopped between its record and the head update leaves it behind,
which `verify` notes and the next append repairs. Finding the tail costs no listing: read the
head, then follow the chain forward (each lost race reads one record). Only a head that is
missing or ahead of the records (someone deleted objects) makes an append list the prefix
(ListObjectsV2, 1000 keys a page), and that append records what it found.

The S3 client is made by `aws.py` and passed in (as a factory: nothing is asked before use).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from residency_cli.journal import (
    FORMAT_VERSION,
    GENESIS,
    NOTE_HEAD_MISMATCH,
    NOTE_HEAD_MISSING,
    JournalCorruptError,
    JournalError,
    S3Location,
    VerifyReport,
    _Chain,
    _jsonable,
    _parse,
    canonical,
    kept_records,
    record_hash,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SEQ_DIGITS = 20
HEAD_NAME = "head.json"
_RECORD_NAME = re.compile(r"(\d{20})\.json")
# A lost race is progress (someone else appended), but many writers retrying at once waste
# requests: back off with full jitter. 409 means a write to the key is in flight: retry soon.
MAX_ATTEMPTS = 10_000
MAX_HEAD_ATTEMPTS = 200
CONFLICT_BACKOFF_SECONDS = 0.02
LOST_BACKOFF = 0.01
LOST_BACKOFF_CAP = 0.5
READ_WORKERS = 16  # parallel GETs when reading the whole chain
_PRECONDITION = "PreconditionFailed"  # 412
_CONFLICT = "ConditionalRequestConflict"  # 409
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_UNUSABLE = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidBucketName": "invalid bucket name",
    "PermanentRedirect": "the bucket is in another region",
    "AuthorizationHeaderMalformed": "the bucket is in another region",
    "403": "access denied",
}


@dataclass(frozen=True)
class _Head:
    seq: int
    hash: str
    etag: str | None


@dataclass
class S3Journal:
    """The journal at `s3://BUCKET/PREFIX` (see the module docstring)."""

    where: S3Location
    client_factory: Callable[[], S3Client]
    sleep: Callable[[float], None] = time.sleep
    _client: S3Client | None = field(default=None, init=False, repr=False)
    _tail: tuple[int, str] | None = field(default=None, init=False, repr=False)
    _head: _Head | None = field(default=None, init=False, repr=False)
    _window: float = field(default=0.0, init=False, repr=False)  # back-off window, seconds
    # Where `read` caches record bodies (None: `journal-cache/` in the state directory).
    cache_dir: Path | None = None

    # --- names ------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self.where.url

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def key(self, seq: int) -> str:
        return f"{self.where.prefix}{seq:0{SEQ_DIGITS}d}.json"

    @property
    def head_key(self) -> str:
        return f"{self.where.prefix}{HEAD_NAME}"

    # --- errors -----------------------------------------------------------------------

    def _failed(self, error: Exception, doing: str) -> Exception:
        """A journal that cannot be used is exit 2 (JournalError); any other AWS failure is
        the AWS error it is (exit 7)."""
        from residency_cli.aws import error_code, is_aws_error, translate_error

        if not is_aws_error(error):
            return error
        code = error_code(error) or ""
        if code in _UNUSABLE:
            return JournalError(
                f"cannot {doing} the journal {self.location}: {_UNUSABLE[code]} ({code})",
                hint="check the bucket name, its region and the permissions of "
                '`residency iam-policy` (docs/governance.md, "The journal on S3")',
            )
        return translate_error(error, f"{doing} the journal {self.location}")

    # --- objects ----------------------------------------------------------------------

    def _get(self, key: str) -> tuple[bytes, str | None] | None:
        """The object's body and ETag; None when there is no such key."""
        from residency_cli.aws import error_code

        try:
            answer = self.client.get_object(Bucket=self.where.bucket, Key=key)
            return answer["Body"].read(), answer.get("ETag")
        except Exception as error:
            code = error_code(error)
            if code in _MISSING_KEY or (code == "AccessDenied" and not self._listed(key)):
                return None
            raise self._failed(error, "read") from error

    def _listed(self, key: str) -> bool:
        """Whether `key` exists, by listing it: S3 answers a GET of a missing key with 403
        instead of 404 unless s3:ListBucket is allowed on the whole bucket
        (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions"),
        and `residency iam-policy` allows it on the journal's prefix only."""
        try:
            answer = self.client.list_objects_v2(Bucket=self.where.bucket, Prefix=key, MaxKeys=1)
        except Exception:
            return True  # cannot tell: report the GET's own error
        return any(item.get("Key") == key for item in answer.get("Contents") or [])

    def _read_head(self) -> _Head | None:
        found = self._get(self.head_key)
        if found is None:
            return None
        head = _parse(found[0])
        if (
            head is None
            or not isinstance(head.get("seq"), int)
            or not isinstance(head.get("hash"), str)
        ):
            raise JournalCorruptError(f"{self.location}/{HEAD_NAME} is not a journal head")
        return _Head(int(head["seq"]), str(head["hash"]), found[1])

    def _record(self, seq: int) -> dict[str, Any] | None:
        found = self._get(self.key(seq))
        if found is None:
            return None
        record = _parse(found[0])
        if record is None or not isinstance(record.get("hash"), str):
            raise JournalCorruptError(
                f"cannot append to {self.location}: its record {self.key(seq)} is unreadable",
                hint="run `residency journal verify`; start a new journal under another prefix",
            )
        return record

    def _put(self, key: str, body: bytes, **condition: str) -> str | None:
        """A conditional put; returns the new ETag. ClientErrors are the caller's."""
        answer = self.client.put_object(
            Bucket=self.where.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            **condition,  # type: ignore[arg-type]
        )
        return answer.get("ETag")

    def record_keys(self) -> Iterator[str]:
        """Every record's key in seq order (ListObjectsV2 returns keys in UTF-8 binary
        order: the zero-padded names sort as their seqs do)."""
        for key in self._keys():
            if _RECORD_NAME.fullmatch(key[len(self.where.prefix) :]):
                yield key

    def _keys(self) -> Iterator[str]:
        for key, _ in self._listing():
            yield key

    def _listing(self) -> Iterator[tuple[str, str | None]]:
        """(key, ETag) of every object under the prefix, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.where.bucket, Prefix=self.where.prefix):
                for item in page.get("Contents") or []:
                    yield str(item["Key"]), item.get("ETag")
        except Exception as error:
            raise self._failed(error, "list") from error

    # --- check ------------------------------------------------------------------------

    def check(self) -> None:
        """Read the head (one GET; remembered for the first append): a missing bucket or
        denied access is exit 2 before anything is dispatched."""
        self._head = self._read_head()

    # --- append -----------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record after the current tail, whoever else is appending; return it
        as stored (with `seq`, `prev`, `hash`, and `journal_notes` when the head had been
        tampered with)."""
        body = {
            k: v for k, v in _jsonable(dict(record)).items() if k not in ("seq", "prev", "hash")
        }
        body.pop("journal_notes", None)
        notes: list[Any] = []
        if self._tail is None:
            self._tail, notes = self._find_tail()
        for _ in range(MAX_ATTEMPTS):
            seq, prev = self._tail
            stored = dict(body)
            stored["seq"], stored["prev"] = seq + 1, prev
            if notes:
                stored["journal_notes"] = notes
            stored["hash"] = record_hash(stored)
            taken = self._try_put(stored)
            if taken is None:
                self._window /= 2
                self._tail = (seq + 1, stored["hash"])
                self._advance_head(stored, force=bool(notes))
                return stored
            # Lost: someone else appended at seq + 1 (and maybe more since). Wait a random
            # while in a window that doubles with each loss and halves with each win (so a
            # crowd of writers spreads out instead of retrying in lockstep), then jump to
            # the newest tail the head knows: one GET, however far the others got.
            self._window = min(LOST_BACKOFF_CAP, max(LOST_BACKOFF, 2 * self._window))
            self.sleep(random.uniform(0, self._window))
            self._tail = self._tail_after(seq + 1, taken)
        raise JournalError(
            f"cannot append to {self.location}: lost the race {MAX_ATTEMPTS} times",
            hint="too many concurrent writers; try again",
        )

    def _try_put(self, stored: dict[str, Any]) -> dict[str, Any] | bool | None:
        """Put `stored` at its seq if no record is there yet: None when it is written;
        else the record there when it had to be read, or True (it exists, unread)."""
        from residency_cli.aws import error_code

        seq = int(stored["seq"])
        try:
            self._put(self.key(seq), canonical(stored) + b"\n", IfNoneMatch="*")
            return None
        except Exception as error:
            code = error_code(error)
            if code == _CONFLICT:  # someone is writing this key right now
                return True
            if code != _PRECONDITION:
                raise self._failed(error, "write") from error
            retried = getattr(error, "response", {}).get("ResponseMetadata", {})
            if not retried.get("RetryAttempts"):
                return True
        # botocore retried the put: the 412 may answer our own first attempt, whose answer
        # was lost. The record there tells.
        there = self._record(seq)
        if there is not None and there.get("hash") == stored["hash"]:
            return None
        return there if there is not None else True

    def _tail_after(self, taken: int, there: dict[str, Any] | bool) -> tuple[int, str]:
        """The tail to chain after, once `taken` is known to exist: the head's if it is at
        or past `taken`, else the record at `taken` (read now unless `there` is it)."""
        try:
            head = self._read_head()
        except JournalCorruptError:
            head = None
        if head is not None and head.seq >= taken:
            return head.seq, head.hash
        record = there if isinstance(there, dict) else self._record(taken)
        if record is None:  # gone again (deleted in between): try the same seq
            return self._tail or (0, GENESIS)
        return taken, str(record["hash"])

    def _find_tail(self) -> tuple[tuple[int, str], list[Any]]:
        """(seq, hash) of the last record known to exist, and notes for the next record
        when the head disagrees with the objects. No listing while the head is sound."""
        head = self._head if self._head is not None else self._read_head()
        if head is None:
            tail = self._scan_tail()
            if tail[0] == 0:  # a new journal: its head exists before its first record
                self._create_head()
                return tail, []
            head = self._read_head()  # created by another writer since the first look?
            if head is None:
                return tail, [
                    {
                        "kind": NOTE_HEAD_MISSING,
                        "detail": f"the head object was missing while the journal ended at "
                        f"seq {tail[0]}: records may have been removed from the end",
                    }
                ]
        self._head = head
        if head.seq == 0:
            return (0, GENESIS), []
        record = self._record(head.seq)
        if record is not None and record.get("hash") == head.hash:
            return (head.seq, head.hash), []
        tail = self._scan_tail() if record is None else (head.seq, str(record["hash"]))
        return tail, [
            {
                "kind": NOTE_HEAD_MISMATCH,
                "detail": f"the journal ended at seq {tail[0]} but its head said seq {head.seq} "
                f"(hash {head.hash[:12]}): records were removed, edited or added by hand",
            }
        ]

    def _scan_tail(self) -> tuple[int, str]:
        """The last record by listing the prefix: only when the head cannot be trusted."""
        last = None
        for key in self.record_keys():
            last = key
        if last is None:
            return 0, GENESIS
        seq = int(last[len(self.where.prefix) : -len(".json")])
        record = self._record(seq)
        return (seq, str(record["hash"])) if record is not None else (0, GENESIS)

    def _create_head(self) -> None:
        from residency_cli.aws import error_code

        body = _head_body(0, GENESIS, None)
        try:
            etag = self._put(self.head_key, body, IfNoneMatch="*")
            self._head = _Head(0, GENESIS, etag)
        except Exception as error:
            if error_code(error) not in (_PRECONDITION, _CONFLICT):
                raise self._failed(error, "write") from error
            self._head = None  # someone else created it

    def _advance_head(self, stored: Mapping[str, Any], *, force: bool) -> None:
        """Move the head forward to `stored` (never back, unless `force`: the head was
        wrong); compare-and-swap on its ETag. The record is already durable, so a failure
        here is not the append's: the head just lags (verify notes it; the next append
        repairs it)."""
        from residency_cli.aws import error_code

        seq = int(stored["seq"])
        body = _head_body(seq, str(stored["hash"]), stored.get("time"))
        for _ in range(MAX_HEAD_ATTEMPTS):
            try:
                head = self._head if self._head is not None else self._read_head()
                if head is not None and head.seq >= seq and not force:
                    self._head = head
                    return
                condition = {"IfMatch": head.etag} if head and head.etag else {"IfNoneMatch": "*"}
                etag = self._put(self.head_key, body, **condition)
                self._head = _Head(seq, str(stored["hash"]), etag)
                return
            except JournalError:
                return
            except Exception as error:
                self._head = None
                if error_code(error) not in (_PRECONDITION, _CONFLICT, *_MISSING_KEY):
                    return
                if error_code(error) == _CONFLICT:
                    self.sleep(CONFLICT_BACKOFF_SECONDS * (1 + random.random()))

    # --- read and verify --------------------------------------------------------------

    def _bodies(self, keys: list[str]) -> Iterator[tuple[str, bytes | None]]:
        """(key, body) in order; None for an object deleted since it was listed. GETs run
        in parallel: reading 10,000 records is 10 listings and 10,000 GETs."""
        if not keys:
            return
        _ = self.client  # made once, before the threads share it (clients are thread-safe)

        def one(key: str) -> tuple[str, bytes | None]:
            found = self._get(key)
            return key, found[0] if found is not None else None

        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(keys))) as pool:
            yield from pool.map(one, keys)

    def _cached_bodies(
        self, listed: list[tuple[str, str | None]]
    ) -> Iterator[tuple[str, bytes | None]]:
        """(key, body) in order, from the local read cache when the object's ETag is the
        one cached (records do not change; one that did has another ETag and is read
        again), else by GET (then cached). `run` reads the journal for its run id: with
        the cache, 10,000 records cost 10 listings and the GETs of the new records only.
        `verify` never uses the cache."""
        cache = _ReadCache.open(self.cache_dir, self.location)
        bodies = {key: cache.get(key, etag) for key, etag in listed}
        missing = [key for key, body in bodies.items() if body is None]
        etags = dict(listed)
        fetched = dict(self._bodies(missing))
        cache.add({k: (etags[k], b) for k, b in fetched.items() if b is not None and etags[k]})
        bodies.update(fetched)
        for key, _ in listed:
            yield key, bodies[key]

    def read(
        self, *, workload: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The records in order (the last `limit`, of `workload` if given); lenient like
        the local `read`: objects that are not records are skipped."""
        listed = [
            (key, etag)
            for key, etag in self._listing()
            if _RECORD_NAME.fullmatch(key[len(self.where.prefix) :])
        ]
        if workload is None and limit is not None and limit >= 0:
            listed = listed[len(listed) - limit :] if limit else []
        bodies = self._cached_bodies(listed)
        return kept_records(
            (_parse(body) if body is not None else None for _, body in bodies), workload, limit
        )

    def verify(self) -> VerifyReport:
        """The same checks as the local file (`_Chain`), each record named by its object;
        also that each record sits at the key of its seq. The head is read before the
        listing, so appends running meanwhile only make it look behind."""
        chain = _Chain(head_name="head object", hashes={})
        head: _Head | None = None
        try:
            head = self._read_head()
        except JournalCorruptError as problem:
            chain.problems.append(str(problem))
            head = None
            unreadable_head = True
        else:
            unreadable_head = False
        keys, others = [], []
        for key in self._keys():
            name = key[len(self.where.prefix) :]
            if _RECORD_NAME.fullmatch(name):
                keys.append(key)
            elif name != HEAD_NAME:
                others.append(key)
        for key, body in self._bodies(keys):
            if body is None:
                continue  # deleted while verifying: the missing seq says so
            line = body[:-1] if body.endswith(b"\n") else body
            seq = int(key[len(self.where.prefix) :][:SEQ_DIGITS])
            chain.check(f"object {key}", line, expected_seq=seq)
        if others:
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            chain.notes.append(f"{len(others)} object(s) under the prefix are not records: {shown}")
        exists = bool(keys)
        if not unreadable_head:
            chain.against_head(
                {"seq": head.seq, "hash": head.hash} if head is not None else None, exists
            )
        return chain.report(self.location, exists)


@dataclass
class _ReadCache:
    """Record bodies already read, by key and ETag: one JSON Lines file per journal under
    the state directory (0600), appended to; anything unreadable in it is ignored, and any
    error with it only means reading from S3 again."""

    path: Path | None
    entries: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: Path | None, location: str) -> _ReadCache:
        name = hashlib.sha256(location.encode()).hexdigest()[:32] + ".jsonl"
        try:
            if directory is None:
                from residency_cli.sandbox.state import state_dir

                directory = state_dir() / "journal-cache"
        except OSError:
            return cls(None)
        cache = cls(directory / name)
        try:
            with (directory / name).open("rb") as stream:
                for line in stream:
                    entry = _parse(line)
                    if (
                        entry
                        and isinstance(entry.get("k"), str)
                        and isinstance(entry.get("b"), str)
                    ):
                        cache.entries[entry["k"]] = (str(entry.get("e")), entry["b"].encode())
        except (OSError, UnicodeError):
            pass  # no cache yet, or an unreadable one: read from S3
        return cache

    def get(self, key: str, etag: str | None) -> bytes | None:
        found = self.entries.get(key)
        return found[1] if found is not None and etag and found[0] == etag else None

    def add(self, new: Mapping[str, tuple[str | None, bytes]]) -> None:
        if self.path is None or not new:
            return
        lines = b"".join(
            json.dumps({"k": k, "e": e, "b": b.decode("ascii")}).encode() + b"\n"
            for k, (e, b) in new.items()
            if b.isascii()
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, lines)
            finally:
                os.close(fd)
        except OSError:
            return


def _head_body(seq: int, record_hash_: str, time_: Any) -> bytes:
    return canonical({"v": FORMAT_VERSION, "seq": seq, "hash": record_hash_, "time": time_}) + b"\n"
