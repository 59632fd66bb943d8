"""Onboard an on-prem host already labelled: an SSM activation plus the exact commands.

ECS Anywhere registers a host with the install script and an SSM activation; the agent reads
custom attributes from ECS_INSTANCE_ATTRIBUTES in /etc/ecs/ecs.config at registration, so a
host that joins this way carries its location from its first second in the cluster. Its data
directory is labelled with the same location, for the jobs' data guard (docs/enforcement.md).
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-anywhere-registration.html
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from residency_cli.aws import aws_errors
from residency_cli.config import Config
from residency_cli.constants import LOCATION_TAG
from residency_cli.errors import UsageError
from residency_cli.guarding import LABEL_FILE, label_text

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

INSTALLER_URL = "https://amazon-ecs-agent.s3.amazonaws.com/ecs-anywhere-install-latest.sh"
DEFAULT_ROLE = "ecsAnywhereRole"
MAX_REGISTRATIONS = 1000
MAX_EXPIRY_SECONDS = 30 * 86400  # SSM allows at most 30 days
DATA_DIR = "/data"  # the host volume the task definitions mount (examples/acme)
# An IAM role name: 1-64 of letters, digits and _+=,.@- (botocore's iam/2010-05-08
# service-2.json, roleNameType: pattern [\w+=,.@-]+, max 64; IAM's \w is ASCII), optionally
# after a path as SSM's own examples use (--iam-role
# service-role/AmazonEC2RunCommandRoleForManagedInstances); SSM CreateActivation's IamRole
# is at most 64 characters (ssm/2014-11-06 service-2.json, IamRole: max 64).
_ROLE_NAME = re.compile(r"(?:[A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}")


def role_problem(role: str) -> str | None:
    """Why `role` is not an IAM role name (what SSM would refuse after a round trip), or None."""
    if len(role) <= 64 and _ROLE_NAME.fullmatch(role):
        return None
    return (
        f"--role {role!r} is not an IAM role name: 1-64 letters, digits and _+=,.@- "
        f"(e.g. {DEFAULT_ROLE})"
    )


@dataclass(frozen=True)
class Activation:
    activation_id: str
    activation_code: str
    location: str
    cluster: str
    region: str
    role: str
    registration_limit: int
    expires_at: str
    commands: list[str]
    sandbox_command: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def attributes_json(config: Config, location: str) -> str:
    return json.dumps({config.location_attribute: location}, separators=(",", ":"))


def install_commands(
    config: Config, location: str, region: str, activation_id: str, code: str
) -> list[str]:
    """What to run on the new host, as root-capable user, in order."""
    line = f"ECS_INSTANCE_ATTRIBUTES={attributes_json(config, location)}"
    installer = [
        "sudo", "bash", "/tmp/ecs-anywhere-install.sh",
        "--region", region,
        "--cluster", config.cluster.rsplit("/", 1)[-1],
        "--activation-id", activation_id,
        "--activation-code", code,
    ]  # fmt: skip
    label = f"{DATA_DIR}/{LABEL_FILE}"
    return [
        f'curl --proto "=https" -fsSL -o /tmp/ecs-anywhere-install.sh {shlex.quote(INSTALLER_URL)}',
        "sudo mkdir -p /etc/ecs",
        f"echo {shlex.quote(line)} | sudo tee -a /etc/ecs/ecs.config",
        # The data carries its location too: the jobs' data guard reads it (root-owned, 0644).
        f"sudo mkdir -p {DATA_DIR}",
        f"echo {shlex.quote(label_text(location).strip())} | sudo tee {label} > /dev/null",
        f"sudo chmod 0644 {label}",
        " ".join(shlex.quote(word) for word in installer),
    ]


def create_activation(
    ssm: SSMClient,
    config: Config,
    location: str,
    *,
    region: str,
    count: int = 1,
    expires_seconds: float = 86400,
    role: str = DEFAULT_ROLE,
    now: datetime | None = None,
    sandbox: bool = False,
) -> Activation:
    """Create the SSM activation (in the control-plane region) and the commands to use it."""
    config.require_location(location)
    problem = role_problem(role)
    if problem:
        raise UsageError(problem)
    if not 1 <= count <= MAX_REGISTRATIONS:
        raise UsageError(f"--count must be between 1 and {MAX_REGISTRATIONS}, got {count}")
    if expires_seconds > MAX_EXPIRY_SECONDS:
        raise UsageError("--expires must be at most 30d (SSM's limit)")
    expires = (now or datetime.now(timezone.utc)) + timedelta(seconds=expires_seconds)
    with aws_errors(f"creating an SSM activation for {location}"):
        created = ssm.create_activation(
            Description=f"residency: hosts of {location} for cluster {config.cluster}",
            DefaultInstanceName=f"{location}-host",
            IamRole=role,
            RegistrationLimit=count,
            ExpirationDate=expires,
            Tags=[{"Key": LOCATION_TAG, "Value": location}],
        )
    activation_id = created["ActivationId"]
    code = created["ActivationCode"]
    join = None
    if sandbox:
        words = [
            "residency", "sandbox", "join", "HOSTNAME",
            "--activation-id", activation_id,
            "--activation-code", code,
            "--attributes", attributes_json(config, location),
        ]  # fmt: skip
        join = " ".join(shlex.quote(word) for word in words)
    return Activation(
        activation_id=activation_id,
        activation_code=code,
        location=location,
        cluster=config.cluster,
        region=region,
        role=role,
        registration_limit=count,
        expires_at=expires.isoformat().replace("+00:00", "Z"),
        commands=install_commands(config, location, region, activation_id, code),
        sandbox_command=join,
    )
