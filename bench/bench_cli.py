"""Benchmark: what a user meets, a fresh ``qmk run`` process against the peers' own (issue 28).

Each case writes one program as an OpenQASM 2 file and times, as whole processes
(interpreter start, imports, reading the file, compiles and conversions included), the
``qmk run FILE`` command a user types against a Python process running the peer on the
same circuit, with bytecode cached as a pip install leaves it. Contenders run in
interleaved rounds (a change of machine load hits them alike), every other round in
reverse order (a process that follows a memory-hungry one pays for the memory the OS
must compact into huge pages for it); the table shows each
one's least and median wall time and the ratios QMK/peer of both.
``bench/results/cli.json`` holds every time, the load averages and versions.

Cases (seeded; the peers read the same QASM file, except where said):

- ``random-N`` (N = 20, 24, 26): N qubits, 20 layers of a random U3 (RZ RY RZ) on every qubit
  and a CZ brickwork, every qubit measured, 1000 shots. QMK's default route (``qmk run
  FILE``) and its native engine in single precision (``--engine statevector
  --precision single``) against qsim (``qsimcirq``, 2 threads, fusion 4; the circuit
  built in cirq from the same gate list: cirq's QASM reader needs ``ply``) and Aer's
  statevector (``qiskit.qasm2.load`` and ``AerSimulator``);
- ``qft-N`` (N = 20, 24, 26): a layer of RY, then the QFT (controlled phases and H), 1000
  shots, against the same peers (the circuits are ``bench_router.py``'s);
- ``ghz-1000``: GHZ on 1000 qubits, 100,000 shots; QMK with its logical noise on (the
  default) against stim's noiseless compiled sampler (the circuit built in stim);
- ``wide-64``: 64 qubits, 4 layers (random U3 and a CX brickwork), 1000 shots: QMK's
  default route against Aer's ``matrix_product_state`` method.

Not a test: nothing here fails on a timing.

    python bench/bench_cli.py [--cases random-20 ghz-1000] [--rounds 3]
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

from _common import RESULTS, describe, installed, load_averages, machine, write_json
from bench_router import ghz_qasm, qft_qasm, random_qasm

#: The peers, as Python programs run with ``python -c`` and the QASM path as argv[1],
#: the shots as argv[2]. Each reads the file (or builds the circuit from its gate lines),
#: samples, and prints the number of shots it got (so nothing is left undone).
QSIM = """
import re, sys
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
sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=2, max_fused_gate_size=4))
print(len(sim.run(cirq.Circuit(ops), repetitions=int(sys.argv[2])).measurements["m"]))
"""

AER = """
import sys
import qiskit.qasm2
from qiskit_aer import AerSimulator
circuit = qiskit.qasm2.load(sys.argv[1])
sim = AerSimulator(method="{method}")
result = sim.run(circuit, shots=int(sys.argv[2]), seed_simulator=1).result()
print(sum(result.get_counts().values()))
"""

STIM = """
import sys
import stim
n = sum(1 for line in open(sys.argv[1]) if line.startswith("cx ")) + 1
c = stim.Circuit()
c.append("H", [0])
for i in range(n - 1):
    c.append("CX", [i, i + 1])
c.append("M", range(n))
print(len(c.compile_sampler(seed=1).sample(int(sys.argv[2]), bit_packed=True)))
"""


def _cases() -> dict[str, tuple[str, int, dict[str, list[str]]]]:
    """name -> (QASM text, shots, label -> argv after the interpreter or qmk)."""
    qmk = [sys.executable, "-m", "qmk", "run"]
    py = [sys.executable, "-c"]
    dense = {
        "qmk": [*qmk, "{file}", "--shots", "{shots}", "--seed", "1", "--json"],
        "qmk statevector single": [
            *qmk,
            "{file}",
            "--shots",
            "{shots}",
            "--seed",
            "1",
            "--engine",
            "statevector",
            "--precision",
            "single",
            "--json",
        ],
        "qsim": [*py, QSIM, "{file}", "{shots}"],
        "aer statevector": [*py, AER.format(method="statevector"), "{file}", "{shots}"],
    }
    return {
        "random-20": (random_qasm(20, 20, seed=7), 1000, dense),
        "random-24": (random_qasm(24, 20, seed=7), 1000, dense),
        "qft-20": (qft_qasm(20), 1000, dense),
        "qft-24": (qft_qasm(24), 1000, dense),
        "random-26": (random_qasm(26, 20, seed=7), 1000, dense),
        "qft-26": (qft_qasm(26), 1000, dense),
        "ghz-1000": (
            ghz_qasm(1000),
            100_000,
            {
                "qmk": [*qmk, "{file}", "--shots", "{shots}", "--seed", "1", "--json"],
                "stim noiseless": [*py, STIM, "{file}", "{shots}"],
            },
        ),
        "wide-64": (
            random_qasm(64, 4, seed=8, two="cx"),
            1000,
            {
                "qmk": [*qmk, "{file}", "--shots", "{shots}", "--seed", "1", "--json"],
                "aer mps": [*py, AER.format(method="matrix_product_state"), "{file}", "{shots}"],
            },
        ),
    }


def _once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}): {' '.join(tail)}")
    return took


def main(argv: list[str] | None = None) -> int:
    cases = _cases()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(cases), choices=list(cases))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "cli.json"))
    args = parser.parse_args(argv)
    info = machine(**installed("qsimcirq", "qiskit-aer", "stim", "cirq-core"))
    print(describe(info, "fresh processes, interleaved rounds; ratios QMK / peer"))
    # bytecode cached, as a pip install leaves every package (the warm-up writes QMK's)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["OMP_NUM_THREADS"] = "2"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            text, shots, contenders = cases[name]
            path = Path(tmp) / f"{name}.qasm"
            path.write_text(text)
            commands = {
                label: [a.replace("{file}", str(path)).replace("{shots}", str(shots)) for a in cmd]
                for label, cmd in contenders.items()
            }
            for cmd in commands.values():  # warm the disk caches and compile caches once
                _once(cmd, env)
            times: dict[str, list[float]] = {label: [] for label in commands}
            loads = []
            for round_ in range(args.rounds):
                # every other round in reverse: a process that starts after a
                # memory-hungry one pays the OS's compaction of its huge pages (up to
                # 3.5 s of a 26-qubit run after Aer's), so no contender always follows
                # the same one
                order = list(commands.items())
                for label, cmd in order if round_ % 2 == 0 else reversed(order):
                    times[label].append(_once(cmd, env))
                loads.append(load_averages()[0])
            row = _row(name, shots, times, loads)
            rows.append(row)
            _print(row)
    write_json({"machine": info, "rows": rows}, args.out)
    return 0


def _row(
    name: str, shots: int, times: dict[str, list[float]], loads: list[float]
) -> dict[str, Any]:
    least = {label: min(ts) for label, ts in times.items()}
    median = {label: statistics.median(ts) for label, ts in times.items()}
    ours = [label for label in times if label.startswith("qmk")]
    peers = [label for label in times if not label.startswith("qmk")]
    ratios = {
        f"{a} / {b}": {"min": least[a] / least[b], "median": median[a] / median[b]}
        for a in ours
        for b in peers
    }
    return {
        "case": name,
        "shots": shots,
        "seconds": times,
        "min_s": least,
        "median_s": median,
        "ratios": ratios,
        "load_average": loads,
    }


def _print(row: dict[str, Any]) -> None:
    print(f"\n{row['case']} ({row['shots']} shots; load {max(row['load_average']):.1f})")
    for label in row["seconds"]:
        least, median = row["min_s"][label], row["median_s"][label]
        print(f"  {label:<26} min {least:7.2f} s   median {median:7.2f} s")
    for pair, ratio in row["ratios"].items():
        print(f"  {pair:<42} {ratio['min']:5.2f}x (min)  {ratio['median']:5.2f}x (median)")


if __name__ == "__main__":
    sys.exit(main())
