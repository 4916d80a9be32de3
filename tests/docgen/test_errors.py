"""docs/errors.md: every registered code has its row under its family's heading."""

from __future__ import annotations

import pytest

from qmk.docgen import errors as doc
from qmk.errors import FAMILIES, REGISTRY
from support.paths import DOCS

PAGE = DOCS / "errors.md"
TEXT = PAGE.read_text(encoding="utf-8")
doc.load_families()


def test_the_page_is_up_to_date_with_the_registry():
    assert doc.PAGE.update(TEXT) == TEXT


@pytest.mark.parametrize("prefix", list(FAMILIES))
def test_every_code_has_a_row_in_its_familys_section(prefix: str):
    heading = f"\n### {prefix}: {FAMILIES[prefix].title}\n"
    start = TEXT.index(heading)
    end = TEXT.find("\n### ", start + 1)
    section = TEXT[start : end if end > 0 else len(TEXT)]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("|")]
    header, cells = rows[0], {row[0].strip(): row for row in rows[2:]}
    assert len(cells) == len(REGISTRY.family(prefix))
    for entry in REGISTRY.family(prefix).values():
        assert TEXT.count(f"| `{entry.code}` | `{entry.name}` |") == 1, entry.code
        row = cells[f"`{entry.code}`"]
        assert row[header.index("Exit")].strip() == str(entry.exit_status), entry.code


def test_the_families_table_counts_every_code():
    assert f"| **all** | {len(REGISTRY)} |" in TEXT
