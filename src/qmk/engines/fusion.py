"""Gate fusion: a run of gates as a few wider gates, each applied in one pass over the state.

A pass over a large statevector costs about as much as a few complex multiply-adds per
amplitude, and a ``k``-qubit gate costs ``2**k`` of them, so a circuit of one- and
two-qubit gates runs fastest as blocks of 3-4 qubits (qsim's fuser makes the same
trade). :func:`plan` groups a segment's gates into :class:`Block` s in two steps:

1. every one-qubit gate waits for the next multi-qubit gate on its qubit and joins it
   (its 2x2 matrices multiplied together first); one-qubit gates with no such gate
   after them join at the end;
2. those units are placed in order. A unit may join the block that holds the latest
   gate on any of its qubits, or the newest block when that is later still. (A later
   block would reorder gates on a shared qubit; an earlier one would move it before a
   predecessor.) It joins when the merged block stays within ``max_width`` qubits and
   costs no more than the two apart (``PASS_COST + 2**width`` each). Else it starts a
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
from typing import cast

import numpy as np

#: What one pass over the state costs, in complex multiply-adds per amplitude (a
#: ``k``-qubit gate adds ``2**k``). A pass over a state larger than the caches is bound
#: by memory, so even a one-qubit gate's pass costs a good part of a four-qubit gate's
#: (``docs/engines.md`` has the measurement).
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
    diagonal gates, such as a controlled phase written as CX and RZ, are exactly so).
    Then the nonzero entries are as many as those on the diagonal (gates are finite).
    Most units are dense, and the first entry off the diagonal says so at once."""
    if u.size > 1 and u.flat[1]:
        return False
    return bool(np.count_nonzero(u) == np.count_nonzero(np.diagonal(u)))


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
            and RZ is then diagonal). Diagonal units make diagonal blocks up to this
            many qubits wide, priced as :func:`cost` ``(w, diagonal=True)``. A
            non-diagonal unit that joins one makes it an ordinary block again, so no
            wider than ``max_width``.

    Returns:
        The blocks, in the order they apply.
    """
    qubits_of = [tuple(qubits) for qubits, _ in gates]  # (ints: a tuple of them, not a map)
    matrices = [np.asarray(matrix, dtype=np.complex128) for _, matrix in gates]
    # the structure first, on qubits alone: each run of one-qubit gates (a chain) waits
    # for the next multi-qubit gate on its qubit and makes a unit with it
    chains: list[list[int]] = []
    waiting: dict[int, int] = {}  # qubit -> its chain
    units: list[tuple[tuple[int, ...], int, list[tuple[int, int]]]] = []  # qubits, gate, singles
    for index, qs in enumerate(qubits_of):
        if len(qs) == 1:
            held = waiting.get(qs[0])
            if held is None:
                waiting[qs[0]] = len(chains)
                chains.append([index])
            else:
                chains[held].append(index)
            continue
        singles = [(axis, waiting.pop(q)) for axis, q in enumerate(qs) if q in waiting]
        units.append((qs, index, singles))
    # then the matrices, many at a time (numpy's per-call cost is most of a 2x2 product;
    # a stack's products equal the one-by-one ones bit for bit)
    products = _chain_products(chains, matrices)
    unit_matrices = _unit_matrices(units, matrices, products)

    blocks: list[_Open] = []
    last: dict[int, int] = {}  # qubit -> the block holding its latest gate

    get = last.get
    flat = (PASS_COST + 1) - PASS_COST  # a diagonal block's price above PASS_COST

    def place(qubits: tuple[int, ...], matrix: np.ndarray, members: list[int]) -> None:
        diagonal = diagonal_width > 0 and _is_diagonal(matrix)
        latest = max([get(q, -1) for q in qubits])
        newest = len(blocks) - 1
        best: tuple[int, int] | None = None  # (gain, block)
        # (the prices of cost(), PASS_COST cancelled: thousands of units a segment)
        own = flat if diagonal else 1 << len(qubits)
        for b in (latest,) if newest == latest else (latest, newest):
            if b < 0:
                continue
            block = blocks[b]
            held = block.qubits
            union = len(held) + len([q for q in qubits if q not in held])
            both = diagonal and block.diagonal
            if union > (diagonal_width if both else max_width):
                continue
            gain = (
                PASS_COST
                + (flat if block.diagonal else 1 << len(held))
                + own
                - (flat if both else 1 << union)
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
    for (qs, index, singles), u in zip(units, unit_matrices, strict=True):
        members = [*sorted(i for _, c in singles for i in chains[c]), index]
        if diagonal_width <= 0:
            place(qs, u, members)
            continue
        if before and set(before[0][0]) == set(qs):  # the same qubits: one unit
            first, v, earlier = before.pop()
            merged = u @ v if first == qs else _embed(first, [(first, v), (qs, u)])
            before.append((first, merged, [*earlier, *members]))
            continue
        if before:
            place(*before.pop())
        before.append((qs, u, members))
    if before:
        place(*before.pop())
    for q, c in sorted(waiting.items(), key=lambda item: chains[item[1]][0]):
        place((q,), products[c], chains[c])
    return _close(blocks)


def fold_paulis(blocks: Sequence[Block], paulis: Sequence[tuple[int, np.ndarray]]) -> list[Block]:
    """The blocks of a segment that starts with ``paulis`` and goes on with the gates
    ``blocks`` were planned for: each Pauli (``(qubit, its 2x2 matrix)``, on distinct
    qubits, ahead of every gate) folded into the first block on its qubit.

    A trajectory's errors at its cut are such Paulis: its tail's plan is then the
    error-free tail's, reused. The fold is exact: a Pauli has one entry a column, so it
    permutes the block's columns and multiplies them by 1, -1, i or -i. Where it cannot
    fold (an X or Y before a diagonal block, or no block on its qubit), it is a
    one-qubit block of its own, applied first. Gate indices count the Paulis first, then
    the gates (``blocks``' indices shifted by their number), as :func:`plan` would.

    Raises:
        ValueError: a matrix with more than one entry in a column (no Pauli).

    >>> from qmk.engines.gates import GATES
    >>> h, cz, x = GATES["h"].matrix(), GATES["cz"].matrix(), GATES["x"].matrix()
    >>> folded = fold_paulis(plan([((0,), h), ((0, 1), cz)]), [(1, x)])
    >>> [(b.qubits, b.gates) for b in folded]
    [((0, 1), (0, 1, 2))]
    >>> bool(np.allclose(folded[0].matrix, plan([((1,), x), ((0,), h), ((0, 1), cz)])[0].matrix))
    True
    """
    lead = len(paulis)
    out = [
        Block(
            qubits=b.qubits,
            gates=tuple(i + lead for i in b.gates),
            matrix=b.matrix,
            diagonal=b.diagonal,
        )
        for b in blocks
    ]
    front: list[Block] = []
    for index, (qubit, pauli) in enumerate(paulis):
        u = np.asarray(pauli, dtype=np.complex128)
        swaps = bool(u[0, 0] == 0)  # column 0's entry is in row 1: X and Y
        if np.count_nonzero(u) != 2 or bool(u[1, 1] == 0) != swaps:
            raise ValueError(f"not a Pauli: {u.tolist()}")
        # column c of block @ u: the block's column c, or c ^ bit where u swaps, times
        # u's entry in the column of c's bit
        zero, one = u[int(swaps), 0], u[1 - int(swaps), 1]
        where = next((j for j, b in enumerate(out) if qubit in b.qubits), None)
        if where is None or (out[where].diagonal and swaps):  # a block of its own, first
            identity = np.eye(2, dtype=np.complex128)
            front.append(Block(qubits=(qubit,), gates=(), matrix=identity))
            target, where = front, len(front) - 1
        else:
            target = out
        block = target[where]
        k = len(block.qubits)
        bit = 1 << (k - 1 - block.qubits.index(qubit))  # the first qubit the index's top bit
        columns = np.arange(1 << k)
        factor = np.where(columns & bit, one, zero)
        if block.diagonal:  # (a diagonal Pauli: the entries' signs)
            matrix = block.matrix * factor
        else:
            matrix = (block.matrix[:, columns ^ bit] if swaps else block.matrix) * factor
        target[where] = Block(
            qubits=block.qubits,
            gates=(index, *block.gates),
            matrix=np.ascontiguousarray(matrix),
            diagonal=block.diagonal,
        )
    return [*front, *out]


def _chain_products(
    chains: Sequence[Sequence[int]], matrices: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each chain's product, its first gate applied first (``m_k @ ... @ m_1``, left to
    right as one by one), chains of one length a stack at a time."""
    out: list[np.ndarray] = [matrices[chain[0]] for chain in chains]
    by_length: dict[int, list[int]] = {}
    for c, chain in enumerate(chains):
        if len(chain) > 1:
            by_length.setdefault(len(chain), []).append(c)
    for length, group in by_length.items():
        # axes (position, chain, 2, 2): each position's stack contiguous
        stack = np.array([[matrices[chains[c][j]] for c in group] for j in range(length)])
        product = stack[0]
        for j in range(1, length):
            product = stack[j] @ product
        out_group = list(product)
        for c, matrix in zip(group, out_group, strict=True):
            out[c] = matrix
    return out


def _unit_matrices(
    units: Sequence[tuple[tuple[int, ...], int, list[tuple[int, int]]]],
    matrices: Sequence[np.ndarray],
    products: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """Each unit's matrix: its gate after its qubits' waiting chains (``gate @
    embed(chains)``, as :func:`_embed` makes it), units of one shape (width and the
    axes their chains are on) a stack at a time."""
    out: list[np.ndarray] = [matrices[index] for _, index, _ in units]
    shapes: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for u, (qs, _, singles) in enumerate(units):
        if singles:
            shapes.setdefault((len(qs), tuple(axis for axis, _ in singles)), []).append(u)
    for (k, axes), group in shapes.items():
        embedded: np.ndarray | None = None
        for t, axis in enumerate(axes):
            rows, cols, same = _layout(k, (axis,))
            stack = np.array([products[units[u][2][t][1]] for u in group])
            full = np.where(same, stack[:, rows, cols], 0)
            embedded = full if embedded is None else full @ embedded
        gate = np.array([matrices[units[u][1]] for u in group])
        for u, matrix in zip(group, list(gate @ embedded), strict=True):
            out[u] = matrix
    return out


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
    """:func:`plan`'s placement of one unit, on qubit sets (see :func:`widths`). (Its
    gain, ``cost(block) + cost(width) - cost(union)``, written out: the router runs this
    on thousands of gates.)"""
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
        size = len(block)
        union = size
        for q in qubits:
            if q not in block:
                union += 1
        if union > max_width:
            continue
        gain = PASS_COST + (1 << size) + (1 << width) - (1 << union)
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
        targets = tuple(axis[q] for q in qs)
        if targets == tuple(range(k)):  # the block's own axes: the matrix as it is
            full = u
        else:
            rows, cols, same = _layout(k, targets)
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
    out = np.ones(1 << k, dtype=np.complex128)
    for qs, u in parts:
        out *= np.diagonal(u)[_part_index(k, tuple([qubits.index(q) for q in qs]))]
    return out


@functools.lru_cache(maxsize=4096)
def _part_index(k: int, axes: tuple[int, ...]) -> np.ndarray:
    """For each index of a ``k``-qubit diagonal block, the index into the diagonal of a
    part on block ``axes`` (axis 0 the most significant bit; the part's bit ``i``, from
    its top, is block axis ``axes[i]``): kept, a circuit's diagonal parts repeat their
    axes."""
    index = np.arange(1 << k)
    sub = np.zeros(1 << k, dtype=np.intp)
    for i, axis in enumerate(axes):
        sub |= ((index >> (k - 1 - axis)) & 1) << (len(axes) - 1 - i)
    sub.setflags(write=False)
    return sub


def _close(blocks: Sequence[_Open]) -> list[Block]:
    """The blocks as :class:`Block` s: each dense block's matrix the product of its parts,
    each embedded on the block's qubits (:func:`_embed`, whose arithmetic it does).

    The parts of one shape (width and axes) are embedded as one stack, and the blocks of
    one width and number of parts multiplied as one stack. numpy's per-call cost is most
    of an 8x8 product, and a stack's products equal the one-by-one ones."""
    out: list[Block | None] = [None] * len(blocks)
    gates = [tuple(i for _, _, part in block.parts for i in part) for block in blocks]
    shapes: dict[tuple[int, tuple[int, ...]], list[tuple[int, int]]] = {}
    chains: dict[tuple[int, int], list[int]] = {}
    for b, block in enumerate(blocks):
        qubits, members = tuple(block.qubits), gates[b]
        if block.diagonal:
            diagonal = _diagonal(qubits, [(qs, u) for qs, u, _ in block.parts])
            out[b] = Block(qubits=qubits, gates=members, matrix=diagonal, diagonal=True)
            continue
        if len(block.parts) == 1 and block.parts[0][0] == qubits:
            matrix = np.ascontiguousarray(block.parts[0][1])
            out[b] = Block(qubits=qubits, gates=members, matrix=matrix)
            continue
        k = len(qubits)
        axis = {q: i for i, q in enumerate(qubits)}
        for j, (qs, _, _) in enumerate(block.parts):
            shapes.setdefault((k, tuple([axis[q] for q in qs])), []).append((b, j))
        chains.setdefault((k, len(block.parts)), []).append(b)
    full: dict[tuple[int, int], np.ndarray] = {}
    for (k, targets), where in shapes.items():
        stack = np.array([blocks[b].parts[j][1] for b, j in where])
        if targets != tuple(range(k)):  # else the block's own axes: the matrices as they are
            rows, cols, same = _layout(k, targets)
            stack = np.where(same, stack[:, rows, cols], 0)
        full.update(zip(where, stack, strict=True))
    for (_, count), group in chains.items():
        product = np.array([full[b, 0] for b in group])
        for j in range(1, count):
            product = np.array([full[b, j] for b in group]) @ product
        for b, matrix in zip(group, product, strict=True):
            out[b] = Block(qubits=tuple(blocks[b].qubits), gates=gates[b], matrix=matrix)
    return cast("list[Block]", out)
