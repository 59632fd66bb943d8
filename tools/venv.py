"""Create and fill a virtual environment: with uv when it can be had, else with pip.

Every Makefile environment (.venv, .venv-awscli, .venv-etl, .venv-airflow, .bench/venv) is
built here, so that each step says what it is doing and how long it took (a silent
`pip --quiet` for a minute reads as a hang), and so that uv and pip install the same pinned
versions: the dev and AWS CLI environments come from lock files with hashes
(requirements/*.lock, written by `make lock`).

uv is found, in order: $UV (a path, or `pip` to force pip), `uv` on PATH, then a copy this
script bootstraps once per machine with `python3 -m pip install --target` into
$XDG_CACHE_HOME/residency/uv-<version> (default ~/.cache). If none of that works (no index,
no wheel for this platform), pip builds the environment: slower, same versions.

Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# The uv the bootstrap installs. Any uv on PATH is used as it is: the lock files, not the
# resolver, decide the versions.
UV_VERSION = "0.13.9"


def _say(label: str, message: str) -> None:
    # One line per step, flushed at once so that it shows before the step runs; on stderr, so
    # that `--which-uv` can print the path alone on stdout.
    print(f"setup {label}: {message}", file=sys.stderr, flush=True)


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        printable = " ".join(command)
        raise SystemExit(f"setup: failed (exit {completed.returncode}): {printable}")


def _cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "residency"


def find_uv(label: str, python: str) -> str | None:
    """The uv to use, bootstrapping the pinned one with pip if needed; None: use pip."""
    chosen = os.environ.get("UV", "")
    if chosen == "pip":
        return None
    if chosen:
        return chosen
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    home = _cache_home() / f"uv-{UV_VERSION}"
    uv = home / "bin" / "uv"
    if uv.is_file():
        return str(uv)
    _say(label, f"installing uv {UV_VERSION} into {home} (once per machine) ...")
    started = time.monotonic()
    staging = home.with_name(home.name + f".tmp{os.getpid()}")
    completed = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            # -qq: this machine's pip configuration may warn about every index it skips.
            "-qq",
            "--disable-pip-version-check",
            "--target",
            str(staging),
            f"uv=={UV_VERSION}",
        ],
        check=False,
    )
    if completed.returncode != 0 or not (staging / "bin" / "uv").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        _say(label, "uv could not be installed; falling back to pip (slower, same versions)")
        return None
    # Renamed into place only when complete, so a concurrent or interrupted bootstrap never
    # leaves a half-installed uv that later runs would trust.
    try:
        staging.rename(home)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    _say(label, f"uv ready in {time.monotonic() - started:.1f} s")
    return str(uv)


def _count_pins(paths: list[str]) -> int:
    count = 0
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith(("#", "-", "--")) and "==" in stripped:
                count += 1
    return count


class _Installer:
    """Runs each step with uv when there is one, else with pip, saying what it does."""

    def __init__(self, venv: Path, uv: str | None) -> None:
        self.venv = venv
        self.label = str(venv)
        self.uv = uv
        self.tool = "uv" if uv else "pip"
        self.python = str(venv / "bin" / "python")

    def create(self, base_python: str, seed_pip: bool) -> None:
        if (self.venv / "bin" / "python").exists():
            return
        _say(self.label, f"creating the environment ({self.tool}) ...")
        if self.uv:
            command = [self.uv, "venv", "--quiet", "--python", base_python, str(self.venv)]
            if seed_pip:
                command.insert(3, "--seed")
            _run(command)
        else:
            _run([base_python, "-m", "venv", str(self.venv)])

    def install(self, what: str, extra: list[str]) -> None:
        _say(self.label, f"installing {what} ({self.tool}) ...")
        step = time.monotonic()
        if self.uv:
            _run([self.uv, "pip", "install", "--quiet", "--python", self.python, *extra])
        else:
            # pip's own progress stays visible: without uv this is the slow step.
            _run([self.python, "-m", "pip", "install", "--disable-pip-version-check", *extra])
        _say(self.label, f"  done in {time.monotonic() - step:.1f} s")

    def check(self) -> None:
        _say(self.label, "checking that the installed packages agree ...")
        if self.uv:
            _run([self.uv, "pip", "check", "--quiet", "--python", self.python])
        else:
            _run([self.python, "-m", "pip", "check"])


def _install_steps(args: argparse.Namespace) -> Iterator[tuple[str, list[str]]]:
    """(what, installer arguments) for each install, in order: the locks, the requirement
    files, the packages, then the editable project. A generator: each lock is read just
    before it is installed, as the steps run."""
    for lock in args.lock:
        what = f"{_count_pins([lock])} locked packages from {lock}"
        yield what, ["--require-hashes", "--no-deps", "-r", lock]
    constraints = [flag for constraint in args.constraint for flag in ("-c", constraint)]
    no_deps = ["--no-deps"] if args.no_deps else []
    if args.requirement:
        requirements = [flag for requirement in args.requirement for flag in ("-r", requirement)]
        yield " ".join(args.requirement), [*no_deps, *constraints, *requirements]
    if args.package:
        yield " ".join(args.package), [*no_deps, *constraints, *args.package]
    if args.editable:
        # --no-deps: the lock already installed every dependency, at its pinned version.
        yield f"{args.editable} (editable)", ["--no-deps", "-e", args.editable]


def build(args: argparse.Namespace) -> None:
    venv = Path(args.venv)
    started = time.monotonic()
    installer = _Installer(venv, find_uv(str(venv), args.python))
    if args.fresh and venv.exists():
        shutil.rmtree(venv)
    installer.create(args.python, args.seed_pip)
    for what, extra in _install_steps(args):
        installer.install(what, extra)
    if args.check:
        installer.check()
    if args.stamp:
        Path(args.stamp).touch()
    _say(installer.label, f"ready in {time.monotonic() - started:.1f} s ({installer.tool})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venv", nargs="?", help="the environment's folder")
    parser.add_argument("--which-uv", action="store_true", help="print the uv to use and exit")
    parser.add_argument("--python", default=sys.executable, help="interpreter to base it on")
    parser.add_argument("--lock", action="append", default=[], help="lock file (hashes)")
    parser.add_argument("--requirement", "-r", action="append", default=[])
    parser.add_argument("--constraint", "-c", action="append", default=[])
    parser.add_argument("--package", action="append", default=[], help="a requirement spec")
    parser.add_argument("--editable", "-e", help="a project to install in editable mode")
    parser.add_argument("--no-deps", action="store_true", help="for -r and --package")
    parser.add_argument("--check", action="store_true", help="pip check afterwards")
    parser.add_argument("--seed-pip", action="store_true", help="the environment gets pip")
    parser.add_argument("--fresh", action="store_true", help="remove the folder first")
    parser.add_argument("--stamp", help="file to touch when everything succeeded")
    main_args = parser.parse_args(argv)
    if main_args.which_uv:
        uv = find_uv("uv", main_args.python)
        if uv is None:
            raise SystemExit("setup: no uv (set UV=/path/to/uv, or let pip reach the index)")
        print(uv)
        return
    if not main_args.venv:
        parser.error("the environment's folder is required")
    build(main_args)


if __name__ == "__main__":
    main()
