"""Benchmark: physical resource estimates, QMK beside the Q# resource estimator (qsharp).

Times, side by side on the same logical counts:

- an estimate from logical counts (goal: well under 5 ms), cold (first call for
  those parameters, factory search included) and warm (the factory search is
  cached per code/qubit/target/distance), for QMK and for qsharp's
  ``LogicalCounts.estimate``;
- a frontier estimate, both tools;
- counting a 10^6-node QVM graph and estimating it (goal: under 5 s);
- the cold call as a user meets it: the first estimate (and the first frontier) in a
  fresh process right after the import, both tools, each in ``--fresh`` new processes
  taken in turns (medians), with the import's own cost beside it.

Prints a table with ratios and writes ``bench/results/estimate.json``. Not a
test: nothing here fails on a timing.

    python bench/bench_estimate.py [--nodes 1000000] [--repeat 5] [--fresh 9]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

from _common import RESULTS, describe, installed, load_averages, machine, timed, write_json
from qmk.estimate import estimator as estimate_module
from qmk.estimate import tfactory
from qmk.estimate.counts import LogicalCounts, count_graph
from qmk.qec import codes
from qmk.qvm.graph import Graph, Node, Resources

LARGE = {
    "numQubits": 100,
    "tCount": 10**6,
    "rotationCount": 10**4,
    "rotationDepth": 10**3,
    "cczCount": 10**5,
    "measurementCount": 10**5,
}


def _cold() -> None:
    """Forget what earlier estimates of this process found: the factory search, the unit
    counts and the binomial quantiles it cached, and the qubits' time variables."""
    tfactory._find_cached.cache_clear()
    tfactory._units_needed.cache_clear()
    tfactory._inverse.cache_clear()
    codes._time_variables.cache_clear()


def long_graph(nodes: int, seed: int = 11) -> Graph:
    """A seeded program of about ``nodes`` nodes on 64 qubits: gates, rotations, CCZ, measures."""
    rng = random.Random(seed)
    names = [f"q{i}" for i in range(64)]
    out = [Node(id="a", op="ALLOC_LQ", args={"n": 64}, vqs=tuple(names))]
    events = []
    for i in range(nodes - 2):
        pick = rng.random()
        q = rng.sample(names, 3)
        if pick < 0.3:
            out.append(
                Node(id=f"n{i}", op=rng.choice(("APPLY_H", "APPLY_S", "APPLY_T")), vqs=(q[0],))
            )
        elif pick < 0.55:
            out.append(Node(id=f"n{i}", op="APPLY_CNOT", vqs=(q[0], q[1])))
        elif pick < 0.75:
            theta = rng.choice((math.pi / 4, rng.uniform(0, 6)))
            out.append(Node(id=f"n{i}", op="APPLY_RZ", args={"theta": theta}, vqs=(q[0],)))
        elif pick < 0.85:
            out.append(Node(id=f"n{i}", op="APPLY_CCZ", vqs=tuple(q)))
        else:
            events.append(f"e{i}")
            out.append(Node(id=f"n{i}", op="MEASURE_Z", vqs=(q[0],), produces=(f"e{i}",)))
    out.append(Node(id="f", op="FREE_LQ", vqs=tuple(names)))
    return Graph(
        nodes=tuple(out),
        resources=Resources(vqs=tuple(names), events=tuple(events)),
        caps=("CAP_ALLOC",),
    )


#: The fresh-process cases: name -> estimate parameters.
FRESH_CASES = {"estimate": {}, "frontier": {"estimateType": "frontier"}}


#: What a fresh process runs (``python -c``, argv: tool, counts JSON, parameters JSON):
#: import the tool's estimator, then its first estimate; prints the seconds of each.
FIRST_CALL = """
import json, sys, time
tool, counts, params = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
started = time.perf_counter()
if tool == "qmk":
    from qmk.estimate.counts import LogicalCounts
    from qmk.estimate.estimator import estimate
    imported, cpu = time.perf_counter(), time.process_time()
    estimate(LogicalCounts.from_json(counts), params)
else:
    from qsharp.estimator import LogicalCounts
    imported, cpu = time.perf_counter(), time.process_time()
    LogicalCounts(counts).estimate(params)
done, cpu_done = time.perf_counter(), time.process_time()
print(json.dumps({
    "import_s": imported - started, "first_call_s": done - imported,
    "first_call_cpu_s": cpu_done - cpu,
}))
"""


def fresh_processes(runs: int, tools: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """:data:`FIRST_CALL` for every tool and case in ``runs`` new processes each, taken in
    turns so that a change of load hits all alike; case -> tool -> medians (seconds)."""
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(runs):
        for case in FRESH_CASES:
            for tool in tools:
                child = subprocess.run(
                    [
                        sys.executable,
                        "-W",
                        "ignore",
                        "-c",
                        FIRST_CALL,
                        tool,
                        json.dumps(LARGE),
                        json.dumps(FRESH_CASES[case]),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                samples.setdefault((case, tool), []).append(json.loads(child.stdout))
    out: dict[str, dict[str, Any]] = {}
    for (case, tool), found in samples.items():
        out.setdefault(case, {})[tool] = {
            key: statistics.median(s[key] for s in found)
            for key in ("import_s", "first_call_s", "first_call_cpu_s")
        } | {"runs": len(found)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=9, help="new processes per tool and case")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    info = machine(**installed("qsharp"))
    print(describe(info))

    counts = LogicalCounts.from_json(LARGE)
    rows: dict[str, dict[str, float | None]] = {}
    frontier = {"estimateType": "frontier"}

    def ours(params: dict[str, Any]) -> Callable[[], Any]:
        return lambda: estimate_module.estimate(counts, params)

    rows["estimate, cold"] = {"qmk": timed(ours({}), args.repeat, reset=_cold).min_s}
    rows["estimate, warm"] = {"qmk": timed(ours({}), args.repeat).min_s}
    rows["frontier, cold"] = {"qmk": timed(ours(frontier), args.repeat, reset=_cold).min_s}
    try:
        from qsharp.estimator import LogicalCounts as QreCounts

        qre = QreCounts(LARGE)
        qre.estimate({})
        rows["estimate, cold"]["qsharp"] = timed(lambda: qre.estimate({}), args.repeat).min_s
        rows["estimate, warm"]["qsharp"] = rows["estimate, cold"]["qsharp"]
        rows["frontier, cold"]["qsharp"] = timed(lambda: qre.estimate(frontier), args.repeat).min_s
    except ImportError:
        for row in rows.values():
            row["qsharp"] = None

    graph = long_graph(args.nodes)
    counted = timed(lambda: count_graph(graph), 1)
    graph_counts, counting = counted.result, counted.min_s
    total = counting + timed(lambda: estimate_module.estimate(graph_counts, {}), 1).min_s
    rows[f"count {len(graph.nodes):,}-node graph"] = {"qmk": counting, "qsharp": None}
    rows[f"count + estimate {len(graph.nodes):,}-node graph"] = {"qmk": total, "qsharp": None}

    print(f"{'case':<40} {'qmk':>12} {'qsharp':>12} {'qmk/qsharp':>11}")
    for name, row in rows.items():
        q, r = row["qmk"], row.get("qsharp")
        ratio = f"{q / r:.2f}" if q and r else "-"
        print(f"{name:<40} {q * 1e3:>10.3f}ms {(r or 0) * 1e3:>10.3f}ms {ratio:>11}")
    print(f"graph counts: {graph_counts.to_json()}")

    tools = ("qmk", "qsharp") if "qsharp" in info else ("qmk",)
    fresh = fresh_processes(args.fresh, tools) if args.fresh > 0 else {}
    if fresh:
        print(f"\nfresh process, medians of {args.fresh}: the import, then the first call")
        print(
            f"{'case':<12} {'tool':<8} {'import':>10} {'first call':>12} {'(its CPU)':>12}"
            f" {'qmk/qsharp':>11} {'(CPU)':>7}"
        )
    for case, by_tool in fresh.items():
        for tool, figures in by_tool.items():
            ratio = ratio_cpu = "-"
            if tool == "qmk" and "qsharp" in by_tool:
                peer = by_tool["qsharp"]
                ratio = f"{figures['first_call_s'] / peer['first_call_s']:.2f}"
                ratio_cpu = f"{figures['first_call_cpu_s'] / peer['first_call_cpu_s']:.2f}"
            print(
                f"{case:<12} {tool:<8} {figures['import_s'] * 1e3:>8.1f}ms"
                f" {figures['first_call_s'] * 1e3:>10.3f}ms"
                f" {figures['first_call_cpu_s'] * 1e3:>10.3f}ms {ratio:>11} {ratio_cpu:>7}"
            )
    write_json(
        {
            **info,
            "platform": platform.platform(),
            "nodes": len(graph.nodes),
            "seconds": rows,
            "fresh_process": fresh,
            "load_average_at_end": load_averages(),
        },
        RESULTS / "estimate.json",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
