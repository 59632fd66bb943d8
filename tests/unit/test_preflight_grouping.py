"""Pre-flight's pure parts: excluded hosts grouped by reason (a refusal on a large fleet),
and the identity prefetch that keeps the journal's STS call off RunTask's way."""

from __future__ import annotations

import threading

import pytest

from residency_cli.dispatch import Prefetch
from residency_cli.results import (
    GROUP_HOSTS_ABOVE,
    Host,
    HostVerdict,
    WorkloadCheck,
    excluded_by_reason,
    named_few,
)


def _verdict(name: str, *reasons: str) -> HostVerdict:
    host = Host(
        container_instance_arn=f"arn:aws:ecs:eu-central-1:1:container-instance/c/{name}",
        container_instance_id=name,
        instance_id=None,
        hostname=name,
        location=None,
        status="ACTIVE",
        agent_connected=True,
        running_tasks=0,
        pending_tasks=0,
        cpu_available=None,
        memory_available=None,
    )
    return HostVerdict(host, list(reasons))


def _check(verdicts: list[HostVerdict]) -> WorkloadCheck:
    return WorkloadCheck(
        workload="bonus",
        task_definition="christmas-bonus",
        locations=["newyork"],
        expression="attribute:location == newyork",
        problems=[],
        hosts=verdicts,
        cpu=0,
        memory=0,
        container=None,
        log_configured=True,
    )


def test_excluded_hosts_are_grouped_largest_first() -> None:
    verdicts = [_verdict(f"off{i}", "agent disconnected") for i in range(5)]
    verdicts += [_verdict("full", "not enough CPU (0 free, 16 needed)"), _verdict("fine")]
    assert excluded_by_reason(verdicts) == [
        ("agent disconnected", [f"off{i}" for i in range(5)]),
        ("not enough CPU (0 free, 16 needed)", ["full"]),
    ]
    assert named_few(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"
    assert named_few(["a", "b"]) == "a, b"


def test_a_refusal_on_a_large_fleet_counts_instead_of_listing() -> None:
    many = [_verdict(f"h{i:02d}", "agent disconnected") for i in range(GROUP_HOSTS_ABOVE + 1)]
    assert _check(many).refusal.splitlines() == [
        "no compliant host for bonus (allowed: newyork)",
        f"  {GROUP_HOSTS_ABOVE + 1} host(s): agent disconnected (h00, h01, h02 and 18 more)",
    ]
    few = many[:2]
    assert _check(few).refusal.splitlines()[1:] == [
        "  h00: agent disconnected",
        "  h01: agent disconnected",
    ]


def test_prefetch_runs_once_in_a_thread_when_started_else_when_called() -> None:
    threads: list[str] = []

    def fetch() -> int:
        threads.append(threading.current_thread().name)
        return 42

    later = Prefetch(fetch)
    assert later() == 42 and later() == 42
    assert threads == [threading.current_thread().name]
    threads.clear()
    early = Prefetch(fetch)
    early.start()
    assert early() == 42 and early() == 42
    assert threads == ["residency-prefetch"]


def test_prefetch_raises_its_error_in_the_callers_thread() -> None:
    def broken() -> int:
        raise ValueError("no identity")

    failing = Prefetch(broken)
    failing.start()
    with pytest.raises(ValueError, match="no identity"):
        failing()
