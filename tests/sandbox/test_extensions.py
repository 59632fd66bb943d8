"""The sandbox's moto extensions, each against what ECS / SSM document.

References: ECS API failure reasons (api_failures_messages.html), stopped-task error codes,
ECS_Idempotency.html (RunTask clientToken: 24 h, ConflictException), StopTask (SIGTERM,
stopTimeout, SIGKILL), SSM DescribeInstanceInformation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from residency_cli.sandbox.world import moto_module

NEWYORK = [{"type": "memberOf", "expression": "attribute:location == newyork"}]


def run(sandbox: Any, task_definition: str, **kwargs: Any) -> dict[str, Any]:
    ecs = sandbox.client("ecs")
    request = {"cluster": sandbox.cluster, "taskDefinition": task_definition}
    request.setdefault("launchType", "EXTERNAL")
    request.update(kwargs)
    return dict(ecs.run_task(**request))


def test_external_task_definition_keeps_its_network_mode_and_runs(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("hello", ["python3", "-c", "print('hello')"])
    definition = sandbox.client("ecs").describe_task_definition(taskDefinition=arn)
    assert definition["taskDefinition"]["networkMode"] == "host"
    assert "EXTERNAL" in definition["taskDefinition"]["compatibilities"]
    assert definition["taskDefinition"]["requiresCompatibilities"] == ["EXTERNAL"]
    response = run(sandbox, arn, placementConstraints=NEWYORK)
    assert response["failures"] == []
    assert response["tasks"][0]["lastStatus"] == "PENDING"  # RunTask answers before the agent
    done = sandbox.wait_for_task(response["tasks"][0]["taskArn"])
    assert done["containers"][0]["exitCode"] == 0
    assert sandbox.log_messages(done["taskArn"]) == ["hello"]


def test_run_task_refuses_a_definition_without_external(sandbox: Any) -> None:
    arn = sandbox.register_task_definition(
        "ec2-only", ["true"], requiresCompatibilities=["EC2"], networkMode="bridge"
    )
    with pytest.raises(ClientError) as raised:
        run(sandbox, arn)
    assert raised.value.response["Error"]["Code"] == "ClientException"


def test_hosts_are_managed_instances_known_to_ssm(sandbox: Any) -> None:
    ssm = sandbox.client("ssm")
    listed = ssm.describe_instance_information()["InstanceInformationList"]
    by_name = {i["ComputerName"]: i for i in listed}
    assert set(by_name) == {"bonus.host", "tax.host"}
    for hostname, host in sandbox.hosts.items():
        assert host.instance_id.startswith("mi-")
        info = by_name[hostname]
        assert info["InstanceId"] == host.instance_id
        assert info["PingStatus"] == "Online"
        assert info["ResourceType"] == "ManagedInstance"
        assert info["IPAddress"]
    one = sandbox.hosts["tax.host"].instance_id
    filtered = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [one]}])[
        "InstanceInformationList"
    ]
    assert [i["ComputerName"] for i in filtered] == ["tax.host"]
    ecs = sandbox.client("ecs")
    arns = ecs.list_container_instances(cluster=sandbox.cluster)["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster=sandbox.cluster, containerInstances=arns)
    assert {i["ec2InstanceId"] for i in described["containerInstances"]} == {
        h.instance_id for h in sandbox.hosts.values()
    }
    # hosts start unlabelled: the demo registers them by hostname
    for instance in described["containerInstances"]:
        assert "location" not in {a["name"] for a in instance["attributes"]}


def test_residency_hosts_sees_hostnames(sandbox: Any) -> None:
    from residency_cli.hosts import list_hosts, register_host

    clients = sandbox.clients()
    register_host(clients.ecs, clients.ssm, sandbox.config, "bonus.host", "newyork")
    hosts = {h.hostname: h for h in list_hosts(clients.ecs, clients.ssm, sandbox.config)}
    assert hosts["bonus.host"].location == "newyork"
    assert hosts["tax.host"].location is None


def test_member_of_places_only_on_matching_hosts(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("quick", ["true"])
    for _ in range(3):
        task = run(sandbox, arn, placementConstraints=NEWYORK)["tasks"][0]
        assert task["containerInstanceArn"] == sandbox.hosts["bonus.host"].container_instance_arn
    both = [{"type": "memberOf", "expression": "attribute:location in [paris, frankfurt]"}]
    task = run(sandbox, arn, placementConstraints=both)["tasks"][0]
    assert task["containerInstanceArn"] == sandbox.hosts["tax.host"].container_instance_arn


def test_no_matching_host_gives_ecs_failures_and_no_task(sandbox: Any) -> None:
    arn = sandbox.register_task_definition("quick", ["true"])
    response = run(sandbox, arn, placementConstraints=NEWYORK)  # hosts are unlabelled
    assert response["tasks"] == []
    assert sorted(f["arn"] for f in response["failures"]) == sorted(
        h.container_instance_arn for h in sandbox.hosts.values()
    )
    assert {f["reason"] for f in response["failures"]} == {
        "MemberOf placement constraint unsatisfied."
    }
    assert sandbox.client("ecs").list_tasks(cluster=sandbox.cluster)["taskArns"] == []


def test_cpu_and_memory_are_honoured(sandbox: Any) -> None:
    sandbox.label_all()
    big_cpu = sandbox.register_task_definition("big-cpu", ["true"], cpu=4096)
    big_memory = sandbox.register_task_definition("big-memory", ["true"], memory=8192)
    assert run(sandbox, big_cpu, placementConstraints=NEWYORK)["failures"][0]["reason"] == (
        "RESOURCE:CPU"
    )
    assert run(sandbox, big_memory, placementConstraints=NEWYORK)["failures"][0]["reason"] == (
        "RESOURCE:MEMORY"
    )
    sleeper = sandbox.register_task_definition("sleeper", ["sleep", "30"], cpu=1536)
    first = run(sandbox, sleeper, placementConstraints=NEWYORK)["tasks"][0]["taskArn"]
    second = run(sandbox, sleeper, placementConstraints=NEWYORK)
    assert second["tasks"] == [] and second["failures"][0]["reason"] == "RESOURCE:CPU"
    sandbox.client("ecs").stop_task(cluster=sandbox.cluster, task=first)
    sandbox.wait_for_task(first)
    assert run(sandbox, sleeper, placementConstraints=NEWYORK)["failures"] == []


def test_disconnected_agent_and_draining_hosts_take_no_tasks(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("quick", ["true"])
    sandbox.disconnect_agent("bonus.host")
    failures = run(sandbox, arn, placementConstraints=NEWYORK)["failures"]
    assert {
        "arn": sandbox.hosts["bonus.host"].container_instance_arn,
        "reason": "AGENT",
    } in failures
    sandbox.connect_agent("bonus.host")
    sandbox.drain("bonus.host")
    response = run(sandbox, arn, placementConstraints=NEWYORK)
    assert response["tasks"] == []
    assert response["failures"][0]["arn"] == sandbox.hosts["tax.host"].container_instance_arn
    described = sandbox.client("ecs").describe_container_instances(
        cluster=sandbox.cluster,
        containerInstances=[sandbox.hosts["bonus.host"].container_instance_arn],
    )["containerInstances"][0]
    assert described["status"] == "DRAINING"


def test_client_token_is_idempotent_for_24_hours(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("quick", ["true"])
    first = run(sandbox, arn, placementConstraints=NEWYORK, clientToken="run-1")["tasks"][0]
    again = run(sandbox, arn, placementConstraints=NEWYORK, clientToken="run-1")["tasks"][0]
    assert again["taskArn"] == first["taskArn"]
    assert sandbox.calls("RunTask") == 2
    ecs = sandbox.client("ecs")
    listed = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(cluster=sandbox.cluster, desiredStatus=status)["taskArns"]
    ]
    assert listed == [first["taskArn"]]
    with pytest.raises(ClientError) as raised:
        run(sandbox, arn, placementConstraints=NEWYORK, clientToken="run-1", startedBy="other")
    assert raised.value.response["Error"]["Code"] == "ConflictException"
    sandbox.clock.advance(24 * 3600 + 1)
    later = run(sandbox, arn, placementConstraints=NEWYORK, clientToken="run-1")["tasks"][0]
    assert later["taskArn"] != first["taskArn"]


def test_stopped_tasks_are_forgotten_after_an_hour_as_in_ecs(sandbox: Any) -> None:
    sandbox.label_all()
    quick = sandbox.register_task_definition("quick", ["true"])
    slow = sandbox.register_task_definition("slow", ["sleep", "30"])
    done = run(sandbox, quick, placementConstraints=NEWYORK, clientToken="q")["tasks"][0]
    sandbox.wait_for_task(done["taskArn"])
    running = run(sandbox, slow, placementConstraints=NEWYORK)["tasks"][0]
    sandbox.wait_for_task(running["taskArn"], "RUNNING")
    ecs = sandbox.client("ecs")

    def described() -> list[str]:
        answer = ecs.describe_tasks(
            cluster=sandbox.cluster, tasks=[done["taskArn"], running["taskArn"]]
        )
        return [t["taskArn"] for t in answer["tasks"]]

    sandbox.clock.advance(3600 - 60)
    assert described() == [done["taskArn"], running["taskArn"]]
    sandbox.clock.advance(120)
    assert described() == [running["taskArn"]]  # a running task is never forgotten
    listed = ecs.list_tasks(cluster=sandbox.cluster, desiredStatus="STOPPED")["taskArns"]
    assert done["taskArn"] not in listed
    # Nothing keeps it in memory either (moto tracks every model it made).
    tracked = moto_module("moto.ecs.models").Task.instances_tracked
    assert all(t.task_arn != done["taskArn"] for t in tracked)
    # Its clientToken went with it: the same request now starts a new task.
    again = run(sandbox, quick, placementConstraints=NEWYORK, clientToken="q")["tasks"][0]
    assert again["taskArn"] != done["taskArn"]


def test_exit_codes_stop_codes_and_timestamps(sandbox: Any) -> None:
    sandbox.label_all()
    failing = sandbox.register_task_definition("three", ["sh", "-c", "echo bye; exit 3"])
    task = run(sandbox, failing, placementConstraints=NEWYORK)["tasks"][0]
    done = sandbox.wait_for_task(task["taskArn"])
    assert done["lastStatus"] == done["desiredStatus"] == "STOPPED"
    assert done["containers"][0]["exitCode"] == 3
    assert done["stopCode"] == "EssentialContainerExited"
    assert done["stoppedReason"] == "Essential container in task exited"
    assert done["createdAt"] <= done["startedAt"] <= done["stoppedAt"]
    assert sandbox.log_messages(task["taskArn"]) == ["bye"]


def test_command_not_found_fails_to_start(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("missing", ["no-such-command-here", "--x"])
    task = run(sandbox, arn, placementConstraints=NEWYORK)["tasks"][0]
    done = sandbox.wait_for_task(task["taskArn"])
    assert done["stopCode"] == "TaskFailedToStart"
    assert "CannotStartContainerError" in done["stoppedReason"]
    assert "executable file not found" in done["stoppedReason"]
    assert "exitCode" not in done["containers"][0]
    assert "startedAt" not in done


def test_crashing_process_reports_its_signal(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("crash", ["sh", "-c", "kill -9 $$"])
    done = sandbox.wait_for_task(
        run(sandbox, arn, placementConstraints=NEWYORK)["tasks"][0]["taskArn"]
    )
    assert done["containers"][0]["exitCode"] == 137
    assert done["stopCode"] == "EssentialContainerExited"


def test_stop_task_terminates_the_process_with_143(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("sleeper", ["sleep", "60"])
    task_arn = run(sandbox, arn, placementConstraints=NEWYORK)["tasks"][0]["taskArn"]
    sandbox.wait_for_task(task_arn, "RUNNING")
    answer = sandbox.client("ecs").stop_task(cluster=sandbox.cluster, task=task_arn)["task"]
    assert answer["desiredStatus"] == "STOPPED"
    assert answer["stopCode"] == "UserInitiated"
    done = sandbox.wait_for_task(task_arn)
    assert done["containers"][0]["exitCode"] == 143
    assert done["stopCode"] == "UserInitiated"
    assert done["stoppedReason"] == "Task stopped by user"


def test_environment_paths_and_hostname(sandbox: Any) -> None:
    sandbox.label_all()
    script = (
        "import os, socket, sys; "
        "print(socket.gethostname()); print(os.environ['HOSTNAME']); "
        "print(os.environ['AWS_ENDPOINT_URL']); print(os.environ['GREETING']); "
        "print(open(sys.argv[1].split('=', 1)[1]).readline().strip())"
    )
    arn = sandbox.register_task_definition(
        "env",
        ["python3", "-c", "raise SystemExit(9)"],
        environment={"GREETING": "from-definition"},
        volumes=[{"name": "data", "host": {"sourcePath": "/data"}}],
        mount_points=[{"sourceVolume": "data", "containerPath": "/data", "readOnly": True}],
    )
    overrides = {
        "containerOverrides": [
            {
                "name": "main",
                "command": ["python3", "-c", script, "--input_file=/data/employee_data.csv"],
                "environment": [{"name": "GREETING", "value": "from-override"}],
            }
        ]
    }
    task = run(sandbox, arn, placementConstraints=NEWYORK, overrides=overrides)["tasks"][0]
    done = sandbox.wait_for_task(task["taskArn"])
    assert done["containers"][0]["exitCode"] == 0, sandbox.log_messages(task["taskArn"])
    assert sandbox.log_messages(task["taskArn"]) == [
        "bonus.host",
        "bonus.host",
        sandbox.endpoint,
        "from-override",
        "id;first_name;last_name;yearly_salary",
    ]


def test_logs_arrive_while_the_task_runs(sandbox: Any, tmp_path: Path) -> None:
    sandbox.label_all()
    release = tmp_path / "release"
    script = (
        "import os, time\n"
        "print('first', flush=True)\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.01)\n"
        "print('second')\n"
    )
    arn = sandbox.register_task_definition("stream", ["python3", "-c", script])
    task_arn = run(sandbox, arn, placementConstraints=NEWYORK)["tasks"][0]["taskArn"]
    sandbox.wait_for_task(task_arn, "RUNNING")
    import time

    deadline = time.monotonic() + 10
    while sandbox.log_messages(task_arn) != ["first"]:
        assert time.monotonic() < deadline, "the first line never reached the log stream"
        time.sleep(0.02)
    assert sandbox.describe_task(task_arn)["lastStatus"] == "RUNNING"
    release.touch()
    sandbox.wait_for_task(task_arn)
    assert sandbox.log_messages(task_arn) == ["first", "second"]


def test_throttling_injection_and_call_counts(sandbox: Any) -> None:
    ecs = sandbox.client("ecs", retries={"total_max_attempts": 1, "mode": "standard"})
    sandbox.throttle("DescribeTasks", times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            ecs.describe_tasks(cluster=sandbox.cluster, tasks=["nope"])
        assert raised.value.response["Error"]["Code"] == "ThrottlingException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    answer = ecs.describe_tasks(cluster=sandbox.cluster, tasks=["nope"])
    assert answer["failures"] == [{"arn": "nope", "reason": "MISSING"}]
    assert sandbox.calls("DescribeTasks") == 3
    assert sandbox.calls("ecs:DescribeTasks") == 3
    assert sandbox.calls("RunTask") == 0
    logs = sandbox.client("logs", retries={"total_max_attempts": 1, "mode": "standard"})
    sandbox.throttle("logs:GetLogEvents")
    with pytest.raises(ClientError) as raised:
        logs.get_log_events(logGroupName="/residency/acme", logStreamName="x")
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert sandbox.calls("GetLogEvents") == 1


def test_start_task_ignores_placement(sandbox: Any) -> None:
    arn = sandbox.register_task_definition("quick", ["true"])
    task_arn = sandbox.start_task_on("tax.host", arn)
    done = sandbox.wait_for_task(task_arn)
    assert done["containerInstanceArn"] == sandbox.hosts["tax.host"].container_instance_arn


def test_misplaced_run_task_lands_on_the_named_host(sandbox: Any) -> None:
    sandbox.label_all()
    arn = sandbox.register_task_definition("quick", ["true"])
    sandbox.misplace_next_run_task("tax.host")
    task = run(sandbox, arn, placementConstraints=NEWYORK)["tasks"][0]
    assert task["containerInstanceArn"] == sandbox.hosts["tax.host"].container_instance_arn


def test_wrong_moto_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto

    from residency_cli.errors import UsageError
    from residency_cli.sandbox.moto_ext import check_moto_version

    assert check_moto_version() == "5.2.5"
    monkeypatch.setattr(moto, "__version__", "5.0.0")
    with pytest.raises(UsageError, match=r"extends moto 5\.2\.5, but moto 5\.0\.0"):
        check_moto_version()


def test_delete_attributes_without_value_removes_the_attribute(sandbox: Any) -> None:
    """ECS DeleteAttributes: `value` is optional; the attribute goes whatever its value."""
    host = sandbox.host("bonus.host")
    sandbox.label("bonus.host", "newyork")
    ecs = sandbox.client("ecs")
    ecs.delete_attributes(
        cluster=sandbox.cluster,
        attributes=[{"name": "location", "targetId": host.container_instance_arn}],
    )
    described = ecs.describe_container_instances(
        cluster=sandbox.cluster, containerInstances=[host.container_instance_arn]
    )["containerInstances"][0]
    assert "location" not in {a["name"] for a in described["attributes"]}
