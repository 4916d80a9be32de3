"""Programs a workload generates by name: Cuccaro adders, QFTs, random Clifford+T
circuits and layered random Clifford circuits, as OpenQASM 2 text (the same circuits
``bench/bench_ft.py`` and ``bench/bench_clifford.py`` measure).

Their logical counts come from the front-end and the estimator's counter
(:func:`counts_of`), so a generated program is counted exactly as ``qmk estimate``
would count its file.

>>> counts_of(adder(4)).to_json()["cczCount"], counts_of(qft(3)).num_qubits
(8, 3)
>>> random_clifford_t(3, 4, seed=1).count(";") > 4
True
>>> random_clifford(4, 2, seed=1).count("cx ")
4
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmk.estimate.counts import LogicalCounts

HEAD = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'


def adder(bits: int) -> str:
    """``b := a + b`` on ``bits``-bit registers (Cuccaro: MAJ/UMA blocks, a Toffoli each)."""
    lines = [HEAD, "qreg c0[1];", f"qreg a[{bits}];", f"qreg b[{bits}];", "qreg z[1];"]
    lines += [f"creg s[{bits}];", "creg carry[1];"]
    lines += [f"h a[{i}];" for i in range(bits)] + [f"x b[{i}];" for i in range(0, bits, 2)]
    chain = ["c0[0]"] + [f"a[{i}]" for i in range(bits)]

    def maj(c: str, b: str, a: str) -> list[str]:
        return [f"cx {a},{b};", f"cx {a},{c};", f"ccx {c},{b},{a};"]

    def uma(c: str, b: str, a: str) -> list[str]:
        return [f"ccx {c},{b},{a};", f"cx {a},{c};", f"cx {c},{b};"]

    for i in range(bits):
        lines += maj(chain[i], f"b[{i}]", chain[i + 1])
    lines.append(f"cx a[{bits - 1}],z[0];")
    for i in reversed(range(bits)):
        lines += uma(chain[i], f"b[{i}]", chain[i + 1])
    lines += ["measure b -> s;", "measure z -> carry;"]
    return "\n".join(lines) + "\n"


def qft(n: int) -> str:
    """A full QFT: controlled phases pi/2^k (those below pi/4 are synthesised rotations)."""
    lines = [HEAD, f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{i}];\nt q[{i}];" for i in range(0, n, 2)]
    for i in range(n):
        lines.append(f"h q[{i}];")
        for j in range(i + 1, n):
            lines.append(f"cu1(pi/{2 ** (j - i)}) q[{j}],q[{i}];")
    lines += [f"swap q[{i}],q[{n - 1 - i}];" for i in range(n // 2)]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def random_clifford_t(n: int, gates: int, *, seed: int) -> str:
    """``gates`` gates drawn from H, S, T, TDG, T, CX, CZ on ``n`` qubits (3/7 of them
    T or TDG), after an H on each; every qubit measured."""
    rng = random.Random(seed)
    lines = [HEAD, f"qreg q[{n}];", f"creg c[{n}];"] + [f"h q[{i}];" for i in range(n)]
    for _ in range(gates):
        g = rng.choice(["h", "s", "t", "tdg", "t", "cx", "cz"])
        if g in ("cx", "cz") and n > 1:
            a, b = rng.sample(range(n), 2)
            lines.append(f"{g} q[{a}],q[{b}];")
        elif g not in ("cx", "cz"):
            lines.append(f"{g} q[{rng.randrange(n)}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


#: The one-qubit Cliffords a layer of :func:`random_clifford` draws from.
CLIFFORD_1Q = ("h", "s", "sdg", "x", "y", "z")


def random_clifford(n: int, depth: int, *, seed: int) -> str:
    """``depth`` layers on ``n`` qubits, each a one-qubit Clifford drawn from
    :data:`CLIFFORD_1Q` on every qubit, then a CX on each pair of a random pairing of
    the qubits (long range: a pair's qubits are as far apart as the draw puts them);
    every qubit measured."""
    rng = random.Random(seed)
    lines = [HEAD, f"qreg q[{n}];", f"creg c[{n}];"]
    order = list(range(n))
    for _ in range(depth):
        lines += [f"{rng.choice(CLIFFORD_1Q)} q[{q}];" for q in range(n)]
        rng.shuffle(order)
        lines += [f"cx q[{a}],q[{b}];" for a, b in zip(order[::2], order[1::2], strict=False)]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def counts_of(text: str) -> LogicalCounts:
    """The logical counts of an OpenQASM 2 program, as ``qmk estimate`` counts them."""
    from qmk.estimate.counts import count_graph
    from qmk.frontends.qasm import from_qasm

    return count_graph(from_qasm(text, name="<generated>"))
