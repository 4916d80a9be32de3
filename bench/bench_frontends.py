"""Benchmark: reading programs (OpenQASM 2 and 3, QIR, QVM assembly) into verified QVM graphs.

For seeded random programs of N gates on 20 qubits (the mix of hwb12 and QASMBench's
large files: half CNOTs, H/T/S/X, a tenth rotations by pi/4, -pi/8 or 0.123; the same
circuit in every language), times QMK's read + lower + verify against its peers on the
same text:

- OpenQASM 2: ``qmk.frontends.qasm.from_qasm`` + ``verify`` against ``qiskit.qasm2.loads``
  (Rust);
- OpenQASM 3: the same against ``qiskit.qasm3.loads`` (``qiskit_qasm3_import`` on the
  ANTLR reference parser, which QMK uses only for the statements its scanner leaves);
- QIR (LLVM text): ``from_qir`` + ``verify`` against pyqir's own text parser
  (``pyqir.Module.from_ir``), which ``from_qir(fast=False)`` uses;
- QVM assembly: ``qmk.qvm.asm.assemble`` + ``verify`` of the program's disassembly (no
  peer: QMK's JSON reader on the same graph is shown as the floor).

It also times the goal cases of issue 16: a 171k-gate OpenQASM 2 file (hwb12's size)
against ``qiskit.qasm2.load``, and the same file broken near its end (a missing comma)
until the first error is reported.

Times are the minimum of ``--repeat`` runs, in CPU seconds of this process
(``time.process_time``: on a shared machine, the figure other processes disturb least)
and in wall seconds; ratios are QMK / peer in CPU time, per gate. The machine's load
average is written with the results. Prints a table and writes
``bench/results/frontends.json``. Not a test: nothing here fails on a timing.

    python bench/bench_frontends.py            # 10^3 and 10^4 gates, the 171k goal cases
    python bench/bench_frontends.py --big      # also 10^5 and 10^6 gates (minutes)
    python bench/bench_frontends.py --goals-only --repeat 7   # only the 171k goal cases
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qmk import __version__
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qir import from_qir
from qmk.qvm import asm, graph_file
from qmk.qvm import graph as graph_io
from qmk.qvm.verify import verify

QUBITS = 20
HWB12_GATES = 171_000
ONE = ("h", "t", "tdg", "x", "s", "sdg")
ANGLES = (("pi/4", 0.7853981633974483), ("-pi/8", -0.39269908169872414), ("0.123", 0.123))
QIR_NAMES = {
    "h": "h__body",
    "t": "t__body",
    "tdg": "t__adj",
    "x": "x__body",
    "s": "s__body",
    "sdg": "s__adj",
}


def circuit(n: int, seed: int) -> list[tuple[str, tuple[int, ...], int | None]]:
    """``n`` gates: (name, qubits, index into ANGLES or None)."""
    rng = random.Random(seed)
    gates: list[tuple[str, tuple[int, ...], int | None]] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            gates.append(("cx", tuple(rng.sample(range(QUBITS), 2)), None))
        elif r < 0.9:
            gates.append((rng.choice(ONE), (rng.randrange(QUBITS),), None))
        else:
            gates.append(("rz", (rng.randrange(QUBITS),), rng.randrange(len(ANGLES))))
    return gates


def qasm2(gates: list[Any]) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{QUBITS}];", f"creg c[{QUBITS}];"]
    for name, qs, angle in gates:
        params = "" if angle is None else f"({ANGLES[angle][0]})"
        lines.append(f"{name}{params} {','.join(f'q[{q}]' for q in qs)};")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def qasm3(gates: list[Any]) -> str:
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{QUBITS}] q;", f"bit[{QUBITS}] c;"]
    for name, qs, angle in gates:
        params = "" if angle is None else f"({ANGLES[angle][0]})"
        lines.append(f"{name}{params} {', '.join(f'q[{q}]' for q in qs)};")
    lines.append("c = measure q;")
    return "\n".join(lines) + "\n"


def qir(gates: list[Any]) -> str:
    def ptr(i: int) -> str:
        return "ptr null" if i == 0 else f"ptr inttoptr (i64 {i} to ptr)"

    body = []
    for name, qs, angle in gates:
        if name == "cx":
            body.append(f"  call void @__quantum__qis__cx__body({ptr(qs[0])}, {ptr(qs[1])})")
        elif name == "rz":
            value = ANGLES[angle][1]
            body.append(f"  call void @__quantum__qis__rz__body(double {value!r}, {ptr(qs[0])})")
        else:
            body.append(f"  call void @__quantum__qis__{QIR_NAMES[name]}({ptr(qs[0])})")
    body += [f"  call void @__quantum__qis__mz__body({ptr(i)}, {ptr(i)})" for i in range(QUBITS)]
    body += [
        f"  call void @__quantum__rt__result_record_output({ptr(i)}, ptr null)"
        for i in range(QUBITS)
    ]
    one = sorted({f"__quantum__qis__{v}" for v in QIR_NAMES.values()})
    declares = [f"declare void @{f}(ptr)" for f in one] + [
        "declare void @__quantum__qis__cx__body(ptr, ptr)",
        "declare void @__quantum__qis__rz__body(double, ptr)",
        "declare void @__quantum__qis__mz__body(ptr, ptr)",
        "declare void @__quantum__rt__result_record_output(ptr, ptr)",
    ]
    attrs = (
        f'attributes #0 = {{ "entry_point" "required_num_qubits"="{QUBITS}" '
        f'"required_num_results"="{QUBITS}" }}'
    )
    return "\n".join(
        ["define void @main() #0 {", "entry:", *body, "  ret void", "}", *declares, attrs, ""]
    )


def timed(repeat: int, run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Minimum CPU and wall seconds of ``repeat`` runs, and the last result (or error)."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            result = run()
        except Exception as exc:  # a broken file's error is the result
            result = exc
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also 10^5 and 10^6 gates")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--peer-limit",
        type=int,
        default=100_000,
        help="the largest size the slow peers (qiskit.qasm3.loads, pyqir's text parser) run at",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "frontends.json"))
    parser.add_argument(
        "--goals-only", action="store_true", help="only the 171k-gate goal cases (no sizes)"
    )
    args = parser.parse_args()
    sizes = [] if args.goals_only else [1_000, 10_000] + ([100_000, 1_000_000] if args.big else [])

    import pyqir
    import qiskit.qasm2
    import qiskit.qasm3

    rows: list[dict[str, Any]] = []
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    def case(language: str, n: int, ours: Callable[[], Any], peer_name: str | None,
             peer: Callable[[], Any] | None, repeat: int) -> None:  # fmt: skip
        cpu, wall, result = timed(repeat, ours)
        if isinstance(result, Exception):
            raise result
        row: dict[str, Any] = {
            "language": language,
            "gates": n,
            "qmk_cpu_s": cpu,
            "qmk_wall_s": wall,
            "qmk_us_per_gate": cpu / n * 1e6,
            "peer": peer_name,
        }
        if peer is not None:
            pcpu, pwall, presult = timed(repeat, peer)
            if isinstance(presult, Exception):
                raise presult
            row.update(peer_cpu_s=pcpu, peer_wall_s=pwall, peer_us_per_gate=pcpu / n * 1e6)
            row["ratio"] = cpu / pcpu
        rows.append(row)
        shown = f"{row['ratio']:6.2f}x" if "ratio" in row else "     - "
        peer_us = f"{row['peer_us_per_gate']:9.2f}" if "peer_us_per_gate" in row else "        -"
        print(
            f"{language:<12} {n:>9,} {row['qmk_us_per_gate']:9.2f} {peer_us}  {shown}  "
            f"{peer_name or ''}",
            flush=True,
        )

    print(f"QMK {__version__}; Python {platform.python_version()}; {os.cpu_count()} CPUs")
    print("read + lower + verify, CPU microseconds per gate (min of runs); ratio QMK/peer")
    print("(openqasm3*: the reference parser alone, from_qasm(fast=False); qvm-asm's peer is")
    print(" QMK's own JSON reader on the same graph, a floor, not a peer)")
    print(f"{'language':<12} {'gates':>9} {'QMK':>9} {'peer':>9}  {'ratio':>7}  peer")
    for n in sizes:
        gates = circuit(n, args.seed)
        repeat = args.repeat if n <= 100_000 else 1
        peer_ok = n <= args.peer_limit
        text2 = qasm2(gates)
        case("openqasm2", n, lambda t=text2: verify(from_qasm(t)), "qiskit.qasm2.loads",
             lambda t=text2: qiskit.qasm2.loads(t), repeat)  # fmt: skip
        text3 = qasm3(gates)
        case("openqasm3", n, lambda t=text3: verify(from_qasm(t)), "qiskit.qasm3.loads",
             (lambda t=text3: qiskit.qasm3.loads(t)) if peer_ok else None,
             repeat if n < 100_000 else 1)  # fmt: skip
        if n <= 1_000:
            case("openqasm3*", n, lambda t=text3: verify(from_qasm(t, fast=False)),
                 None, None, 1)  # fmt: skip
        text_ll = qir(gates)
        case("qir", n, lambda t=text_ll: verify(from_qir(t)), "pyqir Module.from_ir",
             (lambda t=text_ll: pyqir.Module.from_ir(pyqir.Context(), t)) if peer_ok else None,
             repeat if n < 100_000 else 1)  # fmt: skip
        lowered = from_qasm(text2)
        text_asm = asm.disassemble(lowered)
        text_json = graph_file.dumps(lowered)
        case("qvm-asm", n, lambda t=text_asm: verify(asm.assemble(t)), "(qvm json loads)",
             lambda t=text_json: graph_io.loads(t), repeat)  # fmt: skip

    # the goal cases: hwb12's size, and the same file broken near its end
    gates = circuit(HWB12_GATES, args.seed)
    text = qasm2(gates)
    lines = text.splitlines()
    at = next(i for i in range(int(len(lines) * 0.99), len(lines)) if lines[i].startswith("cx "))
    lines[at] = lines[at].replace(",", " ", 1)  # "cx q[3] q[7];": a missing comma
    broken = "\n".join(lines) + "\n"
    print("\ngoals (171k-gate OpenQASM 2):")
    # in turns, one run of each a round, so that a change of the machine's load hits both
    ours_runs, peer_runs = [], []
    for _ in range(args.repeat):
        ours_runs.append(timed(1, lambda: verify(from_qasm(text))))
        peer_runs.append(timed(1, lambda: qiskit.qasm2.loads(text)))
    cpu, wall = min(r[0] for r in ours_runs), min(r[1] for r in ours_runs)
    pcpu, pwall = min(r[0] for r in peer_runs), min(r[1] for r in peer_runs)
    goal_read = {
        "qmk_cpu_s": cpu,
        "qmk_wall_s": wall,
        "qiskit_cpu_s": pcpu,
        "qiskit_wall_s": pwall,
        "ratio_cpu": cpu / pcpu,
        "ratio_wall": wall / pwall,
    }
    print(
        f"  read+lower+verify: QMK {cpu:.2f} s CPU ({wall:.2f} s wall), qiskit.qasm2 "
        f"{pcpu:.2f} s ({pwall:.2f} s): {cpu / pcpu:.2f}x CPU, {wall / pwall:.2f}x wall "
        f"(goal: within 1.5x)"
    )
    cpu, wall, ours = timed(args.repeat, lambda: from_qasm(broken, name="broken.qasm"))
    pcpu, pwall, theirs = timed(args.repeat, lambda: qiskit.qasm2.loads(broken))
    assert isinstance(ours, FrontendError) and isinstance(theirs, Exception)
    goal_error = {
        "qmk_cpu_s": cpu,
        "qmk_wall_s": wall,
        "qiskit_cpu_s": pcpu,
        "qiskit_wall_s": pwall,
        "ratio_cpu": cpu / pcpu,
        "ratio_wall": wall / pwall,
        "qmk_error": str(ours),
        "qiskit_error": str(theirs).splitlines()[0],
    }
    print(
        f"  first error at line {at + 1}: QMK {cpu:.2f} s CPU ({wall:.2f} s wall), "
        f"qiskit.qasm2 {pcpu:.2f} s ({pwall:.2f} s): {cpu / pcpu:.2f}x CPU, "
        f"{wall / pwall:.2f}x wall (goal: within 2x)\n  QMK: {ours}"
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": load_at_start,
        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "qmk": __version__,
    }
    out.write_text(
        json.dumps(
            {"machine": machine, "cases": rows, "goal_read": goal_read, "goal_error": goal_error},
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
