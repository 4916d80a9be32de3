"""Magic-state distillation simulated in stim: noisy injected T states, real Clifford circuits.

A T state is not a stabilizer state, so stim cannot hold it; but a twirled noisy
input is the ideal ``|T>`` with a Z error of probability ``p``
(:data:`qmk.qec.distill.INPUT_ERROR_PAULI`), and every T rotation of a 15-to-1
protocol is diagonal, so those Z errors commute with it. The circuit stim runs
is the protocol's Clifford circuit with each T rotation replaced by its error
channel: the ideal rotations would only change the output's (unmeasured) phase,
never a check's outcome or the output's error. A run is accepted when no
detector fires; the observable flips when the delivered state is ``Z|T>``
instead of ``|T>``. Both protocols of :data:`qmk.qec.distill.PROTOCOLS`:

- ``15-to-1`` (the estimator's "RM prep" unit): 15 qubits, the [[15, 1, 3]]
  code's ``|+>_L`` by a CNOT encoder, ``Z_ERROR(p)`` on each qubit where the
  transversal T acts, all qubits measured in X; the 4 X checks are detectors,
  the logical X (all 15) the observable.
- ``15-to-1-space-efficient`` (Litinski's 5-qubit protocol): 5 qubits in
  ``|+>``, 15 pi/8 rotations of Z-type Pauli products, each a consumed T state
  whose Z error is a correlated error on the rotation's support (``E(p)``),
  qubits 1-4 measured in X as detectors and qubit 5's X as the observable.

With ``clifford_error`` the space-efficient circuit also has a depolarizing fault on
each patch after each rotation, its effect taken from a state-vector run with the real
rotations (:func:`patch_fault_patterns`); :func:`model_rates` gives that model's exact
rates. :func:`run_distillation` samples a circuit and returns counts with Wilson
intervals (95% unless told).

>>> r = run_distillation("15-to-1", input_error=0.05, shots=20_000, seed=3)
>>> r.shots, r.accepted > 0
(20000, True)
>>> low, high = r.acceptance_interval
>>> low <= r.acceptance_rate <= high
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.experiments.memory import DEFAULT_CONFIDENCE, wilson_interval
from qmk.qec.distill import (
    DistillationProtocol,
    ExactRates,
    FactoryFigures,
    check_input_error,
    figures_of,
    protocol,
)
from qmk.qec.errors import QECError

if TYPE_CHECKING:
    import stim

#: Shots sampled at once.
CHUNK = 1 << 16


def _row_reduce(rows: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """Reduced row echelon form over GF(2) and the pivot column of each row."""
    rows = [list(r) for r in rows]
    pivots: list[int] = []
    top = 0
    for col in range(len(rows[0])):
        pick = next((i for i in range(top, len(rows)) if rows[i][col]), None)
        if pick is None:
            continue
        rows[top], rows[pick] = rows[pick], rows[top]
        for i in range(len(rows)):
            if i != top and rows[i][col]:
                rows[i] = [a ^ b for a, b in zip(rows[i], rows[top], strict=True)]
        pivots.append(col)
        top += 1
        if top == len(rows):
            break
    return rows[:top], pivots


def _transversal(proto: DistillationProtocol, p: float) -> stim.Circuit:
    """The code's ``|+>_L`` (X-stabilized by the checks and the logical row), Z errors, MX."""
    import stim

    n = proto.inputs
    generators, pivots = _row_reduce([list(r) for r in (*proto.checks, proto.logical)])
    c = stim.Circuit()
    c.append("R", range(n))
    c.append("H", pivots)
    c.append("TICK")
    # In reduced echelon form each pivot's row has no other pivot, so spreading each pivot
    # by CNOTs gives the uniform superposition over the generators' span.
    for row, pivot in zip(generators, pivots, strict=True):
        targets = [j for j, bit in enumerate(row) if bit and j != pivot]
        c.append("CX", [q for j in targets for q in (pivot, j)])
        c.append("TICK")
    c.append("Z_ERROR", range(n), p)  # the transversal T layer's twirled input errors
    c.append("TICK")
    c.append("MX", range(n))
    for check in proto.checks:
        c.append("DETECTOR", [stim.target_rec(j - n) for j, bit in enumerate(check) if bit])
    c.append(
        "OBSERVABLE_INCLUDE", [stim.target_rec(j - n) for j, b in enumerate(proto.logical) if b], 0
    )
    return c


def _transversal_checked(proto: DistillationProtocol, p: float, clifford: float) -> stim.Circuit:
    if clifford:
        raise QECError.of(
            "bad-parameter",
            f"--clifford-error: the {proto.name} circuit models its injected states' errors "
            "only; Clifford faults are modelled for 15-to-1-space-efficient",
        )
    return _transversal(proto, p)


def patch_fault_patterns(
    proto: DistillationProtocol, step: int, qubit: int, rate: float
) -> dict[int, float]:
    """What one patch fault does, as Z patterns (bit masks over the qubits) with probabilities.

    A depolarizing fault of probability ``rate`` on ``qubit`` after rotation ``step``: X, Y
    and Z each with ``rate / 3``. A Z commutes with every rotation. An X (or Y) flips the
    sign of every later rotation whose Pauli covers the qubit: a coherent Clifford error
    whose branches interfere. So its effect is taken from a state-vector run of the
    protocol with its real pi/8 rotations (:func:`fault_outcomes`). That run gives the
    probability of each check outcome, and within it of a wrong output (1 - the output's
    fidelity with the fault-free T state). A check's -1 outcome becomes a Z on that
    check's qubit and a wrong output a Z on the output qubit (twirling the output state,
    under which its error is that infidelity). Exact for one fault; several faults
    combine as independent events, exact to first order in ``rate``.
    """
    patterns: dict[int, float] = {}
    for pauli in "XYZ":
        outcomes = fault_outcomes(proto, step, qubit, pauli)
        for mask in np.flatnonzero(outcomes > 1e-15):
            if mask:
                patterns[int(mask)] = patterns.get(int(mask), 0.0) + rate / 3 * outcomes[mask]
    return patterns


@functools.lru_cache(maxsize=512)
def fault_outcomes(
    proto: DistillationProtocol, step: int, qubit: int, pauli: str | None
) -> np.ndarray:
    """The outcome distribution of the rotation protocol with one Pauli after rotation ``step``.

    Index ``s + 2**k * w``: ``s`` the checks' -1 outcomes (bit j for check j), ``w`` 1 when
    the output is wrong. ``pauli`` None: no fault (all weight on index 0).
    """
    k = len(proto.checks)
    size = 1 << (k + 1)
    index = np.arange(size)
    state = np.full(size, 1 / math.sqrt(size), dtype=complex)
    for i, mask in enumerate(_masks(proto)):
        parity = np.array([bin(x & mask).count("1") & 1 for x in index])
        state = state * np.exp(-1j * math.pi / 8 * (1 - 2 * parity))
        if i == step and pauli is not None:
            bit = (index >> qubit) & 1
            if pauli in "ZY":
                state = state * (1 - 2 * bit)
            if pauli in "XY":
                state = state[index ^ (1 << qubit)]
    # rows: the output qubit's Z value; columns: the checks' X outcomes (a Hadamard transform)
    checks = np.arange(1 << k)
    hadamard = np.array([[(-1) ** bin(a & b).count("1") for b in checks] for a in checks])
    projected = state.reshape(2, 1 << k) @ hadamard.T / math.sqrt(1 << k)
    ideal = _ideal_output(proto)
    out = np.zeros(size)
    for s in checks:
        amplitudes = projected[:, s]
        weight = float(np.vdot(amplitudes, amplitudes).real)
        if weight < 1e-15:
            continue
        fidelity = min(1.0, abs(np.vdot(ideal, amplitudes)) ** 2 / weight)
        out[s] += weight * fidelity
        out[s | (1 << k)] += weight * (1 - fidelity)
    return out


@functools.lru_cache(maxsize=8)
def _ideal_output(proto: DistillationProtocol) -> np.ndarray:
    """The fault-free run's output state (accepted with certainty)."""
    k = len(proto.checks)
    size = 1 << (k + 1)
    index = np.arange(size)
    state = np.full(size, 1 / math.sqrt(size), dtype=complex)
    for mask in _masks(proto):
        parity = np.array([bin(x & mask).count("1") & 1 for x in index])
        state = state * np.exp(-1j * math.pi / 8 * (1 - 2 * parity))
    output = state.reshape(2, 1 << k).sum(axis=1) / math.sqrt(1 << k)
    return np.asarray(output / np.linalg.norm(output))


def _masks(proto: DistillationProtocol) -> list[int]:
    """Each rotation's support as a bit mask: bit j for check j, bit k for the output."""
    k = len(proto.checks)
    return [
        sum(1 << j for j in range(k) if proto.checks[j][i]) | (proto.logical[i] << k)
        for i in range(proto.inputs)
    ]


def _rotations(proto: DistillationProtocol, p: float, clifford: float = 0.0) -> stim.Circuit:
    """Litinski's layout: one qubit per check plus the output, one rotation per input."""
    import stim

    k = len(proto.checks)
    n = k + 1
    masks = _masks(proto)
    c = stim.Circuit()
    c.append("RX", range(n))
    c.append("TICK")
    for i, mask in enumerate(masks):
        # The pi/8 rotation exp(-i pi/8 P) itself is diagonal and leaves every X outcome of
        # the ideal run fixed; its consumed T state's error applies P.
        c.append("E", [stim.target_z(q) for q in range(n) if (mask >> q) & 1], p)
        if clifford:
            for qubit in range(n):
                _exclusive(c, patch_fault_patterns(proto, i, qubit, clifford), n)
        c.append("TICK")
    c.append("MX", range(n))
    for j in range(k):
        c.append("DETECTOR", [stim.target_rec(j - n)])
    c.append("OBSERVABLE_INCLUDE", [stim.target_rec(-1)], 0)
    return c


def _exclusive(c: stim.Circuit, patterns: dict[int, float], n: int) -> None:
    """One fault event: at most one of ``patterns`` happens (an ``E``/``ELSE`` chain)."""
    import stim

    left = 1.0
    for number, (mask, probability) in enumerate(sorted(patterns.items())):
        name = "E" if number == 0 else "ELSE_CORRELATED_ERROR"
        c.append(name, [stim.target_z(q) for q in range(n) if (mask >> q) & 1], probability / left)
        left -= probability


def model_rates(
    proto: str | DistillationProtocol, input_error: float, clifford_error: float = 0.0
) -> ExactRates:
    """The exact acceptance and output error of the circuit's own noise model.

    Every fault event (each injected state's error, each patch fault of
    :func:`patch_fault_patterns`) is independent and leaves a Z pattern over the
    checks and the output (``E``/``ELSE_CORRELATED_ERROR`` chains in the circuit); the
    outcome is their sum over GF(2)^(checks + 1), whose distribution is the product of
    the events' Walsh-Hadamard transforms. Without Clifford faults this equals
    :func:`qmk.qec.distill.exact_rates`.

    >>> r = model_rates("15-to-1-space-efficient", 0.01, 1e-3)
    >>> round(r.acceptance, 5), f"{r.output_error:.3e}"
    (0.81447, '9.037e-03')
    """
    proto = protocol(proto)
    p = check_input_error(input_error)
    clifford = check_input_error(clifford_error, "Clifford error")
    k = len(proto.checks)
    size = 1 << (k + 1)
    index = np.arange(size)
    signs = np.array([[(-1) ** bin(a & b).count("1") for b in index] for a in index], float)
    spectrum = np.ones(size)

    def event(patterns: dict[int, float]) -> None:
        nonlocal spectrum
        weights = np.zeros(size)
        weights[0] = 1.0 - sum(patterns.values())
        for mask, probability in patterns.items():
            weights[mask] += probability
        spectrum = spectrum * (signs @ weights)

    for i, mask in enumerate(_masks(proto)):
        event({mask: p})
        if clifford:
            for qubit in range(k + 1):
                event(patch_fault_patterns(proto, i, qubit, clifford))
    distribution = signs @ spectrum / size
    flipped = float(distribution[1 << k])
    accepted = float(distribution[0]) + flipped
    return ExactRates(
        input_error=p,
        acceptance=accepted,
        joint_error=flipped,
        output_error=flipped / accepted if accepted > 0 else math.nan,
    )


_BUILDERS = {"15-to-1": _transversal_checked, "15-to-1-space-efficient": _rotations}


def distillation_circuit(
    proto: str | DistillationProtocol, input_error: float, *, clifford_error: float = 0.0
) -> stim.Circuit:
    """The stim circuit of ``proto`` with each injected T state in error with ``input_error``.

    ``clifford_error`` (15-to-1-space-efficient only) adds a depolarizing fault of that
    probability on each of the 5 patches after each of the 15 rotations (75 fault
    locations), each an exclusive choice among the Z patterns of :func:`patch_fault_patterns`.

    >>> c = distillation_circuit("15-to-1-space-efficient", 0.01)
    >>> c.num_qubits, c.num_detectors, c.num_observables
    (5, 4, 1)
    >>> distillation_circuit("15-to-1", 0.0).num_qubits
    15

    Raises:
        QECError: ``QC111`` for an unknown protocol, ``QC103`` for a rate outside [0, 0.5]
            or a Clifford error for a protocol that does not model it.
    """
    proto = protocol(proto)
    p = check_input_error(input_error)
    clifford = check_input_error(clifford_error, "Clifford error")
    return _BUILDERS[proto.name](proto, p, clifford)


@dataclass(frozen=True, slots=True, kw_only=True)
class DistillationResult:
    """Shots of one protocol at one input error: how many were accepted and how many failed.

    Attributes:
        protocol: the protocol's name.
        input_error: ``p`` of each injected T state.
        shots: runs sampled.
        accepted: runs no detector rejected.
        errors: accepted runs whose output was flipped.
        seed: stim's seed.
        confidence: the level of the Wilson intervals.
        clifford_error: the patch fault rate (0: injected states' errors only).
    """

    protocol: str
    input_error: float
    shots: int
    accepted: int
    errors: int
    seed: int | None
    confidence: float = DEFAULT_CONFIDENCE
    clifford_error: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        """Accepted runs per shot."""
        return self.accepted / self.shots

    @property
    def acceptance_interval(self) -> tuple[float, float]:
        """The Wilson interval of :attr:`acceptance_rate`."""
        return wilson_interval(self.accepted, self.shots, self.confidence)

    @property
    def output_error_rate(self) -> float:
        """Flipped outputs per accepted run (NaN when none was accepted)."""
        return self.errors / self.accepted if self.accepted else math.nan

    @property
    def output_error_interval(self) -> tuple[float, float]:
        """The Wilson interval of :attr:`output_error_rate` over the accepted runs."""
        return wilson_interval(self.errors, self.accepted, self.confidence)

    def figures(self) -> FactoryFigures:
        """The measured rates as :class:`~qmk.qec.distill.FactoryFigures`."""
        return figures_of(
            protocol(self.protocol),
            self.input_error,
            self.output_error_rate,
            self.acceptance_rate,
            "simulated",
        )

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON (NaN as null)."""
        rate = self.output_error_rate
        return {
            "protocol": self.protocol,
            "input_error": self.input_error,
            "clifford_error": self.clifford_error,
            "shots": self.shots,
            "seed": self.seed,
            "accepted": self.accepted,
            "errors": self.errors,
            "confidence": self.confidence,
            "interval": "wilson",
            "acceptance_rate": self.acceptance_rate,
            "acceptance_interval": list(self.acceptance_interval),
            "output_error_rate": None if math.isnan(rate) else rate,
            "output_error_interval": list(self.output_error_interval),
        }


def run_distillation(
    proto: str | DistillationProtocol,
    *,
    input_error: float,
    shots: int,
    seed: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    clifford_error: float = 0.0,
) -> DistillationResult:
    """Sample ``shots`` runs of ``proto``'s circuit and count acceptances and output errors.

    The same protocol, input error, shots and seed give the same counts.

    Raises:
        QECError: ``QC111`` for an unknown protocol; ``QC103`` for ``input_error`` or
            ``clifford_error`` outside [0, 0.5] (a Clifford error for a protocol that does
            not model it), ``shots`` < 1 or a confidence outside (0, 1).
    """
    proto = protocol(proto)
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise QECError.of("bad-parameter", f"shots must be a whole number >= 1, got {shots!r}")
    if not 0 < confidence < 1:
        raise QECError.of("bad-parameter", f"confidence must lie in (0, 1), got {confidence!r}")
    circuit = distillation_circuit(proto, input_error, clifford_error=clifford_error)
    sampler = circuit.compile_detector_sampler(seed=seed)
    done = accepted = errors = 0
    while done < shots:
        take = min(CHUNK, shots - done)
        dets, obs = sampler.sample(take, bit_packed=True, separate_observables=True)
        ok = ~np.any(dets, axis=1)
        accepted += int(np.count_nonzero(ok))
        errors += int(np.count_nonzero(ok & np.any(obs, axis=1)))
        done += take
    return DistillationResult(
        protocol=proto.name,
        input_error=float(input_error),
        shots=shots,
        accepted=accepted,
        errors=errors,
        seed=seed,
        confidence=confidence,
        clifford_error=float(clifford_error),
    )
