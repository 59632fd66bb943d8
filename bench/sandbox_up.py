"""How long `residency sandbox up` takes until the sandbox answers, and `down` until nothing
runs: the start-up figure that tests/sandbox/test_daemon.py must not assert on.

Usage: python bench/sandbox_up.py [--runs N]   (each run in a private RESIDENCY_STATE_DIR)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESIDENCY = [sys.executable, "-c", "from residency_cli.cli.app import run; run()"]


def _timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run([*RESIDENCY, *command], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {command}: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    ups: list[float] = []
    downs: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as state:
            env = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENCY_")}
            env["RESIDENCY_STATE_DIR"] = str(Path(state))
            try:
                ups.append(_timed(["sandbox", "up", "--port", "0"], env))
            finally:
                downs.append(_timed(["sandbox", "down"], env))
    for name, samples in (("sandbox up", ups), ("sandbox down", downs)):
        print(
            f"{name}: median {statistics.median(samples):.2f} s, "
            f"min {min(samples):.2f} s, max {max(samples):.2f} s ({len(samples)} runs)"
        )


if __name__ == "__main__":
    main()
