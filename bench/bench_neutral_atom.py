"""Benchmark: the neutral-atom VM (``qmk.devices.neutral_atom.run_job``) against its goals
and beside stim.

Goals (issue 12; the prototype took 42 s for the first):

- GHZ-20 on a chain, 1000 shots, noiseless: under 0.1 s in-process;
- GHZ-20 with the benchmark chain's noise (``benchmark_chain``): under 1 s;
- 10,000 atoms on the stim path, 1000 shots: under 5 s.

Each case is timed end to end in this process (parse, validate, schedule, lower, sample,
results), best of ``--repeat`` rounds after a warm-up. Beside each, where it applies:

- ``stim``: the same circuit written directly as a stim circuit (H, CX chain, M; with the
  noise case's Pauli channels and measurement flips) compiled and sampled: what the
  device's stim path costs on top of stim;
- the ``state-vector`` backend on the same job (GHZ-20 only).

The 10,000-atom case uses the benchmark chain's gates, timing and noise on a 10,000-site
chain, without runtime loss; with runtime loss every shot has its own loss pattern and the
stim path compiles one circuit per pattern (reported as ``10k_runtime_loss`` with fewer
shots, ``--full``). Not a test: nothing here fails on a timing.

    python bench/bench_neutral_atom.py [--repeat 3] [--quick] [--full]

Results go to ``bench/results/neutral_atom.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import stim

from _common import RESULTS, describe, machine, timed, write_json
from qmk.devices.neutral_atom import load_profile, run_job
from qmk.devices.neutral_atom.profiles import Profile

GOALS_S = {"ghz20_noiseless": 0.1, "ghz20_benchmark_noise": 1.0, "atoms10k_stim": 5.0}
PROTOTYPE_GHZ20_S = 42.0


def ghz_program(n: int) -> list[dict[str, Any]]:
    """GHZ on a chain: H, then CX between neighbours, then measure every atom."""
    program: list[dict[str, Any]] = [
        {"op": "AllocArray", "n_qubits": n},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
    ]
    program += [{"op": "ApplyGate", "name": "CX", "targets": [i, i + 1]} for i in range(n - 1)]
    program.append({"op": "Measure", "targets": list(range(n))})
    return program


def chain_profile(n: int, *, runtime_loss: bool) -> Profile:
    """The benchmark chain's gates, timing and noise on an ``n``-site chain."""
    bench = load_profile("benchmark_chain")
    profile = Profile.from_json(
        {
            "name": f"benchmark_chain_{n}",
            "lattice": {"kind": "chain", "n": n, "spacing": 1.3},
            "hardware": {
                "blockade_model": {"radius": 1.6},
                "native_gates": [g.to_json() for g in bench.hardware.native_gates],
                "timing_limits": bench.hardware.timing.to_json(),
            },
            "noise": bench.noise.to_json(),
        }
    )
    if runtime_loss:
        return profile
    noise = dataclasses.replace(
        profile.noise,
        loss_runtime=dataclasses.replace(profile.noise.loss_runtime, per_gate=0.0, idle_rate=0.0),
    )
    return dataclasses.replace(profile, noise=noise)


def stim_ghz(n: int, noise: dict[str, Any] | None) -> stim.Circuit:
    """GHZ-n written directly for stim (with the benchmark noise's Pauli channels)."""
    lines = ["H 0"]
    if noise:
        g = noise["gate"]
        sq = g["single_qubit"]
        lines.append(f"PAULI_CHANNEL_1({sq['px']},{sq['py']},{sq['pz']}) 0")
    for i in range(n - 1):
        lines.append(f"CX {i} {i + 1}")
        if noise:
            c, t = noise["gate"]["two_qubit_control"], noise["gate"]["two_qubit_target"]
            lines.append(f"PAULI_CHANNEL_1({c['px']},{c['py']},{c['pz']}) {i}")
            lines.append(f"PAULI_CHANNEL_1({t['px']},{t['py']},{t['pz']}) {i + 1}")
            m = [v for row in noise["correlated_gate"]["matrix"] for v in row][1:]
            lines.append(f"PAULI_CHANNEL_2({','.join(map(str, m))}) {i} {i + 1}")
    flip = max(noise["readout"]["p_flip0_to_1"], noise["readout"]["p_flip1_to_0"]) if noise else 0
    lines.append(
        f"M({flip}) " + " ".join(map(str, range(n)))
        if flip
        else "M " + " ".join(map(str, range(n)))
    )
    return stim.Circuit("\n".join(lines))


def best_of(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The least wall time of ``repeat`` runs after one warm-up, and the last result."""
    timing = timed(run, repeat, warmup=1)
    return timing.min_s, timing.result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="1 round, 1000-atom large case")
    parser.add_argument("--full", action="store_true", help="also 10k atoms with runtime loss")
    parser.add_argument("--out", default=str(RESULTS / "neutral_atom.json"))
    options = parser.parse_args(argv)
    repeat = 1 if options.quick else options.repeat
    shots = options.shots
    large = 1000 if options.quick else 10_000
    cases: dict[str, dict[str, Any]] = {}
    info = machine(stim=stim.__version__)
    print(describe(info))

    noiseless = {"profile": "benchmark_chain", "noise": {}, "program": ghz_program(20)}
    t_auto, r = best_of(lambda: run_job(noiseless, shots=shots, seed=1), repeat)
    t_sv, _ = best_of(
        lambda: run_job(noiseless, shots=shots, seed=1, backend="state-vector"), repeat
    )
    circuit = stim_ghz(20, None)
    t_stim, _ = best_of(lambda: circuit.compile_sampler(seed=1).sample(shots), repeat)
    cases["ghz20_noiseless"] = {
        "seconds": t_auto,
        "backend": r.device_id,
        "state_vector_seconds": t_sv,
        "stim_seconds": t_stim,
        "prototype_seconds": PROTOTYPE_GHZ20_S,
    }

    noisy = {"profile": "benchmark_chain", "program": ghz_program(20)}
    t_auto, r = best_of(lambda: run_job(noisy, shots=shots, seed=1), repeat)
    noise = load_profile("benchmark_chain").noise.to_json()
    circuit = stim_ghz(20, noise)
    t_stim, _ = best_of(lambda: circuit.compile_sampler(seed=1).sample(shots), repeat)
    cases["ghz20_benchmark_noise"] = {
        "seconds": t_auto,
        "backend": r.device_id,
        "groups": r.telemetry["groups"],
        "stim_seconds": t_stim,
    }

    profile = chain_profile(large, runtime_loss=False)
    program = {"program": ghz_program(large)}
    t_auto, r = best_of(
        lambda: run_job(program, shots=shots, seed=1, device=profile), max(1, repeat - 1)
    )
    circuit = stim_ghz(large, noise)
    t_stim, _ = best_of(lambda: circuit.compile_sampler(seed=1).sample(shots), max(1, repeat - 1))
    cases["atoms10k_stim"] = {
        "atoms": large,
        "seconds": t_auto,
        "backend": r.device_id,
        "validate_seconds": r.telemetry["validate_s"],
        "execute_seconds": r.telemetry["execute_s"],
        "stim_seconds": t_stim,
    }
    if options.full:
        lossy = chain_profile(large, runtime_loss=True)
        few = 20
        t_loss, r = best_of(lambda: run_job(program, shots=few, seed=1, device=lossy), 1)
        cases["10k_runtime_loss"] = {
            "atoms": large,
            "shots": few,
            "seconds": t_loss,
            "groups": r.telemetry["groups"],
            "seconds_per_group": t_loss / max(1, r.telemetry["groups"]),
        }

    print(f"neutral-atom VM, {shots} shots (best of {repeat}; goals in brackets)")
    for name, case in cases.items():
        goal = GOALS_S.get(name)
        verdict = (
            ""
            if goal is None
            else f"  [goal < {goal:g} s: {'met' if case['seconds'] < goal else 'MISSED'}]"
        )
        extra = ""
        if "stim_seconds" in case:
            ratio = case["seconds"] / case["stim_seconds"]
            extra = f"; stim alone {case['stim_seconds']:.4f} s (x{ratio:.1f})"
        if "state_vector_seconds" in case:
            extra += f"; state-vector backend {case['state_vector_seconds']:.4f} s"
        backend = case.get("backend", "stabilizer")
        print(f"  {name:<24} {case['seconds']:.4f} s on {backend}{extra}{verdict}")
    ghz = cases["ghz20_noiseless"]
    speedup = PROTOTYPE_GHZ20_S / ghz["seconds"]
    print(f"  GHZ-20 noiseless vs the prototype's {PROTOTYPE_GHZ20_S:g} s: x{speedup:.0f}")

    write_json(
        {
            **info,
            "cpus": os.cpu_count(),
            "shots": shots,
            "repeat": repeat,
            "goals_s": GOALS_S,
            "cases": cases,
        },
        options.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
