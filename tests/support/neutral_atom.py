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


def bits_of(n: int) -> list[str]:
    """Every n-bit key."""
    return ["".join(b) for b in itertools.product("01", repeat=n)]


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
