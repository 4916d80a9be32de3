"""The version is written in one place, and the changelog and the metadata follow it."""

from __future__ import annotations

import re
import sys

import qmk
from support.paths import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

VERSION = re.compile(r"""\b\d+\.\d+\.\d+(?:[.-]?(?:a|b|rc|dev|post)\d*)?\b""")


def test_the_version_is_a_literal_of_qmk_init_and_the_metadata_reads_it_from_there():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "qmk.__version__"}
    init = (ROOT / "src" / "qmk" / "__init__.py").read_text(encoding="utf-8")
    assert init.count(f'__version__ = "{qmk.__version__}"') == 1


def test_no_other_source_file_writes_the_version_out():
    for path in (ROOT / "src" / "qmk").rglob("*.py"):
        if path.name == "__init__.py" and path.parent.name == "qmk":
            continue
        assert f'"{qmk.__version__}"' not in path.read_text(encoding="utf-8"), path


def test_the_changelog_has_an_unreleased_section_then_the_current_version():
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert headings[1] == qmk.__version__
    assert all(VERSION.fullmatch(h) for h in headings[1:]), headings
