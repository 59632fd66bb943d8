"""guarding.py: residency's side of the data guard (labels, allowed locations, verdicts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from residency_cli import guarding
from residency_cli.audit import guard_verdict
from residency_cli.errors import UsageError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "etl"))
import residency_guard  # the image's guard, a plain module in etl/


def test_residency_and_the_image_guard_agree() -> None:
    assert guarding.LABEL_FILE == residency_guard.LABEL_FILE
    assert guarding.ALLOWED_ENV == residency_guard.ALLOWED_ENV
    assert guarding.GUARD_EXIT_CODE == residency_guard.EXIT_REFUSED == 77
    assert Path(residency_guard.__file__).stem == guarding.GUARD_MODULE
    for text in ("frankfurt", " newyork , frankfurt", "", "a,,b", "new york", "x;y"):
        try:
            expected: list[str] | None = list(residency_guard.parse_allowed(text))
        except ValueError:
            expected = None
        try:
            got: list[str] | None = guarding.parse_allowed(text)
        except ValueError:
            got = None
        assert got == expected, text


def test_written_labels_are_what_the_guard_reads(tmp_path: Path) -> None:
    label = guarding.write_label(tmp_path / "data", "frankfurt")
    assert label.stat().st_mode & 0o777 == 0o644
    assert residency_guard.read_label(str(tmp_path / "data")) == "frankfurt"
    guarding.write_label(tmp_path / "data", "newyork")  # relabelled: replaced in place
    assert residency_guard.read_label(str(tmp_path / "data")) == "newyork"
    assert [p.name for p in (tmp_path / "data").iterdir()] == [guarding.LABEL_FILE]


def test_with_guard_sets_the_maps_locations_and_refuses_others() -> None:
    assert guarding.with_guard({"A": "1"}, ["newyork", "frankfurt"]) == {
        "A": "1",
        "RESIDENCY_ALLOWED_LOCATIONS": "newyork,frankfurt",
    }
    same = {"RESIDENCY_ALLOWED_LOCATIONS": "frankfurt, newyork"}
    assert guarding.with_guard(same, ["newyork", "frankfurt"])["RESIDENCY_ALLOWED_LOCATIONS"] == (
        "newyork,frankfurt"
    )
    for given in ("newyork", "newyork,frankfurt,munich", "", "new york"):
        with pytest.raises(UsageError, match="residency sets it from the map") as caught:
            guarding.with_guard({"RESIDENCY_ALLOWED_LOCATIONS": given}, ["newyork", "frankfurt"])
        assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["python3", "-m", "residency_guard", "--allowed", "frankfurt", "--", "x"], "frankfurt"),
        (["python3", "/app/residency_guard.py", "--allowed=a,b", "--", "x"], "a,b"),
        (["python3", "residency_guard.py", "--data-dir", "/d", "--allowed", "c"], "c"),
        (["python3", "-m", "residency_guard", "--", "x", "--allowed", "z"], None),  # the command's
        (["python3", "/app/tax_amount.py", "--allowed", "z"], None),  # no wrapper
        (["residency_guard", "--allowed", "z"], None),  # not `-m residency_guard`
        (["python3", "-m", "residency_guard", "--allowed"], None),
    ],
)
def test_command_allowed(argv: list[str], allowed: str | None) -> None:
    assert guarding.command_allowed(argv) == allowed


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "tax_amount", "command": ["python3", "/app/tax_amount.py"], **fields}


def _env(value: str) -> list[dict[str, str]]:
    return [{"name": "AWS_REGION", "value": "x"}, {"name": guarding.ALLOWED_ENV, "value": value}]


def test_definition_guard_reads_environment_then_command() -> None:
    status = guarding.definition_guard(_container(environment=_env("frankfurt")), ["frankfurt"])
    assert (status.enforced, status.source, status.matches_map, status.warning) == (
        ["frankfurt"], "environment", True, None,
    )  # fmt: skip
    assert status.to_json() == {
        "enforced": ["frankfurt"],
        "source": "environment",
        "matches_map": True,
        "warning": None,
    }
    wrapped = _container(
        command=["python3", "-m", "residency_guard", "--allowed", "newyork", "--", "x"],
        environment=_env("frankfurt"),
    )
    status = guarding.definition_guard(wrapped, ["frankfurt"])
    assert (status.enforced, status.source, status.matches_map) == (["newyork"], "command", False)
    assert status.warning is not None
    assert "allows newyork, the map allows frankfurt" in status.warning


def test_definition_guard_warns_when_none_or_malformed() -> None:
    none = guarding.definition_guard(_container(), ["frankfurt", "munich"])
    assert none.enforced is None and not none.matches_map
    assert none.warning is not None
    assert "RESIDENCY_ALLOWED_LOCATIONS=frankfurt,munich in container tax_amount's" in none.warning
    bad = guarding.definition_guard(_container(environment=_env("frankfurt;x")), ["frankfurt"])
    assert bad.enforced == [] and bad.problem is not None and not bad.matches_map
    assert bad.warning is not None and "malformed" in bad.warning
    assert guarding.definition_guard(None, ["frankfurt"]).enforced is None
    order = guarding.definition_guard(_container(environment=_env("b,a")), ["a", "b"])
    assert order.matches_map  # the same set, in another order


def _task(status: str, exits: dict[str, int | None], overrides: Any = None) -> dict[str, Any]:
    return {
        "lastStatus": status,
        "containers": [{"name": name, "exitCode": code} for name, code in exits.items()],
        "overrides": overrides or {},
    }


def test_blocked_at_data_is_the_guards_exit_code_once_stopped() -> None:
    assert guarding.blocked_at_data(_task("STOPPED", {"tax_amount": 77}), "tax_amount")
    assert guarding.blocked_at_data(_task("STOPPED", {"side": 0, "main": 77}), None)
    assert not guarding.blocked_at_data(_task("STOPPED", {"side": 77, "main": 0}), "main")
    assert not guarding.blocked_at_data(_task("STOPPED", {"tax_amount": 1}), "tax_amount")
    assert not guarding.blocked_at_data(_task("STOPPED", {"tax_amount": None}), "tax_amount")
    assert not guarding.blocked_at_data(_task("RUNNING", {"tax_amount": 77}), "tax_amount")


def _overrides(**fields: Any) -> dict[str, Any]:
    return {"containerOverrides": [{"name": "tax_amount", **fields}]}


def test_guard_override_flags_only_overrides_that_allow_more() -> None:
    def judged(**fields: Any) -> str | None:
        return guarding.guard_override(
            _task("STOPPED", {}, _overrides(**fields)), ["frankfurt", "munich"]
        )

    widened = judged(environment=_env("frankfurt,newyork"))
    assert widened == (
        "overrides of container tax_amount set RESIDENCY_ALLOWED_LOCATIONS=frankfurt,newyork: "
        "the data guard was told to allow newyork, outside frankfurt, munich"
    )
    wrapper = ["python3", "-m", "residency_guard", "--allowed=newyork", "--", "python3", "x.py"]
    command = judged(command=wrapper)
    assert command is not None and "set --allowed newyork" in command
    assert judged(environment=_env("munich,frankfurt")) is None  # the map's own (run sends it)
    assert judged(environment=_env("frankfurt")) is None  # stricter: no bypass
    assert judged(environment=_env("frank furt")) is None  # malformed: the guard refuses all
    assert judged(environment=[{"name": "RUN_MODE", "value": "full"}]) is None
    assert guarding.guard_override(_task("STOPPED", {}), ["frankfurt"]) is None


@pytest.mark.parametrize(
    ("placement", "blocked", "override", "verdict", "reason"),
    [
        (None, False, None, "compliant", None),
        ("ran in newyork, outside frankfurt", False, None, "violation",
         "ran in newyork, outside frankfurt"),
        ("ran in newyork, outside frankfurt", True, None, "blocked",
         "blocked at the data: the job's guard refused it (exit 77); "
         "ran in newyork, outside frankfurt"),
        (None, True, None, "blocked", "blocked at the data: the job's guard refused it (exit 77)"),
        (None, False, "overrides ...", "guard-overridden", "overrides ..."),
        ("ran in newyork", False, "overrides ...", "violation", "ran in newyork; overrides ..."),
    ],
)  # fmt: skip
def test_guard_verdict(
    placement: str | None, blocked: bool, override: str | None, verdict: str, reason: str | None
) -> None:
    assert guard_verdict(placement, blocked, override) == (verdict, reason)
