"""Benchmark: QMK's native statevector engine against qsim and Qiskit Aer, in one run.

The goal (issue 18): the native engine in single precision within 2x of qsim on
random-20 and random-24. Cases, 1000 shots each, every qubit measured at the end:

- random-N (N = 20, 24, 26): depth 20; each layer applies a random U3 to every qubit
  (as RZ RY RZ, the rotations QVM has) and then a CZ brickwork (pairs (i, i+1) from
  i = 0 in even layers, from i = 1 in odd ones): random-24 has 1680 rotations and
  230 CZs;
- QFT-24 on the dense input of ``bench_execute.py`` (H, RZ, a CX ladder, RY), with
  controlled phases as RZ/CX.

Contenders, all given the same gate list: QMK's ``qmk.run`` from a built graph
(``engine="statevector"`` in complex64 and complex128, and the router's default choice,
``noise=False``: its own in-process wall time, verify, plan, simulate and count
included); qsim (``qsimcirq.QSimSimulator``, ``cpu_threads=2``, ``max_fused_gate_size=4``,
``run(circuit, repetitions=shots)`` on a circuit built beforehand); Qiskit Aer
(``AerSimulator(method="statevector")`` in double and single precision,
``run(transpiled, shots).result()``, up to ``--aer-max`` qubits: it is the slowest).

Each contender is warmed up once on the smallest random case and the small QFT, which
compiles QMK's kernels; then the contenders of a case run in interleaved rounds (a change
of machine load hits them alike), 5 rounds up to 20 qubits, 2 up to 24, 1 above (Aer 1
above 20 qubits: it takes ten times as long). The
table shows minimum wall times (and the least CPU time of the process, every thread
counted) and the ratios of the wall minima; ``bench/results/engines.json`` holds minima,
medians, the fusion plan's size and the machine (CPU count, load averages before and
after, versions). A self-check first compares final states on 12 qubits (QMK in both
precisions and both kernel implementations, qsim, Aer). Needs the test extra (qsimcirq,
qiskit-aer, llvmlite).

    python bench/bench_engines.py [--quick] [--sizes 20 24 26] [--qft 24] [--shots 1000]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import qmk
from _common import (
    RESULTS,
    describe,
    load_average,
    load_averages,
    machine,
    timed_group,
    write_json,
)
from bench_execute import Gate, dense_prep, qft_gates, qvm_graph
from qmk.engines import fusion, kernels
from qmk.engines.gates import GATES
from qmk.engines.statevector import DEFAULT_FUSED, StatevectorEngine


def random_gates(n: int, depth: int = 20, seed: int = 0) -> list[Gate]:
    """Depth ``depth``: a random U3 (RZ RY RZ) on every qubit, then a CZ brickwork."""
    rng = np.random.default_rng(seed)
    gates: list[Gate] = []
    for layer in range(depth):
        for q in range(n):
            phi, theta, lam = (float(a) for a in rng.uniform(0, 2 * math.pi, 3))
            gates += [("rz", (q,), (lam,)), ("ry", (q,), (theta,)), ("rz", (q,), (phi,))]
        gates += [("cz", (i, i + 1), ()) for i in range(layer % 2, n - 1, 2)]
    return gates


def cirq_circuit(n: int, gates: list[Gate], *, measure: bool = True) -> Any:
    import cirq

    qs = cirq.LineQubit.range(n)
    make = {
        "h": lambda p: cirq.H,
        "x": lambda p: cirq.X,
        "cx": lambda p: cirq.CNOT,
        "cz": lambda p: cirq.CZ,
        "rz": lambda p: cirq.rz(p[0]),
        "ry": lambda p: cirq.ry(p[0]),
        "rx": lambda p: cirq.rx(p[0]),
    }
    ops = [make[name](params).on(*(qs[q] for q in qubits)) for name, qubits, params in gates]
    if measure:
        ops.append(cirq.measure(*qs, key="m"))
    return cirq.Circuit(ops)


def qiskit_circuit(n: int, gates: list[Gate], *, measure: bool = True) -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, n) if measure else QuantumCircuit(n)
    for name, qs, params in gates:
        getattr(qc, name)(*params, *qs)
    if measure:
        qc.measure(range(n), range(n))
    return qc


def fused_plan(gates: list[Gate]) -> dict[str, Any]:
    """The size of the native engine's fusion plan for ``gates`` (its default widths:
    blocks by width, diagonal ones, modelled cost)."""
    blocks = fusion.plan(
        [(qs, GATES[name].matrix(ps)) for name, qs, ps in gates],
        max_width=DEFAULT_FUSED,
        diagonal_width=fusion.DIAGONAL_WIDTH,
    )
    widths = [len(b.qubits) for b in blocks]
    return {
        "gates": len(gates),
        "blocks": len(blocks),
        "diagonal": sum(b.diagonal for b in blocks),
        "by_width": {str(w): widths.count(w) for w in sorted(set(widths))},
        "modelled_cost": sum(fusion.cost(len(b.qubits), diagonal=b.diagonal) for b in blocks),
    }


def self_check(n: int = 12) -> dict[str, Any]:
    """Final states of random-n from QMK (each precision and kernel set), qsim and Aer:
    the largest distance between amplitudes, each state's global phase aligned to QMK's
    complex128 one."""
    import cirq
    import qsimcirq
    from qiskit.quantum_info import Statevector

    gates = random_gates(n)

    def ours(dtype: str, which: str) -> np.ndarray:
        engine = StatevectorEngine(seed=0, dtype=dtype, kernels=which, fused_min_qubits=0)
        qs = [engine.allocate() for _ in range(n)]
        engine.apply_segment([(name, [qs[q] for q in g], p) for name, g, p in gates])
        return np.asarray(engine.state_vector(qs), dtype=np.complex128)

    reference = ours("complex128", "numpy")
    states = {
        f"qmk {dtype} {which}": ours(dtype, which)
        for dtype in ("complex64", "complex128")
        for which in kernels.KERNELS
        if which == "numpy" or kernels.default_kernels() == "simd"
    }
    sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=2, max_fused_gate_size=4))
    qubits = cirq.LineQubit.range(n)
    states["qsim"] = np.asarray(
        sim.simulate(cirq_circuit(n, gates, measure=False), qubit_order=qubits).final_state_vector,
        dtype=np.complex128,
    )
    aer = np.asarray(Statevector(qiskit_circuit(n, gates, measure=False)).data)
    # qiskit's qubit 0 is the least significant bit: reverse the bit order
    states["aer"] = aer.reshape((2,) * n).transpose(list(reversed(range(n)))).reshape(-1)
    out: dict[str, Any] = {"qubits": n, "max_amplitude_distance": {}}
    for name, state in states.items():
        overlap = np.vdot(state, reference)
        phase = overlap / abs(overlap) if abs(overlap) else 1.0
        out["max_amplitude_distance"][name] = float(np.max(np.abs(state * phase - reference)))
    out["ok"] = all(d < 1e-4 for d in out["max_amplitude_distance"].values())
    return out


def contenders_for(
    n: int, gates: list[Gate], *, shots: int, seed: int, qsim: Any, aer: dict[str, Any]
) -> dict[str, Callable[[], Any]]:
    """The runs of one case: QMK (each precision, and its default choice), qsim, Aer."""
    from qiskit import transpile

    graph = qvm_graph(n, gates)
    circuit = cirq_circuit(n, gates)
    transpiled = transpile(qiskit_circuit(n, gates), next(iter(aer.values()))) if aer else None

    def qmk_run(dtype: str | None, engine: str | None) -> Any:
        options = {"dtype": dtype} if dtype else None
        return qmk.run(
            graph, shots=shots, seed=seed, engine=engine, noise=False, engine_options=options
        )

    def aer_run(backend: Any) -> Callable[[], Any]:
        return lambda: backend.run(transpiled, shots=shots).result()

    runs: dict[str, Callable[[], Any]] = {
        "qmk statevector complex64": lambda: qmk_run("complex64", "statevector"),
        "qmk statevector complex128": lambda: qmk_run("complex128", "statevector"),
        "qmk default": lambda: qmk_run(None, None),
        "qsim": lambda: qsim.run(circuit, repetitions=shots),
    }
    runs.update({f"aer {precision}": aer_run(backend) for precision, backend in aer.items()})
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="random-N sizes")
    parser.add_argument("--qft", type=int, default=None, help="QFT qubits (24; 0: none)")
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--aer-max", type=int, default=24, help="largest case Aer runs")
    parser.add_argument("--out", default=str(RESULTS / "engines.json"))
    args = parser.parse_args()
    sizes = args.sizes or ([14, 16] if args.quick else [20, 24, 26])
    qft_n = args.qft if args.qft is not None else (14 if args.quick else 24)
    shots, seed = args.shots, args.seed

    import qiskit
    import qiskit_aer
    import qsimcirq
    from qiskit_aer import AerSimulator

    info = machine(
        qsimcirq=qsimcirq.__version__,
        qiskit=qiskit.__version__,
        qiskit_aer=qiskit_aer.__version__,
        qmk_kernels=kernels.default_kernels(),
    )
    print(describe(info))
    check = self_check()
    print(
        "self-check (random-12 final states, max |amplitude difference| from QMK complex128 "
        "numpy): "
        + ", ".join(f"{k} {v:.1e}" for k, v in check["max_amplitude_distance"].items())
        + (" -> ok" if check["ok"] else " -> FAILED")
    )

    qsim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=2, max_fused_gate_size=4))
    aer = {p: AerSimulator(method="statevector", precision=p) for p in ("double", "single")}
    cases = [(f"random-{n}", n, random_gates(n)) for n in sizes]
    if qft_n:
        cases.append((f"QFT-{qft_n} dense", qft_n, qft_gates(qft_n, dense_prep(qft_n))))
    smallest = min(n for _, n, _ in cases)
    warm_qft = min(qft_n, 12) if qft_n else 0
    if warm_qft:  # compile QMK's kernels for the QFT's block shapes too
        qmk.run(qvm_graph(warm_qft, qft_gates(warm_qft, dense_prep(warm_qft))), shots=10)

    rows: list[dict[str, Any]] = []
    for label, n, gates in cases:
        contenders = contenders_for(
            n, gates, shots=shots, seed=seed, qsim=qsim, aer=aer if n <= args.aer_max else {}
        )
        rounds = 5 if n <= 20 else 2 if n <= 24 else 1
        load = load_average()
        # Aer takes ten times as long as the others: one round of it above 20 qubits
        once = frozenset(name for name in contenders if name.startswith("aer") and n > 20)
        timings = timed_group(contenders, rounds, warmup=int(n == smallest), once=once)
        default = timings["qmk default"].result
        # cpu_min_s: every thread of this process, spin-waits too
        got = {
            name: {**t.figures(), "cpu_min_s": t.cpu_min_s, "runs": t.runs}
            for name, t in timings.items()
        }
        del timings  # the other contenders' last results
        row = {
            "case": label,
            "qubits": n,
            "shots": shots,
            "gates": len(gates),
            "fusion_plan": fused_plan(gates),
            "default_engine": default.engine,
            "load_average_before": load,
            "load_average_after": load_average(),
            "times": got,
            "ratios": {},
        }
        for peer in ("qsim", "aer double"):
            if peer in got:
                row["ratios"][peer] = {
                    name: got[name]["min_s"] / got[peer]["min_s"]
                    for name in got
                    if name.startswith("qmk")
                }
        rows.append(row)
        print(
            f"\n{label}: {len(gates)} gates, {row['fusion_plan']['blocks']} fused blocks, "
            f"{shots} shots; min of {rounds} round(s); load average {load:.2f} -> "
            f"{row['load_average_after']:.2f}"
        )
        width = max(len(name) for name in got)
        for name, entry in got.items():
            ratios = "  ".join(
                f"{r[name]:6.2f}x {peer}" for peer, r in row["ratios"].items() if name in r
            )
            shown = f" ({default.engine})" if name == "qmk default" else ""
            print(
                f"  {name + shown:<{width + 14}} {entry['min_s']:9.3f} s "
                f"(cpu {entry['cpu_min_s']:7.3f} s)  {ratios}"
            )
    goal = {
        row["case"]: row["ratios"]["qsim"]["qmk statevector complex64"]
        for row in rows
        if row["case"] in ("random-20", "random-24")
    }
    if goal:
        print(
            "\ngoal (complex64 <= 2x qsim on random-20 and random-24): "
            + ", ".join(f"{case} {ratio:.2f}x" for case, ratio in goal.items())
            + (" -> met" if all(r <= 2 for r in goal.values()) else " -> not met")
        )
    info["load_average_at_end"] = load_averages()
    write_json({"machine": info, "self_check": check, "cases": rows}, args.out)
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
