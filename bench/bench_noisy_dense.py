"""Benchmark: noisy dense simulation against Aer's trajectories (issue 28, item 3).

A random depth-20 circuit on 20 qubits (``bench_engines.random_gates``: a U3 on every
qubit, then a CZ brickwork, every qubit measured) with QMK's logical noise on at a low
code distance (``logical:surface_code(d=3)`` by default: about 0.5 logical errors per
shot over ~1600 noise locations), against qiskit-aer ``AerSimulator(method=
"statevector")`` on the same circuit with the *same* Pauli channels: every noise
location of QMK's plan (``plan.noise``: step, before/after, qubit, px/py/pz) becomes a
Pauli channel of Aer's at that place (a ``NoiseModel`` on the gates and readout where
QMK's rates are uniform, as they are here, and ``pauli_error`` instructions for the few
others: :func:`aer_circuit`), so both simulate the same channels for the same shots.
Aer draws one trajectory per shot; QMK groups the shots that share an error pattern
(telemetry ``simulations``) and starts each group from the error-free state at its
first error.

Contenders, warmed up (``--warmup``, once by default), then interleaved rounds;
medians and minima are printed:

- ``qmk``: ``qmk.run`` end to end from a built ``Graph`` (engine ``statevector``);
- ``aer``: ``AerSimulator(method="statevector").run(circuit, shots, seed_simulator,
  noise_model)``
  (the circuit built once, outside the timing).

Agreement (not a timing): each qubit's mean outcome and the 16-outcome marginal of
qubits 0-3, QMK against Aer (two-sample chi-square, its p-value, and the total
variation distance) from the last round's counts. ``bench/results/noisy_dense.json``
holds the figures, the load averages and the machine.

    python bench/bench_noisy_dense.py [--repeat 3] [--quick] [--shots 200]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

import qmk
from _common import RESULTS, describe, installed, load_averages, machine, timed_group, write_json
from bench_engines import qvm_graph as random_graph
from bench_engines import random_gates
from qmk.execution import executor
from qmk.execution.plan import Plan, build_plan
from qmk.qvm.graph import Graph


def noisy_plan(g: Graph, profile: str) -> Plan:
    return build_plan(
        executor.load_program(g), noise=True, qubit=executor.DEFAULT_QUBIT, default_profile=profile
    )


def aer_circuit(plan: Plan, n: int) -> tuple[Any, Any]:
    """The plan as a Qiskit circuit and an Aer ``NoiseModel`` with the same channels.

    The errors after each ``rz``/``ry``/``cz`` (cause ``op``; one rate set for all, as
    QMK's profile gives them) go in the noise model (a 2-qubit gate: the product of the
    two qubits' channels), those before a Z measurement become its readout error (X or
    Y flips it, Z does nothing there); the few others (after an alloc, idling) are
    ``pauli_error`` instructions at their place in the circuit. Aer runs far slower
    with every channel as an instruction (no fusion across them), so this is its
    fastest exact form.
    """
    from qiskit import QuantumCircuit
    from qiskit_aer.noise import NoiseModel, ReadoutError, pauli_error

    def channel(loc: Any) -> Any:
        return pauli_error([("X", loc.px), ("Y", loc.py), ("Z", loc.pz), ("I", 1.0 - loc.total)])

    after_gate = [
        loc
        for loc in plan.noise
        if not loc.before and plan.steps[loc.step].kind == "gate" and loc.cause == "op"
    ]
    rates = {(loc.px, loc.py, loc.pz) for loc in after_gate}
    before_measure = [
        loc for loc in plan.noise if loc.before and plan.steps[loc.step].kind == "measure"
    ]
    flips = {loc.px + loc.py for loc in before_measure}
    if len(rates) > 1 or len(flips) > 1:
        raise ValueError("the gates' (or measurements') error rates differ: no one noise model")
    model = NoiseModel(basis_gates=["rz", "ry", "cz"])
    modelled = {id(loc) for loc in (*after_gate, *before_measure)}
    if after_gate:
        one = channel(after_gate[0])
        model.add_all_qubit_quantum_error(one, ["rz", "ry"])
        model.add_all_qubit_quantum_error(one.tensor(one), ["cz"])
    if before_measure:
        (p,) = flips
        model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    inline: dict[tuple[int, bool], list[Any]] = {}
    for loc in plan.noise:
        if id(loc) not in modelled:
            inline.setdefault((loc.step, loc.before), []).append((channel(loc), int(loc.qubit[1:])))
    qc = QuantumCircuit(n, n)

    def put(step: int, before: bool) -> None:
        for error, q in inline.get((step, before), ()):
            qc.append(error, [q])

    for step in plan.steps:
        put(step.index, True)
        qs = [int(q[1:]) for q in step.node.vqs]
        if step.kind == "gate":
            if step.gate == "cz":  # the model's 2-qubit channel needs both qubits' errors
                assert all(
                    any(loc.step == step.index and loc.qubit == f"q{q}" for loc in after_gate)
                    for q in qs
                )
            getattr(qc, step.gate or "")(*step.params, *qs)
        elif step.kind == "measure":
            qc.measure(qs[0], qs[0])
        elif step.kind not in ("alloc", "free"):
            raise ValueError(f"no Qiskit form for step kind {step.kind!r}")
        put(step.index, False)
    return qc, model


def ones_by_qubit(counts: dict[str, int], n: int, key: Callable[[str, int], str]) -> np.ndarray:
    """Each qubit's number of ones (``key(bitstring, q)`` reads qubit q's bit)."""
    out = np.zeros(n)
    for bits, c in counts.items():
        for q in range(n):
            out[q] += c * (key(bits, q) == "1")
    return out


def marginal(counts: dict[str, int], qubits: range, key: Callable[[str, int], str]) -> np.ndarray:
    out = np.zeros(2 ** len(qubits))
    for bits, c in counts.items():
        out[int("".join(key(bits, q) for q in qubits), 2)] += c
    return out


def agreement(qmk_counts: dict[str, int], aer_counts: dict[str, int], n: int) -> dict[str, Any]:
    """QMK's keys are event order (m0 first); Aer's are little-endian (qubit 0 last)."""

    def qk(bits: str, q: int) -> str:
        return bits[q]

    def ak(bits: str, q: int) -> str:
        return bits[n - 1 - q]

    shots_q, shots_a = sum(qmk_counts.values()), sum(aer_counts.values())
    mq, ma = marginal(qmk_counts, range(4), qk), marginal(aer_counts, range(4), ak)
    table = np.array([mq, ma])
    table = table[:, table.sum(axis=0) > 0]
    chi2, p, dof, _ = stats.chi2_contingency(table)
    tvd = 0.5 * float(np.abs(mq / shots_q - ma / shots_a).sum())
    oq = ones_by_qubit(qmk_counts, n, qk) / shots_q
    oa = ones_by_qubit(aer_counts, n, ak) / shots_a
    se = np.sqrt(oq * (1 - oq) / shots_q + oa * (1 - oa) / shots_a)
    z = np.abs(oq - oa) / np.where(se > 0, se, 1.0)
    return {
        "marginal_q0_3_chi2": float(chi2),
        "marginal_q0_3_dof": int(dof),
        "marginal_q0_3_p": float(p),
        "marginal_q0_3_tvd": tvd,
        "max_abs_z_mean_ones": float(z.max()),
        "ok": bool(p > 1e-4 and z.max() < 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--qubits", type=int, default=None, help="qubits (20)")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--shots", type=int, default=None, help="shots (200)")
    parser.add_argument("--profile", default="logical:surface_code(d=3)")
    parser.add_argument("--out", default=str(RESULTS / "noisy_dense.json"))
    args = parser.parse_args()
    from qiskit_aer import AerSimulator

    n = args.qubits or (10 if args.quick else 20)
    shots = args.shots or (200 if not args.quick else 100)
    repeat = 1 if args.quick and args.repeat == 3 else args.repeat
    seed = args.seed
    info = machine(**installed("qiskit-aer", "qiskit"))
    print(describe(info, f"random-{n} depth {args.depth}, {args.profile}, {shots} shots"))

    g = random_graph(n, random_gates(n, args.depth, seed=0))
    plan = noisy_plan(g, args.profile)
    circuit, model = aer_circuit(plan, n)
    aer = AerSimulator(method="statevector")
    runs: dict[str, Callable[[], Any]] = {
        "qmk": lambda: qmk.run(
            g, shots=shots, seed=seed, noise=True, profile=args.profile, engine="statevector"
        ),
        "aer": lambda: aer.run(
            circuit, shots=shots, seed_simulator=seed, noise_model=model
        ).result(),
    }
    got = timed_group(runs, repeat, warmup=args.warmup)
    times = {name: t.figures() for name, t in got.items()}
    ratio_median = times["qmk"]["median_s"] / times["aer"]["median_s"]
    ratio_min = times["qmk"]["min_s"] / times["aer"]["min_s"]
    result = got["qmk"].result
    check = agreement(result.counts, got["aer"].result.get_counts(), n)
    rates = np.array([loc.total for loc in plan.noise])
    print()
    print(f"{'contender':<8} {'min s':>8} {'median s':>9}")
    for name, t in times.items():
        print(f"{name:<8} {t['min_s']:>8.3f} {t['median_s']:>9.3f}")
    print(
        f"noise locations {len(plan.noise)}, mean errors/shot {rates.sum():.3f}; "
        f"qmk simulations {result.telemetry.simulations} for {shots} shots"
    )
    print(
        f"QMK / Aer: median {ratio_median:.2f}x, min {ratio_min:.2f}x "
        f"(goal <= 1x: {'met' if ratio_median <= 1.0 else 'NOT met'})"
    )
    print(
        f"agreement: marginal q0-3 chi2 p {check['marginal_q0_3_p']:.3f}, "
        f"TVD {check['marginal_q0_3_tvd']:.3f}; max |z| per-qubit mean "
        f"{check['max_abs_z_mean_ones']:.2f} -> {'ok' if check['ok'] else 'FAILED'}"
    )
    print(f"load averages at end: {load_averages()}")
    write_json(
        {
            **info,
            "quick": args.quick,
            "repeat": repeat,
            "warmup": args.warmup,
            "seed": seed,
            "qubits": n,
            "depth": args.depth,
            "profile": args.profile,
            "shots": shots,
            "noise_locations": len(plan.noise),
            "mean_errors_per_shot": float(rates.sum()),
            "qmk_simulations": result.telemetry.simulations,
            "load_average_at_end": load_averages(),
            "times": times,
            "ratio_qmk_to_aer_median": ratio_median,
            "ratio_qmk_to_aer_min": ratio_min,
            "goal": "qmk <= 1x aer statevector trajectories (median)",
            "goal_met": ratio_median <= 1.0,
            "check": check,
        },
        args.out,
    )
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
