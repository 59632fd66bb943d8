"""Where a running sandbox is recorded: one JSON file under the user's state directory,
readable by its owner only (0600 in a 0700 directory), holding where the sandbox listens
and the credentials it generated when it started (the only ones it accepts; see auth.py).

Kept free of heavy imports: every `--sandbox` command reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_ACCOUNT_ID = "123456789012"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# What the sandbox's processes create is its owner's alone (employee files, reports, logs).
PRIVATE_UMASK = 0o077
# Access key ids are 16-128 characters of \w (IAM AccessKeyMetadata); AWS's own start with
# AKIA/ASIA. "SBOX" marks these as the sandbox's, so that a secret scanner or a person never
# takes them for real AWS keys. 16 random base-32 characters: 80 bits.
ACCESS_KEY_PREFIX = "SBOX"
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class SandboxCredentials:
    """The access key and secret a sandbox accepts; generated afresh by each sandbox."""

    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> SandboxCredentials:
        key = ACCESS_KEY_PREFIX + "".join(secrets.choice(_BASE32) for _ in range(16))
        # 40 characters like an AWS secret access key; 240 bits from the OS's CSPRNG.
        return cls(key, secrets.token_urlsafe(30))

    def boto(self) -> dict[str, str]:
        """As boto3.Session (and residency's AwsSettings.credentials) take them."""
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def __repr__(self) -> str:  # never print the secret in a traceback or a log
        return f"SandboxCredentials(access_key_id={self.access_key_id!r}, secret_access_key=***)"


def state_dir() -> Path:
    """`$RESIDENCY_STATE_DIR`, else `$XDG_STATE_HOME/residency`, else ~/.local/state/residency."""
    explicit = os.environ.get("RESIDENCY_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "residency"


def state_file() -> Path:
    return state_dir() / "sandbox.json"


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) for its owner only: 0700. An existing directory that
    others can enter is tightened when it is ours and not a shared one (sticky, like /tmp)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    info = path.stat()
    if (
        info.st_uid == os.getuid()
        and stat.S_IMODE(info.st_mode) & 0o077
        and not info.st_mode & stat.S_ISVTX
    ):
        with contextlib.suppress(OSError):
            path.chmod(PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Atomically write `text` to `path` readable by its owner only (0600), so that a
    reader never sees half a file, nor anyone else any of it."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE_MODE
    )
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)  # an older file of that name kept its mode
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    os.replace(temporary, path)


@dataclass(frozen=True)
class SandboxState:
    endpoint: str
    pid: int
    port: int
    region: str
    workdir: str
    config: str | None = None
    credentials: SandboxCredentials | None = None

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "credentials"}
        if self.credentials is not None:
            data["access_key_id"] = self.credentials.access_key_id
            data["secret_access_key"] = self.credentials.secret_access_key
        return data


def read_state() -> SandboxState | None:
    """The recorded sandbox, or None when there is no (readable) record."""
    try:
        data = json.loads(state_file().read_text(encoding="utf-8"))
        key, secret = data.pop("access_key_id", None), data.pop("secret_access_key", None)
        credentials = (
            SandboxCredentials(key, secret)
            if isinstance(key, str) and isinstance(secret, str)
            else None
        )
        return SandboxState(**data, credentials=credentials)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def write_state(state: SandboxState) -> None:
    """Record the sandbox (0600: the record holds its credentials)."""
    write_private(state_file(), json.dumps(state.to_json(), indent=2))


def clear_state() -> None:
    state_file().unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_running(pid: int) -> bool:
    """Like pid_alive, but a zombie (exited, not yet reaped: common when PID 1 does not reap
    orphans, as in many containers) counts as stopped."""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()
    return not (state and state[0] in ("Z", "X"))
