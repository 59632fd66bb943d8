"""Constants and helpers of the ETL tests (tests/etl)."""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ETL_DIR = ROOT / "etl"
SAMPLE = ROOT / "tests" / "etl" / "data" / "employee_data.csv"  # a copy of the seed's data

# The scripts import their sibling as ``import common``, exactly as they do under /app.
if str(ETL_DIR) not in sys.path:
    sys.path.insert(0, str(ETL_DIR))

# The data guard (etl/residency_guard.py): every test's data is labelled with this location
# and the jobs are allowed it (tests/etl/conftest.py); tests/etl/data carries its label.
TEST_LOCATION = "testland"
LABEL_FILE = ".residency-label.json"

FAKE_SECRET = "fakeSecretKeyThatMustNeverBeLogged0123456789"
FAKE_KEY_ID = "AKIAFAKEKEYID0123456"


def job_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
        AWS_DEFAULT_REGION="eu-central-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def object_keys(client: object, bucket: str = "reports") -> list[str]:
    answer = client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return [item["Key"] for item in answer.get("Contents", [])]


def write_label(directory: Path, location: str = TEST_LOCATION) -> Path:
    """Label a data directory as a provisioned host's is labelled."""
    label = directory / LABEL_FILE
    label.write_text(json.dumps({"location": location}) + "\n", encoding="utf-8")
    return label


class OpenWatch:
    """Tells whether any process opened or read a file since the watch began (Linux
    inotify: the kernel queues IN_OPEN before open() returns, so nothing here races).

    Catches every opener: Python, Arrow's C++ reader, a child process.
    """

    _IN_ACCESS = 0x1
    _IN_OPEN = 0x20

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        watch = libc.inotify_add_watch(self._fd, os.fsencode(path), self._IN_OPEN | self._IN_ACCESS)
        if watch < 0:
            os.close(self._fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def opened(self) -> bool:
        try:
            return bool(os.read(self._fd, 4096))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self._fd)
