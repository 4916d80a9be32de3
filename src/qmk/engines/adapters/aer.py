"""Qiskit Aer behind the engine protocol: statevector, density_matrix, matrix_product_state.

- :class:`AerStatevectorEngine` and :class:`AerDensityMatrixEngine` are
  :class:`~qmk.engines.adapters._segments.SegmentEngine`\\ s: QMK holds the state
  between calls and Aer evolves each segment from it (``set_statevector`` /
  ``set_density_matrix``, then ``save_statevector`` / ``save_density_matrix``), in
  double or single precision. Aer orders qubits little-endian; the adapter maps QMK's
  axes (axis 0 most significant) onto Aer qubit ``n - 1 - axis``, so the amplitudes'
  index is the same integer on both sides.
- :class:`AerMPSEngine` runs Aer's ``matrix_product_state`` method for many qubits at
  low entanglement. It cannot start from a given MPS without leaving canonical form,
  so it *replays*: it records the gates and runs the circuit from ``|0>`` when asked a
  probability (``save_expectation_value``) or a sample (measurements, seeded from the
  engine's RNG). It serves programs whose measurements are terminal: measure, collapse,
  reset and free work where the outcome is certain, and an uncertain one is
  ``QE110 operation-unsupported`` (the router never sends such a program there).
  Freed qubits stay in the circuit as idle wires; their indices are not reused.

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.adapters._segments import IMPOSSIBLE, SegmentEngine, SegmentGate
from qmk.engines.base import EngineError
from qmk.engines.gates import BASES, GATES
from qmk.engines.registry import max_qubits, require


def build_circuit(n: int, gates: Sequence[SegmentGate]) -> Any:
    """A Qiskit circuit of engine gates on axes (axis ``a`` is Aer qubit ``n - 1 - a``)."""
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(n)
    for name, axes, params in gates:
        qs = [n - 1 - a for a in axes]
        if name == "ccz":  # not every Aer method has ccz: H on the target around ccx
            circuit.h(qs[2])
            circuit.ccx(qs[0], qs[1], qs[2])
            circuit.h(qs[2])
        elif name == "i":
            circuit.id(qs[0])
        elif params:
            getattr(circuit, name)(params[0], *qs)
        else:
            getattr(circuit, name)(*qs)
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
        import qiskit_aer  # registers set_/save_ instructions on QuantumCircuit

        precision = "single" if self._dtype == np.complex64 else "double"
        self._aer = qiskit_aer
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


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MPSSnapshot:
    """An :class:`AerMPSEngine`'s whole state: its gate log, qubits and RNG."""

    log: tuple[SegmentGate, ...]
    live: tuple[int, ...]
    wires: int
    rng: Mapping[str, Any]


class AerMPSEngine:
    """Aer's matrix_product_state method, replayed from ``|0>`` (see the module docstring).

    Args:
        seed: seeds the engine's RNG (Pauli channels, and Aer's seed for each sample).

    Raises:
        EngineError: ``QE108 engine-unavailable`` when qiskit-aer is not installed.
    """

    name: ClassVar[str] = defaults.AER_MPS

    def __init__(self, *, seed: int | None = None) -> None:
        require(self.name)
        import qiskit_aer  # noqa: F401  (registers save_expectation_value)

        self._simulator = _simulator("matrix_product_state", "double")
        self._rng = np.random.default_rng(seed)
        self._log: list[SegmentGate] = []  # gates on wires (qubit handles are wires)
        self._live: list[int] = []
        self._wires = 0
        self._max_qubits = max_qubits(self.name)

    @property
    def max_qubits(self) -> int:
        return self._max_qubits

    @property
    def num_qubits(self) -> int:
        return len(self._live)

    def supports(self, gate: str, params: Sequence[float] = ()) -> bool:
        entry = GATES.get(gate) if isinstance(gate, str) else None
        if entry is None or len(params) != len(entry.params):
            return False
        try:
            return all(math.isfinite(float(p)) for p in params)
        except (TypeError, ValueError):
            return False

    def allocate(self) -> int:
        if len(self._live) + 1 > self._max_qubits:
            raise EngineError.of(
                "engine-capacity", f"the {self.name} engine holds at most {self._max_qubits}"
            )
        qubit = self._wires
        self._wires += 1
        self._live.append(qubit)
        return qubit

    def free(self, qubit: int) -> None:
        """Forget ``qubit`` (its outcome must be certain: see the module docstring)."""
        self._certain(qubit, "Z", what="free")
        self._rng.random()  # one draw, as every engine's free
        self._live.remove(qubit)

    def apply(self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        entry = GATES.get(gate) if isinstance(gate, str) else None
        if entry is None:
            raise EngineError.of(
                "gate-unsupported",
                f"no gate named {gate!r}; the {self.name} engine applies: {', '.join(GATES)}",
                gate=repr(gate),
            )
        if not self.supports(gate, params):
            raise EngineError.of(
                "gate-unsupported",
                f"{gate} takes {len(entry.params)} finite parameter(s), got {list(params)!r}",
                gate=gate,
            )
        qs = tuple(qubits)
        for q in qs:
            self._check(q)
        if len(qs) != entry.qubits or len(set(qs)) != len(qs):
            raise EngineError.of(
                "engine-misuse", f"{gate} acts on {entry.qubits} distinct qubits, got {list(qs)}"
            )
        if gate != "i":
            self._log.append((gate, qs, tuple(float(p) for p in params)))

    def apply_segment(self, gates: Sequence[tuple[str, Sequence[int], Sequence[float]]]) -> None:
        """Record a run of gates, each checked first: a bad one leaves the log as it was."""
        mark = len(self._log)
        try:
            for gate, qubits, params in gates:
                self.apply(gate, qubits, params)
        except EngineError:
            del self._log[mark:]
            raise

    def probability(self, qubit: int, basis: str = "Z") -> float:
        """P(1) in ``basis``: Aer's expectation value of the basis' Pauli, from ``|0>``."""
        from qiskit.quantum_info import Pauli

        self._check(qubit)
        _check_basis(basis)
        circuit = self._circuit()
        circuit.save_expectation_value(Pauli(basis), [self._wire(qubit)], label="p")
        value = float(np.real(self._run(circuit, shots=1)["p"]))
        return min(max((1 - value) / 2, 0.0), 1.0)

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        if isinstance(outcome, bool) or outcome not in (0, 1):
            raise EngineError.of("engine-misuse", f"an outcome is 0 or 1, not {outcome!r}")
        certain = self._certain(qubit, basis, what="collapse")
        if certain != outcome:
            raise EngineError.of(
                "outcome-impossible",
                f"qubit {qubit} cannot be collapsed onto {outcome} in the {basis} basis: "
                "its probability is 0",
            )

    def measure(self, qubit: int, basis: str = "Z") -> int:
        outcome = self._certain(qubit, basis, what="measure")
        self._rng.random()  # one draw, as every engine's measure
        return outcome

    def reset(self, qubit: int) -> None:
        if self._certain(qubit, "Z", what="reset"):
            self._log.append(("x", (qubit,), ()))
        self._rng.random()

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        self._check(qubit)
        probs = (px, py, pz)
        try:
            ok = all(0.0 <= float(p) <= 1.0 for p in probs) and sum(map(float, probs)) <= 1 + 1e-12
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise EngineError.of(
                "engine-misuse", f"Pauli channel probabilities out of range: {list(probs)!r}"
            )
        draw = float(self._rng.random())
        for pauli, edge in zip("XYZ", np.cumsum([float(p) for p in probs]), strict=True):
            if draw < edge:
                self._log.append((pauli.lower(), (qubit,), ()))
                return pauli
        return "I"

    def snapshot(self) -> MPSSnapshot:
        return MPSSnapshot(
            log=tuple(self._log),
            live=tuple(self._live),
            wires=self._wires,
            rng=self._rng.bit_generator.state,
        )

    def restore(self, snapshot: MPSSnapshot) -> None:
        if not isinstance(snapshot, MPSSnapshot):
            raise EngineError.of("engine-misuse", f"not an {self.name} snapshot: {snapshot!r}")
        self._log = list(snapshot.log)
        self._live = list(snapshot.live)
        self._wires = snapshot.wires
        rng = np.random.default_rng()
        rng.bit_generator.state = snapshot.rng
        self._rng = rng

    @staticmethod
    def export_snapshot(snapshot: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``snapshot`` as plain data (its gate log) for a checkpoint."""
        if not isinstance(snapshot, MPSSnapshot):
            raise EngineError.of("engine-misuse", "not an aer-mps snapshot")
        meta = {
            "log": [[g, list(qs), list(ps)] for g, qs, ps in snapshot.log],
            "live": list(snapshot.live),
            "wires": snapshot.wires,
            "rng": dict(snapshot.rng),
        }
        return meta, {}

    @staticmethod
    def import_snapshot(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """The snapshot :meth:`export_snapshot` wrote."""
        return MPSSnapshot(
            log=tuple(
                (str(g), tuple(int(q) for q in qs), tuple(float(p) for p in ps))
                for g, qs, ps in meta["log"]
            ),
            live=tuple(int(q) for q in meta["live"]),
            wires=int(meta["wires"]),
            rng=dict(meta["rng"]),
        )

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        """``shots`` Z outcomes of ``qubits``: Aer measures them, seeded from the RNG."""
        qs = list(qubits)
        for q in qs:
            self._check(q)
        if len(set(qs)) != len(qs):
            raise EngineError.of("engine-misuse", f"sample of repeated qubits {qs}")
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 0:
            raise EngineError.of("engine-misuse", f"shots must be >= 0, got {shots!r}")
        out = np.zeros((int(shots), len(qs)), dtype=np.uint8)
        if not qs or not shots:
            return out
        from qiskit import ClassicalRegister

        circuit = self._circuit()
        register = ClassicalRegister(len(qs))
        circuit.add_register(register)
        for column, q in enumerate(qs):
            circuit.measure(self._wire(q), register[column])
        seed = int(self._rng.integers(2**31))
        result = self._simulator.run(
            circuit, shots=int(shots), memory=True, seed_simulator=seed
        ).result()
        memory = result.get_memory(0)
        # Qiskit writes classical bit 0 rightmost.
        text = "".join(memory).encode("ascii")
        bits = np.frombuffer(text, dtype=np.uint8).reshape(int(shots), len(qs)) - ord("0")
        out[:] = bits[:, ::-1]
        return out

    # ------------------------------------------------------------------ helpers

    def _check(self, qubit: int) -> None:
        if qubit not in self._live:
            raise EngineError.of(
                "engine-misuse", f"qubit {qubit!r} is not live in this {self.name} engine"
            )

    def _wire(self, qubit: int) -> int:
        return self._wires - 1 - qubit

    def _circuit(self) -> Any:
        n = max(self._wires, 1)
        axes = [(g, tuple(q for q in qs), p) for g, qs, p in self._log]
        return build_circuit(n, axes) if self._wires else build_circuit(1, [])

    def _run(self, circuit: Any, shots: int) -> Any:
        result = self._simulator.run(circuit, shots=shots).result()
        return result.data(0)

    def _certain(self, qubit: int, basis: str, *, what: str) -> int:
        """The outcome of measuring ``qubit`` in ``basis`` when it is certain."""
        self._check(qubit)
        _check_basis(basis)
        p1 = self.probability(qubit, basis)
        if p1 <= IMPOSSIBLE:
            return 0
        if p1 >= 1 - IMPOSSIBLE:
            return 1
        raise EngineError.of(
            "operation-unsupported",
            f"the {self.name} engine replays its circuit from |0> and cannot {what} qubit "
            f"{qubit} in {basis}, whose outcome is uncertain (P(1) = {p1:.3g}): it runs "
            "programs whose measurements are terminal",
            qubit=qubit,
        )


def _check_basis(basis: str) -> None:
    if basis not in BASES:
        raise EngineError.of(
            "engine-misuse", f"a basis is one of {', '.join(BASES)}, not {basis!r}"
        )
