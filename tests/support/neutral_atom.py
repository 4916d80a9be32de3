"""Helpers of the neutral-atom device tests: an exact density-matrix reference, wire-form
job builders and a chi-square check of sampled counts against exact probabilities."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2

from qmk.engines.gates import GATES

PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.diag([1, -1]).astype(complex),
}


class DensityMatrix:
    """An exact n-qubit density matrix (qubit 0 the most significant bit)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rho = np.zeros((2**n, 2**n), dtype=complex)
        self.rho[0, 0] = 1.0

    def _lift(self, matrix: np.ndarray, qubits: Sequence[int]) -> np.ndarray:
        # Permute so the gate's qubits come first, then tensor with the identity.
        k = len(qubits)
        rest = [q for q in range(self.n) if q not in qubits]
        order = list(qubits) + rest
        full = np.kron(matrix, np.eye(2 ** (self.n - k)))
        perm = np.zeros((2**self.n, 2**self.n))
        for index in range(2**self.n):
            bits = [(index >> (self.n - 1 - q)) & 1 for q in range(self.n)]
            permuted = [bits[q] for q in order]
            target = int("".join(map(str, permuted)), 2)
            perm[target, index] = 1
        return perm.T @ full @ perm

    def gate(self, name: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        u = self._lift(GATES[name].matrix(params), qubits)
        self.rho = u @ self.rho @ u.conj().T

    def kraus(self, ops: Sequence[np.ndarray], qubits: Sequence[int]) -> None:
        lifted = [self._lift(k, qubits) for k in ops]
        self.rho = sum(k @ self.rho @ k.conj().T for k in lifted)

    def pauli1(self, q: int, px: float, py: float, pz: float) -> None:
        ops = [np.sqrt(1 - px - py - pz) * PAULI["I"]]
        ops += [np.sqrt(p) * PAULI[s] for p, s in ((px, "X"), (py, "Y"), (pz, "Z"))]
        self.kraus(ops, [q])

    def pauli2(self, a: int, b: int, probs: Mapping[str, float]) -> None:
        rest = 1 - sum(probs.values())
        ops = [np.sqrt(rest) * np.eye(4)]
        ops += [np.sqrt(p) * np.kron(PAULI[k[0]], PAULI[k[1]]) for k, p in probs.items()]
        self.kraus(ops, [a, b])

    def damp(self, q: int, gamma: float) -> None:
        k0 = np.array([[1, 0], [0, np.sqrt(1 - gamma)]], dtype=complex)
        k1 = np.array([[0, np.sqrt(gamma)], [0, 0]], dtype=complex)
        self.kraus([k0, k1], [q])

    def probabilities(self, qubits: Sequence[int]) -> dict[str, float]:
        """The Z-basis distribution of ``qubits`` as counts keys (first leftmost)."""
        diagonal = np.real(np.diag(self.rho))
        out: dict[str, float] = {}
        for index, p in enumerate(diagonal):
            bits = [(index >> (self.n - 1 - q)) & 1 for q in range(self.n)]
            key = "".join(str(bits[q]) for q in qubits)
            out[key] = out.get(key, 0.0) + float(p)
        return out


def assert_counts_match(
    counts: Mapping[str, int], expected: Mapping[str, float], *, alpha: float = 1e-4
) -> None:
    """Chi-square goodness of fit of ``counts`` to ``expected`` probabilities (at the test's
    stated seed the outcome is fixed; alpha bounds how unlucky a correct sampler can be)."""
    shots = sum(counts.values())
    keys = sorted(set(counts) | {k for k, p in expected.items() if p > 0})
    impossible = [k for k in keys if expected.get(k, 0.0) <= 1e-12 and counts.get(k, 0)]
    assert not impossible, f"outcomes of probability 0 came up: {impossible}"
    bins = [(counts.get(k, 0), expected[k] * shots) for k in keys if expected.get(k, 0.0) > 1e-12]
    stat = sum((o - e) ** 2 / e for o, e in bins)
    df = max(1, len(bins) - 1)
    p_value = chi2.sf(stat, df)
    assert p_value > alpha, (
        f"chi-square {stat:.1f} (df {df}, p {p_value:.2e}): {counts} vs {expected}"
    )


def job(
    n: int, *ops: dict[str, Any], noise: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A wire-form job: AllocArray n, the ops, and (unless they measure) Measure all."""
    program: list[dict[str, Any]] = [{"op": "AllocArray", "n_qubits": n}, *ops]
    if not any(op["op"] == "Measure" for op in ops):
        program.append({"op": "Measure", "targets": list(range(n))})
    out: dict[str, Any] = {"program": program, **fields}
    if noise is not None:
        out["noise"] = noise
    return out


def gate(name: str, *targets: int, param: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"op": "ApplyGate", "name": name, "targets": list(targets)}
    if param is not None:
        out["param"] = param
    return out


def wait(ns: float) -> dict[str, Any]:
    return {"op": "Wait", "duration": ns}


def measure(*targets: int) -> dict[str, Any]:
    return {"op": "Measure", "targets": list(targets)}


#: A path through the noisy square array's 4x4 sites: each step joins neighbours within
#: its blockade radius.
SNAKE = (0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11, 15, 14, 13, 12)


def wide_ghz(shots: int, seed: int, job_id: str = "wide-ghz") -> dict[str, Any]:
    """A GHZ state on all 16 atoms of the noisy square array, on the statevector: gate
    noise, dephasing and amplitude damping at every step (trajectories, the costly case
    of the emulator's shots)."""
    cx = [gate("CX", a, b) for a, b in itertools.pairwise(SNAKE)]
    return job(
        16,
        gate("H", SNAKE[0]),
        *cx,
        measure(*SNAKE),
        job_id=job_id,
        profile="noisy_square_array",
        device_id="state-vector",
        shots=shots,
        seed=seed,
    )


def noisy_snake(n: int, shots: int, seed: int = 7) -> dict[str, Any]:
    """A noisy non-Clifford program on ``n`` atoms of the noisy square array (gate noise,
    dephasing, damping: stacked trajectories up to 14 atoms): a GHZ chain along
    :data:`SNAKE`, then RX(0.3) on every atom and CZs along the chain."""
    order = SNAKE[:n]
    return job(
        n,
        gate("H", order[0]),
        *(gate("CX", a, b) for a, b in itertools.pairwise(order)),
        *(gate("RX", a, param=0.3) for a in range(n)),
        *(gate("CZ", a, b) for a, b in itertools.pairwise(order)),
        job_id=f"noisy-snake-{n}",
        profile="noisy_square_array",
        shots=shots,
        seed=seed,
    )


def device_submit(
    q_submit: Any,
    job: Any,
    device: str | None = None,
    shots: int | None = None,
    seed: int | None = None,
    policy: Mapping[str, Any] | None = None,
    **more: Any,
) -> Any:
    """A wire-form job submitted with ``q_submit`` (a client's, or a kernel's with its
    ``session_id`` in ``more``) to the target ``neutral-atom``: at the job's own shots
    (one when it gives none) and seed unless given, ``device`` as the policy's preset,
    as ``qmk device submit`` submits it."""
    own = job if isinstance(job, Mapping) else {}
    if device is not None:
        policy = {**(policy or {}), "preset": device}
    return q_submit(
        graph=job,
        shots=own.get("shots", 1) if shots is None else shots,
        seed=own.get("seed") if seed is None else seed,
        policy=policy,
        target="neutral-atom",
        **more,
    )


def circuit_distribution(circuit: Any) -> dict[str, float]:
    """The exact distribution of the recorded bits of a lowered device circuit
    (:class:`qmk.devices.neutral_atom.circuit.Circuit`), as counts keys: its density
    matrix carried through every step with the noise IR's own Kraus operators (Pauli
    channels, amplitude damping), then the readout flips. A measurement whose atom a later
    step touches copies its bit onto an ancilla of its own (the record), which dephases
    the atom as the measurement does. Loss is not modelled: the circuit must have none.
    """
    from qmk.devices.neutral_atom.circuit import StepKind
    from qmk.devices.neutral_atom.noise import NoiseKind

    steps = circuit.steps
    assert circuit.p_loss == 0.0, "loss is not modelled here"
    last = {a: k for k, s in enumerate(steps) for a in s.atoms}
    mid = [k for k, s in enumerate(steps) if s.kind is StepKind.MEASURE and last[s.atoms[0]] > k]
    n = circuit.n_atoms + len(mid)
    ancilla = {k: circuit.n_atoms + j for j, k in enumerate(mid)}
    rho = np.zeros((2,) * (2 * n), dtype=complex)
    rho[(0,) * (2 * n)] = 1.0

    def apply(r: np.ndarray, op: np.ndarray, qubits: Sequence[int]) -> np.ndarray:
        k = len(qubits)
        t = op.reshape((2,) * (2 * k))
        r = np.moveaxis(np.tensordot(t, r, axes=(range(k, 2 * k), qubits)), range(k), qubits)
        cols = [n + q for q in qubits]
        return np.moveaxis(np.tensordot(t.conj(), r, axes=(range(k, 2 * k), cols)), range(k), cols)

    def channel(r: np.ndarray, ops: Sequence[np.ndarray], qubits: Sequence[int]) -> np.ndarray:
        return sum((apply(r, op, qubits) for op in ops), np.zeros_like(r))

    letters = [PAULI[c] for c in "IXYZ"]
    cx = GATES["cx"].matrix()
    column: dict[int, int] = {}  # record -> qubit holding it at the end
    for k, step in enumerate(steps):
        atoms = list(step.atoms)
        if step.kind is StepKind.GATE:
            for name, params in step.gates:
                rho = apply(rho, GATES[name].matrix(params), atoms)
        elif step.kind is StepKind.MEASURE:
            if k in ancilla:
                rho = apply(rho, cx, [atoms[0], ancilla[k]])
            column[step.record] = ancilla.get(k, atoms[0])
        elif step.kind is StepKind.RESET:
            reset = [np.array([[1, 0], [0, 0]]), np.array([[0, 1], [0, 0]])]
            rho = channel(rho, [r.astype(complex) for r in reset], atoms)
        else:
            noise = step.noise
            assert noise.kind is not NoiseKind.LOSS, "loss is not modelled here"
            if noise.kind is NoiseKind.DAMP:
                g = noise.probs[0]
                ops = [np.diag([1, np.sqrt(1 - g)]), np.array([[0, np.sqrt(g)], [0, 0]])]
                rho = channel(rho, [o.astype(complex) for o in ops], atoms)
            elif noise.kind is NoiseKind.PAULI1:
                px, py, pz = noise.probs
                probs = (1 - px - py - pz, px, py, pz)
                rho = channel(
                    rho, [np.sqrt(p) * m for p, m in zip(probs, letters, strict=True)], atoms
                )
            else:  # PAULI2: 16 pairs, 4 * first + second; I x I takes what the 15 leave
                probs = (1 - sum(noise.probs[1:]), *noise.probs[1:])
                ops = [
                    np.sqrt(p) * np.kron(letters[j // 4], letters[j % 4])
                    for j, p in enumerate(probs)
                    if p > 0
                ]
                rho = channel(rho, ops, atoms)
    diagonal = np.real(np.diagonal(rho.reshape(2**n, 2**n)))
    p01, p10 = circuit.readout
    flip = np.array([[1 - p01, p01], [p10, 1 - p10]])  # [true bit, read bit]
    recorded = np.zeros((2,) * circuit.n_bits)
    for index, p in enumerate(diagonal):
        if p <= 0:
            continue
        bits = tuple((index >> (n - 1 - column[r])) & 1 for r in range(circuit.n_bits))
        recorded[bits] += p
    for r in range(circuit.n_bits):
        recorded = np.moveaxis(np.tensordot(flip.T, recorded, axes=(1, r)), 0, r)
    return {
        "".join(map(str, key)): float(recorded[key])
        for key in itertools.product((0, 1), repeat=circuit.n_bits)
    }


def chi_square_p(
    counts: Mapping[str, int], expected: Mapping[str, float], *, min_expected: float = 5.0
) -> float:
    """The p-value of Pearson's chi-square of ``counts`` against ``expected``
    probabilities, the outcomes expected fewer than ``min_expected`` times pooled into
    one bin (so that every bin holds enough for the chi-square law). An outcome of
    probability 0 that came up gives 0."""
    shots = sum(counts.values())
    if any(expected.get(k, 0.0) <= 1e-15 for k, c in counts.items() if c):
        return 0.0
    big = [k for k, p in expected.items() if p * shots >= min_expected]
    pooled_p = 1.0 - sum(expected[k] for k in big)
    pooled_c = shots - sum(counts.get(k, 0) for k in big)
    bins = [(counts.get(k, 0), expected[k] * shots) for k in big]
    if pooled_p * shots > 1e-9:
        bins.append((pooled_c, pooled_p * shots))
    stat = sum((o - e) ** 2 / e for o, e in bins)
    return float(chi2.sf(stat, max(1, len(bins) - 1)))
