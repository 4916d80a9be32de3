"""A noisy circuit's exact density matrix, sampled in bulk (the statevector's batch capability).

A small circuit whose noise strikes many shots differently costs a trajectory per
distinct error pattern; its density matrix costs one pass over ``4**n`` entries per
fused block, whatever the shots and the noise. So where the router prices it cheaper
(:attr:`qmk.engines.registry.EngineSpec.density`), the executor lowers the program with
its noise as channels (:func:`qmk.execution.batch.lower`, ``channels=True``) and the
statevector engine compiles it here (:func:`compile_density`), once.

The matrix ``rho`` of ``n`` qubits is held as a vector of ``2n`` bits, ``rho[r, c]`` at
``r * 2**n + c``: qubit ``q``'s column bit is bit ``q``, its row bit ``n + q``. Then a gate
``U`` is ``U`` on the row bits and ``conj(U)`` on the column bits. A Pauli channel is the
superoperator ``sum_P p_P kron(P, conj(P))`` on a qubit's row and column bits. A reset is
the map that moves ``rho[1, 1]`` onto ``rho[0, 0]`` and clears the rest. All of them are
fused into blocks (:mod:`qmk.engines.fusion`) and applied by the statevector engine's
kernels (:mod:`qmk.engines.kernels`, which take any matrix). The measurements, each
after every gate on its qubit, are sampled from the diagonal at the end
(:func:`qmk.engines.sampling.draw_indices`). The measured qubits' joint distribution is
exact, so the shots are those of the noisy circuit.

A circuit this does not hold exactly is not compiled (:func:`why_not`): feed-forward,
a qubit touched after its measurement, a product measurement, error sites or heralds
(noise the caller draws or counts per shot). Nor is a circuit without noise (one pure
state, which the statevector samples at ``2**n``) or without a measurement.

>>> from qmk.engines.batch import BatchCircuit, Instruction, Kind
>>> noisy = BatchCircuit(num_qubits=1, instructions=(
...     Instruction(kind=Kind.PAULI_CHANNEL, qubits=(0,), probs=(0.25, 0.0, 0.0)),
...     Instruction(kind=Kind.MEASURE, qubits=(0,)),
... ))
>>> sampler = compile_density(noisy)
>>> sampler.probabilities().round(6).tolist()
[0.75, 0.25]
>>> bits, _ = sampler.sample(4000, 7, (0,), ())
>>> 900 < int(bits.sum()) < 1100
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from qmk.engines import fusion
from qmk.engines.base import EngineError
from qmk.engines.batch import (
    PAULI_PAIRS,
    BatchCircuit,
    Errors,
    Instruction,
    Kind,
    check_errors,
    count_ones,
    unpack_columns,
)
from qmk.engines.gates import GATES, PAULIS, TO_Z
from qmk.engines.sampling import draw_indices

#: The widest fused block: a two-qubit gate with its channels is four bits wide.
MAX_WIDTH = 4

#: The reset superoperator on a qubit's (row, column) bits: ``rho[0,0] + rho[1,1]`` to
#: ``rho[0,0]``, every other entry cleared.
_RESET = np.zeros((4, 4), dtype=np.complex128)
_RESET[0, 0] = _RESET[0, 3] = 1.0

#: A gate on the vector of ``rho``: its bits (the first the most significant of the
#: matrix's index, as :mod:`qmk.engines.fusion` takes them) and its matrix.
_Op = tuple[tuple[int, ...], np.ndarray]
#: A measured qubit and whether its recorded bit is inverted.
_Record = tuple[int, bool]


def why_not(circuit: BatchCircuit) -> str | None:
    """Why :func:`compile_density` does not compile ``circuit``, or None when it does
    (its structure read alone: no matrix is made)."""
    found = _lower(circuit, build=False)
    return found if isinstance(found, str) else None


def compile_density(circuit: BatchCircuit) -> DensitySampler | None:
    """``circuit`` as a density matrix sampled in bulk, or None (:func:`why_not` says why)."""
    found = _lower(circuit, build=True)
    if isinstance(found, str):
        return None
    ops, measured = found
    return DensitySampler(circuit.num_qubits, ops, measured)


@functools.lru_cache(maxsize=256)
def _superoperator(probs: tuple[float, ...], letters: tuple[str, ...]) -> np.ndarray:
    """``sum_P p_P kron(P, conj(P))`` over the Paulis ``letters`` (``I`` with the rest);
    kept, as a program's channels share a few rates."""
    size = len(letters[0])
    identity = 1.0 - float(sum(probs))
    out = identity * np.eye(4**size, dtype=np.complex128)
    for p, letter in zip(probs, letters, strict=True):
        if p:
            pauli = PAULIS[letter[0]]
            for more in letter[1:]:
                pauli = np.kron(pauli, PAULIS[more])
            out += p * _doubled(pauli)
    return out


def _doubled(u: np.ndarray) -> np.ndarray:
    """``kron(u, conj(u))``: ``u`` on the row bits and ``conj(u)`` on the column bits, as
    one matrix (an outer product: a few microseconds, where ``np.kron`` takes tens)."""
    d = len(u)
    return np.multiply.outer(u, u.conj()).transpose(0, 2, 1, 3).reshape(d * d, d * d)


def _lower(circuit: BatchCircuit, *, build: bool) -> tuple[list[_Op], list[_Record]] | str:
    """The ops on ``rho``'s vector (none unless ``build``) and the measured ``(qubit,
    inverted)`` in record order, or why the circuit is not held exactly."""
    reading = _Reading(circuit.num_qubits, build)
    for at, instruction in enumerate(circuit.instructions):
        refusal = reading.refusal(instruction)
        if refusal is not None:
            where = f"instruction #{at} ({instruction.kind.value} on {list(instruction.qubits)})"
            return f"{where}: {refusal}"
        reading.read(instruction)
    if not reading.noisy:
        return "no noise: one pure state, sampled as a state vector"
    if not reading.records:
        return "nothing measured: no record to sample"
    return reading.ops, reading.records


class _Reading:
    """A circuit read in order into ops on ``rho``'s vector: which qubits are measured
    (and so untouchable), which left ``|0>``, and the ops so far (made only when
    ``build``: a check needs the structure alone)."""

    def __init__(self, n: int, build: bool) -> None:
        self.n = n
        self.build = build
        self.ops: list[_Op] = []
        self.records: list[_Record] = []
        self.measured: set[int] = set()
        self.touched: set[int] = set()  # qubits no longer in |0>
        self.noisy = False
        self._last: dict[int, int] = {}  # bit -> the op that touched it last

    def refusal(self, instruction: Instruction) -> str | None:
        """Why ``instruction``, read next, is not held exactly (None: it is)."""
        kind = instruction.kind
        if kind in (Kind.ERROR_SITE, Kind.HERALDED_PAULI_CHANNEL):
            return "its errors are drawn per shot, not held in a density matrix"
        if kind is Kind.MEASURE_PRODUCT:
            return "a product measurement"
        if kind is Kind.GATE and instruction.controls:
            return "feed-forward"
        if kind in (Kind.PAULI_CHANNEL, Kind.PAULI_CHANNEL_2):
            return None  # a Pauli after a qubit's measurement changes no record
        seen = [q in self.measured for q in instruction.qubits]
        if any(seen) and not (kind is Kind.GATE and all(seen)):
            return "a qubit measured before"
        return None

    def read(self, instruction: Instruction) -> None:
        """Add ``instruction`` (one :meth:`refusal` passed)."""
        kind, qubits = instruction.kind, instruction.qubits
        if kind in (Kind.PAULI_CHANNEL, Kind.PAULI_CHANNEL_2):
            keep = tuple(q not in self.measured for q in qubits)
            probs, letters = _marginal(instruction, keep)
            kept = [q for q, k in zip(qubits, keep, strict=True) if k]
            if kept and any(probs):
                self.noisy = True
                self.touched.update(kept)
                if self.build:
                    self.put(kept, _superoperator(probs, letters))
        elif kind is Kind.GATE and not self.measured.isdisjoint(qubits):
            pass  # on measured qubits alone: nothing recorded can see it
        elif kind is Kind.GATE:
            self.gate(instruction.gate, qubits, instruction.params)
        elif kind is Kind.RESET:
            for q in qubits:
                if q in self.touched:
                    self.touched.discard(q)
                    if self.build:
                        self.put((q,), _RESET)
        else:  # MEASURE
            (q,) = qubits
            for name in TO_Z[instruction.basis]:
                self.gate(name, (q,))
            self.measured.add(q)
            self.records.append((q, instruction.invert))

    def gate(self, name: str, qubits: tuple[int, ...], params: Sequence[float] = ()) -> None:
        self.touched.update(qubits)
        if self.build:
            self.put(qubits, _doubled(GATES[name].matrix(params)))

    def put(self, qubits: Sequence[int], matrix: np.ndarray) -> None:
        """``matrix`` on the row bits, then the column bits, of ``qubits``: multiplied
        into the op before when that op is the last on each of them (a qubit's gates and
        channels become one op; the fuser's work is per op)."""
        n, ops, last = self.n, self.ops, self._last
        bits = (*(n + q for q in qubits), *qubits)
        before = {last.get(b, -1) for b in bits}
        if len(before) == 1 and (at := before.pop()) >= 0 and ops[at][0] == bits:
            ops[at] = (bits, matrix @ ops[at][1])
            return
        for b in bits:
            last[b] = len(ops)
        ops.append((bits, matrix))


def _marginal(
    instruction: Instruction, kept: tuple[bool, ...]
) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """A channel's Paulis on its ``kept`` qubits alone (the others' letters summed over),
    without the identity."""
    return _merged(instruction.kind is Kind.PAULI_CHANNEL, instruction.probs, kept)


@functools.lru_cache(maxsize=1024)
def _merged(
    single: bool, probs: tuple[float, ...], kept: tuple[bool, ...]
) -> tuple[tuple[float, ...], tuple[str, ...]]:
    letters = ("X", "Y", "Z") if single else PAULI_PAIRS
    merged: dict[str, float] = {}
    for p, letter in zip(probs, letters, strict=True):
        mine = "".join(c for c, keep in zip(letter, kept, strict=True) if keep)
        if mine and set(mine) != {"I"}:
            merged[mine] = merged.get(mine, 0.0) + p
    return tuple(merged.values()), tuple(merged)


class DensitySampler:
    """A compiled circuit (:class:`~qmk.engines.batch.BatchSampler`): its fused blocks,
    applied once, at the first draw, to ``|0><0|``; every draw samples the diagonal.

    Args:
        num_qubits: the circuit's qubits ``n`` (``rho`` holds ``4**n`` entries).
        ops: the gates on ``rho``'s vector, in order (see the module docstring).
        records: the measured ``(qubit, inverted)``, in record order.
    """

    mode = "density-matrix"
    num_sites = 0

    def __init__(
        self, num_qubits: int, ops: Sequence[_Op], records: Sequence[tuple[int, bool]]
    ) -> None:
        self.num_qubits = num_qubits
        blocks = fusion.plan(ops, max_width=MAX_WIDTH)
        #: The blocks as the kernels take them: matrix, its bits (least significant first).
        self.blocks = tuple((b.matrix, tuple(reversed(b.qubits)), False) for b in blocks)
        self.records = tuple(records)
        self._probs: np.ndarray | None = None

    def density_matrix(self) -> np.ndarray:
        """``rho`` (``2**n`` square; qubit ``q`` bit ``q`` of an index), evolved now."""
        from qmk.engines import kernels  # (the compiled kernels: loaded at the first run)

        n = self.num_qubits
        rho = np.zeros(4**n, dtype=np.complex128)
        rho[0] = 1.0
        kernels.apply_blocks(rho, self.blocks, kernels=kernels.default_kernels())
        return rho.reshape(2**n, 2**n)

    def probabilities(self) -> np.ndarray:
        """The measured qubits' joint distribution: entry ``i`` for record ``j``'s qubit
        reading bit ``j`` of ``i`` (before its inversion). Found once."""
        if self._probs is None:
            n = self.num_qubits
            diagonal = np.clip(np.diagonal(self.density_matrix()).real, 0.0, None)
            # axis a of the tensor is qubit n - 1 - a; the kept axes go in record order,
            # record j's last (the least significant bit of the index is record 0)
            tensor = diagonal.reshape((2,) * n) if n else diagonal
            axes = [n - 1 - q for q, _ in reversed(self.records)]
            others = tuple(a for a in range(n) if a not in axes)
            marginal = tensor.sum(axis=others) if others else tensor
            order = sorted(axes)
            probs = np.transpose(marginal, [order.index(a) for a in axes]).reshape(-1)
            self._probs = np.ascontiguousarray(probs / probs.sum())
        return self._probs

    def sample_packed(self, shots: int, seed: int) -> np.ndarray:
        """``shots`` bit-packed rows of the records (see the protocol)."""
        width = len(self.records)
        rng = np.random.default_rng(seed)
        index = draw_indices(rng, self.probabilities(), shots) if width else None
        bits = np.zeros((shots, width), dtype=np.uint8)
        for j, (_, inverted) in enumerate(self.records):
            assert index is not None
            bits[:, j] = ((index >> j) & 1) ^ int(inverted)
        return np.packbits(bits, axis=1, bitorder="little")

    def sample(
        self,
        shots: int,
        seed: int,
        columns: tuple[int | None, ...],
        tallied: tuple[int, ...],
        errors: Errors | None = None,
    ) -> tuple[np.ndarray, int]:
        """See :meth:`~qmk.engines.batch.BatchSampler.sample`: no error site to strike.

        Raises:
            EngineError: ``QE105`` for ``errors`` that name any site.
        """
        if errors is not None:
            check_errors(errors, 0, shots)
        packed = self.sample_packed(shots, seed)
        return unpack_columns(packed, columns), count_ones(packed, tallied)

    def flips(self, sites: np.ndarray) -> np.ndarray:
        """None to find: the circuit has no error site.

        Raises:
            EngineError: ``QE105`` for any site.
        """
        if len(sites):
            raise EngineError.of("engine-misuse", "a density matrix's circuit has no error site")
        return np.zeros((0, (len(self.records) + 7) // 8), dtype=np.uint8)


__all__ = ["MAX_WIDTH", "DensitySampler", "compile_density", "why_not"]
