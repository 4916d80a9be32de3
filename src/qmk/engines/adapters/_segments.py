"""The base of the circuit-level adapters: QMK holds the state, the simulator runs segments.

A circuit-level simulator (qsim, Aer, Cirq, Lightning, Braket...) takes a circuit and
an initial state and returns the final state; it does not keep a state between calls
for QMK to measure, reset or snapshot. :class:`SegmentEngine` meets the whole
:class:`~qmk.engines.Engine` protocol on top of one such call:

- gates are recorded, not applied: :meth:`~SegmentEngine.apply` appends to the
  pending *segment*;
- anything that reads or changes the state outside a gate (probability, collapse,
  measure, reset, free, sample, snapshot) first *flushes*: the simulator evolves the
  held state through the pending segment (``_evolve``: start from a given state,
  return the state), and QMK keeps what it returns;
- measurement, collapse, reset and sampling are projections and draws on that held
  state, done here in numpy with the engine's one seeded RNG. So the same seed gives
  the same outcomes on every adapter, and the draws are QMK's, not the simulator's. A
  Pauli drawn by :meth:`~SegmentEngine.apply_pauli_channel` is applied here too (a
  Pauli is a permutation and signs: no simulator call per noise draw).

A program whose measurements are all terminal is one simulator call from ``|0>`` and
a sample; each mid-circuit measurement adds one call. Subclasses say how to evolve
(``_evolve``) and whether the held state is a vector or a density matrix
(``density``). Axis ``k`` of the held state is the ``k``-th live qubit in allocation
order, axis 0 the most significant bit of the index (the order of
:data:`~qmk.engines.gates.GATES`' matrices); ``_evolve`` gets gates on those axes.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from qmk.engines.base import (
    IMPOSSIBLE,
    EngineError,
    GateEngine,
    check_basis,
    check_outcome,
    check_shots,
    check_snapshot,
    draw_pauli,
    generator_at,
    outcome_impossible,
)
from qmk.engines.gates import GATES, PAULIS
from qmk.engines.registry import DTYPE_OF, max_qubits, require
from qmk.engines.sampling import draw_indices

#: One gate of a segment: name, axes of the held state, parameters.
SegmentGate = tuple[str, tuple[int, ...], tuple[float, ...]]

_H = GATES["h"].matrix()
_S = GATES["s"].matrix()
_SDG = GATES["sdg"].matrix()
#: The unitary taking each basis' eigenstates to Z's (outcome kept).
_TO_Z = {"Z": np.eye(2, dtype=np.complex128), "X": _H, "Y": _H @ _SDG}


def one_probability(reduced: np.ndarray, basis: str) -> float:
    """The chance a qubit whose 2x2 reduced density matrix is ``reduced`` (trace need not
    be 1) reads 1 in ``basis`` (Z, X or Y), clipped to [0, 1].

    >>> one_probability(np.array([[0.5, 0.5], [0.5, 0.5]]), "X")  # |+>
    0.0
    """
    r = reduced
    trace = float(r[0, 0].real + r[1, 1].real)
    if basis == "Z":
        expectation = float(r[0, 0].real - r[1, 1].real)
    elif basis == "X":
        expectation = float(2 * r[0, 1].real)
    else:
        expectation = float(-2 * r[0, 1].imag)
    return min(max((1 - expectation / trace) / 2, 0.0), 1.0)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SegmentSnapshot:
    """A :class:`SegmentEngine`'s whole state: held state, pending segment, qubits, RNG."""

    state: np.ndarray
    order: tuple[int, ...]
    pending: tuple[SegmentGate, ...]
    free: tuple[int, ...]
    next_qubit: int
    rng: Mapping[str, Any]


class SegmentEngine(GateEngine):
    """A circuit-level simulator behind the engine protocol (see the module docstring).

    Args:
        seed: seeds the engine's one RNG (measurements, Pauli channels, samples).
        dtype: ``complex64`` or ``complex128`` where the simulator computes in both
            (default: its registry spec's first precision).
        max_bytes: memory cap for the state and one working copy (default
            ``$QMK_MAX_STATE_BYTES`` or 8 GiB), which sets :attr:`max_qubits`.

    Raises:
        EngineError: ``QE108 engine-unavailable`` when the simulator's package is not
            installed; ``QE105 engine-misuse`` for a dtype it does not compute in.
    """

    name: ClassVar[str] = ""
    #: True: the held state is a density matrix (``2**n`` square), not a vector.
    density: ClassVar[bool] = False

    def __init__(
        self, *, seed: int | None = None, dtype: Any = None, max_bytes: int | None = None
    ) -> None:
        entry = require(self.name)  # QE108 when the package is missing
        precision = _precision_of(dtype, entry.precisions, self.name)
        self._dtype = np.dtype(DTYPE_OF[precision])
        self._max_qubits = max_qubits(self.name, precision, max_bytes=max_bytes)
        self._rng = np.random.default_rng(seed)
        self._held = np.ones((1, 1) if self.density else (1,), dtype=self._dtype)
        #: Qubits allocated last and still in ``|0>``, not yet written into ``_held``
        #: (the held state is ``_held`` with that many ``|0>`` axes after it):
        #: :attr:`_state` writes them out where something reads the state, and a
        #: segment run from ``|0...0>`` asks the simulator to start there
        #: (:meth:`_evolve_from_zero`) with no state built or handed over at all.
        self._zeros = 0
        self._order: list[int] = []  # axis -> qubit
        self._pending: list[SegmentGate] = []  # gates on qubits (not axes)
        self._free_qubits: list[int] = []
        self._next_qubit = 0
        self._setup()

    def _setup(self) -> None:
        """Prepare the simulator (import it, build reusable objects)."""

    @property
    def _state(self) -> np.ndarray:
        """The held state, every live qubit written out (see ``_zeros``)."""
        if self._zeros:
            self._held = _with_zeros(self._held, self._zeros, density=self.density)
            self._zeros = 0
        return self._held

    @_state.setter
    def _state(self, state: np.ndarray) -> None:
        self._held = state
        self._zeros = 0

    def _evolve_from_zero(self, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        """The state after ``gates`` from ``|0...0>`` on ``n`` qubits (default: from
        that state built here; a simulator that starts there itself overrides this)."""
        return self._evolve(self._state, n, gates)

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        """The state after ``gates`` (on axes) from ``state`` (flat vector or square matrix)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ properties

    @property
    def max_qubits(self) -> int:
        """The most live qubits the memory cap allows."""
        return self._max_qubits

    @property
    def num_qubits(self) -> int:
        return len(self._order)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    # ------------------------------------------------------------------ protocol

    def allocate(self) -> int:
        """A fresh qubit in ``|0>``, the last axis of the held state."""
        if len(self._order) + 1 > self._max_qubits:
            raise EngineError.of(
                "engine-capacity",
                f"the {self.name} engine holds at most {self._max_qubits} qubits here "
                f"({self._dtype.name}{', density matrix' if self.density else ''}); free "
                "some, raise $QMK_MAX_STATE_BYTES, or let QMK choose an engine",
                qubits=len(self._order) + 1,
                capacity=self._max_qubits,
            )
        if self._free_qubits:
            qubit = heapq.heappop(self._free_qubits)
        else:
            qubit = self._next_qubit
            self._next_qubit += 1
        self._zeros += 1  # written out when something reads the state
        self._order.append(qubit)
        return qubit

    def free(self, qubit: int) -> None:
        """Measure ``qubit`` in Z (one RNG draw) and drop it from the held state."""
        axis = self._axis(qubit)
        self._flush()
        outcome = self._draw(axis, "Z")
        self._project(axis, outcome, "Z")
        n = len(self._order)
        left, right = 2**axis, 2 ** (n - axis - 1)
        if self.density:
            rho = self._state.reshape(left, 2, right, left, 2, right)
            self._state = np.ascontiguousarray(
                rho[:, outcome, :, :, outcome, :].reshape(left * right, left * right)
            )
        else:
            psi = self._state.reshape(left, 2, right)
            self._state = np.ascontiguousarray(psi[:, outcome, :].reshape(-1))
        del self._order[axis]
        heapq.heappush(self._free_qubits, qubit)

    def _check_qubit(self, qubit: Any) -> int:
        self._axis(qubit)
        return qubit

    def _apply_gate(self, gate: str, qubits: list[int], params: tuple[float, ...]) -> None:
        """Record a checked gate in the pending segment (it runs at the next flush)."""
        if gate != "i":
            self._pending.append((gate, tuple(qubits), params))

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """The probability that measuring ``qubit`` in ``basis`` gives 1."""
        axis = self._axis(qubit)
        check_basis(basis)
        self._flush()
        return self._p1(axis, basis)

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        """Project ``qubit`` onto ``outcome`` in ``basis`` and renormalise.

        Raises:
            EngineError: ``outcome-impossible`` (nothing changes) for an outcome of
                probability 0; ``engine-misuse`` for a bad qubit, outcome or basis.
        """
        axis = self._axis(qubit)
        check_basis(basis)
        outcome = check_outcome(outcome)
        self._flush()
        p1 = self._p1(axis, basis)
        chance = p1 if outcome else 1.0 - p1
        if chance <= IMPOSSIBLE:
            raise outcome_impossible(qubit, outcome, basis, chance)
        self._project(axis, outcome, basis)

    def measure(self, qubit: int, basis: str = "Z") -> int:
        """Measure with the RNG (one draw); the qubit stays, collapsed."""
        axis = self._axis(qubit)
        check_basis(basis)
        self._flush()
        outcome = self._draw(axis, basis)
        self._project(axis, outcome, basis)
        return outcome

    def reset(self, qubit: int) -> None:
        """Return ``qubit`` to ``|0>``: a Z measurement (one draw), then X if it gave 1."""
        axis = self._axis(qubit)
        self._flush()
        outcome = self._draw(axis, "Z")
        self._project(axis, outcome, "Z")
        if outcome:
            self._apply_local(axis, PAULIS["X"])

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        """Apply X, Y or Z with these probabilities (one RNG draw); returns which, or "I"."""
        axis = self._axis(qubit)
        chosen = draw_pauli(self._rng, px, py, pz)
        if chosen != "I":
            self._flush()
            self._apply_local(axis, PAULIS[chosen])
        return chosen

    def apply_kraus(self, qubit: int, operators: Sequence[np.ndarray]) -> None:
        """Apply the channel ``rho -> sum_k K rho K^dagger`` to ``qubit`` exactly (a
        mixture, not a draw: amplitude damping, depolarizing...). Density-matrix engines
        only.

        Raises:
            EngineError: ``QE110 operation-unsupported`` on a statevector engine;
                ``QE105 engine-misuse`` unless the operators are 2x2 and complete.
        """
        axis = self._axis(qubit)
        if not self.density:
            raise EngineError.of(
                "operation-unsupported",
                f"the {self.name} engine holds a state vector: a Kraus channel needs a "
                "density-matrix engine (aer-density-matrix, qutip)",
            )
        ks = [np.asarray(k, dtype=np.complex128) for k in operators]
        if not ks or any(k.shape != (2, 2) for k in ks):
            raise EngineError.of("engine-misuse", "Kraus operators are 2x2 matrices")
        if not np.allclose(sum(k.conj().T @ k for k in ks), np.eye(2), atol=1e-9):
            raise EngineError.of("engine-misuse", "Kraus operators must sum to the identity")
        self._flush()
        before = self._state
        mixed = np.zeros_like(before)
        for k in ks:
            self._state = before.copy()
            self._apply_local(axis, k)
            mixed += self._state
        self._state = mixed

    def snapshot(self) -> SegmentSnapshot:
        return SegmentSnapshot(
            state=self._state.copy(),
            order=tuple(self._order),
            pending=tuple(self._pending),
            free=tuple(self._free_qubits),
            next_qubit=self._next_qubit,
            rng=self._rng.bit_generator.state,
        )

    def restore(self, snapshot: SegmentSnapshot) -> None:
        snapshot = check_snapshot(snapshot, SegmentSnapshot, self.name)
        self._state = snapshot.state.copy()
        self._order = list(snapshot.order)
        self._pending = list(snapshot.pending)
        self._free_qubits = list(snapshot.free)
        self._next_qubit = snapshot.next_qubit
        self._rng = generator_at(snapshot.rng)

    @staticmethod
    def export_snapshot(snapshot: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``snapshot`` as plain data (JSON values and the held state) for a checkpoint."""
        snapshot = check_snapshot(snapshot, SegmentSnapshot, "segment")
        meta = {
            "order": list(snapshot.order),
            "pending": [[g, list(qs), list(ps)] for g, qs, ps in snapshot.pending],
            "free": list(snapshot.free),
            "next_qubit": snapshot.next_qubit,
            "rng": dict(snapshot.rng),
        }
        return meta, {"state": snapshot.state}

    @staticmethod
    def import_snapshot(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """The snapshot :meth:`export_snapshot` wrote as ``meta`` and ``arrays``."""
        return SegmentSnapshot(
            state=np.asarray(arrays["state"]),
            order=tuple(int(q) for q in meta["order"]),
            pending=tuple(
                (str(g), tuple(int(q) for q in qs), tuple(float(p) for p in ps))
                for g, qs, ps in meta["pending"]
            ),
            free=tuple(int(q) for q in meta["free"]),
            next_qubit=int(meta["next_qubit"]),
            rng=dict(meta["rng"]),
        )

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` Z outcomes of ``qubits`` drawn from the held state (which stays)."""
        axes = [self._axis(q) for q in qubits]
        if len(set(axes)) != len(axes):
            raise EngineError.of("engine-misuse", f"sample of repeated qubits {list(qubits)}")
        shots = check_shots(shots)
        out = np.zeros((shots, len(axes)), dtype=np.uint8)
        if not axes or not shots:
            return out
        self._flush()
        n = len(self._order)
        if not self.density and axes == list(range(n)):
            # the whole state in its own order: drawn from the amplitudes (no copy)
            drawn = self._draw_whole(shots)
        else:
            probs = self._diagonal().reshape((2,) * n)
            others = tuple(a for a in range(n) if a not in axes)
            marginal = probs.sum(axis=others) if others else probs
            kept = sorted(axes)
            marginal = np.transpose(marginal, [kept.index(a) for a in axes]).reshape(-1)
            drawn = draw_indices(self._rng, np.ascontiguousarray(marginal), shots)
        width = len(axes)
        for column in range(width):
            out[:, column] = (drawn >> (width - 1 - column)) & 1
        return out

    def _draw_whole(self, shots: int) -> np.ndarray:
        """``shots`` basis-state indices of the whole vector state, in its own order
        (a GPU engine overrides this to draw where its state is)."""
        return draw_indices(self._rng, self._state, shots, amplitudes=True)

    # ------------------------------------------------------------------ numpy on the state

    def _axis(self, qubit: int) -> int:
        try:
            return self._order.index(qubit)
        except ValueError:
            raise EngineError.of(
                "engine-misuse",
                f"qubit {qubit!r} is not live in this {self.name} engine (live: {self._order})",
                qubit=repr(qubit),
            ) from None

    def _at_zero(self) -> bool:
        """Whether the state is ``|0...0>`` with every live qubit still unwritten (a
        segment from it needs no state handed over)."""
        n = len(self._order)
        return bool(n) and self._zeros == n and self._held.size == 1 and self._held.flat[0] == 1

    def _take_pending(self) -> list[SegmentGate]:
        """The gates waiting to run, on axes (not qubits); none wait after."""
        axis = {q: a for a, q in enumerate(self._order)}
        gates = [(g, tuple(axis[q] for q in qs), p) for g, qs, p in self._pending]
        self._pending = []
        return gates

    def _flush(self) -> None:
        if not self._pending:
            return
        gates = self._take_pending()
        n = len(self._order)
        if self._at_zero():
            state = self._evolve_from_zero(n, gates)  # |0...0>: nothing to hand over
        else:
            state = self._evolve(self._state, n, gates)
        shape = (2**n, 2**n) if self.density else (2**n,)
        self._state = np.ascontiguousarray(np.asarray(state).reshape(shape), dtype=self._dtype)

    def _reduced(self, axis: int) -> np.ndarray:
        """The qubit's 2x2 reduced density matrix."""
        n = len(self._order)
        left, right = 2**axis, 2 ** (n - axis - 1)
        if self.density:
            rho = self._state.reshape(left, 2, right, left, 2, right)
            return np.einsum("aibajb->ij", rho).astype(np.complex128)
        # the two halves as contiguous complex128 rows, then three BLAS dot products:
        # r_ij = <half j|half i> (einsum here is much slower: docs/engines.md)
        halves = np.asarray(
            self._state.reshape(left, 2, right).transpose(1, 0, 2), dtype=np.complex128
        ).reshape(2, -1)
        r01 = np.vdot(halves[1], halves[0])
        return np.array(
            [
                [np.vdot(halves[0], halves[0]), r01],
                [np.conj(r01), np.vdot(halves[1], halves[1])],
            ]
        )

    def _p1(self, axis: int, basis: str) -> float:
        return one_probability(self._reduced(axis), basis)

    def _draw(self, axis: int, basis: str) -> int:
        p1 = self._p1(axis, basis)
        return int(float(self._rng.random()) < p1)

    def _apply_local(self, axis: int, matrix: np.ndarray) -> None:
        """Apply a 2x2 matrix (not necessarily unitary) to one axis, in numpy."""
        n = len(self._order)
        left, right = 2**axis, 2 ** (n - axis - 1)
        m = matrix.astype(self._dtype)
        if self.density:
            size = 2**n
            rho = self._state.reshape(left, 2, right, size)
            rho = np.einsum("ij,ajbk->aibk", m, rho).reshape(left, 2, right, left, 2, right)
            rho = np.einsum("ij,abcdjf->abcdif", m.conj(), rho)
            self._state = np.ascontiguousarray(rho.reshape(size, size))
        else:
            # in place, half by half (a diagonal matrix, as a Z projector, scales each half)
            if not self._state.flags.writeable:  # a simulator's own buffer
                self._state = self._state.copy()
            psi = self._state.reshape(left, 2, right)
            zero, one = psi[:, 0, :], psi[:, 1, :]
            if m[0, 1] == 0 and m[1, 0] == 0:
                zero *= m[0, 0]
                one *= m[1, 1]
            else:
                new_zero = m[0, 0] * zero + m[0, 1] * one
                one *= m[1, 1]
                one += m[1, 0] * zero
                zero[...] = new_zero

    def _project(self, axis: int, outcome: int, basis: str) -> None:
        to_z = _TO_Z[basis]
        keep = np.zeros((2, 2), dtype=np.complex128)
        keep[outcome, outcome] = 1
        self._apply_local(axis, to_z.conj().T @ keep @ to_z)
        if self.density:
            trace = float(np.trace(self._state).real)
            self._state /= trace
        else:
            norm = float(np.linalg.norm(self._state))
            self._state /= norm

    def _diagonal(self) -> np.ndarray:
        """Probabilities of every basis state (float64), unnormalized."""
        if self.density:
            return np.clip(np.diagonal(self._state).real.astype(np.float64), 0.0, None)
        state = self._state
        return np.square(state.real, dtype=np.float64) + np.square(state.imag, dtype=np.float64)


def _with_zeros(held: np.ndarray, zeros: int, *, density: bool) -> np.ndarray:
    """``held`` with ``zeros`` axes in ``|0>`` after its own: each element moves to the
    index with that many zero bits after its own (one new array, every other entry 0)."""
    step = 1 << zeros
    if density:
        size = held.shape[0] * step
        out = np.zeros((size, size), dtype=held.dtype)
        out[::step, ::step] = held
    else:
        out = np.zeros(held.size * step, dtype=held.dtype)
        out[::step] = held
    return out


def _precision_of(dtype: Any, precisions: tuple[str, ...], name: str) -> str:
    if dtype is None:
        return precisions[0]
    try:
        wanted = np.dtype(dtype).name
    except TypeError:
        wanted = str(dtype)
    for precision in precisions:
        if DTYPE_OF.get(precision) == wanted:
            return precision
    allowed = ", ".join(DTYPE_OF[p] for p in precisions if p in DTYPE_OF)
    raise EngineError.of(
        "engine-misuse",
        f"the {name} engine computes in {allowed}, not {dtype!r}",
        dtype=str(dtype),
    )


def dense_gate(name: str, params: Sequence[float]) -> np.ndarray:
    """The gate's matrix from :data:`~qmk.engines.gates.GATES` (gate qubit 0 most significant)."""
    return GATES[name].matrix(tuple(params))


__all__ = ["SegmentEngine", "SegmentGate", "SegmentSnapshot", "dense_gate"]
