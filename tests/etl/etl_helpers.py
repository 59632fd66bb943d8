"""Shared constants and helpers of the ETL tests (a plain module: conftest names collide)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ETL_DIR = ROOT / "etl"
SAMPLE = Path(__file__).parent / "data" / "employee_data.csv"  # a copy of the seed's data

# The scripts import their sibling as ``import common``, exactly as they do under /app.
if str(ETL_DIR) not in sys.path:
    sys.path.insert(0, str(ETL_DIR))

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
