"""A file a command was asked to write and cannot is one line, ``QF012 unwritable-file``
naming it (exit 2): never ``QF001 unreadable-file`` and never an internal error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.cli import qmk
from support.paths import EXAMPLES

BELL = str(EXAMPLES / "bell.qvm.asm")


def _refused(status: int, out: str, err: str, path: Path) -> None:
    assert status == 2, err
    assert err.startswith(f"QF012 unwritable-file: {path}: cannot write: ") and err.count("\n") == 1
    assert "internal error" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ("asm", BELL, "-o"),
        ("qasm", BELL, "-o"),
        ("run", BELL, "--shots", "20", "--seed", "1", "--plot"),
    ],
)
def test_an_output_file_in_a_missing_folder_is_qf012(tmp_path: Path, argv: tuple[str, ...]) -> None:
    target = tmp_path / "missing" / "out"
    status, out, err = qmk(*argv, str(target))
    _refused(status, out, err, target)


def test_a_workflow_results_folder_that_cannot_be_made_is_qf012(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "bell.qasm", tmp_path / "bell.qasm")
    shutil.copy(EXAMPLES / "workflow.toml", tmp_path / "workflow.toml")
    (tmp_path / "taken").write_text("a file, not a folder\n", encoding="utf-8")
    folder = tmp_path / "taken" / "results"
    flow = str(tmp_path / "workflow.toml")
    status, _, err = qmk("workflow", "run", flow, "--out", str(folder), "--no-plots")
    assert status == 2 and err.startswith("QF012 unwritable-file: ") and "cannot write" in err
    assert err.count("\n") == 1 and "internal error" not in err
