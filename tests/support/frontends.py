"""The front-end tests' shared helpers: a two-sample test against Aer and the test circuits.

Statistics: each comparison is a chi-square test of homogeneity between QMK's counts
and Aer's (bins with fewer than 10 pooled shots merged), at stated seeds. A file runs
about 35 comparisons; each must reach p > 1e-4 / 35 (Bonferroni: a false alarm in a
whole file has probability below 1e-4 if QMK and Aer sample the same distribution).

The circuits are Qiskit's; :func:`qiskit_programs` lists them for the ``qiskit_program``
parameter that ``tests/frontends/conftest.py`` fills in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy import stats

#: Family-wise false-alarm rate of one test file, and the comparisons it makes at most.
ALPHA = 1e-4
COMPARISONS = 40


def homogeneity_p(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """p-value of "a and b are samples of one distribution" (chi-square, pooled bins)."""
    keys = sorted(set(a) | set(b))
    rows = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]], dtype=float)
    total = rows.sum(axis=0)
    big = total >= 10
    merged = np.concatenate([rows[:, big], rows[:, ~big].sum(axis=1, keepdims=True)], axis=1)
    merged = merged[:, merged.sum(axis=0) > 0]
    if merged.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(merged, correction=False).pvalue)


def tvd(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a.get(k, 0) / na - b.get(k, 0) / nb) for k in set(a) | set(b))


def shape(key: str) -> tuple[int, ...]:
    """The group widths of a key ("01 1" -> (2, 1))."""
    return tuple(len(part) for part in key.split(" "))


def assert_same_distribution(qmk: Mapping[str, int], aer: Mapping[str, int], label: str) -> None:
    """Same key layout and statistically indistinguishable counts."""
    assert {shape(k) for k in qmk} == {shape(k) for k in aer}, (label, qmk, aer)
    p = homogeneity_p(qmk, aer)
    assert p > ALPHA / COMPARISONS, f"{label}: p={p:.2e}, tvd={tvd(qmk, aer):.3f}"


def aer_counts(circuit, shots: int, seed: int) -> dict[str, int]:
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector")
    compiled = transpile(circuit, sim, optimization_level=0, seed_transpiler=seed)
    return dict(sim.run(compiled, shots=shots, seed_simulator=seed).result().get_counts())


# ----------------------------------------------------------------------------- programs


def ghz(n: int):
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, n, name=f"ghz{n}")
    qc.h(0)
    for k in range(n - 1):
        qc.cx(k, k + 1)
    qc.measure(range(n), range(n))
    return qc


def _qft(n: int, value: int, inverse: bool):
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import QFTGate

    qc = QuantumCircuit(n, n, name=f"qft{n}_{value}")
    for k in range(n):
        if (value >> k) & 1:
            qc.x(k)
    qc.h(0)
    qc.append(QFTGate(n), range(n))
    if inverse:
        qc.ry(0.3, 1)
        qc.append(QFTGate(n).inverse(), range(n))
    qc.measure(range(n), range(n))
    return qc


def _grover(n: int, marked: int):
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import ZGate

    qc = QuantumCircuit(n, n, name=f"grover{n}_{marked}")
    qc.h(range(n))
    rounds = max(1, int(math.pi / 4 * math.sqrt(2**n)))
    mcz = ZGate().control(n - 1, annotated=False)
    for _ in range(rounds):
        for k in range(n):
            if not (marked >> k) & 1:
                qc.x(k)
        qc.append(mcz, range(n))
        for k in range(n):
            if not (marked >> k) & 1:
                qc.x(k)
        qc.h(range(n))
        qc.x(range(n))
        qc.append(mcz, range(n))
        qc.x(range(n))
        qc.h(range(n))
    qc.measure(range(n), range(n))
    return qc


def teleport(theta: float, phi: float):
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    q = QuantumRegister(3, "q")
    m0, m1, out = ClassicalRegister(1, "m0"), ClassicalRegister(1, "m1"), ClassicalRegister(1, "r")
    qc = QuantumCircuit(q, m0, m1, out, name="teleport")
    qc.ry(theta, 0)
    qc.rz(phi, 0)
    qc.h(1)
    qc.cx(1, 2)
    qc.cx(0, 1)
    qc.h(0)
    qc.measure(0, m0[0])
    qc.measure(1, m1[0])
    with qc.if_test((m1, 1)):
        qc.x(2)
    with qc.if_test((m0, 1)):
        qc.z(2)
    qc.rz(-phi, 2)
    qc.ry(-theta / 2, 2)
    qc.measure(2, out[0])
    return qc


def _adder(a: int, b: int, bits: int):
    """Cuccaro ripple-carry adder: b <- a + b, carry out."""
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    qa, qb = QuantumRegister(bits, "a"), QuantumRegister(bits, "b")
    cin, cout = QuantumRegister(1, "cin"), QuantumRegister(1, "cout")
    res = ClassicalRegister(bits + 1, "sum")
    qc = QuantumCircuit(cin, qa, qb, cout, res, name=f"add{a}+{b}")
    for k in range(bits):
        if (a >> k) & 1:
            qc.x(qa[k])
        if (b >> k) & 1:
            qc.x(qb[k])

    def maj(c, y, x):
        qc.cx(x, y)
        qc.cx(x, c)
        qc.ccx(c, y, x)

    def uma(c, y, x):
        qc.ccx(c, y, x)
        qc.cx(x, c)
        qc.cx(c, y)

    carry = [cin[0], *qa[:-1]]
    for k in range(bits):
        maj(carry[k], qb[k], qa[k])
    qc.cx(qa[-1], cout[0])
    for k in reversed(range(bits)):
        uma(carry[k], qb[k], qa[k])
    qc.measure([*qb, cout[0]], res)
    return qc


def random_circuit(seed: int, n: int = 4, depth: int = 14, measure_mid: bool = False):
    """A random circuit of table gates with bound Parameters."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n, n, name=f"random{seed}")
    one = ["h", "s", "sdg", "t", "tdg", "x", "y", "z", "sx", "sxdg"]
    one_p = [("rx", 1), ("ry", 1), ("rz", 1), ("p", 1), ("u", 3), ("r", 2)]
    two = ["cx", "cz", "cy", "ch", "swap", "iswap", "dcx", "ecr", "cs", "csdg", "csx"]
    two_p = [("crx", 1), ("cry", 1), ("crz", 1), ("cp", 1), ("rxx", 1), ("ryy", 1), ("rzz", 1)]
    two_p += [("rzx", 1), ("cu", 4)]
    three = ["ccx", "ccz", "cswap", "rccx"]
    values = {}
    for layer in range(depth):
        kind = rng.integers(5)
        qubits = [int(q) for q in rng.permutation(n)]
        if kind == 0:
            getattr(qc, str(rng.choice(one)))(qubits[0])
        elif kind == 1:
            name, k = one_p[rng.integers(len(one_p))]
            params = [Parameter(f"t{layer}_{i}") for i in range(k)]
            values.update({p: float(rng.uniform(-np.pi, np.pi)) for p in params})
            getattr(qc, name)(*params, qubits[0])
        elif kind == 2:
            getattr(qc, str(rng.choice(two)))(qubits[0], qubits[1])
        elif kind == 3:
            name, k = two_p[rng.integers(len(two_p))]
            params = [Parameter(f"t{layer}_{i}") for i in range(k)]
            values.update({p: float(rng.uniform(-np.pi, np.pi)) for p in params})
            getattr(qc, name)(*params, qubits[0], qubits[1])
        else:
            getattr(qc, str(rng.choice(three)))(qubits[0], qubits[1], qubits[2])
        if measure_mid and layer == depth // 2:
            qc.measure(qubits[0], qubits[0])
            qc.reset(qubits[1])
    qc.measure(range(n), range(n))
    return qc.assign_parameters(values)


def _mid_measure_reset(seed: int):
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    rng = np.random.default_rng(seed)
    q = QuantumRegister(3, "q")
    mid, end = ClassicalRegister(2, "mid"), ClassicalRegister(3, "end")
    qc = QuantumCircuit(q, mid, end, name=f"midreset{seed}")
    qc.ry(float(rng.uniform(0, np.pi)), 0)
    qc.cx(0, 1)
    qc.measure(1, mid[0])
    qc.reset(1)
    qc.rx(float(rng.uniform(0, np.pi)), 1)
    qc.cx(1, 2)
    qc.measure(2, mid[1])
    with qc.if_test((mid, 3)) as else_:
        qc.x(0)
    with else_:
        qc.h(0)
    qc.reset(2)
    qc.cry(float(rng.uniform(0, np.pi)), 0, 2)
    qc.measure(q, end)
    return qc


def _register_condition():
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    q = QuantumRegister(3, "q")
    c, d = ClassicalRegister(2, "c"), ClassicalRegister(1, "d")
    qc = QuantumCircuit(q, c, d, name="regcond")
    qc.h(0)
    qc.h(1)
    qc.measure(0, c[0])
    qc.measure(1, c[1])
    with qc.if_test((c, 2)):
        qc.x(2)
    with qc.if_test((c[0], 1)):
        qc.ry(0.7, 2)
    qc.measure(2, d[0])
    return qc


def _controlled_library():
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import HGate, RYGate, SwapGate, UGate

    qc = QuantumCircuit(5, 5, name="controlled")
    qc.h(range(3))
    qc.append(UGate(0.4, 0.9, -0.3).control(2, ctrl_state="01", annotated=False), [0, 1, 3])
    qc.append(HGate().control(1, ctrl_state=0, annotated=False), [2, 4])
    qc.append(SwapGate().control(1, annotated=False), [0, 3, 4])
    qc.append(RYGate(1.2).control(3, annotated=False), [0, 1, 2, 3])
    qc.mcx([0, 1, 2], 4)
    qc.measure(range(5), range(5))
    return qc


def qiskit_programs() -> list[tuple[str, Callable[[], object]]]:
    """At least 30 (label, circuit factory) pairs; the circuits use registers Aer names."""
    progs: list[tuple[str, Callable[[], object]]] = []
    progs += [(f"ghz{n}", lambda n=n: ghz(n)) for n in (2, 3, 5)]
    progs += [(f"qft{n}_{v}", lambda n=n, v=v: _qft(n, v, False)) for n, v in ((3, 5), (4, 9))]
    progs += [("qft_inverse", lambda: _qft(3, 2, True))]
    progs += [(f"grover{n}_{m}", lambda n=n, m=m: _grover(n, m)) for n, m in ((2, 3), (3, 5))]
    progs += [
        (f"teleport{k}", lambda t=t, p=p: teleport(t, p))
        for k, (t, p) in enumerate([(0.0, 0.0), (1.1, 0.4), (2.5, -1.3)])
    ]
    progs += [(f"adder{a}+{b}", lambda a=a, b=b: _adder(a, b, 2)) for a, b in ((1, 2), (3, 3))]
    progs += [(f"random{s}", lambda s=s: random_circuit(s)) for s in range(16)]
    progs += [
        (f"random_mid{s}", lambda s=s: random_circuit(s, measure_mid=True)) for s in (20, 21, 22)
    ]
    progs += [(f"midreset{s}", lambda s=s: _mid_measure_reset(s)) for s in (1, 2, 3)]
    progs += [("regcond", _register_condition), ("controlled", _controlled_library)]
    return progs
