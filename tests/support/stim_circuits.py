"""The stim target's test circuits, and the comparison of detector flip rates with stim's.

Circuits: stim's own generators (repetition code, rotated and unrotated surface codes in
X and Z memory, color code) under circuit-level noise as QEC papers write it, and one
circuit with every instruction stim users write (:data:`EVERY_INSTRUCTION`).

Statistics (:func:`assert_same_rates`): each column (a detector, an observable) of two
samples is compared by a two-proportion z test; every column must reach
p > ``ALPHA / columns`` (Bonferroni: a correct sampler fails a comparison with
probability below ``ALPHA``), and the histogram of detection events per shot by a
chi-square test of homogeneity at p > ``ALPHA``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import stim
from scipy import stats

from support.frontends import homogeneity_p

#: Family-wise false-alarm rate of one comparison of two samples.
ALPHA = 1e-4

#: The noise of stim's generated circuits, as QEC papers set it (every kind at ``p``).
NOISE = (
    "after_clifford_depolarization",
    "before_measure_flip_probability",
    "after_reset_flip_probability",
    "before_round_data_depolarization",
)

#: stim's generated tasks the tests run, each at distances 3 and 5.
TASKS = (
    "repetition_code:memory",
    "surface_code:rotated_memory_x",
    "surface_code:rotated_memory_z",
    "surface_code:unrotated_memory_z",
    "color_code:memory_xyz",
)

#: Every instruction of the issue's list in one circuit: Pauli and depolarizing channels,
#: correlated chains, heralded channels, pads, products, sweep bits, noisy measurements,
#: resets in three bases, REPEAT, coordinates, detectors and observables.
EVERY_INSTRUCTION = """\
QUBIT_COORDS(0, 0) 0
QUBIT_COORDS(1, 0) 1
R 0 1 2 3
RX 4
RY 5
TICK
H 0
CX 0 1
DEPOLARIZE2(0.02) 0 1
PAULI_CHANNEL_2({PAIRS}) 2 3
X_ERROR(0.01) 2
Y_ERROR(0.01) 3
Z_ERROR(0.01) 4
DEPOLARIZE1(0.03) 5
PAULI_CHANNEL_1(0.01, 0.02, 0.03) 1
E(0.02) X0 Z1
ELSE_CORRELATED_ERROR(0.03) Y2
HERALDED_ERASE(0.02) 3
HERALDED_PAULI_CHANNEL_1(0.01, 0.02, 0.03, 0.04) 2
CX sweep[0] 3
REPEAT 3 {
    MPP(0.01) Z0*Z1 X4
    MR(0.02) 2
    MRX 4
    DETECTOR(0, 0, 0) rec[-3]
    SHIFT_COORDS(0, 0, 1)
    TICK
}
MPAD 0 1
MPAD(0.05) 0
M(0.01) 0 1
MY 5
DETECTOR rec[-2] rec[-3] rec[-20]
OBSERVABLE_INCLUDE(0) rec[-2] rec[-3]
OBSERVABLE_INCLUDE(1) rec[-1] rec[-6]
""".replace("{PAIRS}", ", ".join(str(k / 1000) for k in range(1, 16)))


def generated(task: str, distance: int, p: float, rounds: int | None = None) -> stim.Circuit:
    """stim's generated ``task`` at ``distance`` (``rounds``: the distance) with every kind
    of noise at ``p``."""
    return stim.Circuit.generated(
        task, distance=distance, rounds=rounds or distance, **{kind: p for kind in NOISE}
    )


def noisy_d5_surface_code() -> stim.Circuit:
    """A noisy d=5 surface code (rotated, Z memory, 5 rounds, p = 0.001) with the noise
    QMK's QVM lowering read before its two-qubit channels (data depolarized each round,
    flipped resets and measurements): the circuit it once routed to aer-mps, which died
    after two minutes."""
    return stim.Circuit.generated(
        "surface_code:rotated_memory_z",
        distance=5,
        rounds=5,
        before_round_data_depolarization=0.001,
        before_measure_flip_probability=0.001,
        after_reset_flip_probability=0.001,
    )


def _z_p(a: int, n: int, b: int, m: int) -> float:
    """Two-sided p-value of "a/n and b/m estimate one rate" (pooled z test)."""
    pooled = (a + b) / (n + m)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (a / n - b / m) / np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return float(2 * stats.norm.sf(abs(z)))


def assert_same_rates(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    """Each column of ``ours`` and ``theirs`` (0/1 rows, one per shot) fires at one rate,
    and the shots' weights are distributed alike (the module docstring)."""
    assert ours.shape[1] == theirs.shape[1], (label, ours.shape, theirs.shape)
    n, m = len(ours), len(theirs)
    a, b = ours.sum(axis=0, dtype=np.int64), theirs.sum(axis=0, dtype=np.int64)
    columns = max(ours.shape[1], 1)
    worst = min((_z_p(int(x), n, int(y), m) for x, y in zip(a, b, strict=True)), default=1.0)
    assert worst > ALPHA / columns, f"{label}: a column's p = {worst:.2e} (rates {a / n}, {b / m})"
    weights = (
        {str(k): int(c) for k, c in zip(*np.unique(s.sum(axis=1), return_counts=True), strict=True)}
        for s in (ours, theirs)
    )
    p = homogeneity_p(next(weights), next(weights))
    assert p > ALPHA, f"{label}: detection weights differ, p = {p:.2e}"


def unwritable(qubits: int, turns: int = 3) -> dict[str, Any]:
    """A QVM 0.3 program on ``qubits`` qubits with a REPEAT row of ``turns`` T gates, which
    stim has no instruction for: it reads and verifies, and the stim target refuses it
    only where it writes the circuit (``QE103``, naming ``'t' (APPLY_T)``)."""
    handles = [f"q{k}" for k in range(qubits)]
    return {
        "version": "0.3",
        "program": {
            "nodes": [
                {"id": "a", "op": "ALLOC_LQ", "vqs": handles},
                {
                    "id": "r",
                    "op": "REPEAT",
                    "args": {"count": turns},
                    "body": [{"id": "t", "op": "APPLY_T", "vqs": ["q0"]}],
                },
                {"id": "m", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["e"]},
                {"id": "f", "op": "FREE_LQ", "vqs": handles},
            ]
        },
        "resources": {"vqs": handles, "chs": [], "events": ["e"]},
        "caps": ["CAP_ALLOC"],
    }
