"""Dispatch a workload of the map from Apache Airflow, with the same placement as `run`.

`ResidencyRunOperator` (docs/airflow.md) does what `residency run` does, as an Airflow task:
pre-flight, RunTask, placement verification, the job's log in the task log, the outcome in
XCom, the journal, and reattach on retry. It lives in `residency_cli.airflow_operator` and is
loaded from here on first use (`from residency_cli.airflow import ResidencyRunOperator`), so
this module stays importable without Airflow.

`ecs_run_task_kwargs()` returns the keyword arguments of the Amazon provider's
`EcsRunTaskOperator` (apache-airflow-providers-amazon 9.x) for one workload: the same
cluster, task definition, EXTERNAL launch type, `memberOf` placement constraint, overrides
(with the map's locations for the jobs' data guard) and residency tags as `residency run`
(CONTRACT.md sections 2 and 4).

It is pure: it imports neither Airflow nor boto3 and calls no AWS API, because Airflow parses
a DAG file every few seconds and top-level AWS calls there are slow and fragile. The map says
nothing about logs, so the CloudWatch Logs settings (`awslogs_*`) come from the task
definition when one is given: as a dict (RegisterTaskDefinition input or DescribeTaskDefinition
output) or the path of its JSON file. Without one the operator runs the task but does not
stream its logs.

What the operator does NOT do that `residency run` does: no pre-flight, no clientToken (use
`reattach=True`, set here, which re-attaches to the task a retried try started), and no
placement verification after RunTask. ECS still enforces the placement constraint; follow up
with `residency audit` to prove where each task ran.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from residency_cli.config import (
    Config,
    load_config,
    resolve_config_path,
    task_definition_family,
)
from residency_cli.constants import LOCATION_TAG, RUN_ID_TAG, WORKLOAD_TAG
from residency_cli.errors import UsageError
from residency_cli.guarding import with_guard
from residency_cli.placement import build_constraints

if TYPE_CHECKING:
    from residency_cli.airflow_operator import ResidencyRunOperator

__all__ = ["AIRFLOW_RUN_ID", "ResidencyRunOperator", "ecs_run_task_kwargs"]


def __getattr__(name: str) -> Any:
    """`ResidencyRunOperator`, imported (with Airflow) only when asked for."""
    if name == "ResidencyRunOperator":
        try:
            from residency_cli.airflow_operator import ResidencyRunOperator
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] != "airflow":
                raise
            raise ImportError(
                "ResidencyRunOperator needs Apache Airflow 3 in this environment "
                "(pip install apache-airflow; see docs/airflow.md)"
            ) from error
        return ResidencyRunOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Airflow renders templated fields (tags is one): each DAG run tags its task with its run id.
AIRFLOW_RUN_ID = "{{ run_id }}"
DEFAULT_LOG_FETCH_SECONDS = 10

TaskDefinitionSource = Mapping[str, Any] | str | Path


def _load_task_definition(source: TaskDefinitionSource) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        inner = source.get("taskDefinition")  # DescribeTaskDefinition's response
        return inner if isinstance(inner, Mapping) else source
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read task definition {path}: {error}") from None
    if not isinstance(data, Mapping):
        raise UsageError(f"task definition {path} is not a JSON object")
    return _load_task_definition(data)


def _container(definition: Mapping[str, Any], wanted: str | None) -> Mapping[str, Any] | None:
    containers = [c for c in definition.get("containerDefinitions") or [] if isinstance(c, Mapping)]
    if wanted is not None:
        found = next((c for c in containers if c.get("name") == wanted), None)
        if found is None:
            names = ", ".join(str(c.get("name")) for c in containers) or "none"
            raise UsageError(f"container {wanted!r} is not in the task definition (has: {names})")
        return found
    essential = [c for c in containers if c.get("essential", True)]
    chosen = essential or containers
    return chosen[0] if chosen else None


def _log_kwargs(container: Mapping[str, Any] | None) -> dict[str, Any]:
    """awslogs_group/region/stream_prefix from the container's awslogs log configuration."""
    log = (container or {}).get("logConfiguration") or {}
    options = log.get("options") or {}
    if log.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
        return {}
    kwargs: dict[str, Any] = {"awslogs_group": options["awslogs-group"]}
    if options.get("awslogs-region"):
        kwargs["awslogs_region"] = options["awslogs-region"]
    if options.get("awslogs-stream-prefix"):
        # The operator builds `<prefix>/<container>/<task id>`, the awslogs driver's name.
        kwargs["awslogs_stream_prefix"] = options["awslogs-stream-prefix"]
    else:
        return {}  # without a prefix the stream is named by the container id: not findable
    kwargs["awslogs_fetch_interval"] = timedelta(seconds=DEFAULT_LOG_FETCH_SECONDS)
    return kwargs


def ecs_run_task_kwargs(
    workload: str,
    config_path: str | Path | None = None,
    *,
    config: Config | None = None,
    task_definition: TaskDefinitionSource | None = None,
    run_id: str | None = AIRFLOW_RUN_ID,
) -> dict[str, Any]:
    """Keyword arguments of `EcsRunTaskOperator` that dispatch `workload` as residency does.

    - `config_path`: the map (default: `$RESIDENCY_CONFIG`, else ./residency.yaml), or pass
      an already loaded `config`;
    - `task_definition`: the workload's task definition (dict, or path of its JSON file), read
      for the container name and the awslogs settings; default `task-definitions/<family>.json`
      beside the map when that file exists; without one, no log streaming;
    - `run_id`: value of the `residency:run-id` tag (Airflow template by default; None: no tag).

    Add `task_id` (and anything else) yourself: `EcsRunTaskOperator(task_id=..., **kwargs)`.
    Startup fails on an invalid map or an unknown workload (a UsageError naming the problem),
    so a broken map is an import error of the DAG, not a wrong dispatch.
    """
    map_folder: Path | None = None
    if config is None:
        path = resolve_config_path(None if config_path is None else str(config_path))
        config = load_config(str(path))
        map_folder = path.parent
    spec = config.workload(workload)
    if task_definition is None and map_folder is not None:
        family = task_definition_family(spec.task_definition)
        beside = map_folder / "task-definitions" / f"{family}.json"
        task_definition = beside if beside.is_file() else None
    definition = _load_task_definition(task_definition) if task_definition is not None else None
    container = _container(definition, spec.container) if definition is not None else None
    container_name = spec.container or (str(container["name"]) if container else None)

    tags = {
        WORKLOAD_TAG: workload,
        LOCATION_TAG: " ".join(spec.locations),
        **({RUN_ID_TAG: run_id} if run_id else {}),
        **spec.tags,
    }
    override: dict[str, Any] = {}
    if spec.command is not None:
        override["command"] = list(spec.command)
    environment = dict(spec.environment)
    if container_name is not None:  # the data guard gets the map's locations, as with `run`
        environment = with_guard(environment, spec.locations)
    if environment:
        override["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    if override and container_name is None:
        raise UsageError(
            f"workload {workload!r} overrides the command or environment: name its `container:` "
            "in the map or pass task_definition="
        )
    overrides = {"containerOverrides": [{"name": container_name, **override}]} if override else {}

    kwargs: dict[str, Any] = {
        "cluster": config.cluster,
        "task_definition": spec.task_definition,
        "launch_type": "EXTERNAL",
        "placement_constraints": build_constraints(config.location_attribute, spec.locations),
        "overrides": overrides,
        "tags": tags,
        # A retried try finds the task its predecessor started instead of starting another.
        "reattach": True,
        "execution_timeout": timedelta(seconds=spec.timeout_seconds),
    }
    if config.region:
        kwargs["region_name"] = config.region
    if container_name is not None:
        # Without it the operator sleeps 10-40 s after RunTask to discover the container.
        kwargs["container_name"] = container_name
    kwargs.update(_log_kwargs(container))
    return kwargs
