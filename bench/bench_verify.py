"""Benchmark: reading, verifying and assembling a large QVM graph.

Times, for one seeded random graph of N nodes (default 100,000):

- ``json.loads`` of its text (the floor any JSON reader pays),
- QMK's strict reader (``qvm.graph.loads``: shape checks, repeated keys, limits),
- QMK's verifier (``qvm.verify.check``; goal: under 1 s for 100k nodes),
- the peer: ``jsonschema`` validating the same document against QMK's generated
  schema (a generic validator; it checks shape and args, not lifetimes or
  events), on a slice of the graph because it is slow, scaled to N nodes,
- the assembly round trip: ``disassemble`` and ``assemble`` of the same graph,
  and that the round trip is exact.

Prints a table with ratios and writes ``bench/results/verify.json``. Not a test:
nothing here fails on a timing.

    python bench/bench_verify.py [--nodes 100000] [--repeat 3] [--peer-nodes 5000]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from _common import RESULTS, describe, installed, machine, timed, write_json
from qmk.qvm import asm, graph, graph_file
from qmk.qvm.generate import random_graph
from qmk.qvm.schema import load_schema
from qmk.qvm.verify import check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--peer-nodes",
        type=int,
        default=5_000,
        help="nodes in the slice jsonschema validates (scaled to --nodes)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "verify.json"))
    args = parser.parse_args()
    info = machine(**installed("jsonschema"))

    g = random_graph(seed=args.seed, nodes=args.nodes)
    text = graph_file.dumps(g)
    rows: dict[str, dict[str, float]] = {}

    def record(name: str, run: Callable[[], Any], scale: float = 1.0) -> Any:
        timing = timed(run, args.repeat)
        rows[name] = {"min_s": timing.min_s * scale, "median_s": timing.median_s * scale}
        return timing.result

    record("json.loads (floor)", lambda: json.loads(text))
    loaded = record("qmk read (graph.loads)", lambda: graph.loads(text))
    assert loaded == g
    report = record("qmk verify (check)", lambda: check(g))
    assert report.ok and not report.findings, "the benchmark graph must verify cleanly"

    import jsonschema

    peer_graph = random_graph(seed=args.seed, nodes=args.peer_nodes)
    peer_doc = json.loads(graph_file.dumps(peer_graph))
    validator = jsonschema.Draft202012Validator(load_schema())
    scale = args.nodes / len(peer_graph.nodes)
    record(
        f"peer: jsonschema validate (x{scale:.0f} of {len(peer_graph.nodes)} nodes)",
        lambda: validator.validate(peer_doc),
        scale=scale,
    )
    record("qmk verify, same slice (x scale)", lambda: check(peer_graph), scale=scale)

    asm_text = record("qmk disassemble", lambda: asm.disassemble(g))
    back = record("qmk assemble", lambda: asm.assemble(asm_text))
    exact = graph_file.dumps(back) == text

    verify_s = rows["qmk verify (check)"]["min_s"]
    peer_name = next(name for name in rows if name.startswith("peer"))
    print(
        describe(
            info, f"graph: {len(g.nodes)} nodes, seed {args.seed}, {len(text) / 1e6:.1f} MB JSON"
        )
    )
    print(f"{'step':<58} {'min s':>9} {'median s':>9}")
    for name, row in rows.items():
        print(f"{name:<58} {row['min_s']:>9.3f} {row['median_s']:>9.3f}")
    ratio_peer = rows[peer_name]["min_s"] / rows["qmk verify, same slice (x scale)"]["min_s"]
    print(
        f"verify goal (< 1 s for 100k nodes): {verify_s:.3f} s "
        f"-> {'met' if verify_s < 1.0 else 'NOT met'}"
    )
    print(f"jsonschema / qmk verify on the same slice: {ratio_peer:.1f}x")
    read_ratio = rows["qmk read (graph.loads)"]["min_s"] / rows["json.loads (floor)"]["min_s"]
    print(f"qmk read / json.loads: {read_ratio:.2f}x")
    print(f"asm round trip exact: {exact}")

    write_json(
        {
            **info,
            "nodes": len(g.nodes),
            "seed": args.seed,
            "json_bytes": len(text),
            "rows": rows,
            "ratio_jsonschema_over_verify": ratio_peer,
            "asm_round_trip_exact": exact,
        },
        args.out,
    )
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
