"""QIR counted loops: a block that branches back to itself on a counter with constant bounds.

This is the form LLVM writes for ``for (i = A; i < B; i += S) { ... }`` when nothing has
unrolled it (a pyqir builder writes it too)::

    loop:
      %i = phi i64 [ A, %before ], [ %n, %loop ]
      ...                                   ; the body
      %n = add i64 %i, S
      %c = icmp slt i64 %n, B
      br i1 %c, label %loop, label %after

:func:`counted_loop` finds the counter's bookkeeping (the phi, the step, the compare and
the branch) and the number of turns, by arithmetic: a loop of 10^9 turns costs what one
of 10 does. The reader (:mod:`qmk.frontends.qir`) checks the body and reads it folded.
A loop of several blocks, a counter that is not a constant start, step and bound, and
a loop that would run until its counter wraps are not counted loops: the answer says why.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CountedLoop", "counted_loop"]

#: ``icmp`` predicates by name: the test, and whether it reads its operands unsigned.
_TESTS: dict[str, tuple[Callable[[int, int], bool], bool]] = {
    "eq": (operator.eq, False),
    "ne": (operator.ne, False),
    "slt": (operator.lt, False),
    "sle": (operator.le, False),
    "sgt": (operator.gt, False),
    "sge": (operator.ge, False),
    "ult": (operator.lt, True),
    "ule": (operator.le, True),
    "ugt": (operator.gt, True),
    "uge": (operator.ge, True),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CountedLoop:
    """A counted loop of one block.

    Attributes:
        turns: how many times the body runs (at least once: the test comes at the end).
        after: the block the loop leaves to.
        bookkeeping: the counter's instructions (phi, step, compare, branch): not the body.
        values: what the counter's phi, step and compare hold once the loop is left.
    """

    turns: int
    after: Any
    bookkeeping: frozenset[Any]
    values: dict[Any, int | bool]


def _name(inst: Any) -> str:
    return str(inst.opcode).rsplit(".", 1)[-1].lower()


def counted_loop(pyqir: Any, block: Any) -> CountedLoop | str:
    """``block`` as a counted loop, or why it is not one (a phrase for an error message)."""
    term = block.terminator
    ops = list(term.operands) if term is not None else []
    if len(ops) != 3:
        return "it does not end in a conditional branch"
    test_inst, false_target, true_target = ops  # LLVM's order: condition, false, true
    back_on_true = true_target == block
    after = false_target if back_on_true else true_target
    if after == block:
        return "it branches back to itself on both sides (it never ends)"
    phis = [inst for inst in block.instructions if _name(inst) == "phi"]
    if len(phis) != 1:
        return f"it has {len(phis)} phi nodes, not one counter"
    (phi,) = phis
    incoming = list(phi.incoming)
    starts = [v for v, pred in incoming if pred != block]
    steps = [v for v, pred in incoming if pred == block]
    if len(starts) != 1 or len(steps) != 1 or not isinstance(starts[0], pyqir.IntConstant):
        return "its counter does not start at a constant"
    width = getattr(phi.type, "width", 64)
    start, step_inst = _signed(starts[0].value, width), steps[0]
    step = _step(pyqir, step_inst, phi, width)
    if step is None:
        return "its counter does not move by a constant step (add or sub of a constant)"
    found = _compare(pyqir, test_inst, phi, step_inst, width)
    if found is None:
        return "its branch does not test the counter against a constant bound"
    predicate, bound, offset = found
    if predicate not in _TESTS:
        return f"its counter is tested with {predicate}"
    test, unsigned = _TESTS[predicate]
    turns = _turns(start, step, bound, offset, test, back_on_true, width, unsigned)
    if isinstance(turns, str):
        return turns
    last = start + (turns - 1) * step
    return CountedLoop(
        turns=turns,
        after=after,
        bookkeeping=frozenset((phi, step_inst, test_inst, term)),
        values={phi: last, step_inst: last + step, test_inst: not back_on_true},
    )


def _signed(value: int, width: int) -> int:
    """An LLVM integer constant (pyqir gives its bits unsigned) as a signed number."""
    value = int(value) % (1 << width)
    return value - (1 << width) if value >> (width - 1) else value


def _step(pyqir: Any, inst: Any, phi: Any, width: int) -> int | None:
    """The constant the counter moves by each turn, or None."""
    if not isinstance(inst, pyqir.Instruction) or _name(inst) not in ("add", "sub"):
        return None
    a, b = list(inst.operands)
    if _name(inst) == "add" and b == phi:
        a, b = b, a
    if a != phi or not isinstance(b, pyqir.IntConstant) or _signed(b.value, width) == 0:
        return None
    return _signed(b.value, width) * (1 if _name(inst) == "add" else -1)


def _compare(pyqir: Any, inst: Any, phi: Any, step: Any, width: int) -> tuple[str, int, int] | None:
    """The predicate's name, the bound, and which counter value it tests (0: the phi's,
    the turn's own; 1: the stepped one), or None."""
    if not isinstance(inst, pyqir.ICmp):
        return None
    a, b = list(inst.operands)
    if a not in (phi, step) or not isinstance(b, pyqir.IntConstant):
        return None
    return str(inst.predicate).rsplit(".", 1)[-1].lower(), _signed(b.value, width), int(a == step)


def _turns(
    start: int,
    step: int,
    bound: int,
    offset: int,
    test: Callable[[int, int], bool],
    back_on_true: bool,
    width: int,
    unsigned: bool,
) -> int | str:
    """How many turns run: the first turn ``k`` after which the loop stops, plus one."""
    low, high = (0, 1 << width) if unsigned else (-(1 << (width - 1)), 1 << (width - 1))
    if unsigned:
        start, bound = start % (1 << width), bound % (1 << width)

    def tested(k: int) -> int:
        return start + (k + offset) * step

    def goes_on(k: int) -> bool:
        return test(tested(k), bound) == back_on_true

    wraps = (high - low) // abs(step) + 1  # by then the counter has left its range
    stop = 0 if not goes_on(0) else _first_stop(goes_on, wraps, tested, bound, test)
    if stop is None:
        return "its counter wraps around before the loop ends"
    if not all(low <= value < high for value in (start, tested(0), tested(stop))):
        return "its counter wraps around before the loop ends"
    return stop + 1


def _first_stop(
    goes_on: Callable[[int], bool],
    wraps: int,
    tested: Callable[[int], int],
    bound: int,
    test: Callable[[int, int], bool],
) -> int | None:
    """The first turn after which the loop stops, given it goes on after turn 0."""
    if test is operator.ne or test is operator.eq:
        if tested(0) == bound:  # it goes on while equal: the next value differs
            return 1
        step = tested(1) - tested(0)  # it goes on until the value meets the bound
        distance = bound - tested(0)
        if distance % step or distance // step < 0:
            return None
        return distance // step
    if goes_on(wraps):  # an ordered test true at both ends is true throughout
        return None
    lo, hi = 0, wraps  # goes_on(lo) and not goes_on(hi): an ordered test changes once
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if goes_on(mid):
            lo = mid
        else:
            hi = mid
    return hi
