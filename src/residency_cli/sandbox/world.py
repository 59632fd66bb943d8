"""What the sandbox adds around moto: simulated hosts, running task processes, a clock,
fault injection and call counting.

moto keeps one set of backends per process, so there is one World per process too
(`world()`). moto's own objects (tasks, container instances) stay the source of truth for
everything a client can read; the World only holds what moto has no place for.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from residency_cli.sandbox.state import SANDBOX_ACCESS_KEY, SANDBOX_ACCOUNT_ID, SANDBOX_SECRET_KEY

if TYPE_CHECKING:
    from residency_cli.sandbox.simhost import TaskRuntime

ACCOUNT_ID = SANDBOX_ACCOUNT_ID
DAY_SECONDS = 24 * 3600.0


class SandboxClock:
    """Wall-clock time plus an offset that tests can advance (clientToken expiry)."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0


@dataclass
class HostSpec:
    """One simulated ECS Anywhere host: what SSM knows of it and where its disk lives."""

    hostname: str
    instance_id: str
    region: str
    cluster: str
    root: Path
    ip_address: str
    container_instance_arn: str = ""
    location: str | None = None

    def local_path(self, host_path: str) -> Path:
        """The local folder that stands for `host_path` on this host."""
        return self.root / host_path.strip("/")


@dataclass
class ImageSpec:
    """An image's files: the container path they live at, and the local folder holding them."""

    container_path: str
    local: Path


@dataclass
class Fault:
    code: str
    status: int
    message: str
    remaining: int


@dataclass
class Faults:
    """Injected errors (the next N calls of an operation fail) and per-operation counters."""

    pending: dict[str, Fault] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, service: str, operation: str) -> Fault | None:
        """Count one call; return the fault to answer with, if one is armed for it."""
        with self.lock:
            self.counts[(service, operation)] += 1
            for key in (f"{service}:{operation}", operation):
                fault = self.pending.get(key)
                if fault is not None and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self.pending[key]
                    return fault
        return None

    def arm(self, operation: str, fault: Fault) -> None:
        with self.lock:
            self.pending[operation] = fault

    def calls(self, operation: str | None = None) -> int:
        with self.lock:
            if operation is None:
                return sum(self.counts.values())
            if ":" in operation:
                service, name = operation.split(":", 1)
                return self.counts[(service, name)]
            return sum(n for (_, name), n in self.counts.items() if name == operation)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {f"{s}:{o}": n for (s, o), n in sorted(self.counts.items())}

    def clear(self) -> None:
        with self.lock:
            self.pending.clear()
            self.counts.clear()


class World:
    """The sandbox's own state beside moto's backends (one per process)."""

    def __init__(self) -> None:
        self.enabled = False
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        self.faults = Faults()
        self.endpoint = ""
        self.region = "us-east-1"
        self.workdir = Path(".")
        self.hosts: dict[str, HostSpec] = {}  # by instance id (mi-...)
        self.images: dict[str, ImageSpec] = {}
        self.runtimes: dict[str, TaskRuntime] = {}  # by task ARN
        self.misplace: list[str] = []  # container-instance ids the next RunTasks land on
        self.pgid_file: Path | None = None

    # --- hosts --------------------------------------------------------------------------

    def host_for_instance(self, instance_id: str) -> HostSpec | None:
        return self.hosts.get(instance_id)

    def host_by_container_instance(self, arn: str) -> HostSpec | None:
        wanted = arn.rsplit("/", 1)[-1]
        for host in self.hosts.values():
            if host.container_instance_arn.rsplit("/", 1)[-1] == wanted:
                return host
        return None

    def image_for(self, image: str) -> ImageSpec | None:
        if image in self.images:
            return self.images[image]
        untagged = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        return self.images.get(untagged)

    # --- task processes -----------------------------------------------------------------

    def task_environment(self, hostname: str) -> dict[str, str]:
        """What every task process gets so that its AWS SDK talks to the sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "HOSTNAME": hostname,
            "RESIDENCY_SANDBOX_HOSTNAME": hostname,
        }

    def register_runtime(self, runtime: TaskRuntime) -> None:
        with self.lock:
            self.runtimes[runtime.task_arn] = runtime

    def process_groups(self) -> list[int]:
        with self.lock:
            return [g for r in self.runtimes.values() for g in r.live_process_groups()]

    def write_pgids(self) -> None:
        """Record live task process groups, so `sandbox down` can reap them after a SIGKILL."""
        if self.pgid_file is None:
            return
        groups = self.process_groups()
        temporary = self.pgid_file.with_suffix(".tmp")
        try:
            temporary.write_text("".join(f"{g}\n" for g in groups), encoding="utf-8")
            temporary.replace(self.pgid_file)
        except OSError:
            pass

    def kill_all_tasks(self, timeout: float = 5.0) -> None:
        """Stop every task process now (SIGKILL) and wait for the runtimes to finish."""
        with self.lock:
            runtimes = list(self.runtimes.values())
        for runtime in runtimes:
            runtime.kill()
        deadline = time.monotonic() + timeout
        for runtime in runtimes:
            runtime.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            self.runtimes.clear()
        self.write_pgids()

    def reset(self) -> None:
        """Forget everything the sandbox added (after moto's own reset)."""
        self.kill_all_tasks()
        with self.lock:
            self.hosts.clear()
            self.misplace.clear()
            self.clock.reset()
        self.faults.clear()


_WORLD = World()


def world() -> World:
    return _WORLD


def moto_module(name: str) -> Any:
    """Import a moto module as an untyped value: the sandbox reaches into moto's internals
    (pinned versions), which its type hints do not describe."""
    import importlib

    return importlib.import_module(name)
