"""docs/qec.md: generated tables up to date, every qubit set, scheme, op and code documented."""

from __future__ import annotations

import re

import pytest

from qmk.docgen import begin_marker, end_marker
from qmk.docgen import qec as doc
from qmk.qec import OP_CYCLES, QUBIT_PARAMS, SCHEMES
from qmk.qec.errors import CODES
from support.paths import DOCS

DOC_PATH = DOCS / "qec.md"
TEXT = DOC_PATH.read_text(encoding="utf-8")


def region(name: str) -> str:
    start = TEXT.index(begin_marker(name)) + len(begin_marker(name))
    return TEXT[start : TEXT.index(end_marker(name))]


def test_docs_qec_md_is_up_to_date_with_the_tables():
    assert doc.PAGE.update(TEXT) == TEXT, (
        f"docs/qec.md is out of date with the qec tables; run: {doc.REGENERATE}"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"{end_marker('op-cycles')}\n{begin_marker('op-cycles')}\n",
        f"{begin_marker('op-cycles')}\n{end_marker('op-cycles')}\n" * 2,
        f"{begin_marker('op-cycles')}\n",
    ],
)
def test_replace_region_refuses_misplaced_repeated_or_lone_markers(text: str):
    with pytest.raises(ValueError, match="marker"):
        doc.replace_region(text, "op-cycles", doc.render_op_cycles())


def test_replace_region_keeps_hand_written_text():
    text = f"before\n{begin_marker('qec-codes')}\nstale text\n{end_marker('qec-codes')}\nafter\n"
    fresh = doc.replace_region(text, "qec-codes", doc.render_codes())
    assert (
        fresh.startswith("before\n") and fresh.endswith("\nafter\n") and "stale text" not in fresh
    )
    assert doc.replace_region(fresh, "qec-codes", doc.render_codes()) == fresh


@pytest.mark.parametrize("name", list(QUBIT_PARAMS))
def test_every_qubit_set_has_a_row(name: str):
    assert f"| `{name}` |" in region("qubit-params")


def test_every_scheme_has_a_row_and_sources():
    for family, variants in SCHEMES.items():
        for kind in variants:
            assert f"| `{family}` | {kind} |" in region("qec-schemes")
            assert f"**`{family}` on {kind} qubits.**" in region("qec-sources")


def test_every_op_cycle_entry_and_code_is_documented():
    for key in OP_CYCLES:
        assert f"| `{key}` |" in region("op-cycles")
    for code, entry in CODES.items():
        assert f"| `{code}` | `{entry.name}` |" in region("qec-codes")


def test_markdown_tables_keep_their_column_count():
    for name in doc.RENDERERS:
        lines = [line for line in region(name).strip().splitlines() if line.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) <= 1, name


@pytest.mark.parametrize(
    "heading",
    [
        "Physical qubit parameters",
        "QEC schemes",
        "Noise models",
        "The logical model",
        "Logical cycles per operation",
        "How the executor injects errors",
        "Error codes",
    ],
)
def test_the_doc_has_each_section(heading: str):
    assert f"\n## {heading}\n" in TEXT


def test_the_example_in_the_doc_is_true():
    block = re.search(r"```python\n(.*?)```", TEXT, re.DOTALL)
    assert block is not None
    import doctest

    test = doctest.DocTestParser().get_doctest(block.group(1), {}, "qec.md", str(DOC_PATH), 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.failures == 0 and runner.tries == 3
