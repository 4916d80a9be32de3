"""Gate fusion: a run of gates as a few wider gates, each applied in one pass over the state.

A pass over a large statevector costs about as much as a few complex multiply-adds per
amplitude, and a ``k``-qubit gate costs ``2**k`` of them, so a circuit of one- and
two-qubit gates runs fastest as blocks of 3-4 qubits (qsim's fuser makes the same
trade). :func:`plan` groups a segment's gates into :class:`Block` s in two steps:

1. every one-qubit gate waits for the next multi-qubit gate on its qubit and joins it
   (its 2x2 matrices multiplied together first); one-qubit gates with no such gate
   after them join at the end;
2. those units are placed in order: a unit may join the block that holds the latest
   gate on any of its qubits (a later block would reorder gates on a shared qubit, an
   earlier one would move it before a predecessor), or the newest block when that is
   later still; it joins when the merged block stays within ``max_width`` qubits and
   costs no more than the two apart (``PASS_COST + 2**width`` each); else it starts a
   block of its own.

So every gate lands in exactly one block, gates that share a qubit keep their order
(blocks apply in list order, a block's gates in its own order), and no block is wider
than ``max_width`` (or the widest gate). :func:`plan` knows gates only as qubits and
matrices; which state bits they act on is the engine's business.

>>> import numpy as np
>>> from qmk.engines.gates import GATES
>>> h, cz = GATES["h"].matrix(), GATES["cz"].matrix()
>>> blocks = plan([((0,), h), ((1,), h), ((0, 1), cz), ((1, 2), cz), ((2,), h)])
>>> [(b.qubits, b.gates) for b in blocks]
[((0, 1, 2), (0, 1, 2, 3, 4))]
>>> blocks[0].matrix.shape
(8, 8)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: What one pass over the state costs, in complex multiply-adds per amplitude (a
#: ``k``-qubit gate adds ``2**k``): measured, a one-qubit gate's pass took a third to a
#: fifth of a four-qubit gate's on a state larger than the caches.
PASS_COST = 6
#: The widest block :func:`plan` makes by default (qsim's recommended fused size).
DEFAULT_WIDTH = 4
#: The widest diagonal block :func:`plan` makes where asked to keep diagonal blocks
#: apart (``diagonal_width``): a diagonal costs one complex multiply per amplitude
#: whatever its width, and its ``2**width`` entries stay in the caches up to here.
DIAGONAL_WIDTH = 10


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Block:
    """Gates applied together as one matrix.

    ``qubits`` are the matrix's qubits, the first the most significant bit of its
    index (the convention of :data:`~qmk.engines.gates.GATES`); ``gates`` the indices of
    the segment's gates it holds, in the order they apply; ``matrix`` their product.
    ``diagonal``: the block is diagonal (only where :func:`plan` was given a
    ``diagonal_width``), and ``matrix`` holds its diagonal alone, a vector of ``2**width``
    entries.
    """

    qubits: tuple[int, ...]
    gates: tuple[int, ...]
    matrix: np.ndarray = field(repr=False)
    diagonal: bool = False


@dataclass(slots=True, eq=False)
class _Open:
    """A block being built: its qubits in first-use order, its parts in order, and
    whether all of them are diagonal (where diagonal blocks are kept apart)."""

    qubits: list[int]
    parts: list[tuple[tuple[int, ...], np.ndarray, list[int]]]
    diagonal: bool = False


def cost(width: int, *, diagonal: bool = False) -> int:
    """What a block ``width`` qubits wide costs (:data:`PASS_COST` ``+ 2**width``; a
    diagonal one ``PASS_COST + 1``)."""
    return PASS_COST + (1 if diagonal else 1 << width)


def _is_diagonal(u: np.ndarray) -> bool:
    """Whether every entry off the diagonal is exactly zero (products of permutations and
    diagonal gates, such as a controlled phase written as CX and RZ, are exactly so)."""
    return not np.count_nonzero(u - np.diag(np.diag(u)))


def plan(
    gates: Sequence[tuple[Sequence[int], np.ndarray]],
    *,
    max_width: int = DEFAULT_WIDTH,
    diagonal_width: int = 0,
) -> list[Block]:
    """The blocks that apply ``gates`` (each ``(qubits, unitary)``, in order).

    Args:
        gates: each gate's qubits (distinct; the first the most significant bit of its
            matrix's index) and its matrix.
        max_width: the widest block to make (a wider gate is a block of its own).
        diagonal_width: 0 (the default) fuses as :func:`widths` models. Above 0, a run
            of units on the same qubits is one unit (a controlled phase written as CX
            and RZ is then diagonal), and diagonal units make diagonal blocks up to
            this many qubits wide, priced as :func:`cost` ``(w, diagonal=True)``; a
            non-diagonal unit that joins one makes it an ordinary block again, so no
            wider than ``max_width``.

    Returns:
        The blocks, in the order they apply.
    """
    blocks: list[_Open] = []
    last: dict[int, int] = {}  # qubit -> the block holding its latest gate
    waiting: dict[int, tuple[np.ndarray, list[int]]] = {}  # qubit -> its one-qubit gates

    def place(qubits: tuple[int, ...], matrix: np.ndarray, members: list[int]) -> None:
        diagonal = diagonal_width > 0 and _is_diagonal(matrix)
        latest = max((last.get(q, -1) for q in qubits), default=-1)
        candidates = [b for b in (latest, len(blocks) - 1) if b >= latest and b >= 0]
        best: tuple[int, int] | None = None  # (gain, block)
        for b in dict.fromkeys(candidates):
            block = blocks[b]
            union = len(set(block.qubits) | set(qubits))
            both = diagonal and block.diagonal
            if union > (diagonal_width if both else max_width):
                continue
            gain = (
                cost(len(block.qubits), diagonal=block.diagonal)
                + cost(len(qubits), diagonal=diagonal)
                - cost(union, diagonal=both)
            )
            if gain >= 0 and (best is None or gain > best[0]):
                best = (gain, b)
        if best is None:
            blocks.append(_Open(list(qubits), [(qubits, matrix, members)], diagonal))
            where = len(blocks) - 1
        else:
            where = best[1]
            block = blocks[where]
            block.qubits += [q for q in qubits if q not in block.qubits]
            block.parts.append((qubits, matrix, members))
            block.diagonal = block.diagonal and diagonal
        for q in qubits:
            last[q] = where

    before: list[tuple[tuple[int, ...], np.ndarray, list[int]]] = []  # the unit not yet placed

    def unit(qubits: tuple[int, ...], matrix: np.ndarray, members: list[int]) -> None:
        if diagonal_width <= 0:
            place(qubits, matrix, members)
            return
        if before and set(before[0][0]) == set(qubits):  # the same qubits: one unit
            qs, u, earlier = before.pop()
            before.append((qs, _embed(qs, [(qs, u), (qubits, matrix)]), [*earlier, *members]))
            return
        if before:
            place(*before.pop())
        before.append((qubits, matrix, members))

    for index, (qubits, matrix) in enumerate(gates):
        qs = tuple(int(q) for q in qubits)
        u = np.asarray(matrix, dtype=np.complex128)
        if len(qs) == 1:
            held = waiting.get(qs[0])
            waiting[qs[0]] = (u, [index]) if held is None else (u @ held[0], [*held[1], index])
            continue
        members: list[int] = []
        singles: list[tuple[int, np.ndarray]] = []
        for q in qs:
            held = waiting.pop(q, None)
            if held is not None:
                members += held[1]
                singles.append((q, held[0]))
        if singles:  # the unit: the gate after its qubits' waiting one-qubit gates
            u = u @ _embed(qs, [((q,), m) for q, m in singles])
        unit(qs, u, [*sorted(members), index])
    if before:
        place(*before.pop())
    for q, (u, members) in sorted(waiting.items(), key=lambda item: item[1][1][0]):
        place((q,), u, members)
    return [_close(block) for block in blocks]


def widths(gates: Sequence[Sequence[int]], *, max_width: int = DEFAULT_WIDTH) -> list[int]:
    """The widths of the blocks :func:`plan` makes of gates on these qubits (in order),
    without their matrices: the same placement, on qubit sets alone (cheap: the
    router's estimate of how well a circuit fuses; a test checks it against
    :func:`plan`).

    >>> widths([(0,), (1,), (0, 1), (1, 2), (2,)])
    [3]
    """
    blocks: list[set[int]] = []
    last: dict[int, int] = {}
    waiting: dict[int, int] = {}  # qubit -> index of its first waiting one-qubit gate
    for index, qubits in enumerate(gates):
        if len(qubits) == 1:
            if qubits[0] not in waiting:
                waiting[qubits[0]] = index
            continue
        for q in qubits:
            waiting.pop(q, None)
        _place(tuple(qubits), blocks, last, max_width)
    singles = [(q,) for q, _ in sorted(waiting.items(), key=lambda item: item[1])]
    for qubits in singles:
        _place(qubits, blocks, last, max_width)
    return [len(block) for block in blocks]


def _place(
    qubits: tuple[int, ...], blocks: list[set[int]], last: dict[int, int], max_width: int
) -> None:
    """:func:`plan`'s placement of one unit, on qubit sets (see :func:`widths`)."""
    get = last.get
    latest = max([get(q, -1) for q in qubits])
    newest = len(blocks) - 1
    best = -1
    gain_best = -1
    width = len(qubits)
    for b in (latest, newest) if newest != latest else (latest,):
        if b < latest or b < 0:
            continue
        block = blocks[b]
        union = len(block) + sum([q not in block for q in qubits])
        if union > max_width:
            continue
        gain = cost(len(block)) + cost(width) - cost(union)
        if gain >= 0 and gain > gain_best:
            best, gain_best = b, gain
    if best < 0:
        blocks.append(set(qubits))
        best = newest + 1
    else:
        blocks[best].update(qubits)
    for q in qubits:
        last[q] = best


def _embed(qubits: Sequence[int], parts: Sequence[tuple[Sequence[int], np.ndarray]]) -> np.ndarray:
    """The product (first part applied first) of ``parts`` on ``qubits``' index space."""
    k = len(qubits)
    axis = {q: i for i, q in enumerate(qubits)}
    out: np.ndarray | None = None
    for qs, u in parts:
        rows, cols, same = _layout(k, tuple(axis[q] for q in qs))
        full = np.where(same, u[rows, cols], 0)
        out = full if out is None else full @ out
    return np.eye(1 << k, dtype=np.complex128) if out is None else out


@functools.lru_cache(maxsize=4096)
def _layout(k: int, targets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index maps that place a gate on the block axes ``targets`` (axis 0 the most
    significant bit) in a ``k``-qubit block: ``where(same, u[rows, cols], 0)``."""
    index = np.arange(1 << k)
    sub = np.zeros(1 << k, dtype=np.intp)
    width = len(targets)
    for i, t in enumerate(targets):
        sub |= ((index >> (k - 1 - t)) & 1) << (width - 1 - i)
    mask = sum(1 << (k - 1 - t) for t in targets)
    rest = index & ~mask
    maps = (sub[:, None], sub[None, :], rest[:, None] == rest[None, :])
    for array in maps:
        array.setflags(write=False)
    return maps


def _diagonal(
    qubits: Sequence[int], parts: Sequence[tuple[Sequence[int], np.ndarray]]
) -> np.ndarray:
    """The diagonal of the product of diagonal ``parts`` on ``qubits``' index space."""
    k = len(qubits)
    index = np.arange(1 << k)
    out = np.ones(1 << k, dtype=np.complex128)
    for qs, u in parts:
        sub = np.zeros(1 << k, dtype=np.intp)
        for i, q in enumerate(qs):  # the part's bit i (from its top) is block axis q
            sub |= ((index >> (k - 1 - qubits.index(q))) & 1) << (len(qs) - 1 - i)
        out *= np.diag(u)[sub]
    return out


def _close(block: _Open) -> Block:
    qubits = tuple(block.qubits)
    members = tuple(i for _, _, part in block.parts for i in part)
    if block.diagonal:
        diagonal = _diagonal(qubits, [(qs, u) for qs, u, _ in block.parts])
        return Block(qubits=qubits, gates=members, matrix=diagonal, diagonal=True)
    if len(block.parts) == 1 and block.parts[0][0] == qubits:
        matrix = np.ascontiguousarray(block.parts[0][1])
    else:
        matrix = _embed(qubits, [(qs, u) for qs, u, _ in block.parts])
    return Block(qubits=qubits, gates=members, matrix=matrix)
