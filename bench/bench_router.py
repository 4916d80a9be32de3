"""Benchmark: the router's estimates against measured seconds, per engine and shape.

Issue 27's goal: every engine's estimate within 2x of its measured time on a corpus of
program shapes, with and without the statevector engine's compiled kernels (its numpy
fallback priced as such). The corpus (seeded, built here as OpenQASM 2 text):

- ``random-20``: 20 qubits, 4 layers (where the state leaves the caches: compiled
  kernels against numpy);
- ``random-16``: 16 qubits, 10 layers of a random U3 (RZ RY RZ) on every qubit and a
  CZ brickwork, every qubit measured at the end;
- ``random-20-deep``: the same on 20 qubits, 20 layers (a matrix product state's bond
  dimension reaches ``2**10``: the MPS engines are priced by their SVDs);
- ``brick-24``: 24 qubits, 6 layers (bond at most ``2**6``: MPS against dense);
- ``wide-64``: 64 qubits, 4 layers (only the MPS engines hold it);
- ``random-26``: 26 qubits, 20 layers (``bench_cli.py``'s ``random-26``: a state of
  512 MiB in single precision, where memory bandwidth and page faults rule);
- ``qft-16``: the QFT on 16 qubits (controlled phases), after a layer of RY, and
  ``qft-24``, ``qft-26`` (``bench_cli.py``'s);
- ``toffoli-12``: hwb-like reversible logic: 12 qubits, 400 random CCX/CX/X gates
  after a layer of H;
- ``hwb-16``: the same on 16 qubits, 3,000 gates (scattered Toffolis fuse badly);
- ``ghz-20``: a 20-qubit GHZ state (Clifford: the stabilizer engine's), and
  ``clifford-16``: 400 random H, S and CX on 16 qubits;
- ``mid-circuit-10``: 10 qubits, 12 rounds of rotations, a measurement, a reset and a
  classically controlled X (the shots split at every measurement);
- ``bwt-10``: bwt-like (QASMBench ``bwt``): 10 qubits, 16 rounds of a dozen
  RX/CX/CCX gates on random qubits, each round ending in a reset (no measurement);
- ``noisy-10``: ``random`` on 10 qubits, depth 8, with logical noise on at distance 3
  and a depolarizing physical rate of 5e-3 (logical errors hit most shots:
  trajectories; the statevector runs its density matrix instead where cheaper, a row
  ``fit_router.py`` leaves out: the density model prices it);
- the same at 6 qubits (``random-6``, ``toffoli-6``, ``mid-circuit-6``, ``noisy-6``,
  ``ghz-6``, ``clifford-6``: 60 gates),
  where per-gate and per-call costs rule and the density-matrix engines take part;
- ``small-3``: H, T and two CX on 3 qubits (each engine's per-run setup).

For each shape, every engine the router finds able (and the statevector engine with
``kernels="numpy"``: ``statevector/numpy``) runs the program through
:func:`qmk.execution.runs.run` (``--shots`` shots, seed 7), its package imported
and its kernels compiled by a warm-up first; the measured time is the least wall time
of ``--repeat`` runs (interleaved rounds), the estimate is the router's candidate cost
less its import (paid in the warm-up). Pairs whose estimate passes ``--max-estimate``
seconds are skipped, stated. Prints a table (estimate, measured, ratio measured /
estimate; ``!!`` where it is outside [1/2, 2]) and writes
``bench/results/router.json``. Not a test: nothing fails on a timing.

``--footprint`` measures instead what each engine's packages take (the
``EngineSpec.footprint`` figures): in a fresh process per engine that has imported what
``qmk run`` imports, the growth of ``VmSize`` (address space: what ``RLIMIT_AS``
counts) and ``VmRSS`` from importing the engine to the end of a first small run, and of
``VmSize`` during that run; and the statevector's compiled kernels (llvmlite) alone.
``--choice`` prints, per shape, the router's default choice (in a warm worker: imports
paid; with the compiled kernels and without them), its measured time, the fastest
engine's, and their ratio (issue 28: within 1.1x), from the least measured times of
several runs' JSON. ``--imports`` measures each engine's cold cost (``EngineSpec.import_s``, and
``Compiled.import_s`` for the compiled kernels): in a fresh process that has imported
what ``qmk run`` imports, its first small run less its second. ``--merge`` prints the
least measured time of each pair over
several runs' JSON against the cost models' estimates as they are now (on a shared
machine one run's load can double a time).

    python bench/bench_router.py [--shapes random qft] [--engines statevector qsim]
    python bench/bench_router.py --footprint
    python bench/bench_router.py --imports --repeat 3
    python bench/bench_router.py --merge run1.json run2.json --out merged.json
    python bench/bench_router.py --choice run1.json run2.json --out choice.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from _common import RESULTS, describe, machine, timed_group, write_json

#: A shape: (qubits, OpenQASM 2 text, shots factor, noise on).
Shape = tuple[str, bool]

_HEAD = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'


def _measure_all(n: int) -> str:
    return "".join(f"measure q[{i}] -> c[{i}];\n" for i in range(n))


def random_qasm(n: int, depth: int = 10, seed: int = 1, two: str = "cz") -> str:
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    for layer in range(depth):
        for q in range(n):
            a, b, c = (rng.uniform(0, 2 * math.pi) for _ in range(3))
            lines += [f"rz({a:.6f}) q[{q}];", f"ry({b:.6f}) q[{q}];", f"rz({c:.6f}) q[{q}];"]
        lines += [f"{two} q[{i}],q[{i + 1}];" for i in range(layer % 2, n - 1, 2)]
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def qft_qasm(n: int) -> str:
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"ry({0.3 + 0.1 * q:.3f}) q[{q}];" for q in range(n)]
    for target in range(n):
        lines.append(f"h q[{target}];")
        for control in range(target + 1, n):
            lines.append(f"cu1({math.pi / 2 ** (control - target):.8f}) q[{control}],q[{target}];")
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def qv_qasm(n: int, depth: int | None = None, seed: int = 11) -> str:
    """Quantum-volume-shaped: ``depth`` (default ``n``) layers, each a random pairing of
    the qubits with a random two-qubit unitary on every pair, written in the generic
    three-CX form (RZ RY RZ on each side, CX, RZ/RY, CX, RY, CX, RZ RY RZ)."""
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]

    def u3(q: int) -> None:
        for gate in ("rz", "ry", "rz"):
            lines.append(f"{gate}({rng.uniform(0, 2 * math.pi):.6f}) q[{q}];")

    def angle() -> str:
        return f"{rng.uniform(0, 2 * math.pi):.6f}"

    for _ in range(n if depth is None else depth):
        order = rng.sample(range(n), n)
        for a, b in zip(order[0::2], order[1::2], strict=False):
            u3(a)
            u3(b)
            lines += [f"cx q[{b}],q[{a}];", f"rz({angle()}) q[{a}];", f"ry({angle()}) q[{b}];"]
            lines += [f"cx q[{a}],q[{b}];", f"ry({angle()}) q[{b}];", f"cx q[{b}],q[{a}];"]
            u3(a)
            u3(b)
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def regular_graph(n: int, degree: int, seed: int) -> list[tuple[int, int]]:
    """A random ``degree``-regular simple graph on ``n`` nodes (pairing model, seeded)."""
    rng = random.Random(seed)
    while True:
        stubs = [v for v in range(n) for _ in range(degree)]
        rng.shuffle(stubs)
        edges = {tuple(sorted(stubs[i : i + 2])) for i in range(0, len(stubs), 2)}
        if len(edges) == len(stubs) // 2 and all(a != b for a, b in edges):
            return sorted(edges)  # type: ignore[arg-type]


def qaoa_qasm(n: int, layers: int = 3, seed: int = 5) -> str:
    """QAOA for MaxCut on a random 3-regular graph: H on every qubit, then ``layers``
    rounds of a ZZ phase on each edge (CX RZ CX) and an RX mixer on every qubit."""
    rng = random.Random(seed)
    edges = regular_graph(n, 3, seed)
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{q}];" for q in range(n)]
    for _ in range(layers):
        gamma, beta = rng.uniform(0, math.pi), rng.uniform(0, math.pi)
        for a, b in edges:
            lines += [f"cx q[{a}],q[{b}];", f"rz({2 * gamma:.6f}) q[{b}];", f"cx q[{a}],q[{b}];"]
        lines += [f"rx({2 * beta:.6f}) q[{q}];" for q in range(n)]
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def toffoli_qasm(n: int, gates: int = 400, seed: int = 3) -> str:
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{q}];" for q in range(n // 2)]
    for _ in range(gates):
        a, b, c = rng.sample(range(n), 3)
        pick = rng.random()
        if pick < 0.6:
            lines.append(f"ccx q[{a}],q[{b}],q[{c}];")
        elif pick < 0.9:
            lines.append(f"cx q[{a}],q[{b}];")
        else:
            lines.append(f"x q[{a}];")
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def ghz_qasm(n: int) -> str:
    lines = [f"qreg q[{n}];", f"creg c[{n}];", "h q[0];"]
    lines += [f"cx q[{i}],q[{i + 1}];" for i in range(n - 1)]
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def clifford_qasm(n: int, gates: int, seed: int = 9) -> str:
    """A random Clifford circuit: ``gates`` H, S and CX on random qubits."""
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    for _ in range(gates):
        pick = rng.random()
        if pick < 0.5:
            a, b = rng.sample(range(n), 2)
            lines.append(f"cx q[{a}],q[{b}];")
        else:
            lines.append(f"{'h' if pick < 0.75 else 's'} q[{rng.randrange(n)}];")
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


def mid_circuit_qasm(n: int, rounds: int = 12, seed: int = 5) -> str:
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];", "creg m[1];", f"creg c[{n}];"]
    for r in range(rounds):
        for q in range(n):
            lines.append(f"ry({rng.uniform(0, math.pi):.6f}) q[{q}];")
        lines += [f"cx q[{i}],q[{i + 1}];" for i in range(r % 2, n - 1, 2)]
        probe = r % n
        lines += [
            f"measure q[{probe}] -> m[0];",
            f"reset q[{probe}];",
            f"if(m==1) x q[{(probe + 1) % n}];",
        ]
    return (
        _HEAD + "\n".join(lines) + "\n" + "".join(f"measure q[{i}] -> c[{i}];\n" for i in range(n))
    )


def bwt_qasm(n: int, rounds: int = 24, seed: int = 9) -> str:
    """bwt-like (QASMBench bwt: a binary welded tree walk): rotations and CX/CCX logic,
    an ancilla reset every dozen gates (no measurement: the reset splits the shots)."""
    rng = random.Random(seed)
    lines = [f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{q}];" for q in range(n)]
    for r in range(rounds):
        for _ in range(12):
            a, b, c = rng.sample(range(n), 3)
            pick = rng.random()
            if pick < 0.3:
                lines.append(f"rx({rng.uniform(0, math.pi):.6f}) q[{a}];")
            elif pick < 0.7:
                lines.append(f"cx q[{a}],q[{b}];")
            else:
                lines.append(f"ccx q[{a}],q[{b}],q[{c}];")
        lines.append(f"reset q[{r % n}];")
    return _HEAD + "\n".join(lines) + "\n" + _measure_all(n)


#: The corpus: name -> (OpenQASM 2 text, noise on). Each shape at a size the dense
#: engines' per-element costs show at, and at 6 qubits, where per-gate and per-call
#: costs rule and the density-matrix engines (``4**n``) take part.
SHAPES: dict[str, Callable[[], Shape]] = {
    "random-20": lambda: (random_qasm(20, depth=4), False),
    "random-16": lambda: (random_qasm(16), False),
    "random-20-deep": lambda: (random_qasm(20, depth=20, seed=4), False),
    "brick-24": lambda: (random_qasm(24, depth=6, seed=6), False),
    "wide-64": lambda: (random_qasm(64, depth=4, seed=8), False),
    "random-26": lambda: (random_qasm(26, depth=20, seed=7), False),
    "qft-16": lambda: (qft_qasm(16), False),
    "qft-24": lambda: (qft_qasm(24), False),
    "qft-26": lambda: (qft_qasm(26), False),
    "toffoli-12": lambda: (toffoli_qasm(12), False),
    "hwb-16": lambda: (toffoli_qasm(16, gates=3000, seed=11), False),
    "ghz-20": lambda: (ghz_qasm(20), False),
    "clifford-16": lambda: (clifford_qasm(16, 400), False),
    "mid-circuit-10": lambda: (mid_circuit_qasm(10), False),
    "bwt-10": lambda: (bwt_qasm(10, rounds=16), False),
    "noisy-10": lambda: (random_qasm(10, depth=8, seed=2), True),
    "random-6": lambda: (random_qasm(6), False),
    "toffoli-6": lambda: (toffoli_qasm(6, gates=100), False),
    "mid-circuit-6": lambda: (mid_circuit_qasm(6), False),
    "noisy-6": lambda: (random_qasm(6, depth=8, seed=2), True),
    "ghz-6": lambda: (ghz_qasm(6), False),
    "clifford-6": lambda: (clifford_qasm(6, 60), False),
    "small-3": lambda: (_HEAD + SMALL, False),
}

#: A job of a few gates: what every engine pays per run (its setup) rules.
SMALL = "qreg q[3];\ncreg c[3];\nh q[0];\nt q[0];\ncx q[0],q[1];\ncx q[1],q[2];\n" + _measure_all(3)

#: The noise of the ``noisy`` shape: a weak code on noisy physical qubits.
NOISY_PROFILE = "logical:surface_code(d=3)"
NOISY_MODEL = "depolarizing(p=5e-3)"

#: The statevector engine on its numpy kernels (a contender of its own).
NUMPY = "statevector/numpy"


def _prepare(graph: Any, shots: int, noise: Any) -> Any:
    """The executor's work before an engine runs (verify, plan, workload): its time is
    every engine's alike, and left out of the measured engine time."""
    from qmk.execution.executor import build_plan, load_program, workload

    plan = build_plan(
        load_program(graph),
        noise=noise is not False,
        qubit="qubit_gate_ns_e3",
        default_profile=NOISY_PROFILE if noise is not False else "logical:surface_code(d=9)",
        noise_model=noise or None,
    )
    return workload(plan, shots, samples_only=True)  # a run that samples, as each here


def _contenders(work: Any, engines: list[str] | None) -> dict[str, Any]:
    """label -> (engine, options) for every able engine (and the numpy twin)."""
    from qmk.engines.router import route

    out: dict[str, Any] = {}
    for candidate in route(work).candidates:
        if candidate.able and (engines is None or candidate.engine in engines):
            out[candidate.engine] = (candidate.engine, {})
    if (engines is None or NUMPY in engines) and "statevector" in out:
        out[NUMPY] = ("statevector", {"kernels": "numpy"})
    return out


def _weighed(engine: str, options: dict[str, Any], work: Any) -> tuple[Any, dict[str, Any]]:
    """The router's candidate for ``work`` on ``engine`` (at the precision it would run
    it at: a wide run that samples may go single) and the engine options that run it
    there."""
    from qmk.engines.registry import spec
    from qmk.engines.router import weigh

    entry = spec(engine)
    options = {k: v for k, v in options.items() if k != "dtype"}  # the candidate's, below
    candidate = weigh(entry, work, options)
    return candidate, {**options, **entry.options_for(candidate.precision)}


def _estimate(engine: str, options: dict[str, Any], work: Any) -> float:
    """The router's estimate for ``work`` on ``engine``, its import left out (paid)."""
    from qmk.engines.registry import spec

    candidate, _ = _weighed(engine, options, work)
    cost = float(candidate.cost_s or 0.0)
    return cost - spec(engine).cold_s(compiled=candidate.compiled)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from qmk._front import read
    from qmk.execution.runs import run
    from qmk.qec.noise import parse_noise_model

    rows: list[dict[str, Any]] = []
    for name in args.shapes:
        text, noisy = SHAPES[name]()
        graph = read(text)
        noise = parse_noise_model(NOISY_MODEL) if noisy else False
        profile = NOISY_PROFILE if noisy else "logical:surface_code(d=9)"
        prepared = timed_group({"": lambda g=graph, n=noise: _prepare(g, args.shots, n)}, 3)[""]
        work, overhead = prepared.result, prepared.min_s
        runs: dict[str, Callable[[], Any]] = {}
        estimates: dict[str, float] = {}
        for label, (engine, options) in _contenders(work, args.engines).items():
            estimates[label] = _estimate(engine, options, work)
            if estimates[label] > args.max_estimate:
                rows.append({"shape": name, "engine": label, "skipped": "estimate too long"})
                print(_row(rows[-1]), flush=True)
                continue

            _, options = _weighed(engine, options, work)  # at the router's precision

            def once(
                engine: str = engine,
                options: dict[str, Any] = options,
                graph: Any = graph,
                noise: Any = noise,
                profile: str = profile,
            ) -> Any:
                return run(
                    graph,
                    shots=args.shots,
                    seed=7,
                    engine=engine,
                    engine_options=options or None,
                    noise=noise,
                    profile=profile,
                )

            once()  # warm: its package imported, its kernels compiled
            estimates[label] = _estimate(engine, options, work)  # now imported
            runs[label] = once
        timings = timed_group(runs, args.repeat, warmup=0)
        for label, timing in timings.items():
            est = estimates[label]
            got = max(timing.min_s - overhead, 1e-6)
            rows.append(
                {
                    "shape": name,
                    "engine": label,
                    "qubits": work.qubits,
                    "gates": work.gate_count,
                    "segments": work.segments,
                    "branches": work.branches,
                    "estimate_s": est,
                    "measured_s": got,
                    "mode": timing.result.telemetry.mode,
                    "run_s": timing.min_s,
                    "prepare_s": overhead,
                    "ratio": got / est if est > 0 else math.inf,
                }
            )
            print(_row(rows[-1]), flush=True)
    return {"rows": rows}


def _row(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"{row['shape']:<12} {row['engine']:<20} skipped: {row['skipped']}"
    ratio = row["ratio"]
    flag = "" if 0.5 <= ratio <= 2.0 else "  !!"
    return (
        f"{row['shape']:<12} {row['engine']:<20} est {row['estimate_s']:9.4f} s  "
        f"measured {row['measured_s']:9.4f} s  ratio {ratio:5.2f}{flag}"
    )


_FOOTPRINT = r"""
import json, sys
def vm():
    fields = {}
    for line in open('/proc/self/status'):
        key, _, value = line.partition(':')
        if key in ('VmSize', 'VmRSS'):
            fields[key] = int(value.split()[0]) // 1024
    return fields
import qmk.execution.executor, qmk.engines.statevector  # what qmk run imports
name = sys.argv[1]
before = vm()
if name == 'llvmlite':
    from qmk.engines import simd
    simd.available()
    loaded = after = vm()
else:
    from qmk.engines import make_engine
    engine = make_engine(name, seed=1, **({'kernels': 'numpy'} if name == 'statevector' else {}))
    loaded = vm()
    qubits = [engine.allocate() for _ in range(6)]
    engine.apply('h', [qubits[0]])
    for a, b in zip(qubits, qubits[1:]):
        engine.apply('cx', [a, b])
    engine.measure(qubits[0]); engine.sample(qubits, 100)
    after = vm()
print(json.dumps({'address_mib': after['VmSize'] - before['VmSize'],
                  'resident_mib': after['VmRSS'] - before['VmRSS'],
                  'run_mib': after['VmSize'] - loaded['VmSize']}))
"""


_IMPORT = r"""
import json, sys, time
from qmk._front import read
from qmk.execution.runs import run  # what qmk run imports
name, options, text = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.read()
graph = read(text)
run(graph, shots=100, seed=1, engine="statevector", engine_options={"kernels": "numpy"})
def once():
    start = time.perf_counter()
    run(graph, shots=100, seed=1, engine=name, engine_options=options or None)
    return time.perf_counter() - start
first = once()
print(json.dumps({'import_s': first - once()}))
"""


def imports(args: argparse.Namespace) -> dict[str, Any]:
    """Each engine's cold cost in a fresh process that has imported what ``qmk run``
    imports and run ``random-16`` once on the numpy kernels (the common path warm): its
    first run of ``random-16`` less its second (imports, first kernel compiles), the
    least of ``--repeat`` processes, against the table's ``import_s``."""
    from qmk.engines.registry import SPECS, availability

    rows: dict[str, Any] = {}
    contenders = [(s.name, {}) for s in SPECS if availability(s.name).available]
    contenders.append(("statevector", {"kernels": "numpy"}))
    for name, options in contenders:
        label = NUMPY if options else name
        seconds = []
        for _ in range(args.repeat):
            done = subprocess.run(
                [sys.executable, "-c", _IMPORT, name, json.dumps(options)],
                input=SHAPES["random-16"]()[0],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode == 0:
                seconds.append(json.loads(done.stdout.strip().splitlines()[-1])["import_s"])
        entry = {s.name: s for s in SPECS}[name]
        kernels = entry.compiled
        table = entry.import_s + (kernels.import_s if kernels and not options else 0.0)
        rows[label] = {"measured_s": min(seconds) if seconds else None, "table_s": table}
        print(f"{label:<20} cold {rows[label]['measured_s']}  table {table}", flush=True)
    return {"imports": rows}


def footprint(args: argparse.Namespace) -> dict[str, Any]:
    from qmk.engines.registry import SPECS, availability

    rows: dict[str, Any] = {}
    names = ["llvmlite", *(s.name for s in SPECS if availability(s.name).available)]
    for name in names:
        done = subprocess.run(
            [sys.executable, "-c", _FOOTPRINT, name], capture_output=True, text=True, timeout=300
        )
        if done.returncode:
            rows[name] = {"error": done.stderr.strip().splitlines()[-1:]}
        else:
            rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
        table = {s.name: s for s in SPECS}
        if name == "llvmlite":
            compiled = table["statevector"].compiled
            known = None if compiled is None else compiled.footprint
        else:
            known = table[name].footprint
        print(f"{name:<20} measured {rows[name]}  table {known}", flush=True)
    return {"footprints": rows}


def _rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [row for row in json.load(handle)["rows"] if "measured_s" in row]


def merge(paths: list[str], shots: int) -> dict[str, Any]:
    """The least measured time of each (shape, engine) over several runs' JSON (a loaded
    machine's load comes and goes), against the estimate of the cost models as they are
    now (the runs' own estimates may be of older constants; packages are not imported,
    so none is charged its import)."""
    from qmk._front import read
    from qmk.engines.registry import spec
    from qmk.engines.router import weigh
    from qmk.qec.noise import parse_noise_model

    best: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        for row in _rows(path):
            key = (row["shape"], row["engine"])
            old = best.get(key)
            measured = min(row["measured_s"], old["measured_s"]) if old else row["measured_s"]
            best[key] = {**row, "measured_s": measured}
    works: dict[str, Any] = {}
    rows = []
    for (shape, label), row in sorted(
        best.items(), key=lambda item: list(SHAPES).index(item[0][0])
    ):
        if shape not in works:
            text, noisy = SHAPES[shape]()
            noise = parse_noise_model(NOISY_MODEL) if noisy else False
            works[shape] = _prepare(read(text), shots, noise)
        engine, options = ("statevector", {"kernels": "numpy"}) if label == NUMPY else (label, {})
        entry = spec(engine)
        candidate = weigh(entry, works[shape], options)
        row["estimate_s"] = (candidate.cost_s or 0.0) - entry.cold_s(compiled=candidate.compiled)
        row["ratio"] = row["measured_s"] / row["estimate_s"]
        rows.append(row)
        print(_row(row))
    inside = sum(1 for r in rows if 0.5 <= r["ratio"] <= 2.0)
    print(f"{inside} of {len(rows)} within 2x")
    return {"rows": rows, "merged": paths}


def choice(paths: list[str], shots: int) -> dict[str, Any]:
    """Per shape, the router's default choice against the fastest engine measured (the
    least time of each pair over the runs' JSON): in a warm worker (every package
    imported, every kernel compiled: the kernel's workers; estimates less imports) and,
    where one of the JSON files is an ``--imports`` record, in a fresh ``qmk run``
    (estimates and measured times with each engine's cold cost); each with the
    compiled kernels and without them (the statevector engine on numpy)."""
    from qmk._front import read
    from qmk.engines.registry import spec
    from qmk.engines.router import route, weigh
    from qmk.qec.noise import parse_noise_model

    best: dict[tuple[str, str], float] = {}
    cold_measured: dict[str, float] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        for label, row in record.get("imports", {}).items():
            if row.get("measured_s") is not None:
                cold_measured[label] = max(float(row["measured_s"]), 0.0)
        for row in record.get("rows", []):
            if "measured_s" in row:
                key = (row["shape"], row["engine"])
                best[key] = min(best.get(key, math.inf), row["measured_s"])
    modes = ["warm", "cold"] if cold_measured else ["warm"]
    rows = []
    for shape in SHAPES:
        measured = {label: t for (s, label), t in best.items() if s == shape}
        if not measured:
            continue
        text, noisy = SHAPES[shape]()
        noise = parse_noise_model(NOISY_MODEL) if noisy else False
        work = _prepare(read(text), shots, noise)
        able = [c.engine for c in route(work).candidates if c.able]
        for mode in modes:
            for kernels in ("compiled", "numpy"):
                labels = []
                for engine in able:
                    label = NUMPY if (engine == "statevector" and kernels == "numpy") else engine
                    if label in measured and (mode == "warm" or label in cold_measured):
                        labels.append(label)
                if not labels:
                    continue
                estimates, seconds = {}, {}
                for label in labels:
                    engine, options = (
                        ("statevector", {"kernels": "numpy"}) if label == NUMPY else (label, {})
                    )
                    entry = spec(engine)
                    candidate = weigh(entry, work, options)
                    cost = candidate.cost_s or 0.0
                    if mode == "warm":
                        estimates[label] = cost - entry.cold_s(compiled=candidate.compiled)
                        seconds[label] = measured[label]
                    elif label == "statevector" and candidate.compiled is False:
                        # a fresh process runs a short job on the numpy kernels rather
                        # than load the compiler first: what the router chose runs
                        estimates[label] = cost
                        seconds[label] = measured.get(NUMPY, measured[label]) + (
                            cold_measured.get(NUMPY, cold_measured[label])
                        )
                    else:
                        estimates[label] = cost
                        seconds[label] = measured[label] + cold_measured[label]
                chosen = min(labels, key=lambda label: (estimates[label], labels.index(label)))
                fastest = min(labels, key=lambda label: seconds[label])
                row = {
                    "shape": shape,
                    "mode": mode,
                    "kernels": kernels,
                    "choice": chosen,
                    "choice_s": seconds[chosen],
                    "estimate_s": estimates[chosen],
                    "fastest": fastest,
                    "fastest_s": seconds[fastest],
                    "ratio": seconds[chosen] / seconds[fastest],
                    "measured": seconds,
                }
                rows.append(row)
                flag = "" if row["ratio"] <= 1.1 else "  !!"
                print(
                    f"{shape:<14} {mode:<4} {kernels:<8} choice {chosen:<18} "
                    f"{row['choice_s']:8.4f} s  fastest {fastest:<18} {row['fastest_s']:8.4f} s"
                    f"  ratio {row['ratio']:5.2f}{flag}"
                )
    inside = sum(1 for r in rows if r["ratio"] <= 1.1)
    print(f"{inside} of {len(rows)} choices within 1.1x of the fastest")
    return {"choices": rows, "merged": paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--engines", nargs="+", default=None)
    parser.add_argument("--shots", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-estimate", type=float, default=10.0)
    parser.add_argument("--footprint", action="store_true")
    parser.add_argument("--imports", action="store_true", help="each engine's cold cost")
    parser.add_argument("--merge", nargs="+", default=None, help="runs' JSON to take minima of")
    parser.add_argument(
        "--choice", nargs="+", default=None, help="runs' JSON: the router's choice vs the fastest"
    )
    parser.add_argument("--out", default=str(RESULTS / "router.json"))
    args = parser.parse_args(argv)
    info = machine()
    print(describe(info))
    if args.merge:
        record = merge(args.merge, args.shots)
    elif args.choice:
        record = choice(args.choice, args.shots)
    elif args.imports:
        record = imports(args)
    else:
        record = footprint(args) if args.footprint else measure(args)
    write_json({"machine": info, **record}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
