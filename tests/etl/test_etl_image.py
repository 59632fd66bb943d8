"""The image's own command, run as the image would run it, outside Docker.

No Docker engine runs here, so ``make etl-image-test`` builds a fresh virtual environment
from docker/requirements.txt alone (``--no-deps`` + ``pip check``: the pins must be the
whole tree), stages the files the Dockerfile copies into an "/app" folder and runs the
Dockerfile's CMD with /app and /data mapped to temporary folders. Skipped unless
ETL_IMAGE_PYTHON names that environment's interpreter.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.support.etl import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    ROOT,
    SAMPLE,
    OpenWatch,
    job_env,
    write_label,
)

_GIVEN = os.environ.get("ETL_IMAGE_PYTHON", "")
# abspath, not resolve(): the venv's python is a symlink that must stay inside the venv.
IMAGE_PYTHON = os.path.abspath(_GIVEN) if _GIVEN else ""
DOCKERFILE = ROOT / "docker" / "Dockerfile"

pytestmark = pytest.mark.skipif(
    not IMAGE_PYTHON, reason="set by `make etl-image-test` (needs the image's own venv)"
)


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stage_app(tmp_path: Path) -> Path:
    """Copy what the Dockerfile's COPY lines put in /app; they must pass .dockerignore."""
    allowed = [
        line[1:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    app = tmp_path / "app"
    app.mkdir()
    for keyword, rest in instructions():
        if keyword != "COPY" or "requirements" in rest:
            continue
        *sources, destination = [p for p in rest.split() if not p.startswith("--")]
        assert destination == "/app/"
        for source in sources:
            assert any(fnmatch.fnmatch(source, pattern) for pattern in allowed), source
            shutil.copy(ROOT / source, app / Path(source).name)
    return app


def image_command(app: Path, data: Path, script: str | None = None) -> list[str]:
    (cmd,) = [json.loads(rest) for keyword, rest in instructions() if keyword == "CMD"]
    if script:
        cmd = [part.replace("christmas_bonus.py", script) for part in cmd]
    mapped = [part.replace("/app/", f"{app}/").replace("/data/", f"{data}/") for part in cmd]
    assert mapped[0] == "python3"
    return [IMAGE_PYTHON, *mapped[1:]]


def test_dockerfile_shape() -> None:
    found = instructions()
    assert found[0][0] == "FROM" and "-slim" in found[0][1]
    users = [rest for keyword, rest in found if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(k == "RUN" and "--requirement /tmp/requirements.txt" in r for k, r in found)


def test_environment_is_exactly_the_pins() -> None:
    check = subprocess.run([IMAGE_PYTHON, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = "import importlib.util as u; print(u.find_spec('moto'), u.find_spec('pandas'))"
    out = subprocess.run([IMAGE_PYTHON, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]  # the tests' packages are not in the image


@pytest.mark.parametrize(
    ("script", "report", "expected"),
    [
        ("christmas_bonus.py", "salary_with_bonus.csv", "1;Ingar;Raeburn;66841.47;3342\n"),
        ("tax_amount.py", "tax_amount.csv", "tax_amount\n752172\n"),
    ],
)
def test_the_image_command_runs_and_uploads(
    moto_endpoint: str,
    tmp_path: Path,
    script: str,
    report: str,
    expected: str,
) -> None:
    app, data = stage_app(tmp_path), tmp_path / "data"
    data.mkdir()
    write_label(data)  # the jobs' environment allows it (conftest.py)
    shutil.copy(SAMPLE, data / "employee_data.csv")
    bucket = "image-" + script.split(".")[0].replace("_", "-")
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="eu-central-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    env = job_env(moto_endpoint) | {"S3_BUCKET": bucket, "S3_FOLDER": "acme"}
    env.pop("PYTHONPATH", None)
    command = image_command(app, data, script)
    done = subprocess.run(command, env=env, cwd=app, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expected in (data / report).read_text()
    assert f"to 's3://{bucket}/acme/{report}'" in done.stderr
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="eu-central-1",
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    body = client.get_object(Bucket=bucket, Key=f"acme/{report}")["Body"].read()
    assert body == (data / report).read_bytes()


def test_the_image_command_refuses_bad_data(tmp_path: Path) -> None:
    app, data = stage_app(tmp_path), tmp_path / "data"
    data.mkdir()
    write_label(data)
    (data / "employee_data.csv").write_text("id;first_name;last_name;yearly_salary\n1;A;B;x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    done = subprocess.run(
        image_command(app, data), env=env, cwd=app, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "line 2: yearly_salary 'x'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (data / "salary_with_bonus.csv").exists()


@pytest.mark.parametrize("script", ["christmas_bonus.py", "tax_amount.py"])
def test_the_image_command_is_refused_at_data_of_another_location(
    tmp_path: Path, script: str
) -> None:
    """The image's jobs, with the image's files and interpreter only, on a host whose data
    is New York's while the task allows Frankfurt: exit 77 before the data file is opened."""
    app, data = stage_app(tmp_path), tmp_path / "data"
    data.mkdir()
    write_label(data, "newyork")
    shutil.copy(SAMPLE, data / "employee_data.csv")
    watch = OpenWatch(data / "employee_data.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env["RESIDENCY_ALLOWED_LOCATIONS"] = "frankfurt"
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        image_command(app, data, script), env=env, cwd=app, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 77, done.stderr
    assert done.stderr.endswith("(label: newyork; allowed: frankfurt)\n")
    assert done.stderr.count("\n") == 1
    assert not watch.opened()
    watch.close()
    assert sorted(p.name for p in data.iterdir()) == [".residency-label.json", "employee_data.csv"]
