"""Benchmark: a stim circuit through ``qmk.run`` (the stim target) against stim in-process.

The goal: QMK's telemetry time (``result.telemetry.wall_time_s``: what the stim target's
run takes, stim's sampler compiled and sampled through the stabilizer engine's
``StimSampler``) within 1.5x of stim's own ``compile_sampler`` + ``sample`` (and
``compile_detector_sampler`` + ``sample`` for ``--detectors`` runs), at 10^4 and 10^5
shots, on stim's generated surface-code circuits at d = 3, 5, 7 (rotated memory Z,
d rounds, all four noise rates at p = 1e-3). Not a test: nothing here fails on a timing.

Contenders, in interleaved rounds after a warm-up (a change of machine load hits them
alike), each in this process:

- ``stim``: ``circuit.compile_sampler(seed=s).sample(shots, bit_packed=True)`` (detector
  runs: ``compile_detector_sampler(seed=s).sample(shots, bit_packed=True,
  separate_observables=True)``), timed around both calls;
- ``qmk``: ``qmk.run(circuit, shots=shots, seed=s)`` (detector runs: ``target_options=
  {"detectors": True}``); its telemetry time, and the wall time of the whole call
  (reading the circuit, the run request and its digest, the result) beside it.

The ratios are QMK's best over stim's best, and (``median``) QMK's median over stim's,
the steadier of the two on a loaded host; ``cpu`` is the ratio
of the least CPU seconds of the whole ``qmk.run`` call to stim's, which a loaded host
disturbs less than wall time. Each row also gives the detection-event rate of both
samples (QMK's and stim's, other seeds), which must agree within sampling error (the
tests check it: tests/execution/test_stim_target.py).
``--process`` also times whole processes at 10^4 shots: ``qmk run FILE.stim`` (its counts
keyed and printed) against ``python -c`` that imports stim, reads the file, compiles and
samples (one warm-up each first, which caches QMK's bytecode as an installed package has
it). Results go to ``bench/results/stim.json`` with the machine and load averages.

    python bench/bench_stim.py [--repeat 5] [--quick] [--process]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import stim

import qmk
from _common import RESULTS, describe, load_averages, machine, write_json
from bench_qec import generated  # stim's rotated memory-Z circuit, every noise rate at p

P = 1e-3
DISTANCES = (3, 5, 7)
SHOTS = (10_000, 100_000)
MODES = ("measurements", "detectors")
GOAL = 1.5


def _times(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """The least and median of each contender's times."""
    return {
        "min_s": {name: min(values) for name, values in times.items()},
        "median_s": {name: statistics.median(values) for name, values in times.items()},
    }


def stim_run(circuit: stim.Circuit, shots: int, seed: int, mode: str) -> tuple[float, float, float]:
    """stim's compile and sample: (seconds, CPU seconds, the detection rate, or the rate of
    1s in the record)."""
    cpu, started = time.process_time(), time.perf_counter()
    if mode == "detectors":
        rows, _ = circuit.compile_detector_sampler(seed=seed).sample(
            shots, bit_packed=True, separate_observables=True
        )
        width = circuit.num_detectors
    else:
        rows = circuit.compile_sampler(seed=seed).sample(shots, bit_packed=True)
        width = circuit.num_measurements
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return seconds, cpu, float(np.unpackbits(rows).sum()) / (shots * width)


def qmk_run(
    circuit: stim.Circuit, shots: int, seed: int, mode: str
) -> tuple[float, float, float, float]:
    """``qmk.run``: (telemetry seconds, wall and CPU seconds of the call, the same rate)."""
    options = {"detectors": True} if mode == "detectors" else None
    cpu, started = time.process_time(), time.perf_counter()
    result = qmk.run(circuit, shots=shots, seed=seed, target_options=options)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.target == "stim" and result.engine == "stabilizer"
    width = circuit.num_detectors if mode == "detectors" else circuit.num_measurements
    rows = result.detectors if mode == "detectors" else result.bits
    return result.telemetry.wall_time_s, wall, cpu, float(rows.sum()) / (shots * width)


def bench_case(circuit: stim.Circuit, shots: int, mode: str, repeat: int) -> dict[str, Any]:
    """Interleaved rounds of both contenders on one case; their times and rates."""
    stim_run(circuit, min(shots, 1000), 0, mode)  # warm-up: first compiles, imports
    qmk_run(circuit, min(shots, 1000), 0, mode)
    names = ("stim", "stim_cpu", "qmk_telemetry", "qmk_call", "qmk_call_cpu")
    times: dict[str, list[float]] = {name: [] for name in names}
    rates: dict[str, list[float]] = {"stim": [], "qmk": []}
    for round_ in range(repeat):
        seconds, cpu, rate = stim_run(circuit, shots, 2 * round_ + 1, mode)
        times["stim"].append(seconds)
        times["stim_cpu"].append(cpu)
        rates["stim"].append(rate)
        telemetry, call, cpu, rate = qmk_run(circuit, shots, 2 * round_ + 2, mode)
        times["qmk_telemetry"].append(telemetry)
        times["qmk_call"].append(call)
        times["qmk_call_cpu"].append(cpu)
        rates["qmk"].append(rate)
    figures = _times(times)
    best, median = figures["min_s"], figures["median_s"]
    return {
        "shots": shots,
        "mode": mode,
        **figures,
        "ratio_telemetry": best["qmk_telemetry"] / best["stim"],
        "ratio_telemetry_median": median["qmk_telemetry"] / median["stim"],
        "ratio_call": best["qmk_call"] / best["stim"],
        "ratio_call_cpu": best["qmk_call_cpu"] / max(best["stim_cpu"], 1e-9),
        "rate": {name: statistics.fmean(values) for name, values in rates.items()},
        "load_average": load_averages(),
    }


def process_case(path: Path, shots: int, mode: str, repeat: int) -> dict[str, Any]:
    """Whole processes: ``qmk run`` against a stim script over the same stages."""
    flag = ["--detectors"] if mode == "detectors" else []
    ours = [sys.executable, "-m", "qmk", "run", str(path), "--shots", str(shots), "--seed", "1"]
    sampler = (
        "compile_detector_sampler(seed=1).sample(N, bit_packed=True, separate_observables=True)"
        if mode == "detectors"
        else "compile_sampler(seed=1).sample(N, bit_packed=True)"
    )
    theirs = [
        sys.executable,
        "-c",
        f"import stim; N = {shots}; c = stim.Circuit(open({str(path)!r}).read()); c.{sampler}",
    ]
    # as an installed package runs: its modules' bytecode cached (written by the warm-up)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    contenders = (("stim_process", theirs), ("qmk_process", [*ours, *flag]))
    for _, argv in contenders:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    times: dict[str, list[float]] = {"stim_process": [], "qmk_process": []}
    for _ in range(repeat):
        for name, argv in contenders:
            started = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
            times[name].append(time.perf_counter() - started)
    figures = _times(times)
    best = figures["min_s"]
    return {
        "shots": shots,
        "mode": mode,
        **figures,
        "ratio_process": best["qmk_process"] / best["stim_process"],
        "load_average": load_averages(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the cases, print the table and the ratios, write ``bench/results/stim.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="d = 3 and 5, 10^4 shots, 3 rounds")
    parser.add_argument(
        "--process", action="store_true", help="also time whole processes at 10^4 shots"
    )
    parser.add_argument("--output", default=str(RESULTS / "stim.json"))
    args = parser.parse_args(argv)
    distances, shot_counts, repeat = (
        ((3, 5), (10_000,), 3) if args.quick else (DISTANCES, SHOTS, args.repeat)
    )
    info = machine(stim=stim.__version__)
    print(describe(info))
    print(
        f"stim circuits through qmk.run (the stim target) against stim in-process; "
        f"surface code rotated memory Z, d rounds, p={P:g}; {repeat} interleaved rounds"
    )
    header = (
        f"{'d':>2} {'mode':<12} {'shots':>7} {'stim ms':>9} {'qmk tel ms':>10} "
        f"{'qmk call ms':>11} {'tel/stim':>8} {'(median)':>8} {'call/stim':>9} {'cpu':>5} "
        f"{'rate qmk/stim':>16} {'load':>5}"
    )
    print(header)
    cases = []
    for distance in distances:
        circuit = generated(distance, P)
        for mode in MODES:
            for shots in shot_counts:
                case = {"distance": distance, **bench_case(circuit, shots, mode, repeat)}
                cases.append(case)
                best, rate = case["min_s"], case["rate"]
                print(
                    f"{distance:>2} {mode:<12} {shots:>7,} {best['stim'] * 1e3:>9.2f} "
                    f"{best['qmk_telemetry'] * 1e3:>10.2f} {best['qmk_call'] * 1e3:>11.2f} "
                    f"{case['ratio_telemetry']:>8.2f} {case['ratio_telemetry_median']:>8.2f} "
                    f"{case['ratio_call']:>9.2f} "
                    f"{case['ratio_call_cpu']:>5.2f} "
                    f"{rate['qmk']:>7.4f}/{rate['stim']:<8.4f} {case['load_average'][0]:>5.2f}"
                )
    worst = max(case["ratio_telemetry"] for case in cases)
    worst_median = max(case["ratio_telemetry_median"] for case in cases)
    for label, ratio in (("best-round", worst), ("median-round", worst_median)):
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"worst {label} telemetry ratio {ratio:.2f} ({verdict} the {GOAL}x goal)")
    processes = []
    if args.process:
        with tempfile.TemporaryDirectory() as folder:
            for distance in distances:
                path = Path(folder) / f"surface_d{distance}.stim"
                path.write_text(str(generated(distance, P)), encoding="utf-8")
                for mode in MODES:
                    case = {"distance": distance, **process_case(path, 10_000, mode, repeat)}
                    processes.append(case)
                    print(
                        f"process d={distance} {mode:<12} 10,000 shots: stim "
                        f"{case['min_s']['stim_process']:.3f} s, qmk run "
                        f"{case['min_s']['qmk_process']:.3f} s, ratio "
                        f"{case['ratio_process']:.2f} (load {case['load_average'][0]:.2f})"
                    )
    write_json(
        {
            "benchmark": "stim_circuits",
            "circuits": f"surface_code:rotated_memory_z d in {list(distances)}, rounds d, p={P}",
            "repeat": repeat,
            "goal": f"telemetry ratio <= {GOAL}",
            "worst_telemetry_ratio": worst,
            "worst_telemetry_ratio_median": worst_median,
            "cases": cases,
            "processes": processes,
            "machine": {**info, "load_average_at_end": load_averages()},
        },
        args.output,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
