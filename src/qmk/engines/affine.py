"""Sampling a stabilizer circuit's terminal measurements from their affine support.

The Z-basis outcomes of a stabilizer state are uniform over an affine subspace ``x0 + D``
of GF(2)^m (Dehaene and De Moor, PRA 68, 042318). ``x0`` is any one outcome, and ``D`` the
row space of the state's stabilizer generators' X parts, restricted to the measured
qubits. With a basis of ``D`` of ``k`` rows, a shot is ``x0`` XOR the rows that ``k``
uniform random bits pick. A uniform choice of bits gives a uniform point of ``x0 + D``,
whatever the basis.

:func:`support` finds ``x0`` and a reduced row echelon basis once per circuit (stim's
tableau of the circuit's unitary part and its reference sample). Two samplers draw from
it, where stim's frame sampler would simulate every gate and measurement of the circuit
for every shot:

- :class:`AffineSampler` groups the basis rows eight at a time into tables of their 256
  XOR combinations, ``x0`` folded into the first: a shot costs ``ceil(k / 8)`` row
  look-ups and XORs of ``(m + 7) // 8`` bytes. The form for few dimensions: a GHZ state
  of any width has one.
- :class:`FreeSampler` draws every record bit uniformly and sets the ``m - k`` free
  columns (those no pivot holds) as parities of the pivot bits: the form for many
  dimensions. A deep random circuit's outcomes have nearly all ``m``, and cost little
  more than the random bits.

:func:`affine_sampler` takes whichever of the three costs least a shot
(:func:`shot_costs`). It applies to circuits whose measurements all come after their
gates (what a circuit written in Qiskit or OpenQASM usually is). Anything else (a
mid-circuit measurement or reset, a noise channel, feed-forward, a qubit measured twice)
is left to stim: the function returns None.

>>> bell = stim.Circuit("H 0\\nCX 0 1\\nM 0 1")
>>> sampler = affine_sampler(bell)
>>> sampler.rank, sorted({tuple(row) for row in sampler.sample_packed(1000, 7).tolist()})
(1, [(0,), (3,)])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import stim

#: A chunk of fewer record bits (shots x measurements) is left to stim: its sampler is
#: then quicker than the analysis (``docs/engines.md`` has the figures).
MIN_BITS = 1 << 22
#: Tableaus of more qubits are not built: the analysis is quadratic in the width.
MAX_QUBITS = 4096

#: Measurements of one qubit in a Pauli basis, and the gate that turns it into Z first.
_BASIS_CHANGE = {"M": None, "MZ": None, "MX": "H", "MY": "H_YZ"}
#: Instructions that neither act on the state nor add record bits.
_ANNOTATIONS = frozenset({"TICK", "QUBIT_COORDS", "SHIFT_COORDS", "DETECTOR", "OBSERVABLE_INCLUDE"})
_U64 = np.dtype("<u8")


@dataclass(frozen=True, slots=True)
class AffineSampler:
    """Uniform shots of ``x0 + D`` (the module docstring), bit-packed as stim packs them.

    ``tables[t]`` holds the XOR combinations of basis rows ``8t`` to ``8t + 7`` (the row
    index's bit ``j`` picks row ``8t + j``), ``x0`` XORed into every row of ``tables[0]``.
    """

    tables: tuple[np.ndarray, ...]
    rank: int

    @classmethod
    def of(cls, reference: np.ndarray, basis: np.ndarray) -> AffineSampler:
        """The sampler of ``reference`` (one outcome, bit-packed) plus the row space of
        ``basis`` (bit-packed rows of the same width)."""
        tables = []
        for start in range(0, max(len(basis), 1), 8):
            table = reference[None, :] if start == 0 else np.zeros_like(reference[None, :])
            for row in basis[start : start + 8]:
                table = np.concatenate([table, table ^ row])
            tables.append(np.ascontiguousarray(table))
        return cls(tables=tuple(tables), rank=len(basis))

    def sample_packed(self, shots: int, seed: int) -> np.ndarray:
        """``shots`` rows of the record bits (``(m + 7) // 8`` bytes each, little-endian),
        drawn with numpy's PCG64 seeded ``seed``: one uniform table row per table."""
        rng = np.random.default_rng(seed)
        first = self.tables[0]
        out = first[rng.integers(0, len(first), size=shots)]
        for table in self.tables[1:]:
            out ^= table[rng.integers(0, len(table), size=shots)]
        return out


class FreeSampler:
    """Uniform shots of ``x0 + D`` drawn as uniform record bits whose free columns are
    then set: the form for a support of many dimensions.

    In the reduced row echelon basis of ``D`` each row holds one pivot column that no
    other row holds. So a point of ``x0 + D`` is any choice of its pivot bits, and each
    other (free) column follows from them. It is ``point`` there (the point of ``x0 + D``
    with every pivot bit 0) XOR the parity of the pivot bits its ``masks`` row selects. A
    shot is uniform random words, then one masked parity a free column: nothing more
    where every column is a pivot (a deep random Clifford circuit's outcomes).
    """

    __slots__ = ("columns", "masks", "point", "rank", "records", "width")

    def __init__(
        self, reference: np.ndarray, basis: np.ndarray, pivots: Sequence[int], records: int
    ) -> None:
        """``reference`` is one outcome of ``records`` bits (bit-packed), ``basis`` the
        bit-packed rows of a reduced row echelon basis of ``D`` and ``pivots`` their
        pivot columns."""
        self.records, self.width, self.rank = records, reference.shape[0], len(basis)
        bits = np.unpackbits(basis, axis=1, count=records, bitorder="little").astype(bool)
        start = np.unpackbits(reference, count=records, bitorder="little").astype(bool)
        pivot = np.zeros(records, dtype=bool)
        pivot[list(pivots)] = True
        # the point with every pivot bit 0: x0 plus the rows whose pivot x0 sets
        point = start ^ np.logical_xor.reduce(bits[start[list(pivots)]], axis=0)
        self.columns = np.flatnonzero(~pivot)
        self.point = point[self.columns].astype(np.uint8)
        words = -(-self.width // 8)
        masks = np.zeros((len(self.columns), words * 64), dtype=bool)
        masks[:, list(pivots)] = bits[:, self.columns].T  # column c: the pivots it reads
        self.masks = np.packbits(masks, axis=1, bitorder="little").view(_U64)

    def sample_packed(self, shots: int, seed: int) -> np.ndarray:
        """``shots`` rows of the record bits (``width`` bytes each, little-endian),
        drawn with numpy's PCG64 seeded ``seed`` (its raw 64-bit words, little-endian)."""
        words = -(-self.width // 8)
        raw = np.random.default_rng(seed).bit_generator.random_raw(shots * words)
        draw = np.asarray(raw, dtype=_U64).reshape(shots, words)
        out = draw.view(np.uint8)
        free = zip(self.columns.tolist(), self.masks, self.point.tolist(), strict=True)
        for column, mask, value in free:
            parity = np.bitwise_count(np.bitwise_xor.reduce(draw & mask, axis=1)) & 1
            byte, bit = column >> 3, column & 7
            out[:, byte] &= np.uint8(~(1 << bit) & 0xFF)
            out[:, byte] |= ((parity.astype(np.uint8) ^ value) << bit).astype(np.uint8)
        if self.records % 8:  # the last byte's spare bits are 0, as stim packs them
            out[:, self.width - 1] &= (1 << self.records % 8) - 1
        return np.ascontiguousarray(out[:, : self.width])


@dataclass(frozen=True, slots=True, eq=False)
class Support:
    """A circuit's terminal record as ``x0 + D``: ``reference`` (one outcome, ``x0``,
    bit-packed), the reduced row echelon ``basis`` of ``D`` and its ``pivots``, the
    ``records`` (bits a shot) and the gate ``targets`` stim's sampler would simulate a
    shot: what picks and makes either form of sampler."""

    reference: np.ndarray
    basis: np.ndarray
    pivots: tuple[int, ...]
    records: int
    targets: int

    def costs(self) -> dict[str, float]:
        """:func:`shot_costs` of this support."""
        return shot_costs(self.targets, self.records, len(self.basis))

    def rows(self) -> AffineSampler:
        """The sampler of the basis rows' tables."""
        return AffineSampler.of(self.reference, self.basis)

    def free(self) -> FreeSampler:
        """The sampler of the free columns."""
        return FreeSampler(self.reference, self.basis, self.pivots, self.records)


def support(circuit: stim.Circuit) -> Support | None:
    """``circuit``'s :class:`Support`, or None where the module docstring's conditions
    do not hold (stim's sampler is then the way).

    >>> support(stim.Circuit("H 0\\nM 0\\nCX 0 1\\nM 1")) is None  # mid-circuit
    True
    >>> ghz = support(stim.Circuit("H 0\\nCX 0 1 1 2\\nM 0 1 2"))
    >>> ghz.basis.tolist(), ghz.pivots
    ([[7]], (0,))
    """
    unitary = _unitary_part(circuit)
    if unitary is None:
        return None
    gates, qubits, targets = unitary
    simulator = stim.TableauSimulator()
    simulator.set_num_qubits(max(circuit.num_qubits, 1))
    simulator.do(gates)
    basis, pivots = reduced_basis(simulator, qubits)
    reference = np.asarray(circuit.reference_sample(bit_packed=True), dtype=np.uint8)
    return Support(
        reference=reference,
        basis=basis,
        pivots=tuple(pivots),
        records=len(qubits),
        targets=targets,
    )


def affine_sampler(circuit: stim.Circuit) -> AffineSampler | FreeSampler | None:
    """The sampler of ``circuit``'s measurement record from its :func:`support`, in the
    form that costs less a shot (:func:`shot_costs`). None where there is no support, or
    where stim's own sampler costs less a shot.

    >>> type(affine_sampler(stim.Circuit("H 0\\nCX 0 1 1 2\\nM 0 1 2"))).__name__
    'AffineSampler'
    """
    found = support(circuit)
    if found is None:
        return None
    costs = found.costs()
    best = min(costs, key=costs.__getitem__)
    if best == "free":
        return found.free()
    if best == "rows":
        return found.rows()
    return None


def _unitary_part(circuit: stim.Circuit) -> tuple[stim.Circuit, list[int], int] | None:
    """The circuit's gates, with each measured qubit turned to the Z basis at the end,
    the measured qubits in record order and the gates' targets; None unless the circuit
    is leading resets, unitary gates, then measurements of distinct qubits.

    Read from the circuit's text, one instruction a line (a loop is refused): a
    100,000-gate circuit's instructions, walked as stim objects, took a second.
    """
    if circuit.num_qubits > MAX_QUBITS:
        return None
    lines = str(circuit).splitlines()
    heads = [line.partition(" ")[0] for line in lines]  # a name, with its arguments
    names = [head.partition("(")[0] for head in heads]
    first = next((i for i, name in enumerate(names) if name in _BASIS_CHANGE), None)
    if first is None:
        return None
    start = 0
    while start < first and names[start] in ("R", "RZ", *_ANNOTATIONS):
        start += 1  # every qubit starts in |0>
    if not all(name in _ANNOTATIONS or _unitary(name) for name in set(names[start:first])):
        return None  # a reset, a noise channel or a loop among the gates
    gate_text = "\n".join(lines[start:first])
    if "rec[" in gate_text or "sweep[" in gate_text:
        return None  # feed-forward or a sweep bit
    qubits: list[int] = []
    changes: list[tuple[str, int]] = []
    for line, head, name in zip(lines[first:], heads[first:], names[first:], strict=True):
        if name in _ANNOTATIONS:
            continue
        if name not in _BASIS_CHANGE or head != name:  # not a measurement, or a noisy one
            return None
        change = _BASIS_CHANGE[name]
        for target in line.split()[1:]:
            number = target.removeprefix("!")
            if not number.isdigit():
                return None
            qubits.append(int(number))
            if change is not None:
                changes.append((change, int(number)))
    if not qubits or len(set(qubits)) != len(qubits):
        return None
    gates = circuit[start:first]
    for change, qubit in changes:
        gates.append(change, [qubit])
    return gates, qubits, gate_text.count(" ")


@functools.cache
def _unitary(name: str) -> bool:
    """Whether stim's instruction ``name`` is a unitary gate."""
    try:
        return bool(stim.gate_data(name).is_unitary)
    except (IndexError, KeyError, ValueError):
        return False


def support_basis(
    simulator: stim.TableauSimulator, qubits: Sequence[int], max_rank: int | None = None
) -> np.ndarray | None:
    """A basis of ``D``, the Z-basis support of ``simulator``'s state on ``qubits`` less
    one of its points: bit-packed rows (little-endian, bit ``j`` for ``qubits[j]``), or
    None when it has more than ``max_rank`` rows. ``qubits`` must be in the simulator's
    tableau (``set_num_qubits``).

    >>> simulator = stim.TableauSimulator()
    >>> simulator.do(stim.Circuit("H 0\\nCX 0 1\\nH 2"))
    >>> support_basis(simulator, [2, 1, 0]).tolist()  # rows 0b001 (qubit 2), 0b110
    [[1], [6]]
    """
    found = _reduce(_x_parts(simulator, qubits), max_rank, (len(qubits) + 7) // 8)
    return None if found is None else found[0]


def reduced_basis(
    simulator: stim.TableauSimulator, qubits: Sequence[int]
) -> tuple[np.ndarray, list[int]]:
    """:func:`support_basis` in reduced row echelon form, and each row's pivot column:
    the one column of the record that row alone of the basis holds.

    >>> simulator = stim.TableauSimulator()
    >>> simulator.do(stim.Circuit("H 0\\nCX 0 1\\nH 2"))
    >>> basis, pivots = reduced_basis(simulator, [2, 1, 0])
    >>> basis.tolist(), pivots
    ([[1], [6]], [0, 1])
    """
    found = _reduce(_x_parts(simulator, qubits), None, (len(qubits) + 7) // 8, reduced=True)
    assert found is not None  # no rank bound
    return found


def _x_parts(simulator: stim.TableauSimulator, qubits: Sequence[int]) -> np.ndarray:
    """The X parts of the state's stabilizers on ``qubits``, 64 columns to a word."""
    tableau = simulator.current_inverse_tableau().inverse(unsigned=True)
    z2x = tableau.to_numpy(bit_packed=True)[2]  # row k: X part of stabilizer k
    z2x = z2x[z2x.any(axis=1)]  # Z-only stabilizers add nothing to D
    width = (len(qubits) + 7) // 8
    if len(qubits) != len(tableau) or list(qubits) != list(range(len(tableau))):
        columns = np.asarray(qubits, dtype=np.intp)
        bits = (z2x[:, columns >> 3] >> (columns & 7).astype(np.uint8)) & 1
        z2x = np.packbits(bits.astype(bool), axis=1, bitorder="little")
    words = np.zeros((len(z2x), -(-width // 8) * 8), dtype=np.uint8)
    words[:, :width] = z2x[:, :width]
    if len(qubits) % 8:  # the last byte's spare bits stay 0
        words[:, width - 1] &= (1 << len(qubits) % 8) - 1
    return words.view(_U64)


def _reduce(
    rows: np.ndarray, max_rank: int | None, width: int, *, reduced: bool = False
) -> tuple[np.ndarray, list[int]] | None:
    """A basis of the GF(2) row space of ``rows`` (64 columns to a word), as rows of
    ``width`` bytes, and each row's pivot column; None when it has more than
    ``max_rank`` rows. ``reduced``: in reduced row echelon form (each pivot cleared from
    every other row, not only from those after it).

    Each step takes the first remaining row as a basis row and clears its lowest bit from
    every row, so the work is one pass per basis row, whatever the number of columns.

    >>> rows = np.array([[0b011], [0b110], [0b101]], dtype=np.uint64)
    >>> basis, pivots = _reduce(rows, 8, 1)
    >>> basis.tolist(), pivots
    ([[3], [6]], [0, 1])
    >>> _reduce(rows, 8, 1, reduced=True)[0].tolist()
    [[5], [6]]
    """
    basis: list[np.ndarray] = []
    pivots: list[int] = []
    rows = np.unique(rows[rows.any(axis=1)], axis=0)
    while len(rows):
        if len(basis) == max_rank:
            return None
        pivot = rows[0].copy()
        word = int(np.flatnonzero(pivot)[0])
        low = pivot[word] & (~pivot[word] + np.uint64(1))
        basis.append(pivot)
        pivots.append(64 * word + int(low).bit_length() - 1)
        rows = rows[1:]
        rows[(rows[:, word] & low) != 0] ^= pivot
        rows = rows[rows.any(axis=1)]
    if not basis:
        return np.zeros((0, width), dtype=np.uint8), []
    done = np.array(basis, dtype=_U64)
    if reduced:  # the last pivot first: its row then holds no later pivot to spread
        for k in range(len(pivots) - 1, 0, -1):
            word, bit = divmod(pivots[k], 64)
            above = done[:k]
            above[(above[:, word] >> np.uint64(bit)) & np.uint64(1) == 1] ^= done[k]
    return done.view(np.uint8)[:, :width], pivots


#: Per-shot costs of the three ways to draw a terminal record, in nanoseconds, measured
#: on a 2-core machine against stim's sampler on 1,000 qubits (docs/engines.md): stim's
#: frame sampler per record bit and per gate target (a GHZ chain; random Clifford
#: circuits of depth 3 and 100 with long-range CX), the row tables
#: (:class:`AffineSampler`) per basis row and record byte (an H layer on ``k`` qubits
#: and a CX chain), the free columns (:class:`FreeSampler`) per record word drawn and
#: per free column and word.
STIM_NS_PER_BIT = 2.7
STIM_NS_PER_TARGET = 0.035
ROWS_NS_PER_ROW_BYTE = 0.18
FREE_NS_PER_WORD = 7.0
FREE_NS_PER_COLUMN_WORD = 4.0


#: What finding a deep circuit's support costs (:func:`support`), in nanoseconds a gate
#: target: its text, its tableau and its reference sample (measured at 1,000 qubits:
#: ``docs/engines.md``).
SUPPORT_NS_PER_TARGET = 500.0


def worth_finding(shots: int, records: int, targets: int) -> bool:
    """Whether finding the support of a circuit of ``records`` bits and ``targets`` gate
    targets may pay for itself over ``shots`` shots.

    It may when there are :data:`MIN_BITS` record bits at least, and the cheapest form
    of sampler's saving a shot against stim's, times the shots, is at least what finding
    the support costs.

    >>> worth_finding(100_000, 1000, 200_000), worth_finding(5000, 1000, 200_000)
    (True, False)
    """
    if shots * records < MIN_BITS:
        return False
    width = (records + 7) // 8
    floor = min(ROWS_NS_PER_ROW_BYTE * width, FREE_NS_PER_WORD * -(-width // 8))
    saved = STIM_NS_PER_BIT * records + STIM_NS_PER_TARGET * targets - floor
    return shots * saved >= SUPPORT_NS_PER_TARGET * targets


def shot_costs(targets: int, records: int, rank: int) -> dict[str, float]:
    """The estimated nanoseconds a shot of the three ways costs: ``stim`` (its frame
    sampler simulates every gate for every shot: ``targets`` gate targets), ``rows`` and
    ``free`` (the support's two forms, of ``rank`` dimensions) for ``records`` bits.

    >>> deep = shot_costs(150_000, 1000, 998)  # a deep random circuit: 2 free columns
    >>> ghz = shot_costs(2000, 1000, 1)
    >>> min(deep, key=deep.__getitem__), min(ghz, key=ghz.__getitem__)
    ('free', 'rows')
    """
    width = (records + 7) // 8
    words = -(-width // 8)
    return {
        "stim": STIM_NS_PER_BIT * records + STIM_NS_PER_TARGET * targets,
        "rows": ROWS_NS_PER_ROW_BYTE * max(rank, 1) * width,
        "free": words * (FREE_NS_PER_WORD + FREE_NS_PER_COLUMN_WORD * (records - rank)),
    }
