"""Cirq circuits lowered by from_cirq give cirq.Simulator's distributions, keys joined by key."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

cirq = pytest.importorskip("cirq")

from qmk.execution.runs import run  # noqa: E402
from qmk.frontends.cirq import from_cirq  # noqa: E402
from qmk.frontends.errors import FrontendError  # noqa: E402
from qmk.qvm.verify import check  # noqa: E402
from support.frontends import assert_same_distribution  # noqa: E402

SHOTS = 2000
#: cirq.Simulator re-simulates every repetition of a circuit with mid-circuit measurements.
SHOTS_DYNAMIC = 600
SEED = 11


def cirq_counts(circuit, shots: int, seed: int) -> dict[str, int]:
    """cirq.Simulator's samples in QMK's documented layout (keys in first-measured order)."""
    keys: list[str] = []
    for op in circuit.all_operations():
        for key in cirq.measurement_key_names(op):
            if key not in keys:
                keys.append(key)
    result = cirq.Simulator(seed=seed).run(circuit, repetitions=shots)
    columns = [["".join(str(int(b)) for b in row) for row in result.measurements[k]] for k in keys]
    return dict(Counter(" ".join(parts) for parts in zip(*columns, strict=True)))


def _ghz(n):
    q = cirq.LineQubit.range(n)
    return cirq.Circuit(
        cirq.H(q[0]), *(cirq.CNOT(q[k], q[k + 1]) for k in range(n - 1)), cirq.measure(*q, key="m")
    )


def _qft(n, value):
    q = cirq.LineQubit.range(n)
    prep = [cirq.X(q[k]) for k in range(n) if (value >> k) & 1]
    return cirq.Circuit(*prep, cirq.H(q[0]), cirq.qft(*q), cirq.measure(*q, key="f"))


def _grover(n, marked):
    q = cirq.LineQubit.range(n)
    flips = [cirq.X(q[k]) for k in range(n) if not (marked >> k) & 1]
    mcz = cirq.Z(q[-1]).controlled_by(*q[:-1])
    body = [
        *flips,
        mcz,
        *flips,
        *map(cirq.H, q),
        *map(cirq.X, q),
        mcz,
        *map(cirq.X, q),
        *map(cirq.H, q),
    ]
    rounds = max(1, int(math.pi / 4 * math.sqrt(2**n)))
    return cirq.Circuit(*map(cirq.H, q), *(body * rounds), cirq.measure(*q, key="g"))


def _teleport(theta):
    a, b, c = cirq.LineQubit.range(3)
    return cirq.Circuit(
        cirq.ry(theta).on(a),
        cirq.H(b),
        cirq.CNOT(b, c),
        cirq.CNOT(a, b),
        cirq.H(a),
        cirq.measure(a, key="ma"),
        cirq.measure(b, key="mb"),
        cirq.X(c).with_classical_controls("mb"),
        cirq.Z(c).with_classical_controls("ma"),
        cirq.ry(-theta / 2).on(c),
        cirq.measure(c, key="out"),
    )


def _adder(x, y):
    """Two-bit ripple-carry (Cuccaro) adder: y <- x + y."""
    cin, a0, b0, a1, b1, cout = cirq.LineQubit.range(6)
    ops = [cirq.X(q) for q, bit in ((a0, x & 1), (a1, x >> 1), (b0, y & 1), (b1, y >> 1)) if bit]

    def maj(c, yy, xx):
        return [cirq.CNOT(xx, yy), cirq.CNOT(xx, c), cirq.CCX(c, yy, xx)]

    def uma(c, yy, xx):
        return [cirq.CCX(c, yy, xx), cirq.CNOT(xx, c), cirq.CNOT(c, yy)]

    ops += maj(cin, b0, a0) + maj(a0, b1, a1) + [cirq.CNOT(a1, cout)]
    ops += uma(a0, b1, a1) + uma(cin, b0, a0)
    return cirq.Circuit(*ops, cirq.measure(cout, b1, b0, key="sum"))


def _random(seed, n=4, depth=14, mid=False):
    rng = np.random.default_rng(seed)
    q = cirq.LineQubit.range(n)
    ops = []
    for layer in range(depth):
        qs = [q[int(i)] for i in rng.permutation(n)]
        t = float(rng.uniform(-1, 1))
        choice = rng.integers(8)
        if choice == 0:
            ops.append((cirq.X**t)(qs[0]))
        elif choice == 1:
            ops.append(cirq.PhasedXPowGate(phase_exponent=t, exponent=0.4)(qs[0]))
        elif choice == 2:
            ops.append((cirq.CZ**t)(qs[0], qs[1]))
        elif choice == 3:
            ops.append((cirq.CNOT**t)(qs[0], qs[1]))
        elif choice == 4:
            ops.append((cirq.ISWAP**t)(qs[0], qs[1]))
        elif choice == 5:
            ops.append(cirq.FSimGate(t, 0.5 * t)(qs[0], qs[1]))
        elif choice == 6:
            ops.append(cirq.CCZ(qs[0], qs[1], qs[2]))
        else:
            ops.append((cirq.ZZ**t)(qs[0], qs[1]))
        ops.append(cirq.H(qs[2]))
        if mid and layer == depth // 2:
            ops += [cirq.measure(qs[0], key="mid"), cirq.reset(qs[1])]
    return cirq.Circuit(*ops, cirq.measure(*q, key="end"))


def _controlled(seed):
    rng = np.random.default_rng(seed)
    q = cirq.LineQubit.range(4)
    u = cirq.MatrixGate(cirq.testing.random_unitary(2, random_state=seed))
    return cirq.Circuit(
        *map(cirq.H, q[:3]),
        u(q[3]).controlled_by(q[0], q[1], control_values=[1, 0]),
        cirq.ControlledGate(cirq.ISWAP ** float(rng.uniform(0, 1)))(q[2], q[0], q[3]),
        cirq.ry(float(rng.uniform(0, 3))).on(q[1]).controlled_by(q[3]),
        cirq.measure(q[0], q[1], key="a"),
        cirq.measure(q[3], q[2], key="b", invert_mask=(True,)),
    )


def _mid_reset(seed):
    rng = np.random.default_rng(seed)
    a, b, c = cirq.LineQubit.range(3)
    return cirq.Circuit(
        cirq.rx(float(rng.uniform(0, 3))).on(a),
        cirq.CNOT(a, b),
        cirq.measure(b, key="m1"),
        cirq.reset(b),
        cirq.H(b),
        cirq.CNOT(b, c),
        cirq.measure(c, key="m2"),
        cirq.X(a).with_classical_controls("m2"),
        cirq.reset(c),
        cirq.measure(a, b, c, key="end"),
    )


PROGRAMS = {
    **{f"ghz{n}": (lambda n=n: _ghz(n)) for n in (2, 3, 5)},
    **{f"qft{n}_{v}": (lambda n=n, v=v: _qft(n, v)) for n, v in ((3, 5), (4, 9), (4, 0))},
    **{f"grover{n}_{m}": (lambda n=n, m=m: _grover(n, m)) for n, m in ((2, 1), (3, 6))},
    **{f"teleport{k}": (lambda t=t: _teleport(t)) for k, t in enumerate((0.0, 1.1, 2.6))},
    **{f"adder{x}+{y}": (lambda x=x, y=y: _adder(x, y)) for x, y in ((1, 2), (3, 3))},
    **{f"random{s}": (lambda s=s: _random(s)) for s in range(9)},
    **{f"random_mid{s}": (lambda s=s: _random(s, mid=True)) for s in (20, 21)},
    **{f"controlled{s}": (lambda s=s: _controlled(s)) for s in (1, 2, 3)},
    **{f"midreset{s}": (lambda s=s: _mid_reset(s)) for s in (1, 2, 3)},
}


@pytest.mark.parametrize("label", sorted(PROGRAMS))
def test_each_program_matches_cirq_simulator_by_chi_square(label):
    circuit = PROGRAMS[label]()
    graph = from_cirq(circuit, name=label)
    assert check(graph).ok
    shots = SHOTS_DYNAMIC if any(w in label for w in ("mid", "teleport")) else SHOTS
    qmk = run(graph, shots=shots, seed=SEED, noise=False).counts
    assert_same_distribution(qmk, cirq_counts(circuit, shots, SEED), label)


def test_there_are_at_least_thirty_programs():
    assert len(PROGRAMS) >= 30


def test_keys_are_measurement_keys_in_first_measured_order_first_qubit_leftmost():
    a, b, c = cirq.LineQubit.range(3)
    circuit = cirq.Circuit(
        cirq.X(a), cirq.X(c), cirq.measure(c, b, key="z"), cirq.measure(a, key="y")
    )
    assert run(from_cirq(circuit), shots=5, seed=1, noise=False).counts == {"10 1": 5}


def test_a_key_measured_twice_is_refused():
    a = cirq.LineQubit(0)
    circuit = cirq.Circuit(cirq.measure(a, key="m"), cirq.measure(a, key="m"))
    with pytest.raises(FrontendError, match="measured twice"):
        from_cirq(circuit)


def test_noise_channels_are_refused_with_their_moment():
    a = cirq.LineQubit(0)
    circuit = cirq.Circuit(cirq.H(a), cirq.depolarize(0.1).on(a))
    with pytest.raises(FrontendError, match="moment 1"):
        from_cirq(circuit)


def test_unresolved_symbols_are_refused():
    import sympy

    a = cirq.LineQubit(0)
    with pytest.raises(FrontendError, match="unresolved symbol"):
        from_cirq(cirq.Circuit(cirq.rx(sympy.Symbol("t")).on(a)))
