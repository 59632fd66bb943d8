"""Audit against stock moto: its RunTask ignores placement, so it plants a violation."""

from __future__ import annotations

from residency_cli.audit import audit
from tests.support.moto_cluster import MotoCluster, register_bonus


def test_audit_finds_a_task_stock_moto_misplaced(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("eu", "frankfurt")
    moto_cluster.add_host("us", "newyork")
    moto_cluster.ecs.run_task(
        cluster="acme-etl",
        taskDefinition="christmas-bonus",
        launchType="EXTERNAL",
        placementConstraints=[{"type": "memberOf", "expression": "attribute:location == newyork"}],
    )
    (finding,) = audit(moto_cluster.ecs, None, moto_cluster.config)
    assert finding.verdict == "violation" and finding.location_now == "frankfurt"
    assert finding.workload == "bonus"
