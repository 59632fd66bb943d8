"""The data guard (etl/residency_guard.py): every refusal happens before a data file is opened.

Each case puts a data file beside the label and watches it with inotify (OpenWatch): a guard
that opened or read it, in this process or a child, fails the test. The wrapper's cases run
under this environment's Python and, with `make etl-image-test` (ETL_IMAGE_PYTHON set), under
the image's own interpreter too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import residency_guard
from tests.support.etl import ETL_DIR, LABEL_FILE, OpenWatch, write_label

_IMAGE = os.environ.get("ETL_IMAGE_PYTHON", "")
IMAGE_PYTHON = os.path.abspath(_IMAGE) if _IMAGE else ""
DATA_FILE = "employee_data.csv"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A host's data directory with one data file and no label yet."""
    directory = tmp_path / "host" / "data"
    directory.mkdir(parents=True)
    (directory / DATA_FILE).write_text("id;first_name;last_name;yearly_salary\n1;A;B;10\n")
    return directory


@pytest.fixture
def watch(data_dir: Path) -> Iterator[OpenWatch]:
    watcher = OpenWatch(data_dir / DATA_FILE)
    yield watcher
    watcher.close()


def refusal(data_dir: Path, allowed: tuple[str, ...] | None) -> residency_guard.Refused:
    with pytest.raises(residency_guard.Refused) as caught:
        residency_guard.check(data_dir, allowed)
    return caught.value


# ----------------------------------------------------------------------------- refusals


def test_missing_label_is_refused(data_dir: Path, watch: OpenWatch) -> None:
    refused = refusal(data_dir, ("frankfurt",))
    assert refused.label is None
    line = refused.line()
    assert f"{LABEL_FILE} is missing" in line
    assert "(label: none; allowed: frankfurt)" in line
    assert str(data_dir) in line and "\n" not in line
    assert not watch.opened()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not JSON"),
        (b"newyork\n", "not JSON"),
        (b'{"location": "frankfurt"', "not JSON"),
        (b'["frankfurt"]', "not a JSON object"),
        (b'{"location": "frankfurt", "zone": "eu"}', "unknown keys: 'zone'"),
        (b'{"location": "new york"}', "is not a location name"),
        (b'{"location": "frankfurt == frankfurt"}', "is not a location name"),
        (b'{"location": ""}', "is not a location name"),
        (b'{"location": 7}', "is not a location name"),
        (b"{}", "is not a location name"),
        (b'{"location": "frankfurt", "version": 2}', "version 2 is not 1"),
        (b'{"location": "frankfurt", "version": true}', "version True is not 1"),
        (b'{"location": "frank\xfffurt"}', "not UTF-8"),
        (b"[" * 4000 + b"]" * 4, "not JSON"),
        (b'{"location": "frankfurt"}' + b" " * 5000, "over 4096 bytes"),
        (b'{"location": "' + b"x" * 3000 + b'"}', "location 'xxxxxxxxxx"),
    ],
)
def test_malformed_label_is_refused(
    data_dir: Path, watch: OpenWatch, content: bytes, problem: str
) -> None:
    (data_dir / LABEL_FILE).write_bytes(content)
    refused = refusal(data_dir, ("frankfurt",))
    assert problem in refused.problem
    assert refused.label is None
    assert "\n" not in refused.line() and len(refused.problem) < 200  # short, whatever the label
    assert not watch.opened()


def test_wrong_location_is_refused(data_dir: Path, watch: OpenWatch) -> None:
    write_label(data_dir, "newyork")
    refused = refusal(data_dir, ("frankfurt",))
    assert refused.label == "newyork"
    assert refused.line().endswith(
        "the data's label is not an allowed location (label: newyork; allowed: frankfurt)"
    )
    assert not watch.opened()


def test_symlinked_label_outside_the_data_dir_is_refused(
    data_dir: Path, watch: OpenWatch, tmp_path: Path
) -> None:
    # The label elsewhere says an allowed location: following the link would pass.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = write_label(elsewhere, "frankfurt")
    (data_dir / LABEL_FILE).symlink_to(outside)
    refused = refusal(data_dir, ("frankfurt",))
    assert "is a symbolic link" in refused.problem and str(outside) in refused.problem
    assert not watch.opened()


def test_label_that_is_a_fifo_or_a_directory_is_refused(data_dir: Path, watch: OpenWatch) -> None:
    os.mkfifo(data_dir / LABEL_FILE)  # opening it for reading would block without O_NONBLOCK
    assert "not a regular file" in refusal(data_dir, ("frankfurt",)).problem
    os.unlink(data_dir / LABEL_FILE)
    (data_dir / LABEL_FILE).mkdir()
    assert "not a regular file" in refusal(data_dir, ("frankfurt",)).problem
    assert not watch.opened()


def test_label_readable_but_data_dir_not_is_refused() -> None:
    """Search permission only (--x): the label opens by its path, the directory cannot be
    read. Checked as an unprivileged user (root reads any directory), in a directory that
    user can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="residency-guard-"))
    try:
        base.chmod(0o755)
        data_dir = base / "data"
        data_dir.mkdir()
        (data_dir / DATA_FILE).write_text("id;first_name;last_name;yearly_salary\n")
        write_label(data_dir, "frankfurt").chmod(0o644)
        data_dir.chmod(0o311)
        watch = OpenWatch(data_dir / DATA_FILE)
        code = _as_nobody(data_dir)
        data_dir.chmod(0o755)
        reached = {10: "could not drop privileges", 11: "the label is not readable by its path",
                   12: "the guard raised something else", 13: "the guard passed",
                   14: "refused for another reason"}  # fmt: skip
        assert code == 0, reached.get(code, code)
        assert not watch.opened()
        watch.close()
    finally:
        shutil.rmtree(base)


def _as_nobody(data_dir: Path) -> int:
    """Read the label by its path, then run the guard, in a child as uid 65534 (when root);
    the child reports through its exit status only."""
    child = os.fork()
    if child == 0:
        code = 10
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            code = 11
            with open(data_dir / LABEL_FILE, "rb") as stream:
                json.loads(stream.read())
            code = 12
            residency_guard.check(data_dir, ("frankfurt",))
            code = 13
        except residency_guard.Refused as refused:
            code = 0 if "cannot be read (permission denied)" in refused.problem else 14
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def test_missing_or_unusable_data_dir_is_refused(tmp_path: Path) -> None:
    assert "does not exist" in refusal(tmp_path / "absent", ("x",)).problem
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert "is not a directory" in refusal(not_a_dir, ("x",)).problem


def test_a_list_of_allowed_locations(data_dir: Path, watch: OpenWatch) -> None:
    write_label(data_dir, "frankfurt")
    assert residency_guard.check(data_dir, ("newyork", "frankfurt")) == "frankfurt"
    write_label(data_dir, "munich")
    refused = refusal(data_dir, ("newyork", "frankfurt"))
    assert "(label: munich; allowed: newyork, frankfurt)" in refused.line()
    assert not watch.opened()


def test_allowed_locations_from_the_environment(
    data_dir: Path, watch: OpenWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_label(data_dir, "frankfurt")
    monkeypatch.setenv("RESIDENCY_ALLOWED_LOCATIONS", " newyork , frankfurt ")
    assert residency_guard.check(data_dir) == "frankfurt"
    for value, problem in (
        ("", "no allowed locations are given"),
        ("frankfurt;rm", "RESIDENCY_ALLOWED_LOCATIONS is malformed"),
        ("frankfurt,,newyork", "an empty location name"),
    ):
        monkeypatch.setenv("RESIDENCY_ALLOWED_LOCATIONS", value)
        refused = refusal(data_dir, None)
        assert problem in refused.problem, refused.problem
        assert refused.label == "frankfurt"  # the line still names the host's label
    monkeypatch.delenv("RESIDENCY_ALLOWED_LOCATIONS")
    assert "no allowed locations are given" in refusal(data_dir, None).problem
    assert not watch.opened()


def test_check_input_judges_where_the_file_really_is(
    data_dir: Path, watch: OpenWatch, tmp_path: Path
) -> None:
    """A link from a labelled directory to another location's file is judged by the
    directory the file is in, not by the link's."""
    write_label(data_dir, "newyork")
    allowed_dir = tmp_path / "frankfurt-data"
    allowed_dir.mkdir()
    write_label(allowed_dir, "frankfurt")
    link = allowed_dir / "employee_data.csv"
    link.symlink_to(data_dir / DATA_FILE)
    with pytest.raises(residency_guard.Refused) as refused:
        residency_guard.check_input(link, ("frankfurt",))
    assert "(label: newyork; allowed: frankfurt)" in refused.value.line()
    assert residency_guard.check_input(data_dir / DATA_FILE, ("newyork",)) == "newyork"
    assert not watch.opened()


def test_a_valid_label_with_a_version(data_dir: Path) -> None:
    (data_dir / LABEL_FILE).write_text('{"version": 1, "location": "frankfurt"}')
    assert residency_guard.check(data_dir, ("frankfurt",)) == "frankfurt"


def test_the_refusal_line_cannot_be_split_or_coloured(tmp_path: Path) -> None:
    odd = tmp_path / "new\nline\x1b[31m"
    odd.mkdir()
    line = refusal(odd, ("x",)).line()
    assert "\n" not in line and "\x1b" not in line
    assert "new\\nline\\x1b[31m" in line


# ----------------------------------------------------------------------------- the wrapper


def _pythons() -> list[object]:
    return [
        pytest.param(sys.executable, id="dev-env"),
        pytest.param(
            IMAGE_PYTHON,
            id="image-env",
            marks=pytest.mark.skipif(not IMAGE_PYTHON, reason="set by `make etl-image-test`"),
        ),
    ]


def wrapper(
    python: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python3 -m residency_guard ...` as the image runs it: from /app (the ETL folder)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENCY_")}
    environment.pop("PYTHONPATH", None)
    environment.update(env or {})
    return subprocess.run(
        [python, "-m", "residency_guard", *args],
        cwd=ETL_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("python", _pythons())
def test_wrapper_refuses_without_running_the_command(
    python: str, data_dir: Path, watch: OpenWatch, tmp_path: Path
) -> None:
    write_label(data_dir, "newyork")
    marker = tmp_path / "ran"
    command = ["--", "sh", "-c", f'cat "$0" > {marker}', str(data_dir / DATA_FILE)]
    done = wrapper(python, "--allowed", "frankfurt", "--data-dir", str(data_dir), *command)
    assert done.returncode == residency_guard.EXIT_REFUSED == 77
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "(label: newyork; allowed: frankfurt)" in done.stderr
    assert not marker.exists()
    assert not watch.opened()


@pytest.mark.parametrize("python", _pythons())
def test_wrapper_runs_the_command_when_allowed(python: str, data_dir: Path, tmp_path: Path) -> None:
    write_label(data_dir, "frankfurt")
    probe = "import os, sys; print(os.environ['RESIDENCY_ALLOWED_LOCATIONS'], sys.argv[1:])"
    done = wrapper(
        python, "--data-dir", str(data_dir), "--", "python3", "-c", probe, "a", "--", "b",
        env={"RESIDENCY_ALLOWED_LOCATIONS": "newyork,frankfurt"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The child sees the list the wrapper enforced; its own arguments are untouched.
    assert done.stdout == "newyork,frankfurt ['a', '--', 'b']\n"
    exit_code = wrapper(python, "--allowed", "frankfurt", "--data-dir", str(data_dir), "--",
                        "sh", "-c", "exit 5")  # fmt: skip
    assert exit_code.returncode == 5  # the command's own code: the wrapper exec'd it


@pytest.mark.parametrize("python", _pythons())
def test_wrapper_data_dir_from_the_environment_and_check_only(python: str, data_dir: Path) -> None:
    write_label(data_dir, "frankfurt")
    env = {"RESIDENCY_DATA_DIR": str(data_dir), "RESIDENCY_ALLOWED_LOCATIONS": "frankfurt"}
    done = wrapper(python, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"residency-guard: {data_dir} is labelled frankfurt: allowed\n"
    refused = wrapper(python, "--allowed", "newyork", env=env)
    assert refused.returncode == 77 and "label: frankfurt" in refused.stderr


@pytest.mark.parametrize("python", _pythons())
def test_wrapper_usage_errors_and_missing_commands(python: str, data_dir: Path) -> None:
    write_label(data_dir, "frankfurt")
    bad = wrapper(python, "--allowed", "frankfurt or newyork", "--data-dir", str(data_dir))
    assert bad.returncode == 2 and "--allowed:" in bad.stderr and "Traceback" not in bad.stderr
    stray = wrapper(python, "--allowed", "frankfurt", "sh")
    assert stray.returncode == 2 and "unrecognized arguments: sh" in stray.stderr
    missing = wrapper(python, "--allowed", "frankfurt", "--data-dir", str(data_dir), "--",
                      "no-such-command-here")  # fmt: skip
    assert missing.returncode == 127
    assert missing.stderr == "residency-guard: no-such-command-here: command not found\n"


@pytest.mark.parametrize("python", _pythons())
def test_the_guard_needs_only_the_standard_library(python: str, data_dir: Path) -> None:
    """-S: no site-packages at all; -E: no PYTHONPATH. It still runs."""
    write_label(data_dir, "frankfurt")
    done = subprocess.run(
        [python, "-S", "-E", str(ETL_DIR / "residency_guard.py"), "--allowed", "frankfurt",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
