"""Benchmark: noisy dense simulation against Aer (issue 28 item 3, issue 62 item 4).

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

**Small noisy circuits** (``--grid``, issue 62 item 4): random-N, depth 20, N = 8 to 16,
with 0.3 to 3 logical errors a shot (the d=3 profile, its rates raised by a
depolarizing noise model: :data:`GRID`), 1024 shots, QMK's default route against Aer's
automatic method (``AerSimulator()``, which picks its density matrix where the shots
exceed ``2**N``, else a statevector trajectory a shot) on the same channels. Per case,
warmed up once, then interleaved rounds: QMK's whole ``qmk.run`` (wall) and its
telemetry's ``wall_time_s``, Aer's ``run(...).result()``; their ratios by medians and
minima, QMK's mode (``density-matrix`` or ``trajectories``) and simulations, Aer's
method, and the load average of each case. Agreement: QMK's counts against the exact
distribution of Aer's density matrix (``save_probabilities`` with the noise model, its
readout flips applied after; up to :data:`EXACT_QUBITS` qubits: chi-square p-value and
total variation distance), and against Aer's counts above (the marginal of qubits 0-3
and each qubit's mean, as above). ``bench/results/noisy_small.json``. The whole fresh
``qmk run`` process of such cases is ``bench_cli.py``'s ``noisy-N-*`` cases.

``--calibrate`` times, for the same circuits, the statevector's density matrix (lower,
compile, evolve, sample; CPU time, the parallel passes counted at half on 2 threads)
and its trajectories (the same circuit with a fence before the measurements, which
keeps it on them), beside the router's estimates of each
(``EngineSpec.density`` and ``EngineSpec.cost``): the figures of the density model.

    python bench/bench_noisy_dense.py --grid [--repeat 3] [--cases 8:3e-3 12:d3]
    python bench/bench_noisy_dense.py --calibrate [--cases 10:d3 12:2e-3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats

import qmk
from _common import RESULTS, describe, installed, load_averages, machine, timed_group, write_json
from bench_engines import random_gates
from bench_execute import qvm_graph as random_graph
from qmk.execution import executor
from qmk.execution.plan import Plan, build_plan, gate_of
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

    # ``plan.noise`` makes a fresh row object on every read: its locations are known by
    # their row number here, never by identity
    rows = list(plan.noise)
    modelled = {
        i
        for i, loc in enumerate(rows)
        if (not loc.before and plan.steps.kind(loc.step) == "gate" and loc.cause == "op")
        or (loc.before and plan.steps.kind(loc.step) == "measure")
    }
    after_gate = [loc for i, loc in enumerate(rows) if i in modelled and not loc.before]
    before_measure = [loc for i, loc in enumerate(rows) if i in modelled and loc.before]
    rates = {(loc.px, loc.py, loc.pz) for loc in after_gate}
    flips = {loc.px + loc.py for loc in before_measure}
    if len(rates) > 1 or len(flips) > 1:
        raise ValueError("the gates' (or measurements') error rates differ: no one noise model")
    model = NoiseModel(basis_gates=["rz", "ry", "cz"])
    if after_gate:
        one = channel(after_gate[0])
        model.add_all_qubit_quantum_error(one, ["rz", "ry"])
        model.add_all_qubit_quantum_error(one.tensor(one), ["cz"])
    if before_measure:
        (p,) = flips
        model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    inline: dict[tuple[int, bool], list[Any]] = {}
    for i, loc in enumerate(rows):
        if i not in modelled:
            inline.setdefault((loc.step, loc.before), []).append((channel(loc), int(loc.qubit[1:])))
    qc = QuantumCircuit(n, n)

    def put(step: int, before: bool) -> None:
        for error, q in inline.get((step, before), ()):
            qc.append(error, [q])

    for at, (node, kind) in enumerate(zip(plan.steps.nodes, plan.steps.kinds, strict=True)):
        put(at, True)
        qs = [int(q[1:]) for q in node.vqs]
        if kind == "gate":
            name, params = gate_of(node)
            if name == "cz":  # the model's 2-qubit channel needs both qubits' errors
                assert all(
                    any(loc.step == at and loc.qubit == f"q{q}" for loc in after_gate) for q in qs
                )
            getattr(qc, name)(*params, *qs)
        elif kind == "measure":
            qc.measure(qs[0], qs[0])
        elif kind not in ("alloc", "free"):
            raise ValueError(f"no Qiskit form for step kind {kind!r}")
        put(at, False)
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


#: The profile of the grid: d=3 logical errors, at the qubit's rates or a noise model's.
GRID_PROFILE = "logical:surface_code(d=3)"
#: ``--grid``'s cases, ``qubits:noise`` (``d3``: the qubit's own rates; else a
#: depolarizing physical rate): 0.3 to 3 logical errors a shot at depth 20.
GRID = (
    "8:1.5e-3", "8:3e-3", "8:3.9e-3", "10:2e-3", "12:d3", "12:3e-3", "14:2e-3", "16:d3",
    "16:2.7e-3",
)  # fmt: skip
#: The widest case whose exact distribution the grid asks of Aer's density matrix.
EXACT_QUBITS = 10


def grid_noise(label: str) -> Any:
    """A grid case's noise: True (the qubit's own rates) or a depolarizing model."""
    from qmk.qec.noise import Depolarizing

    return True if label == "d3" else Depolarizing(p=float(label))


def grid_plan(g: Graph, noise: Any) -> Plan:
    return build_plan(
        executor.load_program(g),
        noise=True,
        qubit=executor.DEFAULT_QUBIT,
        default_profile=GRID_PROFILE,
        noise_model=None if noise is True else noise,
    )


def exact_counts(circuit: Any, model: Any, n: int) -> dict[str, float]:
    """The exact outcome distribution of ``circuit`` under ``model`` by Aer's density
    matrix (QMK's keys: qubit 0 first): ``save_probabilities`` in place of the
    measurements, then each qubit's readout flip applied to the distribution."""
    from qiskit_aer import AerSimulator

    bare = circuit.remove_final_measurements(inplace=False)
    bare.save_probabilities()
    sim = AerSimulator(method="density_matrix")
    probs = np.asarray(sim.run(bare, noise_model=model, shots=1).result().data()["probabilities"])
    # axis a of the tensor is qubit n - 1 - a (Aer: qubit 0 the least significant bit)
    tensor = probs.reshape((2,) * n)
    readout = model._default_readout_error  # one readout error for every qubit, or None
    if readout is not None:
        flip = float(readout.probabilities[0][1])
        for axis in range(n):
            tensor = (1 - flip) * tensor + flip * np.flip(tensor, axis=axis)
    return {
        "".join(str(index[n - 1 - q]) for q in range(n)): float(tensor[index])
        for index in np.ndindex(*tensor.shape)
    }


def exact_check(counts: dict[str, int], exact: dict[str, float]) -> dict[str, Any]:
    """Chi-square (cells under 5 expected pooled) and TVD of counts against ``exact``."""
    shots = sum(counts.values())
    keys = sorted(exact, key=lambda k: exact[k])
    observed = np.array([counts.get(k, 0) for k in keys], dtype=float)
    expected = np.array([exact[k] * shots for k in keys])
    bins_o, bins_e, o, e = [], [], 0.0, 0.0
    for ob, ex in zip(observed, expected, strict=True):
        o, e = o + ob, e + ex
        if e >= 5:
            bins_o.append(o)
            bins_e.append(e)
            o = e = 0.0
    if bins_o:
        bins_o[-1] += o
        bins_e[-1] += e
    statistic = float(sum((a - b) ** 2 / b for a, b in zip(bins_o, bins_e, strict=True)))
    p = float(stats.chi2.sf(statistic, max(len(bins_o) - 1, 1)))
    tvd = 0.5 * float(np.abs(observed / shots - expected / shots).sum())
    return {"chi2": statistic, "cells": len(bins_o), "p": p, "tvd": tvd, "ok": p > 1e-4}


def grid(args: argparse.Namespace) -> int:
    """``--grid``: the small noisy circuits against Aer's automatic method."""
    from qiskit_aer import AerSimulator

    cases = args.cases or list(GRID)
    shots = args.shots or 1024
    info = machine(**installed("qiskit-aer", "qiskit"))
    print(describe(info, f"random-N depth {args.depth}, {shots} shots; QMK / Aer automatic"))
    rows = []
    for case in cases:
        qubits, label = case.split(":")
        n = int(qubits)
        noise = grid_noise(label)
        g = random_graph(n, random_gates(n, args.depth, seed=0))
        plan = grid_plan(g, noise)
        circuit, model = aer_circuit(plan, n)
        aer = AerSimulator()
        telemetry: list[float] = []

        def ours(noise: Any = noise, g: Graph = g, telemetry: list[float] = telemetry) -> Any:
            result = qmk.run(g, shots=shots, seed=args.seed, noise=noise, profile=GRID_PROFILE)
            telemetry.append(result.telemetry.wall_time_s)
            return result

        def theirs(circuit: Any = circuit, model: Any = model, aer: Any = aer) -> Any:
            return aer.run(
                circuit, shots=shots, seed_simulator=args.seed, noise_model=model
            ).result()

        repeat = args.repeat if n <= 12 else 1
        loads = [load_averages()[0]]
        got = timed_group({"qmk": ours, "aer": theirs}, repeat, warmup=args.warmup)
        loads.append(load_averages()[0])
        telemetry = telemetry[args.warmup :]
        result, peer = got["qmk"].result, got["aer"].result
        counts = peer.get_counts()
        check: dict[str, Any] = {"vs_aer_counts": agreement(result.counts, counts, n)}
        if n <= EXACT_QUBITS:
            check["vs_aer_density_matrix"] = exact_check(
                result.counts, exact_counts(circuit, model, n)
            )
        ok = all(part["ok"] for part in check.values())
        row = {
            "case": f"random-{n} {label}",
            "qubits": n,
            "noise": label,
            "errors_per_shot": float(sum(loc.total for loc in plan.noise)),
            "qmk_mode": result.telemetry.mode,
            "qmk_simulations": result.telemetry.simulations,
            "aer_method": peer.results[0].metadata.get("method"),
            "times": {name: t.figures() for name, t in got.items()},
            "qmk_telemetry": {"min_s": min(telemetry), "median_s": statistics.median(telemetry)},
            "ratio_median": got["qmk"].median_s / got["aer"].median_s,
            "ratio_min": got["qmk"].min_s / got["aer"].min_s,
            "ratio_telemetry_median": statistics.median(telemetry) / got["aer"].median_s,
            "rounds": repeat,
            "load_average": loads,
            "check": check,
            "ok": ok,
        }
        rows.append(row)
        exact = check.get("vs_aer_density_matrix")
        print(
            f"random-{n:<2} {label:>7} {row['errors_per_shot']:5.2f} err/shot  "
            f"qmk {row['qmk_mode']:<14} sims {row['qmk_simulations']:>4}  "
            f"{got['qmk'].median_s:8.3f} s (telemetry {row['qmk_telemetry']['median_s']:.3f})  "
            f"aer {row['aer_method']:<14} {got['aer'].median_s:8.3f} s  "
            f"ratio median {row['ratio_median']:5.2f}x min {row['ratio_min']:5.2f}x  "
            + (f"exact p {exact['p']:.3f} TVD {exact['tvd']:.3f}  " if exact else "")
            + f"{'ok' if ok else 'FAILED'}  load {loads[0]:.1f}-{loads[1]:.1f}",
            flush=True,
        )
    met = all(row["ratio_median"] <= 1.0 for row in rows)
    print(f"goal <= 1.0x Aer automatic on every case (medians): {'met' if met else 'NOT met'}")
    print(f"load averages at end: {load_averages()}")
    write_json(
        {
            **info,
            "depth": args.depth,
            "shots": shots,
            "seed": args.seed,
            "warmup": args.warmup,
            "profile": GRID_PROFILE,
            "goal": "qmk <= 1x aer automatic (medians) on random-8..16, 0.3-3 errors a shot",
            "goal_met": met,
            "rows": rows,
            "load_average_at_end": load_averages(),
        },
        args.out or str(RESULTS / "noisy_small.json"),
    )
    return 0 if all(row["ok"] for row in rows) else 1


def paused(g: Graph) -> Graph:
    """``g`` with a ``FENCE_EPOCH`` before its first measurement: a pause point, which
    keeps a run on trajectories."""
    from dataclasses import replace

    from qmk.qvm.graph import Node

    at = next(i for i, node in enumerate(g.nodes) if node.op.startswith("MEASURE"))
    return replace(g, nodes=(*g.nodes[:at], Node(id="pause", op="FENCE_EPOCH"), *g.nodes[at:]))


def calibrate(args: argparse.Namespace) -> int:
    """``--calibrate``: the density matrix's and the trajectories' costs against their
    estimates (see the module docstring)."""
    import time
    from dataclasses import replace

    from qmk.engines.density import compile_density
    from qmk.engines.registry import spec
    from qmk.execution import batch

    shots = args.shots or 1024
    info = machine()
    print(describe(info, f"random-N depth {args.depth}, {shots} shots: measured / estimated"))
    model = spec("statevector")
    assert model.density is not None
    rows = []
    for case in args.cases or list(GRID):
        qubits, label = case.split(":")
        n, noise = int(qubits), grid_noise(label)
        g = random_graph(n, random_gates(n, args.depth, seed=0))
        plan = grid_plan(g, noise)
        work = executor.workload(plan, shots)
        compile_s, evolve_s = [], []
        for _ in range(max(args.repeat, 1)):
            started = time.process_time()
            lowered = batch.lower(plan, channels=True)
            assert lowered is not None
            sampler = compile_density(lowered.circuit)
            assert sampler is not None
            compiled = time.process_time()
            sampler.sample_packed(shots, args.seed)
            compile_s.append(compiled - started)
            evolve_s.append(time.process_time() - compiled)
        density = min(compile_s) + min(evolve_s) / 2  # the passes run on 2 threads
        fenced = executor.load_program(paused(g))
        started = time.process_time()
        ran = qmk.run(fenced, shots=shots, seed=args.seed, noise=noise, profile=GRID_PROFILE)
        trajectories = time.process_time() - started
        assert ran.telemetry.mode == "trajectories"
        row = {
            "case": case,
            "gates": work.gate_count,
            "blocks": work.blocks,
            "trajectories": work.trajectories,
            "density_s": density,
            "density_estimate_s": model.density.seconds(replace(work, branches=1, trajectories=0)),
            "trajectories_s": trajectories,
            "trajectories_estimate_s": model.cost.seconds(work),
            "routed": "density-matrix" if model.runs_density(work) else "trajectories",
            "load_average": load_averages()[0],
        }
        rows.append(row)
        print(
            f"random-{n:<2} {label:>7}  density {density:8.3f} s (est. "
            f"{row['density_estimate_s']:8.3f})  trajectories {trajectories:8.3f} s (est. "
            f"{row['trajectories_estimate_s']:8.3f}, {work.trajectories})  routed "
            f"{row['routed']}  load {row['load_average']:.1f}",
            flush=True,
        )
    write_json({**info, "rows": rows}, args.out or str(RESULTS / "noisy_calibrate.json"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--qubits", type=int, default=None, help="qubits (20)")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--shots", type=int, default=None, help="shots (200; --grid 1024)")
    parser.add_argument("--profile", default="logical:surface_code(d=3)")
    parser.add_argument("--out", default=None, help="the JSON file (bench/results/...)")
    parser.add_argument("--grid", action="store_true", help="issue 62's small noisy circuits")
    parser.add_argument("--calibrate", action="store_true", help="the density model's figures")
    parser.add_argument("--cases", nargs="+", default=None, help="qubits:noise (see GRID)")
    args = parser.parse_args()
    if args.grid:
        return grid(args)
    if args.calibrate:
        return calibrate(args)
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
        args.out or str(RESULTS / "noisy_dense.json"),
    )
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
