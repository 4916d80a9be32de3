"""docs/qvm.md: generated tables up to date, and every op, code and limit documented."""

from __future__ import annotations

import dataclasses
import re

import pytest

from qmk.docgen import qvm as doc
from qmk.qvm.codes import CODES
from qmk.qvm.limits import Limits
from qmk.qvm.ops import CAPABILITIES, OPS
from qmk.qvm.profiles import FAMILIES
from support.paths import DOCS

DOC_PATH = DOCS / "qvm.md"
TEXT = DOC_PATH.read_text(encoding="utf-8")


def region(name: str) -> str:
    start = TEXT.index(doc.begin_marker(name)) + len(doc.begin_marker(name))
    return TEXT[start : TEXT.index(doc.end_marker(name))]


def test_docs_qvm_md_is_up_to_date_with_the_tables():
    assert doc.PAGE.update(TEXT) == TEXT, (
        f"docs/qvm.md is out of date with the op/code tables; run: {doc.REGENERATE}"
    )


def test_update_keeps_hand_written_text_and_refreshes_only_the_regions():
    text = f"before\n{doc.begin_marker('families')}\nold\n{doc.end_marker('families')}\nafter\n"
    fresh = doc.PAGE.update(text, regions=("families",))
    assert fresh.startswith("before\n") and fresh.endswith("\nafter\n")
    assert "old" not in fresh and "`surface_code`" in fresh
    assert doc.PAGE.update(fresh, regions=("families",)) == fresh


@pytest.mark.parametrize(
    "text",
    [
        "<!-- END GENERATED: caps -->\n<!-- BEGIN GENERATED: caps -->\n",
        "<!-- BEGIN GENERATED: caps -->\n<!-- END GENERATED: caps -->\n" * 2,
        "<!-- BEGIN GENERATED: caps -->\n",
    ],
)
def test_update_refuses_misplaced_repeated_or_missing_markers(text: str):
    with pytest.raises(ValueError, match="marker"):
        doc.PAGE.update(text, regions=("caps",))


def test_every_op_has_one_row_in_the_op_table():
    rows = [line for line in region("ops").splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(OPS)


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_appears_in_the_doc(name: str):
    assert f"`{name}`" in TEXT


@pytest.mark.parametrize("code", list(CODES))
def test_every_code_appears_in_the_doc_with_its_name(code: str):
    assert f"| `{code}` | `{CODES[code].name}` |" in region("codes")


def test_every_capability_and_code_family_appears_in_the_doc():
    for cap in CAPABILITIES:
        assert f"| `{cap}` |" in region("caps")
    for family in FAMILIES:
        assert f"| `{family}` |" in region("families")


def test_markdown_tables_keep_their_column_count():
    # A stray '|' in a description (as in '|0>') would split a row into extra cells.
    for name in doc.RENDERERS:
        lines = region(name).strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, name


def test_the_inverse_column_shows_negated_arguments():
    row = next(line for line in region("ops").splitlines() if line.startswith("| `APPLY_RX`"))
    assert "APPLY_RX(-theta)" in row


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Limits)])
def test_every_size_limit_is_documented_with_its_default(field: str):
    default = getattr(Limits(), field)
    assert re.search(rf"^\| `{field}` \| {default}\b", TEXT, re.MULTILINE), field


@pytest.mark.parametrize(
    "heading",
    [
        "Overview",
        "Graph format",
        "Handles and lifetimes",
        "Order",
        "Guards",
        "Epochs",
        "REV segments",
        "Capabilities",
        "Code profiles",
        "Size limits",
        "Op table",
        "Codes",
        "Assembly text",
        "Command line",
    ],
)
def test_the_doc_has_each_section(heading: str):
    assert f"\n## {heading}\n" in TEXT


def test_the_example_graph_in_the_doc_loads_and_validates_against_the_schema():
    import json

    import jsonschema

    from qmk.qvm import graph, schema

    block = re.search(r"```json\n(\{.*?\n\})\n```", TEXT, re.DOTALL)
    assert block is not None
    data = json.loads(block.group(1))
    jsonschema.validate(data, schema.build_schema(), cls=jsonschema.Draft202012Validator)
    assert len(graph.from_json(data)) == 6
