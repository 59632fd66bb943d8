"""docs/cli.md is the CLI's own --help (tools/gen_cli_docs.py): this fails when it is stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_matches_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + "(run `make docs` and commit docs/cli.md)"


def test_cli_reference_has_every_command() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in ("residency run", "residency sandbox up", "residency journal verify"):
        assert f"## `{command}`" in reference
