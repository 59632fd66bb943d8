"""The data guard on the sandbox: labelled simulated hosts, the ACME jobs refusing data of
another location, `check` saying whether a workload is guarded, `audit` telling a task the
guard blocked from one that ran, and flagging overrides that widen the guard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from residency_cli.audit import audit
from residency_cli.dispatch import Dispatcher, RunOptions
from residency_cli.guarding import LABEL_FILE
from residency_cli.sandbox.seed import EXAMPLE_DIR, load_bundle
from residency_cli.waiting import PollPolicy

# Importing tests.support.etl puts etl/ on sys.path, where the image's guard is a plain module.
from tests.support.etl import OpenWatch  # inotify: was a file opened?

# isort: split
import residency_guard  # etl/'s guard, importable once tests.support.etl is imported

FRANKFURT_REPORT = ("acme-frankfurt-reports", "tax-amount/tax_amount.csv")

needs_etl = pytest.mark.skipif(
    not any(i.local.is_dir() for i in load_bundle(EXAMPLE_DIR / "residency.yaml").images.values()),
    reason="the ETL scripts (etl/) are not next to this checkout",
)


def _report(sandbox: Any) -> bytes:
    bucket, key = FRANKFURT_REPORT
    s3 = sandbox.client("s3", sandbox.buckets[bucket])
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: Any, sandbox: Any, *args: str) -> Any:
    from residency_cli.cli.app import main

    sandbox.use(monkeypatch)
    capsys.readouterr()
    code = main(["--sandbox", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_seeded_hosts_carry_their_location_on_their_data(sandbox: Any) -> None:
    for host in sandbox.hosts.values():
        assert residency_guard.read_label(str(host.data_dir)) == host.location
        # the sandbox keeps its files private (0600); a real host writes the label 0644
        assert (host.data_dir / LABEL_FILE).stat().st_mode & 0o777 == 0o600


def test_a_host_joined_with_residencys_activation_is_labelled(sandbox: Any) -> None:
    from tests.support.activation import create, join

    tagged = create(sandbox, Tags=[{"Key": "residency:location", "Value": "frankfurt"}])
    status, answer = join(sandbox, "fra2.host", tagged, attributes={"location": "frankfurt"})
    assert status == 200, answer
    data = sandbox.workdir / "hosts" / "fra2.host" / "data"
    assert residency_guard.read_label(str(data)) == "frankfurt"
    # An activation made some other way: the host joins, its data has no label (the guard
    # refuses every job there until someone labels it).
    plain = create(sandbox)
    status, answer = join(sandbox, "raw.host", plain, attributes={"location": "frankfurt"})
    assert status == 200, answer
    assert not (sandbox.workdir / "hosts" / "raw.host" / "data" / LABEL_FILE).exists()


@needs_etl
def test_tax_on_new_yorks_host_is_blocked_at_the_data(sandbox: Any) -> None:
    """StartTask puts tax-amount on bonus.host whatever the placement says (a console
    click): the job refuses New York's data before opening it, Frankfurt's report stays
    as it was, and audit says "blocked", not a violation that ran."""
    sandbox.label_all()
    good = sandbox.start_task_on("tax.host", sandbox.task_definitions["tax-amount"])
    assert sandbox.wait_for_task(good, timeout=60)["containers"][0]["exitCode"] == 0
    before = _report(sandbox)
    assert before == b"tax_amount\n557548\n"

    data_file = sandbox.host("bonus.host").data_dir / "employee_data.csv"
    watch = OpenWatch(data_file)
    task = sandbox.start_task_on("bonus.host", sandbox.task_definitions["tax-amount"])
    done = sandbox.wait_for_task(task, timeout=60)
    assert done["containers"][0]["exitCode"] == 77
    assert not watch.opened()
    watch.close()
    assert _report(sandbox) == before
    (line,) = sandbox.log_messages(task)
    assert line == (
        f"residency-guard: refused to read '{data_file.parent}' on host 'bonus.host': the data's "
        "label is not an allowed location (label: newyork; allowed: frankfurt)"
    )

    clients = sandbox.clients()
    findings = {f.task_arn: f for f in audit(clients.ecs, clients.ssm, sandbox.config)}
    blocked = findings[task]
    assert (blocked.verdict, blocked.blocked_at_data, blocked.host) == (
        "blocked",
        True,
        "bonus.host",
    )
    assert blocked.reason is not None
    assert blocked.reason.startswith("blocked at the data: the job's guard refused it (exit 77)")
    assert "outside frankfurt" in blocked.reason
    assert findings[good].verdict == "compliant"


@needs_etl
def test_audit_flags_overrides_that_widen_the_guard(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A task on the right host, but told that New York's data is fine too: it ran (the data
    was Frankfurt's), and audit still flags the bypass; `run`'s own override is compliant."""
    sandbox.label_all()
    ecs = sandbox.client("ecs")
    widened = ecs.run_task(
        cluster=sandbox.cluster,
        taskDefinition="tax-amount",
        launchType="EXTERNAL",
        placementConstraints=[
            {"type": "memberOf", "expression": "attribute:location == frankfurt"}],
        overrides={"containerOverrides": [{"name": "tax_amount", "environment": [
            {"name": "RESIDENCY_ALLOWED_LOCATIONS", "value": "frankfurt,newyork"}]}]},
    )["tasks"][0]["taskArn"]  # fmt: skip
    assert sandbox.wait_for_task(widened, timeout=60)["containers"][0]["exitCode"] == 0
    clients = sandbox.clients()
    dispatcher = Dispatcher.create(
        clients, sandbox.config,
        policy=PollPolicy(describe_floor=0.05, describe_ceiling=0.2), drain_grace=0.2,
    )  # fmt: skip
    ran = dispatcher.run("tax", RunOptions(run_id="guarded"), follow=False, timeout=60)
    assert ran.outcome == "succeeded"

    code, out, err = _cli(monkeypatch, capsys, sandbox, "audit", "-o", "json")
    assert code == 4, err
    findings = {f["task_arn"]: f for f in json.loads(out)}
    flagged = findings[widened]
    assert flagged["verdict"] == "guard-overridden" and flagged["blocked_at_data"] is False
    assert flagged["guard_override"] == (
        "overrides of container tax_amount set RESIDENCY_ALLOWED_LOCATIONS=frankfurt,newyork: "
        "the data guard was told to allow newyork, outside frankfurt"
    )
    assert findings[ran.tasks[0].task_arn]["verdict"] == "compliant"
    assert findings[ran.tasks[0].task_arn]["guard_override"] is None
    code, out, err = _cli(monkeypatch, capsys, sandbox, "audit")
    assert code == 4
    assert "GUARD OVERRIDDEN: overrides of container tax_amount" in out
    assert "1 guard overridden" in out
    assert "error: 1 task(s) with overrides that widen the data guard: " in err


def test_check_says_whether_each_workload_is_guarded(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sandbox.label_all()
    code, out, err = _cli(monkeypatch, capsys, sandbox, "check", "-o", "json")
    assert code == 0, err
    guards = {c["workload"]: c["guard"] for c in json.loads(out)}
    assert guards == {
        "bonus": {"enforced": ["newyork"], "source": "environment", "matches_map": True,
                  "warning": None},
        "tax": {"enforced": ["frankfurt"], "source": "environment", "matches_map": True,
                "warning": None},
    }  # fmt: skip
    code, out, _ = _cli(monkeypatch, capsys, sandbox, "check", "tax")
    assert code == 0 and "data guard: enforces frankfurt, as the map" in out

    # A new revision that drops the variable: still ready (run passes the map's locations),
    # with a warning for every other way of starting it.
    definition = sandbox.client("ecs").describe_task_definition(taskDefinition="tax-amount")
    registered = definition["taskDefinition"]
    container = registered["containerDefinitions"][0]
    container["environment"] = [
        e for e in container["environment"] if e["name"] != "RESIDENCY_ALLOWED_LOCATIONS"
    ]
    keep = ("family", "containerDefinitions", "volumes", "requiresCompatibilities",
            "networkMode", "cpu", "memory", "executionRoleArn")  # fmt: skip
    sandbox.client("ecs").register_task_definition(**{k: registered[k] for k in keep})
    code, out, err = _cli(monkeypatch, capsys, sandbox, "check", "tax", "-o", "json")
    assert code == 0, err
    (tax,) = json.loads(out)
    assert tax["ready"] is True
    assert tax["guard"]["enforced"] is None and tax["guard"]["matches_map"] is False
    code, out, _ = _cli(monkeypatch, capsys, sandbox, "check", "tax")
    assert code == 0
    assert "! data guard: the task definition enforces no data guard locations" in out
    assert "set RESIDENCY_ALLOWED_LOCATIONS=frankfurt in container tax_amount's" in out


def test_run_refuses_env_that_would_widen_the_guard(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sandbox.label_all()
    for args in (["--dry-run"], []):
        code, out, err = _cli(
            monkeypatch, capsys, sandbox,
            "run", "tax", "--env", "RESIDENCY_ALLOWED_LOCATIONS=frankfurt,newyork", *args,
        )  # fmt: skip
        assert code == 2, err
        assert "Traceback" not in err and out == ""
        assert "RESIDENCY_ALLOWED_LOCATIONS='frankfurt,newyork' would let the data guard" in err
    assert sandbox.calls("RunTask") == 0
    # The map's own list, in any order, is no change: the dry run shows the override.
    code, out, err = _cli(monkeypatch, capsys, sandbox, "run", "tax", "--dry-run", "-o", "json",
                          "--env", "RESIDENCY_ALLOWED_LOCATIONS=frankfurt")  # fmt: skip
    assert code == 0, err
    (override,) = json.loads(out)["request"]["overrides"]["containerOverrides"]
    assert override == {
        "name": "tax_amount",
        "environment": [{"name": "RESIDENCY_ALLOWED_LOCATIONS", "value": "frankfurt"}],
    }
