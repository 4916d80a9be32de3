"""Benchmark: large random Clifford circuits against stim's compiled sampler (issue 62, item 2).

Goal: random Clifford circuits of 200, 500 and 1,000 qubits, depth 100, run within 2x of
stim's ``compile_sampler().sample`` at 1,000 and 100,000 shots. A layer is a one-qubit
Clifford drawn from H, S, SDG, X, Y, Z on every qubit, then a CX on each pair of a random
pairing of all the qubits (long range); every qubit is measured at the end
(``qmk.kernel.machine.programs.random_clifford``, seed 62). Not a test: nothing here
fails on a timing.

Two measures, QMK against stim on the same circuit:

QMK reads the circuit as ``qmk run`` reads a flat file: in bulk as columns
(:mod:`qmk.frontends.qasm_bulk`), verified on them; a circuit the bulk reader would
leave to the statement reader stops the benchmark with the reason.

- **in one process**, in interleaved rounds (a change of machine load hits both alike):
  QMK's telemetry time (``wall_time_s`` of ``executor.execute``: plan, route, lowering,
  compiling to stim, sampling) and the whole call (its counts included), with logical
  noise off (``noise=False``: the same circuit as stim's) and on (the default: errors
  drawn by QMK and XORed in as flip masks), against
  ``circuit.compile_sampler(seed=...).sample(shots, bit_packed=True)`` on a stim circuit
  built beforehand. Each round reads and verifies the program afresh, outside the
  timing, so that no round finds the plan or the compiled circuit of the one before;
- **fresh processes** (``--fresh``), in interleaved rounds: ``python -m qmk run FILE.qasm
  --shots S --seed 1 --no-noise`` (its text output, whose counts it summarizes) against
  a Python process that imports stim, reads the same QASM file into a stim circuit and
  samples it bit-packed: each process's wall time, and each tool's own time for its run
  (QMK's telemetry; stim's compile and sample).

``--stages`` adds where QMK's CPU goes in one process, noise off and on: reading the
QASM text, verifying, the run request (with its program digest, which ``qmk run``
leaves out), then inside the telemetry's
window the plan, the router's workload and choice, the lowering, the compile to stim,
the sampling, and the counts after it (least CPU time of the rounds).

``--floor`` measures what any run of the program in its present form must cost, against
the goal (least CPU time of the rounds): stim's compile and sample, which QMK's run pays
too; stim's parse of the circuit's text, the least that hands stim a circuit; and the
least Python pass over the verified program's columns (the rows' qubits as lists, each
row's qubits read); and the plan's own ASAP schedule (:mod:`qmk.execution.asap`: each
row ends a cycle after its qubits' latest clock, compiled where LLVM builds it), which
the plan's timing needs.
Their sum, with no routing and no lowering at all, is the floor of QMK's telemetry
time for the column form.

The in-process rounds run in a process set up as a ``qmk`` command's
(``qmk.cli.prepare_process``: the collector's thresholds, NumPy's huge pages, the C
heap's thresholds), as ``qmk run`` and the fresh rounds are.

The table shows minima and medians, the ratios QMK / stim of both, and the load
averages of the rounds; ``bench/results/clifford.json`` holds every time.

    python bench/bench_clifford.py [--sizes 200 500 1000] [--shots 1000 100000]
        [--rounds 3] [--fresh] [--stages] [--floor]
"""

from __future__ import annotations

if __name__ == "__main__":  # as the qmk command's own entry does, before NumPy's import
    import qmk.cli

    qmk.cli.prepare_process()

import argparse
import functools
import importlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import stim

import qmk.frontends.qasm_bulk as qasm_bulk
import qmk.qvm.columns as column_form
from _common import (
    RESULTS,
    describe,
    installed,
    load_averages,
    machine,
    timed,
    timed_group,
    write_json,
)
from qmk.execution import asap, executor
from qmk.execution import runs as run_paths
from qmk.kernel.machine.programs import random_clifford

DEPTH = 100
SEED = 62

#: OpenQASM 2 gate -> stim's name, for the stim side of the comparison.
STIM_NAMES = {"h": "H", "s": "S", "sdg": "S_DAG", "x": "X", "y": "Y", "z": "Z", "cx": "CX"}

#: The stim peer of ``--fresh``: reads the QASM file (argv[1]) into a stim circuit,
#: samples argv[2] shots bit-packed, prints the shots it got and the seconds of its
#: compile and sample.
STIM_PEER = """
import re, sys, time
import stim
names = {"h": "H", "s": "S", "sdg": "S_DAG", "x": "X", "y": "Y", "z": "Z", "cx": "CX"}
lines, n = [], 0
for line in open(sys.argv[1]):
    head, _, rest = line.partition(" ")
    if head in names:
        lines.append(names[head] + " " + " ".join(re.findall(r"\\[(\\d+)\\]", rest)))
    elif head == "qreg":
        n = int(re.findall(r"\\[(\\d+)\\]", rest)[0])
lines.append("M " + " ".join(map(str, range(n))))
circuit = stim.Circuit("\\n".join(lines))
start = time.perf_counter()
got = circuit.compile_sampler(seed=1).sample(int(sys.argv[2]), bit_packed=True)
print(len(got), time.perf_counter() - start)
"""

#: The telemetry time in ``qmk run``'s text output.
TELEMETRY = re.compile(r"simulations?, ([0-9.]+) s")


def stim_circuit(text: str) -> stim.Circuit:
    """The QASM text's gates and terminal measurements as a stim circuit."""
    lines, n = [], 0
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        if head in STIM_NAMES:
            lines.append(f"{STIM_NAMES[head]} {' '.join(re.findall(r'[0-9]+', rest))}")
        elif head == "qreg":
            n = int(re.findall(r"[0-9]+", rest)[0])
    lines.append("M " + " ".join(map(str, range(n))))
    return stim.Circuit("\n".join(lines))


def read_columns(text: str) -> Any:
    """The flat QASM text as ``qmk run`` reads it: in bulk as columns
    (:mod:`qmk.frontends.qasm_bulk`) and verified on them. A text the bulk reader leaves
    to the statement reader stops the benchmark, with its reason (no silent fallback)."""
    columns = qasm_bulk.read_flat(text, "clifford.qasm")
    if isinstance(columns, qasm_bulk.Routed):
        raise SystemExit(f"the bulk reader routes the circuit: {columns.reason}")
    program = column_form.verified(columns)
    if program is None:
        raise SystemExit("the columns' checks find a fault the verifier would name")
    return program


def in_process(text: str, shots: int, rounds: int) -> dict[str, Any]:
    """QMK (noise off and on) and stim in one process, interleaved rounds."""
    circuit = stim_circuit(text)
    fresh: dict[str, Any] = {}
    telemetry: dict[str, list[float]] = {"qmk noise off": [], "qmk noise on": []}

    def reset() -> None:  # a program read and verified afresh: no plan kept from before
        fresh["program"] = read_columns(text)

    def qmk_run(noise: bool) -> Callable[[], Any]:
        label = f"qmk noise {'on' if noise else 'off'}"

        def go() -> Any:
            program = fresh["program"]
            request = run_paths.build_request(program, shots=shots, seed=1, noise=noise)
            result = executor.execute(program, request)
            telemetry[label].append(result.telemetry.wall_time_s)
            return result.shots

        return go

    runs = {
        "qmk noise off": qmk_run(False),
        "qmk noise on": qmk_run(True),
        "stim": lambda: circuit.compile_sampler(seed=1).sample(shots, bit_packed=True),
    }
    reset()
    for go in runs.values():  # a warm-up: imports, stim's first compile
        go()
    for series in telemetry.values():
        series.clear()
    got = timed_group(runs, rounds, warmup=0, reset=reset)
    stim_times = [got["stim"].min_s, got["stim"].median_s]
    out: dict[str, Any] = {
        "whole call": {label: got[label].figures() for label in runs},
        "telemetry": {
            label: {"min_s": min(ts), "median_s": statistics.median(ts)}
            for label, ts in telemetry.items()
        },
    }
    out["ratios"] = {
        f"{label} {kind} / stim": {
            "min": out[kind][label]["min_s"] / stim_times[0],
            "median": out[kind][label]["median_s"] / stim_times[1],
        }
        for kind in ("telemetry", "whole call")
        for label in telemetry
    }
    return out


def _fresh_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv``: its wall time and its own run time (QMK's telemetry, stim's call)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    found = TELEMETRY.search(done.stdout)
    if found is not None:
        return took, float(found.group(1))
    return took, float(done.stdout.strip().splitlines()[-1].split()[1])


def fresh_processes(path: Path, shots: int, rounds: int) -> dict[str, Any]:
    """``qmk run`` against the stim peer, as fresh processes in interleaved rounds."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    commands = {
        "qmk run --no-noise": [
            sys.executable,
            *("-m", "qmk", "run", str(path), "--shots", str(shots), "--seed", "1"),
            "--no-noise",
        ],
        "stim": [sys.executable, "-c", STIM_PEER, str(path), str(shots)],
    }
    for argv in commands.values():  # warm the disk and bytecode caches
        _fresh_once(argv, env)
    wall: dict[str, list[float]] = {label: [] for label in commands}
    own: dict[str, list[float]] = {label: [] for label in commands}
    for round_ in range(rounds):
        order = list(commands.items())
        for label, argv in order if round_ % 2 == 0 else reversed(order):
            took, run = _fresh_once(argv, env)
            wall[label].append(took)
            own[label].append(run)
    figures = {
        kind: {
            label: {"min_s": min(ts), "median_s": statistics.median(ts)}
            for label, ts in series.items()
        }
        for kind, series in (("process", wall), ("run", own))
    }
    figures["ratios"] = {
        f"qmk / stim {kind}": {
            "min": figures[kind]["qmk run --no-noise"]["min_s"] / figures[kind]["stim"]["min_s"],
            "median": figures[kind]["qmk run --no-noise"]["median_s"]
            / figures[kind]["stim"]["median_s"],
        }
        for kind in ("process", "run")
    }
    return figures


#: The stages ``--stages`` times: label -> (module, attribute). Those after ``execute``
#: run inside it, one after another.
STAGES = (
    ("read QASM", "qmk.frontends.qasm_bulk", "read_flat"),
    ("verify", "qmk.qvm.columns", "verified"),
    ("request (digest)", "qmk.execution.runs", "build_request"),
    ("execute", "qmk.execution.executor", "execute"),
    ("plan", "qmk.execution.executor", "_planned"),
    ("route (workload)", "qmk.execution.executor", "route_plan"),
    ("lower", "qmk.execution.batch", "lower"),
    ("compile to stim", "qmk.engines.stim_batch", "compile_batch"),
    ("sample", "qmk.execution.batch", "sample_chunked"),
    ("counts", "qmk.execution.executor", "keyed_counts"),
)


@contextmanager
def _timed_stages(spent: dict[str, float]) -> Iterator[None]:
    """Add each stage's CPU seconds to ``spent`` while the block runs."""
    saved = []
    for label, module_name, name in STAGES:
        module = importlib.import_module(module_name)
        inner = getattr(module, name)

        def wrapped(*args: Any, inner: Any = inner, label: str = label, **kwargs: Any) -> Any:
            begin = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - begin

        functools.update_wrapper(wrapped, inner)
        saved.append((module, name, inner))
        setattr(module, name, wrapped)
    try:
        yield
    finally:
        for module, name, inner in saved:
            setattr(module, name, inner)


def stages(text: str, shots: int, rounds: int, *, noise: bool) -> dict[str, float]:
    """QMK's least CPU seconds per stage of a run, logical noise ``noise`` (``execute,
    other``: the rest of the telemetry's window)."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        spent: dict[str, float] = {}
        with _timed_stages(spent):
            program = read_columns(text)
            request = run_paths.build_request(program, shots=shots, seed=1, noise=noise)
            executor.execute(program, request)
        inner = ("plan", "route (workload)", "lower", "compile to stim", "sample", "counts")
        spent["execute, other"] = spent["execute"] - sum(spent.get(k, 0.0) for k in inner)
        for label, seconds in spent.items():
            best[label] = min(best.get(label, seconds), seconds)
    return best


def floor(text: str, shots: int, rounds: int) -> dict[str, float]:
    """The least CPU seconds of the parts every run of ``text`` as a verified program
    pays (see ``--floor``), and their sum with stim's (``floor``)."""
    circuit = stim_circuit(text)
    stim_text = str(circuit)
    qubits = read_columns(text).columns.qubits

    def bare_pass() -> None:  # each row's qubits, read off the columns
        seen = [0] * (int(qubits.max()) + 1)
        for a, b, c in zip(*(qubits[:, k].tolist() for k in range(3)), strict=True):
            seen[a] = 1
            if b >= 0:
                seen[b] = 1
                if c >= 0:
                    seen[c] = 1

    def schedule() -> None:  # each row ends a cycle after its qubits' latest clock
        rows = len(qubits)
        timing = (array("d", bytes(8 * rows)), array("d", bytes(8 * rows)))
        clock = [0.0] * (int(qubits.max()) + 1)
        asap.schedule(clock, qubits, np.ones(rows), timing, 0, 0.0, 0.0)

    out = {
        "stim compile and sample": timed(
            lambda: circuit.compile_sampler(seed=1).sample(shots, bit_packed=True), rounds
        ).cpu_min_s,
        "stim parse": timed(lambda: stim.Circuit(stim_text), rounds).cpu_min_s,
        "bare row pass": timed(bare_pass, rounds).cpu_min_s,
        "ASAP schedule": timed(schedule, rounds).cpu_min_s,
    }
    out["floor"] = out["stim compile and sample"] + out["stim parse"] + out["ASAP schedule"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--shots", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="also fresh processes")
    parser.add_argument("--stages", action="store_true", help="also QMK's CPU per stage")
    parser.add_argument("--floor", action="store_true", help="also the floor of any run")
    parser.add_argument("--out", default=str(RESULTS / "clifford.json"))
    args = parser.parse_args(argv)
    info = machine(stim=stim.__version__, **installed("numpy"))
    print(describe(info, f"random Clifford depth {DEPTH}; interleaved rounds; QMK / stim"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            text = random_clifford(n, DEPTH, seed=SEED)
            path = Path(tmp) / f"clifford-{n}.qasm"
            path.write_text(text, encoding="utf-8")
            for shots in args.shots:
                loads = [load_averages()[0]]
                row: dict[str, Any] = {"qubits": n, "depth": DEPTH, "shots": shots}
                row["in_process"] = in_process(text, shots, args.rounds)
                loads.append(load_averages()[0])
                if args.fresh:
                    row["fresh"] = fresh_processes(path, shots, args.rounds)
                    loads.append(load_averages()[0])
                if args.stages:
                    for noise in (False, True):
                        key = "stages_cpu_s" + ("_noise_on" if noise else "")
                        row[key] = stages(text, shots, args.rounds, noise=noise)
                if args.floor:
                    row["floor_cpu_s"] = floor(text, shots, args.rounds)
                row["load_average"] = loads
                rows.append(row)
                _print(row)
    write_json({"machine": info, "rounds": args.rounds, "rows": rows}, args.out)
    return 0


def _print(row: dict[str, Any]) -> None:
    loads = row["load_average"]
    print(
        f"\n{row['qubits']} qubits, depth {row['depth']}, {row['shots']} shots "
        f"(load {min(loads):.1f}-{max(loads):.1f})            min / median"
    )
    inside = row["in_process"]
    for kind in ("whole call", "telemetry"):
        for label, figures in inside[kind].items():
            name = f"{label} ({kind})"
            print(f"  {name:<34} {figures['min_s']:8.4f} s {figures['median_s']:8.4f} s")
    for pair, ratio in inside["ratios"].items():
        print(f"  {pair:<50} {ratio['min']:7.2f}x / {ratio['median']:6.2f}x")
    fresh = row.get("fresh")
    if fresh is not None:
        for kind in ("process", "run"):
            for label, figures in fresh[kind].items():
                print(
                    f"  fresh {label + ' ' + kind:<28} "
                    f"{figures['min_s']:8.4f} s {figures['median_s']:8.4f} s"
                )
        for pair, ratio in fresh["ratios"].items():
            print(f"  fresh {pair:<44} {ratio['min']:7.2f}x / {ratio['median']:6.2f}x")
    for key, noise in (("stages_cpu_s", "off"), ("stages_cpu_s_noise_on", "on")):
        if key in row:
            shown = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in row[key].items())
            print(f"  QMK CPU ms (least), noise {noise}: {shown}")
    if "floor_cpu_s" in row:
        least = row["floor_cpu_s"]
        shown = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in least.items() if k != "floor")
        ratio = least["floor"] / least["stim compile and sample"]
        print(f"  floor CPU ms (least): {shown}")
        total = least["floor"] * 1e3
        print(f"  floor (stim + parse + schedule) {total:.1f} ms = {ratio:.2f}x stim")


if __name__ == "__main__":
    sys.exit(main())
