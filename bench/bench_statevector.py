"""Benchmark: QMK's native statevector engine against qsim, and against memory bandwidth.

The goal (issue 28, item 1): complex64 at most 1.0x qsim, complex128 within 1.5x, on
random depth-20 circuits and the QFT at 20, 24 and 26 qubits. Cases (the circuits of
``bench_engines.py``), 1000 shots each, every qubit measured at the end:

- random-N: depth 20, a random U3 (RZ RY RZ) on every qubit then a CZ brickwork;
- QFT-N: the dense input of ``bench_execute.py`` then the QFT, its controlled phases
  written as RZ and CX (as both simulators are given them).

Contenders, given the same gate list, in interleaved rounds (``--rounds``, 1 above 24
qubits): ``qmk.run`` of the built graph with ``engine="statevector"`` in complex64 and
complex128 (in-process wall time: verify, plan, simulate, sample); the engine alone in
complex64 (``StatevectorEngine.apply_segment`` of the gate list, then ``sample``: what
of ``qmk.run``'s time is the simulation, the rest is verify, routing and planning); qsim
(``qsimcirq.QSimSimulator``, ``cpu_threads=2`` (``--threads``), ``max_fused_gate_size=4``,
``run(circuit, repetitions=shots)`` on a circuit built beforehand). Minima and medians,
the ratios of the minima, the one-minute load average before and after each case.

``--threads`` (default 2) sets both simulators' threads; with 1, the CPU times (shown
beside the wall times: every thread of the process, and their ratios to qsim's) measure
each one's work without the skew of a busy machine, where OpenMP threads that spin
while they wait for each other inflate qsim's wall time far more than QMK's.

Memory bandwidth: measured first, as the faster of a numpy in-place scale of 1 GiB
(one thread) and QMK's own diagonal kernel over a 2^27-amplitude complex64 state (every
thread): bytes read plus bytes written per second. Each QMK case then states its
*bandwidth floor*, the passes its fused plan makes times the bytes of a pass (the state
read and written) divided by that bandwidth, and what fraction of the measured time
that floor is (100%: the run moves memory at the machine's speed and does nothing else).

``--cli`` (on by default at 24 qubits; 0: none) also times what a user meets: a fresh
``qmk run FILE.qasm --engine statevector --no-noise`` process (complex64 and
complex128) against a fresh Python process that imports cirq and qsimcirq, builds the
same circuit from a JSON gate list and runs it, imports included, interleaved (cirq's
own OpenQASM reader needs ``ply``, which the test extra does not install).
``bench/results/statevector.json`` holds every figure. Needs the test extra (qsimcirq,
llvmlite).

    python bench/bench_statevector.py [--quick] [--sizes 20 24 26] [--kinds random qft]
        [--rounds 3] [--cli 24]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import qmk
from _common import RESULTS, describe, load_average, load_averages, machine, timed_group, write_json
from bench_engines import cirq_circuit, qvm_graph, random_gates
from bench_execute import Gate, dense_prep, qft_gates
from qmk.engines import fusion, kernels, simd
from qmk.engines.gates import GATES
from qmk.engines.statevector import DEFAULT_FUSED, StatevectorEngine

ROOT = Path(__file__).resolve().parent.parent
_QSIM_SCRIPT = """
import json, sys
import cirq, qsimcirq
gates = json.load(open(sys.argv[1]))
n = 1 + max(q for _, qs, _ in gates for q in qs)
qs = cirq.LineQubit.range(n)
make = {"cx": lambda p: cirq.CNOT, "cz": lambda p: cirq.CZ, "h": lambda p: cirq.H,
        "rz": lambda p: cirq.rz(p[0]), "ry": lambda p: cirq.ry(p[0])}
ops = [make[name](p).on(*(qs[q] for q in g)) for name, g, p in gates]
circuit = cirq.Circuit([*ops, cirq.measure(*qs, key="m")])
options = qsimcirq.QSimOptions(cpu_threads=int(sys.argv[3]), max_fused_gate_size=4)
sim = qsimcirq.QSimSimulator(options)
print(sim.run(circuit, repetitions=int(sys.argv[2])).measurements["m"].shape)
"""


def case_gates(kind: str, n: int) -> list[Gate]:
    return random_gates(n) if kind == "random" else qft_gates(n, dense_prep(n))


def passes(gates: list[Gate]) -> dict[str, int]:
    """The engine's fused plan of ``gates``: its blocks, dense and diagonal."""
    blocks = fusion.plan(
        [(qs, GATES[name].matrix(ps)) for name, qs, ps in gates],
        max_width=DEFAULT_FUSED,
        diagonal_width=fusion.DIAGONAL_WIDTH,
    )
    diagonal = sum(b.diagonal for b in blocks)
    return {"gates": len(gates), "blocks": len(blocks), "diagonal": diagonal}


def bandwidth() -> dict[str, float]:
    """Bytes read plus written per second: numpy in place on 1 GiB, and QMK's diagonal
    kernel on 1 GiB of complex64 (best of 3 each)."""
    big = np.ones(1 << 28, dtype=np.float32)
    best_numpy = 0.0
    for _ in range(3):
        start = time.perf_counter()
        big *= np.float32(1.0)
        best_numpy = max(best_numpy, 2 * big.nbytes / (time.perf_counter() - start))
    del big
    best_kernel = 0.0
    if simd.available():
        psi = np.ones(1 << 27, dtype=np.complex64)
        phase = np.array([1, 1j], dtype=np.complex128)
        for _ in range(3):
            start = time.perf_counter()
            simd.apply_diagonal(psi, phase, [20])
            best_kernel = max(best_kernel, 2 * psi.nbytes / (time.perf_counter() - start))
    return {"numpy_inplace_Bps": best_numpy, "qmk_diagonal_Bps": best_kernel}


def cli_timing(n: int, kind: str, shots: int, rounds: int, threads: int) -> dict[str, Any]:
    """Fresh processes: ``qmk run`` (statevector, complex64 and complex128) against a
    Python process running qsimcirq on the same OpenQASM 2 file."""
    gates = case_gates(kind, n)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for name, qs, params in gates:
        args = f"({', '.join(repr(p) for p in params)})" if params else ""
        lines.append(f"{name}{args} " + ",".join(f"q[{q}]" for q in qs) + ";")
    lines.append("measure q -> c;")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path[1:2]])}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}-{n}.qasm"
        path.write_text("\n".join(lines) + "\n")
        listed = Path(tmp) / f"{kind}-{n}.json"
        listed.write_text(json.dumps(gates))
        qmk_cmd = [sys.executable, "-m", "qmk", "run", str(path), "--engine", "statevector"]
        qmk_cmd += ["--no-noise", "--shots", str(shots), "--seed", "1", "--quiet"]
        commands = {
            "qmk run complex64": [*qmk_cmd, "--precision", "single"],
            "qmk run complex128": [*qmk_cmd, "--precision", "double"],
            "python + qsimcirq": [
                sys.executable,
                "-c",
                _QSIM_SCRIPT,
                str(listed),
                str(shots),
                str(threads),
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        load = load_average()
        for _ in range(rounds):
            for name, command in commands.items():
                start = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                times[name].append(time.perf_counter() - start)
                if done.returncode:
                    raise RuntimeError(f"{name} failed: {done.stderr.strip()[-400:]}")
    got = {name: {"min_s": min(t), "median_s": float(np.median(t))} for name, t in times.items()}
    peer = got["python + qsimcirq"]["min_s"]
    return {
        "case": f"{kind}-{n}",
        "shots": shots,
        "rounds": rounds,
        "load_average_before": load,
        "load_average_after": load_average(),
        "times": got,
        "ratios": {name: got[name]["min_s"] / peer for name in got if name.startswith("qmk")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--kinds", nargs="*", default=["random", "qft"])
    parser.add_argument("--rounds", type=int, default=3, help="rounds up to 24 qubits")
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cli", type=int, default=None, help="qubits of the CLI timing (0: none)")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads of both (qsim's cpu_threads, $QMK_THREADS); 1 makes CPU times a "
        "measure of work that a busy machine does not skew (no spin-waiting threads)",
    )
    parser.add_argument("--out", default=str(RESULTS / "statevector.json"))
    args = parser.parse_args()
    os.environ[simd.THREADS_ENV] = str(args.threads)
    sizes = args.sizes or ([12, 14] if args.quick else [20, 24, 26])
    cli_n = args.cli if args.cli is not None else (12 if args.quick else 24)

    import qsimcirq

    info = machine(qsimcirq=qsimcirq.__version__, qmk_kernels=kernels.default_kernels())
    print(describe(info))
    limit = bandwidth()
    rate = max(limit.values())
    print(
        "memory bandwidth (read + write): numpy in place "
        f"{limit['numpy_inplace_Bps'] / 1e9:.1f} GB/s, QMK diagonal pass "
        f"{limit['qmk_diagonal_Bps'] / 1e9:.1f} GB/s"
    )
    options = qsimcirq.QSimOptions(cpu_threads=args.threads, max_fused_gate_size=4)
    qsim = qsimcirq.QSimSimulator(options)
    warm = min(12, *sizes)
    for kind in args.kinds:  # compile QMK's kernels for each case's block shapes
        warm_graph = qvm_graph(warm, case_gates(kind, warm))
        for dtype in ("complex64", "complex128"):
            qmk.run(warm_graph, shots=10, engine="statevector", engine_options={"dtype": dtype})
        qsim.run(cirq_circuit(warm, case_gates(kind, warm)), repetitions=10)

    rows: list[dict[str, Any]] = []
    for n in sizes:
        for kind in args.kinds:
            gates = case_gates(kind, n)
            graph, circuit = qvm_graph(n, gates), cirq_circuit(n, gates)

            def ours(dtype: str, graph: Any = graph) -> Any:
                return qmk.run(
                    graph,
                    shots=args.shots,
                    seed=args.seed,
                    engine="statevector",
                    noise=False,
                    engine_options={"dtype": dtype},
                )

            def engine_only(gates: list[Gate] = gates, n: int = n) -> Any:
                engine = StatevectorEngine(seed=args.seed, dtype="complex64")
                qs = [engine.allocate() for _ in range(n)]
                engine.apply_segment([(name, [qs[q] for q in w], p) for name, w, p in gates])
                return engine.sample(qs, args.shots)

            runs = {
                "qmk complex64": lambda: ours("complex64"),
                "engine complex64": engine_only,
                "qmk complex128": lambda: ours("complex128"),
                "qsim": lambda c=circuit: qsim.run(c, repetitions=args.shots),
            }
            rounds = args.rounds if n <= 24 else 1
            load = load_average()
            timings = timed_group(runs, rounds, warmup=0)
            got = {
                name: {**t.figures(), "cpu_min_s": t.cpu_min_s, "runs": t.runs}
                for name, t in timings.items()
            }
            del timings
            plan = passes(gates)
            row: dict[str, Any] = {
                "case": f"{kind}-{n}",
                "qubits": n,
                "threads": args.threads,
                "shots": args.shots,
                "plan": plan,
                "load_average_before": load,
                "load_average_after": load_average(),
                "times": got,
                "ratios": {},
                "cpu_ratios": {},
                "bandwidth_floor_s": {},
                "of_bandwidth": {},
            }
            for name, itemsize in (("qmk complex64", 8), ("qmk complex128", 16)):
                floor = plan["blocks"] * 2 * itemsize * (1 << n) / rate
                row["ratios"][name] = got[name]["min_s"] / got["qsim"]["min_s"]
                row["cpu_ratios"][name] = got[name]["cpu_min_s"] / got["qsim"]["cpu_min_s"]
                row["bandwidth_floor_s"][name] = floor
                row["of_bandwidth"][name] = floor / got[name]["min_s"]
            rows.append(row)
            print(
                f"\n{kind}-{n}: {plan['gates']} gates, {plan['blocks']} passes "
                f"({plan['diagonal']} diagonal); min of {rounds}; load average "
                f"{load:.2f} -> {row['load_average_after']:.2f}"
            )
            for name, entry in got.items():
                extra = ""
                if name in row["ratios"]:
                    extra = (
                        f"  {row['ratios'][name]:5.2f}x qsim (cpu "
                        f"{row['cpu_ratios'][name]:4.2f}x)   bandwidth floor "
                        f"{row['bandwidth_floor_s'][name]:6.3f} s "
                        f"({100 * row['of_bandwidth'][name]:3.0f}% of the time)"
                    )
                print(
                    f"  {name:<15} {entry['min_s']:8.3f} s (median {entry['median_s']:7.3f}, "
                    f"cpu {entry['cpu_min_s']:7.3f}){extra}"
                )
    cli = None
    if cli_n:
        cli = [cli_timing(cli_n, kind, args.shots, 2, args.threads) for kind in args.kinds]
        for entry in cli:
            print(
                f"\nfresh processes, {entry['case']}, {entry['shots']} shots, load average "
                f"{entry['load_average_before']:.2f} -> {entry['load_average_after']:.2f}:"
            )
            for name, figures in entry["times"].items():
                ratio = entry["ratios"].get(name)
                shown = f"  {ratio:5.2f}x python + qsimcirq" if ratio else ""
                print(f"  {name:<20} {figures['min_s']:8.3f} s{shown}")
    goal = [
        (row["case"], name, ratio, 1.0 if name == "qmk complex64" else 1.5)
        for row in rows
        for name, ratio in row["ratios"].items()
    ]
    met = all(ratio <= bound for _, _, ratio, bound in goal)
    print(
        "\ngoal (complex64 <= 1.0x qsim, complex128 <= 1.5x): "
        + ", ".join(f"{case} {name.split()[1]} {ratio:.2f}x" for case, name, ratio, _ in goal)
        + (" -> met" if met else " -> not met")
    )
    info["load_average_at_end"] = load_averages()
    write_json(
        {"machine": info, "bandwidth": limit, "cases": rows, "fresh_processes": cli}, args.out
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
