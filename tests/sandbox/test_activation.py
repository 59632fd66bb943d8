"""SSM activations and host joins in the sandbox, against what SSM and ECS Anywhere document.

References: SSM CreateActivation (IamRole required, RegistrationLimit 1-1000 default 1,
ExpirationDate at most 30 days ahead default 24 h, a UUID ActivationId and a 20-character
ActivationCode), DescribeActivations (Filters ActivationIds / DefaultInstanceName / IamRole,
MaxResults 1-50 and NextToken), DeleteActivation (InvalidActivation, InvalidActivationId);
ECS Anywhere registration (ECS_INSTANCE_ATTRIBUTES: custom attributes at registration).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.activation import ROLE, create, join

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


# --- CreateActivation / DescribeActivations / DeleteActivation ---------------------------


def test_create_and_describe_activation(sandbox: Any) -> None:
    expires = datetime.now(timezone.utc) + timedelta(days=3)
    created = create(
        sandbox,
        Description="residency: hosts of newyork",
        DefaultInstanceName="newyork-host",
        RegistrationLimit=5,
        ExpirationDate=expires,
        Tags=[{"Key": "residency:location", "Value": "newyork"}],
    )
    assert UUID.fullmatch(created["ActivationId"])
    assert len(created["ActivationCode"]) == 20
    listed = sandbox.client("ssm").describe_activations()["ActivationList"]
    assert len(listed) == 1
    activation = listed[0]
    assert activation["ActivationId"] == created["ActivationId"]
    assert "ActivationCode" not in activation
    assert activation["Description"] == "residency: hosts of newyork"
    assert activation["DefaultInstanceName"] == "newyork-host"
    assert activation["IamRole"] == ROLE
    assert activation["RegistrationLimit"] == 5
    assert activation["RegistrationsCount"] == 0
    assert activation["Expired"] is False
    assert abs((activation["ExpirationDate"] - expires).total_seconds()) < 1
    assert abs((activation["CreatedDate"] - datetime.now(timezone.utc)).total_seconds()) < 60
    assert activation["Tags"] == [{"Key": "residency:location", "Value": "newyork"}]


def test_create_activation_defaults_to_one_host_for_24_hours(sandbox: Any) -> None:
    create(sandbox)
    activation = sandbox.client("ssm").describe_activations()["ActivationList"][0]
    assert activation["RegistrationLimit"] == 1
    lifetime = activation["ExpirationDate"] - activation["CreatedDate"]
    assert abs(lifetime.total_seconds() - 24 * 3600) < 1


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"RegistrationLimit": 1001}, "ValidationException"),
        ({"ExpirationDate": datetime.now(timezone.utc) + timedelta(days=31)}, "InvalidParameters"),
        ({"ExpirationDate": datetime.now(timezone.utc) - timedelta(hours=1)}, "InvalidParameters"),
        ({"IamRole": "r" * 65}, "ValidationException"),
    ],
)
def test_create_activation_refuses_what_ssm_refuses(
    sandbox: Any, request_fields: dict[str, Any], code: str
) -> None:
    with pytest.raises(ClientError) as raised:
        create(sandbox, **request_fields)
    assert error_code(raised) == code
    assert sandbox.client("ssm").describe_activations()["ActivationList"] == []


def test_describe_activations_filters_and_pages(sandbox: Any) -> None:
    ssm = sandbox.client("ssm")
    ids = [
        create(sandbox, DefaultInstanceName=name, IamRole=role)["ActivationId"]
        for name, role in [("a", ROLE), ("b", ROLE), ("c", "otherRole")]
    ]
    by_id = ssm.describe_activations(
        Filters=[{"FilterKey": "ActivationIds", "FilterValues": ids[1:2]}]
    )
    assert [a["ActivationId"] for a in by_id["ActivationList"]] == ids[1:2]
    by_name = ssm.describe_activations(
        Filters=[{"FilterKey": "DefaultInstanceName", "FilterValues": ["a", "c"]}]
    )
    assert [a["ActivationId"] for a in by_name["ActivationList"]] == [ids[0], ids[2]]
    by_role = ssm.describe_activations(
        Filters=[{"FilterKey": "IamRole", "FilterValues": ["otherRole"]}]
    )
    assert [a["ActivationId"] for a in by_role["ActivationList"]] == [ids[2]]
    first = ssm.describe_activations(MaxResults=2)
    assert len(first["ActivationList"]) == 2
    rest = ssm.describe_activations(MaxResults=2, NextToken=first["NextToken"])
    assert "NextToken" not in rest
    paged = [a["ActivationId"] for a in first["ActivationList"] + rest["ActivationList"]]
    assert paged == ids
    pages = ssm.get_paginator("describe_activations").paginate(PaginationConfig={"PageSize": 1})
    assert [a["ActivationId"] for page in pages for a in page["ActivationList"]] == ids
    with pytest.raises(ClientError) as raised:
        ssm.describe_activations(Filters=[{"FilterKey": "Bogus", "FilterValues": ["x"]}])
    assert error_code(raised) == "InvalidFilter"
    with pytest.raises(ClientError) as raised:
        ssm.describe_activations(NextToken="not-a-token")
    assert error_code(raised) == "InvalidNextToken"


def test_delete_activation(sandbox: Any) -> None:
    ssm = sandbox.client("ssm")
    created = create(sandbox)
    ssm.delete_activation(ActivationId=created["ActivationId"])
    assert ssm.describe_activations()["ActivationList"] == []
    with pytest.raises(ClientError) as raised:
        ssm.delete_activation(ActivationId=created["ActivationId"])
    assert error_code(raised) == "InvalidActivation"
    with pytest.raises(ClientError) as raised:
        ssm.delete_activation(ActivationId="not-a-uuid")
    assert error_code(raised) == "InvalidActivationId"


def test_activations_are_per_region(sandbox: Any) -> None:
    create(sandbox)
    other = "eu-west-1" if sandbox.region != "eu-west-1" else "us-west-2"
    assert sandbox.client("ssm", region=other).describe_activations()["ActivationList"] == []


# --- joining a host -----------------------------------------------------------------------


def test_a_host_joins_labelled_and_known_to_ssm(sandbox: Any) -> None:
    created = create(sandbox, DefaultInstanceName="newyork-host", RegistrationLimit=2)
    status, answer = join(sandbox, "ny3.host", created, attributes={"location": "newyork"})
    assert status == 200, answer
    assert answer["hostname"] == "ny3.host"
    assert answer["instance_id"].startswith("mi-")
    ecs = sandbox.client("ecs")
    described = ecs.describe_container_instances(
        cluster=sandbox.cluster, containerInstances=[answer["container_instance_arn"]]
    )["containerInstances"][0]
    assert described["ec2InstanceId"] == answer["instance_id"]
    assert {"name": "location", "value": "newyork"} in [
        {"name": a["name"], "value": a.get("value")} for a in described["attributes"]
    ]
    info = sandbox.client("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [answer["instance_id"]]}]
    )["InstanceInformationList"]
    assert len(info) == 1
    assert info[0]["ComputerName"] == "ny3.host"
    assert info[0]["ActivationId"] == created["ActivationId"]
    assert info[0]["IamRole"] == ROLE
    assert info[0]["Name"] == "newyork-host"
    assert info[0]["PingStatus"] == "Online"
    activation = sandbox.client("ssm").describe_activations()["ActivationList"][0]
    assert activation["RegistrationsCount"] == 1
    assert (sandbox.workdir / "hosts" / "ny3.host" / "data").is_dir()


def test_a_joined_host_takes_tasks_constrained_to_its_location(sandbox: Any) -> None:
    created = create(sandbox)
    status, answer = join(sandbox, "ny3.host", created, attributes={"location": "newyork"})
    assert status == 200, answer
    arn = sandbox.register_task_definition("hello", ["python3", "-c", "print('hi')"])
    response = sandbox.client("ecs").run_task(
        cluster=sandbox.cluster,
        taskDefinition=arn,
        launchType="EXTERNAL",
        placementConstraints=[{"type": "memberOf", "expression": "attribute:location == newyork"}],
    )
    assert response["failures"] == []
    task = response["tasks"][0]
    assert task["containerInstanceArn"] == answer["container_instance_arn"]
    done = sandbox.wait_for_task(task["taskArn"])
    assert done["containers"][0]["exitCode"] == 0


def test_join_refuses_a_wrong_code(sandbox: Any) -> None:
    created = create(sandbox)
    status, answer = join(sandbox, "ny3.host", {**created, "ActivationCode": "x" * 20})
    assert (status, answer["error"]) == (400, "InvalidActivation")
    assert "code does not match" in answer["message"]
    assert (
        sandbox.client("ssm").describe_activations()["ActivationList"][0]["RegistrationsCount"] == 0
    )


def test_join_refuses_an_expired_activation(sandbox: Any) -> None:
    created = create(sandbox, ExpirationDate=datetime.now(timezone.utc) + timedelta(hours=1))
    sandbox.clock.advance(2 * 3600)
    status, answer = join(sandbox, "ny3.host", created)
    assert (status, answer["error"]) == (400, "ActivationExpired")
    assert sandbox.client("ssm").describe_activations()["ActivationList"][0]["Expired"] is True


def test_join_refuses_past_the_registration_limit(sandbox: Any) -> None:
    created = create(sandbox, RegistrationLimit=1)
    assert join(sandbox, "ny3.host", created)[0] == 200
    status, answer = join(sandbox, "ny4.host", created)
    assert (status, answer["error"]) == (400, "RegistrationLimitExceeded")
    listed = sandbox.client("ssm").describe_instance_information()["InstanceInformationList"]
    assert "ny4.host" not in {i["ComputerName"] for i in listed}


def test_join_refuses_an_unknown_or_deleted_activation(sandbox: Any) -> None:
    created = create(sandbox)
    sandbox.client("ssm").delete_activation(ActivationId=created["ActivationId"])
    status, answer = join(sandbox, "ny3.host", created)
    assert (status, answer["error"]) == (400, "InvalidActivation")
    status, answer = join(sandbox, "ny3.host", {**created, "ActivationId": "nope"})
    assert (status, answer["error"]) == (400, "InvalidActivationId")


def test_join_refuses_a_taken_hostname_and_bad_attributes(sandbox: Any) -> None:
    created = create(sandbox, RegistrationLimit=5)
    assert join(sandbox, "ny3.host", created)[0] == 200
    for hostname in ("ny3.host", "bonus.host"):  # joined before / seeded
        status, answer = join(sandbox, hostname, created)
        assert (status, answer["error"]) == (400, "HostAlreadyRegistered"), hostname
    status, answer = join(sandbox, "ny4.host", created, attributes={"ecs.bad": "x"})
    assert (status, answer["error"]) == (400, "InvalidAttributes")
    status, answer = join(sandbox, "ny4.host", created, attributes={"location": "new york"})
    assert (status, answer["error"]) == (400, "InvalidAttributes")
    status, answer = join(sandbox, "../etc", created)
    assert (status, answer["error"]) == (400, "InvalidHostname")
    status, answer = join(sandbox, "ny4.host", created, cluster="nope")
    assert (status, answer["error"]) == (400, "ClusterNotFoundException")
    activation = sandbox.client("ssm").describe_activations()["ActivationList"][0]
    assert activation["RegistrationsCount"] == 1


def test_a_deregistered_hostname_may_join_again(sandbox: Any) -> None:
    created = create(sandbox, RegistrationLimit=2)
    status, first = join(sandbox, "ny3.host", created)
    assert status == 200, first
    sandbox.client("ecs").deregister_container_instance(
        cluster=sandbox.cluster, containerInstance=first["container_instance_arn"]
    )
    status, second = join(sandbox, "ny3.host", created, attributes={"location": "newyork"})
    assert status == 200, second
    assert second["container_instance_arn"] != first["container_instance_arn"]


# --- the CLI --------------------------------------------------------------------------------


def test_sandbox_join_cli(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from residency_cli.cli.app import main

    sandbox.use(monkeypatch)
    created = create(sandbox, RegistrationLimit=2)
    words = [
        "sandbox", "join", "ny3.host",
        "--activation-id", created["ActivationId"],
        "--activation-code", created["ActivationCode"],
        "--attributes", '{"location":"newyork"}',
    ]  # fmt: skip
    capsys.readouterr()
    assert main([*words, "-o", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hostname"] == "ny3.host"
    assert result["cluster"] == sandbox.cluster.rsplit("/", 1)[-1]
    assert result["attributes"] == {"location": "newyork"}
    assert result["instance_id"].startswith("mi-")

    assert main(["sandbox", "join", "ny4.host", *words[3:]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ny4.host joined cluster {result['cluster']} ({sandbox.region}) as mi-")
    assert "location=newyork" in out

    assert main(["sandbox", "join", "ny5.host", *words[3:]]) == 2  # the limit was 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: RegistrationLimitExceeded: ")

    assert main([*words[:7], "--attributes", "not json"]) == 2
    assert capsys.readouterr().err.startswith("error: --attributes is not JSON")

    monkeypatch.setenv("RESIDENCY_STATE_DIR", str(sandbox.workdir / "no-state-here"))
    assert main(["sandbox", "join", "ny6.host", *words[3:]]) == 7
    assert capsys.readouterr().err.startswith("error: the sandbox is not running")


# --- issue 14 item 3: the activation's location and hostnames' case -------------------------


def test_join_refuses_a_label_that_contradicts_the_activations_location(sandbox: Any) -> None:
    """`residency activate --location newyork` tags the activation residency:location; a host
    that joins with it may not label itself frankfurt (nor be counted as registered)."""
    created = create(
        sandbox, RegistrationLimit=3, Tags=[{"Key": "residency:location", "Value": "newyork"}]
    )
    status, answer = join(sandbox, "ny3.host", created, attributes={"location": "frankfurt"})
    assert (status, answer["error"]) == (400, "InvalidAttributes")
    assert "contradicts activation" in answer["message"] and "newyork" in answer["message"]
    info = sandbox.client("ssm").describe_instance_information()["InstanceInformationList"]
    assert "ny3.host" not in {i["ComputerName"] for i in info}
    activation = sandbox.client("ssm").describe_activations()["ActivationList"][0]
    assert activation["RegistrationsCount"] == 0
    # the activation's own location, another attribute, or none at all are fine
    assert join(sandbox, "ny3.host", created, attributes={"location": "newyork"})[0] == 200
    assert join(sandbox, "ny4.host", created, attributes={"rack": "frankfurt"})[0] == 200
    assert join(sandbox, "ny5.host", created)[0] == 200


def test_join_refuses_a_hostname_that_differs_only_in_case(sandbox: Any) -> None:
    created = create(sandbox, RegistrationLimit=5)
    assert join(sandbox, "ny3.host", created)[0] == 200
    for hostname in ("NY3.HOST", "Ny3.Host", "BONUS.HOST", "Tax.Host"):
        status, answer = join(sandbox, hostname, created)
        assert (status, answer["error"]) == (400, "HostAlreadyRegistered"), hostname
    info = sandbox.client("ssm").describe_instance_information()["InstanceInformationList"]
    names = sorted(i["ComputerName"].lower() for i in info)
    assert names == sorted(set(names))  # no host twice


def test_sandbox_join_cli_refuses_a_contradicting_label(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: `residency --sandbox activate --location newyork`, then the printed join
    command with frankfurt instead of newyork: exit 2, one line, the host is not there."""
    from residency_cli.cli.app import main

    sandbox.use(monkeypatch)
    assert main(["--sandbox", "activate", "-l", "newyork", "--count", "3", "-o", "json"]) == 0
    activation = json.loads(capsys.readouterr().out)
    words = [
        "sandbox", "join", "ny3.host",
        "--activation-id", activation["activation_id"],
        "--activation-code", activation["activation_code"],
    ]  # fmt: skip
    assert main([*words, "--attributes", '{"location":"frankfurt"}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: InvalidAttributes: ")
    assert main(["sandbox", "join", "NY3.HOST", *words[3:], "--attributes", "{}"]) == 0
    capsys.readouterr()
    assert main(["sandbox", "join", "ny3.host", *words[3:]]) == 2
    assert "HostAlreadyRegistered" in capsys.readouterr().err
