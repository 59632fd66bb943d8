"""The scripts run as the image runs them (``python3 /app/<job>.py``), against a moto server."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.support.etl import ETL_DIR, FAKE_KEY_ID, FAKE_SECRET, SAMPLE, job_env

MEMORY_LIMIT = 1 << 30  # bytes of heap a job may take here: a runaway read fails, not the host


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_script(
    script: str, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ETL_DIR / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
        preexec_fn=_limit_memory,
    )


def messages(stderr: str) -> list[str]:
    return [line.split(" - ", 3)[3] for line in stderr.splitlines() if line.count(" - ") >= 3]


@pytest.mark.parametrize(
    ("script", "report"),
    [("christmas_bonus.py", "yearly salary with bonus"), ("tax_amount.py", "total tax payable")],
)
def test_log_lines_in_order(moto_endpoint: str, tmp_path: Path, script: str, report: str) -> None:
    env = job_env(moto_endpoint)
    bucket = "logs-" + script.split(".")[0].replace("_", "-")
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="eu-central-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    out = tmp_path / "report.csv"
    args = [f"--input_file={SAMPLE}", f"--output_file={out}", f"--s3_bucket={bucket}"]
    done = run_script(script, [*args, "--s3_folder=hr/2024", "--expected-region=eu-central-1"], env)
    assert done.returncode == 0, done.stderr
    assert messages(done.stderr) == [
        f"Running on host '{os.uname().nodename}'",
        f"Reading CSV file '{SAMPLE}'",
        f"Creating the {report} report at '{out}'",
        f"Uploading local file '{out}' to 's3://{bucket}/hr/2024/report.csv'",
    ]
    assert done.stdout == ""


def test_failures_exit_non_zero_without_traceback_or_secrets(
    moto_endpoint: str, tmp_path: Path
) -> None:
    env = job_env(moto_endpoint)
    bad = tmp_path / "bad.csv"
    bad.write_text("id;first_name;last_name;yearly_salary\n1;A;B;12.5\n2;C;D;1.234\n")
    cases = [
        (["-i", str(bad), "-o", str(tmp_path / "x.csv"), "-b", "absent"], 1, "line 3"),
        (["-i", str(SAMPLE), "-o", str(tmp_path / "y.csv"), "-b", "absent"], 4, "NoSuchBucket"),
        (["-i", str(SAMPLE), "-b", "absent", "--expected-region", "eu-west-1"], 4, "absent"),
    ]
    for args, code, detail in cases:
        done = run_script("tax_amount.py", args, env)
        assert done.returncode == code, done.stderr
        errors = [line for line in done.stderr.splitlines() if " - ERROR - " in line]
        assert len(errors) == 1 and detail in errors[0], done.stderr
        assert "Traceback" not in done.stderr
        assert FAKE_SECRET not in done.stderr and FAKE_KEY_ID not in done.stderr


def test_usage_error_exits_2(tmp_path: Path) -> None:
    done = run_script("christmas_bonus.py", [], dict(os.environ))
    assert done.returncode == 2
    assert re.search(r"the following arguments are required: --input_file/-i", done.stderr)


@pytest.mark.parametrize("script", ["christmas_bonus.py", "tax_amount.py"])
def test_special_input_files_are_refused_not_read(tmp_path: Path, script: str) -> None:
    """`-i /dev/zero` used to read one endless line (until memory ran out); a FIFO with no
    writer blocked open() for ever. /dev carries no residency label, so the guard refuses
    it (77); a FIFO in a labelled directory is refused by the reader (1). Either way at once:
    a hang would end in the timeout, a runaway read in the memory limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    zero = run_script(script, ["-i", "/dev/zero", "-o", str(tmp_path / "z.csv")], env)
    assert zero.returncode == 77, zero.stderr
    assert "'/dev'" in zero.stderr and "is missing" in zero.stderr
    fifo = tmp_path / "employee_data.csv"
    os.mkfifo(fifo)
    done = run_script(script, ["-i", str(fifo), "-o", str(tmp_path / "f.csv")], env)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if " - ERROR - " in line]
    assert errors and errors[0].endswith(f"{fifo}: not a regular file (a FIFO)")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "f.csv").exists() and not (tmp_path / "z.csv").exists()


@pytest.mark.parametrize("script", ["christmas_bonus.py", "tax_amount.py"])
def test_a_missing_pyarrow_is_one_line_not_a_traceback(script: str) -> None:
    """Issue 18.8: run on a host without the image's requirements."""
    path = Path(__file__).resolve().parents[2] / "etl" / script
    code = (
        "import sys, runpy; sys.modules['pyarrow'] = None; "
        f"sys.argv = [{str(path)!r}, '--help']; runpy.run_path({str(path)!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "error: pyarrow is not installed: pip install -r docker/requirements.txt"
    )
