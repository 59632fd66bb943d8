"""A sandbox inside the current process, for `residency demo` and benchmarks: started,
seeded from a map, and always stopped (task processes included) when the block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from residency_cli.aws import AwsSettings
    from residency_cli.config import Config
    from residency_cli.sandbox.seed import SeedResult


@dataclass(frozen=True)
class EmbeddedSandbox:
    endpoint: str
    region: str
    config: Config
    seeded: SeedResult

    def settings(self) -> AwsSettings:
        from residency_cli.aws import AwsSettings
        from residency_cli.sandbox.world import world

        return AwsSettings(
            region=self.region,
            endpoint_url=self.endpoint,
            credentials=world().credentials.boto(),
        )


@contextmanager
def embedded_sandbox(
    map_path: Path, workdir: Path, *, label_hosts: bool = False
) -> Iterator[EmbeddedSandbox]:
    from residency_cli.sandbox.seed import load_bundle, load_map, sandbox_region, seed
    from residency_cli.sandbox.server import SandboxServer

    config = load_map(map_path)
    bundle = load_bundle(map_path)
    region = sandbox_region(config)
    server = SandboxServer(0, region, workdir)
    endpoint = server.start()
    try:
        seeded = seed(config, bundle, endpoint=endpoint, region=region, label_hosts=label_hosts)
        yield EmbeddedSandbox(endpoint, region, config, seeded)
    finally:
        server.stop()
