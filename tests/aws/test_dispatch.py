"""Dispatch against stock moto: a control plane that misplaces tasks (DESIGN.md), which is
exactly the adversary placement verification exists for."""

from __future__ import annotations

from residency_cli.dispatch import Dispatcher, RunOptions, aws_cli_command, client_token
from tests.support.clock import FakeClock
from tests.support.moto_cluster import REGION, CountingEcs, MotoCluster, register_bonus


def _dispatcher(moto_cluster: MotoCluster, clock: FakeClock) -> Dispatcher:
    return Dispatcher(
        CountingEcs(moto_cluster.ecs),
        None,
        moto_cluster.config,
        sleep=clock.sleep,
        now=clock.now,  # type: ignore[arg-type]
    )


def test_misplaced_task_is_stopped_and_reported_as_violation(
    moto_cluster: MotoCluster, manual_tasks: None
) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host(
        "eu", "frankfurt"
    )  # moto places on the first host, whatever the constraint
    moto_cluster.add_host("us", "newyork")
    clock = FakeClock(t=1000.0)
    dispatcher = _dispatcher(moto_cluster, clock)
    result = dispatcher.run("bonus", RunOptions(run_id="r1"))
    assert result.outcome == "violation"
    task = result.primary
    assert task.host is not None and task.host.location == "frankfurt"
    assert "outside newyork, sanfrancisco" in (task.message or "")
    described = moto_cluster.ecs.describe_tasks(cluster="acme-etl", tasks=[task.task_arn])["tasks"][
        0
    ]
    assert described["desiredStatus"] == "STOPPED"
    assert dispatcher.ecs.calls["stop_task"] == 1  # type: ignore[attr-defined]


def test_no_compliant_host_refuses_without_run_task(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("eu", "frankfurt")
    moto_cluster.add_host("unlabelled")
    dispatcher = _dispatcher(moto_cluster, FakeClock(t=1000.0))
    result = dispatcher.run("bonus", RunOptions(run_id="r1"))
    assert result.outcome == "refused"
    assert "location frankfurt, not newyork or sanfrancisco" in (result.message or "")
    assert "no location attribute" in (result.message or "")
    assert dispatcher.ecs.calls.get("run_task", 0) == 0  # type: ignore[attr-defined]
    assert moto_cluster.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []


def test_missing_task_definition_refuses(moto_cluster: MotoCluster) -> None:
    moto_cluster.add_host("us", "newyork")
    result = _dispatcher(moto_cluster, FakeClock(t=1000.0)).run("bonus", RunOptions(run_id="r1"))
    assert result.outcome == "refused" and "does not exist" in (result.message or "")


def test_draining_and_disconnected_hosts_are_excluded_with_reasons(
    moto_cluster: MotoCluster,
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    register_bonus(moto_cluster)
    draining = moto_cluster.add_draining_host("us", "newyork")
    disconnected = moto_cluster.add_host("sf", "sanfrancisco")
    # The ECS API cannot disconnect an agent: reach into moto's model, as the sandbox does.
    instances = ecs_backends[DEFAULT_ACCOUNT_ID][REGION].container_instances["acme-etl"]
    instances[disconnected.rsplit("/", 1)[-1]].agent_connected = False
    result = _dispatcher(moto_cluster, FakeClock(t=1000.0)).dry_run("bonus", RunOptions(run_id="r"))
    assert not result.check.ready
    reasons = {v.host.container_instance_arn: v.reasons for v in result.check.hosts}
    assert reasons == {
        draining: ["status DRAINING, not ACTIVE"],
        disconnected: ["agent disconnected"],
    }


def test_success_waits_until_stopped(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    clock = FakeClock(t=1000.0)
    dispatcher = _dispatcher(moto_cluster, clock)
    result = dispatcher.run("bonus", RunOptions(run_id="ok"))
    assert result.outcome == "succeeded"
    task = result.primary
    assert (task.status, task.exit_code, task.run_id) == ("STOPPED", 0, "ok")
    assert task.host is not None and task.host.location == "newyork"
    assert all(pause >= 1.0 for pause in clock.sleeps)  # never more than one DescribeTasks a second


def test_no_wait_reports_dispatched(moto_cluster: MotoCluster, manual_tasks: None) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    result = _dispatcher(moto_cluster, FakeClock(t=1000.0)).run(
        "bonus", RunOptions(run_id="nw"), wait=False
    )
    assert result.outcome == "dispatched" and result.primary.task_arn


def test_timeout_leaves_task_running(moto_cluster: MotoCluster, manual_tasks: None) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    clock = FakeClock(t=1000.0)
    result = _dispatcher(moto_cluster, clock).run("bonus", RunOptions(run_id="t"), timeout=30)
    assert result.outcome == "timeout"
    assert 30 <= clock.t - 1000.0 < 31
    described = moto_cluster.ecs.describe_tasks(cluster="acme-etl", tasks=[result.primary.task_arn])
    assert described["tasks"][0]["desiredStatus"] == "RUNNING"


def test_ctrl_c_while_waiting_is_interrupted(moto_cluster: MotoCluster, manual_tasks: None) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    clock = FakeClock(t=1000.0)

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    dispatcher = Dispatcher(
        moto_cluster.ecs, None, moto_cluster.config, sleep=interrupt, now=clock.now
    )
    result = dispatcher.run("bonus", RunOptions(run_id="i"))
    assert result.outcome == "interrupted" and result.primary.task_id


def test_ten_tasks_are_waited_on_with_one_describe_per_poll(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    clock = FakeClock(t=1000.0)
    dispatcher = _dispatcher(moto_cluster, clock)
    result = dispatcher.run("bonus", RunOptions(run_id="ten", count=10))
    assert len(result.tasks) == 10 and result.outcome == "succeeded"
    calls = dispatcher.ecs.calls  # type: ignore[attr-defined]
    polls = len(clock.sleeps)  # the first look is one interval after RunTask, then one per tick
    assert calls["describe_tasks"] == polls


def test_ecs_failures_are_a_refusal_in_plain_words(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    ecs = CountingEcs(moto_cluster.ecs)
    ecs.run_task = lambda **_: {  # type: ignore[method-assign]
        "tasks": [],
        "failures": [{"arn": "x", "reason": "MemberOf placement constraint unsatisfied."}],
    }
    dispatcher = Dispatcher(
        ecs, None, moto_cluster.config, sleep=FakeClock(t=1000.0).sleep, now=FakeClock(t=1000.0).now
    )  # type: ignore[arg-type]
    result = dispatcher.run("bonus", RunOptions(run_id="f"))
    assert result.outcome == "refused"
    assert result.message == (
        "no ACTIVE host in the cluster satisfies the placement (a host may have drained or "
        "lost its label since pre-flight) (ECS: MemberOf placement constraint unsatisfied.)"
    )


def test_dry_run_request_is_exact_and_changes_nothing(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    plan = _dispatcher(moto_cluster, FakeClock(t=1000.0)).dry_run(
        "bonus", RunOptions(run_id="dr", env={"A": "1"})
    )
    assert plan.request == {
        "cluster": "acme-etl",
        "taskDefinition": "christmas-bonus",
        "launchType": "EXTERNAL",
        "count": 1,
        "placementConstraints": [
            {"type": "memberOf", "expression": "attribute:location in [newyork, sanfrancisco]"}
        ],
        "startedBy": "residency",
        "tags": [
            {"key": "residency:workload", "value": "bonus"},
            {"key": "residency:location", "value": "newyork sanfrancisco"},
            {"key": "residency:run-id", "value": "dr"},
        ],
        "clientToken": client_token("acme-etl", "bonus", "dr"),
        "overrides": {
            "containerOverrides": [
                {
                    "name": "christmas_bonus",
                    "environment": [
                        {"name": "A", "value": "1"},
                        # The map's locations, for the jobs' data guard (docs/enforcement.md).
                        {"name": "RESIDENCY_ALLOWED_LOCATIONS", "value": "newyork,sanfrancisco"},
                    ],
                }
            ]
        },
    }
    assert moto_cluster.ecs.list_tasks(cluster="acme-etl")["taskArns"] == []
    line = aws_cli_command(plan.request, "eu-central-1")
    assert line.startswith("aws ecs run-task --region eu-central-1 --cluster acme-etl")
    assert '--placement-constraints \'[{"type":"memberOf"' in line


def test_client_token_is_stable_and_short() -> None:
    token = client_token("acme-etl", "bonus", "x" * 64)
    assert token == client_token("acme-etl", "bonus", "x" * 64)
    assert token != client_token("acme-etl", "tax", "x" * 64)
    assert len(token) <= 64
