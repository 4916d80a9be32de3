"""Cirq ``CircuitOperation`` repetitions read folded: a repeated sub-circuit that measures
nothing is one REPEAT row, which samples as cirq.Simulator samples the circuit and counts
by multiplication (issue 76)."""

from __future__ import annotations

from collections import Counter

import pytest

cirq = pytest.importorskip("cirq")

from qmk.estimate import count_graph  # noqa: E402
from qmk.execution.runs import run  # noqa: E402
from qmk.frontends.cirq import from_cirq  # noqa: E402
from qmk.frontends.errors import FrontendError  # noqa: E402
from qmk.qvm.fold import rows, unroll  # noqa: E402
from qmk.qvm.verify import check  # noqa: E402
from support.frontends import assert_same_distribution, tvd  # noqa: E402

SHOTS = 4000
SEED = 20261128
Q = cirq.LineQubit.range(3)


def repeats(nodes) -> list:
    return [n for n in nodes if n.op == "REPEAT"]


def repeated(turns: int, inner: int, inverse_turns: int = 0):
    """H, then a sub-circuit repeated ``turns`` times (a nested one ``inner`` times inside),
    then the same sub-circuit inverted ``inverse_turns`` times, then every qubit measured."""
    nested = cirq.CircuitOperation(
        cirq.FrozenCircuit(cirq.CZ(Q[1], Q[2]), cirq.H(Q[2])), repetitions=inner
    )
    body = cirq.FrozenCircuit(
        cirq.rx(0.37)(Q[0]), cirq.CNOT(Q[0], Q[1]), cirq.ry(0.21)(Q[2]), cirq.T(Q[1]), nested
    )
    ops = [cirq.H(Q[0]), cirq.CircuitOperation(body, repetitions=turns)]
    if inverse_turns:
        ops.append(cirq.CircuitOperation(body, repetitions=-inverse_turns))
    return cirq.Circuit(*ops, cirq.measure(*Q, key="m"))


def simulator_counts(circuit, shots: int, seed: int) -> dict[str, int]:
    """cirq.Simulator's samples of key ``m``, first qubit leftmost (QMK's layout)."""
    result = cirq.Simulator(seed=seed).run(circuit, repetitions=shots)
    return dict(Counter("".join(str(int(b)) for b in row) for row in result.measurements["m"]))


def test_a_repeated_sub_circuit_of_gates_is_one_repeat_row_nested_inside_out():
    graph = from_cirq(repeated(7, 3))
    assert graph.version == "0.3" and check(graph).ok
    (outer,) = repeats(graph.nodes)
    assert outer.args == {"count": 7}
    (inner,) = repeats(outer.body)
    one_turn = from_cirq(cirq.Circuit(cirq.CZ(Q[1], Q[2]), cirq.H(Q[2]))).nodes[1:-1]
    assert inner.args == {"count": 3}
    assert [n.op for n in inner.body] == [n.op for n in one_turn]
    written = cirq.decompose(  # Cirq's own unrolling of the repetitions, gates kept
        repeated(7, 3), keep=lambda op: not isinstance(op.untagged, cirq.CircuitOperation)
    )
    flat = from_cirq(cirq.Circuit(written, strategy=cirq.InsertStrategy.NEW))
    assert [n.op for n in unroll(graph, max_nodes=None).nodes] == [n.op for n in flat.nodes]


def test_folded_repetitions_sample_as_the_cirq_simulator_samples_them():
    circuit = repeated(7, 3, inverse_turns=2)
    graph = from_cirq(circuit)
    assert [r.args["count"] for r in repeats(graph.nodes)] == [7, 2]
    ours = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    theirs = simulator_counts(circuit, SHOTS, SEED)
    assert_same_distribution(ours, theirs, "folded CircuitOperation")
    assert tvd(ours, theirs) < 0.05  # 4000 shots over 8 outcomes: sampling noise is ~0.02


def test_repetitions_that_measure_are_unrolled_with_their_keys_or_refused_by_code():
    sub = cirq.FrozenCircuit(cirq.X(Q[0]), cirq.measure(Q[0], key="m"))
    keyed = cirq.Circuit(cirq.CircuitOperation(sub, repetitions=3, use_repetition_ids=True))
    graph = from_cirq(keyed)
    assert not repeats(graph.nodes)
    assert run(graph, shots=10, seed=SEED, noise=False).counts == {"1 0 1": 10}
    same_key = cirq.Circuit(cirq.CircuitOperation(sub, repetitions=3))
    with pytest.raises(FrontendError, match="measured twice") as caught:
        from_cirq(same_key)
    assert caught.value.code == "QL104"


def test_repetitions_with_a_reset_are_written_out():
    sub = cirq.FrozenCircuit(cirq.reset(Q[0]), cirq.X(Q[0]))
    graph = from_cirq(cirq.Circuit(cirq.CircuitOperation(sub, repetitions=3)))
    assert not repeats(graph.nodes)
    assert [n.op for n in graph.nodes].count("RESET") == 3


def test_a_million_repetitions_count_by_multiplication():
    body = cirq.FrozenCircuit(cirq.T(Q[0]), cirq.CNOT(Q[0], Q[1]), cirq.T(Q[1]))
    circuit = cirq.Circuit(
        cirq.CircuitOperation(body, repetitions=10**6), cirq.measure(*Q[:2], key="m")
    )
    graph = from_cirq(circuit)
    assert rows(graph.nodes) == 8  # alloc, a REPEAT row and its 3, 2 measurements, free
    assert count_graph(graph).t_count == 2 * 10**6
