"""Only requests signed with the sandbox's own credentials reach it (issue 14 item 4).

The sandbox runs each task's command as the user who started it: an unsigned RunTask from
any local user must run nothing. Signatures are checked with botocore's own signer; what
botocore sends (JSON and query protocols, S3 with hashed, unsigned and streamed payloads,
presigned URLs) still works.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from residency_cli.sandbox.auth import MAX_SKEW_SECONDS, verify
from residency_cli.sandbox.state import SandboxCredentials

ECS_TARGET = "AmazonEC2ContainerServiceV20141113"
JSON_TYPE = "application/x-amz-json-1.1"


def _send(
    url: str,
    *,
    data: bytes | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _marker_task(sandbox: Any, marker: Path) -> tuple[str, dict[str, Any]]:
    """A task definition whose task would leave `marker` behind, and a RunTask body for it."""
    sandbox.label_all()
    arn = sandbox.register_task_definition("pwn", ["sh", "-c", f"id > {marker}"])
    body = {
        "cluster": sandbox.cluster,
        "taskDefinition": arn,
        "launchType": "EXTERNAL",
        "placementConstraints": [
            {"type": "memberOf", "expression": "attribute:location == newyork"}
        ],
    }
    return arn, body


def _tasks(sandbox: Any) -> list[str]:
    ecs = sandbox._internal("ecs")
    found: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        found += ecs.list_tasks(cluster=sandbox.cluster, desiredStatus=status)["taskArns"]
    return found


def _assert_nothing_ran(sandbox: Any, marker: Path) -> None:
    assert _tasks(sandbox) == []
    assert not marker.exists()
    assert sandbox.calls("RunTask") == 0  # refused before it reached ECS


def test_an_unsigned_run_task_is_refused_and_runs_nothing(sandbox: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _, body = _marker_task(sandbox, marker)
    status, answer = _send(
        sandbox.endpoint + "/",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"X-Amz-Target": f"{ECS_TARGET}.RunTask", "Content-Type": JSON_TYPE},
    )
    assert status == 403
    error = json.loads(answer)
    assert error["__type"] == "MissingAuthenticationTokenException"
    assert "residency sandbox env" in error["message"]
    _assert_nothing_ran(sandbox, marker)


def test_a_run_task_signed_with_other_credentials_is_refused(sandbox: Any, tmp_path: Path) -> None:
    import boto3

    marker = tmp_path / "pwned"
    _, body = _marker_task(sandbox, marker)
    stranger = SandboxCredentials.generate()
    ecs = boto3.session.Session(**stranger.boto(), region_name=sandbox.region).client(
        "ecs", endpoint_url=sandbox.endpoint
    )
    with pytest.raises(ClientError) as raised:
        ecs.run_task(**body)
    assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # the sandbox's access key with a wrong secret: the signature does not match
    guessed = SandboxCredentials(sandbox.credentials.access_key_id, stranger.secret_access_key)
    ecs = boto3.session.Session(**guessed.boto(), region_name=sandbox.region).client(
        "ecs", endpoint_url=sandbox.endpoint
    )
    with pytest.raises(ClientError) as raised:
        ecs.run_task(**body)
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    _assert_nothing_ran(sandbox, marker)


def _signed(sandbox: Any, body: bytes, target: str) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=sandbox.endpoint + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": JSON_TYPE},
    )
    credentials = Credentials(
        sandbox.credentials.access_key_id, sandbox.credentials.secret_access_key
    )
    SigV4Auth(credentials, "ecs", sandbox.region).add_auth(request)
    return request


def test_a_signed_request_whose_body_was_changed_is_refused(sandbox: Any, tmp_path: Path) -> None:
    """The signature covers the body: a RunTask signed for one task definition cannot be
    replayed with another (here: one that runs a command)."""
    marker = tmp_path / "pwned"
    _, body = _marker_task(sandbox, marker)
    harmless = dict(body, taskDefinition="does-not-exist")
    request = _signed(sandbox, json.dumps(harmless).encode(), f"{ECS_TARGET}.RunTask")
    status, answer = _send(
        request.url,
        data=json.dumps(body).encode(),
        method="POST",
        headers=dict(request.headers.items()),
    )
    assert status == 403
    assert json.loads(answer)["__type"] == "InvalidSignatureException"
    _assert_nothing_ran(sandbox, marker)


def test_a_request_signed_by_hand_with_botocore_is_accepted(sandbox: Any) -> None:
    request = _signed(sandbox, b"{}", f"{ECS_TARGET}.ListClusters")
    status, answer = _send(
        request.url, data=b"{}", method="POST", headers=dict(request.headers.items())
    )
    assert status == 200, answer
    assert [a.rsplit("/", 1)[-1] for a in json.loads(answer)["clusterArns"]] == ["acme-etl"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/moto-api/data.json"),
        ("POST", "/moto-api/reset"),
        ("GET", "/moto-api/"),
        ("POST", "/moto-api/state-manager/set-transition"),
        ("GET", "/favicon.ico"),
    ],
)
def test_motos_management_api_is_closed(sandbox: Any, method: str, path: str) -> None:
    from residency_cli.sandbox.world import world

    sandbox.label_all()
    secret = sandbox.register_task_definition(
        "secretive", ["true"], environment={"PASSWORD": "hunter2"}
    )
    status, answer = _send(
        sandbox.endpoint + path, method=method, data=b"" if method == "POST" else None
    )
    assert status == 403
    assert b"hunter2" not in answer and b"AccessDenied" in answer
    assert world().hosts  # not reset
    described = sandbox._internal("ecs").describe_task_definition(taskDefinition=secret)
    assert described["taskDefinition"]["family"] == "secretive"


def test_the_health_answer_stays_open_and_says_nothing_secret(sandbox: Any) -> None:
    status, answer = _send(sandbox.endpoint + "/residency-sandbox/health")
    assert status == 200
    assert json.loads(answer)["residency_sandbox"] is True
    assert sandbox.credentials.secret_access_key.encode() not in answer


def test_query_protocol_refusals_are_shaped_as_sts_answers_them(sandbox: Any) -> None:
    import boto3

    stranger = SandboxCredentials.generate()
    sts = boto3.session.Session(**stranger.boto(), region_name=sandbox.region).client(
        "sts", endpoint_url=sandbox.endpoint
    )
    with pytest.raises(ClientError) as raised:
        sts.get_caller_identity()
    assert raised.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert sandbox.client("sts").get_caller_identity()["Account"] == "123456789012"


# --- S3: what botocore sends -----------------------------------------------------------


def test_s3_with_signed_unsigned_and_streamed_payloads(sandbox: Any) -> None:
    bucket = next(iter(sandbox.buckets))
    s3 = sandbox.client("s3")
    s3.put_object(Bucket=bucket, Key="signed.txt", Body=b"hashed payload")
    unsigned = sandbox.client("s3", s3={"payload_signing_enabled": False})
    unsigned.put_object(Bucket=bucket, Key="unsigned.txt", Body=b"UNSIGNED-PAYLOAD")
    # a file object of unknown length: s3transfer streams it in parts
    s3.upload_fileobj(io.BytesIO(b"x" * (6 * 1024 * 1024)), bucket, "streamed.bin")
    keys = set(sandbox.s3_keys(bucket))
    assert {"signed.txt", "unsigned.txt", "streamed.bin"} <= keys
    assert s3.get_object(Bucket=bucket, Key="unsigned.txt")["Body"].read() == b"UNSIGNED-PAYLOAD"


def test_s3_refusals_are_shaped_as_s3_answers_them(sandbox: Any) -> None:
    import boto3

    bucket = next(iter(sandbox.buckets))
    status, answer = _send(f"{sandbox.endpoint}/{bucket}?list-type=2")
    assert status == 403 and b"<Code>AccessDenied</Code>" in answer
    stranger = SandboxCredentials.generate()
    s3 = boto3.session.Session(**stranger.boto(), region_name=sandbox.region).client(
        "s3", endpoint_url=sandbox.endpoint, config=BotoConfig(s3={"addressing_style": "path"})
    )
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert raised.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    # a large refused body is read and dropped: the client gets the refusal, not a reset
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="big", Body=b"x" * (6 * 1024 * 1024))
    assert raised.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert not {"k", "big"} & set(sandbox.s3_keys(bucket))
    status, answer = _send(f"{sandbox.endpoint}/{bucket}?list-type=2")  # same server, still fine
    assert status == 403


def test_an_s3_body_that_does_not_match_its_signed_hash_is_refused(sandbox: Any) -> None:
    bucket = next(iter(sandbox.buckets))
    url = f"{sandbox.endpoint}/{bucket}/report.csv"
    request = AWSRequest(method="PUT", url=url, data=b"the real report")
    credentials = Credentials(
        sandbox.credentials.access_key_id, sandbox.credentials.secret_access_key
    )
    from botocore.auth import S3SigV4Auth

    S3SigV4Auth(credentials, "s3", sandbox.region).add_auth(request)
    status, answer = _send(
        url, data=b"a forged report", method="PUT", headers=dict(request.headers.items())
    )
    assert status == 400 and b"XAmzContentSHA256Mismatch" in answer
    assert "report.csv" not in sandbox.s3_keys(bucket)


def test_a_presigned_url_works_until_it_expires(sandbox: Any) -> None:
    bucket = next(iter(sandbox.buckets))
    s3 = sandbox.client("s3")
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"shared")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=60
    )
    assert _send(url) == (200, b"shared")
    tampered = url.replace("shared.txt", "other.txt")
    status, answer = _send(tampered)
    assert status == 403 and b"SignatureDoesNotMatch" in answer


# --- the verifier on its own: time is injected ------------------------------------------


def _environ(request: AWSRequest) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(request.url)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": parts.path,
        "REQUEST_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
        "QUERY_STRING": parts.query,
        "HTTP_HOST": parts.netloc,
        "wsgi.input": io.BytesIO(request.body or b""),
        "CONTENT_LENGTH": str(len(request.body or b"")),
    }
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return environ


SIGNED_AT = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def _signed_at(credentials: SandboxCredentials, when: float) -> AWSRequest:
    import botocore.auth

    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:4599/",
        data=b"{}",
        headers={"X-Amz-Target": f"{ECS_TARGET}.ListClusters", "Content-Type": JSON_TYPE},
    )
    signer = SigV4Auth(
        Credentials(credentials.access_key_id, credentials.secret_access_key), "ecs", "eu-west-1"
    )
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: datetime.fromtimestamp(when, timezone.utc)  # type: ignore[assignment]
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original  # type: ignore[assignment]
    return request


def test_a_signature_is_valid_for_fifteen_minutes_either_side() -> None:
    credentials = SandboxCredentials.generate()
    request = _signed_at(credentials, SIGNED_AT)
    for offset in (-MAX_SKEW_SECONDS, 0, MAX_SKEW_SECONDS):
        assert verify(_environ(request), credentials, now=lambda o=offset: SIGNED_AT + o) is None
    for offset in (-MAX_SKEW_SECONDS - 1, MAX_SKEW_SECONDS + 1):
        refusal = verify(_environ(request), credentials, now=lambda o=offset: SIGNED_AT + o)
        assert refusal is not None and refusal.kind == "expired"
        assert "Signature expired" in refusal.message


def test_a_presigned_url_expires() -> None:
    import botocore.auth

    credentials = SandboxCredentials.generate()
    request = AWSRequest(method="GET", url="http://127.0.0.1:4599/bucket/key")
    signer = S3SigV4QueryAuth(
        Credentials(credentials.access_key_id, credentials.secret_access_key),
        "s3",
        "eu-west-1",
        expires=60,
    )
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: datetime.fromtimestamp(SIGNED_AT, timezone.utc)  # type: ignore[assignment]
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original  # type: ignore[assignment]
    assert verify(_environ(request), credentials, now=lambda: SIGNED_AT + 60) is None
    refusal = verify(_environ(request), credentials, now=lambda: SIGNED_AT + 61)
    assert refusal is not None and refusal.kind == "expired"


@pytest.mark.parametrize(
    ("authorization", "kind"),
    [
        ("AWS AKIDEXAMPLE:signature", "malformed"),  # Signature Version 2
        ("AWS4-HMAC-SHA256 Credential=x", "malformed"),
        ("Bearer token", "malformed"),
    ],
)
def test_other_authorization_schemes_are_refused(authorization: str, kind: str) -> None:
    credentials = SandboxCredentials.generate()
    request = _signed_at(credentials, SIGNED_AT)
    environ = _environ(request)
    environ["HTTP_AUTHORIZATION"] = authorization
    refusal = verify(environ, credentials, now=lambda: SIGNED_AT)
    assert refusal is not None and refusal.kind == kind


def test_the_credentials_never_show_their_secret() -> None:
    credentials = SandboxCredentials.generate()
    assert credentials.secret_access_key not in repr(credentials)
    assert credentials.access_key_id.startswith("SBOX") and len(credentials.access_key_id) == 20
    assert SandboxCredentials.generate() != credentials
