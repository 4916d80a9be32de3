"""Every page with generated tables: `--check` catches drift, `--write` repairs it.

The pages share one command (:func:`qmk.docgen.qvm.doc_main`); each page's own content
tests live beside its module's tests (tests/qvm, tests/qec, tests/abi).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

#: (doc module, page, edits that make a stale copy: each replaces a generated cell)
PAGES = [
    (
        "qmk.docgen.qvm",
        "qvm.md",
        [("| `APPLY_H` |", "| `APPLY_HADAMARD` |"), ("| `QV101` |", "| `QV999` |")],
    ),
    (
        "qmk.docgen.qec",
        "qec.md",
        [("| 0.03 | 0.01 |", "| 0.3 | 0.01 |"), ("| `h` | 1 |", "| `h` | 7 |")],
    ),
    ("qmk.docgen.abi", "qsyscall.md", [("| `q_wait` |", "| `q_wiat` |")]),
]
CASES = [(module, page, old, new) for module, page, edits in PAGES for old, new in edits]


@pytest.mark.parametrize(("module", "page", "old", "new"), CASES)
def test_check_fails_with_a_one_line_hint_and_write_repairs_a_stale_copy(
    module: str, page: str, old: str, new: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    doc = import_module(module)
    text = (DOCS / page).read_text(encoding="utf-8")
    assert doc.main(["--check", str(DOCS / page)]) == 0
    assert old in text
    stale = tmp_path / page
    stale.write_text(text.replace(old, new), encoding="utf-8")
    assert doc.main(["--check", str(stale)]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and f"python -m {module} --write" in message
    assert doc.main(["--write", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("module", [module for module, _, _ in PAGES])
def test_a_page_without_markers_is_exit_status_2(module: str, tmp_path: Path):
    bare = tmp_path / "bare.md"
    bare.write_text("# nothing generated here\n", encoding="utf-8")
    assert import_module(module).main(["--check", str(bare)]) == 2
