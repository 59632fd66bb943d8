"""`residency sandbox up|down|status|env|join` as library functions that return data.

`up` starts `python -m residency_cli.sandbox.daemon` detached (its output goes to
`<state dir>/sandbox.log`), waits until it answers, and returns where it listens. The
daemon writes the state file itself once it is seeded; `down` signals the recorded pid
(SIGTERM, then SIGKILL after a bounded wait) and reaps task processes left behind.
Nothing here imports moto: only the daemon does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from residency_cli.errors import AwsError, ResidencyError, UsageError
from residency_cli.sandbox.state import (
    PRIVATE_FILE_MODE,
    SandboxState,
    clear_state,
    private_dir,
    process_running,
    read_state,
    state_dir,
)

DEFAULT_PORT = 4599
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 20.0
STOP_GRACE_SECONDS = 5.0
HEALTH_PATH = "/residency-sandbox/health"
JOIN_PATH = "/residency-sandbox/join"
JOIN_TIMEOUT_SECONDS = 10.0
EXAMPLE_ATTRIBUTES_HINT = 'e.g. --attributes \'{"location":"newyork"}\''


@dataclass(frozen=True)
class SandboxStatus:
    running: bool
    endpoint: str | None = None
    pid: int | None = None
    port: int | None = None
    region: str | None = None
    config: str | None = None
    workdir: str | None = None
    answering: bool = False
    stale_pid: int | None = None  # a record of a dead sandbox was found and removed
    log_file: str | None = None
    seconds: float | None = None  # how long `up` took
    faults: str | None = None  # the fault spec it injects (`up --faults`), None for none
    fault_seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "endpoint": self.endpoint,
            "pid": self.pid,
            "port": self.port,
            "region": self.region,
            "config": self.config,
            "workdir": self.workdir,
            "answering": self.answering,
            "stale_pid": self.stale_pid,
            "log_file": self.log_file,
            "faults": self.faults,
            "fault_seed": self.fault_seed,
        }


def log_file() -> Path:
    return state_dir() / "sandbox.log"


def workdir() -> Path:
    return state_dir() / "sandbox"


def health(endpoint: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The residency sandbox's health answer at `endpoint` (pid, region, faults), or None."""
    try:
        with urllib.request.urlopen(endpoint + HEALTH_PATH, timeout=timeout) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) and answer.get("residency_sandbox") else None


def answers(endpoint: str, timeout: float = 1.0) -> bool:
    """Does a residency sandbox answer at `endpoint`?"""
    return health(endpoint, timeout) is not None


def _fault_fields(answer: dict[str, Any] | None) -> tuple[str | None, int | None]:
    if not answer or not answer.get("faults"):
        return None, None
    seed = answer.get("fault_seed")
    return str(answer["faults"]), int(seed) if isinstance(seed, int) else None


def check_faults(spec: str | None, seed: int | None) -> tuple[str | None, int]:
    """`up --faults SPEC --fault-seed N`: the normalised spec (None for none) and the seed
    (a random one when not given, so that it can be recorded and replayed).
    UsageError (exit 2) with one line for a spec that does not parse."""
    from residency_cli.sandbox.world import FAULT_SPEC_HELP, FaultSpecError, parse_fault_spec

    if seed is not None and not 0 <= seed < 2**63:
        raise UsageError(f"--fault-seed {seed} must be from 0 to 2**63-1")
    try:
        plan = parse_fault_spec(spec)
    except FaultSpecError as error:
        raise UsageError(f"--faults: {error}", hint=FAULT_SPEC_HELP) from None
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**31)
    return (plan.spec or None) if plan else None, seed


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so that a dead child is not a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    return process_running(pid)


def _recorded() -> tuple[SandboxState | None, int | None]:
    """The running sandbox's record; a record of a dead process is removed (its pid returned)."""
    state = read_state()
    if state is None:
        return None, None
    if not _alive(state.pid):
        clear_state()
        _kill_task_groups(Path(state.workdir))
        return None, state.pid
    return state, None


def status() -> SandboxStatus:
    state, stale = _recorded()
    if state is None:
        return SandboxStatus(running=False, stale_pid=stale, log_file=str(log_file()))
    answer = health(state.endpoint)
    faults, fault_seed = _fault_fields(answer)
    return SandboxStatus(
        running=True,
        endpoint=state.endpoint,
        pid=state.pid,
        port=state.port,
        region=state.region,
        config=state.config,
        workdir=state.workdir,
        answering=answer is not None,
        log_file=str(log_file()),
        faults=faults,
        fault_seed=fault_seed,
    )


def _port_free(port: int) -> bool:
    """Could the sandbox listen on `port`? The probe binds as the server will: werkzeug's
    server sets SO_REUSEADDR (socketserver's allow_reuse_address), so connections of an
    earlier sandbox lingering in TIME_WAIT (about a minute after `down`) do not make the port
    "in use"; only a listener does (socket(7): SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _check_can_start(port: int) -> int | None:
    """Refuses (UsageError) when a sandbox is already running or `port` cannot be listened
    on; returns the pid of a sandbox that died without cleaning up, if any."""
    state, stale = _recorded()
    if state is not None:
        raise UsageError(
            f"the sandbox is already running at {state.endpoint} (pid {state.pid})",
            hint="use it, or stop it first with `residency sandbox down`",
        )
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port (0-65535; 0 picks a free one)")
    if port and not _port_free(port):
        raise UsageError(
            f"port {port} on {HOST} is already in use",
            hint="pick another with `residency sandbox up --port N` (0 picks a free one)",
        )
    return stale


def _daemon_command(
    port: int,
    map_path: Path,
    directory: Path,
    label_hosts: bool,
    faults: str | None,
    seed: int | None,
) -> list[str]:
    """The daemon's command line (residency_cli.sandbox.daemon)."""
    command = [
        sys.executable,
        "-m",
        "residency_cli.sandbox.daemon",
        "--port",
        str(port),
        "--map",
        str(map_path.resolve()),
        "--workdir",
        str(directory),
    ]
    if label_hosts:
        command.append("--label-hosts")
    if faults:
        command += ["--faults", faults, "--fault-seed", str(seed)]
    return command


def up(
    map_path: Path,
    port: int = DEFAULT_PORT,
    *,
    label_hosts: bool = False,
    timeout: float = START_TIMEOUT_SECONDS,
    faults: str | None = None,
    fault_seed: int | None = None,
) -> SandboxStatus:
    """Start the sandbox in the background, seeded from `map_path`; return where it listens.
    With `faults` (see world.parse_fault_spec) it answers a share of requests with
    throttling, 5xx, dropped connections or delays, drawn from `fault_seed`.

    Refuses (UsageError, exit 2) when one is already running, the port is taken or the
    fault spec does not parse.
    """
    started = time.monotonic()
    faults, seed = check_faults(faults, fault_seed)
    stale = _check_can_start(port)
    from residency_cli.sandbox.seed import load_map

    load_map(map_path)  # a bad map is reported here, before anything starts
    private_dir(state_dir())
    directory = workdir()
    for stale_dir in ("hosts", "tasks"):
        shutil.rmtree(directory / stale_dir, ignore_errors=True)
    private_dir(directory)
    log = log_file()
    command = _daemon_command(port, map_path, directory, label_hosts, faults, seed)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)  # a log left by an older residency was 0644
    with os.fdopen(descriptor, "ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=directory,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            tail = _log_tail(log)
            if code == 98:
                raise UsageError(
                    f"port {port} on {HOST} is already in use",
                    hint="pick another with `residency sandbox up --port N`",
                )
            raise ResidencyError(
                f"the sandbox did not start (exit {code}); last lines of {log}:\n{tail}"
            )
        recorded = read_state()
        answer = health(recorded.endpoint) if recorded and recorded.pid == process.pid else None
        if recorded is not None and answer is not None:
            injecting, injecting_seed = _fault_fields(answer)
            return SandboxStatus(
                running=True,
                endpoint=recorded.endpoint,
                pid=recorded.pid,
                port=recorded.port,
                region=recorded.region,
                config=recorded.config,
                workdir=recorded.workdir,
                answering=True,
                stale_pid=stale,
                log_file=str(log),
                seconds=time.monotonic() - started,
                faults=injecting,
                fault_seed=injecting_seed,
            )
        time.sleep(0.05)
    _terminate(process.pid, Path(directory))
    raise ResidencyError(f"the sandbox did not answer within {timeout:.0f}s; see {log}")


def _kill_task_groups(directory: Path) -> None:
    """Task processes the daemon recorded (in their own process groups) are killed."""
    try:
        groups = [int(line) for line in (directory / "task-pgids").read_text().split()]
    except (OSError, ValueError):
        return
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(OSError):
        (directory / "task-pgids").unlink()


def _terminate(pid: int, directory: Path, grace: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM, then SIGKILL (the daemon's whole process group) after `grace` seconds.
    Returns True when SIGKILL was needed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    killed = False
    if _alive(pid):
        killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
    _kill_task_groups(directory)
    return killed


@dataclass(frozen=True)
class SandboxStarted:
    """`sandbox up`'s answer: the status of the sandbox it started (JSON: the status)."""

    status: SandboxStatus

    def to_json(self) -> Any:
        from residency_cli.results import to_jsonable

        return to_jsonable(self.status)


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    pid: int | None = None
    forced: bool = False
    stale_pid: int | None = None
    removed: tuple[str, ...] = ()  # the sandbox's files `down` deleted (none with --keep)
    kept: tuple[str, ...] = ()  # those it left, with --keep

    def to_json(self) -> dict[str, Any]:
        return {
            "was_running": self.was_running,
            "pid": self.pid,
            "forced": self.forced,
            "stale_pid": self.stale_pid,
            "removed": list(self.removed),
            "kept": list(self.kept),
        }


def _sandbox_files() -> list[Path]:
    """What a sandbox leaves in the state directory: its working directory (simulated hosts'
    disks with copies of employee files, task folders, reports) and its log. The directory's
    other files (the dispatch journal) are not the sandbox's and stay."""
    return [p for p in (workdir(), log_file()) if p.exists() or p.is_symlink()]


def _remove(paths: list[Path]) -> tuple[str, ...]:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return tuple(str(p) for p in paths)


def down(grace: float = STOP_GRACE_SECONDS, *, keep: bool = False) -> StopResult:
    """Stop the running sandbox and every task process it started, then delete its files
    (unless `keep`: to read the log or a host's files afterwards). The record, which holds
    its credentials, goes in any case. With none running, files left behind go too."""
    state, stale = _recorded()
    if state is None:
        files = _sandbox_files()
        if keep:
            return StopResult(was_running=False, stale_pid=stale, kept=tuple(map(str, files)))
        return StopResult(was_running=False, stale_pid=stale, removed=_remove(files))
    forced = _terminate(state.pid, Path(state.workdir), grace)
    if _alive(state.pid):
        raise ResidencyError(f"the sandbox (pid {state.pid}) did not stop, even after SIGKILL")
    recorded = read_state()
    if recorded is not None and recorded.pid == state.pid:
        clear_state()
    files = _sandbox_files()
    if keep:
        return StopResult(
            was_running=True, pid=state.pid, forced=forced, kept=tuple(map(str, files))
        )
    return StopResult(was_running=True, pid=state.pid, forced=forced, removed=_remove(files))


def environment(state: SandboxState | None = None) -> dict[str, str]:
    """The variables that point any AWS client at the running sandbox."""
    if state is None:
        state, _ = _recorded()
    if state is None:
        raise AwsError("the sandbox is not running", hint="start it with `residency sandbox up`")
    if state.credentials is None:
        raise AwsError(
            "the sandbox's record holds no credentials (an older residency started it)",
            hint="restart it: `residency sandbox down && residency sandbox up`",
        )
    return {
        "AWS_ENDPOINT_URL": state.endpoint,
        **state.credentials.environment(),
        "AWS_DEFAULT_REGION": state.region,
        "AWS_REGION": state.region,
    }


def export_lines(variables: dict[str, str]) -> list[str]:
    import shlex

    return [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]


@dataclass(frozen=True)
class JoinResult:
    hostname: str
    instance_id: str
    container_instance_arn: str
    cluster: str
    region: str
    activation_id: str
    attributes: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "instance_id": self.instance_id,
            "container_instance_arn": self.container_instance_arn,
            "cluster": self.cluster,
            "region": self.region,
            "activation_id": self.activation_id,
            "attributes": dict(self.attributes),
        }


def parse_attributes(text: str | None) -> dict[str, str]:
    """`--attributes`: ECS_INSTANCE_ATTRIBUTES's JSON object of names to string values."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageError(
            f"--attributes is not JSON: {error}", hint=EXAMPLE_ATTRIBUTES_HINT
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise UsageError(
            "--attributes must be a JSON object of names to string values",
            hint=EXAMPLE_ATTRIBUTES_HINT,
        )
    return value


def _map_cluster(state: SandboxState) -> str:
    """The cluster of the map the sandbox was seeded from (where `up` put the hosts)."""
    from residency_cli.sandbox.seed import EXAMPLE_MAP, load_map

    try:
        config = load_map(Path(state.config) if state.config else EXAMPLE_MAP)
    except ResidencyError:
        return "default"
    return config.cluster.rsplit("/", 1)[-1]


def join(
    hostname: str,
    activation_id: str,
    activation_code: str,
    *,
    attributes: dict[str, str] | None = None,
    region: str | None = None,
    cluster: str | None = None,
    timeout: float = JOIN_TIMEOUT_SECONDS,
) -> JoinResult:
    """A new host joins the running sandbox's cluster with an SSM activation, labelled with
    `attributes` from its first moment, as the ECS Anywhere install script does on a real host.

    UsageError (exit 2) when the sandbox refuses (wrong code, expired, over the limit, unknown
    activation, hostname taken...); AwsError (exit 7) when no sandbox runs or it does not answer.
    """
    state, _ = _recorded()
    if state is None:
        raise AwsError("the sandbox is not running", hint="start it with `residency sandbox up`")
    request = {
        "hostname": hostname,
        "activation_id": activation_id,
        "activation_code": activation_code,
        "cluster": cluster or _map_cluster(state),
        "region": region or state.region,
        "attributes": dict(attributes or {}),
    }
    body = json.dumps(request).encode()
    call = urllib.request.Request(
        state.endpoint + JOIN_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            problem = json.loads(error.read())
        except ValueError:
            problem = {}
        if error.code == 400 and isinstance(problem, dict) and problem.get("error"):
            raise UsageError(f"{problem['error']}: {problem.get('message', '')}") from None
        raise ResidencyError(
            f"the sandbox at {state.endpoint} answered HTTP {error.code} to {JOIN_PATH}",
            hint=f"see {log_file()}",
        ) from None
    except (OSError, ValueError) as error:
        raise AwsError(
            f"the sandbox at {state.endpoint} does not answer: {error}",
            hint="`residency sandbox status` tells whether it runs",
        ) from None
    return JoinResult(
        hostname=str(answer["hostname"]),
        instance_id=str(answer["instance_id"]),
        container_instance_arn=str(answer["container_instance_arn"]),
        cluster=str(answer["cluster"]),
        region=str(answer["region"]),
        activation_id=str(answer["activation_id"]),
        attributes={str(k): str(v) for k, v in (answer.get("attributes") or {}).items()},
    )
