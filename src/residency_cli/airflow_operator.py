"""`ResidencyRunOperator`: `residency run` as an Apache Airflow (3.x) task.

Import it as `from residency_cli.airflow import ResidencyRunOperator` (loaded on first use, so
that `residency_cli.airflow` stays importable without Airflow). It is a thin shell over the
core: the map and the clients as the CLI makes them, `Dispatcher.create` with an observer that
writes to the task log, and `airflow_dispatch.run_task_instance` (reattach or run). See
docs/airflow.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from residency_cli.airflow_dispatch import (
    TaskInstance,
    TaskLogObserver,
    run_task_instance,
    stop_task_instance,
)
from residency_cli.errors import AwsError, ResidencyError

if TYPE_CHECKING:
    # Airflow is not installed where `mypy --strict src/` runs: what the operator uses of it.
    class BaseOperator:
        log: Any
        task_id: str

        def __init__(self, **kwargs: Any) -> None: ...

    class AirflowException(Exception): ...

    class AirflowFailException(AirflowException): ...

    from residency_cli.aws import AwsSettings
    from residency_cli.config import Config
    from residency_cli.dispatch import Dispatcher
    from residency_cli.results import RunResult
else:
    from airflow.sdk import BaseOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

# The XCom key under which every try pushes the outcome (also the return value on success).
XCOM_KEY = "residency_result"
DEFAULT_HOST_LOST_AFTER = "5m"  # as `residency run --host-lost-after`


def _seconds(name: str, value: str | float | None) -> float | None:
    from residency_cli.durations import parse_duration

    if value is None or isinstance(value, int | float):
        return value
    try:
        return parse_duration(value)
    except ValueError as error:
        raise AirflowFailException(f"{name}: {error}") from None


class ResidencyRunOperator(BaseOperator):
    """Dispatch a workload of the residency map as `residency run` does: pre-flight, RunTask
    with the map's placement, placement verified after placement and at RUNNING, the job's
    log in the task log, the outcome (`residency run -o json`) in XCom, a journal record.

    :param workload: a workload of the map (templated).
    :param config_path: the map (templated); default `$RESIDENCY_CONFIG`, else
        `./residency.yaml` of the worker, as `residency` resolves it.
    :param aws_profile: AWS profile (default: the environment's credential chain).
    :param region: AWS region (default: the map's `region:`, else `AWS_REGION`...).
    :param endpoint_url: AWS endpoint (default: `AWS_ENDPOINT_URL`, else AWS's).
    :param timeout: give up waiting after this long ("30m" or seconds; default the
        workload's `timeout:`); the ECS task is left running and this try fails.
    :param host_lost_after: fail as host_lost when a running task's host stays disconnected
        this long ("5m").
    :param follow_logs: copy the job's CloudWatch log lines into the task log.
    :param journal: where the run is journalled, as `residency --journal`: a path or
        `s3://BUCKET/PREFIX` (templated); default `$RESIDENCY_JOURNAL`, else the map's
        `journal:`, else the worker's local journal file.
    """

    template_fields = ("workload", "config_path", "journal")
    ui_color = "#d7ecd9"

    def __init__(
        self,
        *,
        workload: str,
        config_path: str | Path | None = None,
        aws_profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout: str | float | None = None,
        host_lost_after: str | float = DEFAULT_HOST_LOST_AFTER,
        follow_logs: bool = True,
        journal: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workload = workload
        self.config_path = None if config_path is None else str(config_path)
        self.aws_profile = aws_profile
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self.host_lost_after = host_lost_after
        self.follow_logs = follow_logs
        self.journal = journal
        self._instance: TaskInstance | None = None
        self._observer: TaskLogObserver | None = None

    # --- what the CLI's global options decide, from the operator's parameters ----------

    def _config(self) -> Config:
        from residency_cli.config import load_config, resolve_config_path

        return load_config(str(resolve_config_path(self.config_path)))

    def _settings(self, config: Config) -> AwsSettings:
        from residency_cli.aws import AwsSettings

        return AwsSettings(
            profile=self.aws_profile,
            region=self.region or config.region,
            endpoint_url=self.endpoint_url,
        )

    def _dispatcher(self, config: Config, observer: TaskLogObserver | None) -> Dispatcher:
        from residency_cli.aws import Clients
        from residency_cli.dispatch import Dispatcher
        from residency_cli.journal import journal_location, open_journal

        lost_after = _seconds("host_lost_after", self.host_lost_after) or 0.0
        clients = Clients(self._settings(config))
        # Where `residency --journal ...` would write: explicit > env > the map's > local.
        where = journal_location(self.journal, map_journal=config.journal_location)
        return Dispatcher.create(
            clients,
            config,
            observer=observer,
            journal_store=open_journal(where, s3_client=lambda: clients.s3),
            host_lost_after=lost_after,
        )

    # --- Airflow's entry points ---------------------------------------------------------

    def execute(self, context: Mapping[str, Any]) -> dict[str, Any]:
        instance = TaskInstance.from_context(context)
        self._instance = instance
        self._observer = TaskLogObserver(self.log)
        try:
            config = self._config()
            spec = config.workload(self.workload)
            timeout = _seconds("timeout", self.timeout)
            dispatcher = self._dispatcher(config, self._observer)
            result = run_task_instance(
                dispatcher,
                self.workload,
                instance,
                timeout=spec.timeout_seconds if timeout is None else timeout,
                follow=self.follow_logs,
                say=self.log.info,
            )
        except ResidencyError as error:
            raise _airflow_error(error) from None
        for problem in dispatcher.journal_problems:
            self.log.warning("journal: %s", problem)
        return self._outcome(context, result)

    def _outcome(self, context: Mapping[str, Any], result: RunResult) -> dict[str, Any]:
        """The outcome in XCom; the try fails (with the outcome's sentence) unless it
        succeeded."""
        payload = result.to_json()
        context["ti"].xcom_push(key=XCOM_KEY, value=payload)
        code = result.exit_code()
        if code:
            explanation = result.explanation("residency") or str(payload.get("outcome"))
            raise AirflowException(f"{explanation} (exit code {code} of residency run)")
        primary = result.primary
        where = primary.host.hostname if primary.host else None
        self.log.info(
            "%s %s on %s (%s), run id %s",
            self.workload,
            payload.get("outcome"),
            where,
            primary.host.location if primary.host else None,
            primary.run_id,
        )
        return payload

    def on_kill(self) -> None:
        """The task instance was killed (or timed out): stop its ECS task, journalled."""
        if self._instance is None:
            return
        known = self._observer.task_arns if self._observer is not None else []
        try:
            config = self._config()
            stopped = stop_task_instance(
                self._dispatcher(config, None), self.workload, self._instance, known
            )
        except ResidencyError as error:
            self.log.error("could not stop the ECS task of %s: %s", self.task_id, error)
            return
        if stopped is None:
            self.log.info("no running ECS task of %s to stop", self._instance.describe())
            return
        for task in stopped.tasks:
            self.log.info("stopped ECS task %s (%s)", task.task_id, stopped.reason)


def _airflow_error(error: ResidencyError) -> AirflowException:
    """A failure before or around the run as Airflow's: a bad map, workload or option
    fails without retries (another try would fail the same); AWS trouble may be retried."""
    if isinstance(error, AwsError):
        return AirflowException(str(error))
    return AirflowFailException(str(error))
