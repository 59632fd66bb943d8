"""What `ResidencyRunOperator` (residency_cli.airflow_operator) does, without Airflow: the
task instance's identity and tags, the search for its ECS task that is still running, and
the run or the reattach through the core's `Dispatcher`.

Kept apart from the operator so that it is tested with the sandbox and no Airflow, and so that
the operator stays a thin shell: Airflow's context in, the outcome's JSON out.

Reattach. Airflow retries a task instance after its worker died (and runs it again when a
user clears it): a new *try* of the same (DAG id, run id, task id, map index). The operator
tags every ECS task it starts with that identity (RunTask `tags`, so they are on the task
from its first moment) and, before RunTask, looks for a task of the same identity that is
still running (ListTasks `desiredStatus=RUNNING` by the workload's family, DescribeTasks with
its tags): found, it attaches to it instead of starting a second one. A task instance that
succeeded and is cleared finds no running task and dispatches the workload again, as Airflow
users expect: each try has its own residency run id (`airflow-<key>-<try>`), so its own
clientToken and journal records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from residency_cli.config import Config, workload_for_task
from residency_cli.config import task_tag_value as task_tag
from residency_cli.constants import (
    AIRFLOW_DAG_TAG,
    AIRFLOW_KEY_TAG,
    AIRFLOW_MAP_INDEX_TAG,
    AIRFLOW_RUN_TAG,
    AIRFLOW_TAGS,
    AIRFLOW_TASK_TAG,
    RESIDENCY_TAGS,
    STARTED_BY,
)
from residency_cli.errors import UsageError
from residency_cli.limits import MAX_TAG_VALUE, MAX_TAGS, tag_text

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

    from residency_cli.dispatch import Dispatcher
    from residency_cli.logs import LogEvent
    from residency_cli.results import PlacedHost, RunResult, TasksStopped

# ECS tag values: `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`, at most 256 characters, no `aws:` prefix
# (ECS API Reference, Tag; botocore's ecs service-2.json, shape TagValue). Airflow's DAG and
# task ids (`[\w.-]`) and its generated run ids (`manual__2024-12-01T00:00:00+00:00`) fit;
# a run id of the API may hold other characters (e.g. `~`), replaced by this one.
TAG_REPLACEMENT = "_"
_STOPPED = ("STOPPED", "DELETED")


def tag_safe(text: str) -> str:
    """`text` as an ECS tag value: characters ECS refuses become `_`, cut at 256."""
    safe = "".join(c if tag_text(c) else TAG_REPLACEMENT for c in text)
    if safe.lower().startswith("aws:"):  # reserved for AWS (ECS API Reference, Tag)
        safe = TAG_REPLACEMENT + safe
    return safe[:MAX_TAG_VALUE]


@dataclass(frozen=True)
class TaskInstance:
    """One try of an Airflow task instance, as far as residency needs to know it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1
    # Airflow 3's id of this try (`ti.id`, a new UUID for every try: apache-airflow 3.3
    # airflow/models/taskinstance.py, `prepare_db_for_next_try` sets `self.id = uuid7()`;
    # also new when a DAG run is deleted and created again with the same run id, where try
    # numbers start again at 1).
    try_id: str | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> TaskInstance:
        """From an Airflow task's context (`context["ti"]`: dag_id, run_id, task_id,
        map_index, try_number and id, as Airflow 3's RuntimeTaskInstance has them: task SDK
        airflow/sdk/api/datamodels/_generated.py, `TaskInstance`)."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        try_number = getattr(ti, "try_number", None)
        try_id = getattr(ti, "id", None)
        return cls(
            dag_id=str(ti.dag_id),
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            map_index=-1 if map_index is None else int(map_index),
            try_number=1 if not try_number else int(try_number),
            try_id=None if try_id is None else str(try_id),
        )

    @property
    def key(self) -> str:
        """The exact identity of the task instance, every try alike (a SHA-256 digest)."""
        identity = json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index])
        return hashlib.sha256(identity.encode()).hexdigest()

    def tags(self) -> dict[str, str]:
        """The ECS tags of a task this try starts: readable ids, and the key to find it by."""
        return {
            AIRFLOW_DAG_TAG: tag_safe(self.dag_id),
            AIRFLOW_RUN_TAG: tag_safe(self.run_id),
            AIRFLOW_TASK_TAG: tag_safe(self.task_id),
            AIRFLOW_MAP_INDEX_TAG: str(self.map_index),
            AIRFLOW_KEY_TAG: self.key,
        }

    @property
    def residency_run_id(self) -> str:
        """This try's residency run id (`[A-Za-z0-9_.:-]{1,64}`, dispatch.validate_run_id):
        the same try always gets the same one (so the same RunTask clientToken), the next
        try (a retry, or a clear) another."""
        run_id = f"airflow-{self.key[:16]}-{self.try_number}"
        if self.try_id:
            run_id += "-" + hashlib.sha256(self.try_id.encode()).hexdigest()[:8]
        return run_id

    def describe(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{index}"


def check_tag_room(config: Config, workload: str) -> None:
    """ECS allows 50 tags a task: residency's own, the workload's and the Airflow ones."""
    own = len(config.workload(workload).tags)
    if len(RESIDENCY_TAGS) + own + len(AIRFLOW_TAGS) > MAX_TAGS:
        room = MAX_TAGS - len(RESIDENCY_TAGS) - len(AIRFLOW_TAGS)
        raise UsageError(
            f"workload {workload!r} has {own} tags: from Airflow it may have at most {room} "
            f"(ECS allows {MAX_TAGS} per task; residency adds {len(RESIDENCY_TAGS)}, "
            f"the operator {len(AIRFLOW_TAGS)})",
            hint="remove some of its tags: in the map",
        )


def running_tasks_of(
    ecs: ECSClient, config: Config, workload: str, instance: TaskInstance
) -> list[dict[str, Any]]:
    """The described tasks of `workload` started for this task instance (any try) that
    are still running: desired RUNNING and not stopped, oldest first."""
    from residency_cli.tasks import list_workload_tasks

    described = list_workload_tasks(ecs, config, [workload], ["RUNNING"])
    found = [
        task
        for task in described
        if task_tag(task, AIRFLOW_KEY_TAG) == instance.key
        # Only what residency started: a raw RunTask carrying copied tags is not adopted
        # (the attach verifies placement anyway).
        and task.get("startedBy") == STARTED_BY
        and task.get("lastStatus") not in _STOPPED
        and task.get("desiredStatus") not in _STOPPED
        and workload_for_task(config, task) == workload
    ]
    return sorted(found, key=lambda task: str(task.get("createdAt") or ""))


@dataclass
class TaskLogObserver:
    """The Dispatcher's observer (waiting.Observer) for Airflow: status changes, placement
    and the job's log lines go to a logger (the operator's `self.log`, so the task log).
    Remembers the ARN of every task it heard of, for `on_kill`."""

    logger: Any
    task_arns: list[str] = field(default_factory=list)

    def _seen(self, arn: str) -> str:
        if arn and arn not in self.task_arns:
            self.task_arns.append(arn)
        return arn.rsplit("/", 1)[-1]

    def status(self, task: Mapping[str, Any], previous: str | None) -> None:
        task_id = self._seen(str(task.get("taskArn") or ""))
        current = task.get("lastStatus")
        if previous:
            self.logger.info("task %s: %s -> %s", task_id, previous, current)
        else:
            self.logger.info("task %s: %s", task_id, current)

    def placed(self, task_arn: str, host: PlacedHost, allowed: bool) -> None:
        task_id = self._seen(task_arn)
        where = host.hostname or host.instance_id or host.container_instance_arn
        location = host.location or "no location"
        if allowed:
            self.logger.info("task %s placed on %s in %s: allowed", task_id, where, location)
        else:
            self.logger.error(
                "task %s placed on %s in %s: NOT ALLOWED, stopping it", task_id, where, location
            )

    def log(self, event: LogEvent) -> None:
        self.logger.info("[%s] %s", event.container, event.message)


def run_task_instance(
    dispatcher: Dispatcher,
    workload: str,
    instance: TaskInstance,
    *,
    timeout: float | None,
    follow: bool = True,
    say: Callable[[str], None] = lambda line: None,
) -> RunResult:
    """Reattach to the task instance's running task, or run the workload (pre-flight,
    RunTask with the map's placement and the instance's tags, verification, the wait), as
    `residency run` does; the outcome, journalled by the dispatcher."""
    from residency_cli.dispatch import RunOptions

    config = dispatcher.config
    config.workload(workload)
    running = running_tasks_of(dispatcher.ecs, config, workload, instance)
    if running:
        arns = [str(task["taskArn"]) for task in running]
        say(
            f"reattaching to task {arns[0].rsplit('/', 1)[-1]}, started for "
            f"{instance.describe()} by an earlier try and still running"
        )
        if len(arns) > 1:
            others = ", ".join(arn.rsplit("/", 1)[-1] for arn in arns[1:])
            say(f"warning: more running tasks of this task instance: {others}")
        return dispatcher.attach(arns[0], follow=follow, timeout=timeout)
    check_tag_room(config, workload)
    options = RunOptions(run_id=instance.residency_run_id, tags=instance.tags())
    say(f"run id {options.run_id} (try {instance.try_number} of {instance.describe()})")
    return dispatcher.run(workload, options, follow=follow, timeout=timeout)


def stop_task_instance(
    dispatcher: Dispatcher,
    workload: str,
    instance: TaskInstance,
    known: Iterable[str] = (),
    reason: str | None = None,
) -> TasksStopped | None:
    """Stop the task instance's tasks (those `known`, and any running one with its tags),
    each stop journalled by the dispatcher; None when there is none to stop."""
    running = running_tasks_of(dispatcher.ecs, dispatcher.config, workload, instance)
    arns: Sequence[str] = list(dict.fromkeys([*known, *(str(t["taskArn"]) for t in running)]))
    if not arns:
        return None
    why = reason or f"stopped by Airflow: task instance {instance.describe()} was killed"
    return dispatcher.stop(arns, why)
