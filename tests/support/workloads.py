"""The router's workloads of real programs: what ``qmk run`` builds from a file (a plan
that carries the gate kinds, the fused blocks and the MPS bond bound)."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from qmk._front import read
from qmk.engines.registry import Workload
from qmk.execution.executor import DEFAULT_QUBIT, build_plan, load_program, workload
from qmk.execution.plan import Plan
from qmk.frontends.builder import GATE_OPS
from qmk.qec.noise import NoiseModel
from qmk.qvm.asm import assemble
from qmk.qvm.graph import Graph

HEAD = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'

#: A gate of :func:`graph_of`: its name, qubits and angles.
Gate = tuple[str, tuple[int, ...], tuple[float, ...]]


def graph_of(n: int, gates: list[Gate], fence_after: int = -1) -> Graph:
    """Allocate n qubits, apply ``gates`` (a fence after the ``fence_after``-th, if any),
    measure every qubit (event m{i}), free."""
    lines = [".caps CAP_ALLOC", ".vqs " + " ".join(f"q{i}" for i in range(n))]
    lines.append(".events " + " ".join(f"m{i}" for i in range(n)))
    lines += [f"a{i}: ALLOC_LQ vq:q{i}, n=1" for i in range(n)]
    for k, (name, qs, params) in enumerate(gates):
        operands = ", ".join(f"vq:q{q}" for q in qs)
        args = "".join(f", theta={p!r}" for p in params)
        lines.append(f"g{k}: {GATE_OPS[name]} {operands}{args}")
        if k == fence_after:
            lines.append("fence: FENCE_EPOCH")
    lines += [f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(n)]
    lines += [f"f{i}: FREE_LQ vq:q{i}" for i in range(n)]
    return assemble("\n".join(lines) + "\n")


def random_gates(n: int, depth: int, seed: int) -> list[Gate]:
    """A random RZ RY RZ on every qubit, then a CZ brickwork, ``depth`` times."""
    rng = np.random.default_rng(seed)
    gates: list[Gate] = []
    for layer in range(depth):
        for q in range(n):
            a, b, c = (float(v) for v in rng.uniform(0, 2 * math.pi, 3))
            gates += [("rz", (q,), (a,)), ("ry", (q,), (b,)), ("rz", (q,), (c,))]
        gates += [("cz", (i, i + 1), ()) for i in range(layer % 2, n - 1, 2)]
    return gates


def noisy_plan(graph: Graph, profile: str, noise_model: NoiseModel | None = None) -> Plan:
    """``graph``'s plan with logical noise on: the default qubit, ``profile`` for every
    qubit, the error rates of ``noise_model`` (None: the qubit's own)."""
    return build_plan(
        load_program(graph),
        noise=True,
        qubit=DEFAULT_QUBIT,
        default_profile=profile,
        noise_model=noise_model,
    )


def program_workload(text: str, shots: int = 100) -> Workload:
    """The workload of the OpenQASM 2 body ``text`` (after the header), noise off."""
    plan = build_plan(
        load_program(read(HEAD + text)),
        noise=False,
        qubit="qubit_gate_ns_e3",
        default_profile="logical:surface_code(d=9)",
    )
    return workload(plan, shots)


def brickwork_body(n: int, layers: int = 4) -> str:
    """The OpenQASM 2 body (after the header) of ``layers`` layers of RY and RZ on every
    qubit and a CX brickwork on ``n`` qubits, every qubit measured."""
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    for layer in range(layers):
        for q in range(n):
            lines += [f"ry({0.1 + 0.01 * q}) q[{q}];", f"rz({0.2 + 0.01 * q}) q[{q}];"]
        lines += [f"cx q[{q}],q[{q + 1}];" for q in range(layer % 2, n - 1, 2)]
    lines.append("measure q -> c;")
    return "\n".join(lines)


def ry_brickwork(n: int, layers: int, *, fence_after: int) -> Graph:
    """``layers`` layers of RY and a CNOT brickwork on ``n`` qubits (dense: entangled
    across the register), with a measurement of ``q0`` and a fence after layer
    ``fence_after``; every qubit measured at the end."""
    lines = [".caps CAP_ALLOC", "a: ALLOC_LQ " + ", ".join(f"vq:q{i}" for i in range(n))]
    for layer in range(layers):
        lines += [
            f"y{layer}_{q}: APPLY_RY vq:q{q}, theta={0.7 + 0.31 * q + 0.53 * layer}"
            for q in range(n)
        ]
        lines += [
            f"c{layer}_{q}: APPLY_CNOT vq:q{q}, vq:q{q + 1}" for q in range(layer % 2, n - 1, 2)
        ]
        if layer == fence_after:
            lines += ["mid: MEASURE_Z vq:q0, out:mid", "fence: FENCE_EPOCH"]
    lines += [f"m{q}: MEASURE_Z vq:q{q}, out:o{q}" for q in range(n)]
    return assemble("\n".join(lines) + "\n")


def shallow_workload(n: int, layers: int = 4, shots: int = 1000) -> Workload:
    """The workload of :func:`brickwork_body` (noise off)."""
    return program_workload(brickwork_body(n, layers), shots)


def ghz_asm(
    n: int,
    *,
    t: bool = False,
    profile: str | None = None,
    chain: int | None = None,
    before_measure: tuple[str, ...] = (),
) -> str:
    """QVM assembly of a GHZ chain on ``n`` qubits: H (and T, with ``t``) on ``q0``, CNOTs
    down the first ``chain`` qubits (all ``n``), the lines ``before_measure``, every
    qubit measured, freed. ``profile``: the qubits' profile, as an ``n=`` allocation."""
    names = ", ".join(f"vq:q{i}" for i in range(n))
    lines = [".caps CAP_ALLOC"]
    if profile is None:
        lines.append(f"a: ALLOC_LQ {names}")
    else:
        lines += [f'.param profile = "{profile}"', f"a: ALLOC_LQ {names}, n={n}, profile=profile"]
    lines.append("h: APPLY_H vq:q0")
    if t:
        lines.append("t: APPLY_T vq:q0")
    lines += [f"c{i}: APPLY_CNOT vq:q{i}, vq:q{i + 1}" for i in range((chain or n) - 1)]
    lines += before_measure
    lines += [f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(n)]
    lines.append(f"f: FREE_LQ {names}")
    return "\n".join(lines) + "\n"


#: 60 qubits and a T gate (no dense engine holds it, not Clifford); the middle qubit
#: measured and the correction it feeds to the last keep every shot's outcomes equal.
WIDE_FEED_FORWARD = ghz_asm(
    60,
    t=True,
    chain=59,
    before_measure=("mid: MEASURE_Z vq:q30, out:mid", 'fix: COND_PAULI vq:q59, in:mid, mask="X"'),
)


#: OpenQASM 2 gates of :func:`qmk.kernel.machine.programs.random_clifford` -> stim's names.
_STIM_NAMES = {"h": "H", "s": "S", "sdg": "S_DAG", "x": "X", "y": "Y", "z": "Z", "cx": "CX"}


def stim_unitary(text: str) -> Any:
    """The gates of an OpenQASM 2 Clifford program (one gate a line, on ``q[i]``) as a
    stim circuit, read here line by line (not by QMK), without its measurements."""
    import stim

    lines = []
    for line in text.splitlines():
        name, _, operands = line.partition(" ")
        if name in _STIM_NAMES:
            qubits = re.findall(r"\[(\d+)\]", operands)
            lines.append(f"{_STIM_NAMES[name]} {' '.join(qubits)}")
    return stim.Circuit("\n".join(lines))
