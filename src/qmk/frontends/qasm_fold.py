"""OpenQASM 3 ``for`` loops read folded: one pass lowered, kept as a REPEAT row.

A loop is read folded when it runs more than once on every path (not inside a branch)
and its body cannot tell its passes apart: it never names the loop variable, and it
holds only gate calls, barriers and ``for`` loops (themselves folded or unrolled, on
ranges that do not name the variable either). Its first pass is lowered as ever;
when that wrote only gates (no measurement, allocation, guard or classical value),
those rows become the body of one ``REPEAT`` row of the loop's count
(:func:`qmk.frontends.folding.fold_pass`), and the other passes are not lowered at
all. Any other loop is unrolled as before: a body that names the variable
(``h q[i];``) differs pass by pass.
Under a node cap (a kernel's door) a folded loop is charged as before, by its passes
and by the nodes it unrolls to (a running total: each row is counted once).
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: The statement kinds a folded body may hold.
_FOLDABLE = frozenset({"QuantumGate", "QuantumBarrier", "ForInLoop"})


def foldable(block: list[Any], var: str) -> bool:
    """Whether a loop body of these statements may be read folded (see the module)."""
    return all(type(st).__name__ in _FOLDABLE for st in block) and not _names(block, var)


def _names(value: Any, var: str) -> bool:
    """Whether an AST value names ``var`` anywhere (a generic walk over its fields)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            if type(item).__name__ == "Identifier" and getattr(item, "name", None) == var:
                return True
            if type(item).__name__ == "ForInLoop" and not foldable(_block(item), var):
                return True
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return False


def _block(loop: Any) -> list[Any]:
    return loop.block if isinstance(loop.block, list) else [loop.block]
