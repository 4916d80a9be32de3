"""Benchmark: QEC memory-experiment sampling (shots/s) against sinter on the same circuit.

The goal: QMK's sampler (``qmk.experiments.memory.sample_decode``: stim's compiled
detector sampler, bit-packed, and pymatching's ``decode_batch`` in chunks of
1024 shots) within 1.2x of sinter's shots per second on the same circuit. Not a
test: nothing here fails on a timing.

The circuit is ``stim.Circuit.generated("surface_code:rotated_memory_z")`` at
d = 5, rounds = 5 and all four of its noise rates at p = 1e-3; QMK's own builder
(``qmk.experiments.circuits.memory_circuit`` with the same noise) is timed as well.

Contenders, one worker each:

- ``qmk``: ``sample_decode(circuit, shots=N)`` timed end to end in this process
  (detector error model, matching graph, sampler compile, sampling, decoding).
- ``sinter``: ``sinter.collect(num_workers=1, decoders=["pymatching"])``; its
  own ``seconds`` (time in the worker's sample-and-decode calls, which leaves
  out starting the worker process) is the reference of the goal; the wall time
  of the whole ``collect`` call is reported too.

Contenders run in interleaved rounds after a warm-up (so a change of machine
load hits them alike); ratios use the best round of each. Results go to
``bench/results/qec.json`` with medians and machine information.

    python bench/bench_qec.py [--shots 1000000] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from typing import Any

import pymatching
import sinter
import stim

from _common import RESULTS, describe, load_averages, machine, timed, write_json
from qmk.experiments.circuits import CircuitNoise, memory_circuit
from qmk.experiments.memory import sample_decode

DISTANCE = 5
P = 1e-3


def generated(distance: int, p: float) -> stim.Circuit:
    """stim's rotated memory-Z circuit with all four noise rates at ``p``."""
    return stim.Circuit.generated(
        "surface_code:rotated_memory_z",
        distance=distance,
        rounds=distance,
        after_clifford_depolarization=p,
        before_round_data_depolarization=p,
        before_measure_flip_probability=p,
        after_reset_flip_probability=p,
    )


def time_qmk(circuit: stim.Circuit, shots: int, seed: int) -> dict[str, Any]:
    """One QMK run: wall seconds, shots and errors."""
    run = timed(lambda: sample_decode(circuit, shots=shots, seed=seed), 1)
    return {"seconds": run.min_s, "shots": run.result.shots, "errors": run.result.errors}


def time_sinter(circuit: stim.Circuit, shots: int) -> dict[str, Any]:
    """One sinter run: its reported seconds, the wall seconds of ``collect``, shots, errors."""
    run = timed(
        lambda: sinter.collect(
            num_workers=1,
            tasks=[sinter.Task(circuit=circuit, json_metadata={})],
            decoders=["pymatching"],
            max_shots=shots,
            max_errors=10**12,
        ),
        1,
    )
    (stats,) = run.result
    return {
        "seconds": stats.seconds,
        "wall": run.min_s,
        "shots": stats.shots,
        "errors": stats.errors,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and the ratio, write ``bench/results/qec.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200,000 shots, 2 rounds")
    parser.add_argument("--output", default=str(RESULTS / "qec.json"))
    args = parser.parse_args(argv)
    shots, repeat = (200_000, 2) if args.quick else (args.shots, args.repeat)
    info = machine(
        stim=stim.__version__, pymatching=pymatching.__version__, sinter=sinter.__version__
    )
    print(describe(info))

    theirs_circuit = generated(DISTANCE, P)
    ours_circuit = memory_circuit(
        "surface_code", distance=DISTANCE, rounds=DISTANCE, noise=CircuitNoise.stim_uniform(P)
    )
    # Warm-up: imports, first compiles, sinter's worker start-up code paths.
    time_qmk(theirs_circuit, 10_000, seed=0)
    time_sinter(theirs_circuit, 10_000)

    runs: dict[str, list[dict[str, Any]]] = {"qmk": [], "qmk_own_circuit": [], "sinter": []}
    for round_index in range(repeat):
        runs["qmk"].append(time_qmk(theirs_circuit, shots, seed=round_index + 1))
        runs["sinter"].append(time_sinter(theirs_circuit, shots))
        runs["qmk_own_circuit"].append(time_qmk(ours_circuit, shots, seed=round_index + 101))

    def rate(run: dict[str, Any], key: str = "seconds") -> float:
        return run["shots"] / run[key]

    best = {name: max(rate(r) for r in rs) for name, rs in runs.items()}
    median = {name: statistics.median(rate(r) for r in rs) for name, rs in runs.items()}
    sinter_wall = max(rate(r, "wall") for r in runs["sinter"])
    ratio = best["sinter"] / best["qmk"]
    total_shots = {name: sum(r["shots"] for r in rs) for name, rs in runs.items()}
    total_errors = {name: sum(r["errors"] for r in rs) for name, rs in runs.items()}

    print(f"QEC sampling, surface code d={DISTANCE}, rounds={DISTANCE}, p={P:g}, {shots:,} shots")
    print(f"{'contender':<34} {'best shots/s':>14} {'median shots/s':>15} {'P_L/shot':>10}")
    rows = (
        ("qmk (stim's circuit)", "qmk"),
        ("qmk (QMK's own circuit)", "qmk_own_circuit"),
        ("sinter (its seconds)", "sinter"),
    )
    for label, name in rows:
        print(
            f"{label:<34} {best[name]:>14,.0f} {median[name]:>15,.0f} "
            f"{total_errors[name] / total_shots[name]:>10.2e}"
        )
    print(f"{'sinter (wall time of collect)':<34} {sinter_wall:>14,.0f}")
    verdict = "meets" if ratio <= 1.2 else "misses"
    print(f"sinter/qmk time ratio: {ratio:.2f} ({verdict} the 1.2x goal)")

    record = {
        "benchmark": "qec_sampling",
        "circuit": f"surface_code:rotated_memory_z d={DISTANCE} rounds={DISTANCE} p={P}",
        "shots": shots,
        "repeat": repeat,
        "best_shots_per_second": best,
        "median_shots_per_second": median,
        "sinter_wall_shots_per_second": sinter_wall,
        "sinter_over_qmk_time_ratio": ratio,
        "goal": "ratio <= 1.2",
        "errors": total_errors,
        "total_shots": total_shots,
        "runs": runs,
        "machine": {
            **info,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": load_averages(),  # at the end
        },
    }
    write_json(record, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
