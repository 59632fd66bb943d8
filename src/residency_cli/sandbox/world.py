"""What the sandbox adds around moto: simulated hosts, running task processes, a clock,
fault injection and call counting.

moto keeps one set of backends per process, so there is one World per process too
(`world()`). moto's own objects (tasks, container instances) stay the source of truth for
everything a client can read; the World only holds what moto has no place for.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from residency_cli.sandbox.state import SANDBOX_ACCOUNT_ID, SandboxCredentials

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
    # SSM's ComputerName is "the fully qualified host name of the managed node" (SSM API
    # Reference, InstanceInformation); None: the host's name as given is already that.
    computer_name: str | None = None
    # The Docker daemon's own AWS credentials: an ECS Anywhere host has none unless its owner
    # configured them, so the awslogs driver needs the task execution role (see simhost).
    daemon_credentials: bool = False

    @property
    def fqdn(self) -> str:
        return self.computer_name or self.hostname

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
    """An armed fault: the next `remaining` calls of an operation answer `code` (HTTP
    `status`); `kind` "reset" drops the connection instead; `after` lets moto handle the
    request first, so its effect happens and only the answer is lost."""

    code: str
    status: int
    message: str
    remaining: int
    kind: str = "error"
    after: bool = False


FAULT_KINDS = ("throttle", "error", "reset", "slow")
FAULT_SERVICES = ("ecs", "ssm", "logs", "s3", "sts")
# Services that the spec's plain rates (`throttle=0.2`) apply to. S3 is left out: the task
# processes' own uploads go there, and the jobs should not fail because of a global rate.
DEFAULT_FAULT_SERVICES = ("ecs", "ssm", "logs", "sts")
DEFAULT_SLOW_SECONDS = 0.5
MAX_SLOW_SECONDS = 20.0  # below residency's read timeout (30 s)
_OPERATION = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}$")
FAULT_SPEC_HELP = (
    "KIND=RATE[,...] with KIND throttle, error, reset or slow, RATE from 0 to 1; "
    "KIND:Operation=RATE, KIND:service=RATE or KIND:service:Operation=RATE for one "
    "operation or service (ecs, ssm, logs, s3, sts); slow_seconds=S; "
    "e.g. throttle=0.2,error=0.05,reset:RunTask=0.5"
)


class FaultSpecError(ValueError):
    """A fault spec that does not parse; the message is one line."""


@dataclass(frozen=True)
class FaultPlan:
    """Random faults on a share of requests: rates by (kind, target), where target is ""
    (every default service), a service ("s3"), an operation ("RunTask") or both
    ("ecs:RunTask"). The most specific rule for a request wins, per kind."""

    rates: dict[tuple[str, str], float] = field(default_factory=dict)
    slow_seconds: float = DEFAULT_SLOW_SECONDS
    spec: str = ""

    def __bool__(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def rate(self, kind: str, service: str, operation: str) -> float:
        for target in (f"{service}:{operation}", operation, service):
            if (kind, target) in self.rates:
                return self.rates[(kind, target)]
        if service in DEFAULT_FAULT_SERVICES:
            return self.rates.get((kind, ""), 0.0)
        return 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "rates": {(f"{k}:{t}" if t else k): r for (k, t), r in sorted(self.rates.items())},
            "slow_seconds": self.slow_seconds,
        }


def _rate(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{item!r}: {text!r} is not a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise FaultSpecError(f"{item!r}: the rate must be from 0 to 1")
    return value


def _target(target: str, item: str) -> str:
    if not target:
        raise FaultSpecError(f"{item!r}: empty operation or service after ':'")
    service, _, operation = target.partition(":")
    if operation:
        if service not in FAULT_SERVICES:
            raise FaultSpecError(
                f"{item!r}: unknown service {service!r} ({', '.join(FAULT_SERVICES)})"
            )
        if not _OPERATION.match(operation):
            raise FaultSpecError(f"{item!r}: {operation!r} is not an operation name like RunTask")
        return target
    if target[0].islower():
        if target not in FAULT_SERVICES:
            raise FaultSpecError(
                f"{item!r}: unknown service {target!r} ({', '.join(FAULT_SERVICES)})"
            )
        return target
    if not _OPERATION.match(target):
        raise FaultSpecError(f"{item!r}: {target!r} is not an operation name like RunTask")
    return target


def _slow_seconds(value: str, item: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise FaultSpecError(f"{item!r}: {value!r} is not a number of seconds") from None
    if not 0.0 <= seconds <= MAX_SLOW_SECONDS:
        raise FaultSpecError(f"{item!r}: slow_seconds must be from 0 to {MAX_SLOW_SECONDS:g}")
    return seconds


def _split_item(raw: str, text: str) -> tuple[str, str, str]:
    """One comma-separated item as (item, key, value); FaultSpecError unless it is KEY=VALUE."""
    item = raw.strip()
    if not item:
        raise FaultSpecError(f"empty item in {text!r}")
    key, equals, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not value:
        raise FaultSpecError(f"{item!r}: expected KIND=RATE")
    return item, key, value


def _add_rate(rates: dict[tuple[str, str], float], item: str, key: str, value: str) -> None:
    """Adds `KIND[:TARGET]=RATE` to `rates`, refusing an unknown kind or a rule given twice."""
    kind, _, target = key.partition(":")
    if kind not in FAULT_KINDS:
        raise FaultSpecError(
            f"{item!r}: unknown fault {kind!r} ({', '.join(FAULT_KINDS)}, slow_seconds)"
        )
    if ":" in key:
        target = _target(target, item)
    if (kind, target) in rates:
        raise FaultSpecError(f"{item!r}: {key} is given twice")
    rates[(kind, target)] = _rate(value, item)


def _check_totals(plan: FaultPlan) -> None:
    """Refuses a plan where the rates that apply to one request add up to more than 1."""
    for target in sorted({t for _, t in plan.rates} | {""}):
        # A request this rule can apply to, with every broader rule that applies with it.
        if ":" in target:
            service, operation = target.split(":", 1)
        elif target[:1].islower():
            service, operation = target, "-"
        else:
            service, operation = "ecs", target or "-"
        total = sum(plan.rate(kind, service, operation) for kind in FAULT_KINDS)
        if total > 1.0 + 1e-9:
            where = f" for {target}" if target else ""
            raise FaultSpecError(f"the rates{where} add up to {total:g}, more than 1")


def parse_fault_spec(spec: str | Mapping[str, float] | None) -> FaultPlan:
    """`throttle=0.2,error=0.05,reset=0.05,slow=0.1,slow_seconds=0.5,throttle:RunTask=0.5`
    (or the same as a mapping); FaultSpecError with one line when it does not parse. Empty,
    None or "none": no faults."""
    if spec is None:
        return FaultPlan()
    if isinstance(spec, Mapping):
        spec = ",".join(f"{k}={v}" for k, v in spec.items())
    text = spec.strip()
    if text in ("", "none", "off"):
        return FaultPlan(spec="")
    rates: dict[tuple[str, str], float] = {}
    slow_seconds: float | None = None
    for raw in text.split(","):
        item, key, value = _split_item(raw, text)
        if key != "slow_seconds":
            _add_rate(rates, item, key, value)
        elif slow_seconds is not None:
            raise FaultSpecError("slow_seconds is given twice")
        else:
            slow_seconds = _slow_seconds(value, item)
    plan = FaultPlan(
        rates,
        DEFAULT_SLOW_SECONDS if slow_seconds is None else slow_seconds,
        ",".join(p.strip() for p in text.split(",")),
    )
    _check_totals(plan)
    return plan


@dataclass(frozen=True)
class Injection:
    """What one request gets: kind throttle/error (an AWS error answer), reset (the
    connection is dropped without an answer) or slow (the answer is delayed); error and
    reset happen before moto handles the request or, with `after`, once it has."""

    kind: str
    after: bool = False
    status: int = 0
    code: str = ""
    message: str = ""
    delay: float = 0.0

    def fault(self) -> Fault:
        return Fault(self.code, self.status, self.message, 1, self.kind, self.after)


def decide(plan: FaultPlan, seed: int, service: str, operation: str, n: int) -> Injection | None:
    """The fault for the `n`th call of (service, operation), from a generator seeded by
    (seed, service, operation, n): the same seed gives the same faults on the same calls
    whatever other calls happen in between or in which order."""
    rates = [(kind, plan.rate(kind, service, operation)) for kind in FAULT_KINDS]
    if not any(rate for _, rate in rates):
        return None
    rng = random.Random(f"{seed}/{service}/{operation}/{n}")
    draw = rng.random()
    after = rng.random() < 0.5
    variant = rng.random() < 0.5
    for kind, rate in rates:
        if draw >= rate:
            draw -= rate
            continue
        if kind == "throttle":
            if service == "s3":
                return Injection(kind, status=503, code="SlowDown",
                                 message="Please reduce your request rate.")  # fmt: skip
            return Injection(kind, status=400, code="ThrottlingException", message="Rate exceeded")
        if kind == "error":
            if variant:
                code = "InternalError" if service == "s3" else "InternalFailure"
                return Injection(kind, after, 500, code, "injected by the sandbox")
            return Injection(kind, after, 503, "ServiceUnavailable", "injected by the sandbox")
        if kind == "reset":
            return Injection(kind, after)
        return Injection(kind, delay=plan.slow_seconds)
    return None


@dataclass
class Faults:
    """Injected errors (the next N calls of an operation fail), random faults on a share of
    requests (a FaultPlan and its seed) and per-operation counters."""

    pending: dict[str, Fault] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, service:op)
    plan: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_call(self, service: str, operation: str) -> tuple[Fault | None, Injection | None]:
        """Count one call; the armed fault for it, else the plan's random fault, if any."""
        with self.lock:
            self.counts[(service, operation)] += 1
            for key in (f"{service}:{operation}", operation):
                fault = self.pending.get(key)
                if fault is not None and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self.pending[key]
                    self.injected[(fault.kind, f"{service}:{operation}")] += 1
                    return fault, None
            if not self.plan:
                return None, None
            n = self.counts[(service, operation)]
            injection = decide(self.plan, self.seed, service, operation, n)
            if injection is not None:
                self.injected[(injection.kind, f"{service}:{operation}")] += 1
            return None, injection

    def arm(self, operation: str, fault: Fault) -> None:
        with self.lock:
            self.pending[operation] = fault

    def configure(self, plan: FaultPlan, seed: int) -> None:
        with self.lock:
            self.plan = plan
            self.seed = seed

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

    def injected_counts(self) -> dict[str, int]:
        """How many faults were injected, by "kind" and "kind service:Operation"."""
        with self.lock:
            totals: Counter[str] = Counter()
            for (kind, operation), n in self.injected.items():
                totals[kind] += n
                totals[f"{kind} {operation}"] += n
            return dict(sorted(totals.items()))

    def clear(self) -> None:
        """Counters and armed faults; the plan stays (see clear_plan)."""
        with self.lock:
            self.pending.clear()
            self.counts.clear()
            self.injected.clear()

    def clear_plan(self) -> None:
        with self.lock:
            self.plan = FaultPlan()
            self.seed = 0


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
        # Seconds after STOPPED when DescribeTasks shows a task DELETED (None: never).
        self.deleted_after: float | None = None
        self.pgid_file: Path | None = None
        # The only credentials the server accepts (auth.py): one pair per process, made when
        # the process starts its first sandbox (`sandbox up` starts a new daemon each time).
        self.credentials = SandboxCredentials.generate()
        # The map's location attribute (seed sets it): a joining host's label must agree
        # with its activation's location.
        self.location_attribute = "location"

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
            **self.credentials.environment(),
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "HOSTNAME": hostname,
            "RESIDENCY_SANDBOX_HOSTNAME": hostname,
        }

    def register_runtime(self, runtime: TaskRuntime) -> None:
        with self.lock:
            self.runtimes[runtime.task_arn] = runtime

    def forget_runtime(self, runtime: TaskRuntime) -> None:
        """A runtime whose task has stopped is dropped: the sandbox keeps no per-task state
        beyond what moto keeps (so a long-running sandbox does not grow with every task)."""
        with self.lock:
            if self.runtimes.get(runtime.task_arn) is runtime:
                del self.runtimes[runtime.task_arn]

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
            self.deleted_after = None
            self.clock.reset()
        self.faults.clear()
        self.faults.clear_plan()


_WORLD = World()


def world() -> World:
    return _WORLD


def moto_module(name: str) -> Any:
    """Import a moto module as an untyped value: the sandbox reaches into moto's internals
    (pinned versions), which its type hints do not describe."""
    import importlib

    return importlib.import_module(name)
