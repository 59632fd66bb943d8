"""The ACME example on the sandbox: the ETL jobs run on their simulated hosts, and the CLI
reaches the in-process sandbox through `--sandbox`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from residency_cli.sandbox.seed import EXAMPLE_DIR, load_bundle


def test_example_is_seeded(sandbox: Any) -> None:
    assert sandbox.config.cluster == "acme-etl" and sandbox.region == "eu-central-1"
    assert {h: s.location for h, s in sandbox.hosts.items()} == {
        "bonus.host": "newyork",
        "tax.host": "frankfurt",
    }
    assert set(sandbox.task_definitions) == {"christmas-bonus", "tax-amount"}
    assert sandbox.buckets == {
        "acme-newyork-reports": "us-east-1",
        "acme-frankfurt-reports": "eu-central-1",
    }
    for host in sandbox.hosts.values():
        assert (
            (host.data_dir / "employee_data.csv")
            .read_text()
            .startswith("id;first_name;last_name;yearly_salary\n")
        )


@pytest.mark.parametrize(
    ("workload", "hostname", "bucket", "key"),
    [
        ("bonus", "bonus.host", "acme-newyork-reports", "christmas-bonus/christmas_bonus.csv"),
        ("tax", "tax.host", "acme-frankfurt-reports", "tax-amount/tax_amount.csv"),
    ],
)
def test_etl_job_runs_on_its_host(
    sandbox: Any, workload: str, hostname: str, bucket: str, key: str
) -> None:
    if not any(
        image.local.is_dir()
        for image in load_bundle(EXAMPLE_DIR / "residency.yaml").images.values()
    ):
        pytest.skip("the ETL scripts (etl/) are not next to this checkout")
    sandbox.label_all()
    spec = sandbox.config.workloads[workload]
    task = sandbox.client("ecs").run_task(
        cluster=sandbox.cluster,
        taskDefinition=spec.task_definition,
        launchType="EXTERNAL",
        placementConstraints=[
            {"type": "memberOf", "expression": f"attribute:location == {spec.locations[0]}"}
        ],
    )["tasks"][0]
    done = sandbox.wait_for_task(task["taskArn"], timeout=30)
    messages = sandbox.log_messages(task["taskArn"])
    assert done["containers"][0]["exitCode"] == 0, messages
    assert f"Running on host '{hostname}'" in messages[0]
    assert sandbox.s3_keys(bucket) == [key]


def test_cli_reaches_the_fixture_with_sandbox_flag(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from residency_cli.cli.app import main

    sandbox.use(monkeypatch)
    assert main(["--sandbox", "register-host", "bonus.host", "--location", "newyork"]) == 0
    capsys.readouterr()
    assert main(["--sandbox", "hosts", "-o", "json"]) == 0
    hosts = {h["hostname"]: h["location"] for h in json.loads(capsys.readouterr().out)}
    assert hosts == {"bonus.host": "newyork", "tax.host": None}
    assert main(["--endpoint-url", sandbox.endpoint, "hosts", "-o", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
