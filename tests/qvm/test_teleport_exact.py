"""Teleported programs against exact theory.

Each circuit here is built twice: as a QVM graph, which :func:`qmk.qvm.teleport.teleport`
rewrites for a placement that puts its qubits on different modules (and the normal
verifier accepts), and as a numpy statevector of the *original* circuit, whose Born
probabilities are the exact distribution of its terminal measurements. The rewritten
program runs noiselessly (``noise=False``: no logical errors) for ``SHOTS`` shots at
``SEED``; its counts, keyed by the program's own events, must pass a chi-square test
against the exact distribution with p > ``P_MIN`` (cells below 5 expected pooled), show
no outcome of probability 0, and lie within ``TVD_MAX`` total variation of it.

With a link of Werner fidelity F the teleported CNOT is followed by I with probability
F and by each of X_t, Z_c, Z_c X_t with (1-F)/3 (the module docstring derives it): the
Bell state it makes from |+>|0> is measured in ZZ and in XX, and both distributions and
the gate fidelity estimated from them are checked against that theory.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from itertools import product

import numpy as np
import pytest
from scipy import stats

import qmk
from qmk.qvm.graph import Graph, from_json
from qmk.qvm.teleport import auto_placement, explicit_placement, teleport
from qmk.qvm.verify import verify

SHOTS = 4000
#: Shots of the programs that are not Clifford (simulated shot by shot: slower).
SLOW_SHOTS = 1500
SEED = 29_005
P_MIN = 1e-4
#: Total variation a correct run stays within at SHOTS shots (its expectation for
#: 2**6 outcomes is below 0.06).
TVD_MAX = 0.08
ZERO = 1e-12

Gate = tuple[str, tuple[int, ...], tuple[float, ...]]

_H = np.array([[1, 1], [1, -1]]) / math.sqrt(2)
_ONE = {
    "APPLY_H": lambda: _H,
    "APPLY_X": lambda: np.array([[0, 1], [1, 0]]),
    "APPLY_S": lambda: np.diag([1, 1j]),
    "APPLY_T": lambda: np.diag([1, np.exp(1j * math.pi / 4)]),
}


def _rotation(op: str, theta: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    if op == "APPLY_RX":
        return np.array([[c, -1j * s], [-1j * s, c]])
    if op == "APPLY_RY":
        return np.array([[c, -s], [s, c]])
    return np.diag([np.exp(-1j * theta / 2), np.exp(1j * theta / 2)])


def exact(n: int, gates: Sequence[Gate]) -> dict[str, float]:
    """Born probabilities of measuring every qubit at the end (qubit 0 leftmost)."""
    psi = np.zeros((2,) * n, dtype=complex)
    psi[(0,) * n] = 1.0
    for op, qs, params in gates:
        if op in _ONE or op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"):
            u = _ONE[op]() if op in _ONE else _rotation(op, params[0])
            psi = np.moveaxis(np.tensordot(u, psi, axes=([1], [qs[0]])), 0, qs[0])
            continue
        idx = np.indices(psi.shape)
        if op in ("APPLY_CZ", "APPLY_CCZ"):
            psi = psi * np.where(np.all([idx[q] == 1 for q in qs], axis=0), -1, 1)
        elif op in ("APPLY_CNOT", "APPLY_CCX"):
            *controls, target = qs
            flipped = np.flip(psi, axis=target)
            on = np.all([idx[q] == 1 for q in controls], axis=0)
            psi = np.where(on, flipped, psi)
        elif op == "APPLY_SWAP":
            psi = np.swapaxes(psi, qs[0], qs[1])
        else:
            raise AssertionError(op)
    probs = np.abs(psi) ** 2
    return {"".join(map(str, bits)): float(probs[bits]) for bits in product((0, 1), repeat=n)}


def graph_of(n: int, gates: Sequence[Gate], *, measure: str = "Z") -> Graph:
    """The circuit as a QVM graph: alloc, the gates, measure every qubit, free."""
    vqs = [f"q{i}" for i in range(n)]
    nodes: list[dict[str, object]] = [{"id": "alloc", "op": "ALLOC_LQ", "vqs": vqs}]
    for k, (op, qs, params) in enumerate(gates):
        node: dict[str, object] = {"id": f"g{k}", "op": op, "vqs": [vqs[q] for q in qs]}
        if params:
            node["args"] = {"theta": params[0]}
        nodes.append(node)
    for i in range(n):
        nodes.append(
            {"id": f"m{i}", "op": f"MEASURE_{measure}", "vqs": [vqs[i]], "produces": [f"e{i}"]}
        )
    nodes.append({"id": "free", "op": "FREE_LQ", "vqs": vqs})
    return from_json(
        {
            "version": "0.2",
            "program": {"nodes": nodes},
            "resources": {"vqs": vqs, "events": [f"e{i}" for i in range(n)]},
            "caps": ["CAP_ALLOC"],
        }
    )


def pooled(observed: list[int], expected: list[float]) -> tuple[list[float], list[float]]:
    """Cells with expected count below 5 merged into one (smallest first)."""
    pairs = sorted(zip(expected, observed, strict=True))
    obs: list[float] = []
    exp: list[float] = []
    acc_o = acc_e = 0.0
    for e, o in pairs:
        if e < 5:
            acc_o, acc_e = acc_o + o, acc_e + e
        else:
            obs.append(o)
            exp.append(e)
    if acc_e > 0:
        if acc_e < 5 and exp:
            obs[0] += acc_o
            exp[0] += acc_e
        else:
            obs.append(acc_o)
            exp.append(acc_e)
    return obs, exp


def assert_exact(counts: Mapping[str, int], expected: Mapping[str, float]) -> None:
    shots = sum(counts.values())
    impossible = {k: c for k, c in counts.items() if expected.get(k, 0.0) <= ZERO}
    assert not impossible, f"outcomes of probability 0 appeared: {impossible}"
    support = [k for k, p in expected.items() if p > ZERO]
    obs, exp = pooled([counts.get(k, 0) for k in support], [expected[k] * shots for k in support])
    if len(obs) >= 2:
        p = stats.chisquare(obs, exp).pvalue
        assert p > P_MIN, f"chi-square p = {p:.3g}: {dict(counts)} vs {dict(expected)}"
    tvd = 0.5 * sum(
        abs(counts.get(k, 0) / shots - expected.get(k, 0.0)) for k in set(counts) | set(expected)
    )
    assert tvd < TVD_MAX, f"TVD {tvd:.3f}"


def run_teleported(graph: Graph, placement, *, fidelity: float = 1.0, shots: int = SHOTS):
    done = teleport(graph, placement, fidelity=fidelity)
    verify(done.graph)  # the normal verifier accepts the rewritten program
    result = qmk.run(done.graph, shots=shots, seed=SEED, noise=False)
    return done, result


# -- two-qubit gates across two modules ------------------------------------------------


def test_cross_module_cnot_gives_the_exact_distribution() -> None:
    gates: list[Gate] = [
        ("APPLY_RY", (0,), (1.1,)),
        ("APPLY_RX", (1,), (0.7,)),
        ("APPLY_CNOT", (0, 1), ()),
    ]
    graph = graph_of(2, gates)
    done, result = run_teleported(graph, explicit_placement(graph, {"q0": 0, "q1": 1}))
    assert [g.node for g in done.gates] == ["g2"] and done.epr_pairs == 1
    assert result.telemetry.channel_uses == {"teleported-gate": 1}
    assert_exact(result.counts, exact(2, gates))


def test_cross_module_cz_gives_the_exact_distribution() -> None:
    gates: list[Gate] = [
        ("APPLY_H", (0,), ()),
        ("APPLY_RY", (1,), (0.9,)),
        ("APPLY_CZ", (0, 1), ()),
        ("APPLY_H", (0,), ()),
    ]
    graph = graph_of(2, gates)
    done, result = run_teleported(graph, explicit_placement(graph, {"q0": 1, "q1": 0}))
    assert done.gates[0].op == "APPLY_CZ" and done.epr_pairs == 1
    assert_exact(result.counts, exact(2, gates))


def test_ghz_across_two_modules_is_half_zeros_half_ones() -> None:
    gates: list[Gate] = [("APPLY_H", (0,), ())] + [("APPLY_CNOT", (i, i + 1), ()) for i in range(4)]
    graph = graph_of(5, gates)
    placement = explicit_placement(graph, {f"q{i}": i % 2 for i in range(5)})
    done, result = run_teleported(graph, placement)
    assert done.epr_pairs == 4
    assert set(result.counts) == {"00000", "11111"}
    assert_exact(result.counts, {"00000": 0.5, "11111": 0.5})


def test_swap_ccx_and_ccz_across_three_modules_give_the_exact_distribution() -> None:
    gates: list[Gate] = [
        ("APPLY_H", (0,), ()),
        ("APPLY_RY", (1,), (1.3,)),
        ("APPLY_H", (2,), ()),
        ("APPLY_T", (2,), ()),
        ("APPLY_CCX", (0, 1, 2), ()),
        ("APPLY_SWAP", (0, 2), ()),
        ("APPLY_H", (1,), ()),
        ("APPLY_CCZ", (0, 1, 2), ()),
        ("APPLY_H", (1,), ()),
        ("APPLY_H", (2,), ()),
    ]
    graph = graph_of(3, gates)
    placement = explicit_placement(graph, {"q0": 0, "q1": 1, "q2": 2})
    done, result = run_teleported(graph, placement, shots=SLOW_SHOTS)
    # CCX: two remote controls; SWAP: three CNOTs; CCZ: two remote qubits
    assert [len(g.pairs) for g in done.gates] == [2, 3, 2]
    assert_exact(result.counts, exact(3, gates))


@pytest.mark.parametrize(("seed", "clifford"), [(1, True), (2, True), (3, False), (4, False)])
def test_random_circuit_with_automatic_placement_gives_the_exact_distribution(
    seed: int, clifford: bool
) -> None:
    rng = random.Random(seed)
    n = 6
    ones = ["APPLY_H", "APPLY_S", "APPLY_X"] + (
        [] if clifford else ["APPLY_T", "APPLY_RX", "APPLY_RY"]
    )
    threes = [] if clifford else ["APPLY_CCX", "APPLY_CCZ"]
    gates: list[Gate] = []
    for _ in range(24):
        kind = rng.random()
        if kind < 0.45:
            op = rng.choice(ones)
            params = (rng.uniform(0, 2 * math.pi),) if op in ("APPLY_RX", "APPLY_RY") else ()
            gates.append((op, (rng.randrange(n),), params))
        elif kind < 0.9 or not threes:
            op = rng.choice(["APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP"])
            gates.append((op, tuple(rng.sample(range(n), 2)), ()))
        else:
            gates.append((rng.choice(threes), tuple(rng.sample(range(n), 3)), ()))
    # a last layer that turns phases into outcomes (a missing Z correction shows)
    for q in range(n):
        if clifford:
            gates.append(("APPLY_H", (q,), ()))
        else:
            gates.append(("APPLY_RY", (q,), (rng.uniform(0.3, 1.3),)))
    graph = graph_of(n, gates)
    # two modules of 5 logical qubits: the 6 qubits do not fit one
    placement = auto_placement(graph, [5, 5])
    assert sorted(placement.module_of.values()) == [0, 0, 0, 1, 1, 1]
    done, result = run_teleported(graph, placement, shots=SHOTS if clifford else SLOW_SHOTS)
    assert len(done.gates) >= 3, "the test wants several cross-module gates"
    assert max(done.peak_qubits) <= 5
    assert_exact(result.counts, exact(n, gates))


def test_cross_module_bell_measurement_gives_the_exact_parities() -> None:
    # |+>|0> = (Phi+ + Phi- + Psi+ - Psi-)/2: each parity pair (xx, zz) has probability
    # 1/4, and the pair is left in that Bell state, so za is fair and zb = za xor zz
    graph = from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "alloc", "op": "ALLOC_LQ", "vqs": ["a", "b"]},
                    {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
                    {
                        "id": "bell",
                        "op": "MEASURE_BELL",
                        "vqs": ["a", "b"],
                        "produces": ["xx", "zz"],
                    },
                    {"id": "ma", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["za"]},
                    {"id": "mb", "op": "MEASURE_Z", "vqs": ["b"], "produces": ["zb"]},
                    {"id": "free", "op": "FREE_LQ", "vqs": ["a", "b"]},
                ]
            },
            "resources": {"vqs": ["a", "b"], "events": ["xx", "zz", "za", "zb"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    done, result = run_teleported(graph, explicit_placement(graph, {"a": 0, "b": 1}))
    assert done.epr_pairs == 2
    expected = {f"{xx}{zz}{za}{za ^ zz}": 1 / 8 for xx, zz, za in product((0, 1), repeat=3)}
    assert_exact(result.counts, expected)
    plain = qmk.run(graph, shots=SHOTS, seed=SEED, noise=False)
    assert set(plain.counts) == set(expected)


def test_guarded_cross_module_gate_runs_only_when_its_guard_holds() -> None:
    graph = from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "alloc", "op": "ALLOC_LQ", "vqs": ["g", "c", "t"]},
                    {"id": "h", "op": "APPLY_H", "vqs": ["g"]},
                    {"id": "mg", "op": "MEASURE_Z", "vqs": ["g"], "produces": ["eg"]},
                    {"id": "x", "op": "APPLY_X", "vqs": ["c"]},
                    {
                        "id": "cx",
                        "op": "APPLY_CNOT",
                        "vqs": ["c", "t"],
                        "guard": {"event": "eg", "equals": 1},
                    },
                    {"id": "mt", "op": "MEASURE_Z", "vqs": ["t"], "produces": ["et"]},
                    {"id": "free", "op": "FREE_LQ", "vqs": ["g", "c", "t"]},
                ]
            },
            "resources": {"vqs": ["g", "c", "t"], "events": ["eg", "et"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    _, result = run_teleported(graph, explicit_placement(graph, {"g": 0, "c": 0, "t": 1}))
    assert_exact(result.counts, {"00": 0.5, "11": 0.5})


# -- a noisy link ----------------------------------------------------------------------


#: |+>|0> and an entangling gate that makes Phi+ of it: a CNOT, or a CZ between Hadamards
#: on the target (a Z error on the CZ's target leaves it as X: the same theory).
BELL_MAKERS: dict[str, list[Gate]] = {
    "cnot": [("APPLY_H", (0,), ()), ("APPLY_CNOT", (0, 1), ())],
    "cz": [
        ("APPLY_H", (0,), ()),
        ("APPLY_H", (1,), ()),
        ("APPLY_CZ", (0, 1), ()),
        ("APPLY_H", (1,), ()),
    ],
}


@pytest.mark.parametrize("maker", sorted(BELL_MAKERS))
@pytest.mark.parametrize("fidelity", [0.85, 0.97])
def test_a_werner_link_gives_the_teleported_gate_its_fidelity(fidelity: float, maker: str) -> None:
    """|+>|0> through the teleported CNOT is the Bell state Phi+ with probability F and
    Psi+ (X_t), Phi- (Z_c), Psi- (Z_c X_t) with (1-F)/3 each: measured in Z, the parity
    is odd with probability 2(1-F)/3 (X_t or Z_c X_t); measured in X, likewise (Z_c or
    Z_c X_t). F is estimated back from the two as 1 - 3/4 (p_zz + p_xx)."""
    wrong = (1 - fidelity) / 3
    odd: dict[str, float] = {}
    for basis in ("Z", "X"):
        graph = graph_of(2, BELL_MAKERS[maker], measure=basis)
        done, result = run_teleported(
            graph, explicit_placement(graph, {"q0": 0, "q1": 1}), fidelity=fidelity
        )
        assert done.fidelity == fidelity
        even, flip = (fidelity + wrong) / 2, wrong
        assert_exact(result.counts, {"00": even, "11": even, "01": flip, "10": flip})
        odd[basis] = (result.counts.get("01", 0) + result.counts.get("10", 0)) / SHOTS
    estimated = 1 - 0.75 * (odd["Z"] + odd["X"])
    # each odd fraction is binomial with p = 2(1-F)/3; 5 standard deviations of the estimate
    sigma = 0.75 * math.sqrt(2 * (2 * wrong) * (1 - 2 * wrong) / SHOTS)
    assert abs(estimated - fidelity) < 5 * sigma + 1e-9, (estimated, fidelity, sigma)
