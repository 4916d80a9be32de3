"""Qiskit Aer behind the engine protocol: statevector, density_matrix, matrix_product_state.

- :class:`AerStatevectorEngine` and :class:`AerDensityMatrixEngine` are
  :class:`~qmk.engines.adapters._segments.SegmentEngine`\\ s: QMK holds the state
  between calls and Aer evolves each segment from it (``set_statevector`` /
  ``set_density_matrix``, then ``save_statevector`` / ``save_density_matrix``), in
  double or single precision. Aer orders qubits little-endian; the adapter maps QMK's
  axes (axis 0 most significant) onto Aer qubit ``n - 1 - axis``, so the amplitudes'
  index is the same integer on both sides.
- :class:`AerMPSEngine` runs Aer's ``matrix_product_state`` method for many qubits at
  low entanglement. QMK holds the matrix product state between calls (in Aer's
  canonical form) and Aer evolves each segment from it (``set_matrix_product_state``,
  the gates, ``save_matrix_product_state``). Measurement, collapse, reset and drawn
  Paulis are local operations on the held state followed by a sweep back to canonical
  form (:func:`canonical`). So it keeps the whole engine contract, mid-circuit
  measurement included. A freed qubit stays as an idle site (its index is not reused).

Install with ``pip install 'quantum-microkernel[aer]'``.

>>> import pytest; _ = pytest.importorskip("qiskit_aer")
>>> engine = AerStatevectorEngine(seed=1)
>>> a, b = engine.allocate(), engine.allocate()
>>> engine.apply("h", [a]); engine.apply("cx", [a, b])
>>> round(engine.probability(b), 12), round(engine.probability(b, "X"), 12)
(0.5, 0.5)
>>> wide = AerMPSEngine(seed=2)
>>> qs = [wide.allocate() for _ in range(60)]
>>> wide.apply("h", [qs[0]])
>>> for c, t in zip(qs, qs[1:]): wide.apply("cx", [c, t])
>>> sorted(set(wide.sample(qs, 20).sum(axis=1).tolist()))
[0, 60]
>>> middle = wide.measure(qs[30])  # mid-circuit: the other 59 follow
>>> {wide.probability(q) for q in qs} == {float(middle)}
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.adapters._segments import (
    SegmentEngine,
    SegmentGate,
    one_probability,
)
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
    rng_state,
)
from qmk.engines.gates import GATES
from qmk.engines.registry import max_qubits, require


def build_circuit(n: int, gates: Sequence[SegmentGate]) -> Any:
    """A Qiskit circuit of engine gates on axes (axis ``a`` is Aer qubit ``n - 1 - a``):
    each gate the instruction its record names in Qiskit, else its matrix (``unitary``)."""
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(n)
    for name, axes, params in gates:
        qs = [n - 1 - a for a in axes]
        spelled = GATES[name].names.first("qiskit")
        if name == "ccz":  # not every Aer method has ccz: H on the target around ccx
            circuit.h(qs[2])
            circuit.ccx(qs[0], qs[1], qs[2])
            circuit.h(qs[2])
        elif spelled is None:  # its first qubit the matrix's most significant bit
            circuit.unitary(GATES[name].matrix(params), list(reversed(qs)))
        else:
            getattr(circuit, spelled)(*params, *qs)
    return circuit


def _simulator(method: str, precision: str) -> Any:
    from qiskit_aer import AerSimulator

    # Truncation (dropping qubits a circuit's results do not read) is off: with it, Aer
    # 0.18 reads save_expectation_value(Y) on a qubit after a cx whose target it
    # dropped as 0 (cx(3,1); rx(t,3) on 4 qubits: <Y3> is -sin t, not 0).
    return AerSimulator(
        method=method, precision=precision, max_parallel_threads=0, enable_truncation=False
    )


class AerStatevectorEngine(SegmentEngine):
    """Aer's statevector method (see the module docstring)."""

    name: ClassVar[str] = defaults.AER_STATEVECTOR
    _method: ClassVar[str] = "statevector"

    def _setup(self) -> None:
        import qiskit_aer  # noqa: F401  (registers set_/save_ instructions on QuantumCircuit)

        precision = "single" if self._dtype == np.complex64 else "double"
        self._simulator = _simulator(self._method, precision)

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        from qiskit import QuantumCircuit

        circuit = QuantumCircuit(n)
        self._prepare(circuit, state, n)
        circuit.compose(build_circuit(n, gates), inplace=True)
        self._save(circuit)
        result = self._simulator.run(circuit, shots=1).result()
        if not result.success:  # pragma: no cover - Aer reports, it does not raise
            raise EngineError.of("engine-misuse", f"Aer failed: {result.status}")
        return self._read(result.data(0))

    def _prepare(self, circuit: Any, state: np.ndarray, n: int) -> None:
        from qiskit.quantum_info import Statevector

        circuit.set_statevector(Statevector(state.astype(np.complex128)))

    def _save(self, circuit: Any) -> None:
        circuit.save_statevector()

    def _read(self, data: Any) -> np.ndarray:
        return np.asarray(data["statevector"])


class AerDensityMatrixEngine(AerStatevectorEngine):
    """Aer's density_matrix method (see the module docstring)."""

    name: ClassVar[str] = defaults.AER_DENSITY_MATRIX
    _method: ClassVar[str] = "density_matrix"
    density: ClassVar[bool] = True

    def _prepare(self, circuit: Any, state: np.ndarray, n: int) -> None:
        from qiskit.quantum_info import DensityMatrix

        circuit.set_density_matrix(DensityMatrix(state.astype(np.complex128)))

    def _save(self, circuit: Any) -> None:
        circuit.save_density_matrix()

    def _read(self, data: Any) -> np.ndarray:
        return np.asarray(data["density_matrix"])


#: An MPS in Aer's (Vidal) form: per site the matrices of |0> and |1>, and the Schmidt
#: values of each bond (``save_matrix_product_state``'s value).
MPS = tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray]]

#: Schmidt values below this (relative to the bond's largest) are dropped when the
#: state is brought back to canonical form after a projection.
_SCHMIDT_CUTOFF = 1e-13


def _tensors(mps: MPS) -> list[np.ndarray]:
    """Site tensors ``(2, left, right)`` of ``mps`` with each bond's Schmidt values
    multiplied into the site on its left (a plain MPS, not canonical)."""
    gammas, lambdas = mps
    out = []
    for i, (g0, g1) in enumerate(gammas):
        t = np.stack([np.asarray(g0, dtype=np.complex128), np.asarray(g1, dtype=np.complex128)])
        if i < len(lambdas):
            t = t * np.asarray(lambdas[i], dtype=np.float64)[None, None, :]
        out.append(t)
    return out


def canonical(tensors: Sequence[np.ndarray]) -> MPS:
    """A normalised MPS in Aer's canonical (Vidal) form from plain site tensors
    ``(2, left, right)``: a QR sweep to the right, then an SVD sweep to the left whose
    singular values are the Schmidt values (those below :data:`_SCHMIDT_CUTOFF` dropped).
    """
    sites = [np.asarray(t, dtype=np.complex128) for t in tensors]
    n = len(sites)
    for i in range(n - 1):
        s, left, right = sites[i].shape
        q, r = np.linalg.qr(sites[i].transpose(1, 0, 2).reshape(left * s, right))
        sites[i] = q.reshape(left, s, q.shape[1]).transpose(1, 0, 2)
        sites[i + 1] = np.einsum("ab,sbc->sac", r, sites[i + 1])
    # the last site now holds the norm: normalise there, so every bond's Schmidt values
    # below come out normalised (Aer samples with them)
    sites[-1] = sites[-1] / np.linalg.norm(sites[-1])
    lambdas: list[np.ndarray] = [np.ones(1)] * (n - 1)
    for i in range(n - 1, 0, -1):
        s, left, right = sites[i].shape
        u, values, vh = np.linalg.svd(
            sites[i].transpose(1, 0, 2).reshape(left, s * right), full_matrices=False
        )
        keep = values > _SCHMIDT_CUTOFF * max(float(values[0]), 1e-300)
        keep[0] = True
        u, values, vh = u[:, keep], values[keep], vh[keep]
        sites[i] = vh.reshape(len(values), s, right).transpose(1, 0, 2)
        lambdas[i - 1] = values
        sites[i - 1] = np.einsum("sab,bc->sac", sites[i - 1], u * values[None, :])
    gammas = []
    for i, site in enumerate(sites):
        # right-canonical B_i = Gamma_i lambda_i (B_0 holds lambda_0 too): divide it out
        gamma = site / lambdas[i][None, None, :] if i < n - 1 else site
        gammas.append((np.ascontiguousarray(gamma[0]), np.ascontiguousarray(gamma[1])))
    return gammas, lambdas


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MPSSnapshot:
    """An :class:`AerMPSEngine`'s whole state: its MPS, pending gates, qubits and RNG."""

    mps: MPS
    pending: tuple[SegmentGate, ...]
    live: tuple[int, ...]
    wires: int
    rng: Mapping[str, Any]


class AerMPSEngine(GateEngine):
    """Aer's matrix_product_state method behind the protocol (see the module docstring).

    QMK holds the matrix product state between calls (Aer's canonical form,
    ``save_matrix_product_state``) and Aer evolves each segment of gates from it
    (``set_matrix_product_state``). A measurement, collapse, reset or drawn Pauli is a
    local operation QMK applies to the held state, which it then brings back to
    canonical form (:func:`canonical`), so mid-circuit measurement works. Probabilities
    are read off the canonical form; samples are Aer's measurements seeded from the
    engine's RNG. Qubit ``k`` is Aer's qubit ``k`` (an MPS site); a freed qubit stays as
    an idle site and its index is not reused.

    Args:
        seed: seeds the engine's RNG.

    Raises:
        EngineError: ``QE108 engine-unavailable`` when qiskit-aer is not installed.
    """

    name: ClassVar[str] = defaults.AER_MPS

    def __init__(self, *, seed: int | None = None) -> None:
        require(self.name)
        import qiskit_aer  # noqa: F401  (registers the set_/save_ instructions)

        self._simulator = _simulator("matrix_product_state", "double")
        self._rng = np.random.default_rng(seed)
        self._mps: MPS = ([], [])
        self._pending: list[SegmentGate] = []  # gates on wires (qubit handles are wires)
        self._live: list[int] = []
        self._wires = 0
        self._max_qubits = max_qubits(self.name)

    @property
    def max_qubits(self) -> int:
        return self._max_qubits

    @property
    def num_qubits(self) -> int:
        return len(self._live)

    def allocate(self) -> int:
        if len(self._live) + 1 > self._max_qubits:
            raise EngineError.of(
                "engine-capacity",
                f"the {self.name} engine holds at most {self._max_qubits} qubits here",
            )
        qubit = self._wires
        self._wires += 1
        gammas, lambdas = self._mps
        if gammas:
            lambdas.append(np.ones(1))
        gammas.append((np.ones((1, 1), dtype=np.complex128), np.zeros((1, 1), np.complex128)))
        self._live.append(qubit)
        return qubit

    def free(self, qubit: int) -> None:
        """Measure ``qubit`` in Z (one draw) and forget it (its site stays, idle)."""
        self._check(qubit)
        self._flush()
        outcome = int(float(self._rng.random()) < self._p1(qubit, "Z"))
        self._local(qubit, _projector(outcome, "Z"))
        self._live.remove(qubit)

    def _check_qubit(self, qubit: Any) -> int:
        self._check(qubit)
        return int(qubit)

    def _apply_gate(self, gate: str, qubits: list[int], params: tuple[float, ...]) -> None:
        """Record a checked gate; it runs at the next flush."""
        if gate != "i":
            self._pending.append((gate, tuple(qubits), params))

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """P(1) in ``basis``, read off the canonical form."""
        self._check(qubit)
        check_basis(basis)
        self._flush()
        return self._p1(qubit, basis)

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        self._check(qubit)
        check_basis(basis)
        outcome = check_outcome(outcome)
        self._flush()
        p1 = self._p1(qubit, basis)
        chance = p1 if outcome else 1.0 - p1
        if chance <= IMPOSSIBLE:
            raise outcome_impossible(qubit, outcome, basis, chance)
        self._local(qubit, _projector(outcome, basis))

    def measure(self, qubit: int, basis: str = "Z") -> int:
        self._check(qubit)
        check_basis(basis)
        self._flush()
        outcome = int(float(self._rng.random()) < self._p1(qubit, basis))
        self._local(qubit, _projector(outcome, basis))
        return outcome

    def reset(self, qubit: int) -> None:
        self._check(qubit)
        self._flush()
        outcome = int(float(self._rng.random()) < self._p1(qubit, "Z"))
        flip = GATES["x"].matrix() if outcome else np.eye(2)
        self._local(qubit, flip @ _projector(outcome, "Z"))

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        self._check(qubit)
        pauli = draw_pauli(self._rng, px, py, pz)
        if pauli != "I":
            self._pending.append((pauli.lower(), (qubit,), ()))
        return pauli

    def snapshot(self) -> MPSSnapshot:
        gammas, lambdas = self._mps
        return MPSSnapshot(
            mps=([(g0.copy(), g1.copy()) for g0, g1 in gammas], [v.copy() for v in lambdas]),
            pending=tuple(self._pending),
            live=tuple(self._live),
            wires=self._wires,
            rng=rng_state(self._rng),
        )

    def restore(self, snapshot: MPSSnapshot) -> None:
        snapshot = check_snapshot(snapshot, MPSSnapshot, self.name)
        gammas, lambdas = snapshot.mps
        self._mps = ([(g0.copy(), g1.copy()) for g0, g1 in gammas], [v.copy() for v in lambdas])
        self._pending = list(snapshot.pending)
        self._live = list(snapshot.live)
        self._wires = snapshot.wires
        self._rng = generator_at(snapshot.rng)

    @staticmethod
    def export_snapshot(snapshot: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``snapshot`` as plain data (the MPS's arrays) for a checkpoint."""
        snapshot = check_snapshot(snapshot, MPSSnapshot, AerMPSEngine.name)
        gammas, lambdas = snapshot.mps
        arrays = {f"g{i}_{s}": g[s] for i, g in enumerate(gammas) for s in (0, 1)}
        arrays |= {f"l{i}": v for i, v in enumerate(lambdas)}
        meta = {
            "sites": len(gammas),
            "pending": [[g, list(qs), list(ps)] for g, qs, ps in snapshot.pending],
            "live": list(snapshot.live),
            "wires": snapshot.wires,
            "rng": dict(snapshot.rng),
        }
        return meta, arrays

    @staticmethod
    def import_snapshot(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """The snapshot :meth:`export_snapshot` wrote."""
        sites = int(meta["sites"])
        gammas = [
            (np.asarray(arrays[f"g{i}_0"]), np.asarray(arrays[f"g{i}_1"])) for i in range(sites)
        ]
        lambdas = [np.asarray(arrays[f"l{i}"]) for i in range(max(sites - 1, 0))]
        return MPSSnapshot(
            mps=(gammas, lambdas),
            pending=tuple(
                (str(g), tuple(int(q) for q in qs), tuple(float(p) for p in ps))
                for g, qs, ps in meta["pending"]
            ),
            live=tuple(int(q) for q in meta["live"]),
            wires=int(meta["wires"]),
            rng=dict(meta["rng"]),
        )

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` Z outcomes of ``qubits``: Aer measures them, seeded from the RNG."""
        qs = list(qubits)
        for q in qs:
            self._check(q)
        if len(set(qs)) != len(qs):
            raise EngineError.of("engine-misuse", f"sample of repeated qubits {qs}")
        shots = check_shots(shots)
        out = np.zeros((shots, len(qs)), dtype=np.uint8)
        if not qs or not shots:
            return out
        from qiskit import ClassicalRegister

        circuit = self._circuit(self._pending)
        register = ClassicalRegister(len(qs))
        circuit.add_register(register)
        for column, q in enumerate(qs):
            circuit.measure(q, register[column])
        seed = int(self._rng.integers(2**31))
        result = self._simulator.run(
            circuit, shots=shots, memory=True, seed_simulator=seed
        ).result()
        # Qiskit writes classical bit 0 rightmost.
        text = "".join(result.get_memory(0)).encode("ascii")
        bits = np.frombuffer(text, dtype=np.uint8).reshape(shots, len(qs)) - ord("0")
        out[:] = bits[:, ::-1]
        return out

    # ------------------------------------------------------------------ helpers

    def _check(self, qubit: int) -> None:
        if qubit not in self._live:
            raise EngineError.of(
                "engine-misuse", f"qubit {qubit!r} is not live in this {self.name} engine"
            )

    def _circuit(self, gates: Sequence[SegmentGate]) -> Any:
        """A circuit on every site that starts from the held MPS and applies ``gates``."""
        from qiskit import QuantumCircuit

        n = self._wires
        circuit = QuantumCircuit(n)
        gammas, lambdas = self._mps
        circuit.set_matrix_product_state((list(gammas), list(lambdas)))
        # build_circuit numbers axis a as qubit n - 1 - a: hand it wires that way round
        circuit.compose(
            build_circuit(n, [(g, tuple(n - 1 - q for q in qs), p) for g, qs, p in gates]),
            inplace=True,
        )
        return circuit

    def _flush(self) -> None:
        if not self._pending:
            return
        circuit = self._circuit(self._pending)
        self._pending = []
        circuit.save_matrix_product_state(label="mps")
        result = self._simulator.run(circuit, shots=1).result()
        gammas, lambdas = result.data(0)["mps"]
        self._mps = (
            [(np.asarray(g0), np.asarray(g1)) for g0, g1 in gammas],
            [np.asarray(v, dtype=np.float64) for v in lambdas],
        )

    def _reduced(self, qubit: int) -> np.ndarray:
        """The 2x2 reduced density matrix of ``qubit`` (the held MPS is canonical)."""
        gammas, lambdas = self._mps
        g = np.stack([gammas[qubit][0], gammas[qubit][1]]).astype(np.complex128)
        left = lambdas[qubit - 1] if qubit > 0 else np.ones(1)
        right = lambdas[qubit] if qubit < len(lambdas) else np.ones(1)
        weighted = g * left[None, :, None] * right[None, None, :]
        return np.einsum("sab,tab->st", weighted, weighted.conj())

    def _p1(self, qubit: int, basis: str) -> float:
        return one_probability(self._reduced(qubit), basis)

    def _local(self, qubit: int, matrix: np.ndarray) -> None:
        """Apply a 2x2 matrix (a projector, a flip) to one site, then re-canonicalise."""
        tensors = _tensors(self._mps)
        tensors[qubit] = np.einsum("st,tab->sab", np.asarray(matrix, np.complex128), tensors[qubit])
        self._mps = canonical(tensors)


def _projector(outcome: int, basis: str) -> np.ndarray:
    """The projector onto ``outcome`` of ``basis`` (0: the +1 eigenstate)."""
    h, sdg = GATES["h"].matrix(), GATES["sdg"].matrix()
    to_z = {"Z": np.eye(2), "X": h, "Y": h @ sdg}[basis]
    keep = np.zeros((2, 2), dtype=np.complex128)
    keep[outcome, outcome] = 1
    return to_z.conj().T @ keep @ to_z
