"""The residency map: a valid example, and a corpus of malformed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from residency_cli.cli.app import main
from residency_cli.config import (
    config_schema,
    parse_config,
    task_definition_family,
    workload_for_task,
)
from residency_cli.errors import ConfigError
from tests.support.maps import VALID


def test_valid_map_loads_frozen() -> None:
    config = parse_config(VALID, "m.yaml")
    assert config.cluster == "acme-etl"
    assert config.workloads["bonus"].locations == ("newyork",)
    assert config.workloads["tax"].locations == ("frankfurt", "newyork")
    assert config.workloads["bonus"].timeout_seconds == 1800
    assert config.workloads["tax"].timeout_seconds == 3600
    assert config.source == "m.yaml"
    with pytest.raises(ValidationError):
        config.cluster = "other"  # type: ignore[misc]


def test_schema_is_json_schema_with_all_sections() -> None:
    schema = config_schema()
    assert set(schema["properties"]) >= {"version", "cluster", "locations", "hosts", "workloads"}
    json.dumps(schema)


def test_workload_of_task_is_its_task_definition_never_a_tag_alone() -> None:
    """CONTRACT.md section 8: a task's workload is decided by its task definition; anyone
    allowed to call RunTask can put any tag on a task."""
    config = parse_config(VALID)
    arn = "arn:aws:ecs:eu-central-1:123456789012:task-definition/christmas-bonus:7"
    assert workload_for_task(config, {"taskDefinitionArn": arn}) == "bonus"
    assert workload_for_task(config, {"taskDefinitionArn": "other:1"}) is None
    assert task_definition_family(arn) == "christmas-bonus"
    spoofed = {"tags": [{"key": "residency:workload", "value": "tax"}], "taskDefinitionArn": arn}
    assert workload_for_task(config, spoofed) == "bonus"
    tag_only = {"tags": [{"key": "residency:workload", "value": "tax"}], "taskDefinitionArn": "x"}
    assert workload_for_task(config, tag_only) is None
    # The map pins tax-amount:3: another revision of the family is not that workload.
    tax = "arn:aws:ecs:eu-central-1:123456789012:task-definition/tax-amount:"
    assert workload_for_task(config, {"taskDefinitionArn": tax + "3"}) == "tax"
    assert workload_for_task(config, {"taskDefinitionArn": tax + "4"}) is None


def test_declared_location_matches_short_and_fully_qualified_names() -> None:
    config = parse_config(VALID, "residency.yaml")
    arn = "arn:aws:ecs:eu-central-1:123456789012:container-instance/acme-etl/abc"
    found = config.declared_location(
        hostname="TAX.host.acme.internal", instance_id="mi-1", container_instance_arn=arn
    )
    assert found == ("frankfurt", "residency.yaml:13: hosts.tax.host")
    assert (
        config.declared_location(hostname="taxi.host", instance_id=None, container_instance_arn=arn)
        is None
    )


COMMAND_LINE = next(line for line in VALID.splitlines() if "command:" in line).strip()
LOCATIONS_BLOCK = VALID[VALID.index("locations:") : VALID.index("workloads:")]


def _replace(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


# (name, text, expected line, words the one message must contain)
MALFORMED: list[tuple[str, str, int, list[str]]] = [
    (
        "host location injection",
        _replace("  tax.host: frankfurt", '  tax.host: "x == y"'),
        13,
        ["'='"],
    ),
    (
        "host location list",
        _replace("  tax.host: frankfurt", '  tax.host: "newyork, frankfurt"'),
        13,
        ["','"],
    ),
    (
        "keyword location",
        _replace("    location: newyork\n", "    location: [newyork, or]\n"),
        17,
        ["query language"],
    ),
    ("boolean key", _replace("  frankfurt:\n", "  yes: {}\n  frankfurt:\n"), 9, ["quote it"]),
    ("workload null", VALID + "  w2: null\n", 26, ["expected a mapping"]),
    ("yaml syntax", VALID + "  bad: [unclosed\n", 27, ["YAML syntax", "starts on line 26"]),
    ("tab indentation", VALID.replace("  tax:\n", "\ttax:\n"), 23, ["YAML syntax"]),
    ("empty file", "", 1, ["empty"]),
    ("not a mapping", "- a\n- b\n", 1, ["mapping"]),
    ("unknown top key", VALID + "clustre: x\n", 26, ["unknown key 'clustre'"]),
    (
        "unknown workload key",
        _replace("    timeout: 30m\n", "    timeuot: 30m\n"),
        21,
        ["timeuot", "timeout"],
    ),
    (
        "unknown location key",
        _replace("    data_region: us-east-1", "    region: us-east-1"),
        8,
        ["unknown key 'region'"],
    ),
    ("version 2", _replace("version: 1", "version: 2"), 1, ["version"]),
    ("version string", _replace("version: 1", "version: one"), 1, ["version"]),
    ("missing cluster", _replace("cluster: acme-etl\n", ""), 1, ["cluster"]),
    ("cluster with space", _replace("cluster: acme-etl", "cluster: acme etl"), 2, ["cluster"]),
    (
        "undeclared location typo",
        _replace("    location: newyork\n", "    location: newyrok\n"),
        17,
        ["newyrok", "did you mean 'newyork'"],
    ),
    (
        "undeclared host location",
        _replace("  tax.host: frankfurt", "  tax.host: paris"),
        13,
        ["paris", "declare"],
    ),
    (
        "injection or",
        _replace("    location: newyork\n", "    location: newyork or attribute:x exists\n"),
        17,
        ["location"],
    ),
    (
        "location with space",
        _replace("    location: newyork\n", '    location: "new york"\n'),
        17,
        ["' '"],
    ),
    (
        "location with quote",
        _replace("    location: newyork\n", '    location: "new\'york"\n'),
        17,
        ['"\'"'],
    ),
    (
        "location with brackets",
        _replace("    location: [frankfurt, newyork]", '    location: ["[frankfurt]"]'),
        25,
        ["'['"],
    ),
    (
        "location with comma",
        _replace("    location: newyork\n", '    location: "newyork,frankfurt"\n'),
        17,
        ["','"],
    ),
    (
        "location with equals",
        _replace("    location: newyork\n", '    location: "a==b"\n'),
        17,
        ["'='"],
    ),
    (
        "reserved attribute",
        _replace("location_attribute: location", "location_attribute: ecs.location"),
        4,
        ["ecs."],
    ),
    (
        "attribute with space",
        _replace("location_attribute: location", "location_attribute: my location"),
        4,
        ["attribute name"],
    ),
    (
        "129-char location",
        _replace("  frankfurt:\n", f"  {'f' * 129}: {{}}\n  frankfurt:\n"),
        9,
        ["129"],
    ),
    (
        "empty locations",
        _replace(LOCATIONS_BLOCK, "locations: {}\n"),
        5,
        ["locations"],
    ),
    ("empty workloads", VALID.split("workloads:")[0] + "workloads: {}\n", 14, ["workloads"]),
    (
        "workload not mapping",
        VALID.split("workloads:")[0] + "workloads:\n  bonus: yes\n",
        15,
        ["bonus"],
    ),
    (
        "missing task definition",
        _replace("    task_definition: christmas-bonus\n", ""),
        15,
        ["task_definition"],
    ),
    (
        "bad task definition",
        _replace("task_definition: christmas-bonus", "task_definition: christmas bonus"),
        16,
        ["task definition"],
    ),
    (
        "bad revision",
        _replace("task_definition: tax-amount:3", "task_definition: tax-amount:0"),
        24,
        ["task definition"],
    ),
    ("env value int", _replace("{RUN_MODE: full}", "{RUN_MODE: 1}"), 20, ["string", "quote"]),
    (
        "env name invalid",
        _replace("{RUN_MODE: full}", '{"RUN MODE": full}'),
        20,
        ["environment variable name"],
    ),
    (
        "command empty",
        _replace(
            COMMAND_LINE,
            "command: []",
        ),
        19,
        ["command"],
    ),
    (
        "command not list",
        _replace(
            COMMAND_LINE,
            "command: python3 x.py",
        ),
        19,
        ["command"],
    ),
    ("bad timeout", _replace("timeout: 30m", "timeout: 30 minutes"), 21, ["duration"]),
    ("zero timeout", _replace("timeout: 30m", "timeout: 0s"), 21, ["zero"]),
    ("reserved tag", _replace("{cost-centre: hr}", "{residency:workload: x}"), 22, ["reserved"]),
    ("bad region", _replace("region: eu-central-1", "region: Europe"), 3, ["region"]),
    ("bad data region", _replace("data_region: us-east-1", "data_region: mars"), 8, ["region"]),
    (
        "duplicate key",
        _replace("  tax.host: frankfurt\n", "  tax.host: frankfurt\n  tax.host: newyork\n"),
        14,
        ["twice"],
    ),
    (
        "yes as location",
        _replace("    location: newyork\n", "    location: yes\n"),
        17,
        ["location"],
    ),
    (
        "location listed twice",
        _replace("[frankfurt, newyork]", "[frankfurt, frankfurt]"),
        25,
        ["twice"],
    ),
    ("empty location list", _replace("[frankfurt, newyork]", "[]"), 25, ["location"]),
]


@pytest.mark.parametrize(
    ("name", "text", "line", "words"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_map_gives_one_clear_line(
    name: str,
    text: str,
    line: int,
    words: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "residency.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, str(path))
    problems = raised.value.problems
    assert len(problems) == 1, problems
    message = problems[0]
    assert message.startswith(f"{path}:{line}:"), message
    for word in words:
        assert word in message, (word, message)

    code = main(["--config", str(path), "validate"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert [line for line in captured.err.splitlines() if line.startswith("error:")] == [
        captured.err.strip()
    ]
    assert "Traceback" not in captured.err


def test_corpus_is_large_enough() -> None:
    assert len(MALFORMED) >= 25


def test_every_problem_is_reported_in_line_order() -> None:
    text = _replace("cluster: acme-etl", "cluster: a b").replace("timeout: 30m", "timeout: soon")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "m.yaml")
    assert [p.split(":")[1] for p in raised.value.problems] == ["2", "21"]


def test_unreadable_map_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "absent.yaml"), "validate"]) == 2
    assert "no residency map" in capsys.readouterr().err
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    assert main(["--config", str(tmp_path / "bin.yaml"), "validate"]) == 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    tags: {cost-centre: hr}\n",
            "    tags: {" + ", ".join(f"t{i}: v" for i in range(47)) + "}\n",
            "47 tags: ECS allows 50 per task, 4 of them residency's, so at most 46",
        ),
        (
            "    tags: {cost-centre: hr}\n",
            "    tags: {owner: 'aws:me'}\n",
            "aws: prefix is reserved",
        ),
        ("    tags: {cost-centre: hr}\n", "    tags: {owner: 'a|b'}\n", "has characters outside"),
        (
            "    tags: {cost-centre: hr}\n",
            "    environment: {BIG: '" + "x" * 8200 + "'}\n",
            "ECS allows 8192",
        ),
    ],
)
def test_ecs_limits_are_checked_by_validate(old: str, new: str, message: str) -> None:
    """CONTRACT.md section 8, "Map limits": what RunTask would refuse fails `validate`."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(_replace(old, new))


def test_a_placement_expression_over_2000_characters_is_refused() -> None:
    names = [f"site{i:03d}" + "x" * 100 for i in range(20)]
    text = VALID.replace(LOCATIONS_BLOCK, "locations:\n" + "".join(f"  {n}: {{}}\n" for n in names))
    text = re.sub(r"location: \[?[a-z, ]+\]?\n", f"location: [{', '.join(names)}]\n", text)
    text = re.sub(r"hosts:\n(  .*\n)+", "", text)
    with pytest.raises(ConfigError, match="ECS allows 2000"):
        parse_config(text)
