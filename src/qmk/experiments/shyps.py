"""SHYPS codes: the subsystem hypergraph product of two simplex codes, and their memory circuit.

Malcolm et al., "Computing Efficiently in QLDPC Codes" (arXiv:2502.07150), build SHYPS
codes as Li and Yoder's subsystem hypergraph product (arXiv:2002.06257) of a classical
simplex code with itself. The simplex code ``[2^r - 1, r, 2^(r-1)]`` is cyclic; its
check matrix ``H`` here is the ``(2^r - 1)``-square circulant of a primitive trinomial
(``1 + x + x^3`` at r = 3), so every check has weight 3 and ``ker H`` is the simplex
code. On ``n = (2^r - 1)^2`` qubits in a square, (a, b):

- the X gauges are ``H ⊗ I`` (weight 3, down a column), the Z gauges ``I ⊗ H`` (along
  a row);
- the stabilizers are ``H ⊗ G`` (X) and ``G ⊗ H`` (Z), with ``G`` the simplex code's
  generator: each is the product of ``2^(r-1)`` gauges;
- ``k = r^2`` logical qubits and distance ``2^(r-1)``: ``[[49, 9, 4]]`` at r = 3.

:func:`shyps_code` builds the matrices and :meth:`SubsystemCode.distance` finds the
distance by exhaustive search; :func:`shyps_memory_circuit` is its memory-Z experiment,
one ancilla per gauge, as :mod:`qmk.experiments.circuits` builds Bacon-Shor's.

>>> code = shyps_code(3)
>>> code.n, code.k, code.gauge_qubits
(49, 9, 16)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qmk.qec.errors import QECError

if TYPE_CHECKING:
    import stim

    from qmk.experiments.layers import CircuitNoise

#: Exponents of a primitive trinomial ``1 + x^a + x^r`` for each r: the checks of weight 3.
TRINOMIALS = {3: (0, 1, 3), 4: (0, 1, 4), 5: (0, 2, 5)}


def simplex_checks(r: int) -> np.ndarray:
    """The ``(2^r - 1)``-square circulant check matrix of the simplex code (rows of weight 3).

    >>> simplex_checks(3)[0].tolist()
    [1, 1, 0, 1, 0, 0, 0]

    Raises:
        QECError: ``QC103`` for an r without a trinomial in :data:`TRINOMIALS`.
    """
    if r not in TRINOMIALS:
        raise QECError.of(
            "bad-parameter", f"SHYPS blocks are built for r in {sorted(TRINOMIALS)}, got {r!r}"
        )
    m = 2**r - 1
    h = np.zeros((m, m), dtype=np.uint8)
    for i in range(m):
        for e in TRINOMIALS[r]:
            h[i, (i + e) % m] = 1
    return h


def rank2(matrix: np.ndarray) -> int:
    """The rank of a 0/1 matrix over GF(2)."""
    return len(_reduced(matrix))


def _reduced(matrix: np.ndarray) -> np.ndarray:
    """The nonzero rows of ``matrix``'s reduced row echelon form over GF(2)."""
    a = np.array(matrix, dtype=np.uint8) % 2
    row = 0
    for col in range(a.shape[1]):
        pivot = next((i for i in range(row, a.shape[0]) if a[i, col]), None)
        if pivot is None:
            continue
        a[[row, pivot]] = a[[pivot, row]]
        others = np.nonzero(a[:, col])[0]
        others = others[others != row]
        a[others] ^= a[row]
        row += 1
        if row == a.shape[0]:
            break
    return a[:row]


def nullspace2(matrix: np.ndarray) -> np.ndarray:
    """A basis (rows) of the vectors ``v`` with ``matrix @ v = 0`` over GF(2)."""
    reduced = _reduced(matrix)
    n = matrix.shape[1]
    pivots = [int(np.argmax(r)) for r in reduced]
    free = [c for c in range(n) if c not in pivots]
    basis = np.zeros((len(free), n), dtype=np.uint8)
    for j, f in enumerate(free):
        basis[j, f] = 1
        for r, p in zip(reduced, pivots, strict=True):
            basis[j, p] = r[f]
    return basis


def _complement(space: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Rows of ``space`` that extend ``sub``'s rows to a basis of ``space``'s span."""
    chosen: list[np.ndarray] = []
    rank = rank2(sub)
    for v in space:
        if rank2(np.vstack([sub, *chosen, v])) > rank + len(chosen):
            chosen.append(v)
    return np.array(chosen, dtype=np.uint8).reshape(len(chosen), space.shape[1])


@dataclass(frozen=True, slots=True, eq=False)
class SubsystemCode:
    """A CSS subsystem code: its gauges, stabilizers and bare logicals (rows over qubits).

    ``logical_x[i]`` anticommutes with ``logical_z[j]`` exactly when ``i == j``.
    """

    gauge_x: np.ndarray
    gauge_z: np.ndarray
    stabilizer_x: np.ndarray
    stabilizer_z: np.ndarray
    logical_x: np.ndarray
    logical_z: np.ndarray

    @property
    def n(self) -> int:
        """Physical qubits."""
        return int(self.gauge_x.shape[1])

    @property
    def k(self) -> int:
        """Logical qubits."""
        return len(self.logical_z)

    @property
    def gauge_qubits(self) -> int:
        """Gauge qubits: half the gauge group's rank beyond the stabilizers'."""
        gauges = rank2(self.gauge_x) + rank2(self.gauge_z)
        return (gauges - rank2(self.stabilizer_x) - rank2(self.stabilizer_z)) // 2

    def distance(self, max_weight: int) -> int | None:
        """The least weight of a dressed logical of X or Z type, searched exhaustively up
        to ``max_weight`` (None: none that light).

        A Z operator is a nontrivial dressed logical when it commutes with every X
        stabilizer and anticommutes with some bare X logical (what commutes with both is
        in the gauge group); likewise for X.
        """
        found = [
            _lightest(self.stabilizer_x, self.logical_x, max_weight),
            _lightest(self.stabilizer_z, self.logical_z, max_weight),
        ]
        weights = [w for w in found if w is not None]
        return min(weights) if weights else None


def _lightest(stabilizers: np.ndarray, logicals: np.ndarray, max_weight: int) -> int | None:
    """The least weight of an operator that commutes with ``stabilizers`` and not with
    every row of ``logicals`` (columns packed into integers, combinations XORed)."""
    rows = np.vstack([stabilizers, logicals])
    weights = 1 << np.arange(len(rows), dtype=np.uint64)
    column = (rows.astype(np.uint64) * weights[:, None]).sum(axis=0, dtype=np.uint64)
    stabilizer_bits = np.uint64((1 << len(stabilizers)) - 1)
    for w in range(1, max_weight + 1):
        for chunk in _chunks(itertools.combinations(range(len(column)), w), 1 << 16):
            syndrome = np.bitwise_xor.reduce(column[chunk], axis=1)
            if np.any(((syndrome & stabilizer_bits) == 0) & (syndrome != 0)):
                return w
    return None


def _chunks(combos: itertools.combinations[tuple[int, ...]], size: int) -> list[np.ndarray]:
    out = []
    while block := list(itertools.islice(combos, size)):
        out.append(np.array(block, dtype=np.intp))
    return out


def shyps_code(r: int) -> SubsystemCode:
    """The SHYPS code of the simplex code ``[2^r - 1, r, 2^(r-1)]`` (module docstring).

    Raises:
        QECError: ``QC103`` for an r without a trinomial.
    """
    h = simplex_checks(r)
    g = _reduced(nullspace2(h))  # the simplex code's generator: r rows
    m = len(h)
    eye = np.eye(m, dtype=np.uint8)
    gauge_x, gauge_z = np.kron(h, eye), np.kron(eye, h)
    stabilizer_x, stabilizer_z = np.kron(h, g) % 2, np.kron(g, h) % 2
    bare_x = _complement(nullspace2(gauge_z), stabilizer_x)
    bare_z = _complement(nullspace2(gauge_x), stabilizer_z)
    pairing = (bare_x.astype(np.int64) @ bare_z.T.astype(np.int64)) % 2
    logical_z = (_inverse2(pairing).T.astype(np.int64) @ bare_z.astype(np.int64)) % 2
    return SubsystemCode(
        gauge_x=gauge_x,
        gauge_z=gauge_z,
        stabilizer_x=stabilizer_x,
        stabilizer_z=stabilizer_z,
        logical_x=bare_x,
        logical_z=logical_z.astype(np.uint8),
    )


def _inverse2(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a square 0/1 matrix over GF(2)."""
    size = len(matrix)
    reduced = _reduced(np.hstack([matrix % 2, np.eye(size, dtype=np.uint8)]))
    if len(reduced) < size or not np.array_equal(reduced[:, :size], np.eye(size)):
        raise ValueError("the matrix is singular over GF(2)")
    return reduced[:, size:]


def shyps_memory_circuit(r: int, rounds: int, noise: CircuitNoise) -> stim.Circuit:
    """The memory-Z experiment of the SHYPS code of ``r`` over ``rounds`` rounds.

    Data start in ``|0>``. Each round measures the X gauges (an ancilla each: H, three
    CNOT layers, H, measure) then the Z gauges (three CNOT layers, measure); a layer
    touches each data qubit once, since the circulant's k-th entries of its rows are a
    permutation. A detector compares each Z stabilizer (``G ⊗ H``: the product of
    ``2^(r-1)`` Z gauges) with the previous round's, the first round with +1, the end
    with the data's final Z measurements; the X gauges carry no detector (memory-Z).
    The observables are the ``r^2`` bare logical Zs, read from the final measurements.
    """
    from qmk.experiments.layers import NoisyCircuit

    code = shyps_code(r)
    h = simplex_checks(r)
    g = _reduced(nullspace2(h))
    m = len(h)
    n = m * m
    data = list(range(n))
    x_anc = list(range(n, 2 * n))
    z_anc = list(range(2 * n, 3 * n))
    supports = [np.nonzero(row)[0].tolist() for row in h]  # sorted: [i, i+a, i+r] mod m
    b = NoisyCircuit(3 * n, noise)
    for a in range(m):
        for c in range(m):
            b.coords(a * m + c, (2 * c, 2 * a))
    b.reset([*data, *x_anc, *z_anc])
    b.end_layer([*data, *x_anc, *z_anc])
    # X gauge (i, c) acts on (a, c) for a in row i; Z gauge (a, i) on (a, c) for c in row i.
    x_targets = [[a * m + c for a in supports[i]] for i in range(m) for c in range(m)]
    z_targets = [[a * m + c for c in supports[i]] for a in range(m) for i in range(m)]
    stabilizers = [
        [a * m + i for a in np.nonzero(word)[0].tolist()] for word in g for i in range(m)
    ]
    previous: list[list[int]] = []
    for t in range(rounds):
        b.data_noise(data)
        b.h(x_anc)
        b.end_layer(x_anc)
        for layer in range(3):
            pairs = [(anc, qs[layer]) for anc, qs in zip(x_anc, x_targets, strict=True)]
            b.cx(pairs)
            b.end_layer([q for pair in pairs for q in pair])
        b.h(x_anc)
        b.end_layer(x_anc)
        b.measure(x_anc, reset=True)
        b.end_layer(x_anc)
        for layer in range(3):
            pairs = [(qs[layer], anc) for anc, qs in zip(z_anc, z_targets, strict=True)]
            b.cx(pairs)
            b.end_layer([q for pair in pairs for q in pair])
        records = b.measure(z_anc, reset=True)
        products = [[records[j] for j in gauges] for gauges in stabilizers]
        if t > 0:
            b.shift_time()
        for s, recs in enumerate(products):
            b.detector(recs + (previous[s] if t > 0 else []), (s, 0, 0))
        previous = products
        b.end_layer(z_anc)
    final = b.measure(data, reset=False)
    stabilizer_z = code.stabilizer_z
    for s, row in enumerate(stabilizer_z):
        support = np.nonzero(row)[0].tolist()
        b.detector([final[q] for q in support] + previous[s], (s, 0, 1))
    for index, row in enumerate(code.logical_z):
        b.observable((final[q] for q in np.nonzero(row)[0].tolist()), index)
    return b.circuit
