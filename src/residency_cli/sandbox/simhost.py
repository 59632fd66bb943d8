"""Simulated hosts: run a task's containers as local processes, as the ECS agent would.

Each container's command (entry point + command, with RunTask overrides) runs as a local
process in its own process group. Container paths are mapped to local folders: the image's
files (`/app` -> the ETL folder), the task definition's host volumes (`/data` -> the host's
own folder) and a private `/tmp`. Arguments that start with a mapped container path are
rewritten, and `python3` is the current interpreter so that the jobs' dependencies exist.
Output goes to the task's awslogs stream line by line as it is produced; the exit code,
stop code and timestamps land on the moto task, so every client sees them.

Real ECS behaviour mirrored here (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/):
- task lifecycle PENDING -> RUNNING -> STOPPED (task-lifecycle-explanation.html);
- when an essential container exits the task stops, `stopCode: EssentialContainerExited`,
  `stoppedReason: Essential container in task exited` (stopped-task-error-codes.html);
- a container that cannot start stops the task with `stopCode: TaskFailedToStart` and the
  runtime's `CannotStartContainerError` in the reason;
- StopTask is `docker stop`: SIGTERM, SIGKILL after the container's stopTimeout (default
  30 s); a process ended by SIGTERM exits 143 (128 + 15), `stopCode: UserInitiated`;
- the container's main process ending ends the container: leftover children are killed;
- an ECS Anywhere host that goes dark (`freeze`: power or network gone) stops reporting:
  its agent is disconnected and its tasks stay RUNNING to the API; the sandbox freezes the
  task processes (SIGSTOP) and holds every report (and StopTask's signals) until the host
  comes back (`thaw`), when the task goes on to its real end;
- a host whose tasks the control plane ends (`lose`: an EC2 instance stopped or terminated)
  takes its containers with it: the task stops with the host's loss as `stoppedReason`, no
  container exit code (nothing on the host could report one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from residency_cli.sandbox.state import PRIVATE_UMASK
from residency_cli.sandbox.world import HostSpec, World, moto_module

_SITE_DIR = Path(__file__).with_name("_task_site")
_PYTHON_NAMES = ("python", "python3", *tuple(f"python3.{n}" for n in range(8, 20)))
DEFAULT_STOP_TIMEOUT = 30.0
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StartFailure(Exception):
    """The container could not start; the message is ECS's `stoppedReason`."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def signal_exit_code(returncode: int) -> int:
    """Docker reports death by signal N as exit code 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerPlan:
    name: str
    essential: bool
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stop_timeout: float
    log_region: str | None = None
    log_group: str | None = None
    log_stream: str | None = None


@dataclass
class _Running:
    plan: ContainerPlan
    process: subprocess.Popen[bytes]
    pumps: list[threading.Thread] = field(default_factory=list)


def _mapped(value: str, mounts: list[tuple[str, Path]]) -> str:
    """Rewrite a value that starts with a mapped container path; `--opt=/path` too."""
    if value.startswith("-") and "=" in value:
        option, _, rest = value.partition("=")
        return f"{option}={_mapped(rest, mounts)}"
    for container_path, local in mounts:
        if value == container_path:
            return str(local)
        if value.startswith(container_path.rstrip("/") + "/"):
            return str(local / value[len(container_path.rstrip("/")) + 1 :])
    return value


def _cannot_start(reason: str) -> StartFailure:
    return StartFailure(
        "CannotStartContainerError: Error response from daemon: failed to create task for "
        f"container: failed to create shim task: OCI runtime create failed: {reason}: unknown"
    )


def _log_options(container: dict[str, Any]) -> dict[str, str] | None:
    config = container.get("logConfiguration") or {}
    if config.get("logDriver") != "awslogs":
        return None
    return dict(config.get("options") or {})


def _container_mounts(
    world: World,
    container: dict[str, Any],
    volumes: dict[Any, Any],
    host: HostSpec,
    task_dir: Path,
) -> tuple[list[tuple[str, Path]], Any]:
    """The container's mounts (longest container path first) and its simulated image, if any."""
    mounts: list[tuple[str, Path]] = []
    for point in container.get("mountPoints") or []:
        volume = volumes.get(point.get("sourceVolume"))
        if volume is None:
            continue
        source = (volume.get("host") or {}).get("sourcePath")
        local = (
            host.local_path(source)
            if source
            else task_dir / "volumes" / str(point.get("sourceVolume"))
        )
        local.mkdir(parents=True, exist_ok=True)
        mounts.append((str(point["containerPath"]), local))
    image = world.image_for(str(container.get("image", "")))
    if image is not None:
        mounts.append((image.container_path, image.local))
    if not any(path == "/tmp" for path, _ in mounts):
        mounts.append(("/tmp", task_dir / "tmp"))
    # Longest first, so that the most specific mount maps a path.
    mounts.sort(key=lambda m: len(m[0]), reverse=True)
    (task_dir / "tmp").mkdir(parents=True, exist_ok=True)
    return mounts, image


def _container_env(
    world: World,
    container: dict[str, Any],
    override: dict[str, Any],
    host: HostSpec,
    task_dir: Path,
) -> dict[str, str]:
    """The environment: a base, the definition's, the override's, then the sandbox's own."""
    env = {
        "PATH": _BASE_PATH,
        "LANG": "C.UTF-8",
        "HOME": str(task_dir / "tmp"),
        "TMPDIR": str(task_dir / "tmp"),
        "PYTHONUNBUFFERED": "1",
    }
    for item in container.get("environment") or []:
        env[str(item["name"])] = str(item.get("value", ""))
    for item in override.get("environment") or []:
        env[str(item["name"])] = str(item.get("value", ""))
    forced = world.task_environment(host.hostname)
    own_region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if own_region:  # the task's own region wins over the sandbox's
        forced["AWS_REGION"] = forced["AWS_DEFAULT_REGION"] = own_region
    env.update(forced)
    return env


def _resolve_executable(
    argv: list[str], env: dict[str, str], mounts: list[tuple[str, Path]]
) -> None:
    """Points argv[0] at a runnable file, failing with the wording runc uses when there is none."""
    executable = argv[0]
    if executable in _PYTHON_NAMES:
        argv[0] = sys.executable
        # Makes socket.gethostname() answer the simulated hostname (host networking).
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_SITE_DIR), env.get("PYTHONPATH", "")) if p
        )
    elif "/" in executable:
        argv[0] = _mapped(executable, mounts)
        if not os.access(argv[0], os.X_OK):
            raise _cannot_start(
                f'runc create failed: unable to start container process: exec: "{executable}"'
                ": no such file or directory"
            )
    else:
        found = shutil.which(executable, path=env["PATH"])
        if found is None:
            raise _cannot_start(
                f'runc create failed: unable to start container process: exec: "{executable}"'
                ": executable file not found in $PATH"
            )
        argv[0] = found


def _working_directory(
    container: dict[str, Any], image: Any, mounts: list[tuple[str, Path]], task_dir: Path
) -> Path:
    """The definition's workingDirectory, else the image's root, else the task's /tmp."""
    workdir = container.get("workingDirectory")
    if workdir:
        cwd = Path(_mapped(str(workdir), mounts))
    elif image is not None:
        cwd = image.local
    else:
        cwd = task_dir / "tmp"
    if not cwd.is_dir():
        raise _cannot_start(f'chdir to cwd ("{workdir or cwd}") set in config.json failed')
    return cwd


def plan_containers(
    world: World, task: Any, task_definition: Any, host: HostSpec, task_dir: Path
) -> list[ContainerPlan]:
    """How each container of `task` runs on `host`; raises StartFailure like ECS would."""
    overrides = {o.get("name"): o for o in (task.overrides or {}).get("containerOverrides") or []}
    volumes = {v.get("name"): v for v in task_definition.volumes or []}
    task_id = task.task_arn.rsplit("/", 1)[-1]
    plans = []
    for container in task_definition.container_definitions:
        name = container.get("name", "")
        override = overrides.get(name) or {}
        mounts, image = _container_mounts(world, container, volumes, host, task_dir)

        command = override.get("command") or container.get("command") or []
        argv = [str(a) for a in (container.get("entryPoint") or []) + list(command)]
        if not argv:
            raise _cannot_start("no command specified")
        argv = [argv[0]] + [_mapped(a, mounts) for a in argv[1:]]

        env = _container_env(world, container, override, host, task_dir)
        _resolve_executable(argv, env, mounts)
        cwd = _working_directory(container, image, mounts, task_dir)

        log = _log_options(container)
        plan = ContainerPlan(
            name=name,
            essential=bool(container.get("essential", True)),
            argv=argv,
            cwd=cwd,
            env=env,
            stop_timeout=float(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT),
        )
        if log is not None:
            _check_log_credentials(task_definition, host)
            plan.log_region = log.get("awslogs-region") or world.region
            plan.log_group = log.get("awslogs-group")
            prefix = log.get("awslogs-stream-prefix")
            plan.log_stream = f"{prefix}/{name}/{task_id}" if prefix else task_id
            _prepare_log_stream(plan, log.get("awslogs-create-group") == "true")
        plans.append(plan)
    return plans


# On external instances the awslogs driver needs the task execution role ("Your task is hosted
# on AWS Fargate or on external instances and ... sends container logs to CloudWatch Logs
# using the awslogs log driver": ECS developer guide, "IAM roles for Amazon ECS",
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/security-ecs-iam-role-overview.html).
# Without it Docker's driver looks for its own credentials, which an ECS Anywhere host does not
# have, and the container cannot start (the daemon's wording: aws/amazon-ecs-agent#805).
NO_LOG_CREDENTIALS = (
    "CannotStartContainerError: Error response from daemon: failed to initialize logging "
    "driver: failed to create Cloudwatch log stream: NoCredentialProviders: no valid "
    "providers in chain. Deprecated."
)


def _check_log_credentials(task_definition: Any, host: HostSpec) -> None:
    if not getattr(task_definition, "execution_role_arn", None) and not host.daemon_credentials:
        raise StartFailure(NO_LOG_CREDENTIALS)


def _logs_backend(region: str) -> Any:
    logs_backends = moto_module("moto.logs.models").logs_backends

    from residency_cli.sandbox.world import ACCOUNT_ID

    return logs_backends[ACCOUNT_ID][region]


def _prepare_log_stream(plan: ContainerPlan, create_group: bool) -> None:
    assert plan.log_region and plan.log_stream
    backend = _logs_backend(plan.log_region)
    if not plan.log_group:
        raise StartFailure("CannotStartContainerError: awslogs-group is required")
    if plan.log_group not in backend.groups:
        if not create_group:
            raise StartFailure(
                "CannotStartContainerError: Error response from daemon: failed to initialize "
                "logging driver: failed to create Cloudwatch log stream: "
                "ResourceNotFoundException: The specified log group does not exist."
            )
        backend.create_log_group(plan.log_group, {})
    if plan.log_stream not in backend.groups[plan.log_group].streams:
        backend.create_log_stream(plan.log_group, plan.log_stream)


class TaskRuntime:
    """The simulated agent's work for one task: start, pump logs, wait, report."""

    def __init__(self, world: World, backend: Any, task: Any, host: HostSpec) -> None:
        self.world = world
        self.backend = backend
        self.task = task
        self.host = host
        self.task_arn: str = task.task_arn
        self.running: list[_Running] = []
        self.stop_requested = threading.Event()
        self._killed = False
        self._lost: str | None = None
        self._lost_code: str | None = None
        self._connected = threading.Event()  # cleared while the host is dark
        self._connected.set()
        self._stop_deferred = False
        self._thread = threading.Thread(
            target=self._run, name=f"task-{self.task_arn[-8:]}", daemon=True
        )

    def start(self) -> None:
        self.world.register_runtime(self)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def live_process_groups(self) -> list[int]:
        return [r.process.pid for r in self.running if r.process.poll() is None]

    # --- stopping -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """StopTask: SIGTERM now, SIGKILL after each container's stopTimeout (a dark host's
        agent gets the request only when it is back)."""
        self.stop_requested.set()
        if not self._connected.is_set():
            self._stop_deferred = True
            return
        for running in list(self.running):
            self._signal(running.process, signal.SIGTERM)
            timer = threading.Timer(
                running.plan.stop_timeout, self._signal, (running.process, signal.SIGKILL)
            )
            timer.daemon = True
            timer.start()

    def kill(self) -> None:
        """Sandbox shutdown or reset: SIGKILL everything at once."""
        self._killed = True
        self.stop_requested.set()
        for running in list(self.running):
            self._signal(running.process, signal.SIGKILL)
        self._connected.set()

    def lose(self, reason: str, stop_code: str | None = None) -> None:
        """The host is gone: its processes die with it and nothing reports an exit code."""
        self._lost = reason
        self._lost_code = stop_code
        self.kill()

    def freeze(self) -> None:
        """The host goes dark: its processes stop where they are, its agent reports nothing."""
        self._connected.clear()
        for running in list(self.running):
            self._signal(running.process, signal.SIGSTOP)

    def thaw(self) -> None:
        """The host is back: processes go on, held reports and stop requests go through."""
        for running in list(self.running):
            self._signal(running.process, signal.SIGCONT)
        self._connected.set()
        if self._stop_deferred:
            self._stop_deferred = False
            self.request_stop()

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        if process.poll() is not None and sig != signal.SIGKILL:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    # --- the agent's loop ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_unsafe()
        except Exception as error:  # never leave a task PENDING forever
            self._finish(stop_code="TaskFailedToStart", reason=f"sandbox error: {error!r}")
        finally:
            self.world.forget_runtime(self)

    def _task_dir(self) -> Path:
        return self.world.workdir / "tasks" / self.task_arn.rsplit("/", 1)[-1]

    def _run_unsafe(self) -> None:
        task_definition = self.backend.describe_task_definition(self.task.task_definition_arn)
        task_dir = self._task_dir()
        try:
            with self.world.lock:
                plans = plan_containers(self.world, self.task, task_definition, self.host, task_dir)
        except StartFailure as failure:
            self._finish(stop_code="TaskFailedToStart", reason=str(failure))
            return
        if self.stop_requested.is_set():
            self._finish()
            return
        pulled = utcnow()
        with self.world.lock:
            self.task.pull_started_at = pulled
            self.task.pull_stopped_at = pulled
        for plan in plans:
            try:
                process = subprocess.Popen(
                    plan.argv,
                    cwd=plan.cwd,
                    env=plan.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    close_fds=True,
                    # What a job writes (reports with names and salaries) is its owner's alone.
                    umask=PRIVATE_UMASK,
                )
            except OSError as error:
                for running in self.running:
                    self._signal(running.process, signal.SIGKILL)
                    running.process.wait()
                self._finish(
                    stop_code="TaskFailedToStart",
                    reason=str(_cannot_start(f"unable to start container process: {error}")),
                )
                return
            running = _Running(plan, process)
            for stream in (process.stdout, process.stderr):
                assert stream is not None
                pump = threading.Thread(target=self._pump, args=(plan, stream), daemon=True)
                pump.start()
                running.pumps.append(pump)
            self.running.append(running)
        if not self._connected.is_set():  # the host went dark while they started
            self.freeze()
        self.world.write_pgids()
        self._mark_running()
        if self.stop_requested.is_set():
            self.request_stop()
        self._wait()

    def _pump(self, plan: ContainerPlan, stream: IO[bytes]) -> None:
        """Each line becomes one log event as soon as it is written (awslogs driver)."""
        with stream:
            for raw in iter(stream.readline, b""):
                message = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not message or plan.log_group is None:
                    continue  # CloudWatch Logs refuses empty messages; so does awslogs
                with self.world.lock, contextlib.suppress(Exception):
                    # Stamped under the lock: stdout and stderr pumps must append in timestamp
                    # order, or forward tokens (positions in the sorted list) skip an event.
                    event = {"timestamp": int(time.time() * 1000), "message": message}
                    assert plan.log_region and plan.log_stream
                    backend = _logs_backend(plan.log_region)
                    backend.put_log_events(plan.log_group, plan.log_stream, [event])

    def _wait(self) -> None:
        """Until an essential container exits; then the others are stopped (like ECS)."""
        stopping_others = False
        while True:
            done = [r for r in self.running if r.process.poll() is not None]
            if len(done) == len(self.running):
                break
            if not stopping_others and any(r.plan.essential for r in done):
                stopping_others = True
                for running in self.running:
                    if running.process.poll() is None:
                        self._signal(running.process, signal.SIGTERM)
            # The last process may exit between the poll above and this one.
            still_running = next((r for r in self.running if r.process.poll() is None), None)
            if still_running is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                still_running.process.wait(0.05)
        for running in self.running:
            # The container ends with its main process: no stragglers keep the pipes open.
            self._signal(running.process, signal.SIGKILL)
            for pump in running.pumps:
                pump.join(5.0)
        self.world.write_pgids()
        self._finish()

    # --- reporting to the control plane -------------------------------------------------

    def _mark_running(self) -> None:
        self._connected.wait()  # a dark host's agent reports when it is back
        now = utcnow()
        with self.world.lock:
            task = self.task
            if task.last_status == "STOPPED":
                return
            task.last_status = "RUNNING"
            task.started_at = now
            for container in task.containers:
                container.last_status = "RUNNING"
                running = next((r for r in self.running if r.plan.name == container.name), None)
                if running is not None:
                    container.runtime_id = f"sandbox-{running.process.pid}"
            instance = _container_instance(self.backend, task)
            if instance is not None:
                instance.pending_tasks_count = max(0, instance.pending_tasks_count - 1)
                instance.running_tasks_count += 1
            cluster = self.backend.clusters.get(task.cluster_name)
            if cluster is not None:
                cluster.pending_tasks_count = max(0, cluster.pending_tasks_count - 1)
                cluster.running_tasks_count += 1

    def _finish(self, stop_code: str | None = None, reason: str | None = None) -> None:
        self._connected.wait()
        now = utcnow()
        with self.world.lock:
            task = self.task
            if task.last_status == "STOPPED":
                return
            was_running = task.last_status == "RUNNING"
            user_stop = self.stop_requested.is_set() and not self._killed
            if self._lost is not None:
                self._lose_task(task, now, was_running)
                return
            if stop_code is None:
                stop_code = "UserInitiated" if user_stop else "EssentialContainerExited"
            task.stop_code = stop_code
            if reason is not None:
                task.stopped_reason = reason
            elif not task.stopped_reason:
                task.stopped_reason = (
                    "Task stopped by user" if user_stop else "Essential container in task exited"
                )
            exits = {r.plan.name: r.process.returncode for r in self.running}
            for container in task.containers:
                container.last_status = "STOPPED"
                code = exits.get(container.name)
                if code is not None:
                    container.exit_code = signal_exit_code(code)
                elif stop_code == "TaskFailedToStart":
                    container.reason = reason
            task.stopping_at = getattr(task, "stopping_at", None) or now
            task.execution_stopped_at = now
            task.stopped_at = now
            task.stopped_on_sandbox_clock = self.world.clock.now()  # when ECS may forget it
            task.desired_status = "STOPPED"
            task.last_status = "STOPPED"
            _release(self.backend, task, was_running)

    def _lose_task(self, task: Any, now: datetime, was_running: bool) -> None:
        task.stop_code = self._lost_code
        task.stopped_reason = self._lost
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exit_code = None
            container.reason = self._lost
        task.stopping_at = now
        task.execution_stopped_at = now
        task.stopped_at = now
        task.stopped_on_sandbox_clock = self.world.clock.now()
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
        _release(self.backend, task, was_running)


def _container_instance(backend: Any, task: Any) -> Any:
    arn = task.container_instance_arn
    if not arn:
        return None
    return backend.container_instances.get(task.cluster_name, {}).get(arn.rsplit("/", 1)[-1])


def reserve(instance: Any, cpu: int, memory: int, sign: int = 1) -> None:
    """Take (sign=1) or give back (sign=-1) a task's CPU and memory on a container instance."""
    for resource in instance.remaining_resources:
        if resource.get("name") == "CPU":
            resource["integerValue"] -= sign * cpu
        elif resource.get("name") == "MEMORY":
            resource["integerValue"] -= sign * memory


def _release(backend: Any, task: Any, was_running: bool) -> None:
    if getattr(task, "_residency_released", False):
        return
    task._residency_released = True
    cpu, memory = getattr(task, "_residency_reserved", (0, 0))
    instance = _container_instance(backend, task)
    if instance is not None:
        reserve(instance, cpu, memory, sign=-1)
        if was_running:
            instance.running_tasks_count = max(0, instance.running_tasks_count - 1)
        else:
            instance.pending_tasks_count = max(0, instance.pending_tasks_count - 1)
    cluster = backend.clusters.get(task.cluster_name)
    if cluster is not None:
        if was_running:
            cluster.running_tasks_count = max(0, cluster.running_tasks_count - 1)
        else:
            cluster.pending_tasks_count = max(0, cluster.pending_tasks_count - 1)
