"""`check` on a large fleet (issue 17): above 20 hosts the text groups the excluded hosts by
reason with counts and the first few names; `--all-hosts` lists each; JSON keeps every host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import cli
from tests.support.moto_cluster import MotoCluster, register_bonus


def _fleet(moto_cluster: MotoCluster) -> None:
    register_bonus(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    for index in range(22):
        moto_cluster.add_host(f"eu{index}", "frankfurt")
    moto_cluster.add_host("bare")


def test_check_groups_a_large_fleet_by_reason(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(moto_cluster)
    code, out, err = cli(capsys, "-c", str(map_path), "check", "bonus")
    assert code == 0, err
    rows = [line for line in out.splitlines() if "│" in line or "|" in line]
    assert any(
        "22" in row and "location frankfurt, not newyork or sanfrancisco" in row for row in rows
    )
    assert any(row.split()[1:4] == ["1", "│", "yes"] for row in rows)
    assert any("no location attribute" in row for row in rows)
    assert "and 19 more" in out
    assert "24 hosts, grouped by reason; --all-hosts lists each one" in err


def test_check_all_hosts_lists_each_and_json_keeps_every_host(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fleet(moto_cluster)
    code, out, _ = cli(capsys, "-c", str(map_path), "check", "bonus", "--all-hosts")
    assert code == 0
    assert out.count("location frankfurt, not newyork or sanfrancisco") == 22
    code, out, _ = cli(capsys, "-c", str(map_path), "check", "bonus", "-o", "json")
    (result,) = json.loads(out)
    assert len(result["hosts"]) == 24
    assert set(result["hosts"][0]) == {
        "container_instance_arn",
        "instance_id",
        "hostname",
        "location",
        "compliant",
        "reasons",
    }
