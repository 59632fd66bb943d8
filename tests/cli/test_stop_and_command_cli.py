"""`stop`, `run --command`, and the one-line `error:` for unknown commands and options,
through main() against stock moto (CONTRACT.md section 8)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from residency_cli.dispatch import default_stop_reason, parse_command
from residency_cli.errors import UsageError
from residency_cli.journal import read
from tests.support.cli import cli
from tests.support.moto_cluster import MotoCluster
from tests.support.moto_cluster import register_bonus as _register


def _dispatched(capsys: pytest.CaptureFixture[str], map_path: Path) -> str:
    code, out, err = cli(capsys, "-c", str(map_path), "run", "bonus", "--no-wait", "-o", "json")
    assert code == 0, err
    return str(json.loads(out)["task_id"])


def _desired(moto_cluster: MotoCluster, task_id: str) -> str:
    """The desired status (moto moves lastStatus on by itself at each describe)."""
    (task,) = moto_cluster.ecs.describe_tasks(cluster="acme-etl", tasks=[task_id])["tasks"]
    return str(task["desiredStatus"])


def _journal() -> list[dict[str, object]]:
    return read(Path(os.environ["RESIDENCY_JOURNAL"]))


# --- stop --------------------------------------------------------------------------------


def test_stop_by_id_and_arn_with_reason_is_journalled(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    first, second = _dispatched(capsys, map_path), _dispatched(capsys, map_path)
    (arn,) = moto_cluster.ecs.describe_tasks(cluster="acme-etl", tasks=[second])["tasks"]
    code, out, err = cli(
        capsys, "-c", str(map_path), "stop", first, str(arn["taskArn"]),
        "--reason", "wrong input", "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert document["reason"] == "wrong input" and document["cluster"] == "acme-etl"
    assert [t["task_id"] for t in document["tasks"]] == [first, second]
    assert all(t["stopped"] and t["workload"] == "bonus" for t in document["tasks"])
    (task,) = moto_cluster.ecs.describe_tasks(cluster="acme-etl", tasks=[first])["tasks"]
    assert task["desiredStatus"] == "STOPPED" and task["stoppedReason"] == "wrong input"
    stops = [r for r in _journal() if r["event"] == "stop"]
    assert len(stops) == 2 and stops[0]["workload"] == "bonus"
    assert stops[0]["result"]["task_id"] == first  # type: ignore[index]
    assert stops[0]["result"]["reason"] == "wrong input"  # type: ignore[index]
    # Text: what was stopped, and the reason on stderr.
    code, out, err = cli(capsys, "-c", str(map_path), "stop", first)
    assert code == 0 and f"{first} (bonus) had already stopped" in out and "reason:" in err


def test_stop_default_reason_names_user_and_host(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    task_id = _dispatched(capsys, map_path)
    code, out, _ = cli(capsys, "-c", str(map_path), "stop", task_id)
    assert code == 0 and f"stopped {task_id} (bonus), was " in out
    (task,) = moto_cluster.ecs.describe_tasks(cluster="acme-etl", tasks=[task_id])["tasks"]
    assert task["stoppedReason"] == default_stop_reason()
    assert (
        default_stop_reason().startswith("stopped by residency stop (")
        and "@" in task["stoppedReason"]
    )
    code, _, err = cli(capsys, "-c", str(map_path), "stop", task_id, "--reason", "x" * 300)
    assert code == 0, err
    assert len(_journal()[-1]["result"]["reason"]) == 255  # type: ignore[index]


def test_stop_refuses_a_task_of_no_mapped_workload_and_stops_nothing(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(moto_cluster)
    _register(moto_cluster, family="someone-elses")
    moto_cluster.add_host("us", "newyork")
    ours = _dispatched(capsys, map_path)
    theirs = moto_cluster.ecs.run_task(
        cluster="acme-etl", taskDefinition="someone-elses", launchType="EXTERNAL"
    )["tasks"][0]["taskArn"].rsplit("/", 1)[-1]
    code, out, err = cli(capsys, "-c", str(map_path), "stop", ours, theirs)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and theirs in err and "does not belong" in err
    assert "nothing was stopped" in err
    assert _desired(moto_cluster, ours) == "RUNNING"
    assert not [r for r in _journal() if r["event"] == "stop"]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ([], 2, "name the tasks to stop"),
        (["not a task"], 2, "is not a task id or ARN"),
        (["0" * 32], 7, "not found in cluster acme-etl"),
        (["--all-running", "bonsu"], 2, "did you mean 'bonus'"),
    ],
)
def test_stop_bad_arguments(
    moto_cluster: MotoCluster,
    map_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    words: str,
) -> None:
    got, _, err = cli(capsys, "-c", str(map_path), "stop", *args)
    assert got == code and words in err and err.startswith("error: "), err


# --- run --command -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (
            "python job.py --day '2024-05-01 00:00'",
            ["python", "job.py", "--day", "2024-05-01 00:00"],
        ),
        ('["sh", "-c", "echo $HOME"]', ["sh", "-c", "echo $HOME"]),
        ("  echo  hi ", ["echo", "hi"]),
    ],
)
def test_parse_command(value: str, words: list[str]) -> None:
    assert parse_command(value) == words


@pytest.mark.parametrize("value", ["", "   ", "[]", "[1, 2]", '["a",', "echo 'unclosed"])
def test_parse_command_refuses(value: str) -> None:
    with pytest.raises(UsageError, match="invalid --command"):
        parse_command(value)


def test_run_command_shows_in_dry_run_and_the_journal(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(moto_cluster)
    moto_cluster.add_host("us", "newyork")
    code, out, err = cli(
        capsys, "-c", str(map_path), "run", "bonus", "--dry-run", "--run-id", "d",
        "--command", "python job.py --day '2024-05-01 00:00'",
    )  # fmt: skip
    assert code == 0, err
    request_text, command = out.rsplit("}\n", 1)
    (override,) = json.loads(request_text + "}")["overrides"]["containerOverrides"]
    assert override["command"] == ["python", "job.py", "--day", "2024-05-01 00:00"]
    words = shlex.split(command)
    (cli_override,) = json.loads(words[words.index("--overrides") + 1])["containerOverrides"]
    assert cli_override["command"] == override["command"]
    # The data guard keeps its variable beside the new command.
    assert {"name": "RESIDENCY_ALLOWED_LOCATIONS", "value": "newyork,sanfrancisco"} in override[
        "environment"
    ]
    code, out, err = cli(
        capsys, "-c", str(map_path), "run", "bonus", "--no-wait", "-o", "json",
        "--command", '["sh", "-c", "exit 0"]',
    )  # fmt: skip
    assert code == 0, err
    record = [r for r in _journal() if r["event"] == "run"][-1]
    (journalled,) = record["request"]["overrides"]["containerOverrides"]  # type: ignore[index]
    assert journalled["command"] == ["sh", "-c", "exit 0"]


@pytest.mark.parametrize("value", ["", "'", "[oops"])
def test_run_bad_command_is_exit_2(
    value: str, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "-c", str(map_path), "run", "bonus", "--dry-run", "--command", value)
    assert code == 2 and "invalid --command" in err and "Traceback" not in err


# --- Click's complaints as one `error:` line each ----------------------------------------


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (["stpo"], "error: no such command 'stpo' (did you mean 'stop'?)"),
        (["run", "--wiat", "bonus"], "error: no such option --wiat (did you mean --wait?)"),
        (["stop", "--reasn", "x"], "error: no such option --reasn (did you mean --reason?)"),
        (["journal", "shwo"], "error: no such command 'shwo' (did you mean 'show'?)"),
        (["xyzzy"], "error: no such command 'xyzzy'"),
        (["attach"], "error: missing argument 'TASK'"),
        (["validate", "-o", "yaml"], "error: invalid value for '--output' / '-o'"),
    ],
)
def test_click_errors_are_one_error_line_with_a_suggestion(
    args: list[str], first: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, *args)
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert lines[0].startswith(first), err
    assert all(line.startswith("error: ") for line in lines), err
    assert "Usage:" not in err


COMMANDS = [
    [], ["validate"], ["schema"], ["hosts"], ["hosts", "sync"], ["register-host"],
    ["unregister-host"], ["check"], ["run"], ["attach"], ["stop"], ["tasks"], ["logs"],
    ["audit"], ["activate"], ["iam-policy"], ["sandbox", "up"], ["sandbox", "down"],
    ["sandbox", "env"], ["journal", "show"], ["journal", "verify"], ["demo"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "residency")
def test_help_metavars_read_like_words_not_python_types(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, *command, "--help")
    assert code == 0
    for python_type in ("<str>", "<int>", "<list[", "<int range>", "{", "[["):
        assert python_type not in out, out


def test_live_status_shows_each_tasks_current_state(capsys: pytest.CaptureFixture[str]) -> None:
    """The spinner line follows the tasks (it said "dispatching…" for the whole run)."""
    from residency_cli.cli.render import ConsoleObserver
    from residency_cli.cli.state import OutputFormat

    shown: list[str] = []

    class Live:
        def update(self, text: str) -> None:
            shown.append(text)

        def stop(self) -> None:
            pass

    observer = ConsoleObserver(OutputFormat.text)
    observer.live = Live()  # type: ignore[assignment]
    observer.status({"taskArn": "arn/t1", "lastStatus": "PENDING"}, "PROVISIONING")
    assert shown[-1] == "task t1: PENDING…"
    observer.status({"taskArn": "arn/t2", "lastStatus": "RUNNING"}, None)
    assert shown[-1] == "task t1: PENDING, task t2: RUNNING…"
    for n in range(3, 6):
        observer.status({"taskArn": f"arn/t{n}", "lastStatus": "RUNNING"}, "PENDING")
    assert shown[-1] == "5 tasks: 1 PENDING, 4 RUNNING…"
    err = capsys.readouterr().err
    assert "task t1: PROVISIONING → PENDING" in err and "task t2: RUNNING" in err
