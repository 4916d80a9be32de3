"""Benchmark: what a user meets, a fresh ``qmk run`` process against the peers' own (issues 28, 50).

Each case writes one program as an OpenQASM 2 file and runs, as whole processes
(interpreter start, imports, reading the file, compiles and conversions included), the
``qmk run FILE`` command a user types against a Python process running the peer on the
same circuit, with bytecode cached as a pip install leaves it. Contenders run in
interleaved rounds (a change of machine load hits them alike), every other round in
reverse order (a process that follows a memory-hungry one pays for the memory the OS
must compact into huge pages for it). Two figures a process:

- ``process``: its whole wall time;
- ``run``: the run as the tool itself times it in that fresh process: QMK's telemetry
  ``wall_time_s`` (plan, route, engine, kernels, sampling and counts), a peer's own
  call timed around it (qsim's ``run``, Aer's ``run(...).result()``, stim's compile
  and sample), everything before it (imports, reading, building the circuit) left out
  on both sides.

The table shows each one's least and median, and the ratios QMK/peer of both, with
the load averages of the rounds; ``bench/results/cli.json`` holds every time.
``--stages`` adds, per case, where a fresh ``qmk run`` spends its CPU: the same
command in a child that times the stages it passes through (imports and parsing,
reading the file, verifying, the run request, then inside the telemetry's window
planning, routing, the engine, fusion, kernel setup, the kernels, sampling, counts
and the rest), least CPU time of the rounds.

Cases (seeded; the peers read the same QASM file, except where said):

- ``random-N`` (N = 20, 24, 26): N qubits, 20 layers of a random U3 (RZ RY RZ) on every qubit
  and a CZ brickwork, every qubit measured, 1000 shots. QMK's default route (``qmk run
  FILE``) and its native engine in single precision (``--engine statevector
  --precision single``) against qsim (``qsimcirq``, ``--threads`` threads, fusion 4; the circuit
  built in cirq from the same gate list: cirq's QASM reader needs ``ply``) and Aer's
  statevector (``qiskit.qasm2.load`` and ``AerSimulator``);
- ``qft-N`` (N = 20, 24, 26): a layer of RY, then the QFT (controlled phases and H), 1000
  shots, against the same peers (the circuits are ``bench_router.py``'s);
- ``qv-20``: quantum-volume-shaped, 20 layers of random two-qubit unitaries on random
  pairs (3 CX and 15 rotations each); ``qaoa-20``: QAOA for MaxCut on a random
  3-regular graph, 3 rounds (CX RZ CX on each edge, RX on every qubit); 1000 shots,
  against the same peers;
- ``noisy-20``: random-20 with QMK's logical noise at ``logical:surface_code(d=3)``
  (about 0.5 logical errors a shot), 50 shots (Aer runs each shot's trajectory: over
  a second of CPU a shot here), against Aer's statevector with the
  same Pauli channels at the same places (``bench_noisy_dense.aer_circuit``: the
  circuit and noise model built by this script and handed to the peer's process as a
  pickle, which it loads before its timing);
- ``noisy-N-E`` (N = 8, 10, 12, 16; issue 62 item 4): random-N with the d=3 profile's
  logical noise raised by a depolarizing noise model (``--noise-model``, :data:`NOISY_SMALL`)
  to about E logical errors a shot, 1024 shots, against Aer's automatic method on the
  same channels (its density matrix where the shots exceed ``2**N``, else a trajectory a
  shot; the pickle as ``noisy-20``'s);
- ``ghz-1000``: GHZ on 1000 qubits, 100,000 shots; QMK with its logical noise on (the
  default) against stim's noiseless compiled sampler (the circuit built in stim);
- ``wide-64``, ``wide-100``: random brickwork, 64 qubits 4 layers and 100 qubits 6
  layers (a random U3 on every qubit, then a CX brickwork), 1000 shots, noise off
  (``--no-noise``): QMK's default route against Aer's ``matrix_product_state`` method.
- ``gpu-random-N`` (N = 20, 24, 28, 30), only where a CUDA GPU is present (issue 50,
  item 5): ``random-N``'s circuit on QMK's GPU engines (``--engine custatevec --precision
  single``, ``--engine qsim-gpu``) and its default route, against qsim's CUDA backend
  (``use_gpu=True``, the same fusion) and, up to 28 qubits, the CPU's best (QMK's native
  engine in single precision and qsim on ``--threads`` threads).

Not a test: nothing here fails on a timing.

    python bench/bench_cli.py [--cases random-20 ghz-1000] [--rounds 3] [--stages]
        [--threads 2] [--skip 'aer statevector']
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, describe, installed, load_averages, machine, write_json
from bench_router import ghz_qasm, qaoa_qasm, qft_qasm, qv_qasm, random_qasm
from qmk.engines.registry import gpu_present

#: The peers, as Python programs run with ``python -c`` and the QASM path as argv[1],
#: the shots as argv[2]. Each reads the file (or builds the circuit from its gate lines),
#: samples, and prints the number of shots it got (so nothing is left undone) and the
#: seconds of its own run call.
QSIM = """
import os, re, sys, time
import cirq, qsimcirq
ops, q = [], None
for line in open(sys.argv[1]):
    m = re.match(r"(\\w+)(?:\\(([^)]*)\\))? ([^;]*);", line.strip())
    if not m or m.group(1) in ("OPENQASM", "include", "creg", "measure"):
        continue
    name, arg, operands = m.groups()
    idx = [int(x) for x in re.findall(r"\\[(\\d+)\\]", operands)]
    if name == "qreg":
        q = cirq.LineQubit.range(idx[0])
        continue
    t = [q[i] for i in idx]
    if name == "cz": ops.append(cirq.CZ(*t))
    elif name == "cx": ops.append(cirq.CNOT(*t))
    elif name == "h": ops.append(cirq.H(*t))
    elif name == "cu1": ops.append(cirq.CZPowGate(exponent=float(arg) / 3.141592653589793)(*t))
    else: ops.append({"rz": cirq.rz, "ry": cirq.ry, "rx": cirq.rx}[name](float(arg))(*t))
ops.append(cirq.measure(*q, key="m"))
threads = int(os.environ["OMP_NUM_THREADS"])
sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=threads, max_fused_gate_size=4))
circuit = cirq.Circuit(ops)
start = time.perf_counter()
got = sim.run(circuit, repetitions=int(sys.argv[2]))
took = time.perf_counter() - start
print(len(got.measurements["m"]), took)
"""

#: qsim's CUDA backend (a qsimcirq built with it), otherwise the same program as QSIM.
QSIM_GPU = QSIM.replace(
    "max_fused_gate_size=4)", "max_fused_gate_size=4, use_gpu=True, gpu_mode=0)"
)
assert QSIM_GPU != QSIM

AER = """
import sys, time
import qiskit.qasm2
from qiskit_aer import AerSimulator
circuit = qiskit.qasm2.load(sys.argv[1])
sim = AerSimulator(method="{method}")
start = time.perf_counter()
result = sim.run(circuit, shots=int(sys.argv[2]), seed_simulator=1).result()
took = time.perf_counter() - start
print(sum(result.get_counts().values()), took)
"""

#: Aer with a noise model: argv[1] is a pickle of (circuit, noise model).
AER_NOISY = """
import pickle, sys, time
from qiskit_aer import AerSimulator
with open(sys.argv[1], "rb") as f:
    circuit, model = pickle.load(f)
sim = AerSimulator(method="{method}")
start = time.perf_counter()
result = sim.run(circuit, shots=int(sys.argv[2]), seed_simulator=1, noise_model=model).result()
took = time.perf_counter() - start
print(sum(result.get_counts().values()), took)
"""

STIM = """
import sys, time
import stim
n = sum(1 for line in open(sys.argv[1]) if line.startswith("cx ")) + 1
c = stim.Circuit()
c.append("H", [0])
for i in range(n - 1):
    c.append("CX", [i, i + 1])
c.append("M", range(n))
start = time.perf_counter()
got = c.compile_sampler(seed=1).sample(int(sys.argv[2]), bit_packed=True)
took = time.perf_counter() - start
print(len(got), took)
"""

#: The profile of ``noisy-20``: about 0.5 logical errors a shot (bench_noisy_dense's).
NOISY_PROFILE = "logical:surface_code(d=3)"
#: The small noisy cases (issue 62 item 4): qubits, and the depolarizing physical rate
#: that raises the profile's logical errors to 0.3-3 a shot (None: the qubit's own).
NOISY_SMALL: dict[str, tuple[int, float | None]] = {
    "noisy-8-1.8": (8, 3e-3),
    "noisy-10-1.0": (10, 2e-3),
    "noisy-12-2.7": (12, 3e-3),
    "noisy-16-0.4": (16, None),
}


def _cases() -> dict[str, tuple[str, int, dict[str, list[str]]]]:
    """name -> (QASM text, shots, label -> argv after the interpreter or qmk).

    ``{file}`` is the QASM file, ``{shots}`` the shots, ``{peer}`` the file a peer
    reads where it is not the QASM (``noisy-20``'s pickle)."""
    qmk = [sys.executable, "-m", "qmk", "run", "{file}", "--shots", "{shots}", "--seed", "1"]
    py = [sys.executable, "-c"]
    dense = {
        "qmk": [*qmk, "--json"],
        "qmk statevector single": [
            *qmk,
            "--engine",
            "statevector",
            "--precision",
            "single",
            "--json",
        ],
        "qsim": [*py, QSIM, "{file}", "{shots}"],
        "aer statevector": [*py, AER.format(method="statevector"), "{file}", "{shots}"],
    }
    wide = {
        "qmk": [*qmk, "--no-noise", "--json"],
        "aer mps": [*py, AER.format(method="matrix_product_state"), "{file}", "{shots}"],
    }
    cases = {
        "random-20": (random_qasm(20, 20, seed=7), 1000, dense),
        "random-24": (random_qasm(24, 20, seed=7), 1000, dense),
        "qft-20": (qft_qasm(20), 1000, dense),
        "qv-20": (qv_qasm(20), 1000, dense),
        "qaoa-20": (qaoa_qasm(20), 1000, dense),
        "qft-24": (qft_qasm(24), 1000, dense),
        "random-26": (random_qasm(26, 20, seed=7), 1000, dense),
        "qft-26": (qft_qasm(26), 1000, dense),
        "noisy-20": (
            random_qasm(20, 20, seed=7),
            50,
            {
                "qmk": [*qmk, "--profile", NOISY_PROFILE, "--json"],
                "aer statevector noisy": [
                    *py,
                    AER_NOISY.format(method="statevector"),
                    "{peer}",
                    "{shots}",
                ],
            },
        ),
        **{
            name: (
                random_qasm(n, 20, seed=7),
                1024,
                {
                    "qmk": [*qmk, "--profile", NOISY_PROFILE, *_noise_flag(rate), "--json"],
                    "aer automatic noisy": [
                        *py,
                        AER_NOISY.format(method="automatic"),
                        "{peer}",
                        "{shots}",
                    ],
                },
            )
            for name, (n, rate) in NOISY_SMALL.items()
        },
        "ghz-1000": (
            ghz_qasm(1000),
            100_000,
            {"qmk": [*qmk, "--json"], "stim noiseless": [*py, STIM, "{file}", "{shots}"]},
        ),
        "wide-64": (random_qasm(64, 4, seed=8, two="cx"), 1000, wide),
        "wide-100": (random_qasm(100, 6, seed=8, two="cx"), 1000, wide),
    }
    if gpu_present():  # the GPU engines against qsim's CUDA backend (and the CPU's best)
        gpu = {
            "qmk": [*qmk, "--json"],
            "qmk custatevec single": [
                *qmk,
                "--engine",
                "custatevec",
                "--precision",
                "single",
                "--json",
            ],
            "qmk qsim-gpu": [*qmk, "--engine", "qsim-gpu", "--json"],
            "qsim gpu": [*py, QSIM_GPU, "{file}", "{shots}"],
        }
        cpu = {k: dense[k] for k in ("qmk statevector single", "qsim")}
        for n in (20, 24, 28, 30):
            contenders = {**gpu, **cpu} if n <= 28 else gpu
            cases[f"gpu-random-{n}"] = (random_qasm(n, 20, seed=7), 1000, contenders)
    return cases


def _noise_flag(rate: float | None) -> list[str]:
    """``qmk run``'s flag for a depolarizing physical rate (none for the qubit's own)."""
    return [] if rate is None else ["--noise-model", f"depolarizing(p={rate})"]


def _noisy_peer(path: Path, out: Path, rate: float | None = None) -> None:
    """Write (circuit, noise model) of Aer for the QASM file at ``path`` under
    :data:`NOISY_PROFILE` and a depolarizing physical ``rate`` (None: the qubit's own;
    the channels of QMK's own plan of it) to ``out``."""
    from bench_noisy_dense import aer_circuit
    from qmk.execution import executor
    from qmk.execution.plan import build_plan
    from qmk.frontends import read_program
    from qmk.qec.noise import Depolarizing

    program = executor.load_program(read_program(str(path)))
    plan = build_plan(
        program,
        noise=True,
        qubit=executor.DEFAULT_QUBIT,
        default_profile=NOISY_PROFILE,
        noise_model=None if rate is None else Depolarizing(p=rate),
    )
    n = program.peak_live_qubits
    with out.open("wb") as f:
        pickle.dump(aer_circuit(plan, n), f)


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv``; its wall time and the seconds of its run as it timed it itself."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}): {' '.join(tail)}")
    last = done.stdout.strip().splitlines()[-1]
    if last.startswith("{"):
        return took, float(json.loads(last)["telemetry"]["wall_time_s"])
    return took, float(last.split()[1])


#: The stages ``--stages`` times in a child ``qmk run``: label -> (module, attribute,
#: whether it runs inside the telemetry's window). A method is "Class.method". The
#: engine's modules are patched once the route has imported them.
STAGES = (
    ("read", "qmk.commands.run", "read_source", False),
    ("verify", "qmk.execution.target", "read_qvm", False),
    ("request", "qmk.execution.runs", "build_request", False),
    ("execute", "qmk.execution.executor", "execute", True),
    ("plan", "qmk.execution.executor", "_planned", True),
    ("route", "qmk.execution.executor", "route_plan", True),
    ("engine", "qmk.engines.statevector", "StatevectorEngine.__init__", True),
    ("fusion", "qmk.engines.fusion", "plan", True),
    ("kernel setup", "qmk.engines.simd", "_prepare", True),
    ("kernels", "qmk.engines.simd", "_run", True),
    ("sampling", "qmk.engines.statevector", "StatevectorEngine.sample", True),
    ("counts", "qmk.execution.executor", "keyed_counts", True),
)

#: The child of ``--stages``: ``qmk run`` argv after ``run`` as JSON in argv[1]; prints
#: the CPU seconds of the whole command (interpreter start excluded: it counts from
#: this script's first line), and per stage (each stage's function wrapped as
#: soon as its module is imported, so no import moves out of the stage it is in).
STAGES_CHILD = """
import functools, json, sys, time
first = time.process_time()
stages = json.loads(sys.argv[2])
spent = {label: 0.0 for label, *_ in stages}
started = {}
def wrap(label, module, attribute):
    owner = sys.modules[module]
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    inner = None if owner is None else getattr(owner, name, None)
    if inner is None:  # the module is still being imported
        return False
    @functools.wraps(inner)
    def timed(*args, **kwargs):
        started.setdefault(label, time.process_time())
        begin = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - begin
    setattr(owner, name, timed)
    return True
done = set()
def late():
    for label, module, attribute, _ in stages:
        if label not in done and module in sys.modules and wrap(label, module, attribute):
            done.add(label)
import importlib.abc
class Finder(importlib.abc.MetaPathFinder):  # wraps a stage once its module is imported
    def find_spec(self, name, path, target=None):
        if name not in {module for _, module, _, _ in stages} or name in sys.modules:
            return None
        for finder in sys.meta_path[1:]:
            spec = getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None:
                run = spec.loader.exec_module
                def exec_module(module, run=run):
                    run(module)
                    late()
                spec.loader.exec_module = exec_module
                return spec
        return None
sys.meta_path.insert(0, Finder())
import contextlib, os, runpy
sys.argv = ["qmk", "run", *json.loads(sys.argv[1])]
with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
    try:  # as python -m qmk runs it
        runpy.run_module("qmk", run_name="__main__")
    except SystemExit as exit:
        status = exit.code
print(json.dumps({"status": status, "stages": spent,
                  "total": time.process_time() - first}))
"""


def _stages(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """CPU seconds per stage of a fresh ``qmk run`` of ``argv`` (after ``run``)."""
    stages = [list(stage) for stage in STAGES]
    done = subprocess.run(
        [sys.executable, "-c", STAGES_CHILD, json.dumps(argv), json.dumps(stages)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stages of {argv[:1]} failed: {done.stderr.strip()[-300:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if got["status"]:
        raise RuntimeError(f"qmk run {argv[:1]} exited {got['status']}: {done.stderr.strip()}")
    spent: dict[str, float] = got["stages"]
    # the stages inside the window do not nest in one another: the rest is theirs
    inner = [label for label, _, _, window in STAGES if window and label != "execute"]
    outer = ("read", "verify", "request", "execute")
    return {
        "imports, options, output": float(got["total"]) - sum(spent[label] for label in outer),
        **spent,
        "execute, other": spent["execute"] - sum(spent[label] for label in inner),
    }


def main(argv: list[str] | None = None) -> int:
    cases = _cases()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(cases), choices=list(cases))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stages", action="store_true", help="also QMK's CPU per stage")
    parser.add_argument(
        "--skip", nargs="+", default=[], help="contenders to leave out (e.g. 'aer statevector')"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads of every contender ($QMK_THREADS, $OMP_NUM_THREADS, qsim's cpu_threads)",
    )
    parser.add_argument("--out", default=str(RESULTS / "cli.json"))
    args = parser.parse_args(argv)
    info = machine(**installed("qsimcirq", "qiskit-aer", "stim", "cirq-core"))
    note = f"fresh processes, {args.threads} threads each, interleaved rounds; ratios QMK / peer"
    print(describe(info, note))
    # bytecode cached, as a pip install leaves every package (the warm-up writes QMK's)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["OMP_NUM_THREADS"] = env["QMK_THREADS"] = str(args.threads)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            text, shots, contenders = cases[name]
            path = Path(tmp) / f"{name}.qasm"
            path.write_text(text)
            peer = Path(tmp) / f"{name}.pickle"
            if any("{peer}" in a for cmd in contenders.values() for a in cmd):
                _noisy_peer(path, peer, NOISY_SMALL.get(name, (0, None))[1])
            commands = {
                label: [
                    a.replace("{file}", str(path))
                    .replace("{shots}", str(shots))
                    .replace("{peer}", str(peer))
                    for a in cmd
                ]
                for label, cmd in contenders.items()
                if label not in args.skip
            }
            for cmd in commands.values():  # warm the disk caches and compile caches once
                _once(cmd, env)
            times: dict[str, list[float]] = {label: [] for label in commands}
            runs: dict[str, list[float]] = {label: [] for label in commands}
            stages: dict[str, list[dict[str, float]]] = {}
            loads = []
            for round_ in range(args.rounds):
                # every other round in reverse: a process that starts after a
                # memory-hungry one pays the OS's compaction of its huge pages (up to
                # 3.5 s of a 26-qubit run after Aer's), so no contender always follows
                # the same one
                order = list(commands.items())
                for label, cmd in order if round_ % 2 == 0 else reversed(order):
                    took, run = _once(cmd, env)
                    times[label].append(took)
                    runs[label].append(run)
                if args.stages:
                    for label, cmd in commands.items():
                        if label.startswith("qmk"):
                            after = cmd[cmd.index("run") + 1 :]
                            stages.setdefault(label, []).append(_stages(after, env))
                loads.append(load_averages()[0])
            row = _row(name, shots, times, runs, loads, stages)
            rows.append(row)
            _print(row)
    write_json({"machine": info, "threads": args.threads, "rows": rows}, args.out)
    return 0


def _ratios(figures: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    least = {label: min(ts) for label, ts in figures.items()}
    median = {label: statistics.median(ts) for label, ts in figures.items()}
    ours = [label for label in figures if label.startswith("qmk")]
    peers = [label for label in figures if not label.startswith("qmk")]
    return {
        f"{a} / {b}": {"min": least[a] / least[b], "median": median[a] / median[b]}
        for a in ours
        for b in peers
    }


def _row(
    name: str,
    shots: int,
    times: dict[str, list[float]],
    runs: dict[str, list[float]],
    loads: list[float],
    stages: dict[str, list[dict[str, float]]],
) -> dict[str, Any]:
    return {
        "case": name,
        "shots": shots,
        "seconds": times,
        "run_seconds": runs,
        "min_s": {label: min(ts) for label, ts in times.items()},
        "median_s": {label: statistics.median(ts) for label, ts in times.items()},
        "run_min_s": {label: min(ts) for label, ts in runs.items()},
        "run_median_s": {label: statistics.median(ts) for label, ts in runs.items()},
        "ratios": _ratios(times),
        "run_ratios": _ratios(runs),
        "stages_cpu_min_s": {
            label: {stage: min(r[stage] for r in rounds) for stage in rounds[0]}
            for label, rounds in stages.items()
        },
        "load_average": loads,
    }


def _print(row: dict[str, Any]) -> None:
    loads = row["load_average"]
    print(
        f"\n{row['case']} ({row['shots']} shots; load {min(loads):.1f}-{max(loads):.1f})"
        f"{'':4}process min / median       run min / median"
    )
    for label in row["seconds"]:
        print(
            f"  {label:<26} {row['min_s'][label]:7.3f} s {row['median_s'][label]:7.3f} s"
            f"   {row['run_min_s'][label]:7.3f} s {row['run_median_s'][label]:7.3f} s"
        )
    for pair, ratio in row["ratios"].items():
        run = row["run_ratios"][pair]
        print(
            f"  {pair:<42} process {ratio['min']:5.2f}x / {ratio['median']:5.2f}x"
            f"   run {run['min']:5.2f}x / {run['median']:5.2f}x"
        )
    for label, stages in row["stages_cpu_min_s"].items():
        shown = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in stages.items())
        print(f"  {label} CPU ms (least): {shown}")


if __name__ == "__main__":
    sys.exit(main())
