"""Fault injection in the sandbox: the spec, what each fault looks like to a client, what is
never faulted, and that the same seed gives the same faults."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import botocore.exceptions
import pytest

from residency_cli.sandbox.world import FaultSpecError, decide, parse_fault_spec, world


def _single_try(sandbox: Any, service: str) -> Any:
    """A client that does not retry, so that each injected fault is seen as it is."""
    return sandbox.client(service, retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("throtle=0.2", "unknown fault 'throtle'"),
        ("throttle=1.5", "from 0 to 1"),
        ("throttle=lots", "not a number"),
        ("throttle", "expected KIND=RATE"),
        ("throttle=0.1,throttle=0.2", "given twice"),
        ("throttle:ec2=0.1", "unknown service 'ec2'"),
        ("throttle:ecs:runTask=0.1", "not an operation name"),
        ("throttle:=0.1", "empty operation or service"),
        ("throttle=0.7,error=0.4", "add up to 1.1"),
        ("throttle:RunTask=0.9,error=0.2", "for RunTask add up to 1.1"),
        ("slow_seconds=60", "slow_seconds must be from 0 to 20"),
        ("throttle=0.1,,error=0.1", "empty item"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as raised:
        parse_fault_spec(spec)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_spec_forms_and_most_specific_rule() -> None:
    plan = parse_fault_spec(
        "throttle=0.2, error=0.05,reset=0.05,slow=0.1,slow_seconds=0.25,"
        "throttle:RunTask=0.5,throttle:ecs:DescribeTasks=0,error:s3=0.3"
    )
    assert plan.slow_seconds == 0.25
    assert plan.rate("throttle", "ecs", "ListTasks") == 0.2
    assert plan.rate("throttle", "ecs", "RunTask") == 0.5
    assert plan.rate("throttle", "ecs", "DescribeTasks") == 0.0
    assert plan.rate("throttle", "logs", "GetLogEvents") == 0.2
    # S3 (the task processes' uploads) only when named
    assert plan.rate("throttle", "s3", "PutObject") == 0.0
    assert plan.rate("error", "s3", "PutObject") == 0.3
    assert (
        parse_fault_spec({"throttle": 0.2, "error:RunTask": 0.8}).rate("error", "ecs", "RunTask")
        == 0.8
    )
    assert not parse_fault_spec("") and not parse_fault_spec(None)
    assert not parse_fault_spec("none")


def test_each_fault_as_a_client_sees_it(sandbox: Any) -> None:
    ecs = _single_try(sandbox, "ecs")
    sandbox.set_faults("throttle:ListClusters=1")
    with pytest.raises(botocore.exceptions.ClientError) as throttled:
        ecs.list_clusters()
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    sandbox.set_faults("error:ListClusters=1")
    with pytest.raises(botocore.exceptions.ClientError) as failed:
        ecs.list_clusters()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
    assert failed.value.response["Error"]["Code"] in ("InternalFailure", "ServiceUnavailable")

    sandbox.set_faults("reset:ListClusters=1")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ecs.list_clusters()

    sandbox.set_faults("slow:ListClusters=1,slow_seconds=0.3")
    started = time.monotonic()
    assert ecs.list_clusters()["clusterArns"]
    assert time.monotonic() - started >= 0.3

    sandbox.set_faults("throttle:s3=1")
    s3 = _single_try(sandbox, "s3")
    with pytest.raises(botocore.exceptions.ClientError) as slow_down:
        s3.list_buckets()
    assert slow_down.value.response["Error"]["Code"] == "SlowDown"
    assert slow_down.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

    sandbox.clear_faults()
    assert ecs.list_clusters()["clusterArns"]
    assert s3.list_buckets()["Buckets"]
    assert sandbox.faults_injected()["throttle"] == 2


def test_connection_stays_usable_after_a_reset(sandbox: Any) -> None:
    # One try and a read timeout: a connection left hanging by the reset makes the call fail
    # (ReadTimeoutError) instead of being timed by the test, which asserts no wall time.
    ecs = sandbox.client(
        "ecs", retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30
    )
    sandbox.drop_next("ListClusters")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ecs.list_clusters()
    for _ in range(3):  # the next requests, on a new connection, are answered
        assert ecs.list_clusters()["clusterArns"]


def test_s3_and_internal_calls_are_not_faulted_by_default(sandbox: Any) -> None:
    sandbox.set_faults("throttle=1")
    s3 = _single_try(sandbox, "s3")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(botocore.exceptions.ClientError):
        _single_try(sandbox, "ecs").list_clusters()
    # the fixture's helpers (and the simulated hosts) use the internal header
    sandbox.label_all()
    with pytest.raises(KeyError):
        sandbox.describe_task("no-such-task")
    assert sandbox.faults_injected() == {"throttle": 1, "throttle ecs:ListClusters": 1}


def test_error_after_handling_has_happened(sandbox: Any) -> None:
    """A request whose answer is lost still took effect: the danger retries must survive."""
    ecs = _single_try(sandbox, "ecs")
    sandbox.fail_next("CreateCluster", "InternalFailure", status=500, after=True)
    with pytest.raises(botocore.exceptions.ClientError):
        ecs.create_cluster(clusterName="made-anyway")
    sandbox.drop_next("CreateCluster", after=True)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        ecs.create_cluster(clusterName="made-anyway-too")
    names = {arn.rsplit("/", 1)[-1] for arn in ecs.list_clusters()["clusterArns"]}
    assert {"made-anyway", "made-anyway-too"} <= names


def test_same_seed_same_faults_whatever_else_happens(sandbox: Any) -> None:
    def outcomes(seed: int, noise: bool) -> list[str]:
        sandbox.reset_calls()
        sandbox.set_faults("throttle=0.3,error=0.1,reset=0.1", seed=seed)
        ecs, ssm = _single_try(sandbox, "ecs"), _single_try(sandbox, "ssm")
        seen = []
        for _ in range(30):
            if noise:  # calls of another operation in between change nothing
                with contextlib.suppress(
                    botocore.exceptions.ClientError, botocore.exceptions.HTTPClientError
                ):
                    ssm.describe_instance_information()
            try:
                ecs.list_clusters()
                seen.append("ok")
            except botocore.exceptions.ClientError as error:
                seen.append(str(error.response["Error"]["Code"]))
            except botocore.exceptions.HTTPClientError:
                seen.append("reset")
        return seen

    first = outcomes(11, noise=False)
    assert first == outcomes(11, noise=True)
    assert first != outcomes(12, noise=False)
    assert {"ok", "ThrottlingException", "reset"} <= set(first)
    # and it is what `decide` says, so a test can know in advance which call is faulted
    plan = parse_fault_spec("throttle=0.3,error=0.1,reset=0.1")
    predicted = [decide(plan, 11, "ecs", "ListClusters", n) for n in range(1, 31)]
    assert [("ok" if i is None else i.kind) for i in predicted] == [
        {"ThrottlingException": "throttle", "InternalFailure": "error"}.get(
            o, "error" if o == "ServiceUnavailable" else o
        )
        for o in first
    ]


def test_reset_clears_the_faults(sandbox: Any) -> None:
    sandbox.set_faults("throttle=1", seed=3)
    assert world().faults.plan
    sandbox.reset()
    assert not world().faults.plan
    assert _single_try(sandbox, "ecs").list_clusters()["clusterArns"]


def test_lost_host_keeps_its_tasks_running_to_the_api_until_it_is_back(sandbox: Any) -> None:
    """ECS Anywhere: a host that goes dark is `agentConnected: false` and its tasks stay
    RUNNING (ECS cannot reach it); the sandbox freezes the processes until it is back."""
    sandbox.label_all()
    definition = sandbox.register_task_definition("lost", ["sleep", "30"])
    arn = sandbox.start_task_on("bonus.host", definition)
    sandbox.wait_for_task(arn, "RUNNING")
    pid = int(sandbox.describe_task(arn)["containers"][0]["runtimeId"].removeprefix("sandbox-"))
    assert sandbox.lose_host("bonus.host") == [arn]
    task = sandbox.describe_task(arn)
    assert task["lastStatus"] == "RUNNING" and "stoppedReason" not in task
    assert os.path.exists(f"/proc/{pid}")  # frozen, not killed
    host = sandbox.host("bonus.host")
    instance = sandbox._internal("ecs").describe_container_instances(
        cluster=sandbox.cluster, containerInstances=[host.container_instance_arn]
    )["containerInstances"][0]
    assert instance["agentConnected"] is False
    sandbox.connect_agent("bonus.host")
    sandbox._internal("ecs").stop_task(cluster=sandbox.cluster, task=arn)
    assert sandbox.wait_for_task(arn)["containers"][0]["exitCode"] == 143


def test_lost_ec2_host_stops_its_tasks_without_exit_code(sandbox: Any) -> None:
    sandbox.label_all()
    definition = sandbox.register_task_definition("lost", ["sleep", "30"])
    arn = sandbox.start_task_on("bonus.host", definition)
    sandbox.wait_for_task(arn, "RUNNING")
    pid = int(sandbox.describe_task(arn)["containers"][0]["runtimeId"].removeprefix("sandbox-"))
    assert sandbox.lose_host("bonus.host", stopped=True) == [arn]
    task = sandbox.describe_task(arn)
    host = sandbox.host("bonus.host")
    assert task["lastStatus"] == "STOPPED" and task.get("stopCode") is None
    assert task["stoppedReason"] == f"Host EC2 (instance {host.instance_id}) stopped/terminated"
    assert "exitCode" not in task["containers"][0]
    deadline = time.monotonic() + 5
    while True:  # the process died with its host (it may linger a moment as a zombie)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        except ChildProcessError:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    instance = sandbox._internal("ecs").describe_container_instances(
        cluster=sandbox.cluster, containerInstances=[host.container_instance_arn]
    )["containerInstances"][0]
    assert instance["agentConnected"] is False
    assert world().runtimes == {}
