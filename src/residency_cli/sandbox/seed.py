"""Seeding: what a fresh sandbox holds, from the residency map and the files beside it.

A map's folder may hold, beside `residency.yaml`:
- `task-definitions/*.json`: RegisterTaskDefinition input (`--cli-input-json` shape);
- `data/<location>/`: copied to the `/data` folder of every simulated host of that location,
  which is labelled with the location (`.residency-label.json`, the jobs' data guard reads it);
- `sandbox.json`: `images` (image -> container path and local folder candidates),
  `buckets` (name -> region), `host_resources` (cpu, memory) and `domain` (the hosts' DNS
  domain: SSM then reports `ComputerName` as the fully qualified `<hostname>.<domain>`).
The example map (ACME) ships inside the package, so the sandbox needs nothing else.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from residency_cli.config import (
    DEFAULT_PATH,
    ENV_VAR,
    Config,
    load_config,
    resolve_config_path,
)
from residency_cli.errors import UsageError
from residency_cli.guarding import write_label
from residency_cli.sandbox.state import PRIVATE_FILE_MODE, private_dir
from residency_cli.sandbox.world import ImageSpec, world

EXAMPLE_DIR = Path(__file__).with_name("examples") / "acme"
EXAMPLE_MAP = EXAMPLE_DIR / "residency.yaml"
DEFAULT_REGION = "us-east-1"


def resolve_map(explicit: str | None) -> Path:
    """`--config`, else $RESIDENCY_CONFIG, else ./residency.yaml if it exists, else the
    example map that ships with the package."""
    if explicit or os.environ.get(ENV_VAR):
        return resolve_config_path(explicit)
    local = Path(DEFAULT_PATH)
    return local if local.exists() else EXAMPLE_MAP


@dataclass(frozen=True)
class Bundle:
    """The map's companions: task definitions, images, host data, buckets."""

    directory: Path
    task_definitions: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, ImageSpec] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    host_cpu: int = 2048
    host_memory: int = 3840
    domain: str | None = None  # hosts' DNS domain: SSM ComputerName is hostname.domain


def load_bundle(map_path: Path) -> Bundle:
    directory = map_path.resolve().parent
    definitions = []
    for path in sorted((directory / "task-definitions").glob("*.json")):
        try:
            definitions.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read task definition {path}: {error}") from None
    extras: dict[str, Any] = {}
    extras_path = directory / "sandbox.json"
    if extras_path.exists():
        try:
            extras = json.loads(extras_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read {extras_path}: {error}") from None
    images = {}
    for image, spec in (extras.get("images") or {}).items():
        candidates = spec.get("local") or []
        for candidate in [candidates] if isinstance(candidates, str) else candidates:
            local = (directory / candidate).resolve()
            if local.is_dir():
                images[str(image)] = ImageSpec(str(spec.get("path", "/app")), local)
                break
    resources = extras.get("host_resources") or {}
    return Bundle(
        directory=directory,
        task_definitions=definitions,
        images=images,
        buckets={str(k): str(v) for k, v in (extras.get("buckets") or {}).items()},
        host_cpu=int(resources.get("cpu", 2048)),
        host_memory=int(resources.get("memory", 3840)),
        domain=str(extras["domain"]).strip(".") if extras.get("domain") else None,
    )


@dataclass(frozen=True)
class SimHost:
    """A seeded host, as tests and the demo refer to it."""

    hostname: str
    instance_id: str
    container_instance_arn: str
    location: str | None
    data_dir: Path

    @property
    def container_instance_id(self) -> str:
        return self.container_instance_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SeedResult:
    cluster: str
    region: str
    hosts: dict[str, SimHost]
    task_definitions: dict[str, str]
    buckets: dict[str, str]
    log_groups: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "region": self.region,
            "hosts": {
                name: {
                    "instance_id": h.instance_id,
                    "container_instance_arn": h.container_instance_arn,
                    "declared_location": h.location,
                }
                for name, h in self.hosts.items()
            },
            "task_definitions": self.task_definitions,
            "buckets": self.buckets,
            "log_groups": self.log_groups,
        }


def sandbox_region(config: Config) -> str:
    return config.region or DEFAULT_REGION


@functools.lru_cache(maxsize=16)
def _session(region: str, purpose: str = "public") -> Any:
    """One boto3 session per region and purpose: internal clients get their own, because
    event handlers registered on a client can reach its session's other clients. They sign
    with this process's sandbox credentials (fixed for its lifetime, so caching is safe)."""
    import boto3

    credentials = world().credentials
    return boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name=region,
    )


@functools.lru_cache(maxsize=64)
def internal_client(service: str, endpoint: str, region: str) -> Any:
    """A boto3 client for the sandbox whose calls are not counted nor faulted (cached:
    making a client costs more than a dozen calls)."""
    from botocore.config import Config as BotoConfig

    from residency_cli.sandbox.server import INTERNAL_HEADER

    client = _session(region, "internal").client(
        service,
        endpoint_url=endpoint,
        config=BotoConfig(
            retries={"total_max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"}
        ),
    )

    def mark(request: Any, **_: Any) -> None:
        request.headers[INTERNAL_HEADER] = "1"

    client.meta.events.register("before-sign", mark)
    return client


def _log_groups(definitions: list[dict[str, Any]], region: str) -> list[tuple[str, str]]:
    found = []
    for definition in definitions:
        for container in definition.get("containerDefinitions") or []:
            config = container.get("logConfiguration") or {}
            options = config.get("options") or {}
            if config.get("logDriver") == "awslogs" and options.get("awslogs-group"):
                pair = (options["awslogs-group"], options.get("awslogs-region") or region)
                if pair not in found:
                    found.append(pair)
    return found


def seed(
    config: Config,
    bundle: Bundle,
    *,
    endpoint: str,
    region: str,
    label_hosts: bool = False,
) -> SeedResult:
    """Cluster, simulated hosts (unlabelled unless `label_hosts`), task definitions,
    log groups and buckets, through the sandbox's own HTTP API."""
    from residency_cli.sandbox.moto_ext import register_managed_instance

    sandbox = world()
    with sandbox.lock:
        sandbox.images.update(bundle.images)
        sandbox.location_attribute = config.location_attribute
    ecs = internal_client("ecs", endpoint, region)
    cluster_name = config.cluster.rsplit("/", 1)[-1]
    ecs.create_cluster(clusterName=cluster_name)

    declared = dict(config.hosts) or {f"{name}.host": name for name in config.locations}
    hosts: dict[str, SimHost] = {}
    for hostname, location in declared.items():
        root = sandbox.workdir / "hosts" / hostname
        if root.exists():
            shutil.rmtree(root)
        data_dir = root / "data"
        private_dir(data_dir)
        source = bundle.directory / "data" / location
        if source.is_dir():
            _copy_private(source, data_dir)
        # Provisioning labels a host's data with its location (what vagrant/provision.sh and
        # the commands of `residency activate` do), for the jobs' data guard to read.
        write_label(data_dir, location, PRIVATE_FILE_MODE)
        host = register_managed_instance(
            region,
            cluster_name,
            hostname,
            root=root,
            cpu=bundle.host_cpu,
            memory=bundle.host_memory,
            location=location,
            computer_name=f"{hostname}.{bundle.domain}" if bundle.domain else None,
        )
        hosts[hostname] = SimHost(
            hostname, host.instance_id, host.container_instance_arn, location, data_dir
        )
        if label_hosts:
            ecs.put_attributes(
                cluster=cluster_name,
                attributes=[
                    {
                        "name": config.location_attribute,
                        "value": location,
                        "targetId": host.container_instance_arn,
                    }
                ],
            )

    task_definitions = {}
    for definition in bundle.task_definitions:
        registered = ecs.register_task_definition(**definition)["taskDefinition"]
        task_definitions[registered["family"]] = registered["taskDefinitionArn"]

    groups = _log_groups(bundle.task_definitions, region)
    for group, group_region in groups:
        logs = internal_client("logs", endpoint, group_region)
        logs.create_log_group(logGroupName=group)

    for bucket, bucket_region in bundle.buckets.items():
        s3 = internal_client("s3", endpoint, bucket_region)
        if bucket_region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": bucket_region}
            )
    return SeedResult(
        cluster=cluster_name,
        region=region,
        hosts=hosts,
        task_definitions=task_definitions,
        buckets=dict(bundle.buckets),
        log_groups=[g for g, _ in groups],
    )


def _copy_private(source: Path, target: Path) -> None:
    """Copy a host's data (employee files) for its owner only: 0700 folders, 0600 files,
    whatever the package's modes (shutil.copytree would copy them: 0644)."""
    for item in sorted(source.rglob("*")):
        destination = target / item.relative_to(source)
        if item.is_dir():
            private_dir(destination)
        elif item.is_file():
            private_dir(destination.parent)
            shutil.copyfile(item, destination)
            destination.chmod(PRIVATE_FILE_MODE)


def load_map(path: Path) -> Config:
    return load_config(str(path))
