"""The CLI end to end: in-process through main() against moto, and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from residency_cli.cli.app import main
from tests.support.moto_cluster import MotoCluster

HOST_KEYS = {
    "container_instance_arn",
    "container_instance_id",
    "instance_id",
    "hostname",
    "location",
    "status",
    "agent_connected",
    "running_tasks",
    "pending_tasks",
    "cpu_available",
    "memory_available",
}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_hosts_json_shape(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moto_cluster.add_host("a", "newyork")
    code, out, err = run_cli(capsys, "-c", str(map_path), "hosts", "-o", "json")
    assert code == 0, err
    hosts = json.loads(out)
    assert isinstance(hosts, list) and len(hosts) == 1
    assert set(hosts[0]) == HOST_KEYS
    assert hosts[0]["location"] == "newyork"


def test_hosts_text_table(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moto_cluster.add_host("a", "frankfurt")
    code, out, _ = run_cli(capsys, "-c", str(map_path), "hosts", "--location", "frankfurt")
    assert code == 0
    assert "frankfurt" in out and "ACTIVE" in out
    assert "\x1b[" not in out  # no colour when not a TTY


def test_register_and_unregister_json(
    moto_cluster: MotoCluster, map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = moto_cluster.add_host("a")
    ident = moto_cluster.ec2_ids["a"]
    code, out, err = run_cli(
        capsys, "-c", str(map_path), "register-host", ident, "--location", "newyork", "-o", "json"
    )
    assert code == 0, err
    change = json.loads(out)
    assert set(change) == {
        "host",
        "attribute",
        "previous_location",
        "location",
        "action",
        "dry_run",
        "request",
    }
    assert (change["action"], change["location"], change["host"]["container_instance_arn"]) == (
        "add",
        "newyork",
        arn,
    )

    code, _, err = run_cli(
        capsys, "-c", str(map_path), "register-host", ident, "--location", "frankfurt"
    )
    assert code == 3 and "--force" in err

    code, out, _ = run_cli(capsys, "-c", str(map_path), "unregister-host", ident, "--dry-run")
    assert code == 0 and "would remove location=newyork" in out
    assert moto_cluster.location_of("a") == "newyork"

    code, out, _ = run_cli(capsys, "-c", str(map_path), "unregister-host", ident)
    assert code == 0 and moto_cluster.location_of("a") is None


def test_register_refuses_undeclared_location_before_any_call(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "-c", str(map_path), "register-host", "x", "--location", "paris"
    )
    assert code == 2 and out == ""
    assert (
        err.strip() == "error: unknown location 'paris'; declared: newyork, frankfurt, sanfrancisco"
    )


def test_validate_json(map_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "-c", str(map_path), "validate", "-o", "json")
    assert code == 0
    summary = json.loads(out)
    assert summary["workloads"] == {"bonus": ["newyork", "sanfrancisco"], "tax": ["frankfurt"]}
    assert set(summary) == {
        "config",
        "valid",
        "cluster",
        "region",
        "location_attribute",
        "locations",
        "hosts",
        "workloads",
    }


def test_config_from_environment(
    map_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESIDENCY_CONFIG", str(map_path))
    assert run_cli(capsys, "validate")[0] == 0


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "schema")
    assert code == 0 and json.loads(out)["title"].startswith("residency map")


def test_bad_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "hosts", "--no-such-option")
    assert code == 2 and err.startswith("error: no such option --no-such-option")


def test_bad_output_format(map_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "-c", str(map_path), "validate", "-o", "yaml")
    assert code == 2 and "yaml" in err


def _subprocess(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from residency_cli.cli.app import run; run()", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=cwd,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_installed_console_script_works() -> None:
    script = Path(sys.executable).with_name("residency")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("residency ")


def test_help_lists_commands_without_importing_boto3() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom residency_cli.cli.app import main\ncode = main(['--help'])\n"
            "print('boto3' in sys.modules, 'pydantic' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "register-host" in result.stdout
    assert result.stdout.strip().endswith("False False")


def test_unreachable_endpoint_exits_7(map_path: Path) -> None:
    result = _subprocess(
        "-c",
        str(map_path),
        "--endpoint-url",
        "http://127.0.0.1:9",
        "hosts",
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
    )
    assert result.returncode == 7, result.stderr
    assert result.stderr.startswith("error: ") and "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_credentials_exit_7(map_path: Path, tmp_path: Path) -> None:
    result = _subprocess(
        "-c",
        str(map_path),
        "--endpoint-url",
        "http://127.0.0.1:9",
        "hosts",
        env={
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    assert result.returncode == 7, result.stderr
    assert "credentials" in result.stderr and "Traceback" not in result.stderr


def test_unknown_profile_is_usage_error(map_path: Path, tmp_path: Path) -> None:
    result = _subprocess(
        "-c",
        str(map_path),
        "--profile",
        "nope",
        "hosts",
        env={"AWS_CONFIG_FILE": str(tmp_path / "none")},
    )
    assert result.returncode == 2 and "profile 'nope'" in result.stderr


def test_invalid_map_subprocess(tmp_path: Path) -> None:
    (tmp_path / "residency.yaml").write_text("version: 1\ncluster: x\n", encoding="utf-8")
    result = _subprocess("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: residency.yaml:1: locations: missing required field 'locations'",
        "error: residency.yaml:1: workloads: missing required field 'workloads'",
    ]


def test_schema_takes_output_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["type"] == "object"


def test_text_keeps_brackets_of_multi_location_placements(
    map_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(map_path), "validate"]) == 0
    assert "attribute:location in [newyork, sanfrancisco]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--endpoint-url", "not-a-url"], "Invalid endpoint"),
        (["--region", "bad region!"], "invalid AWS region"),
    ],
)
def test_bad_global_options_are_usage_errors(
    map_path: Path,
    option: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    assert main(["-c", str(map_path), *option, "hosts"]) == 2
    assert words in capsys.readouterr().err
