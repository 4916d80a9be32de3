"""Circuit-level noise and the builder that lays a syndrome circuit's layers with it.

Every memory experiment (:mod:`qmk.experiments.circuits`, :mod:`qmk.experiments.shyps`)
builds its stim circuit here, so one noise placement serves all code families.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmk.qec.errors import QECError
from qmk.qec.noise import NoiseModel
from qmk.qec.params import GATE_BASED, QubitParams, qubit_params

if TYPE_CHECKING:
    import stim


def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 0.5:
        raise QECError.of("bad-parameter", f"{name} must lie in [0, 0.5), got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitNoise:
    """Circuit-level Pauli noise of a syndrome-extraction circuit (each rate in [0, 0.5)).

    Attributes:
        after_1q: ``DEPOLARIZE1`` after every single-qubit gate.
        after_2q: ``DEPOLARIZE2`` after every two-qubit gate.
        measure_flip: a flip of each measurement's outcome (X before a Z measurement).
        reset_flip: a flip after each reset (X after a Z reset).
        idle: ``DEPOLARIZE1`` on every qubit a layer leaves idle.
        before_round_data: ``DEPOLARIZE1`` on every data qubit at the start of a round.
    """

    after_1q: float = 0.0
    after_2q: float = 0.0
    measure_flip: float = 0.0
    reset_flip: float = 0.0
    idle: float = 0.0
    before_round_data: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "after_1q",
            "after_2q",
            "measure_flip",
            "reset_flip",
            "idle",
            "before_round_data",
        ):
            _check_rate(f"CircuitNoise.{name}", getattr(self, name))

    @classmethod
    def uniform(cls, p: float) -> CircuitNoise:
        """Every gate, measurement, reset and idle step fails with probability ``p``."""
        return cls(after_1q=p, after_2q=p, measure_flip=p, reset_flip=p, idle=p)

    @classmethod
    def stim_uniform(cls, p: float) -> CircuitNoise:
        """The noise of ``stim.Circuit.generated(...)`` with all four of its rates at ``p``.

        ``after_clifford_depolarization``, ``before_round_data_depolarization``,
        ``before_measure_flip_probability`` and ``after_reset_flip_probability``;
        no idle noise.
        """
        return cls(after_1q=p, after_2q=p, measure_flip=p, reset_flip=p, before_round_data=p)

    @classmethod
    def from_qubit(
        cls,
        qubit: str | QubitParams,
        *,
        noise: NoiseModel | None = None,
        p: float | None = None,
    ) -> CircuitNoise:
        """The circuit noise of a gate-based qubit parameter set.

        Gates take the qubit's one- and two-qubit gate error rates, measurements
        and resets its measurement error rate (QRE has no separate reset rate),
        idle steps its idle error rate. With ``p``, every rate is scaled by
        ``p / physical_error_rate`` so that the qubit's physical error rate (QRE's
        rule) becomes ``p`` and the rates keep their proportions.

        Raises:
            QECError: ``QC105`` for Majorana qubits (their syndrome extraction is
                measurement-based, which these circuits are not); ``QC103`` for a bad ``p``.
        """
        params = qubit_params(qubit)
        if noise is not None:
            params = noise.apply(params)
        if params.instruction_set != GATE_BASED:
            raise QECError.of(
                "scheme-not-supported",
                f"memory experiments use gate-based circuits; {params.name!r} is "
                f"{params.instruction_set}",
            )
        scale = 1.0
        if p is not None:
            _check_rate("p", p)
            scale = p / params.physical_error_rate
        assert params.one_qubit_gate_error_rate is not None
        assert params.two_qubit_gate_error_rate is not None
        return cls(
            after_1q=params.one_qubit_gate_error_rate * scale,
            after_2q=params.two_qubit_gate_error_rate * scale,
            measure_flip=params.one_qubit_measurement_error_rate * scale,
            reset_flip=params.one_qubit_measurement_error_rate * scale,
            idle=params.idle_error_rate * scale,
        )

    def is_noiseless(self) -> bool:
        """Whether every rate is 0."""
        return not any(
            (
                self.after_1q,
                self.after_2q,
                self.measure_flip,
                self.reset_flip,
                self.idle,
                self.before_round_data,
            )
        )


NOISELESS = CircuitNoise()


class NoisyCircuit:
    """Appends layers to a stim circuit with noise, tracking measurement records."""

    def __init__(self, num_qubits: int, noise: CircuitNoise) -> None:
        import stim

        self.circuit = stim.Circuit()
        self.qubits = range(num_qubits)
        self.noise = noise
        self.measurements = 0

    def _noise(self, name: str, targets: Sequence[int], rate: float) -> None:
        if rate > 0 and targets:
            self.circuit.append(name, targets, rate)

    def _idle(self, busy: Iterable[int]) -> None:
        if self.noise.idle > 0:
            taken = set(busy)
            self._noise("DEPOLARIZE1", [q for q in self.qubits if q not in taken], self.noise.idle)

    def coords(self, qubit: int, xy: tuple[float, float]) -> None:
        self.circuit.append("QUBIT_COORDS", [qubit], list(xy))

    def reset(self, qubits: Sequence[int]) -> None:
        self.circuit.append("R", qubits)
        self._noise("X_ERROR", qubits, self.noise.reset_flip)

    def end_layer(self, busy: Iterable[int]) -> None:
        self._idle(busy)
        self.circuit.append("TICK")

    def data_noise(self, data: Sequence[int]) -> None:
        self._noise("DEPOLARIZE1", data, self.noise.before_round_data)

    def h(self, qubits: Sequence[int]) -> None:
        if qubits:
            self.circuit.append("H", qubits)
            self._noise("DEPOLARIZE1", qubits, self.noise.after_1q)

    def cx(self, pairs: Sequence[tuple[int, int]]) -> None:
        flat = [q for pair in pairs for q in pair]
        if flat:
            self.circuit.append("CX", flat)
            self._noise("DEPOLARIZE2", flat, self.noise.after_2q)

    def measure(self, qubits: Sequence[int], *, reset: bool) -> list[int]:
        """Measure ``qubits`` in Z (and reset them); returns their absolute record indices."""
        self._noise("X_ERROR", qubits, self.noise.measure_flip)
        self.circuit.append("MR" if reset else "M", qubits)
        if reset:
            self._noise("X_ERROR", qubits, self.noise.reset_flip)
        first = self.measurements
        self.measurements += len(qubits)
        return list(range(first, self.measurements))

    def _rec(self, records: Iterable[int]) -> list[stim.GateTarget]:
        import stim

        return [stim.target_rec(r - self.measurements) for r in records]

    def detector(self, records: Iterable[int], coords: Sequence[float]) -> None:
        self.circuit.append("DETECTOR", self._rec(records), list(coords))

    def observable(self, records: Iterable[int], index: int = 0) -> None:
        self.circuit.append("OBSERVABLE_INCLUDE", self._rec(records), index)

    def shift_time(self) -> None:
        self.circuit.append("SHIFT_COORDS", [], [0, 0, 1])


__all__ = ["NOISELESS", "CircuitNoise", "NoisyCircuit"]
