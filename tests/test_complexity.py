"""Complexity is bounded: no function of src/ past McCabe 25 (ruff's C901 holds it, in
``make lint``), and no class of src/qmk past 500 lines without the reason it is one class
written at the top of its docstring.

The reason is a paragraph of the docstring's prose (before its ``Args:`` or examples)
that starts with :data:`REASON`; it says why the class's parts cannot live apart (one
state they all change together, say), and what of it already does.
"""

from __future__ import annotations

import ast
import re
import sys

from support.paths import ROOT, SRC

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 branch
    import tomli as tomllib

#: Classes longer than this many lines (the ``class`` line to the last) need a reason.
MAX_CLASS_LINES = 500
#: How that reason's paragraph starts.
REASON = "Why one class:"
#: McCabe's bound for every function of src/.
MAX_COMPLEXITY = 25
#: Where a docstring's prose ends: its first section or example.
_SECTION = re.compile(r"(>>>|[A-Z][a-z]+( [a-z]+)?:\n)")


def has_reason(node: ast.ClassDef) -> bool:
    """Whether the class's docstring gives its reason at its top: a paragraph that starts
    with :data:`REASON` (and says more), before any section (``Args:``...) or example."""
    for paragraph in (ast.get_docstring(node) or "").split("\n\n")[1:]:
        paragraph = paragraph.strip()
        if paragraph.startswith(REASON):
            return len(paragraph) > len(REASON) + 40
        if _SECTION.match(paragraph):
            return False
    return False


def long_classes_without_a_reason(source: str, where: str) -> list[str]:
    """Each class of ``source`` past :data:`MAX_CLASS_LINES` lines that lacks its reason,
    as ``where:line Name (N lines)``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_CLASS_LINES and not has_reason(node):
                found.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return found


def _lacking(*paragraphs: str, lines: int = 501) -> list[str]:
    """What the check says of a class of exactly ``lines`` lines with this docstring."""
    docstring = "\n\n".join(paragraphs)
    head = f'class Big:\n    """{docstring}"""\n'
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - head.count("\n")))
    return long_classes_without_a_reason(head + body, "x")


def test_a_long_class_needs_its_reason_at_the_top_of_its_docstring():
    reason = f"{REASON} its parts change one state together, which none could hold alone."
    missing = ["x:1 Big (501 lines)"]
    assert _lacking("Big.", "Build one with open.", reason, "Args:\n    x: the x.") == []
    assert _lacking("Big.") == missing
    assert _lacking("Big.", "Args:\n    x: the x.", reason) == missing
    assert _lacking("Big.", ">>> Big.x0\n0", reason) == missing
    assert _lacking("Big.", f"{REASON} it is.") == missing
    assert _lacking("Big.", lines=500) == []


def test_no_class_of_qmk_is_past_500_lines_without_the_reason_it_is_one_class():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(SRC.parent))
        found += long_classes_without_a_reason(path.read_text(encoding="utf-8"), where)
    assert not found, (
        f"split these classes where they hold separable ideas, or give the reason in a "
        f"paragraph starting {REASON!r} at the top of the docstring (before Args: and "
        "examples):\n" + "\n".join(found)
    )


def test_ruff_holds_every_function_of_src_to_mccabe_25():
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    lint = ruff["lint"]
    assert any(rule in ("C", "C90", "C901") for rule in lint["select"])
    assert lint["mccabe"]["max-complexity"] <= MAX_COMPLEXITY
    for pattern, ignored in lint.get("per-file-ignores", {}).items():
        if any(rule in ("C", "C90", "C901") for rule in ignored):
            assert not pattern.startswith("src"), pattern
