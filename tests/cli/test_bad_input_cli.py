"""Hostile and broken input through the CLI (issue 14 items 9, 10 and 12): each is refused
with the contract's exit code and one clear line per problem, never a traceback nor exit 1,
and costs no more than the text it came in (budgets are counted, not timed)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from residency_cli.cli.app import main
from residency_cli.config import MAX_MAP_BYTES, _check_expansion, _MapLoader
from tests.support.maps import VALID

# The billion laughs in YAML: 10 lines, 9^9 (387 million) strings once expanded.
ALIAS_BOMB = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    code = main(list(args))
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert code != 1, captured.err
    return code, captured.out, lines


def write(tmp_path: Path, text: str, name: str = "residency.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def no_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the map is ever constructed or walked (the expensive steps)."""

    def expanded(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the map was expanded before it was refused")

    monkeypatch.setattr(yaml.constructor.SafeConstructor, "construct_document", expanded)
    monkeypatch.setattr("residency_cli.config._LineIndex.walk", expanded)


# --- item 9: size and alias budgets ----------------------------------------------------------


def test_an_alias_bomb_is_refused_before_it_is_expanded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_expansion: None
) -> None:
    code, _, err = cli(capsys, "--config", write(tmp_path, ALIAS_BOMB), "validate")
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("error: ") and "YAML aliases expand the map by more than" in err[0]


def test_the_alias_budget_costs_what_the_text_costs() -> None:
    """The check visits each distinct node once (an alias is its anchor's node)."""
    loader = _MapLoader(ALIAS_BOMB)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    assert node is not None
    with pytest.raises(yaml.YAMLError, match="expand the map"):
        _check_expansion(node)
    text_nodes = sum(1 for _ in yaml.parse(ALIAS_BOMB))  # events: about one per node
    ok = yaml.compose(VALID, Loader=_MapLoader)
    assert _check_expansion(ok) <= sum(1 for _ in yaml.parse(VALID))
    assert text_nodes < 200


def test_a_recursive_alias_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID + "extra: &loop [1, *loop]\n"
    code, _, err = cli(capsys, "--config", write(tmp_path, text), "validate")
    assert code == 2 and len(err) == 1
    assert "alias refers to a collection that contains it" in err[0]


def test_a_few_aliases_are_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("tags: {cost-centre: hr}", "tags: &tags {cost-centre: hr}")
    text += "    tags: *tags\n"
    code, out, err = cli(capsys, "--config", write(tmp_path, text), "validate")
    assert code == 0, err
    assert "is valid" in out


def test_a_55_mb_map_is_refused_without_being_parsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.yaml"
    line = "# " + "x" * 1021 + "\n"
    with path.open("w", encoding="utf-8") as stream:
        stream.write(VALID)
        for _ in range(55 * 1024):
            stream.write(line)

    def parsed(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the map was parsed before it was refused")

    monkeypatch.setattr(_MapLoader, "__init__", parsed)
    code, _, err = cli(capsys, "--config", str(path), "validate")
    assert code == 2 and len(err) == 1
    assert f"over the limit of {MAX_MAP_BYTES} bytes" in err[0]
    assert err[0].startswith(f"error: {path}:1: the map is {path.stat().st_size} bytes")


# --- item 10: exit 2, never exit 1 -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        "{" * 5000,
        "[" * 5000 + "]" * 5000,
        "- " * 5000,
        "".join(" " * depth + "a:\n" for depth in range(1000)),  # block mappings
    ],
    ids=["brackets", "braces", "closed brackets", "block sequences", "block mappings"],
)
def test_a_5000_deep_map_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    code, _, err = cli(capsys, "--config", write(tmp_path, text), "validate")
    assert code == 2 and len(err) == 1
    assert "nests deeper than 32 levels" in err[0]


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("  frankfurt:\n    data_region", "  1:\n    data_region", "locations[1]"),
        ("  frankfurt:\n    data_region", "  null:\n    data_region", "locations[None]"),
        ("{cost-centre: hr}", "{1: hr}", "workloads.bonus.tags[1]"),
        ("{cost-centre: hr}", "{true: hr}", "workloads.bonus.tags[True]"),
        ("{RUN_MODE: full}", "{1: full}", "workloads.bonus.environment[1]"),
        ("{RUN_MODE: full}", "{null: full}", "workloads.bonus.environment[None]"),
        ("{RUN_MODE: full}", "{2.5: full}", "workloads.bonus.environment[2.5]"),
    ],
)
def test_a_key_that_is_not_a_string_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, named: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    code, _, err = cli(capsys, "--config", path, "validate")
    assert code == 2
    assert any(f"{path}:" in line and f"{named}:" in line for line in err), err
    assert all(line.startswith("error: ") for line in err)


def test_a_map_that_is_not_a_regular_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "map.fifo"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    for path in ("/dev/zero", str(fifo), str(tmp_path)):
        code, _, err = cli(capsys, "--config", path, "validate")
        assert code == 2 and len(err) == 1, (path, err)
        assert err[0].startswith(f"error: cannot read residency map {path}: ")


def test_a_map_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.encode() + b"# caf\xe9\n")
    code, _, err = cli(capsys, "--config", str(path), "validate")
    assert code == 2 and len(err) == 1 and "not UTF-8" in err[0]


def test_a_huge_journal_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = cli(capsys, "journal", "show", "--limit", "99999999999999999999999")
    assert code == 2
    code, out, _ = cli(capsys, "journal", "show", "--limit", "1000000000", "-o", "json")
    assert code == 0 and out.strip() == "[]"


# --- item 12: what reaches the terminal ------------------------------------------------------


def test_control_characters_in_map_values_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace(
        "description: ACME US data centre",
        'description: "ACME \\e]0;owned\\a\\e[31mUS\\e[0m \\x9b2J \\u202eertnec"',
    )
    code, out, err = cli(capsys, "--config", write(tmp_path, text), "validate")
    assert code == 0, err
    assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out and "\a" not in out
    assert "ACME \\x1b]0;owned\\x07\\x1b[31mUS\\x1b[0m \\x9b2J \\u202eertnec" in out
    code, out, _ = cli(capsys, "--config", write(tmp_path, text), "validate", "-o", "json")
    assert code == 0 and "\x1b" not in out  # JSON escapes control characters itself


def test_a_newline_in_a_location_name_does_not_split_the_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace("  frankfurt:\n", '  "frank\\nfurt\\e[2J":\n', 1)
    code, _, err = cli(capsys, "--config", write(tmp_path, text), "validate")
    assert code == 2
    assert all(line.startswith("error: ") for line in err), err
    assert any("locations['frank\\nfurt\\x1b[2J']" in line for line in err), err
    assert not any("\x1b" in line for line in err)


class _HtmlPage(http.server.BaseHTTPRequestHandler):
    PAGE = (
        b"<!DOCTYPE html>\n<html>\n<head>\n<title>404 Not Found</title>\n</head>\n<body>\n"
        b"<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n"
        b"<hr>\n<address>Apache/2.4.57 Server</address>\n</body>\n</html>\n\n"
    )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def html_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_html_answer_is_reported_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    html_endpoint: str,
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    map_path = write(tmp_path, VALID)
    code, _, err = cli(capsys, "--config", map_path, "--endpoint-url", html_endpoint, "hosts")
    assert code == 7
    assert len(err) == 1, err
    assert "answered HTTP 404 with an HTML page ('404 Not Found')" in err[0]
    assert "<html>" not in err[0]


def test_a_bad_role_name_is_refused_before_any_activation(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.use(monkeypatch)
    for role in ("bad role name!", "x" * 65, "rôle", ""):
        code, _, err = cli(capsys, "--sandbox", "activate", "-l", "newyork", "--role", role)
        assert code == 2 and len(err) == 1, (role, err)
        assert "is not an IAM role name" in err[0]
    assert sandbox.client("ssm").describe_activations()["ActivationList"] == []
    role = "service-role/AmazonEC2RunCommandRoleForManagedInstances"  # SSM's own example
    code, _, err = cli(capsys, "--sandbox", "activate", "-l", "newyork", "--role", role)
    assert code == 0, err


@pytest.mark.parametrize("duration", ["١٠m", "1h1h1h", "30m1h", "１０m"])
def test_durations_take_ascii_digits_and_each_unit_once(
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    duration: str,
) -> None:
    sandbox.use(monkeypatch)
    code, _, err = cli(capsys, "--sandbox", "activate", "-l", "newyork", "--expires", duration)
    assert code == 2 and len(err) == 1 and "invalid duration" in err[0], err
    code, _, err = cli(capsys, "--sandbox", "audit", "--since", duration)
    assert code == 2 and "invalid duration" in "\n".join(err), err
    assert sandbox.client("ssm").describe_activations()["ActivationList"] == []


def test_a_garbage_region_is_reported_as_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "!!garbage")
    no_region = write(tmp_path, VALID.replace("region: eu-central-1\n", "", 1))
    code, _, err = cli(capsys, "--config", no_region, "hosts")
    assert code == 2 and len(err) == 1, err
    assert "invalid AWS region '!!garbage' (from AWS_REGION)" in err[0]
    code, _, err = cli(capsys, "--config", no_region, "--region", "eu central", "hosts")
    assert code == 2 and "invalid AWS region 'eu central'" in err[0]


def test_aws_region_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads only AWS_DEFAULT_REGION; AWS_REGION is the SDKs' first choice."""
    from residency_cli.aws import AwsSettings, make_session

    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert make_session(AwsSettings()).region_name == "eu-west-1"
    assert make_session(AwsSettings(region="ap-south-1")).region_name == "ap-south-1"
    monkeypatch.delenv("AWS_REGION")
    assert make_session(AwsSettings()).region_name == "us-east-1"
