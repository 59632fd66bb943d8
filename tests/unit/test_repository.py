"""The repository's own rules, checked on its files: links in the docs lead somewhere, test
modules do not import each other, the dev lock covers pyproject.toml's dependencies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and [text]: target; code spans are removed first (they show syntax, not links).
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\[[^\]]+\]:\s*(\S+)", re.M)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _relative_links(document: Path) -> list[str]:
    text = _CODE.sub("", document.read_text(encoding="utf-8"))
    targets = [a or b for a, b in _LINK.findall(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t)]


def test_the_documents_exist() -> None:
    assert (ROOT / "docs" / "cli.md").is_file()
    assert len(DOCS) >= 4


@pytest.mark.parametrize("document", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(document: Path) -> None:
    broken = []
    for target in _relative_links(document):
        path = target.split("#", 1)[0]
        if path and not (document.parent / path).exists():
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"


def test_link_finder_sees_links_and_skips_code() -> None:
    found = _LINK.findall(_CODE.sub("", "[a](x.md) `[b](y.md)` [c](https://e/) [d](#h)"))
    assert [a for a, _ in found] == ["x.md", "https://e/", "#h"]


def test_no_test_module_imports_another() -> None:
    # Shared helpers live in tests/support or in a conftest.py fixture (CONTRIBUTING.md).
    forbidden = re.compile(
        r"^\s*(from|import)\s+(tests\.(?!support\b)\w+|etl_helpers\b|test_\w+|conftest\b)", re.M
    )
    offenders = []
    for module in sorted((ROOT / "tests").rglob("*.py")):
        if "support" in module.parts:
            continue
        for match in forbidden.finditer(module.read_text(encoding="utf-8")):
            offenders.append(f"{module.relative_to(ROOT)}: {match.group(0).strip()}")
    assert not offenders, offenders


def _requirement_name(spec: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", spec.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dev_lock_pins_every_dependency_of_pyproject() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is 3.11+")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_requirement_name(s) for s in project["dependencies"]}
    wanted |= {_requirement_name(s) for s in project["optional-dependencies"]["dev"]}
    lock = (ROOT / "requirements" / "dev.lock").read_text(encoding="utf-8")
    pinned = {_requirement_name(line) for line in lock.splitlines() if re.match(r"^[A-Za-z]", line)}
    missing = sorted(wanted - pinned)
    assert not missing, f"requirements/dev.lock lacks {missing}: run `make lock` and commit it"
