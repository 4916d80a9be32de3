"""Benchmark: noisy shots at noiseless speed (issue 18 item 4, issue 28 item 5).

GHZ-1000, 100,000 shots, with QMK's logical noise on (the default profile and qubit,
about 0.15 logical errors per shot over ~5000 noise locations), against stim's
noiseless compiled sampler on the same circuit, in one process. Goal: QMK noisy
<= 1.5x stim noiseless (issue 28; it was 2x in issue 18), by medians of interleaved
rounds (the machine is shared); not a test: nothing here fails on a timing.

Contenders, warmed up once and then run in interleaved rounds (a change of machine
load hits them alike); the table shows minima and medians of wall time and both ratios,
and the least CPU time (this process's, or a child's user + system time) with its ratio
(on a shared machine, other processes' load shows in the wall times only):

- ``qmk noise=True``: ``qmk.run`` end to end from a built ``Graph`` (verify, plan,
  lower, compile, sample, counts); the errors are drawn by QMK and their measurement
  flips XORed into noiseless samples (telemetry ``noise_sampling: flip-masks``);
- ``qmk noise=True, heralded``: the path before flip masks, stage by stage as
  ``qmk.run`` did it (verify, plan, ``batch.lower(plan, heralded=True)``, compile,
  stim samples the heralded channels, counts): the "before" of issue 18;
- ``qmk noise=False``;
- ``stim compile+sample``: ``circuit.compile_sampler(seed).sample(shots)`` on the
  noiseless circuit (the goal's reference), and ``stim sample only`` (info).

What a user meets, in fresh processes (``--cli-repeat`` rounds, interleaved, after
one warm-up each): ``python -m qmk run ghz.qasm --shots 100000 --seed S`` on an
OpenQASM 2 GHZ file, noise on (the command's default), its printed counts thrown
away, against ``python stim_ghz.py``, which imports stim, builds the same circuit and
samples it noiselessly. Both import from bytecode as an installed package does (a
``PYTHONPYCACHEPREFIX`` under the temporary folder, written by the warm-up), and this
run's ``qmk`` is the one imported (its folder leads ``PYTHONPATH``).

A check that the fast path is the same distribution: the fraction of shots off the
two GHZ outcomes and the mean number of ones, flip masks against heralded, with
their standard errors, and the injected errors against the plan's prediction.
``bench/results/noisy.json`` holds minima, medians, ratios, load averages (from
``os.getloadavg()``, at the start and the end) and machine information.

    python bench/bench_noisy.py [--repeat 5] [--cli-repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import stim

import qmk
from _common import RESULTS, describe, load_averages, machine, timed_group, write_json
from bench_execute import ghz_gates, qvm_graph, stim_circuit
from qmk.engines.stim_batch import compile_batch
from qmk.execution import batch, executor
from qmk.execution.plan import build_plan
from qmk.execution.result import keyed_counts
from qmk.qvm.graph import Graph


def heralded_run(g: Graph, shots: int, seed: int) -> tuple[dict[str, int], np.ndarray, int]:
    """What ``qmk.run(g, noise=True)`` did before flip masks: stim samples heralded channels."""
    plan = build_plan(
        executor.load_program(g),
        noise=True,
        qubit=executor.DEFAULT_QUBIT,
        default_profile=executor.DEFAULT_PROFILE,
    )
    lowered = batch.lower(plan, heralded=True)
    assert lowered is not None
    sampler = compile_batch(lowered.circuit)
    assert sampler is not None
    bits, injected = sampler.sample(shots, seed, lowered.event_columns, lowered.herald_columns)
    return keyed_counts(bits, None), bits, injected


def summary(bits: np.ndarray) -> dict[str, float]:
    """Off-GHZ fraction and mean ones per shot, each with its standard error."""
    ones = bits.sum(axis=1, dtype=np.int64)
    off = (ones != 0) & (ones != bits.shape[1])
    n = len(ones)
    return {
        "off_ghz_fraction": float(off.mean()),
        "off_ghz_stderr": float(math.sqrt(off.mean() * (1 - off.mean()) / n)),
        "mean_ones": float(ones.mean()),
        "mean_ones_stderr": float(ones.std() / math.sqrt(n)),
    }


def ghz_qasm(n: int) -> str:
    """GHZ-n in OpenQASM 2: H, a CX chain, every qubit measured into its bit."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];", "h q[0];"]
    lines += [f"cx q[{i - 1}],q[{i}];" for i in range(1, n)]
    lines += [f"measure q[{i}] -> c[{i}];" for i in range(n)]
    return "\n".join(lines) + "\n"


#: The fresh stim process: imports stim, builds GHZ-n, samples it noiselessly.
STIM_SCRIPT = """\
import sys
import stim
n, shots, seed = (int(a) for a in sys.argv[1:4])
circuit = stim.Circuit()
circuit.append("H", [0])
for i in range(1, n):
    circuit.append("CX", [i - 1, i])
circuit.append("M", list(range(n)))
bits = circuit.compile_sampler(seed=seed).sample(shots)
print(bits.shape, int(bits.sum()))
"""


def fresh_processes(n: int, shots: int, seed: int, repeat: int) -> dict[str, Any]:
    """Wall times of the ``qmk run`` command and of the fresh stim script (see the module
    docstring): one warm-up each, then ``repeat`` interleaved rounds."""
    src = str(Path(qmk.__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="bench-noisy-") as tmp:
        folder = Path(tmp)
        (folder / "ghz.qasm").write_text(ghz_qasm(n))
        (folder / "stim_ghz.py").write_text(STIM_SCRIPT)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        commands = {
            "qmk run (fresh process, noise on)": [
                sys.executable, "-m", "qmk", "run", str(folder / "ghz.qasm"),
                "--shots", str(shots), "--seed", str(seed),
            ],
            "stim (fresh process, noiseless)": [
                sys.executable, str(folder / "stim_ghz.py"), str(n), str(shots), str(seed),
            ],
        }  # fmt: skip
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(repeat + 1):
            for name, argv in commands.items():
                used = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, cwd=tmp)
                if round_:  # round 0 warms up, and writes the bytecode
                    wall[name].append(time.perf_counter() - start)
                    done = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[name].append(done.ru_utime + done.ru_stime - used.ru_utime - used.ru_stime)
    return {
        name: {
            "min_s": min(times),
            "median_s": statistics.median(times),
            "cpu_min_s": min(cpu[name]),
            "runs": len(times),
        }
        for name, times in wall.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--cli-repeat", type=int, default=None, help="fresh-process rounds (--repeat; 0: none)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--qubits", type=int, default=None, help="GHZ qubits (1000)")
    parser.add_argument("--shots", type=int, default=None, help="shots (100000)")
    parser.add_argument("--out", default=str(RESULTS / "noisy.json"))
    args = parser.parse_args()
    n = args.qubits or (100 if args.quick else 1000)
    shots = args.shots or (10_000 if args.quick else 100_000)
    repeat = 2 if args.quick and args.repeat == 5 else args.repeat
    cli_repeat = repeat if args.cli_repeat is None else args.cli_repeat
    seed = args.seed

    info = machine(stim=stim.__version__)
    print(describe(info, f"GHZ-{n}, {shots} shots; min of {repeat} runs after 1 warm-up"))

    gates = ghz_gates(n)
    g = qvm_graph(n, gates)
    circuit = stim_circuit(n, gates)
    sampler = circuit.compile_sampler(seed=seed)
    runs: dict[str, Callable[[], Any]] = {
        "qmk noise=True": lambda: qmk.run(g, shots=shots, seed=seed, noise=True),
        "qmk noise=True, heralded (before)": lambda: heralded_run(g, shots, seed),
        "qmk noise=False": lambda: qmk.run(g, shots=shots, seed=seed, noise=False),
        "stim compile+sample (noiseless)": lambda: circuit.compile_sampler(seed=seed).sample(shots),
        "stim sample only (noiseless)": lambda: sampler.sample(shots),
    }
    got = timed_group(runs, repeat)
    # wall minima and medians, and the least CPU time of this process (a check on a
    # loaded machine: other processes' load shows in the wall times only)
    times = {name: {**t.figures(), "cpu_min_s": t.cpu_min_s} for name, t in got.items()}
    reference = "stim compile+sample (noiseless)"
    ratios = {name: t["min_s"] / times[reference]["min_s"] for name, t in times.items()}
    medians = {name: t["median_s"] / times[reference]["median_s"] for name, t in times.items()}
    cpu = {name: t["cpu_min_s"] / times[reference]["cpu_min_s"] for name, t in times.items()}

    noisy = got["qmk noise=True"].result
    _, heralded_bits, heralded_injected = got["qmk noise=True, heralded (before)"].result
    plan = build_plan(
        executor.load_program(g),
        noise=True,
        qubit=executor.DEFAULT_QUBIT,
        default_profile=executor.DEFAULT_PROFILE,
    )
    rates = np.array([loc.total for loc in plan.noise])
    check = {
        "noise_locations": len(plan.noise),
        "injected_predicted": float(shots * rates.sum()),
        "injected_predicted_sd": float(math.sqrt(shots * (rates * (1 - rates)).sum())),
        "injected_flip_masks": noisy.telemetry.injected_logical_errors,
        "injected_heralded": heralded_injected,
        "flip_masks": summary(noisy.bits),
        "heralded": summary(heralded_bits),
        "mode": noisy.telemetry.mode,
        "noise_sampling": noisy.telemetry.noise_sampling,
    }
    z_off = (check["flip_masks"]["off_ghz_fraction"] - check["heralded"]["off_ghz_fraction"]) / (
        math.hypot(check["flip_masks"]["off_ghz_stderr"], check["heralded"]["off_ghz_stderr"])
        or 1.0
    )
    z_ones = (check["flip_masks"]["mean_ones"] - check["heralded"]["mean_ones"]) / (
        math.hypot(check["flip_masks"]["mean_ones_stderr"], check["heralded"]["mean_ones_stderr"])
        or 1.0
    )
    check["z_off_ghz"], check["z_mean_ones"] = z_off, z_ones
    check["ok"] = bool(
        abs(z_off) < 5
        and abs(z_ones) < 5
        and check["noise_sampling"] == "flip-masks"
        and abs(check["injected_flip_masks"] - check["injected_predicted"])
        < 5 * check["injected_predicted_sd"]
    )

    fresh = fresh_processes(n, shots, seed, cli_repeat) if cli_repeat > 0 else {}
    cli_ratios: dict[str, float] = {}
    if fresh:
        qmk_cli, stim_cli = fresh.values()
        cli_ratios = {
            "min": qmk_cli["min_s"] / stim_cli["min_s"],
            "median": qmk_cli["median_s"] / stim_cli["median_s"],
            "cpu_min": qmk_cli["cpu_min_s"] / stim_cli["cpu_min_s"],
        }
    load_end = load_averages()

    print()
    print(
        f"{'contender':<36} {'min s':>8} {'median s':>9} {'min / stim':>11} "
        f"{'median / stim':>14} {'cpu min s':>10} {'cpu / stim':>11}"
    )
    for name, t in times.items():
        print(
            f"{name:<36} {t['min_s']:>8.4f} {t['median_s']:>9.4f} "
            f"{ratios[name]:>10.2f}x {medians[name]:>13.2f}x "
            f"{t['cpu_min_s']:>10.4f} {cpu[name]:>10.2f}x"
        )
    after, before = medians["qmk noise=True"], medians["qmk noise=True, heralded (before)"]
    goal_met = after <= 1.5
    print()
    verdict = "met" if goal_met else "NOT met"
    print(
        f"QMK noisy / stim noiseless: minima {ratios['qmk noise=True']:.2f}x, medians "
        f"{after:.2f}x (goal <= 1.5x by medians: {verdict}), CPU minima "
        f"{cpu['qmk noise=True']:.2f}x; before (heralded): {before:.2f}x; "
        f"speed-up {before / after:.1f}x"
    )
    if fresh:
        print()
        for name, t in fresh.items():
            print(
                f"{name:<36} {t['min_s']:>8.4f} {t['median_s']:>9.4f} "
                f"{'':>11} {'':>14} {t['cpu_min_s']:>10.4f}"
            )
        print(
            f"fresh processes, qmk run / stim: minima {cli_ratios['min']:.2f}x, medians "
            f"{cli_ratios['median']:.2f}x, CPU minima {cli_ratios['cpu_min']:.2f}x"
        )
    print(
        "load averages (1, 5, 15 min): start "
        + " ".join(f"{x:.2f}" for x in info["load_average_at_start"])
        + ", end "
        + " ".join(f"{x:.2f}" for x in load_end)
    )
    fm, hd = check["flip_masks"], check["heralded"]
    print(
        f"check ({check['mode']}, noise_sampling {check['noise_sampling']}): injected "
        f"{check['injected_flip_masks']} (heralded {check['injected_heralded']}; predicted "
        f"{check['injected_predicted']:.0f} +- {check['injected_predicted_sd']:.0f}); "
        f"off-GHZ {fm['off_ghz_fraction']:.4f} vs {hd['off_ghz_fraction']:.4f} "
        f"(z {z_off:+.2f}); mean ones {fm['mean_ones']:.2f} vs {hd['mean_ones']:.2f} "
        f"(z {z_ones:+.2f}) -> {'ok' if check['ok'] else 'FAILED'}"
    )

    write_json(
        {
            **info,
            "quick": args.quick,
            "repeat": repeat,
            "seed": seed,
            "qubits": n,
            "shots": shots,
            "load_average_at_end": load_end,
            "times": times,
            "ratio_to_stim_noiseless": ratios,
            "median_ratio_to_stim_noiseless": medians,
            "cpu_ratio_to_stim_noiseless": cpu,
            "goal": "qmk noise=True <= 1.5x stim compile+sample (noiseless), medians",
            "goal_met": goal_met,
            "fresh_processes": fresh,
            "fresh_ratio_qmk_run_to_stim": cli_ratios,
            "cli_repeat": cli_repeat,
            "check": check,
        },
        args.out,
    )
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
