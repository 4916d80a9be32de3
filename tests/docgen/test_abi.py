"""docs/qsyscall.md's generated tables match the method and error tables."""

from __future__ import annotations

from qmk.abi.methods import METHODS
from qmk.docgen import abi as doc
from qmk.errors import SYSCALL_ERRORS
from support.paths import DOCS

PAGE = DOCS / "qsyscall.md"


def test_the_page_is_up_to_date_with_the_tables():
    text = PAGE.read_text(encoding="utf-8")
    assert doc.PAGE.update(text) == text


def test_every_method_and_error_code_appears_on_the_page():
    text = PAGE.read_text(encoding="utf-8")
    for name in METHODS:
        assert f"| `{name}` |" in text
    for code, cls in SYSCALL_ERRORS.items():
        assert f"| {code} | `{cls.error_name}` |" in text
    for code in (-32700, -32600, -32601, -32602, -32603):
        assert f"| {code} |" in text
