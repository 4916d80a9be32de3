"""The machine scheduler at scale, and the study of docs/machine.md.

``--scale`` (the default): 10,000 generated jobs (adders, QFTs, random Clifford+T up to
1,000 logical qubits; four tenants, Poisson arrivals in machine time) on a machine of
10^6 physical qubits, schedule-only, through the same workload reader and scheduler as
``qmk machine simulate``: the wall time of each phase (reading and compiling each
distinct program once, the runtimes alone, the policy, the ``exclusive`` baseline) and
in all, with the load averages (the machine is shared: read the figure with them).
``--jobs N`` scales it (N / 4 jobs a tenant, the same arrival rates); ``--workload OUT``
writes it as a workload file for ``qmk machine simulate`` and stops.

``--study``: the three workloads of ``examples/machine/`` (uniform small jobs; a few
large among many small; T-heavy jobs contending for factories) under every policy at
epochs of 1 cycle and of the workload's own, as the Markdown table ``docs/machine.md``
carries (speedups beside the idle errors they cost), and the like-for-like batch of
``examples/machine/like-for-like.yaml`` in every block with every factory protocol;
``--plots DIR`` draws each workload's utilization and slowdowns there.

    python bench/bench_machine.py [--scale] [--jobs N] [--workload OUT.yaml] [--study]
        [--policy fair-share] [--plots DIR]

Not a test: it prints figures (and writes ``bench/results/machine.json``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, describe, load_averages, machine, write_json
from qmk.defaults import FACTORY_PROTOCOLS, MACHINE_POLICIES
from qmk.kernel.errors import MachineError
from qmk.kernel.machine import workload as wl
from qmk.kernel.machine.metrics import error_text
from qmk.kernel.machine.simulate import (
    Refused,
    alone_runs,
    exclusive_baseline,
    run_policy,
    simulate,
)

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


def scaled(jobs: int) -> dict[str, Any]:
    """The scale workload with ``jobs`` jobs in all (a quarter a tenant)."""
    if jobs <= 0 or jobs % 4:
        raise SystemExit(f"--jobs {jobs}: a positive multiple of 4 (a quarter a tenant)")
    tenants = [{**t, "generate": {**t["generate"], "count": jobs // 4}} for t in SCALE["tenants"]]
    return {**SCALE, "tenants": tenants}


def scale(policy: str, jobs: int = 10_000) -> dict[str, Any]:
    """The scale workload (``jobs`` jobs on 10^6 physical qubits): the wall time of each
    phase."""
    began = time.perf_counter()
    work = wl.load(scaled(jobs))
    read = time.perf_counter()
    alone, shifts = alone_runs(work.machine, work.jobs)
    solo = time.perf_counter()
    run = run_policy(work.machine, work.jobs, policy, tenants=work.tenants, alone=alone)
    ran = time.perf_counter()
    base = exclusive_baseline(
        work.machine, work.jobs, tenants=work.tenants, alone=alone, shifts=shifts
    )
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
        "speedup_vs_exclusive": base / run.makespan,
        "utilization": data["utilization"],
        "load_average_at_end": load_averages(),
    }


def _row(work_name: str, jobs: int, epoch: int, policy: str, run: Any) -> dict[str, Any]:
    if isinstance(run, Refused):
        return {
            "workload": work_name,
            "jobs": jobs,
            "epoch": epoch,
            "policy": policy,
            "refused": run.error.code,
        }
    data = run.to_json(jobs=False)
    return {
        "workload": work_name,
        "jobs": jobs,
        "epoch": epoch,
        "policy": policy,
        **{k: data[k] for k in ("makespan_cycles", "mean_slowdown", "p95_slowdown", "stp")},
        "speedup": data["speedup_vs_exclusive"],
        "alone_over_makespan": data["alone_over_makespan"],
        "mean_idle": data["mean_idle_logical_error"],
        "max_idle": data["max_idle_logical_error"],
        "over_budget": data["over_budget"],
        "tiles": data["utilization"]["tiles"],
        "factories": data["utilization"]["factories"],
        "jain": data["jain_fairness"],
        "waits": data["wait_cycles"],
    }


def study_rows(name: str, plots: Path | None) -> list[dict[str, Any]]:
    """Every policy on one of the study's workloads, at epochs of 1 cycle and of the
    workload's own."""
    work = wl.read(EXAMPLES / f"{name}.yaml")
    rows = []
    for epoch in dict.fromkeys((1, work.machine.epoch_cycles)):
        machine = work.machine.with_(epoch_cycles=epoch)
        runs = simulate(machine, work.jobs, list(MACHINE_POLICIES), tenants=work.tenants)
        if plots is not None and epoch != 1:
            from qmk.kernel.machine.draw import draw_runs

            ran = {k: v for k, v in runs.items() if not isinstance(v, Refused)}
            draw_runs(ran, str(plots / f"machine-{name}.png"), f"{name}: {len(work.jobs)} jobs")
        rows += [_row(name, len(work.jobs), epoch, p, run) for p, run in runs.items()]
    return rows


def like_for_like() -> list[dict[str, Any]]:
    """The like-for-like batch in every block, with every factory protocol, at epochs of
    1 and 10 cycles, under every policy."""
    import yaml

    base = yaml.safe_load((EXAMPLES / "like-for-like.yaml").read_text(encoding="utf-8"))
    rows = []
    for protocol in FACTORY_PROTOCOLS:
        for block in ("fast", "intermediate", "compact"):
            for epoch in (1, 10):
                data = dict(base)
                data["machine"] = {
                    **base["machine"],
                    "block": block,
                    "epoch_cycles": epoch,
                    "factory": {"protocol": protocol},
                }
                work = wl.load(data, base=EXAMPLES)
                name = f"{protocol}/{block}"
                try:
                    runs = simulate(
                        work.machine, work.jobs, list(MACHINE_POLICIES), tenants=work.tenants
                    )
                except MachineError as refused:  # every policy: no schedule meets a budget
                    rows.append(
                        {
                            "workload": name,
                            "jobs": len(work.jobs),
                            "epoch": epoch,
                            "policy": "all",
                            "refused": refused.code,
                        }
                    )
                    continue
                rows += [_row(name, len(work.jobs), epoch, p, run) for p, run in runs.items()]
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workload | epoch | policy | makespan | speedup | alone / makespan | STP "
        "| mean slowdown | p95 slowdown | mean idle error | max idle error | past budget "
        "| tiles | factories | Jain |"
    )
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        if "refused" in r:
            lines.append(
                f"| {r['workload']} ({r['jobs']} jobs) | {r['epoch']} | {r['policy']} "
                f"| refused ({r['refused']}) |" + " |" * 11
            )
            continue
        lines.append(
            f"| {r['workload']} ({r['jobs']} jobs) | {r['epoch']} | {r['policy']} "
            f"| {r['makespan_cycles']:,} | {r['speedup']:.2f}x | {r['alone_over_makespan']:.2f} "
            f"| {r['stp']:.1f} | {r['mean_slowdown']:.1f} | {r['p95_slowdown']:.1f} "
            f"| {error_text(r['mean_idle'])} | {error_text(r['max_idle'])} | {r['over_budget']} "
            f"| {r['tiles']:.2f} | {r['factories']:.2f} | {r['jain']:.3f} |"
        )
    return "\n".join(lines)


def grid(rows: list[dict[str, Any]]) -> str:
    """The like-for-like rows as one line per setting: each policy's speedup and most
    idle error."""
    settings: dict[tuple[str, int], dict[str, str]] = {}
    for r in rows:
        cell = (
            f"refused ({r['refused']})"
            if "refused" in r
            else f"{r['speedup']:.2f}x / {error_text(r['max_idle'], 0)}"
        )
        settings.setdefault((r["workload"], r["epoch"]), {})[r["policy"]] = cell
    policies = [p for p in MACHINE_POLICIES if p != "exclusive"]
    lines = [
        "| protocol / block | epoch | " + " | ".join(policies) + " |",
        "|" + "---|" * (len(policies) + 2),
    ]
    for (name, epoch), cells in settings.items():
        if "all" in cells:
            lines.append(f"| {name} | {epoch} | {cells['all']} |" + " |" * (len(policies) - 1))
            continue
        lines.append(
            f"| {name} | {epoch} | " + " | ".join(cells.get(p, "") for p in policies) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="the scale jobs on 10^6 qubits")
    parser.add_argument("--study", action="store_true", help="the docs' experiment tables")
    parser.add_argument("--policy", default="fair-share", choices=MACHINE_POLICIES)
    parser.add_argument("--plots", type=Path, help="with --study: draw the workloads here")
    parser.add_argument("--jobs", type=int, default=10_000, help="scale jobs in all (10,000)")
    parser.add_argument("--workload", type=Path, help="write the scale workload here and stop")
    args = parser.parse_args()
    if args.workload is not None:
        import yaml

        args.workload.write_text(yaml.safe_dump(scaled(args.jobs)), encoding="utf-8")
        return
    record: dict[str, Any] = {"machine": machine()}
    print(describe(record["machine"]))
    if args.scale or not args.study:
        figure = scale(args.policy, args.jobs)
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
        batch = like_for_like()
        record["like_for_like"] = batch
        print()
        print(grid(batch))
    write_json(record, RESULTS / "machine.json")


if __name__ == "__main__":
    main()
