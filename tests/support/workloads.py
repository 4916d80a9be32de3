"""The router's workloads of real programs: what ``qmk run`` builds from a file (a plan
that carries the gate kinds, the fused blocks and the MPS bond bound)."""

from __future__ import annotations

from qmk._front import read
from qmk.engines.registry import Workload
from qmk.execution.executor import build_plan, load_program, workload

HEAD = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'


def program_workload(text: str, shots: int = 100) -> Workload:
    """The workload of the OpenQASM 2 body ``text`` (after the header), noise off."""
    plan = build_plan(
        load_program(read(HEAD + text)),
        noise=False,
        qubit="qubit_gate_ns_e3",
        default_profile="logical:surface_code(d=9)",
    )
    return workload(plan, shots)


def shallow_workload(n: int, layers: int = 4, shots: int = 1000) -> Workload:
    """``layers`` layers of RY and RZ on every qubit and a CX brickwork on ``n`` qubits,
    every qubit measured."""
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    for layer in range(layers):
        for q in range(n):
            lines += [f"ry({0.1 + 0.01 * q}) q[{q}];", f"rz({0.2 + 0.01 * q}) q[{q}];"]
        lines += [f"cx q[{q}],q[{q + 1}];" for q in range(layer % 2, n - 1, 2)]
    lines.append("measure q -> c;")
    return program_workload("\n".join(lines), shots)
