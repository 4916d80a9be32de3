"""Benchmark: physical resource estimates, QMK beside the Q# resource estimator (qsharp).

Times, side by side on the same logical counts:

- an estimate from logical counts (goal: well under 5 ms), cold (first call for
  those parameters, factory search included) and warm (the factory search is
  cached per code/qubit/target/distance), for QMK and for qsharp's
  ``LogicalCounts.estimate``;
- a frontier estimate, both tools;
- counting a 10^6-node QVM graph and estimating it (goal: under 5 s).

Prints a table with ratios and writes ``bench/results/estimate.json``. Not a
test: nothing here fails on a timing.

    python bench/bench_estimate.py [--nodes 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import warnings
from collections.abc import Callable
from typing import Any

from _common import RESULTS, describe, installed, machine, timed, write_json
from qmk.estimate import estimator as estimate_module
from qmk.estimate import tfactory
from qmk.estimate.counts import LogicalCounts, count_graph
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
    tfactory._find_cached.cache_clear()
    tfactory._inverse.cache_clear()


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
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
    write_json(
        {
            **info,
            "platform": platform.platform(),
            "nodes": len(graph.nodes),
            "seconds": rows,
        },
        RESULTS / "estimate.json",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
