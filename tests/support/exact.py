"""Exact output distributions of small gate-level programs, by dense numpy matrices.

Independent of QMK's engines: the gates are written out here from their textbook
matrices and the state is a dense vector. A Z measurement splits the state into its two
branches (each with its probability), so mid-circuit measurements, guarded gates
(``when ev:E == v``) and ``COND_PAULI`` are exact too.

Sampled counts are held to such a distribution by :func:`chi2_pvalue` (Pearson's p-value
over the distribution's cells) or :func:`assert_distribution` (no outcome of probability
0, and a chi-square fit over the possible ones, small cells pooled, with p > :data:`P_MIN`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from qmk.qvm.graph import Graph, Node
from qmk.qvm.output import layout_of

#: The p-value below which :func:`assert_distribution` rejects counts: a correct sampler
#: fails it with this probability per check (the seeds are fixed, so a run is reproducible).
P_MIN = 1e-4
#: Expected probabilities below this are "impossible": such an outcome must never appear.
ZERO = 1e-12

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


#: A measurement's basis turned onto Z's: |+> and |+i> (outcome 0) to |0>.
_TO_Z = {
    "MEASURE_Z": np.eye(2),
    "MEASURE_X": _ONE["APPLY_H"],
    "MEASURE_Y": _ONE["APPLY_H"] @ _ONE["APPLY_SDG"],
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
    ``n``-qubit state held as a tensor with one axis per qubit: each output slice of the
    qubits' axes a sum of input slices (elementwise: no BLAS, whose threads a busy host
    wakes slowly)."""
    k = len(qubits)
    gate = np.asarray(matrix, dtype=complex).reshape(2**k, 2**k)
    moved = np.moveaxis(state, qubits, list(range(k)))
    parts = moved.reshape((2**k, *moved.shape[k:]))
    out = np.zeros_like(parts)
    for i in range(2**k):
        for j in range(2**k):
            if gate[i, j] != 0:
                out[i] += gate[i, j] * parts[j]
    return np.moveaxis(out.reshape(moved.shape), list(range(k)), qubits)


def _gate(state: np.ndarray, node: Node, where: list[int], n: int) -> np.ndarray:
    if node.op in _ONE:
        return _apply(state, _ONE[node.op], where, n)
    if node.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"):
        return _apply(state, _rotation(node.op[-1], float(node.args["theta"])), where, n)
    if node.op == "INJECT_T_STATE":  # T|+> on a qubit _reset left in |0>
        state = _apply(state, _ONE["APPLY_H"], where, n)
        return _apply(state, _ONE["APPLY_T"], where, n)
    if node.op == "COND_PAULI":
        mask = str(node.args["mask"])
        return state if mask == "I" else _apply(state, _ONE["APPLY_" + mask], where, n)
    return _apply(state, _MULTI[node.op], where, n)


def _reset(state: np.ndarray, where: list[int], n: int) -> list[np.ndarray]:
    """The branches of ``where``'s qubits returned to |0>: each qubit's |1> part is moved
    onto |0> (a Z measurement and an X on 1, the outcome forgotten)."""
    parts = [state]
    for q in where:
        grown = []
        for part in parts:
            for bit in (0, 1):
                index = [slice(None)] * n
                index[q] = bit
                piece = np.zeros_like(part)
                zero = list(index)
                zero[q] = 0
                piece[tuple(zero)] = part[tuple(index)]
                if np.vdot(piece, piece).real > 1e-14:
                    grown.append(piece)
        parts = grown
    return parts


def _runs(node: Node, outcomes: Mapping[str, int]) -> bool:
    if node.guard is not None and any(outcomes[t.event] != t.equals for t in node.guard.terms):
        return False
    return node.op != "COND_PAULI" or sum(outcomes[e] for e in node.inputs) % 2 == 1


def exact_distribution(graph: Graph) -> dict[str, float]:
    """Each outcome key (as ``qmk run`` writes it) with its exact probability."""
    qubits = {q: i for i, q in enumerate(graph.resources.vqs)}
    n = len(qubits)
    start = np.zeros((2,) * n, dtype=complex)
    start[(0,) * n] = 1.0
    branches: list[tuple[np.ndarray, dict[str, int]]] = [(start, {})]
    for node in graph.nodes:
        where = [qubits[v] for v in node.vqs]
        if node.op in ("FREE_LQ", "FENCE_EPOCH"):
            continue
        grown = []
        for state, outcomes in branches:
            if not _runs(node, outcomes):
                grown.append((state, outcomes))
            elif node.op in ("ALLOC_LQ", "RESET", "INJECT_T_STATE"):
                for part in _reset(state, where, n):
                    grown.append(
                        (
                            part if node.op != "INJECT_T_STATE" else _gate(part, node, where, n),
                            outcomes,
                        )
                    )
            elif node.op == "MEASURE_Z":
                for bit in (0, 1):
                    part = state.copy()
                    index = [slice(None)] * n
                    index[where[0]] = 1 - bit
                    part[tuple(index)] = 0
                    if np.vdot(part, part).real > 1e-14:
                        grown.append((part, {**outcomes, node.produces[0]: bit}))
            else:
                grown.append((_gate(state, node, where, n), outcomes))
        branches = grown
    events = tuple(graph.resources.events)
    keys = layout_of(graph.metadata, events)
    out: dict[str, float] = {}
    for state, outcomes in branches:
        p = float(np.vdot(state, state).real)
        outcome = "".join(str(outcomes.get(e, 0)) for e in events)
        key = keys.key(outcome) if keys is not None else outcome
        out[key] = out.get(key, 0.0) + p
    return out


def _matrix(node: Node) -> np.ndarray:
    """A gate node's matrix (its first qubit the most significant bit)."""
    if node.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"):
        return _rotation(node.op[-1], float(node.args["theta"]))
    return np.asarray(_ONE.get(node.op, _MULTI.get(node.op)), dtype=complex)


def noisy_distribution(plan: Any) -> dict[str, float]:
    """Each outcome key of a plan's program with its logical noise, exactly: a density
    matrix (a tensor of ``n`` ket axes, then ``n`` bra axes) through the gates, with each
    noise location's Pauli channel where the plan puts it (``plan.noise``: the step,
    before or after it, the qubit, ``px py pz``). For programs of one- and two-qubit
    gates whose measurements (Z, X or Y) all come after their qubits' gates."""
    graph = plan.program.graph
    qubits = {q: i for i, q in enumerate(graph.resources.vqs)}
    n = len(qubits)
    rho = np.zeros((2,) * (2 * n), dtype=complex)
    rho[(0,) * (2 * n)] = 1.0
    noise: dict[tuple[int, bool], list[Any]] = {}
    for loc in plan.noise:
        noise.setdefault((loc.step, loc.before), []).append(loc)

    def conj(rho: np.ndarray, u: np.ndarray, where: list[int]) -> np.ndarray:
        rho = _apply(rho, u, where, 2 * n)
        return _apply(rho, np.conj(u), [n + q for q in where], 2 * n)

    def channel(rho: np.ndarray, step: int, before: bool) -> np.ndarray:
        # X rho X flips the qubit's ket and bra axes; Z rho Z signs them ((-1)**(ket +
        # bra)); Y rho Y^dagger is both (its phases i and -i multiply to those signs)
        for loc in noise.get((step, before), ()):
            q = qubits[loc.qubit]
            flipped = np.flip(rho, axis=(q, n + q))
            ket = np.array([1.0, -1.0]).reshape([2 if a == q else 1 for a in range(2 * n)])
            signs = ket * np.moveaxis(ket, q, n + q)
            rho = (
                (1.0 - loc.total) * rho
                + loc.px * flipped
                + loc.py * signs * flipped
                + loc.pz * signs * rho
            )
        return rho

    measured: dict[str, int] = {}
    for at, (node, kind) in enumerate(zip(plan.steps.nodes, plan.steps.kinds, strict=True)):
        rho = channel(rho, at, True)
        if kind == "gate":
            assert not measured.keys() & set(node.vqs), "a gate after a measurement"
            rho = conj(rho, _matrix(node), [qubits[v] for v in node.vqs])
        elif kind == "measure":
            assert node.op in _TO_Z, node.op
            if node.op != "MEASURE_Z":  # its basis turned onto Z's, then read as Z
                rho = conj(rho, _TO_Z[node.op], [qubits[node.vqs[0]]])
            measured[node.produces[0]] = qubits[node.vqs[0]]
        rho = channel(rho, at, False)
    diagonal = np.real(np.einsum(rho.reshape(2**n, 2**n), [0, 0], [0])).reshape((2,) * n)
    events = tuple(graph.resources.events)
    keys = layout_of(graph.metadata, events)
    out: dict[str, float] = {}
    for index in np.ndindex(*diagonal.shape):
        outcome = "".join(str(index[measured[e]]) if e in measured else "0" for e in events)
        key = keys.key(outcome) if keys is not None else outcome
        out[key] = out.get(key, 0.0) + max(float(diagonal[index]), 0.0)
    return out


def chi2_pvalue(counts: Mapping[str, int], expected: Mapping[str, float]) -> float:
    """Pearson's chi-square p-value of ``counts`` against ``expected`` probabilities over
    the possible outcomes, cells pooled (:func:`pooled`) until each expects 5 or more; 0
    when an outcome outside the support appeared, 1 when fewer than two cells remain."""
    from scipy import stats

    if any(expected.get(k, 0.0) <= ZERO for k, n in counts.items() if n):
        return 0.0
    shots = sum(counts.values())
    support = [k for k, p in expected.items() if p > ZERO]
    total = sum(expected[k] for k in support)
    observed = [counts.get(k, 0) for k in support]
    expect = [expected[k] * shots / total for k in support]
    obs_bins, exp_bins = pooled(observed, expect)
    if len(obs_bins) < 2:
        return 1.0
    return float(stats.chisquare(obs_bins, exp_bins).pvalue)


def pooled(observed: list[int], expected: list[float], minimum: float = 5.0):
    """Pool cells (smallest expected first) until every pooled cell expects >= ``minimum``."""
    order = sorted(range(len(expected)), key=lambda i: expected[i])
    obs_bins: list[int] = []
    exp_bins: list[float] = []
    o = e = 0.0
    for i in order:
        o += observed[i]
        e += expected[i]
        if e >= minimum:
            obs_bins.append(int(o))
            exp_bins.append(e)
            o = e = 0.0
    if e > 0 or o > 0:
        if exp_bins:
            obs_bins[-1] += int(o)
            exp_bins[-1] += e
        else:
            obs_bins.append(int(o))
            exp_bins.append(e)
    return obs_bins, exp_bins


def assert_distribution(counts: Mapping[str, int], expected: Mapping[str, float], shots: int):
    """No impossible outcome, and a chi-square fit (:func:`chi2_pvalue`) with p > P_MIN."""
    impossible = {k: n for k, n in counts.items() if n and expected.get(k, 0.0) <= ZERO}
    assert not impossible, f"outcomes of probability 0 appeared: {impossible}"
    assert sum(counts.values()) == shots
    pvalue = chi2_pvalue(counts, expected)
    assert pvalue > P_MIN, (
        f"chi-square p = {pvalue:.3g}; observed {dict(counts)}, expected "
        f"{ ({k: round(p * shots, 1) for k, p in expected.items() if p > ZERO}) }"
    )
