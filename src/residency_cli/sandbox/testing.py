"""The in-process sandbox for tests (the `sandbox` pytest fixture in tests/conftest.py).

One server per test session; every test starts from a fresh, seeded sandbox. Helpers read
and change the sandbox directly (their calls are neither counted nor faulted), so a test
can assert exactly how many AWS calls the code under test made.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from residency_cli.sandbox.seed import (
    EXAMPLE_MAP,
    SimHost,
    internal_client,
    load_bundle,
    load_map,
    sandbox_region,
    seed,
)
from residency_cli.sandbox.server import SandboxServer
from residency_cli.sandbox.state import SandboxState, write_state
from residency_cli.sandbox.world import (
    Fault,
    FaultPlan,
    SandboxClock,
    moto_module,
    parse_fault_spec,
    world,
)

if TYPE_CHECKING:
    from residency_cli.aws import Clients
    from residency_cli.config import Config
    from residency_cli.sandbox.state import SandboxCredentials

TEST_IMAGE = "sandbox/shell:latest"
TEST_LOG_GROUP = "/residency/tests"
# awslogs on an external instance needs the task execution role (see simhost).
TEST_EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
_DEFAULT = object()


class SandboxFixture:
    """A fresh seeded sandbox for one test (docs/sandbox.md, "In tests", lists the API)."""

    def __init__(self, server: SandboxServer, config_path: Path = EXAMPLE_MAP) -> None:
        self._server = server
        self.endpoint = server.endpoint
        self.config_path = config_path
        self.config: Config = load_map(config_path)
        self.region = sandbox_region(self.config)
        self.cluster = self.config.cluster
        self.clock: SandboxClock = world().clock
        self.hosts: dict[str, SimHost] = {}
        self.task_definitions: dict[str, str] = {}
        self.buckets: dict[str, str] = {}
        self.workdir = server.workdir

    # --- lifecycle ----------------------------------------------------------------------

    def reset(self, *, label_hosts: bool = False) -> SandboxFixture:
        """Empty everything, then seed again from the map (hosts unlabelled by default)."""
        self._server.reset()
        sandbox = world()
        sandbox.enabled = True
        result = seed(
            self.config,
            load_bundle(self.config_path),
            endpoint=self.endpoint,
            region=self.region,
            label_hosts=label_hosts,
        )
        self.hosts = result.hosts
        self.task_definitions = result.task_definitions
        self.buckets = result.buckets
        logs = self._internal("logs")
        logs.create_log_group(logGroupName=TEST_LOG_GROUP)
        sandbox.faults.clear()
        sandbox.faults.clear_plan()
        return self

    def close(self) -> None:
        """Kill task processes; leave moto stock for tests that use `mock_aws`."""
        sandbox = world()
        sandbox.kill_all_tasks()
        sandbox.faults.clear()
        sandbox.faults.clear_plan()
        sandbox.enabled = False

    # --- clients and environment --------------------------------------------------------

    def client(self, service: str, region: str | None = None, **config: Any) -> Any:
        """A boto3 client for the sandbox with its credentials (counted like any client)."""
        from botocore.config import Config as BotoConfig

        from residency_cli.sandbox.seed import _session

        return _session(region or self.region).client(
            service,
            endpoint_url=self.endpoint,
            config=BotoConfig(**config) if config else None,
        )

    def clients(self) -> Clients:
        """residency's own `Clients`, pointed at the sandbox."""
        from residency_cli.aws import AwsSettings, Clients

        return Clients(
            AwsSettings(
                region=self.region,
                endpoint_url=self.endpoint,
                credentials=self.credentials.boto(),
            )
        )

    @property
    def credentials(self) -> SandboxCredentials:
        """The only credentials the sandbox accepts (generated when this process started it)."""
        return world().credentials

    def env(self) -> dict[str, str]:
        """Variables that point any AWS client (and `residency --endpoint-url`) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            **self.credentials.environment(),
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def use(self, monkeypatch: Any, state_dir: Path | None = None) -> dict[str, str]:
        """Point the CLI here: AWS variables, RESIDENCY_CONFIG, and a state file so that
        `residency --sandbox ...` finds this in-process sandbox. Returns the variables."""
        variables = self.env()
        variables["RESIDENCY_CONFIG"] = str(self.config_path)
        directory = state_dir or (self.workdir / "state")
        variables["RESIDENCY_STATE_DIR"] = str(directory)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        write_state(
            SandboxState(
                endpoint=self.endpoint,
                pid=os.getpid(),
                port=self._server.port,
                region=self.region,
                workdir=str(self.workdir),
                config=str(self.config_path),
                credentials=self.credentials,
            )
        )
        return variables

    def _internal(self, service: str, region: str | None = None) -> Any:
        return internal_client(service, self.endpoint, region or self.region)

    # --- hosts --------------------------------------------------------------------------

    def host(self, reference: str) -> SimHost:
        """A seeded host by hostname, mi- id, container-instance id or ARN."""
        for host in self.hosts.values():
            if reference in (
                host.hostname,
                host.instance_id,
                host.container_instance_arn,
                host.container_instance_id,
            ):
                return host
        raise KeyError(f"no simulated host {reference!r}; known: {', '.join(self.hosts)}")

    def label(self, reference: str, location: str | None) -> None:
        """Set (or with None remove) the host's location attribute."""
        host = self.host(reference)
        attribute = {
            "name": self.config.location_attribute,
            "targetId": host.container_instance_arn,
        }
        ecs = self._internal("ecs")
        if location is None:
            ecs.delete_attributes(cluster=self.cluster, attributes=[attribute])
        else:
            ecs.put_attributes(cluster=self.cluster, attributes=[{**attribute, "value": location}])

    def add_fleet(
        self, count: int, locations: Sequence[str], *, prefix: str = "fleet"
    ) -> list[str]:
        """`count` more hosts, labelled with `locations` in turn (`fleet-00000.LOCATION`...),
        registered straight into the sandbox's backends: no request, so none is counted, and
        5,000 hosts take about a second (the scale tests and bench/scale_bench.py). Their
        hostnames; `host()` does not know them."""
        from residency_cli.sandbox.moto_ext import register_managed_instance
        from residency_cli.sandbox.world import ACCOUNT_ID

        cluster = self.cluster.rsplit("/", 1)[-1]
        backend = moto_module("moto.ecs.models").ecs_backends[ACCOUNT_ID][self.region]
        names = []
        for index in range(count):
            location = locations[index % len(locations)]
            hostname = f"{prefix}-{index:05d}.{location}"
            spec = register_managed_instance(
                self.region, cluster, hostname, root=self.workdir / "fleet" / hostname
            )
            instance = backend.container_instances[cluster][
                spec.container_instance_arn.rsplit("/", 1)[-1]
            ]
            with world().lock:
                spec.location = location
                instance.attributes[self.config.location_attribute] = location
            names.append(hostname)
        return names

    def label_all(self) -> None:
        """Label every host with its location from the map's `hosts:` section."""
        for host in self.hosts.values():
            self.label(host.hostname, host.location)

    def drain(self, reference: str) -> None:
        self._set_instance_status(reference, "DRAINING")

    def activate(self, reference: str) -> None:
        self._set_instance_status(reference, "ACTIVE")

    def _set_instance_status(self, reference: str, status: str) -> None:
        self._internal("ecs").update_container_instances_state(
            cluster=self.cluster,
            containerInstances=[self.host(reference).container_instance_arn],
            status=status,
        )

    def disconnect_agent(self, reference: str, *, ssm_offline: bool = False) -> None:
        """The host's ECS agent stops answering (`agentConnected: false`); with
        `ssm_offline` its SSM agent too (`PingStatus: ConnectionLost`)."""
        self._set_agent(reference, False, "ConnectionLost" if ssm_offline else None)

    def connect_agent(self, reference: str) -> None:
        """The host's agents are back (`agentConnected: true`, `PingStatus: Online`); a host
        that `lose_host` took dark comes back too: its tasks go on to their real end."""
        from residency_cli.sandbox.moto_ext import restore_host

        restore_host(self.region, self.cluster, self.host(reference).instance_id)

    def set_computer_name(self, reference: str, computer_name: str) -> None:
        """What SSM reports as the host's `ComputerName` (its fully qualified name), e.g.
        "bonus.host.acme.internal" for the map's "bonus.host"."""
        from residency_cli.sandbox.moto_ext import set_computer_name

        set_computer_name(self.region, self.host(reference).instance_id, computer_name)

    def show_deleted_after(self, seconds: float | None) -> None:
        """DescribeTasks shows a task `DELETED` this many sandbox seconds after it stopped
        (None: never, the default); `clock.advance` gets there without waiting."""
        with world().lock:
            world().deleted_after = seconds

    def _set_agent(self, reference: str, connected: bool, ping: str | None) -> None:
        from residency_cli.sandbox.moto_ext import set_ping_status

        host = self.host(reference)
        instance = self._instance(host)
        with world().lock:
            instance.agent_connected = connected
        if ping is not None:
            set_ping_status(self.region, host.instance_id, ping)

    def lose_host(
        self,
        reference: str,
        timeout: float = 10.0,
        *,
        stopped: bool = False,
        stop_code: str | None = None,
    ) -> list[str]:
        """The host goes dark mid-task, as on ECS Anywhere: its agents disconnect
        (`agentConnected: false`, `PingStatus: ConnectionLost`) and its tasks stay RUNNING
        to the API, their processes frozen until `connect_agent` brings the host back.
        With `stopped`, as when an EC2 instance is stopped: its task processes die and its
        unfinished tasks go STOPPED with `stoppedReason` "Host EC2 (instance mi-...)
        stopped/terminated", `stop_code` and no exit code (returns when they have). The
        ARNs of the host's tasks."""
        from residency_cli.sandbox.moto_ext import lose_host

        host = self.host(reference)
        return lose_host(
            self.region,
            self.cluster,
            host.instance_id,
            timeout,
            stopped=stopped,
            stop_code=stop_code,
        )

    def _instance(self, host: SimHost) -> Any:
        ecs_backends = moto_module("moto.ecs.models").ecs_backends

        from residency_cli.sandbox.world import ACCOUNT_ID

        backend = ecs_backends[ACCOUNT_ID][self.region]
        return backend.container_instances[self.cluster][host.container_instance_id]

    def misplace_next_run_task(self, reference: str, times: int = 1) -> None:
        """The next `times` RunTask calls ignore placement and land on this host, like a
        control plane that misbehaves (what `run`'s placement verification must catch)."""
        host = self.host(reference)
        with world().lock:
            world().misplace.extend([host.container_instance_id] * times)

    # --- task definitions and tasks -----------------------------------------------------

    def register_task_definition(
        self,
        family: str,
        command: Sequence[str],
        *,
        container: str = "main",
        cpu: int = 256,
        memory: int = 128,
        environment: Mapping[str, str] | None = None,
        image: str = TEST_IMAGE,
        log_group: str | None = TEST_LOG_GROUP,
        stream_prefix: str = "test",
        stop_timeout: int | None = None,
        essential: bool = True,
        execution_role: Any = _DEFAULT,
        mount_points: Sequence[dict[str, Any]] = (),
        extra_containers: Sequence[dict[str, Any]] = (),
        **fields: Any,
    ) -> str:
        """Register an EXTERNAL task definition running `command` (e.g. ["sh", "-c",
        "exit 3"] or ["python3", "-c", "print(1)"]); returns its ARN. With a log group it
        gets TEST_EXECUTION_ROLE as `executionRoleArn` unless `execution_role` says
        otherwise (None: none, and awslogs cannot start on an external host)."""
        definition: dict[str, Any] = {
            "name": container,
            "image": image,
            "essential": essential,
            "command": list(command),
            "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
        }
        if log_group is not None:
            definition["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group,
                    "awslogs-region": self.region,
                    "awslogs-stream-prefix": stream_prefix,
                },
            }
        if stop_timeout is not None:
            definition["stopTimeout"] = stop_timeout
        if mount_points:
            definition["mountPoints"] = list(mount_points)
        request: dict[str, Any] = {
            "family": family,
            "requiresCompatibilities": ["EXTERNAL"],
            "networkMode": "host",
            "cpu": str(cpu),
            "memory": str(memory),
            "containerDefinitions": [definition, *extra_containers],
            **fields,
        }
        role = (
            (TEST_EXECUTION_ROLE if log_group else None)
            if execution_role is _DEFAULT
            else execution_role
        )
        if role is not None:
            request.setdefault("executionRoleArn", role)
        registered = self._internal("ecs").register_task_definition(**request)
        arn = str(registered["taskDefinition"]["taskDefinitionArn"])
        self.task_definitions[family] = arn
        return arn

    def describe_task(self, task: str) -> dict[str, Any]:
        """DescribeTasks for one task (not counted); KeyError when ECS does not know it."""
        found = self._internal("ecs").describe_tasks(
            cluster=self.cluster, tasks=[task], include=["TAGS"]
        )["tasks"]
        if not found:
            raise KeyError(task)
        return dict(found[0])

    def wait_for_task(
        self, task: str, status: str = "STOPPED", timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll (uncounted) until the task reaches `status`; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        order = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "STOPPED", "DELETED"]
        while True:
            described = self.describe_task(task)
            last = described.get("lastStatus", "")
            if last == status or (
                last in order and status in order and order.index(last) > order.index(status)
            ):
                return described
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task} is {last}, not {status}, after {timeout}s")
            time.sleep(0.02)

    def start_task_on(self, reference: str, task_definition: str, **kwargs: Any) -> str:
        """StartTask on one host, whatever the placement rules say; returns the task ARN."""
        response = self._internal("ecs").start_task(
            cluster=self.cluster,
            taskDefinition=task_definition,
            containerInstances=[self.host(reference).container_instance_arn],
            **kwargs,
        )
        return str(response["tasks"][0]["taskArn"])

    def log_messages(self, task: str, *, group: str | None = None) -> list[str]:
        """The messages of the task's (first container's) awslogs stream, in order."""
        described = self.describe_task(task)
        definition = self._internal("ecs").describe_task_definition(
            taskDefinition=described["taskDefinitionArn"]
        )["taskDefinition"]
        container = definition["containerDefinitions"][0]
        options = container["logConfiguration"]["options"]
        task_id = task.rsplit("/", 1)[-1]
        stream = f"{options['awslogs-stream-prefix']}/{container['name']}/{task_id}"
        events = self._internal("logs", options.get("awslogs-region")).get_log_events(
            logGroupName=group or options["awslogs-group"], logStreamName=stream, startFromHead=True
        )["events"]
        return [str(e["message"]) for e in events]

    def s3_keys(self, bucket: str) -> list[str]:
        region = self.buckets.get(bucket, self.region)
        listed = self._internal("s3", region).list_objects_v2(Bucket=bucket)
        return [str(o["Key"]) for o in listed.get("Contents", [])]

    # --- faults and counters ------------------------------------------------------------

    def throttle(self, operation: str, times: int = 1) -> None:
        """The next `times` calls of `operation` ("DescribeTasks" or "ecs:DescribeTasks")
        answer HTTP 400 ThrottlingException (S3: 503 SlowDown)."""
        if operation.startswith("s3:"):
            self.fail_next(
                operation,
                "SlowDown",
                status=503,
                message="Please reduce your request rate.",
                times=times,
            )
        else:
            self.fail_next(operation, "ThrottlingException", message="Rate exceeded", times=times)

    def fail_next(
        self,
        operation: str,
        code: str,
        *,
        status: int = 400,
        message: str = "injected by the sandbox",
        times: int = 1,
        after: bool = False,
    ) -> None:
        """The next `times` calls of `operation` fail with this AWS error; with `after`,
        the sandbox handles each request first (its effect happens), then answers the error."""
        world().faults.arm(operation, Fault(code, status, message, times, "error", after))

    def drop_next(self, operation: str, *, times: int = 1, after: bool = False) -> None:
        """The next `times` calls of `operation` get no answer: the connection is closed
        (botocore: ConnectionClosedError, which it retries); with `after`, once the sandbox
        has handled the request (a RunTask whose answer is lost has started its task)."""
        world().faults.arm(operation, Fault("ConnectionReset", 0, "", times, "reset", after))

    def set_faults(self, spec: str | Mapping[str, float] | None, seed: int = 0) -> FaultPlan:
        """Random faults on a share of requests, as `residency sandbox up --faults SPEC
        --fault-seed SEED`: "throttle=0.2,error=0.05,reset=0.05,slow=0.1,slow_seconds=0.2",
        per operation "throttle:RunTask=0.5" or "throttle:ecs:DescribeTasks=0.5", per service
        "throttle:s3=0.1" (S3 only when named), or a mapping of the same. Which call gets which
        fault depends only on the seed, the operation and how many calls of it came before.
        FaultSpecError for a bad spec; None clears. `reset` clears them too."""
        plan = parse_fault_spec(spec)
        world().faults.configure(plan, seed)
        return plan

    def clear_faults(self) -> None:
        world().faults.clear_plan()

    def faults_injected(self) -> dict[str, int]:
        """How many faults were answered since the last reset_calls: by kind ("throttle")
        and by kind and operation ("throttle ecs:DescribeTasks")."""
        return world().faults.injected_counts()

    def calls(self, operation: str | None = None) -> int:
        """How many calls of `operation` (all calls with None) reached the sandbox,
        throttled ones included; the fixture's own helpers are not counted."""
        return world().faults.calls(operation)

    def call_counts(self) -> dict[str, int]:
        return world().faults.snapshot()

    def reset_calls(self) -> None:
        world().faults.clear()


def start_server(workdir: Path) -> SandboxServer:
    """The session's server on a free port of 127.0.0.1."""
    config = load_map(EXAMPLE_MAP)
    server = SandboxServer(0, sandbox_region(config), workdir)
    server.start()
    return server


def dump(value: Any) -> str:  # pragma: no cover - a debugging aid for test failures
    return json.dumps(value, indent=2, default=str)
