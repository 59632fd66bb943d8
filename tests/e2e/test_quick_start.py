"""The README's quick start, run exactly as printed, in a fresh clone (issue 18.1).

The block between `<!-- quick-start -->` and `<!-- /quick-start -->` is read from the README
(never copied here) and run with bash, stopping at the first failing command, in a fresh
clone of this checkout (with its uncommitted changes, so that what is tested is what would be
committed). It builds the clone's own .venv with `make setup`, as a new user would. The clone
gets a private state directory and a free port (`RESIDENCY_SANDBOX_PORT=0`: the block's
`sandbox up` stays as printed), and whatever happens, the sandbox it started is stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- quick-start -->\s*```sh\n(.*?)```\s*<!-- /quick-start -->", re.S)


def quick_start_block() -> str:
    found = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(found) == 1, "README.md needs exactly one ```sh block between quick-start markers"
    return str(found[0])


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    ).stdout


def fresh_clone(target: Path) -> Path:
    """A clone of this checkout, plus its uncommitted changes to tracked and new files."""
    _git("clone", "--quiet", "--no-hardlinks", str(ROOT), str(target))
    changed = _git("ls-files", "-z", "--modified", "--others", "--exclude-standard")
    for name in filter(None, changed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    for name in filter(None, _git("ls-files", "-z", "--deleted").split("\0")):
        (target / name).unlink(missing_ok=True)
    return target


def test_the_quick_start_block_is_a_real_block() -> None:
    block = quick_start_block()
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands[0].startswith("make setup")
    assert any(line.startswith("residency sandbox up") for line in commands)
    assert any(line.startswith("residency --sandbox run bonus") for line in commands)
    assert commands[-1].startswith("residency sandbox down")


def test_the_readme_quick_start_works_verbatim_in_a_fresh_clone(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs a git checkout, git and make")
    block = quick_start_block()
    clone = fresh_clone(tmp_path / "clone")
    state = tmp_path / "state"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RESIDENCY_", "MAKE", "MFLAGS", "VIRTUAL_ENV"))
    }
    env.update(RESIDENCY_STATE_DIR=str(state), RESIDENCY_SANDBOX_PORT="0", NO_COLOR="1")
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,  # set-up with pip (no uv) takes minutes; with uv, seconds
        )
    finally:
        residency = clone / ".venv" / "bin" / "residency"
        if residency.exists():
            subprocess.run(
                [str(residency), "sandbox", "down"], env=env, capture_output=True, timeout=120
            )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "sandbox listening on http://127.0.0.1:" in output
    assert "set location=newyork on bonus.host" in output
    assert "Running on host 'bonus.host'" in output
    assert "succeeded bonus on bonus.host (newyork), exit code 0" in output
    assert "sandbox stopped" in output
    assert not (state / "sandbox.json").exists()
