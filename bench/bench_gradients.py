"""Benchmark: gradients and exact expectation values for variational users (issue 62 item 3).

Side by side in one process, on the same circuits, in interleaved rounds (a change of
machine load hits every contender alike); the table shows minima and medians of wall
time and QMK's ratios to each peer. Goals: within 2x ``lightning.qubit`` for the
gradient and for the expectation values; the ``EstimatorV2`` figures against Aer's.
Not a test: nothing here fails on a timing.

The circuit: ``--qubits`` (12) qubits, ``--layers`` (3) layers of ``RY`` and ``RZ`` on
every qubit and a ring of ``CNOT`` (72 parameters), seeded angles.

- **gradient**: ``qml.grad`` of ``<Z0 Z1>`` by all parameters, as a user calls it (QNode
  construction, autograd and the device's gradient): ``qmk.statevector`` with its default
  (``best``, its adjoint method), ``lightning.qubit`` (adjoint), ``default.qubit``
  (backprop, its default, and adjoint); with ``--shift``, QMK's parameter shift too
  (what it did before it had a gradient of its own: two runs a parameter).
- **expectations**: one QNode call returning ``--observables`` (100) expectation values
  of seeded Pauli words of weight 1 to 3 that do not commute, on each device.
- **estimator**: Qiskit's ``EstimatorV2`` at precision 0 on the same circuit: QMK's
  (``qmk.qiskit.EstimatorV2``) against Aer's (``qiskit_aer.primitives.EstimatorV2``),
  one binding with the observables, and four bindings with each.

Every contender's values are compared with the first's (the largest difference is
printed and written). ``bench/results/gradients.json`` holds minima, medians, ratios,
the differences, the load averages at the start and the end and the machine.

    python bench/bench_gradients.py [--repeat 7] [--shift]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from _common import RESULTS, describe, installed, load_averages, machine, timed_group, write_json

#: Each goal's contenders: QMK's first, then its peers (the ratios' denominators).
QMK = "qmk"


def pauli_words(n: int, count: int, seed: int) -> list[dict[int, str]]:
    """``count`` seeded Pauli words of weight 1 to 3 on ``n`` qubits."""
    rng = np.random.default_rng(seed)
    words = []
    for _ in range(count):
        qubits = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
        words.append({int(q): "XYZ"[int(rng.integers(3))] for q in qubits})
    return words


def pennylane_runs(args: argparse.Namespace) -> dict[str, dict[str, Callable[[], Any]]]:
    """The gradient and expectation contenders (PennyLane)."""
    import pennylane as qml
    from pennylane import numpy as pnp

    n, layers = args.qubits, args.layers
    rng = np.random.default_rng(args.seed)
    angles = pnp.array(rng.uniform(0, 2 * np.pi, (layers, n, 2)), requires_grad=True)
    words = pauli_words(n, args.observables, args.seed)

    def ansatz(weights: Any) -> None:
        for layer in range(layers):
            for w in range(n):
                qml.RY(weights[layer, w, 0], wires=w)
                qml.RZ(weights[layer, w, 1], wires=w)
            for w in range(n):
                qml.CNOT([w, (w + 1) % n])

    def energy(weights: Any) -> Any:
        ansatz(weights)
        return qml.expval(qml.Z(0) @ qml.Z(1))

    def many(weights: Any) -> Any:
        ansatz(weights)
        return [qml.expval(qml.pauli.PauliWord(word).operation()) for word in words]

    def gradient(device: str, method: str) -> Callable[[], Any]:
        qnode = qml.QNode(energy, qml.device(device, wires=n), diff_method=method)
        grad = qml.grad(qnode)
        return lambda: np.asarray(grad(angles))

    def expectations(device: str) -> Callable[[], Any]:
        qnode = qml.QNode(many, qml.device(device, wires=n))
        return lambda: np.asarray(qnode(angles.numpy()))

    gradients = {
        QMK: gradient("qmk.statevector", "best"),
        "lightning.qubit adjoint": gradient("lightning.qubit", "adjoint"),
        "default.qubit backprop": gradient("default.qubit", "backprop"),
        "default.qubit adjoint": gradient("default.qubit", "adjoint"),
    }
    if args.shift:
        gradients["qmk parameter-shift"] = gradient("qmk.statevector", "parameter-shift")
    return {
        "gradient": gradients,
        "expectations": {
            QMK: expectations("qmk.statevector"),
            "lightning.qubit": expectations("lightning.qubit"),
            "default.qubit": expectations("default.qubit"),
        },
    }


def estimator_runs(args: argparse.Namespace) -> dict[str, dict[str, Callable[[], Any]]]:
    """The ``EstimatorV2`` contenders (Qiskit): one binding, and four."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    from qmk.qiskit import EstimatorV2

    n, layers = args.qubits, args.layers
    theta = ParameterVector("t", 2 * n * layers)
    circuit = QuantumCircuit(n)
    at = 0
    for _ in range(layers):
        for w in range(n):
            circuit.ry(theta[at], w)
            circuit.rz(theta[at + 1], w)
            at += 2
        for w in range(n):
            circuit.cx(w, (w + 1) % n)
    labels = []
    for word in pauli_words(n, args.observables, args.seed):
        letters = ["I"] * n
        for q, letter in word.items():
            letters[n - 1 - q] = letter  # Qiskit's labels: qubit 0 last
        labels.append("".join(letters))
    rng = np.random.default_rng(args.seed)
    bindings = rng.uniform(0, 2 * np.pi, (4, len(theta)))
    pubs = {
        "1 binding": (circuit, labels, bindings[0]),
        "4 bindings": (circuit, [[label] for label in labels], bindings),
    }
    ours, aer = EstimatorV2(), AerEstimator()

    def run(estimator: Any, pub: Any) -> Callable[[], Any]:
        return lambda: np.asarray(estimator.run([pub]).result()[0].data.evs)

    return {
        f"estimator, {name}": {QMK: run(ours, pub), "aer": run(aer, pub)}
        for name, pub in pubs.items()
    }


def measure(
    goals: Mapping[str, Mapping[str, Callable[[], Any]]], repeat: int
) -> dict[str, dict[str, Any]]:
    """Each goal's contenders timed in interleaved rounds; figures, ratios to QMK's and
    the largest difference of each contender's values from QMK's."""
    out: dict[str, dict[str, Any]] = {}
    for goal, runs in goals.items():
        timings = timed_group(runs, repeat, warmup=1)
        ours = timings[QMK]
        rows = {}
        for name, timing in timings.items():
            difference = float(np.max(np.abs(np.asarray(timing.result) - ours.result)))
            rows[name] = {
                **timing.figures(),
                "qmk_ratio_min": ours.min_s / timing.min_s,
                "qmk_ratio_median": ours.median_s / timing.median_s,
                "max_abs_difference": difference,
            }
        out[goal] = rows
    return out


def table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """The figures as a table: each contender's times and QMK's ratio to it."""
    print(
        f"{'goal':<24} {'contender':<26} {'min ms':>9} {'median ms':>10} "
        f"{'qmk/it min':>10} {'qmk/it med':>10} {'max |diff|':>10}"
    )
    for goal, rows in results.items():
        for name, row in rows.items():
            print(
                f"{goal:<24} {name:<26} {row['min_s'] * 1e3:>9.2f} "
                f"{row['median_s'] * 1e3:>10.2f} {row['qmk_ratio_min']:>10.2f} "
                f"{row['qmk_ratio_median']:>10.2f} {row['max_abs_difference']:>10.1e}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=12)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--observables", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=62)
    parser.add_argument("--shift", action="store_true", help="also QMK's parameter shift")
    parser.add_argument("--out", default=str(RESULTS / "gradients.json"))
    args = parser.parse_args()
    info = machine(**installed("pennylane", "pennylane_lightning", "qiskit", "qiskit-aer"))
    print(describe(info, f"{args.qubits} qubits, {2 * args.qubits * args.layers} parameters"))
    goals = {**pennylane_runs(args), **estimator_runs(args)}
    results = measure(goals, args.repeat)
    table(results)
    record = {
        "machine": info,
        "circuit": {"qubits": args.qubits, "layers": args.layers, "seed": args.seed},
        "observables": args.observables,
        "repeat": args.repeat,
        "results": results,
        "load_average_at_end": load_averages(),
    }
    print(f"load average at the end {record['load_average_at_end'][0]:.2f}")
    write_json(record, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
