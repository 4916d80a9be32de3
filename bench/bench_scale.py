"""Benchmark: programs of fault-tolerant size written as loops, QMK beside the Q# resource
estimator (issue 76).

An OpenQASM 3 loop of ``t q[0]; cx q[0], q[1];`` at each of ``--turns`` turns (default
10^5 and 10^7) is written to a file, and fresh processes, as a user meets them, run:

- ``qmk validate FILE`` and ``qmk estimate --json FILE`` (QMK reads the loop folded, as
  one REPEAT row, and counts it by multiplication);
- the peer: a Python process that runs ``qsharp.estimate`` of the same loop written in
  Q# (``for _ in 1..N { T(q[0]); CNOT(q[0], q[1]); }``, then both qubits measured, as
  the OpenQASM file measures them), where the ``qsharp`` package
  is importable (else the peer is skipped with the reason printed).

Each contender's wall time (least and median over ``--rounds`` interleaved rounds) and
peak RSS (``ru_maxrss`` of the process, from ``wait4``) are printed with the ratios
QMK/peer; the T counts of both are checked against N, and the physical qubits and
runtime of the two estimates are printed side by side. A 10^12-T program (two nested
loops of 10^6 turns, and 10^11 turns of ``cx`` around 10 turns of ``t`` on one qubit) is
estimated by QMK alone (the peer traces every operation).
stim's documented REPEAT example (``stim.Circuit.generated("surface_code:rotated_memory_x",
distance=3, rounds=10**7)``) is written to a ``.stim`` file: ``qmk validate FILE.stim``
(read as a folded QVM program and verified) beside a fresh process that parses it with
stim (``stim.Circuit(open(F).read())``).
``bench/results/scale.json`` holds every figure (``scale_flat.json`` for a run of
flat files alone, ``--turns`` given no counts). Not a test: nothing here fails on a
timing.

Flat files (``--flat-gates``, default 10^6): a seeded OpenQASM 2 file of that many
gates on 100 qubits (half ``cx``, the rest ``h t tdg x s sdg`` and a tenth ``rz`` by
literal angles), then ``measure q -> c``. ``qmk validate FILE`` (read in bulk as
columns, :mod:`qmk.frontends.qasm_bulk`) runs beside a fresh process that runs
Qiskit's ``qiskit.qasm2.load`` of the same file (where Qiskit is importable), with
peak RSS in bytes a gate and the ratio QMK/Qiskit. With ``--clifford-run``, the file's
Clifford version (``h s sdg x y z`` for the one-qubit gates, no ``rz``) at 1000 shots:
the whole ``qmk run`` process beside a fresh stim process that
reads the same circuit as stim text, compiles its sampler and samples 1000 shots;
``--stages`` adds the CPU seconds of each stage of that ``qmk run`` (least of the
rounds, fresh processes: :data:`STAGES_RUN`).

    python bench/bench_scale.py [--turns 100000 10000000] [--rounds 3] [--no-peer]
                                [--flat-gates 1000000] [--clifford-run] [--stages]
                                [--only-stim]
    python bench/bench_scale.py --turns --flat-gates 1000000 --clifford-run  # flat only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from _common import RESULTS, describe, installed, load_averages, machine, write_json

HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'

#: The peer's process: the Q# loop of N turns, estimated; its own call timed.
QSHARP = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import qsharp
turns = int(sys.argv[1])
qsharp.eval(
    "operation Loop() : Unit { use q = Qubit[2]; "
    "for _ in 1..%d { T(q[0]); CNOT(q[0], q[1]); } let r = MResetEachZ(q); }" % turns
)
start = time.perf_counter()
result = qsharp.estimate("Loop()")
call = time.perf_counter() - start
physical = result["physicalCounts"]
print(json.dumps({
    "call_s": call,
    "tCount": result["logicalCounts"]["tCount"],
    "physicalQubits": physical["physicalQubits"],
    "runtime_ns": physical["runtime"],
}))
"""


#: The peer of a flat file: Qiskit's OpenQASM 2 reader, in a fresh process.
QISKIT_LOAD = "import sys, qiskit.qasm2; qiskit.qasm2.load(sys.argv[1])"
#: The peer of a Clifford run: stim reads the circuit, compiles its sampler and samples.
STIM_SAMPLE = (
    "import sys, stim; c = stim.Circuit(open(sys.argv[1]).read()); "
    "c.compile_sampler(seed=1).sample(int(sys.argv[2]))"
)
FLAT_QUBITS = 100

#: ``--stages``: a fresh process that runs ``qmk run`` in-process (``qmk.cli.main``) with
#: the CPU seconds of each stage of the run added up, printed as JSON: the reading, the
#: verification, the run request, the plan, the route, the lowering, the compile to stim
#: and the sampling (their lazy imports included), the whole command and the process (and
#: of it the system's CPU: page faults, mostly).
STAGES_RUN = """
import functools, importlib, json, resource, sys, time
import qmk.cli
qmk.cli.prepare_process()  # (as the qmk command's own entry does)
spent = {}
for label, module, name in (
    ("read", "qmk.commands.run", "read_flat_source"),
    ("verify", "qmk.qvm.columns", "verified"),
    ("request", "qmk.execution.runs", "build_request"),
    ("plan", "qmk.execution.executor", "_planned"),
    ("route", "qmk.execution.executor", "route_plan"),
    ("lower", "qmk.execution.batch", "lower"),
    ("compile", "qmk.engines.stim_batch", "compile_batch"),
    ("sample", "qmk.execution.batch", "sample_chunked"),
    ("command", "qmk.commands.run", "_cmd_run"),
):
    owner = importlib.import_module(module)
    def timed(*a, inner=getattr(owner, name), label=label, **k):
        begin = time.process_time()
        try:
            return inner(*a, **k)
        finally:
            spent[label] = spent.get(label, 0.0) + time.process_time() - begin
    setattr(owner, name, functools.update_wrapper(timed, getattr(owner, name)))
qmk.cli.main(["run", "--shots", sys.argv[2], "--seed", "1", "--quiet", sys.argv[1]])
spent["process"] = time.process_time()
spent["system"] = resource.getrusage(resource.RUSAGE_SELF).ru_stime
spent["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(spent))
"""


def flat_gates(gates: int, seed: int, clifford: bool) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """The seeded gates of a flat file, one at a time: (name, qubits, angle text or "").
    (Made one at a time: a bench process of a big list would lend its peak RSS to the
    processes it starts, as Linux counts ``ru_maxrss`` across fork and exec.)"""
    rng = random.Random(seed)
    one = ("h", "s", "sdg", "x", "y", "z") if clifford else ("h", "t", "tdg", "x", "s", "sdg")
    for _ in range(gates):
        r = rng.random()
        if r < 0.5:
            yield ("cx", tuple(rng.sample(range(FLAT_QUBITS), 2)), "")
        elif r < 0.9 or clifford:
            yield (rng.choice(one), (rng.randrange(FLAT_QUBITS),), "")
        else:
            angle = rng.choice(("pi/4", "-pi/8", "0.123"))
            yield ("rz", (rng.randrange(FLAT_QUBITS),), angle)


def write_flat_qasm(path: Path, gates: Iterable[tuple[str, tuple[int, ...], str]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{FLAT_QUBITS}];\n')
        out.write(f"creg c[{FLAT_QUBITS}];\n")
        for name, qubits, angle in gates:
            params = f"({angle})" if angle else ""
            out.write(f"{name}{params} {','.join(f'q[{q}]' for q in qubits)};\n")
        out.write("measure q -> c;\n")


def write_flat_stim(path: Path, gates: Iterable[tuple[str, tuple[int, ...], str]]) -> None:
    """The Clifford gates as stim text (``sdg`` is stim's ``S_DAG``), then ``M`` of all."""
    names = {"h": "H", "s": "S", "sdg": "S_DAG", "x": "X", "y": "Y", "z": "Z", "cx": "CX"}
    with path.open("w", encoding="utf-8") as out:
        for name, qubits, _ in gates:
            out.write(f"{names[name]} {' '.join(map(str, qubits))}\n")
        out.write("M " + " ".join(map(str, range(FLAT_QUBITS))) + "\n")


def loop_source(turns: int) -> str:
    return f"{HEAD}for int i in [0:{turns - 1}] {{ t q[0]; cx q[0], q[1]; }}\nc = measure q;\n"


def nested_source(outer: int, inner: int) -> str:
    return (
        f"{HEAD}for int i in [0:{outer - 1}] {{ for int j in [0:{inner - 1}] "
        "{ t q[0]; cx q[0], q[1]; } }\nc = measure q;\n"
    )


def skewed_source(outer: int, inner: int) -> str:
    """An outer body whose inner loop climbs one of its two qubits alone."""
    return (
        f"{HEAD}for int i in [0:{outer - 1}] {{ cx q[0], q[1]; "
        f"for int j in [0:{inner - 1}] {{ t q[1]; }} }}\nc = measure q;\n"
    )


#: The processes' environment: this one's, with Python's bytecode cache on (as a user's
#: installation has it; a host that turns it off would charge every process a compile).
USER_ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measured(argv: list[str]) -> dict[str, Any]:
    """Run ``argv`` as a fresh process: its wall time, CPU time (user and system: what a
    loaded host inflates least), peak RSS (MB), status and stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=USER_ENVIRONMENT
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "sys_s": usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "status": process.returncode,
        "stdout": out,
        "stderr": err[-2000:],
    }


def qmk(*args: str) -> list[str]:
    return [sys.executable, "-m", "qmk", *args]


def figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [run["wall_s"] for run in runs]
    return {
        "min_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_s": min(run["cpu_s"] for run in runs),
        "sys_s": min(run["sys_s"] for run in runs),
        "rss_mb": max(run["rss_mb"] for run in runs),
        "runs": len(runs),
    }


def t_count(name: str, run: dict[str, Any]) -> int | None:
    """The T count a contender's output states (None where it says none)."""
    if run["status"] != 0:
        return None
    if name == "qmk estimate":
        return int(json.loads(run["stdout"])["logicalCounts"]["tCount"])
    if name == "qsharp.estimate":
        return int(json.loads(run["stdout"])["tCount"])
    return None


def interleaved(
    contenders: dict[str, list[str]], rounds: int
) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
    """Each contender's runs, in rounds whose order alternates, and the load after each."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    loads = []
    for round_ in range(rounds):
        order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
        for name in order:
            runs[name].append(measured(contenders[name]))
        loads.append(load_averages()[0])
    return runs, loads


def case(path: Path, turns: int, rounds: int, peer: bool) -> dict[str, Any]:
    """Every contender on one file, in interleaved rounds."""
    contenders = {
        "qmk validate": qmk("validate", str(path)),
        "qmk estimate": qmk("estimate", "--json", str(path)),
    }
    if peer:
        contenders["qsharp.estimate"] = [sys.executable, "-c", QSHARP, str(turns)]
    runs, loads = interleaved(contenders, rounds)
    record: dict[str, Any] = {"turns": turns, "loads": loads, "contenders": {}}
    for name, done in runs.items():
        last = done[-1]
        entry = {**figures(done), "status": last["status"], "t_count": t_count(name, last)}
        if last["status"] != 0:
            entry["stderr"] = last["stderr"]
        if name == "qmk estimate" and last["status"] == 0:
            physical = json.loads(last["stdout"])["physicalCounts"]
            entry["physical_qubits"] = physical["physicalQubits"]
            entry["runtime_ns"] = physical["runtime"]
        if name == "qsharp.estimate" and last["status"] == 0:
            data = json.loads(last["stdout"])
            entry["call_s"] = min(json.loads(run["stdout"])["call_s"] for run in done)
            entry["physical_qubits"] = data["physicalQubits"]
            entry["runtime_ns"] = data["runtime_ns"]
        record["contenders"][name] = entry
    return record


def show(record: dict[str, Any]) -> None:
    turns = record["turns"]
    contenders = record["contenders"]
    peer = contenders.get("qsharp.estimate")
    title = record.get("program") or f"{turns:,} turns"
    print(f"\n{title} (loads {', '.join(f'{x:.2f}' for x in record['loads'])})")
    print(f"  {'contender':18} {'min s':>8} {'median s':>9} {'peak MB':>8} {'T count':>16}  ratio")
    for name, entry in contenders.items():
        ratio = ""
        if peer is not None and name != "qsharp.estimate" and peer["status"] == 0:
            ratio = f"{entry['min_s'] / peer['min_s']:.3f}x peer"
        count = entry["t_count"]
        shown = "-" if count is None else f"{count:,}"
        status = "" if entry["status"] == 0 else f"  (exit {entry['status']})"
        print(
            f"  {name:18} {entry['min_s']:8.2f} {entry['median_s']:9.2f} "
            f"{entry['rss_mb']:8.0f} {shown:>16}  {ratio}{status}"
        )
    ours = contenders["qmk estimate"]
    if peer is not None and peer["status"] == 0 and ours["status"] == 0:
        same = (ours["physical_qubits"], ours["runtime_ns"]) == (
            peer["physical_qubits"],
            peer["runtime_ns"],
        )
        print(
            f"  physical qubits {ours['physical_qubits']:,} vs {peer['physical_qubits']:,}, "
            f"runtime {ours['runtime_ns']:,} ns vs {peer['runtime_ns']:,} ns: "
            f"{'the same' if same else 'DIFFERENT'}; qsharp's own call {peer['call_s']:.2f} s"
        )


def rounds_of(contenders: dict[str, list[str]], rounds: int) -> dict[str, Any]:
    """Every contender in interleaved rounds: figures, status and the loads."""
    runs, loads = interleaved(contenders, rounds)
    entries = {}
    for name, done in runs.items():
        entry = {**figures(done), "status": done[-1]["status"]}
        if done[-1]["status"] != 0:
            entry["stderr"] = done[-1]["stderr"]
        entries[name] = entry
    return {"loads": loads, "contenders": entries}


def stages_of(path: Path, rounds: int) -> dict[str, float]:
    """The least CPU seconds of each stage of ``qmk run`` of ``path`` at 1000 shots, over
    ``rounds`` fresh processes (:data:`STAGES_RUN`)."""
    least: dict[str, float] = {}
    for _ in range(rounds):
        run = measured([sys.executable, "-c", STAGES_RUN, str(path), "1000"])
        if run["status"] != 0:
            raise SystemExit(f"qmk run with stage timers failed: {run['stderr']}")
        for label, seconds in json.loads(run["stdout"].splitlines()[-1]).items():
            least[label] = min(least.get(label, seconds), seconds)
    return least


def flat_case(
    folder: Path, gates: int, rounds: int, clifford_run: bool, stages: bool = False
) -> dict[str, Any]:
    """A flat file: qmk validate beside qiskit.qasm2.load; its Clifford run beside stim."""
    path = folder / f"flat-{gates}.qasm"
    write_flat_qasm(path, flat_gates(gates, 7, clifford=False))
    contenders = {"qmk validate": qmk("validate", str(path))}
    if importlib.util.find_spec("qiskit") is not None:
        contenders["qiskit.qasm2.load"] = [sys.executable, "-c", QISKIT_LOAD, str(path)]
    record: dict[str, Any] = {"gates": gates, "qubits": FLAT_QUBITS}
    record["validate"] = rounds_of(contenders, rounds)
    if clifford_run:
        qasm, stim_path = folder / f"flat-clifford-{gates}.qasm", folder / f"flat-{gates}.stim"
        write_flat_qasm(qasm, flat_gates(gates, 7, clifford=True))
        write_flat_stim(stim_path, flat_gates(gates, 7, clifford=True))
        runs = {
            "qmk run": qmk("run", "--shots", "1000", "--seed", "1", "--quiet", str(qasm)),
        }
        if importlib.util.find_spec("stim") is not None:
            runs["stim sample"] = [sys.executable, "-c", STIM_SAMPLE, str(stim_path), "1000"]
        record["clifford_run"] = rounds_of(runs, rounds)
        if stages:
            record["clifford_stages_cpu_s"] = stages_of(qasm, rounds)
    return record


def show_flat(record: dict[str, Any]) -> None:
    gates = record["gates"]
    for part, peer in (("validate", "qiskit.qasm2.load"), ("clifford_run", "stim sample")):
        if part not in record:
            continue
        done = record[part]
        title = "flat file" if part == "validate" else "its Clifford version, 1000 shots"
        loads = ", ".join(f"{x:.2f}" for x in done["loads"])
        print(f"\n{title}: {gates:,} gates on {record['qubits']} qubits (loads {loads})")
        print(
            f"  {'contender':18} {'min s':>8} {'median s':>9} {'cpu s':>7} {'sys s':>6} "
            f"{'peak MB':>8} {'B/gate':>7}  ratio (wall; cpu)"
        )
        theirs = done["contenders"].get(peer)
        for name, entry in done["contenders"].items():
            ratio = ""
            if theirs is not None and name != peer and theirs["status"] == 0:
                ratio = (
                    f"{entry['min_s'] / theirs['min_s']:.3f}x peer; "
                    f"{entry['cpu_s'] / theirs['cpu_s']:.3f}x"
                )
            entry["bytes_per_gate"] = entry["rss_mb"] * 2**20 / gates
            status = "" if entry["status"] == 0 else f"  (exit {entry['status']})"
            print(
                f"  {name:18} {entry['min_s']:8.2f} {entry['median_s']:9.2f} "
                f"{entry['cpu_s']:7.2f} {entry['sys_s']:6.2f} {entry['rss_mb']:8.0f} "
                f"{entry['bytes_per_gate']:7.0f}  "
                f"{ratio}{status}"
            )
    least = record.get("clifford_stages_cpu_s")
    if least is not None:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in least.items() if k != "rss_mb")
        print(f"  qmk run CPU s by stage (least): {shown}; peak {least['rss_mb']:.0f} MB")


#: The peer of ``qmk validate FILE.stim``: stim parsing the file, in a fresh process.
STIM_PARSE = "import stim, sys; stim.Circuit(open(sys.argv[1]).read())"


def stim_case(folder: str, rounds: int) -> dict[str, Any]:
    """``qmk validate`` of stim's 10^7-round example against stim's own parse."""
    import stim

    path = Path(folder) / "memory-1e7.stim"
    circuit = stim.Circuit.generated("surface_code:rotated_memory_x", distance=3, rounds=10**7)
    path.write_text(str(circuit), encoding="utf-8")
    contenders = {
        "qmk validate": qmk("validate", str(path)),
        "stim parse": [sys.executable, "-c", STIM_PARSE, str(path)],
    }
    done = rounds_of(contenders, rounds)
    record: dict[str, Any] = {
        "program": "stim surface_code:rotated_memory_x, d=3, 10^7 rounds",
        **done,
    }
    ours, peer = record["contenders"]["qmk validate"], record["contenders"]["stim parse"]
    print(f"\n{record['program']} (loads {', '.join(f'{x:.2f}' for x in done['loads'])})")
    print(f"  {'contender':18} {'min s':>8} {'median s':>9} {'peak MB':>8}  ratio")
    for name, entry in record["contenders"].items():
        ratio = f"{entry['min_s'] / peer['min_s']:.2f}x stim" if name != "stim parse" else ""
        status = "" if entry["status"] == 0 else f"  (exit {entry['status']})"
        print(
            f"  {name:18} {entry['min_s']:8.2f} {entry['median_s']:9.2f} "
            f"{entry['rss_mb']:8.0f}  {ratio}{status}"
        )
    if ours["status"] != 0:
        print(f"  qmk said: {ours.get('stderr', '')}")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--turns", type=int, nargs="*", default=[10**5, 10**7], help="loops' turns (none: no loops)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="skip qsharp.estimate")
    parser.add_argument(
        "--flat-gates", type=int, nargs="*", default=[10**6], help="flat files' gate counts"
    )
    parser.add_argument(
        "--clifford-run", action="store_true", help="also run the flat files' Clifford version"
    )
    parser.add_argument(
        "--only-stim", action="store_true", help="only the stim REPEAT example's row"
    )
    parser.add_argument(
        "--stages", action="store_true", help="with --clifford-run: qmk run's CPU by stage"
    )
    args = parser.parse_args()
    peer = not args.no_peer
    reason = ""
    if peer and importlib.util.find_spec("qsharp") is None:
        peer, reason = False, "the qsharp package is not importable (pip install qsharp)"
    elif not peer:
        reason = "--no-peer"
    info = machine(**installed("qsharp", "qiskit", "stim"))
    print(describe(info, "fresh processes, interleaved rounds"))
    if reason:
        print(f"peer qsharp.estimate skipped: {reason}")
    record: dict[str, Any] = {"machine": info, "peer_skipped": reason or None, "cases": []}
    with tempfile.TemporaryDirectory() as folder:
        if args.turns or args.only_stim:
            record["stim"] = stim_case(folder, args.rounds)
        for turns in [] if args.only_stim else args.turns:
            path = Path(folder) / f"loop-{turns}.qasm"
            path.write_text(loop_source(turns), encoding="utf-8")
            done = case(path, turns, args.rounds, peer)
            record["cases"].append(done)
            show(done)
            for name in ("qmk estimate", "qsharp.estimate"):
                entry = done["contenders"].get(name)
                if entry is not None and entry["t_count"] not in (None, turns):
                    print(f"  WRONG T count from {name}: {entry['t_count']} for {turns}")
        if args.turns and not args.only_stim:
            nests = (
                ("nested-1e12", nested_source(10**6, 10**6), "two nested loops of 10^6 turns"),
                ("skewed-1e12", skewed_source(10**11, 10), "10^11 turns of cx, 10 turns of t q[1]"),
            )
            for stem, source, program in nests:
                path = Path(folder) / f"{stem}.qasm"
                path.write_text(source, encoding="utf-8")
                nested = case(path, 10**12, args.rounds, peer=False)
                nested["program"] = f"{program}: 10^12 T gates"
                record["cases"].append(nested)
                show(nested)
                got = nested["contenders"]["qmk estimate"]["t_count"]
                if got != 10**12:
                    print(f"  WRONG T count from qmk estimate: {got} for 10^12")
        record["flat"] = []
        for gates in [] if args.only_stim else args.flat_gates:
            flat = flat_case(Path(folder), gates, args.rounds, args.clifford_run, args.stages)
            show_flat(flat)
            record["flat"].append(flat)
    # a run of flat files alone keeps the loops' figures of the last full run
    name = "scale.json" if args.turns else "scale_flat.json"
    name = "scale-stim.json" if args.only_stim else name
    write_json(record, RESULTS / name)


if __name__ == "__main__":
    main()
