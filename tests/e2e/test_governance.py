"""`hosts sync` and `audit` end to end on the sandbox."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from residency_cli.audit import audit
from residency_cli.cli.app import main
from residency_cli.config import parse_config
from residency_cli.dispatch import RunOptions
from residency_cli.errors import RefusedError, UsageError
from residency_cli.hosts import sync_hosts
from tests.support.world import World


def _locations(world: World) -> dict[str, str | None]:
    from residency_cli.hosts import list_hosts

    clients = world.sandbox.clients()
    return {
        h.hostname or "": h.location for h in list_hosts(clients.ecs, clients.ssm, world.config)
    }


def _unlabel_all(world: World) -> None:
    for hostname in ("bonus.host", "tax.host"):
        world.sandbox.label(hostname, None)


def test_sync_plans_then_applies_the_declared_labels(world: World) -> None:
    _unlabel_all(world)
    clients = world.sandbox.clients()
    plan = sync_hosts(clients.ecs, clients.ssm, world.config, dry_run=True)
    assert sorted((s.action, s.host.hostname, s.location) for s in plan.steps) == [
        ("add", "bonus.host", "newyork"),
        ("add", "tax.host", "frankfurt"),
    ]
    assert _locations(world) == {"bonus.host": None, "tax.host": None}
    applied = sync_hosts(clients.ecs, clients.ssm, world.config)
    assert applied.applied
    assert _locations(world) == {"bonus.host": "newyork", "tax.host": "frankfurt"}
    again = sync_hosts(clients.ecs, clients.ssm, world.config)
    assert again.steps == [] and sorted(again.unchanged) == ["bonus.host", "tax.host"]


def test_sync_refuses_to_strip_the_last_host_of_a_used_location(
    world: World, tmp_path: Path
) -> None:
    text = world.map_path.read_text(encoding="utf-8").replace("  tax.host: frankfurt\n", "")
    config = parse_config(text, "partial.yaml")
    clients = world.sandbox.clients()
    with pytest.raises(RefusedError, match="last host of frankfurt"):
        sync_hosts(clients.ecs, clients.ssm, config)
    assert _locations(world)["tax.host"] == "frankfurt"
    forced = sync_hosts(clients.ecs, clients.ssm, config, force=True)
    assert [(s.action, s.host.hostname) for s in forced.steps] == [("remove", "tax.host")]
    assert _locations(world)["tax.host"] is None


def test_sync_with_an_unknown_declared_host_changes_nothing(world: World) -> None:
    _unlabel_all(world)
    text = world.map_path.read_text(encoding="utf-8").replace(
        "tax.host: frankfurt", "tax.hots: frankfurt"
    )
    config = parse_config(text, "typo.yaml")
    clients = world.sandbox.clients()
    with pytest.raises(UsageError, match=r"tax\.hots"):
        sync_hosts(clients.ecs, clients.ssm, config)
    assert _locations(world) == {"bonus.host": None, "tax.host": None}


def test_sync_never_moves_a_host_under_a_running_task(world: World) -> None:
    world.dispatcher().run("slow", RunOptions(run_id="busy"), wait=False)
    text = world.map_path.read_text(encoding="utf-8").replace(
        "bonus.host: newyork", "bonus.host: frankfurt"
    )
    config = parse_config(text, "moved.yaml")
    clients = world.sandbox.clients()
    with pytest.raises(RefusedError, match="runs slow"):
        sync_hosts(clients.ecs, clients.ssm, config, force=True)
    assert _locations(world)["bonus.host"] == "newyork"


def test_audit_is_clean_after_residency_runs(world: World) -> None:
    world.dispatcher().run("hello", RunOptions(run_id="clean"))
    clients = world.sandbox.clients()
    (finding,) = audit(clients.ecs, clients.ssm, world.config)
    assert (finding.verdict, finding.location_then, finding.location_now) == (
        "compliant",
        "newyork",
        "newyork",
    )


def test_audit_finds_a_task_started_around_residency(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = world.sandbox.start_task_on("tax.host", world.sandbox.task_definitions["test-slow"])
    world.sandbox.use(monkeypatch)
    code = main(["--sandbox", "-c", str(world.map_path), "audit", "-o", "json"])
    captured = capsys.readouterr()
    assert code == 4
    (finding,) = json.loads(captured.out)
    assert finding["task_arn"] == arn and finding["verdict"] == "violation"
    assert finding["location_then"] is None and finding["location_now"] == "frankfurt"
    assert "1 task(s) outside" in captured.err


def test_audit_finds_a_host_relabelled_under_a_running_task(world: World) -> None:
    result = world.dispatcher().run("slow", RunOptions(run_id="relabel"), wait=False)
    world.sandbox.label("bonus.host", "frankfurt")
    clients = world.sandbox.clients()
    (finding,) = audit(clients.ecs, clients.ssm, world.config)
    assert finding.task_arn == result.primary.task_arn
    assert (finding.location_then, finding.location_now) == ("newyork", "frankfurt")
    assert finding.reason == "runs on a host now in frankfurt, outside newyork"


def test_audit_since_filters_old_tasks(world: World) -> None:
    world.dispatcher().run("hello", RunOptions(run_id="old"))
    clients = world.sandbox.clients()
    from datetime import datetime, timedelta, timezone

    later = datetime.now(timezone.utc) + timedelta(hours=2)
    assert (
        audit(clients.ecs, clients.ssm, world.config, since_seconds=3600, now=lambda: later) == []
    )
    assert len(audit(clients.ecs, clients.ssm, world.config, since_seconds=3600)) == 1


def test_hosts_sync_cli_dry_run(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _unlabel_all(world)
    world.sandbox.use(monkeypatch)
    assert main(["--sandbox", "-c", str(world.map_path), "hosts", "sync", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 2 change(s) planned, nothing changed" in out
    assert main(["--sandbox", "-c", str(world.map_path), "hosts", "sync", "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["applied"] is True and len(plan["steps"]) == 2


def test_activate_then_join_gives_a_labelled_host_that_takes_work(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.label("bonus.host", None)  # the only newyork capacity is the new host
    base = ["--sandbox", "-c", str(world.map_path)]
    assert main([*base, "activate", "--location", "newyork", "--count", "2", "-o", "json"]) == 0
    activation = json.loads(capsys.readouterr().out)
    assert activation["registration_limit"] == 2 and activation["location"] == "newyork"
    assert any("ECS_INSTANCE_ATTRIBUTES" in c for c in activation["commands"])
    join = shlex.split(activation["sandbox_command"].replace("HOSTNAME", "ny2.host"))
    assert join[:3] == ["residency", "sandbox", "join"]
    assert main([*base, *join[1:]]) == 0
    assert "ny2.host joined" in capsys.readouterr().out
    result = world.dispatcher().run("hello", RunOptions(run_id="joined"))
    assert result.outcome == "succeeded"
    assert result.primary.host is not None
    assert (result.primary.host.hostname, result.primary.host.location) == ("ny2.host", "newyork")


def test_every_run_is_journalled_with_who_what_where(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    world.sandbox.use(monkeypatch)
    journal = tmp_path / "journal.jsonl"
    monkeypatch.setenv("RESIDENCY_JOURNAL", str(journal))
    base = ["--sandbox", "-c", str(world.map_path)]
    assert main([*base, "run", "hello", "--run-id", "j1", "-o", "json"]) == 0
    world.sandbox.label("bonus.host", None)
    assert main([*base, "run", "hello", "--run-id", "j2", "-o", "json"]) == 3
    capsys.readouterr()
    assert main([*base, "journal", "show", "-o", "json"]) == 0
    intent, first, second = json.loads(capsys.readouterr().out)
    # Written before RunTask: the run id, the request, its clientToken (issue 14.6).
    assert intent["event"] == "intent" and intent["run_id"] == "j1"
    assert intent["request"]["clientToken"] == first["request"]["clientToken"]
    assert first["prev"] == intent["hash"]
    assert first["workload"] == "hello" and first["run_id"] == "j1"
    assert first["result"]["outcome"] == "succeeded"
    assert first["host_attributes"]["location"] == "newyork"
    assert first["who"]["account"] == "123456789012"
    assert (
        first["request"]["placementConstraints"][0]["expression"] == "attribute:location == newyork"
    )
    assert second["result"]["outcome"] == "refused" and second["prev"] == first["hash"]
    assert main([*base, "journal", "verify"]) == 0
    lines = journal.read_text(encoding="utf-8").splitlines()
    journal.write_text("\n".join([lines[1]]) + "\n", encoding="utf-8")  # drop the first record
    assert main([*base, "journal", "verify"]) == 1


def test_unregister_refuses_while_a_task_needs_the_label(world: World) -> None:
    from residency_cli.hosts import unregister_host

    world.dispatcher().run("slow", RunOptions(run_id="busy2"), wait=False)
    clients = world.sandbox.clients()
    with pytest.raises(RefusedError, match="may not run with no location label"):
        unregister_host(clients.ecs, clients.ssm, world.config, "bonus.host")
    assert _locations(world)["bonus.host"] == "newyork"


def test_sandbox_flag_never_replaces_a_named_map(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    world.sandbox.use(monkeypatch)
    assert main(["--sandbox", "-c", str(tmp_path / "typo.yaml"), "hosts"]) == 2
    assert "no residency map" in capsys.readouterr().err
    monkeypatch.delenv("RESIDENCY_CONFIG")
    monkeypatch.chdir(tmp_path)
    assert main(["--sandbox", "hosts", "-o", "json"]) == 0  # no map named: the sandbox's own
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_attach_and_library_runs_are_journalled(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A --no-wait run is journalled `dispatched`; the attach that sees it end appends its
    final outcome; a library call through Dispatcher journals too (the core writes it)."""
    world.sandbox.use(monkeypatch)
    journal = tmp_path / "journal.jsonl"
    monkeypatch.setenv("RESIDENCY_JOURNAL", str(journal))
    base = ["--sandbox", "-c", str(world.map_path)]
    assert main([*base, "run", "hello", "--run-id", "nw", "--no-wait", "-o", "json"]) == 0
    task_id = json.loads(capsys.readouterr().out)["task_id"]
    assert main([*base, "attach", task_id, "-o", "json"]) == 0
    capsys.readouterr()
    library = world.dispatcher().run("small", RunOptions(run_id="lib"))
    assert library.outcome == "succeeded"
    assert main([*base, "journal", "show", "-o", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    seen = [(r["event"], r["run_id"], r["result"]["outcome"]) for r in records]
    assert seen == [
        ("intent", "nw", None),
        ("run", "nw", "dispatched"),
        ("attach", "nw", "succeeded"),
        ("intent", "lib", None),
        ("run", "lib", "succeeded"),
    ]
    assert main([*base, "journal", "verify"]) == 0


def test_the_inventory_is_the_truth_for_register_check_run_and_audit(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The adversarial reproduction of issue 14.1: relabelling tax.host (declared frankfurt)
    as newyork must not let bonus run there, whichever way the label was changed."""
    world.sandbox.use(monkeypatch)
    base = ["--sandbox", "-c", str(world.map_path)]
    assert main([*base, "unregister-host", "bonus.host"]) == 0
    assert main([*base, "unregister-host", "tax.host"]) == 0
    capsys.readouterr()
    code = main([*base, "register-host", "tax.host", "--location", "newyork", "--force"])
    err = capsys.readouterr().err
    assert code == 3 and f"{world.map_path}:" in err and "hosts.tax.host" in err
    assert _locations(world)["tax.host"] is None  # nothing changed
    # Someone relabels it around residency (a raw PutAttributes):
    world.sandbox.label("tax.host", "newyork")
    assert main([*base, "check", "hello", "-o", "json"]) == 3
    (check,) = json.loads(capsys.readouterr().out)
    reasons = {h["hostname"]: h["reasons"] for h in check["hosts"]}
    assert reasons["tax.host"] == ["label newyork contradicts the map (frankfurt)"]
    world.sandbox.reset_calls()
    assert main([*base, "run", "hello"]) == 3
    assert world.sandbox.calls("RunTask") == 0
    # A raw RunTask lands there anyway: verification after placement stops it (exit 4).
    arn = world.sandbox.start_task_on("tax.host", "test-slow")
    capsys.readouterr()
    assert main([*base, "attach", arn, "--no-follow"]) == 4
    assert "the map declares it frankfurt" in capsys.readouterr().err
    assert world.sandbox.wait_for_task(arn)["lastStatus"] == "STOPPED"
    assert main([*base, "audit", "-o", "json"]) == 4
    findings = json.loads(capsys.readouterr().out)
    assert any("contradicts the map (frankfurt)" in (f["reason"] or "") for f in findings)


def test_a_spoofed_workload_tag_fools_neither_attach_nor_audit(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14.2: christmas-bonus started by hand on tax.host (Frankfurt) and tagged
    `residency:workload=tax` is judged as bonus (its task definition) and stopped."""
    world.sandbox.use(monkeypatch)
    base = ["--sandbox", "-c", str(world.map_path)]
    world.sandbox.register_task_definition("christmas-bonus", ["sleep", "30"])
    arn = world.sandbox.start_task_on(
        "tax.host", "christmas-bonus", tags=[{"key": "residency:workload", "value": "tax"}]
    )
    assert main([*base, "audit", "-o", "json"]) == 4
    findings = json.loads(capsys.readouterr().out)
    mine = next(f for f in findings if f["task_arn"] == arn)
    assert mine["workload"] == "bonus" and mine["verdict"] == "violation"
    assert main([*base, "attach", arn, "--no-follow"]) == 4
    assert "NOT ALLOWED" in capsys.readouterr().err
    assert world.sandbox.wait_for_task(arn)["lastStatus"] == "STOPPED"


def test_a_disagreeing_workload_tag_is_itself_a_finding(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.sandbox.use(monkeypatch)
    world.sandbox.register_task_definition("christmas-bonus", ["true"])
    arn = world.sandbox.start_task_on(
        "bonus.host", "christmas-bonus", tags=[{"key": "residency:workload", "value": "tax"}]
    )
    world.sandbox.wait_for_task(arn)
    assert main(["--sandbox", "-c", str(world.map_path), "audit", "-o", "json"]) == 4
    mine = next(f for f in json.loads(capsys.readouterr().out) if f["task_arn"] == arn)
    assert mine["reason"] == (
        "tagged residency:workload=tax but runs christmas-bonus:2 (workload bonus)"
    )


def test_a_joined_host_the_inventory_does_not_name_keeps_its_label_at_sync(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18.7: `activate` says to add the host to the map; `hosts sync` refuses to strip
    the label of a host the map does not name, printing the line to add (exit 3)."""
    world.sandbox.use(monkeypatch)
    base = ["--sandbox", "-c", str(world.map_path)]
    assert main([*base, "activate", "--location", "newyork", "-o", "json"]) == 0
    captured = capsys.readouterr()
    assert "add each new host under hosts: as `  HOSTNAME: newyork`" in captured.err
    join = shlex.split(json.loads(captured.out)["sandbox_command"].replace("HOSTNAME", "ny3.host"))
    assert main([*base, *join[1:]]) == 0
    capsys.readouterr()
    assert main([*base, "hosts", "sync"]) == 3
    err = capsys.readouterr().err
    assert "add `  ny3.host: newyork` under hosts:" in err
    assert _locations(world)["ny3.host"] == "newyork"
    declared = world.map_path.read_text(encoding="utf-8").replace(
        "hosts:\n", "hosts:\n  ny3.host: newyork\n", 1
    )
    world.map_path.write_text(declared, encoding="utf-8")
    assert main([*base, "hosts", "sync"]) == 0
    assert _locations(world)["ny3.host"] == "newyork"
