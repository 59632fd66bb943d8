"""Running the CLI in-process the way the CLI tests do."""

from __future__ import annotations

import pytest

from residency_cli.cli.app import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """main(args) and what it printed: (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
