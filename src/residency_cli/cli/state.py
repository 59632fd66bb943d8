"""What the global options decided, shared by every command through Typer's context."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from residency_cli.aws import AwsSettings, Clients
    from residency_cli.config import Config
    from residency_cli.journal import JournalStore


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


OUTPUT_OPTION: Any = typer.Option(
    OutputFormat.text,
    "--output",
    "-o",
    help="text for people, json for scripts.",
    case_sensitive=False,
)
DRY_RUN_OPTION: Any = typer.Option(
    False, "--dry-run", help="Print the exact request; change nothing."
)


@dataclass
class AppState:
    config_path: str | None = None
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    sandbox: bool = False
    verbose: bool = False
    journal: str | None = None  # --journal (root); `journal --journal` passes its own
    _config: Config | None = field(default=None, repr=False)
    _clients: Clients | None = field(default=None, repr=False)

    def command_words(self) -> list[str]:
        """`residency` with the global options in effect: what a printed hint must repeat
        so that pasting it acts on the same cluster with the same map."""
        words = ["residency"]
        options = [("--config", self.config_path), ("--journal", self.journal)]
        if self.sandbox:  # the sandbox decides endpoint, region and credentials itself
            words.append("--sandbox")
        else:
            options += [
                ("--profile", self.profile),
                ("--region", self.region),
                ("--endpoint-url", self.endpoint_url),
            ]
        for flag, value in options:
            if value:
                words += [flag, value]
        return words

    def config(self) -> Config:
        if self._config is None:
            from residency_cli.config import ENV_VAR, load_config, resolve_config_path

            path = self.config_path
            named = path or os.environ.get(ENV_VAR)
            if self.sandbox:
                # A sandbox that is not running is the problem to report (exit 7), not the
                # map it would have lent (`sandbox down; residency --sandbox hosts`).
                sandbox_settings()
            if self.sandbox and not named and not resolve_config_path(None).exists():
                path = _sandbox_map()  # no map named or here: the one the sandbox was seeded from
            self._config = load_config(path)
        return self._config

    def settings(self, map_region: str | None) -> AwsSettings:
        """--sandbox, then --region > the map's region > the AWS chain (AWS_REGION, profile)."""
        from residency_cli.aws import AwsSettings

        if self.sandbox:
            return sandbox_settings()
        return AwsSettings(
            profile=self.profile, region=self.region or map_region, endpoint_url=self.endpoint_url
        )

    def clients(self) -> Clients:
        if self._clients is None:
            from residency_cli.aws import Clients

            self._clients = Clients(self.settings(self.config().region))
        return self._clients

    def journal_location(self, explicit: str | None = None) -> str | None:
        """Where the journal is: `explicit` (`journal --journal`) > `--journal` >
        $RESIDENCY_JOURNAL > the map's `journal:` > None (the local default file)."""
        from residency_cli.journal import JOURNAL_ENV, journal_location

        chosen = explicit or self.journal or os.environ.get(JOURNAL_ENV)
        if chosen:
            return chosen
        config = self._map_if_any()
        return journal_location(map_journal=config.journal_location if config else None)

    def journal_store(self, explicit: str | None = None) -> JournalStore:
        """The journal store in effect; an S3 one gets its client from `aws.py` with the
        profile, region, endpoint and sandbox settings of the other clients."""
        from residency_cli.journal import open_journal

        return open_journal(self.journal_location(explicit), s3_client=self._s3_client)

    def _map_if_any(self) -> Config | None:
        """The map when one is named or present (`journal show` needs none)."""
        from residency_cli.config import ENV_VAR, resolve_config_path

        if self._config is not None:
            return self._config
        named = self.config_path or os.environ.get(ENV_VAR)
        if named or self.sandbox or resolve_config_path(None).exists():
            return self.config()
        return None

    def _s3_client(self) -> S3Client:
        from residency_cli.aws import Clients

        if self._clients is not None:
            return self._clients.s3
        config = self._map_if_any()
        return Clients(self.settings(config.region if config is not None else None)).s3


def _sandbox_map() -> str | None:
    from residency_cli.sandbox.state import read_state

    state = read_state()
    return state.config if state is not None else None


def sandbox_settings() -> AwsSettings:
    from residency_cli.aws import AwsSettings
    from residency_cli.errors import AwsError
    from residency_cli.sandbox.state import process_running, read_state

    state = read_state()
    if state is None or not process_running(state.pid):
        raise AwsError("the sandbox is not running", hint="start it with `residency sandbox up`")
    if state.credentials is None:
        raise AwsError(
            "the sandbox's record holds no credentials (an older residency started it)",
            hint="restart it: `residency sandbox down && residency sandbox up`",
        )
    return AwsSettings(
        region=state.region, endpoint_url=state.endpoint, credentials=state.credentials.boto()
    )


def app_state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj
