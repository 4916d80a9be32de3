"""Exact output distributions of small gate-level programs, by dense numpy matrices.

Independent of QMK's engines: the gates are written out here from their textbook
matrices, the state is a dense vector, and every measurement must come after every gate
(terminal measurements, the programs of the fault-tolerant execution tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from qmk.qvm.graph import Graph
from qmk.qvm.output import layout_of

_S2 = 1 / math.sqrt(2)
_ONE = {
    "APPLY_H": np.array([[_S2, _S2], [_S2, -_S2]]),
    "APPLY_X": np.array([[0, 1], [1, 0]]),
    "APPLY_Y": np.array([[0, -1j], [1j, 0]]),
    "APPLY_Z": np.diag([1, -1]),
    "APPLY_S": np.diag([1, 1j]),
    "APPLY_SDG": np.diag([1, -1j]),
    "APPLY_T": np.diag([1, np.exp(1j * math.pi / 4)]),
    "APPLY_TDG": np.diag([1, np.exp(-1j * math.pi / 4)]),
}


def _rotation(axis: str, theta: float) -> np.ndarray:
    pauli = {"X": _ONE["APPLY_X"], "Y": _ONE["APPLY_Y"], "Z": _ONE["APPLY_Z"]}[axis]
    return math.cos(theta / 2) * np.eye(2) - 1j * math.sin(theta / 2) * pauli


def _controlled(n_controls: int, target: np.ndarray) -> np.ndarray:
    size = 2 ** (n_controls + 1)
    out = np.eye(size, dtype=complex)
    out[size - 2 :, size - 2 :] = target
    return out


_MULTI = {
    "APPLY_CNOT": _controlled(1, _ONE["APPLY_X"]),
    "APPLY_CZ": _controlled(1, _ONE["APPLY_Z"]),
    "APPLY_SWAP": np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
    "APPLY_CCX": _controlled(2, _ONE["APPLY_X"]),
    "APPLY_CCZ": _controlled(2, _ONE["APPLY_Z"]),
}


def _apply(state: np.ndarray, matrix: np.ndarray, qubits: list[int], n: int) -> np.ndarray:
    """``matrix`` on ``qubits`` (first qubit most significant in the matrix) of an
    ``n``-qubit state held as a tensor with one axis per qubit."""
    k = len(qubits)
    gate = np.asarray(matrix, dtype=complex).reshape((2,) * (2 * k))
    moved = np.tensordot(gate, state, axes=(list(range(k, 2 * k)), qubits))
    return np.moveaxis(moved, list(range(k)), qubits)


def exact_distribution(graph: Graph) -> dict[str, float]:
    """Each outcome key (as ``qmk run`` writes it) with its exact probability."""
    qubits = {q: i for i, q in enumerate(graph.resources.vqs)}
    n = len(qubits)
    state = np.zeros((2,) * n, dtype=complex)
    state[(0,) * n] = 1.0
    measured: dict[str, int] = {}
    for node in graph.nodes:
        where = [qubits[v] for v in node.vqs]
        if node.op in ("ALLOC_LQ", "FREE_LQ"):
            continue
        if node.op == "MEASURE_Z":
            measured[node.produces[0]] = where[0]
            continue
        assert not measured, f"{node.id}: a gate after a measurement"
        if node.op in _ONE:
            state = _apply(state, _ONE[node.op], where, n)
        elif node.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"):
            state = _apply(state, _rotation(node.op[-1], float(node.args["theta"])), where, n)
        else:
            state = _apply(state, _MULTI[node.op], where, n)
    probs = np.abs(state.reshape(-1)) ** 2
    events = tuple(graph.resources.events)
    keys = layout_of(graph.metadata, events)
    out: dict[str, float] = {}
    for index, p in enumerate(probs):
        if p < 1e-12:
            continue
        bits = [(index >> (n - 1 - q)) & 1 for q in range(n)]
        outcome = "".join(str(bits[measured[e]]) if e in measured else "0" for e in events)
        key = keys.key(outcome) if keys is not None else outcome
        out[key] = out.get(key, 0.0) + float(p)
    return out


def chi2_pvalue(counts: Mapping[str, int], expected: Mapping[str, float]) -> float:
    """Pearson's chi-square p-value of ``counts`` against ``expected`` probabilities (an
    outcome outside the support gives 0)."""
    from scipy.stats import chi2

    shots = sum(counts.values())
    if any(expected.get(k, 0.0) <= 0 for k in counts):
        return 0.0
    cells = [(counts.get(k, 0), p * shots) for k, p in expected.items()]
    stat = sum((o - e) ** 2 / e for o, e in cells)
    return float(chi2.sf(stat, max(1, len(cells) - 1)))
