"""The sandbox answers as ECS documents (issue 13, "The sandbox models each row"): one test per
row, each naming its source. Where a row is about the shape of an answer, the sandbox's answer
is also fed to a botocore `Stubber`, which validates it against the ECS output shape in
botocore's service model (unknown keys and wrong types are refused), and the exact documented
keys are asserted: the shape stays pinned whatever the sandbox becomes.

Sources: ECS API Reference "Ensuring idempotency" (ECS_Idempotency.html, "Idempotency for
RunTask", "RunTask retry rules and responses"); "Amazon ECS task lifecycle"
(task-lifecycle-explanation.html); "Amazon ECS container instance state change events"
(ecs_container_instance_events.html); "IAM roles for Amazon ECS" (task execution role for
awslogs on external instances); "Cluster query language"; botocore's ecs and ssm
service-2.json (StopTask, ListTasksRequest.desiredStatus, ListContainerInstancesRequest,
ListAttributesRequest, DeleteAttributesRequest, Tag, TaskOverride, PlacementConstraint,
TaskStopCode, InstanceInformation.ComputerName/Name).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from residency_cli.sandbox.simhost import NO_LOG_CREDENTIALS
from residency_cli.sandbox.world import world

NEWYORK = [{"type": "memberOf", "expression": "attribute:location == newyork"}]


def run(sandbox: Any, task_definition: str, **kwargs: Any) -> dict[str, Any]:
    request = {
        "cluster": sandbox.cluster,
        "taskDefinition": task_definition,
        "launchType": "EXTERNAL",
        "placementConstraints": NEWYORK,
        **kwargs,
    }
    return dict(sandbox.client("ecs").run_task(**request))


def code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


def stubbed(operation: str, answer: dict[str, Any], **params: Any) -> dict[str, Any]:
    """The answer as a client gets it through a botocore Stubber: `add_response` validates it
    against the operation's output shape (ParamValidationError on an unknown key or type)."""
    client = botocore.session.get_session().create_client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    body = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
    method = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
    with Stubber(client) as stub:
        stub.add_response(method, body)
        return dict(getattr(client, method)(**params))


def _pid(task: dict[str, Any]) -> int:
    return int(task["containers"][0]["runtimeId"].removeprefix("sandbox-"))


def _process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat: T is stopped (frozen), R/S running or sleeping."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    return text.rsplit(")", 1)[1].split()[0]


# --- 1 and 2: RunTask idempotency ---------------------------------------------------------


def test_1_replay_for_a_stopped_task_answers_only_arn_and_statuses(sandbox: Any) -> None:
    """ECS_Idempotency.html: "Tasks that have been stopped for under an hour only include the
    task ARN, last status, and desired status"; while the task runs, the whole task."""
    sandbox.label_all()
    slow = sandbox.register_task_definition("slow", ["sleep", "30"])
    first = run(sandbox, slow, clientToken="slow-1")["tasks"][0]
    sandbox.wait_for_task(first["taskArn"], "RUNNING")
    running = run(sandbox, slow, clientToken="slow-1")["tasks"][0]
    assert running["taskArn"] == first["taskArn"]
    assert running["taskDefinitionArn"] == slow and running["lastStatus"] == "RUNNING"

    quick = sandbox.register_task_definition("quick", ["true"])
    done = run(sandbox, quick, clientToken="quick-1")["tasks"][0]
    sandbox.wait_for_task(done["taskArn"])
    replayed = run(sandbox, quick, clientToken="quick-1")
    assert replayed["tasks"] == [
        {"taskArn": done["taskArn"], "lastStatus": "STOPPED", "desiredStatus": "STOPPED"}
    ]
    assert replayed["failures"] == []
    # the documented shape is a valid RunTask answer to botocore, exactly these keys
    pinned = stubbed("RunTask", replayed, taskDefinition="quick")
    assert set(pinned["tasks"][0]) == {"taskArn", "lastStatus", "desiredStatus"}
    assert sandbox.calls("RunTask") == 4
    listed = sandbox.client("ecs").list_tasks(cluster=sandbox.cluster, desiredStatus="STOPPED")
    assert listed["taskArns"] == [done["taskArn"]]  # no second task


def test_2_token_lives_the_tasks_lifetime_plus_an_hour_and_conflicts_are_ecs_errors(
    sandbox: Any,
) -> None:
    """ECS_Idempotency.html: the token's TTL is the lesser of 24 hours and "the lifetime of
    the resource plus one hour"; the same token with other parameters is ConflictException
    (HTTP 400) naming the token's tasks in `resourceIds` (ConflictException shape)."""
    sandbox.label_all()
    quick = sandbox.register_task_definition("quick", ["true"])
    done = run(sandbox, quick, clientToken="ttl")["tasks"][0]
    sandbox.wait_for_task(done["taskArn"])
    with pytest.raises(ClientError) as raised:
        run(sandbox, quick, clientToken="ttl", startedBy="someone-else")
    error = raised.value.response
    assert code(raised) == "ConflictException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["resourceIds"] == [done["taskArn"]]
    shape = botocore.session.get_session().get_service_model("ecs").shape_for("ConflictException")
    assert set(error) - {"Error", "ResponseMetadata"} <= set(shape.members)
    sandbox.clock.advance(3600 - 5)
    assert run(sandbox, quick, clientToken="ttl")["tasks"][0]["taskArn"] == done["taskArn"]
    sandbox.clock.advance(10)  # stopped more than an hour ago: the token has expired
    again = run(sandbox, quick, clientToken="ttl")["tasks"][0]
    assert again["taskArn"] != done["taskArn"]
    # a task that keeps running keeps its token for 24 hours, not longer
    slow = sandbox.register_task_definition("slow", ["sleep", "30"])
    running = run(sandbox, slow, clientToken="day")["tasks"][0]
    sandbox.clock.advance(24 * 3600 - 5)
    assert run(sandbox, slow, clientToken="day")["tasks"][0]["taskArn"] == running["taskArn"]
    sandbox.clock.advance(10)
    assert run(sandbox, slow, clientToken="day")["tasks"][0]["taskArn"] != running["taskArn"]


# --- 3: a host that goes dark -------------------------------------------------------------


def test_3_lost_ecs_anywhere_host_keeps_its_tasks_running_to_the_api(sandbox: Any) -> None:
    """ECS Anywhere: the agent disconnects (it does so "several times per hour as a part of
    its normal operation", ecs_container_instance_events.html) and ECS cannot reach the host
    to stop anything: `agentConnected: false`, the task stays RUNNING. The sandbox freezes
    the process; when the host comes back the task goes on to its real end."""
    sandbox.label_all()
    definition = sandbox.register_task_definition(
        "lost", ["sh", "-c", "sleep 0.5; echo done; exit 4"]
    )
    arn = sandbox.start_task_on("bonus.host", definition)
    pid = _pid(sandbox.wait_for_task(arn, "RUNNING"))
    assert sandbox.lose_host("bonus.host") == [arn]
    host = sandbox.host("bonus.host")
    ecs = sandbox.client("ecs")
    instance = ecs.describe_container_instances(
        cluster=sandbox.cluster, containerInstances=[host.container_instance_arn]
    )["containerInstances"][0]
    assert instance["agentConnected"] is False
    info = sandbox.client("ssm").describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [host.instance_id]}]
    )["InstanceInformationList"][0]
    assert info["PingStatus"] == "ConnectionLost"
    assert _process_state(pid) == "T"  # frozen, not killed
    time.sleep(1.0)  # longer than the job: nothing it does happens while the host is dark
    task = ecs.describe_tasks(cluster=sandbox.cluster, tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == task["desiredStatus"] == "RUNNING"
    assert "stoppedReason" not in task and "stopCode" not in task
    assert arn in ecs.list_tasks(cluster=sandbox.cluster)["taskArns"]
    sandbox.connect_agent("bonus.host")
    done = sandbox.wait_for_task(arn)
    assert done["containers"][0]["exitCode"] == 4
    assert done["stopCode"] == "EssentialContainerExited"
    assert sandbox.log_messages(arn) == ["done"]


def test_3_stop_task_on_a_dark_host_waits_for_the_host(sandbox: Any) -> None:
    sandbox.label_all()
    definition = sandbox.register_task_definition("sleeper", ["sleep", "30"])
    arn = sandbox.start_task_on("bonus.host", definition)
    sandbox.wait_for_task(arn, "RUNNING")
    sandbox.lose_host("bonus.host")
    ecs = sandbox.client("ecs")
    ecs.stop_task(cluster=sandbox.cluster, task=arn)
    time.sleep(0.3)
    task = ecs.describe_tasks(cluster=sandbox.cluster, tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["desiredStatus"]) == ("RUNNING", "STOPPED")
    sandbox.connect_agent("bonus.host")
    done = sandbox.wait_for_task(arn)
    assert done["stopCode"] == "UserInitiated" and done["containers"][0]["exitCode"] == 143


def test_3_ec2_style_loss_only_on_request_with_a_stop_code(sandbox: Any) -> None:
    """`stopped=True`: what ECS does when an EC2 container instance is stopped ("the tasks
    running on it are transitioned to STOPPED"); the stop code may be InfrastructureHealth
    (row 9: an enum value of botocore's TaskStopCode)."""
    sandbox.label_all()
    definition = sandbox.register_task_definition("lost", ["sleep", "30"])
    arn = sandbox.start_task_on("bonus.host", definition)
    sandbox.wait_for_task(arn, "RUNNING")
    assert sandbox.lose_host("bonus.host", stopped=True, stop_code="InfrastructureHealth") == [arn]
    task = sandbox.describe_task(arn)
    instance_id = sandbox.host("bonus.host").instance_id
    assert task["lastStatus"] == "STOPPED" and task["stopCode"] == "InfrastructureHealth"
    assert task["stoppedReason"] == f"Host EC2 (instance {instance_id}) stopped/terminated"
    assert "exitCode" not in task["containers"][0]
    assert world().runtimes == {}


# --- 4: DELETED ---------------------------------------------------------------------------


def test_4_a_stopped_task_can_be_shown_deleted(sandbox: Any) -> None:
    """task-lifecycle-explanation.html: DELETED "is a transition state when a task stops ...
    displayed in describe-tasks". The sandbox shows it when asked to (no delay is
    documented), until ECS forgets the task an hour after it stopped."""
    sandbox.label_all()
    sandbox.show_deleted_after(60)
    quick = sandbox.register_task_definition("quick", ["true"])
    arn = run(sandbox, quick)["tasks"][0]["taskArn"]
    sandbox.wait_for_task(arn)
    ecs = sandbox.client("ecs")
    assert ecs.describe_tasks(cluster=sandbox.cluster, tasks=[arn])["tasks"][0]["lastStatus"] == (
        "STOPPED"
    )
    sandbox.clock.advance(61)
    task = ecs.describe_tasks(cluster=sandbox.cluster, tasks=[arn])["tasks"][0]
    assert (task["lastStatus"], task["desiredStatus"]) == ("DELETED", "STOPPED")
    assert task["containers"][0]["exitCode"] == 0
    assert ecs.list_tasks(cluster=sandbox.cluster, desiredStatus="STOPPED")["taskArns"] == [arn]
    stubbed("DescribeTasks", ecs.describe_tasks(cluster=sandbox.cluster, tasks=[arn]), tasks=[arn])
    sandbox.clock.advance(3600)
    assert ecs.describe_tasks(cluster=sandbox.cluster, tasks=[arn])["failures"] == [
        {"arn": arn, "reason": "MISSING"}
    ]


# --- 5: count > 1 -------------------------------------------------------------------------


def test_5_count_places_what_fits_and_a_replay_repeats_the_failures(sandbox: Any) -> None:
    """RunTask with count 3 where two fit: two tasks and the failures in one answer; a replay
    answers the same (ECS_Idempotency.html's example: running tasks, stopped ones and a
    RESOURCE:MEMORY failure in one retried answer)."""
    sandbox.label_all()
    big = sandbox.register_task_definition("big", ["sleep", "30"], cpu=256, memory=1536)
    answer = run(sandbox, big, count=3, clientToken="three")
    assert len(answer["tasks"]) == 2
    bonus = sandbox.host("bonus.host").container_instance_arn
    tax = sandbox.host("tax.host").container_instance_arn
    assert sorted(answer["failures"], key=lambda f: f["arn"]) == sorted(
        [
            {"arn": bonus, "reason": "RESOURCE:MEMORY"},
            {"arn": tax, "reason": "MemberOf placement constraint unsatisfied."},
        ],
        key=lambda f: f["arn"],
    )
    again = run(sandbox, big, count=3, clientToken="three")
    assert [t["taskArn"] for t in again["tasks"]] == [t["taskArn"] for t in answer["tasks"]]
    assert again["failures"] == answer["failures"]
    stubbed("RunTask", again, taskDefinition="big")


# --- 6: StopTask deletes tags -------------------------------------------------------------


def test_6_stop_task_deletes_the_tasks_tags_a_task_that_ends_keeps_them(sandbox: Any) -> None:
    """StopTask: "Any tags associated with the task will be deleted" (ECS API Reference and
    botocore's service model). Only StopTask: nothing documents it for a task that ends by
    itself."""
    sandbox.label_all()
    tags = [{"key": "residency:workload", "value": "bonus"}]
    slow = sandbox.register_task_definition("slow", ["sleep", "30"])
    quick = sandbox.register_task_definition("quick", ["true"])
    stopped = run(sandbox, slow, tags=tags)["tasks"][0]["taskArn"]
    ended = run(sandbox, quick, tags=tags)["tasks"][0]["taskArn"]
    sandbox.wait_for_task(stopped, "RUNNING")
    ecs = sandbox.client("ecs")
    answer = ecs.stop_task(cluster=sandbox.cluster, task=stopped)
    assert not answer["task"].get("tags")
    sandbox.wait_for_task(stopped)
    sandbox.wait_for_task(ended)
    described = ecs.describe_tasks(
        cluster=sandbox.cluster, tasks=[stopped, ended], include=["TAGS"]
    )
    by_arn = {t["taskArn"]: t for t in described["tasks"]}
    assert not by_arn[stopped].get("tags")
    assert by_arn[ended]["tags"] == tags
    assert ecs.list_tags_for_resource(resourceArn=stopped)["tags"] == []
    stubbed("DescribeTasks", described, tasks=[stopped, ended])


# --- 7: awslogs without the execution role ------------------------------------------------


def test_7_awslogs_without_execution_role_fails_to_start_on_an_external_host(
    sandbox: Any,
) -> None:
    """ "IAM roles for Amazon ECS": the task execution role is required when the task "is
    hosted on AWS Fargate or on external instances and ... sends container logs to
    CloudWatch Logs using the awslogs log driver"."""
    sandbox.label_all()
    bare = sandbox.register_task_definition("bare", ["echo", "hi"], execution_role=None)
    arn = run(sandbox, bare)["tasks"][0]["taskArn"]
    done = sandbox.wait_for_task(arn)
    assert done["stopCode"] == "TaskFailedToStart"
    assert done["stoppedReason"] == NO_LOG_CREDENTIALS
    assert "failed to initialize logging driver" in done["stoppedReason"]
    assert "exitCode" not in done["containers"][0]
    # a host whose Docker daemon has AWS credentials of its own runs it
    world().hosts[sandbox.host("bonus.host").instance_id].daemon_credentials = True
    arn = run(sandbox, bare)["tasks"][0]["taskArn"]
    assert sandbox.wait_for_task(arn)["containers"][0]["exitCode"] == 0


# --- 8: SSM ComputerName and Name ---------------------------------------------------------


def test_8_computer_name_is_the_fqdn_and_name_the_activations(sandbox: Any) -> None:
    """SSM InstanceInformation: ComputerName is "the fully qualified host name of the managed
    node"; Name is "specified as the DefaultInstanceName property using the CreateActivation
    command" (a seeded host, with no activation of its own, has none)."""
    ssm = sandbox.client("ssm")
    listed = ssm.describe_instance_information()["InstanceInformationList"]
    assert all("Name" not in i for i in listed)
    sandbox.set_computer_name("bonus.host", "bonus.host.acme.internal")
    names = {i["InstanceId"]: i["ComputerName"] for i in ssm.describe_instance_information()[
        "InstanceInformationList"
    ]}  # fmt: skip
    assert names[sandbox.host("bonus.host").instance_id] == "bonus.host.acme.internal"
    assert names[sandbox.host("tax.host").instance_id] == "tax.host"


def test_8_a_map_folder_can_give_the_hosts_a_domain(sandbox: Any, tmp_path: Path) -> None:
    import shutil

    from residency_cli.sandbox.seed import EXAMPLE_DIR
    from residency_cli.sandbox.testing import SandboxFixture

    folder = tmp_path / "acme"
    shutil.copytree(EXAMPLE_DIR, folder)
    extras = (folder / "sandbox.json").read_text(encoding="utf-8")
    (folder / "sandbox.json").write_text(
        extras.replace("{", '{\n  "domain": "acme.internal",', 1), encoding="utf-8"
    )
    other = SandboxFixture(sandbox._server, folder / "residency.yaml").reset()
    listed = other.client("ssm").describe_instance_information()["InstanceInformationList"]
    assert {i["ComputerName"] for i in listed} == {
        "bonus.host.acme.internal",
        "tax.host.acme.internal",
    }


# --- 9: RunTask limits, DeleteAttributes --------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tags": [{"key": f"k{i}", "value": "v"} for i in range(51)]}, "at most 50"),
        ({"tags": [{"key": "aws:owner", "value": "me"}]}, "reserved"),
        ({"tags": [{"key": "AWS:owner", "value": "me"}]}, "reserved"),
        ({"tags": [{"key": "owner", "value": "Aws:me"}]}, "reserved"),
        ({"tags": [{"key": "own#er", "value": "me"}]}, "characters outside"),
        ({"tags": [{"key": "k" * 129, "value": "v"}]}, "1-128"),
        ({"tags": [{"key": "k", "value": "v" * 257}]}, "at most 256"),
        (
            {"overrides": {"containerOverrides": [{"name": "main", "command": ["x" * 8200]}]}},
            "Container Overrides length must be at most 8192",
        ),
        (
            {
                "placementConstraints": [
                    {
                        "type": "memberOf",
                        "expression": "attribute:location in [" + "a, " * 700 + "b]",
                    }
                ]
            },
            "at most 2000 characters",
        ),
    ],
)
def test_9_run_task_limits_are_refused_as_ecs_does(
    sandbox: Any, change: dict[str, Any], message: str
) -> None:
    """Tag (max 50 per resource, key 1-128 and value 0-256 characters of
    [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@], no aws: prefix in any case), TaskOverride ("A total of 8192
    characters are allowed for overrides ... including the JSON formatting characters"),
    PlacementConstraint.expression ("a maximum length of 2000 characters")."""
    sandbox.label_all()
    quick = sandbox.register_task_definition("quick", ["true"])
    with pytest.raises(ClientError) as raised:
        run(sandbox, quick, **change)
    assert code(raised) == "InvalidParameterException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert message in raised.value.response["Error"]["Message"]
    assert sandbox.client("ecs").list_tasks(cluster=sandbox.cluster)["taskArns"] == []


def test_9_limits_at_the_edge_pass(sandbox: Any) -> None:
    sandbox.label_all()
    quick = sandbox.register_task_definition("quick", ["true"])
    tags = [{"key": f"ké {i}", "value": "ünïcode:/=+-@_."} for i in range(50)]
    env = [{"name": "E", "value": "x" * 8000}]
    overrides = {"containerOverrides": [{"name": "main", "environment": env}]}
    answer = run(sandbox, quick, tags=tags, overrides=overrides)
    assert len(answer["tasks"]) == 1


def test_9_delete_attributes_needs_only_name_and_target(sandbox: Any) -> None:
    """DeleteAttributesRequest.attributes: "For custom attributes, specify the attribute name
    and target ID, but don't specify the value"."""
    host = sandbox.host("bonus.host")
    sandbox.label("bonus.host", "newyork")
    ecs = sandbox.client("ecs")
    ecs.delete_attributes(
        cluster=sandbox.cluster,
        attributes=[{"name": "location", "targetId": host.container_instance_arn}],
    )
    listed = ecs.list_attributes(
        cluster=sandbox.cluster, targetType="container-instance", attributeName="location"
    )
    assert listed["attributes"] == []


# --- 10: List* defaults, filters and paging -----------------------------------------------


def test_10_list_tasks_defaults_to_desired_status_running(sandbox: Any) -> None:
    """ListTasksRequest.desiredStatus: "The default status filter is RUNNING"; PENDING never
    matches (ECS never sets it as a desired status)."""
    sandbox.label_all()
    quick = sandbox.register_task_definition("quick", ["true"])
    slow = sandbox.register_task_definition("slow", ["sleep", "30"])
    done = run(sandbox, quick)["tasks"][0]["taskArn"]
    sandbox.wait_for_task(done)
    running = run(sandbox, slow)["tasks"][0]["taskArn"]
    ecs = sandbox.client("ecs")
    answer = ecs.list_tasks(cluster=sandbox.cluster)
    assert answer["taskArns"] == [running]
    assert stubbed("ListTasks", answer)["taskArns"] == [running]
    assert ecs.list_tasks(cluster=sandbox.cluster, desiredStatus="STOPPED")["taskArns"] == [done]
    assert ecs.list_tasks(cluster=sandbox.cluster, desiredStatus="PENDING")["taskArns"] == []
    assert ecs.list_tasks(cluster=sandbox.cluster, family="slow")["taskArns"] == [running]
    assert ecs.list_tasks(cluster=sandbox.cluster, family="quick")["taskArns"] == []
    bonus = sandbox.host("bonus.host").container_instance_arn
    assert ecs.list_tasks(cluster=sandbox.cluster, containerInstance=bonus)["taskArns"] == [running]
    ecs.create_cluster(clusterName=sandbox.cluster[:-1])  # a prefix of the cluster's name
    assert ecs.list_tasks(cluster=sandbox.cluster[:-1])["taskArns"] == []


def _many_hosts(sandbox: Any, count: int) -> list[str]:
    from residency_cli.sandbox.moto_ext import register_managed_instance

    arns = []
    for n in range(count):
        host = register_managed_instance(
            sandbox.region,
            sandbox.cluster,
            f"rack{n:03d}.host",
            root=sandbox.workdir / "hosts" / f"rack{n:03d}.host",
        )
        arns.append(host.container_instance_arn)
    return arns


def test_10_list_container_instances_filters_with_the_query_language(sandbox: Any) -> None:
    """ListContainerInstancesRequest.filter: cluster query language statements (judged with
    residency's placement.py), `status` (default: all but INACTIVE)."""
    sandbox.label_all()
    ecs = sandbox.client("ecs")
    bonus, tax = sandbox.host("bonus.host"), sandbox.host("tax.host")

    def listed(**kwargs: Any) -> list[str]:
        answer = ecs.list_container_instances(cluster=sandbox.cluster, **kwargs)
        stubbed("ListContainerInstances", answer)
        return list(answer["containerInstanceArns"])

    assert listed(filter="attribute:location == newyork") == [bonus.container_instance_arn]
    assert listed(filter="attribute:location in [frankfurt, paris]") == [tax.container_instance_arn]
    assert listed(filter=f"ec2InstanceId == {tax.instance_id}") == [tax.container_instance_arn]
    both = {bonus.container_instance_arn, tax.container_instance_arn}
    assert (
        set(listed(filter="attribute:ecs.os-type == linux and attribute:location exists")) == both
    )
    sandbox.disconnect_agent("tax.host")
    assert listed(filter="agentConnected == false") == [tax.container_instance_arn]
    sandbox.drain("bonus.host")
    assert listed(status="DRAINING") == [bonus.container_instance_arn]
    assert listed(status="ACTIVE") == [tax.container_instance_arn]
    with pytest.raises(ClientError) as raised:
        listed(filter="attribute:location ==")
    assert code(raised) == "InvalidParameterException"


def test_10_list_container_instances_and_attributes_page_at_100(sandbox: Any) -> None:
    """maxResults "can be between 1 and 100. If this parameter isn't used, then
    ListContainerInstances returns up to 100 results and a nextToken value if applicable"
    (and the same for ListAttributes)."""
    arns = [h.container_instance_arn for h in sandbox.hosts.values()] + _many_hosts(sandbox, 110)
    ecs = sandbox.client("ecs")
    first = ecs.list_container_instances(cluster=sandbox.cluster)
    assert len(first["containerInstanceArns"]) == 100 and first["nextToken"]
    stubbed("ListContainerInstances", first)
    second = ecs.list_container_instances(cluster=sandbox.cluster, nextToken=first["nextToken"])
    assert "nextToken" not in second
    assert sorted(first["containerInstanceArns"] + second["containerInstanceArns"]) == sorted(arns)
    pages = ecs.get_paginator("list_container_instances").paginate(
        cluster=sandbox.cluster, PaginationConfig={"PageSize": 30}
    )
    assert sum(len(p["containerInstanceArns"]) for p in pages) == 112
    with pytest.raises(ClientError) as raised:
        ecs.list_container_instances(cluster=sandbox.cluster, maxResults=101)
    assert code(raised) == "InvalidParameterException"
    attributes = ecs.list_attributes(
        cluster=sandbox.cluster, targetType="container-instance", attributeName="ecs.os-type"
    )
    assert len(attributes["attributes"]) == 100 and attributes["nextToken"]
    stubbed("ListAttributes", attributes, targetType="container-instance")


def test_10_list_attributes_by_name_alone(sandbox: Any) -> None:
    """ListAttributesRequest: attributeName filters by name; attributeValue needs a name."""
    sandbox.label_all()
    ecs = sandbox.client("ecs")
    answer = ecs.list_attributes(
        cluster=sandbox.cluster, targetType="container-instance", attributeName="location"
    )
    pinned = stubbed("ListAttributes", answer, targetType="container-instance")
    found = {(a["targetId"], a["value"]) for a in pinned["attributes"]}
    assert found == {
        (sandbox.host("bonus.host").container_instance_arn, "newyork"),
        (sandbox.host("tax.host").container_instance_arn, "frankfurt"),
    }
    assert all(set(a) == {"name", "value", "targetId"} for a in answer["attributes"])
    by_value = ecs.list_attributes(
        cluster=sandbox.cluster,
        targetType="container-instance",
        attributeName="location",
        attributeValue="frankfurt",
    )["attributes"]
    assert [a["targetId"] for a in by_value] == [sandbox.host("tax.host").container_instance_arn]
    with pytest.raises(ClientError) as raised:
        ecs.list_attributes(
            cluster=sandbox.cluster, targetType="container-instance", attributeValue="frankfurt"
        )
    assert code(raised) == "InvalidParameterException"
    everything = ecs.list_attributes(cluster=sandbox.cluster, targetType="container-instance")
    assert {"ecs.os-type", "location"} <= {a["name"] for a in everything["attributes"]}


def test_stock_moto_is_untouched_outside_the_sandbox() -> None:
    """The patches are inert without the sandbox: plain mock_aws keeps moto's own answers."""
    from moto import mock_aws

    from residency_cli.sandbox import moto_ext

    moto_ext.install()
    assert not world().enabled
    with mock_aws():
        import boto3

        ecs = boto3.client("ecs", region_name="us-east-1")
        ecs.create_cluster(clusterName="plain")
        assert ecs.list_tasks(cluster="plain")["taskArns"] == []
        assert "nextToken" not in ecs.list_container_instances(cluster="plain")
