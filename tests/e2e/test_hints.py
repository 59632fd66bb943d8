"""Printed hints work when pasted (CONTRACT.md section 8, "Printed hints"): `run --no-wait`,
a `--timeout` and a `host_lost` print `attach`/`stop` commands with the global options in
effect; each is taken from the output, split like a shell would and run as it is. Also
`stop --all-running` on the sandbox."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from typing import Any

import pytest

from residency_cli.cli.app import main
from tests.support.running import start_until_running
from tests.support.world import World

RESIDENCY = [sys.executable, "-c", "from residency_cli.cli.app import run; run()"]
# A printed hint: `residency`, the global options in effect (shell-quoted), a verb, a task id.
_WITH_VALUE = {"--config", "-c", "--profile", "--region", "--endpoint-url"}
_TOKEN = re.compile(r"'[^']*'|[^\s']+")


def _hint(text: str, verb: str) -> list[str]:
    """The last `residency ... VERB TASK` command in `text`, as the shell would split it."""
    found = []
    for start in re.finditer(r"\bresidency ", text):
        line = text[start.start() :].split("\n", 1)[0]
        tokens = [shlex.split(t)[0] for t in _TOKEN.findall(line)]
        words, rest = [tokens[0]], tokens[1:]
        while rest and (rest[0] == "--sandbox" or rest[0] in _WITH_VALUE):
            taken = 1 if rest[0] == "--sandbox" else 2
            words, rest = words + rest[:taken], rest[taken:]
        if len(rest) >= 2 and rest[0] == verb:
            found.append([*words, verb, rest[1].rstrip(".,;)")])
    assert found, f"no `{verb}` hint in:\n{text}"
    return found[-1]


def _residency(words: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """Run a hint as the shell would: `residency` is this checkout's CLI."""
    assert words[0] == "residency"
    return subprocess.run(
        [*RESIDENCY, *words[1:]],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        timeout=120,
        **options,
    )


@pytest.fixture
def cli_world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """`--sandbox` works in subprocesses: the sandbox's record and credentials are in the
    environment they inherit."""
    world.sandbox.use(monkeypatch)
    return world


def test_no_wait_attach_hint_runs_as_printed_and_stop_hint_stops(cli_world: World) -> None:
    ran = _residency(
        ["residency", "--sandbox", "--config", str(cli_world.map_path), "run", "slow", "--no-wait"]
    )
    assert ran.returncode == 0, ran.stderr
    attach = _hint(ran.stdout, "attach")
    assert attach[:4] == ["residency", "--sandbox", "--config", str(cli_world.map_path)]
    task_id = attach[-1]
    # As printed (plus a short wait, the job sleeps 30 s): it follows the task, exit 6.
    attached = _residency([*attach, "--timeout", "1s", "--no-follow"])
    assert attached.returncode == 6, attached.stderr
    # --no-follow is not silent: the status it found is printed at once.
    assert f"task {task_id}: RUNNING" in attached.stderr
    stop = _hint(attached.stderr, "stop")
    assert stop[-1] == task_id
    stopped = _residency(stop)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped {task_id} (slow)" in stopped.stdout
    assert cli_world.sandbox.describe_task(task_id)["desiredStatus"] == "STOPPED"


def test_timeout_attach_hint_runs_as_printed(cli_world: World) -> None:
    ran = _residency(
        ["residency", "--sandbox", "-c", str(cli_world.map_path), "run", "slow", "--timeout", "1s"]
    )
    assert ran.returncode == 6, ran.stderr
    attach = _hint(ran.stderr, "attach")
    assert "--sandbox" in attach and str(cli_world.map_path) in attach
    attached = _residency([*attach, "--timeout", "1s", "-o", "json"])
    assert attached.returncode == 6, attached.stderr
    assert json.loads(attached.stdout)["outcome"] == "timeout"
    assert _residency(_hint(ran.stderr, "stop")).returncode == 0


def test_host_lost_stop_hint_runs_as_printed(cli_world: World) -> None:
    process, seen = start_until_running(
        ["--sandbox", "-c", str(cli_world.map_path), "run", "slow",
         "--host-lost-after", "1s", "--no-follow"],
        timeout=60,
    )  # fmt: skip
    cli_world.sandbox.disconnect_agent("bonus.host")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 5, seen + err
    stop = _hint(err, "stop")
    cli_world.sandbox.connect_agent("bonus.host")
    stopped = _residency(stop)
    assert stopped.returncode == 0, stopped.stderr
    assert cli_world.sandbox.describe_task(stop[-1])["desiredStatus"] == "STOPPED"


def test_stop_all_running_asks_or_needs_yes(
    cli_world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--sandbox", "-c", str(cli_world.map_path)]
    tasks = []
    for _ in range(2):
        assert main([*base, "run", "slow", "--no-wait", "-o", "json"]) == 0
        tasks.append(json.loads(capsys.readouterr().out)["task_id"])

    def desired() -> set[str]:
        return {cli_world.sandbox.describe_task(t)["desiredStatus"] for t in tasks}

    prompted: list[str] = []
    monkeypatch.setattr("typer.confirm", lambda *a, **k: prompted.append("asked") or False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    # No terminal: nothing asks; exit 2 saying to pass --yes; nothing stopped.
    assert main([*base, "stop", "--all-running", "slow"]) == 2
    err = capsys.readouterr().err
    assert "pass --yes" in err and "stdin is not a terminal" in err and err.startswith("error:")
    # CI set: the same, even on a terminal.
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setenv("CI", "1")
    assert main([*base, "stop", "--all-running", "slow"]) == 2
    assert "CI is set" in capsys.readouterr().err and prompted == []
    assert desired() == {"RUNNING"}
    # A terminal: asked; no stops nothing (exit 1).
    monkeypatch.delenv("CI")
    assert main([*base, "stop", "--all-running", "slow"]) == 1
    assert prompted == ["asked"] and "nothing was stopped" in capsys.readouterr().err
    assert desired() == {"RUNNING"}
    # --yes: every RUNNING task of the workload, none of another.
    assert main([*base, "run", "hello", "--no-wait"]) == 0
    capsys.readouterr()
    assert main([*base, "stop", "--all-running", "slow", "--yes", "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(t["task_id"] for t in document["tasks"]) == sorted(tasks)
    assert {t["workload"] for t in document["tasks"]} == {"slow"}
    assert desired() == {"STOPPED"}
    assert main([*base, "stop", "--all-running", "slow", "--yes"]) == 0
    assert "slow has no RUNNING task" in capsys.readouterr().err
