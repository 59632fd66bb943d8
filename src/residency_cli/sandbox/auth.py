"""Who may talk to the sandbox: only requests signed with AWS Signature Version 4 by the
credentials the sandbox generated when it started (state.SandboxCredentials).

The sandbox runs each task's command as the user who started it, so a request that reaches
RunTask is a command run as that user; anyone who can open a socket to 127.0.0.1 could
otherwise send one. The signature is recomputed with botocore's own signer
(botocore.auth.SigV4Auth and its S3 and presigned-URL variants) from the request as it
arrived and compared in constant time (hmac.compare_digest): no home-made SigV4.

What is checked, after the SigV4 reference
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html and
create-signed-request.html):
- an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
  header, or a presigned URL's `X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders/
  Signature` query parameters (authenticating-requests-by-using-query-parameters);
- the access key id is the sandbox's; the signature matches the canonical request built from
  the method, the path and query as sent, the signed headers and the payload hash: S3's
  `X-Amz-Content-SHA256` as signed (a hex digest, `UNSIGNED-PAYLOAD`, or a
  `STREAMING-...` value of aws-chunked uploads), for other services the body's SHA-256;
- a hex `X-Amz-Content-SHA256` matches the body (S3 answers XAmzContentSHA256Mismatch);
- the request time is within 15 minutes of the sandbox's clock ("the time stamp must be
  within 15 minutes of the AWS time"), and a presigned URL has not expired (X-Amz-Expires at
  most 7 days).

Refusals are answered as the service would: JSON services (ECS, SSM, CloudWatch Logs)
MissingAuthenticationTokenException, UnrecognizedClientException, InvalidSignatureException;
query services (STS) MissingAuthenticationToken, InvalidClientTokenId, SignatureDoesNotMatch;
S3 AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, RequestTimeTooSkewed (AWS's
"Common Errors" pages and the S3 error-code list).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from residency_cli.sandbox.state import SandboxCredentials

if TYPE_CHECKING:
    from botocore.awsrequest import AWSRequest

ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"  # botocore.auth.SIGV4_TIMESTAMP
MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # X-Amz-Expires: "minimum 1, maximum 604800 (7 days)"
_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*"
)
_SCOPE = re.compile(
    r"(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request"
)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_PARAMETER = "X-Amz-Signature"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused; `kind` picks each protocol's error code (see _CODES)."""

    kind: str  # missing | malformed | unknown_key | signature | expired | payload
    message: str


# kind -> (HTTP status, JSON-protocol code, query-protocol code, S3 code)
_CODES: dict[str, tuple[int, str, str, str]] = {
    "missing": (
        403, "MissingAuthenticationTokenException", "MissingAuthenticationToken", "AccessDenied"
    ),
    "malformed": (400, "IncompleteSignatureException", "IncompleteSignature", "AccessDenied"),
    "unknown_key": (
        403, "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId"
    ),
    "signature": (
        403, "InvalidSignatureException", "SignatureDoesNotMatch", "SignatureDoesNotMatch"
    ),
    "expired": (403, "InvalidSignatureException", "SignatureDoesNotMatch", "RequestTimeTooSkewed"),
    "payload": (
        400, "InvalidSignatureException", "SignatureDoesNotMatch", "XAmzContentSHA256Mismatch"
    ),
}  # fmt: skip


def error_code(refusal: Refusal, protocol: str) -> tuple[int, str]:
    """The HTTP status and error code a service of `protocol` (json, query, rest) answers."""
    status, json_code, query_code, s3_code = _CODES[refusal.kind]
    code = {"json": json_code, "query": query_code}.get(protocol, s3_code)
    if protocol == "rest" and refusal.kind == "malformed":
        status = 403  # S3 answers a malformed signature AccessDenied (403), see _CODES
    return status, code


MESSAGES = {
    "missing": "Missing Authentication Token: the sandbox accepts only requests signed with "
    'its own credentials (eval "$(residency sandbox env)", or residency --sandbox)',
    "unknown_key": "The security token included in the request is invalid: this sandbox "
    'generated other credentials when it started (eval "$(residency sandbox env)")',
    "signature": "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method.",
}


def _header(environ: dict[str, Any], name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.get(key)
    else:
        value = environ.get(f"HTTP_{key}")
    return None if value is None else str(value)


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back so that moto reads it again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length_text = environ.get("CONTENT_LENGTH") or ""
    try:
        length = int(length_text) if length_text else -1
    except ValueError:
        length = -1
    if length >= 0:
        body = stream.read(length) if length else b""
    elif environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream itself
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _timestamp(environ: dict[str, Any], query: dict[str, str]) -> str | None:
    """The signing time as SigV4 writes it (20240101T120000Z): X-Amz-Date, else Date."""
    stamp = query.get("X-Amz-Date") or _header(environ, "X-Amz-Date")
    if stamp:
        return stamp
    date = _header(environ, "Date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).astimezone(timezone.utc).strftime(SIGV4_TIMESTAMP)
    except (TypeError, ValueError):
        return None


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _query_without_signature(raw_query: str) -> str:
    """The query string as sent, minus X-Amz-Signature (a presigned URL signs everything but it)."""
    kept = [
        pair
        for pair in raw_query.split("&")
        if pair and pair.partition("=")[0] != _SIGNATURE_PARAMETER
    ]
    return "&".join(kept)


def _signature_parts(
    header: str | None, query: dict[str, str], presigned: bool
) -> tuple[str, str, str] | Refusal:
    """(credential, signed headers, signature) from the presigned URL's query or the
    Authorization header; a Refusal when they are not SigV4's."""
    if presigned:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            return Refusal("malformed", f"X-Amz-Algorithm must be {ALGORITHM}")
        return (
            query.get("X-Amz-Credential", ""),
            query.get("X-Amz-SignedHeaders", ""),
            query.get(_SIGNATURE_PARAMETER, ""),
        )
    assert header is not None
    match = _HEADER.fullmatch(header.strip())
    if match is None:
        return Refusal(
            "malformed",
            f"the Authorization header is not {ALGORITHM} Credential=..., SignedHeaders=..., "
            "Signature=... (the sandbox accepts Signature Version 4 only)",
        )
    return match["credential"], match["signed"], match["signature"]


def _freshness(
    query: dict[str, str], presigned: bool, stamp: str, signed_at: float, current: float
) -> Refusal | None:
    """A presigned URL must not have expired; a signed header must be within 15 minutes of
    the sandbox's clock (AWS's own limit, so that a captured request cannot be replayed)."""
    if presigned:
        try:
            expires = int(query.get("X-Amz-Expires", ""))
        except ValueError:
            return Refusal("malformed", "X-Amz-Expires must be a number of seconds")
        if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            return Refusal("malformed", "X-Amz-Expires must be from 1 to 604800 seconds")
        if current > signed_at + expires or signed_at - current > MAX_SKEW_SECONDS:
            return Refusal("expired", "Request has expired")
    elif abs(current - signed_at) > MAX_SKEW_SECONDS:
        server_time = datetime.fromtimestamp(current, timezone.utc).strftime(SIGV4_TIMESTAMP)
        return Refusal(
            "expired",
            f"Signature expired: {stamp} is more than 15 minutes from the sandbox's time "
            f"{server_time}",
        )
    return None


def _request_as_sent(
    environ: dict[str, Any], raw_query: str, presigned: bool, signed: str, stamp: str
) -> AWSRequest | Refusal:
    """The request rebuilt as the client signed it (URL as sent, the signed headers, the
    body), for botocore's signer to sign again; a Refusal when a signed header is missing or
    a hex X-Amz-Content-SHA256 does not match the body."""
    from botocore.awsrequest import AWSRequest

    host = _header(environ, "Host") or ""
    path = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or "").split("?", 1)[0]
    if not path:
        path = str(environ.get("PATH_INFO") or "/")
    query_text = _query_without_signature(raw_query) if presigned else raw_query
    url = f"http://{host}{path}" + (f"?{query_text}" if query_text else "")
    headers: dict[str, str] = {}
    for name in signed.lower().split(";"):
        value = host if name == "host" else _header(environ, name)
        if value is None:
            return Refusal("signature", f"the signed header {name!r} is not in the request")
        headers[name] = value
    content_sha256 = headers.get("x-amz-content-sha256")
    body = b""
    # UNSIGNED-PAYLOAD and STREAMING-... values are signed as they are: no body to read.
    if content_sha256 is None or _HEX_SHA256.fullmatch(content_sha256):
        body = read_body(environ)
    if (
        content_sha256
        and _HEX_SHA256.fullmatch(content_sha256)
        and not hmac.compare_digest(hashlib.sha256(body).hexdigest(), content_sha256)
    ):
        return Refusal(
            "payload", "The provided 'x-amz-content-sha256' header does not match the body"
        )
    request = AWSRequest(method=str(environ.get("REQUEST_METHOD", "GET")), url=url, data=body)
    for name, value in headers.items():
        request.headers[name] = value
    request.context["timestamp"] = stamp
    return request


def _expected_signature(
    request: AWSRequest,
    credentials: SandboxCredentials,
    service: str,
    region: str,
    presigned: bool,
) -> str:
    """The signature botocore computes for `request` with the sandbox's credentials (S3 and
    presigned URLs have their own signer variants)."""
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
    from botocore.credentials import Credentials

    signer_credentials = Credentials(credentials.access_key_id, credentials.secret_access_key)
    signer: SigV4Auth
    if presigned:
        signer_class = S3SigV4QueryAuth if service == "s3" else SigV4QueryAuth
        signer = signer_class(signer_credentials, service, region)
    else:
        signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
            signer_credentials, service, region
        )
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def verify(
    environ: dict[str, Any],
    credentials: SandboxCredentials,
    now: Callable[[], float] = time.time,
) -> Refusal | None:
    """None when the request is signed by `credentials`; else why it is refused.

    May read the request body (and put it back)."""
    raw_query = str(environ.get("QUERY_STRING") or "")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    header = _header(environ, "Authorization")
    presigned = _SIGNATURE_PARAMETER in query or "X-Amz-Credential" in query
    if not header and not presigned:
        return Refusal("missing", MESSAGES["missing"])
    parts = _signature_parts(header, query, presigned)
    if isinstance(parts, Refusal):
        return parts
    credential, signed, signature = parts
    scope = _SCOPE.fullmatch(credential)
    if scope is None or not signed or not signature:
        return Refusal(
            "malformed", "the credential must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request"
        )
    if not hmac.compare_digest(
        scope["key"].encode("utf-8", "replace"), credentials.access_key_id.encode()
    ):
        return Refusal("unknown_key", MESSAGES["unknown_key"])
    stamp = _timestamp(environ, query)
    signed_at = _epoch(stamp) if stamp else None
    if stamp is None or signed_at is None:
        return Refusal("malformed", "the request has no valid X-Amz-Date (or Date) header")
    if stamp[:8] != scope["date"]:
        return Refusal("signature", "the credential's date is not the request's date")
    stale = _freshness(query, presigned, stamp, signed_at, now())
    if stale is not None:
        return stale
    request = _request_as_sent(environ, raw_query, presigned, signed, stamp)
    if isinstance(request, Refusal):
        return request
    expected = _expected_signature(
        request, credentials, scope["service"], scope["region"], presigned
    )
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        return Refusal("signature", MESSAGES["signature"])
    return None
