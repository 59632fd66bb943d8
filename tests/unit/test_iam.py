"""The IAM policy of `residency iam-policy`: its structure, and parliament finds nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from residency_cli.config import Config, parse_config
from residency_cli.errors import UsageError
from residency_cli.iam import LogGroup, build_policy

MAP = """
version: 1
cluster: acme-etl
region: eu-central-1
locations:
  newyork: {}
  frankfurt: {}
workloads:
  bonus:
    task_definition: christmas-bonus
    location: newyork
    tags: {cost-centre: hr}
  tax:
    task_definition: tax-amount:7
    location: [frankfurt, newyork]
"""
ACCOUNT = "123456789012"
CLUSTER = f"arn:aws:ecs:eu-central-1:{ACCOUNT}:cluster/acme-etl"


def config(text: str = MAP) -> Config:
    return parse_config(text, "residency.yaml")


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def actions(policy: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in policy["Statement"]:
        found.update(statement["Action"])
    return found


def test_every_action_residency_calls_is_allowed_once() -> None:
    policy = build_policy(config(), account_id=ACCOUNT).document
    assert policy["Version"] == "2012-10-17"
    assert actions(policy) == {
        "ecs:ListContainerInstances",
        "ecs:DescribeContainerInstances",
        "ecs:PutAttributes",
        "ecs:DeleteAttributes",
        "ecs:ListTasks",
        "ecs:DescribeTasks",
        "ecs:RunTask",
        "ecs:StopTask",
        "ecs:TagResource",
        "ecs:DescribeTaskDefinition",
        "ssm:DescribeInstanceInformation",
        "ssm:CreateActivation",
        "logs:GetLogEvents",
        "sts:GetCallerIdentity",
        "iam:PassRole",
    }
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))


def test_ecs_is_scoped_to_the_cluster_and_the_task_definitions() -> None:
    by_sid = statements(build_policy(config(), account_id=ACCOUNT).document)
    assert by_sid["ListClusterHosts"]["Resource"] == CLUSTER
    hosts = by_sid["ReadAndLabelClusterHosts"]
    assert hosts["Resource"] == (
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:container-instance/acme-etl/*"
    )
    assert hosts["Condition"] == {"ArnEquals": {"ecs:cluster": CLUSTER}}
    run = by_sid["RunMappedWorkloads"]
    assert run["Resource"] == [
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:task-definition/christmas-bonus:*",
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:task-definition/tax-amount:7",
    ]
    assert run["Condition"]["ArnEquals"] == {"ecs:cluster": CLUSTER}
    assert run["Condition"]["StringEquals"] == {
        "aws:RequestTag/residency:workload": ["bonus", "tax"]
    }
    tasks = by_sid["WatchAndStopClusterTasks"]
    assert tasks["Resource"] == f"arn:aws:ecs:eu-central-1:{ACCOUNT}:task/acme-etl/*"
    tag = by_sid["TagClusterTasks"]
    assert tag["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] == [
        "cost-centre",
        "residency:airflow-dag",
        "residency:airflow-key",
        "residency:airflow-map-index",
        "residency:airflow-run",
        "residency:airflow-task",
        "residency:host-location",
        "residency:location",
        "residency:run-id",
        "residency:workload",
    ]
    star = by_sid["ReadTaskDefinitionsAndManagedInstances"]
    assert star["Resource"] == "*"
    assert set(star["Action"]) == {"ecs:DescribeTaskDefinition", "ssm:DescribeInstanceInformation"}


def test_defaults_are_any_account_and_say_how_to_narrow() -> None:
    result = build_policy(config(text=MAP.replace("region: eu-central-1\n", "")))
    by_sid = statements(result.document)
    assert by_sid["ListClusterHosts"]["Resource"] == "arn:aws:ecs:*:*:cluster/acme-etl"
    assert by_sid["ReadAndLabelClusterHosts"]["Condition"] == {
        "ArnLike": {"ecs:cluster": "arn:aws:ecs:*:*:cluster/acme-etl"}
    }
    assert by_sid["ReadTaskLogs"]["Resource"] == "arn:aws:logs:*:*:log-group:*:log-stream:*"
    assert by_sid["PassTaskRolesToEcsTasks"]["Resource"] == "arn:aws:iam::*:role/*"
    notes = " ".join(result.notes)
    for hint in ("--log-group", "--pass-role", "--account-id", "--region"):
        assert hint in notes


def test_log_groups_and_roles_narrow_their_statements() -> None:
    result = build_policy(
        config(),
        account_id=ACCOUNT,
        log_groups=[LogGroup.parse("eu-central-1:/residency/acme"), LogGroup.parse("/other")],
        pass_roles=["ecsTaskExecutionRole", f"arn:aws:iam::{ACCOUNT}:role/app/etl"],
    )
    by_sid = statements(result.document)
    assert by_sid["ReadTaskLogs"]["Resource"] == [
        f"arn:aws:logs:eu-central-1:{ACCOUNT}:log-group:/residency/acme:log-stream:*",
        f"arn:aws:logs:*:{ACCOUNT}:log-group:/other:log-stream:*",
    ]
    passing = by_sid["PassTaskRolesToEcsTasks"]
    assert passing["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole",
        f"arn:aws:iam::{ACCOUNT}:role/app/etl",
    ]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert result.notes == []


def test_activation_is_limited_to_declared_locations_and_its_role() -> None:
    by_sid = statements(build_policy(config(), account_id=ACCOUNT).document)
    create = by_sid["CreateLocationActivations"]
    assert create["Condition"]["StringEquals"] == {
        "aws:RequestTag/residency:location": ["newyork", "frankfurt"]
    }
    role = by_sid["PassActivationRoleToSsm"]
    assert role["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/ecsAnywhereRole"
    assert role["Condition"] == {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}
    without = build_policy(config(), account_id=ACCOUNT, activation=False).document
    assert "ssm:CreateActivation" not in actions(without)


def test_cluster_arn_fixes_account_and_region() -> None:
    text = MAP.replace("cluster: acme-etl", f"cluster: {CLUSTER}").replace(
        "task_definition: tax-amount:7",
        f"task_definition: arn:aws:ecs:eu-central-1:{ACCOUNT}:task-definition/tax-amount",
    )
    by_sid = statements(build_policy(config(text)).document)
    assert by_sid["ListClusterHosts"]["Resource"] == CLUSTER
    assert by_sid["RunMappedWorkloads"]["Resource"][1] == (
        f"arn:aws:ecs:eu-central-1:{ACCOUNT}:task-definition/tax-amount:*"
    )
    with pytest.raises(UsageError, match="differs from the cluster ARN"):
        build_policy(config(text), account_id="999999999999")


@pytest.mark.parametrize("account", ["12345", "abc", "1234567890123"])
def test_bad_account_id_is_a_usage_error(account: str) -> None:
    with pytest.raises(UsageError, match="--account-id"):
        build_policy(config(), account_id=account)


def test_bad_log_group_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="log group"):
        LogGroup.parse("eu-central-1:bad group")


def _findings(policy: dict[str, Any]) -> list[tuple[str, Any]]:
    parliament = pytest.importorskip("parliament", reason="parliament is a dev dependency")
    analysed = parliament.analyze_policy_string(json.dumps(policy))
    return [(f.issue, f.detail) for f in analysed.findings]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"account_id": ACCOUNT},
        {
            "account_id": ACCOUNT,
            "log_groups": [LogGroup.parse("eu-central-1:/residency/acme")],
            "pass_roles": ["ecsTaskExecutionRole"],
        },
        {"activation": False},
        {"account_id": ACCOUNT, "journal": "s3://acme-governance/residency/acme-etl"},
        {"journal": "s3://acme-governance"},
    ],
)
def test_parliament_has_no_findings(options: dict[str, Any]) -> None:
    assert _findings(build_policy(config(), **options).document) == []


def test_parliament_is_really_checking() -> None:
    wrong = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecs:ListContainerInstances",
                "Resource": f"arn:aws:ecs:eu-central-1:{ACCOUNT}:task/acme-etl/*",
            }
        ],
    }
    assert [issue for issue, _ in _findings(wrong)] == ["RESOURCE_MISMATCH"]


def test_an_s3_journal_adds_its_permissions_and_a_local_one_none() -> None:
    def journal_statements(journal: str | None) -> list[str]:
        document = build_policy(config(), journal=journal).document
        return [s["Sid"] for s in document["Statement"] if "Journal" in s["Sid"]]

    assert journal_statements(None) == journal_statements("/var/lib/journal.jsonl") == []
    assert journal_statements("s3://acme-governance/x") == [
        "ListJournal",
        "ReadJournal",
        "AppendJournalRecords",
        "MoveJournalHead",
    ]
    bare = build_policy(config(), journal="s3://acme-governance").document["Statement"]
    listing = next(s for s in bare if s["Sid"] == "ListJournal")
    assert "Condition" not in listing  # the journal is the whole bucket
