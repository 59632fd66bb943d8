"""The only place that builds AWS sessions and clients (botocore's), and translates their errors.

botocore is imported lazily so that `--help`, `validate` and usage errors stay fast. Core code
receives clients as arguments; the CLI makes them here from the global options.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from residency_cli.errors import AwsError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

# Throttling on ECS and CloudWatch Logs is common in busy accounts; adaptive mode backs off
# client-side too. https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html
# `total_max_attempts` counts the first try too (botocore's `max_attempts` counts retries).
RETRY_CONFIG: dict[str, Any] = {"mode": "adaptive", "total_max_attempts": 6}
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30


# Error codes after which a poll is simply tried again later (botocore has already retried
# them with its own back-off; see aws.RETRY_CONFIG).
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ServiceUnavailableException",
        "LimitExceededException",
    }
)


@dataclass(frozen=True)
class AwsSettings:
    """Where to reach AWS: from the global options, the map and the environment."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)


@dataclass
class Clients:
    """Lazily created clients sharing one session; pass the ones a core function needs."""

    settings: AwsSettings
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def session(self) -> Session:
        if self._session is None:
            self._session = make_session(self.settings)
        return self._session  # type: ignore[no-any-return]

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = make_client(self.session(), service, self.settings)
        return self._clients[service]

    @property
    def ecs(self) -> ECSClient:
        return self._client("ecs")  # type: ignore[no-any-return]

    @property
    def logs(self) -> CloudWatchLogsClient:
        return self._client("logs")  # type: ignore[no-any-return]

    @property
    def ssm(self) -> SSMClient:
        return self._client("ssm")  # type: ignore[no-any-return]

    @property
    def s3(self) -> S3Client:
        return self._client("s3")  # type: ignore[no-any-return]

    @property
    def sts(self) -> STSClient:
        return self._client("sts")  # type: ignore[no-any-return]

    @property
    def region(self) -> str:
        return str(self.session().region_name)

    def in_region(self, region: str) -> Clients:
        """Clients for another region (same credentials and endpoint), or these ones."""
        if region == self.region:
            return self
        from dataclasses import replace

        return Clients(replace(self.settings, region=region))


def _region_and_source(settings: AwsSettings) -> tuple[str | None, str]:
    """The region asked for and where it came from. botocore reads AWS_DEFAULT_REGION and
    the profile but not AWS_REGION (which the AWS CLI v2 and the other SDKs honour, before
    AWS_DEFAULT_REGION: https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html),
    so residency reads it itself."""
    if settings.region:
        return settings.region, "--region or the map's region:"
    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"], "AWS_REGION"
    return None, "AWS_DEFAULT_REGION or the profile"


class Session:
    """The one session residency's clients share: botocore's own, as boto3 would set it up
    (profile, region, credentials). boto3's additions (resources, S3 transfers) are not used,
    and leaving them out saves their imports before RunTask (bench/dispatch_start.py)."""

    def __init__(self, profile: str | None, region: str | None, credentials: dict[str, str]):
        import botocore.session

        self.botocore = botocore.session.Session(profile=profile)
        access = credentials.get("aws_access_key_id")
        secret = credentials.get("aws_secret_access_key")
        if access and secret:
            self.botocore.set_credentials(access, secret, credentials.get("aws_session_token"))
        if region:
            self.botocore.set_config_variable("region", region)

    @property
    def region_name(self) -> str | None:
        region = self.botocore.get_config_variable("region")
        return str(region) if region else None

    def client(self, service: str, *, endpoint_url: str | None, config: Any) -> Any:
        return self.botocore.create_client(service, endpoint_url=endpoint_url, config=config)


def make_session(settings: AwsSettings) -> Session:
    import botocore.exceptions
    import botocore.utils

    region, source = _region_and_source(settings)
    try:
        session = Session(settings.profile, region, settings.credentials)
        if settings.profile is not None:  # as boto3.Session does: a missing profile fails here
            session.botocore.get_scoped_config()
    except botocore.exceptions.ProfileNotFound:
        raise UsageError(
            f"AWS profile {settings.profile!r} is not configured",
            hint="check ~/.aws/config or pass another --profile",
        ) from None
    if not session.region_name:
        raise UsageError(
            "no AWS region: set region: in the map, pass --region, or set AWS_REGION",
        )
    try:  # the check botocore makes when a client is created, made here to name the source
        botocore.utils.validate_region_name(session.region_name)
    except botocore.exceptions.InvalidRegionError:
        raise UsageError(
            f"invalid AWS region {one_line(str(session.region_name), 80)!r} (from {source})",
            hint="use a region name like eu-central-1",
        ) from None
    return session


def make_client(session: Session, service: str, settings: AwsSettings) -> Any:
    from botocore.config import Config

    config = Config(
        retries=RETRY_CONFIG,  # type: ignore[arg-type]
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        user_agent_extra="residency",
    )
    import botocore.exceptions

    endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    try:
        return session.client(service, endpoint_url=endpoint, config=config)
    except botocore.exceptions.InvalidRegionError:
        raise UsageError(
            f"invalid AWS region {session.region_name!r}", hint="use a name like eu-central-1"
        ) from None
    except ValueError as error:  # botocore: "Invalid endpoint: ..."
        raise UsageError(
            f"{error}", hint="--endpoint-url takes a URL like http://127.0.0.1:4599"
        ) from None


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a ClientError (e.g. 'ClusterNotFoundException'), else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def is_aws_error(error: BaseException) -> bool:
    return type(error).__module__.startswith(("botocore", "boto3"))


_HINTS = {
    "ClusterNotFoundException": "check `cluster:` in the map and the region",
    "AccessDeniedException": "the credentials lack a permission residency needs",
    "AccessDenied": "the credentials lack a permission residency needs",
    "UnrecognizedClientException": "the credentials are not valid for this account",
    "InvalidClientTokenId": "the credentials are not valid for this account",
    "ExpiredTokenException": "the session credentials expired; log in again",
    "ThrottlingException": "AWS kept throttling after retries; try again later",
    "ResourceNotFoundException": "check the names in the map and the region",
}


MAX_MESSAGE_CHARS = 300
_HTML = re.compile(r"^\s*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` on one line (runs of whitespace, newlines included, become one space), cut at
    `limit` characters: an answer is quoted in an error line, never dumped."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _html_answer(error: Any, message: str) -> str | None:
    """A web page where an AWS answer was expected (a proxy, a captive portal, the wrong
    --endpoint-url): botocore makes its whole body the error message. Say what it was."""
    if not _HTML.match(message):
        return None
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    title = _TITLE.search(message)
    named = f" ({one_line(title.group(1), 80)!r})" if title and title.group(1).strip() else ""
    return f"the endpoint answered HTTP {status} with an HTML page{named}, not an AWS answer"


def translate_error(error: BaseException, doing: str | None = None) -> AwsError:
    """One line saying what failed and what to do next; never a traceback, never secrets."""
    import botocore.exceptions as bce

    prefix = f"{doing}: " if doing else ""
    if isinstance(error, bce.ClientError):
        code = error_code(error) or "Error"
        message = error.response.get("Error", {}).get("Message", "") or code
        operation = getattr(error, "operation_name", "AWS")
        page = _html_answer(error, str(message))
        if page is not None:
            return AwsError(
                f"{prefix}{operation} failed: {page}",
                hint="check --endpoint-url and AWS_ENDPOINT_URL: they should name an AWS endpoint",
            )
        return AwsError(
            f"{prefix}{operation} failed: {code}: {one_line(str(message))}",
            hint=_HINTS.get(code),
        )
    if isinstance(error, bce.NoCredentialsError | bce.PartialCredentialsError):
        return AwsError(
            f"{prefix}no AWS credentials found",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --sandbox",
        )
    if isinstance(error, bce.EndpointConnectionError | bce.ConnectTimeoutError):
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url", "the endpoint")
        return AwsError(
            f"{prefix}cannot reach {endpoint}",
            hint="check the network, --endpoint-url and --region; is the sandbox up?",
        )
    if isinstance(error, bce.ReadTimeoutError):
        return AwsError(f"{prefix}AWS did not answer in time", hint="try again")
    if isinstance(error, bce.NoRegionError | bce.InvalidRegionError):
        return AwsError(f"{prefix}no valid AWS region", hint="set region: in the map or --region")
    if isinstance(error, bce.ParamValidationError):
        return AwsError(f"{prefix}invalid request: {error}")
    return AwsError(f"{prefix}{type(error).__name__}: {one_line(str(error))}")


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Translate boto errors raised inside into AwsError naming `doing`."""
    try:
        yield
    except Exception as error:
        if is_aws_error(error):
            raise translate_error(error, doing) from error
        raise
