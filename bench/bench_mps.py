"""Benchmark: wide shallow circuits on QMK's ``mps`` engine against Qiskit Aer's MPS
(issue 28, item 4).

GHZ and brickwork circuits (depth 4 and 8: ``rz ry rz`` at random angles on every qubit,
then ``cx`` on alternate neighbour pairs) on 60, 80 and 100 qubits, every qubit measured,
the same shots on both sides, in one process. Goal: QMK at most 1.0x Aer (not a test:
nothing here fails on a timing).

Contenders, warmed up once, then timed in interleaved rounds (a change of machine load
hits them alike); ratios use medians:

- ``qmk mps``: ``MPSEngine(seed)``, allocate, ``apply_segment`` of the gate list, then
  ``sample`` of every qubit;
- ``aer mps``: ``AerSimulator(method="matrix_product_state").run(circuit, shots,
  seed_simulator).result().get_counts()`` on a Qiskit circuit built beforehand (its
  construction is not timed; Aer uses every core, QMK's numpy its BLAS threads);
- with ``--end-to-end``, also ``qmk run`` (``qmk.run`` of the OpenQASM 2 file, noise
  off: read, lower, verify, route, which picks ``mps``, sample, count) against
  ``qiskit.qasm2.loads`` and the Aer run.

Agreement (not timed): every qubit's P(1) from QMK's engine against Aer's
``save_probabilities`` of that qubit (exact against exact), and QMK's fidelity and
largest bond. ``bench/results/mps.json`` holds minima, medians, ratios, checks and the
machine.

    python bench/bench_mps.py [--repeat 5] [--shots 1000] [--quick] [--end-to-end]
        [--qubits 60,80,100] [--depths 4,8] [--no-ghz]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import qmk
from _common import RESULTS, describe, load_averages, machine, timed_group, write_json
from qmk.engines.base import GateCall
from qmk.engines.mps import MPSEngine


def ghz(n: int) -> list[GateCall]:
    return [("h", (0,), ()), *(("cx", (q, q + 1), ()) for q in range(n - 1))]


def brickwork(n: int, depth: int, seed: int) -> list[GateCall]:
    rng = np.random.default_rng(seed)
    out: list[GateCall] = []
    for layer in range(depth):
        for q in range(n):
            for gate in ("rz", "ry", "rz"):
                out.append((gate, (q,), (float(rng.uniform(0, 2 * math.pi)),)))
        out += [("cx", (q, q + 1), ()) for q in range(layer % 2, n - 1, 2)]
    return out


def qiskit_circuit(n: int, gates: Sequence[GateCall], *, measure: bool = True) -> Any:
    """The circuit with QMK's qubit ``q`` as Qiskit's qubit ``q``."""
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(n)
    for name, qs, params in gates:
        getattr(circuit, name)(*params, *qs)
    if measure:
        circuit.measure_all()
    return circuit


def qasm(n: int, gates: Sequence[GateCall]) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for name, qs, params in gates:
        args = f"({', '.join(repr(float(p)) for p in params)})" if params else ""
        lines.append(f"{name}{args} {','.join(f'q[{q}]' for q in qs)};")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def run_qmk(n: int, gates: Sequence[GateCall], shots: int, seed: int) -> np.ndarray:
    engine = MPSEngine(seed=seed)
    qubits = [engine.allocate() for _ in range(n)]
    engine.apply_segment(gates)
    return engine.sample(qubits, shots)


def agreement(n: int, gates: Sequence[GateCall], simulator: Any, seed: int) -> dict[str, Any]:
    """QMK's exact P(1) of every qubit against Aer's, and QMK's fidelity and bonds."""
    engine = MPSEngine(seed=seed)
    qubits = [engine.allocate() for _ in range(n)]
    engine.apply_segment(gates)
    ours = np.array([engine.probability(q) for q in qubits])
    circuit = qiskit_circuit(n, gates, measure=False)
    for q in range(n):
        circuit.save_probabilities([q], label=f"p{q}")
    data = simulator.run(circuit, shots=1).result().data(0)
    theirs = np.array([float(data[f"p{q}"][1]) for q in range(n)])
    return {
        "max_abs_p1_difference": float(np.abs(ours - theirs).max()),
        "qmk_fidelity": engine.fidelity,
        "qmk_max_bond": max(engine.bond_dimensions),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="60 qubits, depth 4 only")
    parser.add_argument("--qubits", default="60,80,100", help="widths, comma-separated")
    parser.add_argument("--depths", default="4,8", help="brickwork depths, comma-separated")
    parser.add_argument("--no-ghz", action="store_true", help="brickwork only")
    parser.add_argument("--end-to-end", action="store_true", help="also qmk run vs qasm2+Aer")
    parser.add_argument("--out", default=str(RESULTS / "mps.json"))
    args = parser.parse_args()
    import qiskit
    import qiskit_aer
    from qiskit import qasm2
    from qiskit_aer import AerSimulator

    widths = (60,) if args.quick else tuple(int(w) for w in args.qubits.split(","))
    depths = (4,) if args.quick else tuple(int(d) for d in args.depths.split(","))
    shapes: dict[str, Callable[[int], list[GateCall]]] = {} if args.no_ghz else {"ghz": ghz}
    for depth in depths:
        shapes[f"brickwork-{depth}"] = lambda n, d=depth: brickwork(n, d, args.seed + d)
    info = machine(qiskit=qiskit.__version__, qiskit_aer=qiskit_aer.__version__)
    print(describe(info, f"{args.shots} shots; medians of {args.repeat} runs after 1 warm-up"))
    simulator = AerSimulator(method="matrix_product_state")
    header = f"{'case':<22} {'qmk mps':>10} {'aer mps':>10} {'ratio':>6}"
    if args.end_to_end:
        header += f" {'qmk run':>10} {'qasm2+aer':>10} {'ratio':>6}"
    print(header + "   agreement (max |dP1|, fidelity, bond)")
    cases: list[dict[str, Any]] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-mps-"))
    shots, seed = args.shots, args.seed
    for n in widths:
        for shape, make in shapes.items():
            gates = make(n)
            circuit = qiskit_circuit(n, gates)
            runs: dict[str, Callable[[], Any]] = {
                "qmk mps": lambda n=n, g=gates: run_qmk(n, g, shots, seed),
                "aer mps": lambda c=circuit: (
                    simulator.run(c, shots=shots, seed_simulator=seed).result().get_counts()
                ),
            }
            if args.end_to_end:
                text = qasm(n, gates)
                path = folder / f"{shape}-{n}.qasm"
                path.write_text(text, encoding="utf-8")
                runs["qmk run"] = lambda p=path: qmk.run(p, shots=shots, seed=seed, noise=False)
                runs["qasm2+aer"] = lambda t=text: (
                    simulator.run(qasm2.loads(t), shots=shots, seed_simulator=seed)
                    .result()
                    .get_counts()
                )
            got = timed_group(runs, args.repeat)
            times = {name: t.figures() for name, t in got.items()}
            ratio = times["qmk mps"]["median_s"] / times["aer mps"]["median_s"]
            check = agreement(n, gates, simulator, seed)
            line = (
                f"{shape + '-' + str(n):<22} {times['qmk mps']['median_s'] * 1e3:>8.1f}ms "
                f"{times['aer mps']['median_s'] * 1e3:>8.1f}ms {ratio:>5.2f}x"
            )
            case: dict[str, Any] = {
                "shape": shape,
                "qubits": n,
                "gates": len(gates),
                "shots": shots,
                "times": times,
                "ratio_qmk_over_aer": ratio,
                "agreement": check,
            }
            if args.end_to_end:
                engine = got["qmk run"].result.engine
                e2e = times["qmk run"]["median_s"] / times["qasm2+aer"]["median_s"]
                case |= {"ratio_qmk_run_over_qasm2_aer": e2e, "qmk_run_engine": engine}
                line += (
                    f" {times['qmk run']['median_s'] * 1e3:>8.1f}ms "
                    f"{times['qasm2+aer']['median_s'] * 1e3:>8.1f}ms {e2e:>5.2f}x [{engine}]"
                )
            line += (
                f"   {check['max_abs_p1_difference']:.1e}, {check['qmk_fidelity']:.12g}, "
                f"{check['qmk_max_bond']}"
            )
            print(line, flush=True)
            cases.append(case)
    ratios = [c["ratio_qmk_over_aer"] for c in cases]
    print(f"worst ratio qmk/aer {max(ratios):.2f}x, best {min(ratios):.2f}x")
    record = {
        "benchmark": "mps",
        "machine": info,
        "repeat": args.repeat,
        "cases": cases,
        "worst_ratio_qmk_over_aer": max(ratios),
        "load_average_at_end": load_averages(),
    }
    write_json(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
