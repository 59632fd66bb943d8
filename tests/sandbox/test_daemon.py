"""`residency sandbox up|status|env|down` as a user runs them: real subprocesses, a private
state directory (RESIDENCY_STATE_DIR), never the user's own."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from residency_cli.sandbox.state import SandboxState, write_state
from residency_cli.sandbox.state import process_running as pid_alive


def residency(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=env["HOME"],
    )


@pytest.fixture
def user_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESIDENCY_"))}
    env["RESIDENCY_STATE_DIR"] = str(tmp_path / "state")
    env["HOME"] = str(tmp_path)
    env["NO_COLOR"] = "1"
    yield env
    # Whatever a test asserted, it leaves no sandbox running behind it.
    residency(env, "sandbox", "down")


def _status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = residency(env, "sandbox", "status", "-o", "json")
    return result.returncode, json.loads(result.stdout)


def test_up_status_env_down_leaves_nothing_running(user_env: dict[str, str]) -> None:
    # How long `up` takes is measured by bench/sandbox_up.py, not asserted here: a wall-time
    # bound fails on a loaded machine without anything being wrong.
    up = residency(user_env, "sandbox", "up", "--port", "0")
    assert up.returncode == 0, up.stderr
    assert "sandbox listening on http://127.0.0.1:" in up.stdout
    code, status = _status(user_env)
    assert code == 0 and status["running"] and status["answering"]
    assert status["endpoint"].startswith("http://127.0.0.1:")
    assert status["config"].endswith("examples/acme/residency.yaml")  # the packaged map

    env_lines = residency(user_env, "sandbox", "env").stdout.splitlines()
    exported = dict(line.removeprefix("export ").split("=", 1) for line in env_lines)
    assert exported["AWS_ENDPOINT_URL"] == status["endpoint"]
    assert exported["AWS_DEFAULT_REGION"] == exported["AWS_REGION"] == "eu-central-1"
    assert set(exported) == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    }

    again = residency(user_env, "sandbox", "up", "--port", "0")
    assert again.returncode == 2 and "already running" in again.stderr

    # an independent client sees the cluster; a long task runs on a simulated host
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
        region_name="eu-central-1",
    )
    ecs = session.client("ecs", endpoint_url=status["endpoint"])
    ecs.register_task_definition(
        family="sleeper",
        requiresCompatibilities=["EXTERNAL"],
        networkMode="host",
        memory="64",
        containerDefinitions=[{"name": "main", "image": "x", "command": ["sleep", "300"]}],
    )
    task = ecs.run_task(cluster="acme-etl", taskDefinition="sleeper", launchType="EXTERNAL")
    arn = task["tasks"][0]["taskArn"]
    deadline = time.monotonic() + 10
    while (
        ecs.describe_tasks(cluster="acme-etl", tasks=[arn])["tasks"][0]["lastStatus"] != "RUNNING"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    described = ecs.describe_tasks(cluster="acme-etl", tasks=[arn])["tasks"][0]
    task_pid = int(described["containers"][0]["runtimeId"].removeprefix("sandbox-"))
    assert pid_alive(task_pid)

    down = residency(user_env, "sandbox", "down")
    assert down.returncode == 0, down.stderr
    assert not pid_alive(status["pid"])
    deadline = time.monotonic() + 5
    while pid_alive(task_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(task_pid), "a task process outlived the sandbox"
    code, status = _status(user_env)
    assert code == 3 and not status["running"]
    assert residency(user_env, "sandbox", "env").returncode == 7
    assert residency(user_env, "sandbox", "down").returncode == 0  # idempotent


def test_port_in_use_is_refused_and_nothing_runs(user_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = residency(user_env, "sandbox", "up", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert _status(user_env)[0] == 3


def test_stale_state_is_cleaned_up(
    user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESIDENCY_STATE_DIR", user_env["RESIDENCY_STATE_DIR"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_state(SandboxState("http://127.0.0.1:9", dead.pid, 9, "eu-central-1", "/nonexistent"))
    code, status = _status(user_env)
    assert code == 3 and status["stale_pid"] == dead.pid
    assert not (Path(user_env["RESIDENCY_STATE_DIR"]) / "sandbox.json").exists()
    from residency_cli.sandbox.seed import EXAMPLE_MAP

    result = residency(user_env, "--sandbox", "--config", str(EXAMPLE_MAP), "hosts")
    assert result.returncode == 7 and "not running" in result.stderr


def test_killed_daemon_is_noticed_and_can_be_restarted(user_env: dict[str, str]) -> None:
    assert residency(user_env, "sandbox", "up", "--port", "0").returncode == 0
    _, status = _status(user_env)
    os.kill(status["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(status["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    code, after = _status(user_env)
    assert code == 3 and after["stale_pid"] == status["pid"]
    assert residency(user_env, "sandbox", "up", "--port", "0").returncode == 0
    assert residency(user_env, "sandbox", "down").returncode == 0


def _time_wait_port() -> int:
    """A port of 127.0.0.1 that nothing listens on, where a closed connection lingers (the
    side that closes first keeps its end in TIME_WAIT for about a minute): what a sandbox
    that served a request leaves behind after `sandbox down`."""
    with socket.socket() as listener:
        # as werkzeug's server (BaseWSGIServer.allow_reuse_address): its connections'
        # lingering ends carry the flag, which is what lets a new listener bind beside them
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            served, _ = listener.accept()
            served.close()  # the server closes first, as the sandbox's HTTP server does
            assert client.recv(1) == b""
    with socket.socket() as plain, pytest.raises(OSError) as raised:
        plain.bind(("127.0.0.1", port))  # the probe of old: "already in use"
    assert raised.value.errno == errno.EADDRINUSE
    return port


def test_a_port_in_time_wait_is_free_for_the_sandbox() -> None:
    from residency_cli.sandbox.control import _port_free

    assert _port_free(_time_wait_port())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert not _port_free(busy.getsockname()[1])  # a listener still counts


def test_up_on_a_port_left_in_time_wait_starts(user_env: dict[str, str]) -> None:
    """`residency --sandbox run tax; residency sandbox down; residency sandbox up` (issue 18)."""
    port = _time_wait_port()
    up = residency(user_env, "sandbox", "up", "--port", str(port))
    try:
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
    finally:
        assert residency(user_env, "sandbox", "down").returncode == 0


def test_a_command_on_a_stopped_sandbox_says_it_is_not_running(user_env: dict[str, str]) -> None:
    """`residency sandbox down; residency --sandbox hosts`, with no map in the directory:
    the sandbox is the problem (exit 7), not the map it would have lent (issue 18)."""
    assert residency(user_env, "sandbox", "down").returncode == 0
    for command in (["hosts"], ["check"], ["run", "bonus", "--no-wait"], ["validate"]):
        result = residency(user_env, "--sandbox", *command)
        assert result.returncode == 7, (command, result.stderr)
        assert "the sandbox is not running" in result.stderr
        assert "residency sandbox up" in result.stderr
