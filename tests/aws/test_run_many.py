"""`Dispatcher.run_many` against stock moto, with the fake clock: several workloads in one
waiting loop (one DescribeTasks per tick for all of them), and a control plane that ignores
placement (moto puts every task on its first host) caught for one workload while the other
goes on."""

from __future__ import annotations

from residency_cli.dispatch import Dispatcher, RunOptions
from tests.support.clock import FakeClock
from tests.support.moto_cluster import CountingEcs, MotoCluster, register_bonus


def _dispatcher(moto_cluster: MotoCluster, clock: FakeClock) -> Dispatcher:
    return Dispatcher(
        CountingEcs(moto_cluster.ecs),  # type: ignore[arg-type]
        None,
        moto_cluster.config,
        sleep=clock.sleep,
        now=clock.now,
        journal=None,
    )


def test_two_workloads_are_waited_on_with_one_describe_per_tick(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    register_bonus(moto_cluster, family="tax-amount")
    moto_cluster.add_host("us", "newyork")  # moto's first host: where it puts every task
    moto_cluster.add_host("eu", "frankfurt")
    clock = FakeClock(t=1000.0)
    dispatcher = _dispatcher(moto_cluster, clock)

    results = dispatcher.run_many(["bonus", "tax"], RunOptions(run_id="two", count=2))

    assert [r.outcome for r in results.runs] == ["succeeded", "violation"]
    assert results.exit_code() == 4  # the violation decides
    assert all(t.host and t.host.location == "newyork" for r in results.runs for t in r.tasks)
    calls = dispatcher.ecs.calls  # type: ignore[attr-defined]
    assert calls["run_task"] == 2 and calls["stop_task"] == 2  # both misplaced tax tasks
    # One loop for the four tasks: one DescribeTasks per tick, never one per workload.
    assert calls["describe_tasks"] == len(clock.sleeps)
    assert all(pause >= 1.0 for pause in clock.sleeps)


def test_one_refused_workload_dispatches_none(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)  # tax-amount is not registered: tax is refused
    moto_cluster.add_host("us", "newyork")
    dispatcher = _dispatcher(moto_cluster, FakeClock(t=1000.0))
    results = dispatcher.run_many(["bonus", "tax"], RunOptions(run_id="none"))
    assert [r.outcome for r in results.runs] == ["refused", "refused"]
    assert "does not exist" in (results.runs[1].message or "")
    assert results.runs[0].message == (
        "not dispatched: tax refused (several workloads: all or none)"
    )
    assert dispatcher.ecs.calls.get("run_task", 0) == 0  # type: ignore[attr-defined]
    assert results.exit_code() == 3
