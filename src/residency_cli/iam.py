"""The least-privilege IAM policy an operator needs to run residency against one map.

Pure code, no AWS: the policy is derived from the map alone. Every action residency calls is
listed once, scoped to the map's cluster and task definitions wherever the Service
Authorization Reference allows a resource ARN, and narrowed with condition keys elsewhere:
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html

What the map cannot say (the roles a task definition passes, the CloudWatch Logs groups its
containers write to) comes from options; without them the statement is scoped as tightly as
the map allows and a note says how to narrow it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from residency_cli.config import Config
from residency_cli.constants import (
    AIRFLOW_TAGS,
    HOST_LOCATION_TAG,
    LOCATION_TAG,
    RUN_ID_TAG,
    WORKLOAD_TAG,
)
from residency_cli.errors import UsageError

POLICY_VERSION = "2012-10-17"
ANY = "*"
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
SSM_PRINCIPAL = "ssm.amazonaws.com"
DEFAULT_ACTIVATION_ROLE = "ecsAnywhereRole"  # activation.DEFAULT_ROLE (not imported: keep pure)

_ACCOUNT = re.compile(r"\d{12}|\*")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}|\*")
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):"
    r"(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)"
)
_LOG_GROUP = re.compile(r"[A-Za-z0-9_\-/.#]{1,512}")
_ROLE_NAME = re.compile(r"[A-Za-z0-9+=,.@_\-/]{1,512}")


@dataclass(frozen=True)
class LogGroup:
    """A CloudWatch Logs group a task definition's awslogs driver writes to."""

    name: str
    region: str | None = None  # None: the policy's logs region (any region by default)

    @classmethod
    def parse(cls, text: str) -> LogGroup:
        """`NAME` or `REGION:NAME` (e.g. `eu-central-1:/residency/acme`)."""
        region, sep, name = text.partition(":")
        if not sep or not _REGION.fullmatch(region):
            region, name = "", text
        if not _LOG_GROUP.fullmatch(name):
            raise UsageError(
                f"invalid log group {text!r}: use NAME or REGION:NAME (like /residency/acme)"
            )
        return cls(name=name, region=region or None)


@dataclass(frozen=True)
class PolicyResult:
    """The policy document, and what a person should know before attaching it."""

    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.document


@dataclass(frozen=True)
class _Scope:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, *, region: str | None = None) -> str:
        where = self.region if region is None else region
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"

    def iam(self, resource: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:{resource}"


def _scope(config: Config, account_id: str, region: str | None) -> _Scope:
    if not _ACCOUNT.fullmatch(account_id):
        raise UsageError(f"--account-id must be 12 digits or '*', got {account_id!r}")
    chosen_region = region or config.region or ANY
    if not _REGION.fullmatch(chosen_region):
        raise UsageError(f"invalid region {chosen_region!r} (like eu-central-1)")
    partition = "aws"
    match = _ARN.fullmatch(config.cluster)
    if match:  # an ARN cluster fixes partition, region and account
        partition = match["partition"]
        arn_account, arn_region = match["account"], match["region"]
        if account_id not in (ANY, arn_account):
            raise UsageError(
                f"--account-id {account_id} differs from the cluster ARN's account {arn_account}"
            )
        if region and region != arn_region:
            raise UsageError(f"region {region} differs from the cluster ARN's region {arn_region}")
        account_id, chosen_region = arn_account, arn_region
    return _Scope(partition, chosen_region, account_id)


def _cluster_name(config: Config) -> str:
    return config.cluster.rsplit("/", 1)[-1]


def _task_definition_arn(scope: _Scope, reference: str) -> str:
    """family -> every revision of it; family:N -> that revision; an ARN as given."""
    if reference.startswith("arn:"):
        return reference if reference.count(":") == 6 else f"{reference}:*"
    family, _, revision = reference.partition(":")
    return scope.arn("ecs", f"task-definition/{family}:{revision or ANY}")


def _arn_condition(value: str) -> str:
    """ArnEquals for a concrete ARN, ArnLike when it carries wildcards (clearer to read)."""
    return "ArnLike" if ANY in value else "ArnEquals"


def _role_arn(scope: _Scope, role: str) -> str:
    if role.startswith("arn:"):
        return role
    if not _ROLE_NAME.fullmatch(role):
        raise UsageError(f"invalid role {role!r}: give a role name, path/name or ARN")
    return scope.iam(f"role/{role.strip('/')}")


def _statement(
    sid: str, actions: Sequence[str], resources: Sequence[str], condition: dict[str, Any] | None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": list(dict.fromkeys(resources)) if len(resources) > 1 else resources[0],
    }
    if condition:
        statement["Condition"] = condition
    return statement


def build_policy(
    config: Config,
    *,
    account_id: str = ANY,
    region: str | None = None,
    log_groups: Sequence[LogGroup] = (),
    pass_roles: Sequence[str] = (),
    activation: bool = True,
    activation_role: str = DEFAULT_ACTIVATION_ROLE,
    journal: str | None = None,
) -> PolicyResult:
    """The IAM policy for everything residency does with this map (CLI, audit, Airflow).
    `journal`: the journal location in effect (default the map's `journal:`); an S3 one
    adds what appending to and verifying it needs."""
    scope = _scope(config, account_id, region)
    notes: list[str] = []
    cluster_arn = (
        config.cluster
        if config.cluster.startswith("arn:")
        else scope.arn("ecs", f"cluster/{config.cluster}")
    )
    name = _cluster_name(config)
    on_cluster = {_arn_condition(cluster_arn): {"ecs:cluster": cluster_arn}}
    definitions = [
        _task_definition_arn(scope, w.task_definition) for w in config.workloads.values()
    ]
    # The Airflow operator's task-instance tags too (ResidencyRunOperator, docs/airflow.md).
    tag_keys = [WORKLOAD_TAG, LOCATION_TAG, RUN_ID_TAG, HOST_LOCATION_TAG, *AIRFLOW_TAGS]
    for workload in config.workloads.values():
        tag_keys.extend(workload.tags)

    statements = [
        # ListContainerInstances is authorised on the cluster itself.
        _statement("ListClusterHosts", ["ecs:ListContainerInstances"], [cluster_arn], None),
        # ListTasks is authorised on container-instance (with the ecs:cluster condition), not
        # on the cluster, even when no containerInstance filter is given.
        _statement(
            "ReadAndLabelClusterHosts",
            [
                "ecs:DescribeContainerInstances",
                "ecs:PutAttributes",
                "ecs:DeleteAttributes",
                "ecs:ListTasks",
            ],
            [scope.arn("ecs", f"container-instance/{name}/*")],
            on_cluster,
        ),
        # RunTask is authorised on the task definition; ecs:cluster pins where it may run and
        # aws:RequestTag that it is dispatched as one of the map's workloads.
        _statement(
            "RunMappedWorkloads",
            ["ecs:RunTask"],
            definitions,
            {
                **on_cluster,
                "StringEquals": {f"aws:RequestTag/{WORKLOAD_TAG}": sorted(config.workloads)},
            },
        ),
        _statement(
            "WatchAndStopClusterTasks",
            ["ecs:DescribeTasks", "ecs:StopTask"],
            [scope.arn("ecs", f"task/{name}/*")],
            on_cluster,
        ),
        # Tagging at RunTask (its tags) and afterwards (residency:host-location) both need
        # ecs:TagResource on the task; only residency's and the map's tag keys are allowed.
        _statement(
            "TagClusterTasks",
            ["ecs:TagResource"],
            [scope.arn("ecs", f"task/{name}/*")],
            {"ForAllValues:StringEquals": {"aws:TagKeys": sorted(set(tag_keys))}},
        ),
        # These support no resource-level permissions: Resource must be "*".
        _statement(
            "ReadTaskDefinitionsAndManagedInstances",
            ["ecs:DescribeTaskDefinition", "ssm:DescribeInstanceInformation"],
            [ANY],
            None,
        ),
        _statement("IdentifyCaller", ["sts:GetCallerIdentity"], [ANY], None),
    ]

    if log_groups:
        streams = [
            scope.arn(
                "logs",
                f"log-group:{group.name}:log-stream:*",
                region=group.region or ANY,
            )
            for group in log_groups
        ]
    else:
        streams = [scope.arn("logs", "log-group:*:log-stream:*", region=ANY)]
        notes.append(
            "logs:GetLogEvents is allowed on every log group of the account: the groups are "
            "named in the task definitions, not the map; pass --log-group [REGION:]NAME "
            "(once per awslogs-group) to narrow it"
        )
    statements.append(_statement("ReadTaskLogs", ["logs:GetLogEvents"], streams, None))

    if pass_roles:
        roles = [_role_arn(scope, role) for role in pass_roles]
    else:
        roles = [scope.iam("role/*")]
        notes.append(
            "iam:PassRole (to ecs-tasks.amazonaws.com only) is allowed for every role of the "
            "account: the task definitions' executionRoleArn/taskRoleArn are not in the map; "
            "pass --pass-role NAME (once per role) to narrow it"
        )
    statements.append(
        _statement(
            "PassTaskRolesToEcsTasks",
            ["iam:PassRole"],
            roles,
            {"StringEquals": {"iam:PassedToService": ECS_TASKS_PRINCIPAL}},
        )
    )

    if activation:
        statements.append(
            _statement(
                "CreateLocationActivations",
                ["ssm:CreateActivation"],
                [ANY],
                {
                    "StringEquals": {f"aws:RequestTag/{LOCATION_TAG}": list(config.locations)},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [LOCATION_TAG]},
                },
            )
        )
        statements.append(
            _statement(
                "PassActivationRoleToSsm",
                ["iam:PassRole"],
                [_role_arn(scope, activation_role)],
                {"StringEquals": {"iam:PassedToService": SSM_PRINCIPAL}},
            )
        )

    statements.extend(_journal_statements(scope, journal or config.journal))

    if scope.account == ANY:
        notes.append("the account is '*': pass --account-id 123456789012 to pin it")
    if scope.region == ANY:
        notes.append("the region is '*': set region: in the map or pass --region to pin it")
    return PolicyResult({"Version": POLICY_VERSION, "Statement": statements}, notes)


def _journal_statements(scope: _Scope, journal: str | None) -> list[dict[str, Any]]:
    """A journal on S3 (journal_s3.py): list the prefix, read every object under it, create
    records only with `If-None-Match: *` (never overwrite one), and move the head object
    (`If-Match`). s3:ListBucket also makes a missing object answer 404 rather than 403.
    Actions and condition keys: Service Authorization Reference, Amazon S3
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html);
    s3:if-none-match: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
    """
    from residency_cli.journal import S3Location, parse_location
    from residency_cli.journal_s3 import HEAD_NAME

    where = parse_location(journal) if journal else None
    if not isinstance(where, S3Location):
        return []
    bucket = f"arn:{scope.partition}:s3:::{where.bucket}"
    listing: dict[str, Any] | None = (
        {"StringLike": {"s3:prefix": [f"{where.prefix}*"]}} if where.prefix else None
    )
    return [
        _statement("ListJournal", ["s3:ListBucket"], [bucket], listing),
        _statement("ReadJournal", ["s3:GetObject"], [f"{bucket}/{where.prefix}*"], None),
        _statement(
            "AppendJournalRecords",
            ["s3:PutObject"],
            [f"{bucket}/{where.prefix}0*"],
            {"Null": {"s3:if-none-match": "false"}},
        ),
        _statement(
            "MoveJournalHead", ["s3:PutObject"], [f"{bucket}/{where.prefix}{HEAD_NAME}"], None
        ),
    ]
