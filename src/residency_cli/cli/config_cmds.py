"""`validate` and `schema`: the residency map itself."""

from __future__ import annotations

import typer

from residency_cli.cli import render
from residency_cli.cli.state import OUTPUT_OPTION, OutputFormat, app_state


def validate(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Load and validate the map; print a summary (workloads, locations, hosts)."""
    from residency_cli.placement import build_expression
    from residency_cli.results import ValidateSummary

    config = app_state(ctx).config()
    summary = ValidateSummary(
        source=config.source,
        cluster=config.cluster,
        region=config.region,
        location_attribute=config.location_attribute,
        locations=list(config.locations),
        hosts=dict(config.hosts),
        workloads={name: list(w.locations) for name, w in config.workloads.items()},
        workload_details={
            name: (w.task_definition, build_expression(config.location_attribute, w.locations))
            for name, w in config.workloads.items()
        },
        location_details={
            name: (loc.data_region, loc.description) for name, loc in config.locations.items()
        },
    )
    render.render(summary, output)


def schema(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Print the JSON Schema of residency.yaml (for editors); JSON in both output modes."""
    from residency_cli.config import config_schema

    render.emit_json(config_schema())
