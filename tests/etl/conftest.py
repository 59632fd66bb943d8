"""Fixtures for the ETL jobs: etl/ on sys.path (as /app is in the image), moto S3."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Importing it puts etl/ on sys.path: the jobs import each other as they do under /app.
from tests.support.etl import FAKE_KEY_ID, FAKE_SECRET, TEST_LOCATION, write_label


@pytest.fixture(autouse=True)
def _labelled_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs run their data guard first: the tests' data directory (tmp_path) is labelled
    and the jobs (in-process or child processes, which inherit it) are allowed its location."""
    monkeypatch.setenv("RESIDENCY_ALLOWED_LOCATIONS", TEST_LOCATION)
    write_label(tmp_path)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a region; no endpoint or profile leaking in from outside."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "S3_BUCKET",
        "S3_FOLDER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def s3(aws_env: None) -> Iterator[object]:
    """A moto S3 client with a bucket ``reports`` in eu-central-1."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        client.create_bucket(
            Bucket="reports", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        yield client


@pytest.fixture(autouse=True)
def _quiet_root_logger() -> Iterator[None]:
    # The jobs set the root logger to INFO; give it back as it was.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
