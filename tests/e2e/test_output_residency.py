"""Residency holds for outputs too: the ACME jobs pass `--expected-region` (their location's
`data_region`), so a report bound for a bucket in another region is never written."""

from __future__ import annotations

from residency_cli.config import parse_config
from residency_cli.dispatch import RunOptions
from tests.support.world import World


def test_acme_task_definitions_enforce_their_locations_data_region(world: World) -> None:
    for workload, bucket in (("bonus", "acme-newyork-reports"), ("tax", "acme-frankfurt-reports")):
        result = world.dispatcher().run(workload, RunOptions(run_id=f"ok-{workload}"))
        region = world.config.locations[world.config.workload(workload).locations[0]].data_region
        assert result.outcome == "succeeded", world.recorder.lines
        assert world.sandbox.buckets[bucket] == region
        assert world.sandbox.s3_keys(bucket)


def test_a_bonus_report_bound_for_frankfurt_is_refused_before_reading(world: World) -> None:
    command = (
        '["python3", "/app/christmas_bonus.py", "--input_file=/data/employee_data.csv", '
        '"--output_file=/tmp/bonus.csv", "--s3_bucket=acme-frankfurt-reports", '
        '"--s3_folder=misdirected", "--expected-region=us-east-1"]'
    )
    text = world.map_path.read_text(encoding="utf-8") + (
        "  misdirected:\n    task_definition: christmas-bonus\n    location: newyork\n"
        f"    command: {command}\n"
    )
    config = parse_config(text, str(world.map_path))
    dispatcher = world.dispatcher()
    dispatcher.config = config
    result = dispatcher.run("misdirected", RunOptions(run_id="misdirected"))
    assert (result.outcome, result.primary.exit_code) == ("failed", 3)
    assert any("eu-central-1" in line and "us-east-1" in line for line in world.recorder.lines)
    messages = [line.split(" - ")[-1] for line in world.recorder.lines]
    assert not any(m.startswith("Reading") for m in messages), messages
    assert world.sandbox.s3_keys("acme-frankfurt-reports") == []
