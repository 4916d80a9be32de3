"""Complexity is bounded: no function of src/ past McCabe 18 (ruff's C901 holds it, in
``make lint``), and no class of src/qmk past 800 lines, with no written exceptions.

A class that long holds more than one idea: split it where its parts read apart (a
state and the operations on it, a walk and the expressions it values).
"""

from __future__ import annotations

import ast
import sys

from support.paths import ROOT, SRC

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 branch
    import tomli as tomllib

#: The most lines a class may have (the ``class`` line to the last).
MAX_CLASS_LINES = 800
#: McCabe's bound for every function of src/.
MAX_COMPLEXITY = 18


def class_lengths(source: str, where: str) -> dict[str, int]:
    """Each class of ``source`` as ``where:Name`` (nested: ``where:Outer.Inner``), with
    its length in lines."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                name = f"{prefix}{child.name}"
                found[f"{where}:{name}"] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def too_long(source: str, where: str) -> list[str]:
    """The classes of ``source`` past :data:`MAX_CLASS_LINES`, as ``where:Name (N lines)``."""
    return [
        f"{name} ({length} lines)"
        for name, length in class_lengths(source, where).items()
        if length > MAX_CLASS_LINES
    ]


def _source_of(lines: int, nested: bool = False) -> str:
    """A class ``Big`` of exactly ``lines`` lines (nested in ``Outer`` when asked)."""
    head = 'class Big:\n    """Big."""\n'
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - head.count("\n")))
    source = head + body
    if nested:
        source = "class Outer:\n" + "".join(f"    {line}\n" for line in source.splitlines())
    return source


def test_a_class_past_the_cap_is_found_whatever_its_docstring_says():
    assert too_long(_source_of(801), "x") == ["x:Big (801 lines)"]
    assert too_long(_source_of(800), "x") == []
    assert too_long(_source_of(801, nested=True), "x") == [
        "x:Outer (802 lines)",
        "x:Outer.Big (801 lines)",
    ]
    reasoned = _source_of(798).replace(
        '"""Big."""', '"""Big.\n\n    Why one class: one state, said at length.\n    """'
    )
    assert too_long(reasoned, "x") == ["x:Big (801 lines)"]


def _lengths() -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(SRC.parent))
        lengths.update(class_lengths(path.read_text(encoding="utf-8"), where))
    return lengths


def test_no_class_of_qmk_is_past_800_lines():
    found = [
        f"{name} ({length} lines)"
        for name, length in _lengths().items()
        if length > MAX_CLASS_LINES
    ]
    assert not found, (
        f"split these classes (at most {MAX_CLASS_LINES} lines each) where their parts read "
        "apart:\n" + "\n".join(found)
    )


def test_ruff_holds_every_function_of_src_to_the_mccabe_bound():
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    lint = ruff["lint"]
    assert any(rule in ("C", "C90", "C901") for rule in lint["select"])
    assert lint["mccabe"]["max-complexity"] <= MAX_COMPLEXITY
    for pattern, ignored in lint.get("per-file-ignores", {}).items():
        if any(rule in ("C", "C90", "C901") for rule in ignored):
            assert not pattern.startswith("src"), pattern
