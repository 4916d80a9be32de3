"""Every page with generated tables: one command (`python -m qmk.docgen`) checks and refreshes
them all; `--check` catches drift, `--write` repairs it.

Each page's own content tests live beside its module's tests (tests/docgen).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qmk import docgen
from support.paths import DOCS

#: (page, edits that make a stale copy: each replaces a generated cell)
PAGES = [
    ("qvm.md", [("| `APPLY_H` |", "| `APPLY_HADAMARD` |"), ("| `QV101` |", "| `QV999` |")]),
    ("qec.md", [("| 0.03 | 0.01 |", "| 0.3 | 0.01 |"), ("| `h` | 1 |", "| `h` | 7 |")]),
    ("qsyscall.md", [("| `q_wait` |", "| `q_wiat` |")]),
    ("frontends.md", [("| `APPLY_H` | `h q;` |", "| `APPLY_H` | `hadamard q;` |")]),
    (
        "errors.md",
        [("| `QK301` | `timeout` |", "| `QK301` | `time-out` |"), (" +-- AsmError", " +-- AsmErr")],
    ),
    ("engines.md", [("| `qsim` | `qsim` |", "| `qsim` | `qsimcirq` |")]),
    ("neutral-atom.md", [("| `CZ` | 2 |", "| `CZ` | 3 |"), ("| `QD203` |", "| `QD299` |")]),
]
CASES = [(page, old, new) for page, edits in PAGES for old, new in edits]


def test_every_page_with_generated_regions_is_one_the_command_refreshes():
    generated = {path.name for path in DOCS.glob("*.md") if "BEGIN GENERATED" in path.read_text()}
    assert generated == set(docgen.pages()) == {page for page, _ in PAGES}


def test_the_pages_are_up_to_date():
    assert docgen.main(["--check", "--docs", str(DOCS)]) == 0


@pytest.mark.parametrize(("page", "old", "new"), CASES)
def test_check_fails_with_a_one_line_hint_and_write_repairs_a_stale_copy(
    page: str, old: str, new: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    text = (DOCS / page).read_text(encoding="utf-8")
    assert old in text
    stale = tmp_path / page
    stale.write_text(text.replace(old, new), encoding="utf-8")
    assert docgen.main(["--check", "--docs", str(tmp_path), page]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and str(stale) in message
    assert "python -m qmk.docgen --write" in message
    assert docgen.main(["--write", "--docs", str(tmp_path), page]) == 0
    assert stale.read_text(encoding="utf-8") == text


def test_check_of_all_pages_names_only_the_stale_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    for page, _ in PAGES:
        shutil.copy(DOCS / page, tmp_path / page)
    errors = tmp_path / "errors.md"
    errors.write_text(errors.read_text().replace("| `QE101` |", "| `QE199` |"))
    assert docgen.main(["--check", "--docs", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{errors} is out of date with the error registry; run: python -m qmk.docgen --write"
    ]


@pytest.mark.parametrize("page", [page for page, _ in PAGES])
def test_a_page_without_markers_is_exit_status_2(page: str, tmp_path: Path):
    (tmp_path / page).write_text("# nothing generated here\n", encoding="utf-8")
    assert docgen.main(["--check", "--docs", str(tmp_path), page]) == 2


def test_an_unknown_or_missing_page_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert docgen.main(["--check", "--docs", str(DOCS), "kernel.md"]) == 2
    assert "kernel.md: not a generated page" in capsys.readouterr().err
    assert docgen.main(["--check", "--docs", str(tmp_path), "qvm.md"]) == 2


def test_python_m_qmk_docgen_checks_from_any_directory(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "qmk.docgen", "--check", "--docs", str(DOCS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (0, "")
