"""Pre-flight whatever the fleet's size (issue 17): `run` and `hosts --location` ask ECS for
the hosts the placement admits only, and the number of calls is pinned.

Stock moto ignores ListContainerInstances' `filter` (moto 5.2.5: "The filter-parameter
(cluster query language) is not yet implemented") and answers every ARN in one page, but
honours `status`. Pre-flight judges every listed host with `placement.evaluate` again, so on
stock moto a host of another location is listed and excluded with its reason; the requests
themselves are pinned here. The sandbox honours `filter` and pages at 100 as ECS does: the
call counts at scale are pinned against it.
"""

from __future__ import annotations

from typing import Any

from residency_cli.config import parse_config
from residency_cli.dispatch import Dispatcher, RunOptions, preflight
from residency_cli.hosts import list_hosts
from tests.support.clock import FakeClock
from tests.support.moto_cluster import MAP, CountingEcs, MotoCluster, register_bonus

BONUS = "attribute:location in [newyork, sanfrancisco]"


def _listings(ecs: CountingEcs) -> list[dict[str, Any]]:
    return [kwargs for name, kwargs in ecs.requests if name == "list_container_instances"]


def test_run_asks_ecs_for_the_workloads_active_hosts_only(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    us = moto_cluster.add_host("us", "newyork")
    moto_cluster.add_host("eu", "frankfurt")
    ecs = CountingEcs(moto_cluster.ecs)
    dispatcher = Dispatcher(ecs, None, moto_cluster.config, journal=None)  # type: ignore[arg-type]
    plan = dispatcher.dry_run("bonus", RunOptions(run_id="scale"))
    assert plan.check.ready
    assert _listings(ecs) == [{"cluster": "acme-etl", "filter": BONUS, "status": "ACTIVE"}]
    assert ecs.calls == {
        "describe_task_definition": 1,
        "list_container_instances": 1,
        "describe_container_instances": 1,
    }
    # Stock moto listed the frankfurt host too: judged again, it is excluded with its reason.
    reasons = {v.host.container_instance_arn: v.reasons for v in plan.check.hosts}
    assert reasons[us] == []
    assert [r for arn, r in reasons.items() if arn != us] == [
        ["location frankfurt, not newyork or sanfrancisco"]
    ]


def test_a_host_the_filter_admits_but_the_map_contradicts_is_excluded(
    moto_cluster: MotoCluster,
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    declared = MAP.replace(
        "  tax.host: frankfurt\n", f"  {moto_cluster.ec2_ids['us']}: frankfurt\n"
    )
    config = parse_config(declared, "residency.yaml")
    checked = preflight(moto_cluster.ecs, None, config, "bonus")
    assert not checked.ready
    assert [v.reasons for v in checked.hosts] == [["label newyork contradicts the map (frankfurt)"]]


def test_hosts_of_one_location_are_listed_with_the_location_as_filter(
    moto_cluster: MotoCluster,
) -> None:
    moto_cluster.add_host("us", "newyork")
    moto_cluster.add_host("eu", "frankfurt")
    ecs = CountingEcs(moto_cluster.ecs)
    found = list_hosts(ecs, None, moto_cluster.config, "frankfurt")  # type: ignore[arg-type]
    assert [h.location for h in found] == ["frankfurt"]
    assert _listings(ecs) == [{"cluster": "acme-etl", "filter": "attribute:location == frankfurt"}]
    assert ecs.calls == {"list_container_instances": 1, "describe_container_instances": 1}


def test_refusal_with_no_active_host_of_the_location_says_why_in_few_calls(
    moto_cluster: MotoCluster,
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_draining_host("us", "newyork")
    ecs = CountingEcs(moto_cluster.ecs)
    dispatcher = Dispatcher(
        ecs,  # type: ignore[arg-type]
        None,
        moto_cluster.config,
        sleep=FakeClock().sleep,
        journal=None,
    )
    result = dispatcher.run("bonus", RunOptions(run_id="none"))
    assert result.outcome == "refused"
    assert "status DRAINING, not ACTIVE" in (result.message or "")
    # ACTIVE hosts of the placement, then the same without `status` (the draining one).
    assert _listings(ecs) == [
        {"cluster": "acme-etl", "filter": BONUS, "status": "ACTIVE"},
        {"cluster": "acme-etl", "filter": BONUS},
    ]
    assert ecs.calls.get("run_task", 0) == 0
    assert ecs.calls["describe_container_instances"] == 1


def test_an_empty_cluster_is_told_from_one_without_the_location(
    moto_cluster: MotoCluster,
) -> None:
    register_bonus(moto_cluster)
    checked = preflight(moto_cluster.ecs, None, moto_cluster.config, "bonus")
    assert checked.refusal.splitlines() == [
        "the cluster has no container instances",
        "no compliant host for bonus (allowed: newyork, sanfrancisco)",
    ]


# --- the sandbox: `filter` honoured, pages of 100 ---------------------------------------


def _fleet(sandbox: Any, count: int) -> None:
    """`count` hosts in ten locations, newyork and frankfurt among them (a tenth each)."""
    sandbox.label_all()
    others = [f"elsewhere{i}" for i in range(8)]
    sandbox.add_fleet(count, ["newyork", "frankfurt", *others])


def _connected(sandbox: Any, location: str, connected: bool) -> int:
    """Set the agent of every host labelled `location`; how many there are."""
    from moto.ecs.models import ecs_backends

    from residency_cli.sandbox.world import ACCOUNT_ID, world

    instances = ecs_backends[ACCOUNT_ID][sandbox.region].container_instances[sandbox.cluster]
    found = [i for i in instances.values() if i.attributes.get("location") == location]
    with world().lock:
        for instance in found:
            instance.agent_connected = connected
    return len(found)


def test_preflight_calls_do_not_grow_with_the_fleet(sandbox: Any) -> None:
    _fleet(sandbox, 500)  # 51 newyork hosts of 502
    clients = sandbox.clients()
    sandbox.reset_calls()
    plan = Dispatcher.create(clients, sandbox.config, journal=None).dry_run(
        "bonus", RunOptions(run_id="scale")
    )
    assert plan.check.ready and len(plan.check.hosts) == 51
    assert sandbox.call_counts() == {
        "ecs:DescribeContainerInstances": 1,
        "ecs:DescribeTaskDefinition": 1,
        "ecs:ListContainerInstances": 1,
        "ssm:DescribeInstanceInformation": 2,  # SSM names 50 instances a call
    }


def test_hosts_location_calls_do_not_grow_with_the_fleet(sandbox: Any) -> None:
    _fleet(sandbox, 500)
    clients = sandbox.clients()
    sandbox.reset_calls()
    found = list_hosts(clients.ecs, clients.ssm, sandbox.config, "frankfurt")
    assert len(found) == 51 and {h.location for h in found} == {"frankfurt"}
    assert sandbox.call_counts() == {
        "ecs:DescribeContainerInstances": 1,
        "ecs:ListContainerInstances": 1,
        "ssm:DescribeInstanceInformation": 2,
    }


def test_run_stops_listing_at_the_first_page_with_a_compliant_host(sandbox: Any) -> None:
    _fleet(sandbox, 2000)  # 201 newyork hosts: three pages of ListContainerInstances
    clients = sandbox.clients()
    sandbox.reset_calls()
    checked = preflight(clients.ecs, clients.ssm, sandbox.config, "bonus")
    assert checked.ready and len(checked.hosts) == 100
    assert sandbox.calls("ecs:ListContainerInstances") == 1
    assert sandbox.calls("ecs:DescribeContainerInstances") == 1


def test_all_disconnected_is_one_grouped_reason(sandbox: Any) -> None:
    _fleet(sandbox, 240)  # 25 newyork hosts
    assert _connected(sandbox, "newyork", False) == 25
    clients = sandbox.clients()
    sandbox.reset_calls()
    checked = preflight(clients.ecs, clients.ssm, sandbox.config, "bonus")
    assert not checked.ready
    lines = checked.refusal.splitlines()
    assert lines[0] == "no compliant host for bonus (allowed: newyork)"
    assert lines[1].startswith("  25 host(s): agent disconnected (")
    assert lines[1].endswith(" and 22 more)") and len(lines) == 2
    # the ACTIVE hosts of newyork, then the same in any status (no other): 2 listings
    assert sandbox.calls("ecs:ListContainerInstances") == 2
    assert sandbox.calls("ecs:DescribeContainerInstances") == 1


def test_no_host_in_the_location_names_the_unlabelled_ones_not_the_fleet(sandbox: Any) -> None:
    sandbox.label_all()
    sandbox.add_fleet(300, [f"elsewhere{i}" for i in range(8)])
    sandbox.label("bonus.host", None)
    clients = sandbox.clients()
    sandbox.reset_calls()
    checked = preflight(clients.ecs, clients.ssm, sandbox.config, "bonus")
    assert not checked.ready
    assert checked.refusal.splitlines() == [
        "no host of cluster acme-etl is labelled location=newyork",
        "no compliant host for bonus (allowed: newyork)",
        "  bonus.host: no location attribute, not newyork",
    ]
    # ACTIVE ones, any status, the unlabelled ones (one page): no fleet described
    assert sandbox.calls("ecs:ListContainerInstances") == 3
    assert sandbox.calls("ecs:DescribeContainerInstances") == 1


def test_a_missing_task_definition_does_not_hide_why_no_host_fits(
    moto_cluster: MotoCluster,
) -> None:
    moto_cluster.add_host("eu", "frankfurt")
    checked = preflight(moto_cluster.ecs, None, moto_cluster.config, "bonus")
    lines = checked.refusal.splitlines()
    assert lines[0] == "task definition christmas-bonus does not exist: register it first"
    assert lines[-1].endswith(": location frankfurt, not newyork or sanfrancisco")
    assert "the cluster has no container instances" not in lines


def _instance(index: int, location: str) -> dict[str, Any]:
    return {
        "containerInstanceArn": f"arn:aws:ecs:eu-central-1:123456789012:container-instance/"
        f"acme-etl/{index:032x}",
        "ec2InstanceId": f"mi-{index:017x}",
        "status": "ACTIVE",
        "agentConnected": True,
        "runningTasksCount": 0,
        "pendingTasksCount": 0,
        "attributes": [{"name": "location", "value": location}],
        "remainingResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 2048},
        ],
    }


def test_hosts_of_a_location_follow_next_token_page_by_page(moto_cluster: MotoCluster) -> None:
    """ListContainerInstances answers at most 100 ARNs with a `nextToken` for the rest
    (Model); each page is described as it comes (at most 100 ARNs a DescribeContainerInstances).
    The Stubber checks the requests and answers against botocore's ECS service model."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "ecs", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    first, second = _instance(1, "frankfurt"), _instance(2, "frankfurt")
    wanted = {"cluster": "acme-etl", "filter": "attribute:location == frankfurt"}
    with Stubber(client) as stubber:
        for page, token, after in ((first, None, "page-2"), (second, "page-2", None)):
            answer: dict[str, Any] = {"containerInstanceArns": [page["containerInstanceArn"]]}
            if after:
                answer["nextToken"] = after
            stubber.add_response(
                "list_container_instances",
                answer,
                {**wanted, **({"nextToken": token} if token else {})},
            )
            stubber.add_response(
                "describe_container_instances",
                {"containerInstances": [page], "failures": []},
                {"cluster": "acme-etl", "containerInstances": [page["containerInstanceArn"]]},
            )
        found = list_hosts(client, None, moto_cluster.config, "frankfurt")
        stubber.assert_no_pending_responses()
    assert [h.instance_id for h in found] == ["mi-00000000000000001", "mi-00000000000000002"]
