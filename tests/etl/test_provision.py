"""vagrant/provision.sh labels the host: the ECS attribute and the data's residency label."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import residency_guard
from tests.support.etl import LABEL_FILE, ROOT

SCRIPT = ROOT / "vagrant" / "provision.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def provision(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    (tools / "curl").write_text("#!/bin/sh\nexit 0\n")  # present: nothing gets installed
    (tools / "curl").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSM_", "ECS_", "AWS_"))}
    env.update(
        PATH=f"{tools}:{os.environ['PATH']}",
        RESIDENCY_ECS_CONFIG=str(tmp_path / "etc" / "ecs.config"),
        **variables,
    )
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_provision_labels_the_data_for_the_guard(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = provision(tmp_path, RESIDENCY_LOCATION="frankfurt", RESIDENCY_DATA_DIR=str(data))
    assert done.returncode == 0, done.stderr
    assert f"labelled the data in {data} with location 'frankfurt'" in done.stdout
    label = data / LABEL_FILE
    assert json.loads(label.read_text()) == {"location": "frankfurt"}
    assert label.stat().st_mode & 0o777 == 0o644
    assert residency_guard.check(data, ("frankfurt",)) == "frankfurt"
    assert sorted(p.name for p in data.iterdir()) == [LABEL_FILE]  # no temporary file left
    config = (tmp_path / "etc" / "ecs.config").read_text()
    assert 'ECS_INSTANCE_ATTRIBUTES={"location": "frankfurt"}' in config
    # Provisioning again (a relabelled host) replaces the label.
    again = provision(tmp_path, RESIDENCY_LOCATION="newyork", RESIDENCY_DATA_DIR=str(data))
    assert again.returncode == 0, again.stderr
    assert residency_guard.read_label(str(data)) == "newyork"


def test_provision_refuses_a_location_that_is_not_a_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = provision(tmp_path, RESIDENCY_LOCATION='x", "y', RESIDENCY_DATA_DIR=str(data))
    assert done.returncode == 1 and "invalid location" in done.stderr
    assert not data.exists()
