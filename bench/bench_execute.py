"""Benchmark: running programs with ``qmk.run`` against stim and Qiskit Aer.

Two speed goals, measured side by side in one run (not tests: nothing here
fails on a timing):

1. GHZ-1000, 100,000 shots, within 2x of stim's own compiled sampler on the same
   circuit. QMK is timed end to end from an already-built ``Graph`` (verify,
   plan, stim compile, sample, counts), with ``noise=False`` and ``noise=True``;
   stim is timed as ``compile_sampler().sample(shots)`` (the goal's reference)
   and as ``sample(shots)`` alone. QMK's stages are also timed one by one.
2. GHZ-24 and QFT-20, 1,000 shots, faster than Qiskit Aer's statevector method.
   QMK runs with the engine it chooses (GHZ-24 is Clifford: stim) and with
   ``engine="statevector"``; Aer is timed as ``run(...).result()`` on a circuit
   built and transpiled beforehand (its reported ``time_taken`` is kept too).
   QVM has no controlled phase, so QFT uses ``cp(l) = RZ(l/2) c, RZ(l/2) t,
   CX, RZ(-l/2) t, CX`` (exact up to global phase); Aer runs both that circuit
   and one with its native ``cp``. QFT-20 runs on a basis-state input (X on a
   few qubits; its QFT is a product state, which QMK's statevector engine keeps
   factored) and on an entangled "dense" input that needs all 2^20 amplitudes.
   A self-check first compares the decomposed and native circuits (qiskit
   ``Operator``) and QMK's sampled QFT distribution with qiskit's
   ``Statevector`` on 5 qubits, for both kinds of input.

Each contender is warmed up once, then the contenders of one case run in
interleaved rounds (so a change of machine load hits them alike). The table
shows minima (ratios use minima); ``bench/results/execute.json`` holds minima,
medians and machine information (CPU count, load average, versions).

    python bench/bench_execute.py [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import stim

import qmk
from _common import RESULTS, describe, load_averages, machine, timed, timed_group, write_json
from qmk.engines.stabilizer import StabilizerEngine
from qmk.engines.stim_batch import compile_batch
from qmk.execution import batch, executor
from qmk.execution.plan import build_plan
from qmk.execution.result import keyed_counts
from qmk.frontends.builder import GATE_OPS
from qmk.qvm.asm import assemble
from qmk.qvm.graph import Graph

Gate = tuple[str, tuple[int, ...], tuple[float, ...]]


# Circuits, as one gate list each, rendered for QVM, stim and qiskit.


def ghz_gates(n: int) -> list[Gate]:
    return [("h", (0,), ())] + [("cx", (i - 1, i), ()) for i in range(1, n)]


def cp_gates(lam: float, c: int, t: int) -> list[Gate]:
    """Controlled phase ``diag(1, 1, 1, e^{i lam})`` up to the global phase ``e^{i lam/4}``."""
    return [
        ("rz", (c,), (lam / 2,)),
        ("rz", (t,), (lam / 2,)),
        ("cx", (c, t), ()),
        ("rz", (t,), (-lam / 2,)),
        ("cx", (c, t), ()),
    ]


def qft_gates(n: int, prep: list[Gate], *, native_cp: bool = False) -> list[Gate]:
    """``prep`` then the QFT without the final swaps: on qubit j, H then the controlled
    phases pi/2^(k-j) from each later qubit k."""
    gates = list(prep)
    for j in range(n):
        gates.append(("h", (j,), ()))
        for k in range(j + 1, n):
            lam = math.pi / 2 ** (k - j)
            gates += [("cp", (k, j), (lam,))] if native_cp else cp_gates(lam, k, j)
    return gates


def qft_prep(n: int) -> list[Gate]:
    """A basis-state input: X on every third qubit (and the last). The QFT of a basis
    state is a product state, which QMK's statevector engine keeps factored."""
    return [("x", (i,), ()) for i in sorted({*range(0, n, 3), n - 1})]


def dense_prep(n: int) -> list[Gate]:
    """An entangled input that needs every amplitude: H and a distinct RZ on each qubit,
    a CX ladder, then a distinct RY on each qubit."""
    gates: list[Gate] = [("h", (i,), ()) for i in range(n)]
    gates += [("rz", (i,), (0.4 + 0.9 * i,)) for i in range(n)]
    gates += [("cx", (i, i + 1), ()) for i in range(n - 1)]
    return gates + [("ry", (i,), (0.3 + 0.5 * i,)) for i in range(n)]


def qvm_graph(n: int, gates: list[Gate]) -> Graph:
    """Allocate n qubits, apply ``gates``, measure every qubit in Z (event m{i}), free."""
    lines = [".caps CAP_ALLOC", ".vqs " + " ".join(f"q{i}" for i in range(n))]
    lines.append(".events " + " ".join(f"m{i}" for i in range(n)))
    lines += [f"a{i}: ALLOC_LQ vq:q{i}, n=1" for i in range(n)]
    for k, (name, qs, params) in enumerate(gates):
        operands = ", ".join(f"vq:q{q}" for q in qs)
        args = "".join(f", theta={p!r}" for p in params)
        lines.append(f"g{k}: {GATE_OPS[name]} {operands}{args}")
    lines += [f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(n)]
    lines += [f"f{i}: FREE_LQ vq:q{i}" for i in range(n)]
    return assemble("\n".join(lines) + "\n")


def stim_circuit(n: int, gates: list[Gate]) -> stim.Circuit:
    circuit = stim.Circuit()
    for name, qs, _ in gates:
        circuit.append(name.upper(), list(qs))
    circuit.append("M", list(range(n)))
    return circuit


def qiskit_circuit(n: int, gates: list[Gate]) -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n, n)
    for name, qs, params in gates:
        getattr(qc, name)(*params, *qs)
    qc.measure(range(n), range(n))
    return qc


# The self-check: is QMK's QFT the QFT?


def self_check(shots: int, seed: int) -> dict[str, Any]:
    """Compare the decomposed QFT with qiskit's native ``cp`` QFT (exactly), and QMK's
    sampled distribution with qiskit's exact one, on 5 qubits and two non-trivial inputs
    (a sign error in the RZs of the decomposition must be visible: its TVD is reported)."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Operator, Statevector

    n = 5
    mixed: list[Gate] = [
        ("x", (0,), ()),
        ("h", (1,), ()),
        ("ry", (2,), (0.7,)),
        ("rx", (3,), (1.3,)),
        ("h", (4,), ()),
        ("t", (4,), ()),
        ("cx", (1, 3), ()),
    ]

    def circuit(gates: list[Gate]) -> Any:
        qc = QuantumCircuit(n)
        for name, qs, params in gates:
            getattr(qc, name)(*params, *qs)
        return qc

    def tvd(p: dict[str, float], q: dict[str, float]) -> float:
        return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))

    out: dict[str, Any] = {"qubits": n, "shots": shots, "inputs": {}}
    ok = True
    for label, prep in (("mixed", mixed), ("dense", dense_prep(n))):
        qft = qft_gates(n, prep)
        same = bool(
            Operator(circuit(qft)).equiv(Operator(circuit(qft_gates(n, prep, native_cp=True))))
        )
        exact = Statevector(circuit(qft)).probabilities_dict()  # qubit 0 rightmost
        flipped = [
            (g, qs, tuple(-p for p in ps)) if g == "rz" else (g, qs, ps) for g, qs, ps in qft
        ]
        wrong = Statevector(circuit(prep + flipped[len(prep) :])).probabilities_dict()
        result = qmk.run(
            qvm_graph(n, qft), shots=shots, seed=seed, engine="statevector", noise=False
        )
        # QMK lists events first-leftmost (m0 leftmost): reverse to qiskit's order.
        sampled = {key[::-1]: count / shots for key, count in result.counts.items()}
        row = {
            "decomposition_equals_native_cp": same,
            "tvd_qmk_vs_exact": float(tvd(exact, sampled)),
            "tvd_sign_flipped_rz_vs_exact": float(tvd(exact, wrong)),
        }
        row["ok"] = (
            same and row["tvd_qmk_vs_exact"] < 0.02 and row["tvd_sign_flipped_rz_vs_exact"] > 0.1
        )
        out["inputs"][label] = row
        ok = ok and row["ok"]
    out["ok"] = ok
    return out


# The measurements.


def qmk_stages(g: Graph, shots: int, seed: int, noise: bool, repeat: int) -> dict[str, Any]:
    """QMK's stim-batch path one stage at a time (what ``qmk.run`` does, in order)."""
    out: dict[str, Any] = {}

    def record(name: str, run: Callable[[], Any]) -> Any:
        timing = timed(run, repeat, warmup=1)
        out[name] = timing.figures()
        return timing.result

    verified = record("verify (load_program)", lambda: executor.load_program(g))
    plan = record(
        "plan (build_plan)",
        lambda: build_plan(
            verified,
            noise=noise,
            qubit=executor.DEFAULT_QUBIT,
            default_profile=executor.DEFAULT_PROFILE,
        ),
    )
    lowered = record("lower (batch.lower)", lambda: batch.lower(plan))
    compiled = record(
        "compile (StabilizerEngine.compile_batch)",
        lambda: StabilizerEngine.compile_batch(lowered.circuit),
    )
    bits, _ = record(
        "sample (batch.sample: stim, and flip masks when noisy)",
        lambda: batch.sample(lowered, compiled, shots, seed, np.random.default_rng(seed)),
    )
    record("counts (result.keyed_counts)", lambda: keyed_counts(bits, None))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--ghz-big", type=int, default=None, help="goal 1 qubits (1000)")
    parser.add_argument("--big-shots", type=int, default=None, help="goal 1 shots (100000)")
    parser.add_argument("--ghz-sv", type=int, default=None, help="goal 2 GHZ qubits (24)")
    parser.add_argument("--qft", type=int, default=None, help="goal 2 QFT qubits (20)")
    parser.add_argument("--shots", type=int, default=1000, help="goal 2 shots")
    parser.add_argument("--check-shots", type=int, default=200_000)
    parser.add_argument("--out", default=str(RESULTS / "execute.json"))
    args = parser.parse_args()
    quick = args.quick
    ghz_big = args.ghz_big or (100 if quick else 1000)
    big_shots = args.big_shots or (10_000 if quick else 100_000)
    ghz_sv = args.ghz_sv or (12 if quick else 24)
    qft_n = args.qft or (10 if quick else 20)
    repeat = 2 if quick and args.repeat == 5 else args.repeat
    shots, seed = args.shots, args.seed

    import qiskit
    import qiskit_aer
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    info = machine(
        stim=stim.__version__, qiskit=qiskit.__version__, qiskit_aer=qiskit_aer.__version__
    )
    print(describe(info, f"min of {repeat} runs after 1 warm-up"))

    check = self_check(args.check_shots, seed)
    for label, r in check["inputs"].items():
        print(
            f"self-check (QFT-5, {label} input): decomposed == native cp: "
            f"{r['decomposition_equals_native_cp']}; TVD(QMK, exact) = {r['tvd_qmk_vs_exact']:.4f} "
            f"(with sign-flipped RZs: {r['tvd_sign_flipped_rz_vs_exact']:.3f}) -> "
            f"{'ok' if r['ok'] else 'FAILED'}"
        )

    rows: list[dict[str, Any]] = []

    def row(
        case: str,
        qmk_t: dict[str, float],
        peer: str,
        peer_t: dict[str, float],
        goal: str,
        limit: float | None,
        **extra: Any,
    ) -> None:
        ratio = qmk_t["min_s"] / peer_t["min_s"]
        met = None if limit is None else bool(ratio <= limit)
        rows.append(
            {
                "case": case,
                "qmk_min_s": qmk_t["min_s"],
                "qmk_median_s": qmk_t["median_s"],
                "peer": peer,
                "peer_min_s": peer_t["min_s"],
                "peer_median_s": peer_t["median_s"],
                "ratio": ratio,
                "goal": goal,
                "goal_met": met,
                **extra,
            }
        )

    # Goal 1: GHZ-big, big_shots shots, against stim.
    gates = ghz_gates(ghz_big)
    g = qvm_graph(ghz_big, gates)
    circuit = stim_circuit(ghz_big, gates)
    sampler = circuit.compile_sampler(seed=seed)
    # stim on QMK's noisy circuit as QMK compiled it before flip masks (heralded channels);
    # bench/bench_noisy.py compares that path and the flip-mask path in detail
    noisy_plan = build_plan(
        executor.load_program(g),
        noise=True,
        qubit=executor.DEFAULT_QUBIT,
        default_profile=executor.DEFAULT_PROFILE,
    )
    noisy = compile_batch(batch.lower(noisy_plan, heralded=True).circuit).circuit
    got = timed_group(
        {
            "qmk noise=False": lambda: qmk.run(g, shots=big_shots, seed=seed, noise=False),
            "qmk noise=True": lambda: qmk.run(g, shots=big_shots, seed=seed, noise=True),
            "stim compile+sample": lambda: circuit.compile_sampler(seed=seed).sample(big_shots),
            "stim sample only": lambda: sampler.sample(big_shots),
            "stim compile+sample, QMK's noisy circuit": lambda: noisy.compile_sampler(
                seed=seed
            ).sample(big_shots),
        },
        repeat,
    )
    goal1 = "<= 2x stim"
    for noise in (False, True):
        t, result = got[f"qmk noise={noise}"].figures(), got[f"qmk noise={noise}"].result
        about = {"mode": result.telemetry.mode, "engine": result.engine, "noise": noise}
        label = f"GHZ-{ghz_big} {big_shots} shots noise={noise}"
        peers = ["stim compile+sample", "stim sample only"]
        if noise:
            peers.append("stim compile+sample, QMK's noisy circuit")
        for peer in peers:
            info_only = peer == "stim sample only"
            row(
                label,
                t,
                peer,
                got[peer].figures(),
                "info" if info_only else goal1,
                None if info_only else 2.0,
                **about,
            )
    del got
    stages = {
        f"noise={noise}": qmk_stages(g, big_shots, seed, noise, repeat) for noise in (False, True)
    }

    # Goal 2: GHZ and QFT at statevector sizes, against Aer's statevector method.
    aer = AerSimulator(method="statevector")
    goal2 = "< 1x Aer"
    programs = [
        (f"GHZ-{ghz_sv}", ghz_sv, ghz_gates(ghz_sv), None),
        (
            f"QFT-{qft_n}",
            qft_n,
            qft_gates(qft_n, qft_prep(qft_n)),
            qft_gates(qft_n, qft_prep(qft_n), native_cp=True),
        ),
        (
            f"QFT-{qft_n} dense input",
            qft_n,
            qft_gates(qft_n, dense_prep(qft_n)),
            qft_gates(qft_n, dense_prep(qft_n), native_cp=True),
        ),
    ]
    for name, n, gates, native in programs:
        g = qvm_graph(n, gates)
        peers = {"Aer sv": transpile(qiskit_circuit(n, gates), aer)}
        if native is not None:
            peers["Aer sv, native cp"] = transpile(qiskit_circuit(n, native), aer)
        taken: dict[str, list[float]] = {label: [] for label in peers}

        def aer_run(label: str, qc: Any, taken: dict[str, list[float]] = taken) -> Any:
            result = aer.run(qc, shots=shots, seed_simulator=seed).result()
            taken[label].append(result.time_taken)
            return result

        runs: dict[str, Callable[[], Any]] = {
            "auto": lambda g=g: qmk.run(g, shots=shots, seed=seed, noise=False),
            "forced": lambda g=g: qmk.run(
                g, shots=shots, seed=seed, engine="statevector", noise=False
            ),
        }
        for label, qc in peers.items():
            runs[label] = lambda label=label, qc=qc: aer_run(label, qc)
        got = timed_group(runs, repeat)
        for chosen in ("auto", "forced"):
            t, result = got[chosen].figures(), got[chosen].result
            case = f"{name} {shots} shots {chosen} {result.engine}"
            about = {"mode": result.telemetry.mode, "engine": result.engine, "noise": False}
            for label in peers:
                reported = taken[label][1:]  # the warm-up's time_taken is left out
                reported_t = {"min_s": min(reported), "median_s": statistics.median(reported)}
                peer_t = got[label].figures()
                row(case, t, f"{label} run().result()", peer_t, goal2, 1.0, **about)
                row(case, t, f"{label} time_taken", reported_t, "info", None, **about)

    print()
    print(f"{'case':<52} {'qmk s':>9} {'peer':<44} {'peer s':>9} {'ratio':>7}  goal met")
    for r in rows:
        met = "-" if r["goal_met"] is None else ("yes" if r["goal_met"] else "NO")
        met = f"{met} ({r['goal']})" if r["goal_met"] is not None else "- (info)"
        print(
            f"{r['case']:<52} {r['qmk_min_s']:>9.4f} {r['peer']:<44} {r['peer_min_s']:>9.4f} "
            f"{r['ratio']:>7.2f}  {met}"
        )
    print()
    print(f"QMK stages, GHZ-{ghz_big} {big_shots} shots (stim-batch path):")
    for label, parts in stages.items():
        total = sum(p["min_s"] for p in parts.values())
        text = ", ".join(f"{k.split(' ')[0]} {p['min_s']:.4f}" for k, p in parts.items())
        print(f"  {label}: {text}; sum {total:.4f} s")

    write_json(
        {
            **info,
            "quick": quick,
            "repeat": repeat,
            "seed": seed,
            "sizes": {
                "ghz_big": ghz_big,
                "big_shots": big_shots,
                "ghz_sv": ghz_sv,
                "qft": qft_n,
                "shots": shots,
            },
            "load_average_at_end": load_averages(),
            "self_check": check,
            "rows": rows,
            "qmk_stages_ghz_big": stages,
        },
        args.out,
    )
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
