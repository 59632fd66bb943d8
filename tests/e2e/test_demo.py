"""`residency demo` as a user runs it: a real subprocess, nothing but the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESIDENCY_"))}
    env["RESIDENCY_STATE_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "set location=newyork on bonus.host" in out
    assert "set location=frankfurt on tax.host" in out
    assert "succeeded bonus on bonus.host (newyork), exit code 0" in out
    assert "succeeded tax on tax.host (frankfurt), exit code 0" in out
    assert "Running on host 'bonus.host'" in out and "Running on host 'tax.host'" in out
    assert (
        "s3://acme-newyork-reports (region us-east-1): christmas-bonus/christmas_bonus.csv" in out
    )
    assert "s3://acme-frankfurt-reports (region eu-central-1): tax-amount/tax_amount.csv" in out
    assert "2 task(s) audited, no violation" in out
    assert "sandbox stopped" in result.stderr
    assert not (tmp_path / "state" / "sandbox.json").exists()
    # The demo's runs are journalled by the core, like every other run.
    records = (tmp_path / "state" / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    seen = [json.loads(r) for r in records]
    outcomes = [(r["event"], r["workload"], r["result"]["outcome"]) for r in seen]
    assert outcomes == [
        ("intent", "bonus", None),
        ("run", "bonus", "succeeded"),
        ("intent", "tax", None),
        ("run", "tax", "succeeded"),
    ]
