"""Where a running sandbox is recorded: one JSON file under the user's state directory.

Kept free of heavy imports: every `--sandbox` command reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_ACCESS_KEY = "residency-sandbox"
SANDBOX_SECRET_KEY = "residency-sandbox-secret"
SANDBOX_ACCOUNT_ID = "123456789012"


def state_dir() -> Path:
    """`$RESIDENCY_STATE_DIR`, else `$XDG_STATE_HOME/residency`, else ~/.local/state/residency."""
    explicit = os.environ.get("RESIDENCY_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "residency"


def state_file() -> Path:
    return state_dir() / "sandbox.json"


@dataclass(frozen=True)
class SandboxState:
    endpoint: str
    pid: int
    port: int
    region: str
    workdir: str
    config: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_state() -> SandboxState | None:
    """The recorded sandbox, or None when there is no (readable) record."""
    try:
        data = json.loads(state_file().read_text(encoding="utf-8"))
        return SandboxState(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_state(state: SandboxState) -> None:
    """Atomically record the sandbox, so a reader never sees half a file."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state.to_json(), indent=2), encoding="utf-8")
    os.replace(temporary, path)


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
