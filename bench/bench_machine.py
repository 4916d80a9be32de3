"""The machine scheduler at scale, and the study of docs/machine.md.

``--scale`` (the default): 10,000 generated jobs (adders, QFTs, random Clifford+T up to
1,000 logical qubits; four tenants, Poisson arrivals in machine time) on a machine of
10^6 physical qubits, schedule-only, through the same workload reader and scheduler as
``qmk machine simulate``: the wall time of each phase (reading and compiling each
distinct program once, the runtimes alone, the policy, the ``exclusive`` baseline) and
in all, with the load averages (the machine is shared: read the figure with them).

``--study``: the three workloads of ``examples/machine/`` (uniform small jobs; a few
large among many small; T-heavy jobs contending for factories) under every policy, as
the Markdown table ``docs/machine.md`` carries, and the speedup of ``fair-share`` over
``exclusive`` on the uniform workload as the factories' share and the block change;
``--plots DIR`` draws each workload's utilization and slowdowns there.

    python bench/bench_machine.py [--scale] [--study] [--policy fair-share] [--plots DIR]

Not a test: it prints figures (and writes ``bench/results/machine.json``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, describe, load_averages, machine, write_json
from qmk.defaults import MACHINE_POLICIES
from qmk.kernel.machine import workload as wl
from qmk.kernel.machine.simulate import alone_times, run_policy, simulate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "machine"
STUDY = ("uniform", "mixed", "t-heavy")

#: The scale workload: 4 tenants x 2,500 jobs on 10^6 physical qubits.
SCALE: dict[str, Any] = {
    "machine": {"physical_qubits": 1_000_000, "epoch_cycles": 100},
    "seed": 7,
    "tenants": [
        {
            "name": "a",
            "generate": {
                "count": 2500,
                "arrivals": "poisson",
                "mean_gap_cycles": 400,
                "programs": [{"adder": 16}, {"qft": 12}, {"random": 50, "gates": 2000}],
            },
        },
        {
            "name": "b",
            "generate": {
                "count": 2500,
                "arrivals": "poisson",
                "mean_gap_cycles": 400,
                "programs": [{"adder": 64}, {"random": 200, "gates": 5000}],
            },
        },
        {
            "name": "c",
            "generate": {
                "count": 2500,
                "arrivals": "poisson",
                "mean_gap_cycles": 400,
                "programs": [{"random": 1000, "gates": 20000}, {"adder": 8}],
            },
        },
        {
            "name": "d",
            "share": 2,
            "generate": {
                "count": 2500,
                "arrivals": "poisson",
                "mean_gap_cycles": 400,
                "programs": [{"qft": 8}, {"adder": 4}],
            },
        },
    ],
}


def scale(policy: str) -> dict[str, Any]:
    """10^4 jobs on 10^6 physical qubits: the wall time of each phase."""
    began = time.perf_counter()
    work = wl.load(SCALE)
    read = time.perf_counter()
    alone = alone_times(work.machine, work.jobs)
    solo = time.perf_counter()
    run = run_policy(work.machine, work.jobs, policy, tenants=work.tenants, alone=alone)
    ran = time.perf_counter()
    base = run_policy(work.machine, work.jobs, "exclusive", tenants=work.tenants, alone=alone)
    end = time.perf_counter()
    data = run.to_json(jobs=False)
    return {
        "jobs": len(work.jobs),
        "distinct_programs": work.compiled,
        "physical_qubits": work.machine.physical_qubits,
        "policy": policy,
        "seconds": {
            "read_and_compile": read - began,
            "runtimes_alone": solo - read,
            "policy": ran - solo,
            "exclusive": end - ran,
            "total": end - began,
        },
        "makespan_cycles": data["makespan_cycles"],
        "speedup_vs_exclusive": base.makespan / run.makespan,
        "utilization": data["utilization"],
        "load_average_at_end": load_averages(),
    }


def study_rows(name: str, plots: Path | None) -> list[dict[str, Any]]:
    """Every policy on one of the study's workloads."""
    work = wl.read(EXAMPLES / f"{name}.yaml")
    runs = simulate(work.machine, work.jobs, list(MACHINE_POLICIES), tenants=work.tenants)
    if plots is not None:
        from qmk.kernel.machine.draw import draw_runs

        draw_runs(runs, str(plots / f"machine-{name}.png"), f"{name}: {len(work.jobs)} jobs")
    rows = []
    for policy, run in runs.items():
        data = run.to_json(jobs=False)
        rows.append(
            {
                "workload": name,
                "jobs": len(work.jobs),
                "policy": policy,
                **{k: data[k] for k in ("makespan_cycles", "mean_slowdown", "p95_slowdown")},
                "speedup": data["speedup_vs_exclusive"],
                "stp": data["stp"],
                "tiles": data["utilization"]["tiles"],
                "factories": data["utilization"]["factories"],
                "jain": data["jain_fairness"],
                "waits": data["wait_cycles"],
            }
        )
    return rows


def sensitivity() -> list[dict[str, Any]]:
    """fair-share over exclusive on the uniform workload, as factories and block change."""
    import yaml

    base = yaml.safe_load((EXAMPLES / "uniform.yaml").read_text(encoding="utf-8"))
    rows = []
    for share in (0.1, 0.25, 0.5):
        for block in ("fast", "intermediate", "compact"):
            data = dict(base)
            data["machine"] = {**base["machine"], "factory_share": share, "block": block}
            work = wl.load(data, base=EXAMPLES)
            runs = simulate(work.machine, work.jobs, ["fair-share"], tenants=work.tenants)
            out = runs["fair-share"].to_json(jobs=False)
            copies = work.machine.modules[0].factory
            rows.append(
                {
                    "factory_share": share,
                    "block": block,
                    "states_per_cycle": copies.rate,
                    "speedup": out["speedup_vs_exclusive"],
                    "stp": out["stp"],
                    "mean_slowdown": out["mean_slowdown"],
                    "tiles": out["utilization"]["tiles"],
                    "factories": out["utilization"]["factories"],
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workload | policy | makespan (cycles) | speedup | STP | mean slowdown "
        "| p95 slowdown | tiles | factories | Jain |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['workload']} ({r['jobs']} jobs) | {r['policy']} | {r['makespan_cycles']:,} "
            f"| {r['speedup']:.2f}x | {r['stp']:.1f} | {r['mean_slowdown']:.1f} "
            f"| {r['p95_slowdown']:.1f} | {r['tiles']:.2f} | {r['factories']:.2f} "
            f"| {r['jain']:.3f} |"
        )
    return "\n".join(lines)


def sensitivity_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| factory share | states a cycle | block | speedup | STP | mean slowdown | tiles "
        "| factories |",
        "|" + "---|" * 8,
    ]
    for r in rows:
        lines.append(
            f"| {r['factory_share']:.2f} | {r['states_per_cycle']:.3g} | {r['block']} "
            f"| {r['speedup']:.2f}x | {r['stp']:.1f} | {r['mean_slowdown']:.1f} "
            f"| {r['tiles']:.2f} | {r['factories']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="10^4 jobs on 10^6 qubits")
    parser.add_argument("--study", action="store_true", help="the docs' experiment tables")
    parser.add_argument("--policy", default="fair-share", choices=MACHINE_POLICIES)
    parser.add_argument("--plots", type=Path, help="with --study: draw the workloads here")
    args = parser.parse_args()
    record: dict[str, Any] = {"machine": machine()}
    print(describe(record["machine"]))
    if args.scale or not args.study:
        figure = scale(args.policy)
        record["scale"] = figure
        s = figure["seconds"]
        print(
            f"{figure['jobs']:,} jobs ({figure['distinct_programs']} distinct programs) on "
            f"{figure['physical_qubits']:,} physical qubits under {figure['policy']}: "
            f"{s['total']:.1f} s in all (read and compile {s['read_and_compile']:.1f} s, "
            f"runtimes alone {s['runtimes_alone']:.2f} s, {figure['policy']} "
            f"{s['policy']:.1f} s, exclusive {s['exclusive']:.1f} s); load average "
            f"{figure['load_average_at_end'][0]:.2f} at the end"
        )
        print(
            f"makespan {figure['makespan_cycles']:,} cycles, speedup over exclusive "
            f"{figure['speedup_vs_exclusive']:.2f}x, utilization {figure['utilization']}"
        )
    if args.study:
        rows = [row for name in STUDY for row in study_rows(name, args.plots)]
        record["study"] = rows
        print(table(rows))
        more = sensitivity()
        record["sensitivity"] = more
        print()
        print(sensitivity_table(more))
    write_json(record, RESULTS / "machine.json")


if __name__ == "__main__":
    main()
