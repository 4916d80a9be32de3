"""The machine scheduler at scale, and the study of docs/machine.md.

``--scale`` (the default): 10,000 generated jobs (adders, QFTs, random Clifford+T up to
1,000 logical qubits; four tenants, Poisson arrivals in machine time) on a machine of
10^6 physical qubits, schedule-only, through the same workload reader and scheduler as
``qmk machine simulate``: the wall and CPU time of each phase (reading and compiling
each distinct program once, the runtimes alone, the policy, the ``exclusive`` baseline)
and in all, with the load averages (the machine is shared: read the figure with them),
and what the policy did a job (decisions, fits, projections, reservations: counts the
load does not move). ``--jobs N`` scales it (N / 4 jobs a tenant, the same arrival
rates); ``--workload OUT`` writes it as a workload file for ``qmk machine simulate`` and
stops.

``--study``: the three workloads of ``examples/machine/`` (uniform small jobs; a few
large among many small; T-heavy jobs contending for factories) under every policy at
epochs of 1 cycle and of the workload's own, as the Markdown table ``docs/machine.md``
carries (speedups beside the idle errors they cost); ``--plots DIR`` draws each
workload's utilization and slowdowns there.

``--like-for-like``: ``--workloads N`` (18) held-out workloads of arXiv:2604.25976's
setting (16-32 random Clifford+T programs of 20-200 logical qubits at once, 200,000
physical qubits, a quarter in factories, every job budgeted 1e-3). Each policy runs in
its fastest configuration (block, code distance, factory protocol) that keeps every
job's whole error within budget, against ``exclusive`` in its own fastest
(:mod:`qmk.kernel.machine.baseline`); the median, least and most speedup per policy
(``bench/results/machine-like.json``), and the packing bound: the most speedup any
policy can reach there. ``--storage-tiles N`` gives the policies' machine N storage
tiles a module; the baseline keeps the faster of the machine with and without them.

    python bench/bench_machine.py [--scale] [--jobs N] [--workload OUT.yaml] [--study]
        [--policy P (the default policy)] [--plots DIR] [--like-for-like [--workloads N]
        [--qubit Q [--distance D]] [--storage-tiles N]]

Not a test: it prints figures (and writes ``bench/results/machine.json``).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, describe, load_averages, machine, write_json
from qmk.defaults import MACHINE_POLICIES
from qmk.defaults import MACHINE_POLICY as DEFAULT_POLICY
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
            # a 1,000-qubit program's own error is 0.054 at best (d = 15): a whole-error
            # budget of the machine's 0.01 is refused (QK505)
            "error_budget": 0.1,
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
    """The scale workload (``jobs`` jobs on 10^6 physical qubits): the wall time and the
    CPU time (this process's, ``time.process_time``: what the issue's goal counts, and
    what a loaded host moves least) of each phase."""
    marks = [(time.perf_counter(), time.process_time())]
    work = wl.load(scaled(jobs))
    marks.append((time.perf_counter(), time.process_time()))
    alone, shifts = alone_runs(work.machine, work.jobs)
    marks.append((time.perf_counter(), time.process_time()))
    run = run_policy(work.machine, work.jobs, policy, tenants=work.tenants, alone=alone)
    marks.append((time.perf_counter(), time.process_time()))
    base = exclusive_baseline(
        work.machine, work.jobs, tenants=work.tenants, alone=alone, shifts=shifts
    )
    marks.append((time.perf_counter(), time.process_time()))
    data = run.to_json(jobs=False)
    phases = ("read_and_compile", "runtimes_alone", "policy", "exclusive")

    def spans(k: int) -> dict[str, float]:
        out = {name: marks[i + 1][k] - marks[i][k] for i, name in enumerate(phases)}
        return {**out, "total": marks[-1][k] - marks[0][k]}

    return {
        "jobs": len(work.jobs),
        "distinct_programs": work.compiled,
        "physical_qubits": work.machine.physical_qubits,
        "policy": policy,
        "seconds": spans(0),
        "cpu_seconds": spans(1),
        "makespan_cycles": data["makespan_cycles"],
        "speedup_vs_exclusive": base / run.makespan,
        "utilization": data["utilization"],
        "load_average_at_end": load_averages(),
        # what the policy did a job: decisions, and a budget policy's fits, projections
        # and reservations (counts the host's load does not move)
        "work_per_job": {k: v / len(work.jobs) for k, v in sorted(run.work.items())},
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


#: The like-for-like study (arXiv:2604.25976's setting): programs a workload, their
#: logical qubits, the machine, every job's budget.
LIKE_JOBS = (16, 32)
LIKE_QUBITS = (20, 200)
LIKE_MACHINE: dict[str, Any] = {
    "physical_qubits": 200_000,
    "factory_share": 0.25,
    "error_budget": 1e-3,
    "epoch_cycles": 1,
}
LIKE_TENANTS = 4
#: A like-for-like machine's qubit parameter set and least code distance (None: defaults).
Hardware = tuple[str, int] | None


def like_workload(seed: int, hardware: Hardware = None, storage: int = 0) -> dict[str, Any]:
    """Held-out like-for-like workload ``seed``: 16-32 random Clifford+T programs of
    20-200 logical qubits (10 gates a qubit, 3/7 of them T), arriving at once, dealt to
    four tenants in turn, on 200,000 physical qubits with a quarter in factories, every
    job budgeted 1e-3. ``hardware``: the machine's qubit parameter set and its least code
    distance (None: the kernel's defaults); ``storage``: its ``storage_tiles`` a module
    (0: the kernel's default)."""
    import random

    rng = random.Random(f"like-for-like/{seed}")
    count = rng.randint(*LIKE_JOBS)
    jobs: list[list[dict[str, Any]]] = [[] for _ in range(LIKE_TENANTS)]
    for i in range(count):
        qubits = rng.randint(*LIKE_QUBITS)
        program = {"random": qubits, "seed": rng.randrange(1 << 30)}
        jobs[i % LIKE_TENANTS].append({"program": program, "id": f"j{i}"})
    machine = dict(LIKE_MACHINE)
    if storage:
        machine["storage_tiles"] = storage
    if hardware is not None:
        machine["qubit"], distance = hardware
        machine["profile"] = f"logical:surface_code(d={distance})"
    return {
        "machine": machine,
        "seed": seed,
        "tenants": [{"name": f"t{k}", "jobs": jobs[k]} for k in range(LIKE_TENANTS)],
    }


def like_for_like(
    workloads: int,
    policies: list[str],
    *,
    whole: bool = True,
    hardware: Hardware = None,
    storage: int = 0,
) -> dict[str, Any]:
    """Each policy's speedup over the fastest exclusive baseline on ``workloads``
    held-out workloads: ``exclusive`` with each job alone in its own fastest
    configuration (block, distance, factory protocol) that keeps its whole error within
    its budget (``whole`` False: only its idle error, the budgets' reading before issue
    77), as the kernel chooses each job's placement; each policy in its own fastest
    configuration of the machine. The shared baseline (one configuration for every job)
    is reported beside it, and the packing bound
    (:func:`~qmk.kernel.machine.baseline.packing_bound`): the most speedup any policy
    can reach over that baseline.

    ``storage``: the policies' machine has that many ``storage_tiles`` a module. The
    baseline keeps the fastest of the machine with them and without (each job's
    fastest of either: the jobs arrive at once), so it stays the fastest exclusive
    configuration of the same machine."""
    from qmk.kernel.machine.baseline import (
        each_job_fastest,
        fastest,
        fastest_exclusive,
        packing_bound,
    )

    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    for seed in range(workloads):
        data = like_workload(seed, hardware, storage)
        work = wl.load(data)

        def load(tune: Any, data: dict[str, Any] = data) -> wl.Workload:
            return wl.load(data, tune=tune)

        base = each_job_fastest(load, work.machine, whole=whole)
        shared = fastest_exclusive(load, work.machine, epoch_cycles=1, whole=whole)
        if storage:
            bare = like_workload(seed, hardware)
            base = _faster_each(base, each_job_fastest(_loader(bare), work.machine, whole=whole))
            without = fastest_exclusive(_loader(bare), work.machine, epoch_cycles=1, whole=whole)
            if without.best is not None and (
                shared.best is None
                or (without.best.makespan_s or 0) < (shared.best.makespan_s or 0)
            ):
                shared = without
        bound = packing_bound(load, work.machine)
        row: dict[str, Any] = {
            "seed": seed,
            "jobs": len(work.jobs),
            "logical_qubits": sorted(j.footprint.logical_qubits for j in work.jobs),
            "exclusive": base.to_json(),
            "exclusive_shared": _side(shared.best),
            "packing_bound": None
            if bound is None
            else {
                "configuration": bound.configuration.label,
                "makespan_s": bound.makespan_s,
                "binds": bound.binds,
                "speedup": bound.speedup(base.makespan_s),
            },
        }
        for name in policies:
            found = fastest(load, work.machine, name, epoch_cycles=1, whole=whole)
            side = _side(found.best)
            if found.best is not None and found.best.makespan_s:
                side["speedup"] = base.speedup(found.best.makespan_s)
                side["speedup_over_shared"] = shared.speedup(found.best.makespan_s)
            row[name] = side
        rows.append(row)
        print(
            f"  workload {seed}: {row['jobs']} jobs, exclusive {base.makespan_s}, "
            f"shared {row['exclusive_shared'].get('makespan_s')}",
            flush=True,
        )
    shared_over = [
        r["exclusive_shared"]["makespan_s"] / r["exclusive"]["makespan_s"]
        for r in rows
        if r["exclusive_shared"] and r["exclusive"]["makespan_s"]
    ]
    bounds = [
        r["packing_bound"]["speedup"] if r["packing_bound"] else 0.0
        for r in rows
        if r["exclusive"]["makespan_s"]
    ]
    summary: dict[str, Any] = {
        "exclusive_shared_over_each_job": {
            "median": statistics.median(shared_over) if shared_over else None,
            "min": min(shared_over, default=None),
            "max": max(shared_over, default=None),
        },
        "packing_bound": {
            "median": statistics.median(bounds) if bounds else None,
            "min": min(bounds, default=None),
            "max": max(bounds, default=None),
            "unheld": sum(1 for r in rows if not r["packing_bound"]),
        },
    }
    for name in policies:
        speedups = [r[name]["speedup"] for r in rows if r[name].get("speedup") is not None]
        worst = [r[name]["max_error_over_budget"] for r in rows if r[name]]
        summary[name] = {
            "workloads": len(speedups),
            "median_speedup": statistics.median(speedups) if speedups else None,
            "min_speedup": min(speedups, default=None),
            "max_speedup": max(speedups, default=None),
            "max_error_over_budget": max(worst, default=None),
            "configurations": dict(
                collections.Counter(r[name]["configuration"] for r in rows if r[name])
            ),
        }
    return {
        "budget_counts": "whole error" if whole else "idle error only",
        "qubit_and_least_distance": list(hardware) if hardware else "the kernel's defaults",
        "storage_tiles": storage,
        "baseline": "exclusive, each job alone in its own fastest configuration",
        "workloads": rows,
        "summary": summary,
        "default_policy": DEFAULT_POLICY,
        "seconds": time.perf_counter() - began,
        "load_average_at_end": load_averages(),
    }


def _loader(data: dict[str, Any]) -> Any:
    """The workload ``data`` read in a configuration (``tune``)."""
    return lambda tune: wl.load(data, tune=tune)


def _faster_each(a: Any, b: Any) -> Any:
    """Of two per-job baselines of one like-for-like workload (its jobs arrive at once,
    so its makespan is their seconds end to end), each job's faster choice."""
    from qmk.kernel.machine.baseline import EachJob

    if a.makespan_s is None or b.makespan_s is None:
        return b if a.makespan_s is None else a
    theirs = {c.job: c for c in b.choices}
    choices = tuple(min(c, theirs[c.job], key=lambda x: x.seconds) for c in a.choices)
    return EachJob(makespan_s=sum(c.seconds for c in choices), choices=choices)


def _side(best: Any) -> dict[str, Any]:
    """One side of a comparison: its configuration, makespan and worst job (empty: no
    configuration keeps every budget)."""
    if best is None:
        return {}
    return {
        "configuration": best.configuration.label,
        "makespan_s": best.makespan_s,
        "makespan_cycles": best.makespan_cycles,
        "max_error_over_budget": best.worst_over_budget,
    }


def like_table(result: dict[str, Any]) -> str:
    """The like-for-like summary as Markdown: each policy's median, least and most
    speedup, its worst job's whole error over budget, and the configurations it ran in."""
    lines = [
        "| policy | workloads | median | min | max | max error / budget | configurations |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in result["summary"].items():
        if name in ("exclusive_shared_over_each_job", "packing_bound"):
            continue
        if s["median_speedup"] is None:
            lines.append(f"| {name} | 0 | - | - | - | - | no configuration keeps every budget |")
            continue
        mark = " (default)" if name == result["default_policy"] else ""
        configs = ", ".join(f"{k} x{v}" for k, v in sorted(s["configurations"].items()))
        lines.append(
            f"| {name}{mark} | {s['workloads']} | {s['median_speedup']:.2f}x "
            f"| {s['min_speedup']:.2f}x | {s['max_speedup']:.2f}x "
            f"| {s['max_error_over_budget']:.2f} | {configs} |"
        )
    bound = result["summary"]["packing_bound"]
    if bound["median"] is not None:
        lines.append(
            f"| packing bound | {len(result['workloads'])} | {bound['median']:.2f}x "
            f"| {bound['min']:.2f}x | {bound['max']:.2f}x | - | "
            f"no configuration holds every job within budget on {bound['unheld']} |"
        )
    own = result["summary"]["exclusive_shared_over_each_job"]
    if own["median"] is not None:
        lines.append(
            f"\nBaseline: `exclusive` with each job alone in its own fastest configuration. "
            f"`exclusive` in one shared configuration takes a median {own['median']:.2f}x "
            f"its makespan ({own['min']:.2f}-{own['max']:.2f}x)."
        )
    return "\n".join(lines)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="the scale jobs on 10^6 qubits")
    parser.add_argument("--study", action="store_true", help="the docs' experiment tables")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=MACHINE_POLICIES)
    parser.add_argument("--plots", type=Path, help="with --study: draw the workloads here")
    parser.add_argument("--jobs", type=int, default=10_000, help="scale jobs in all (10,000)")
    parser.add_argument("--workload", type=Path, help="write the scale workload here and stop")
    parser.add_argument(
        "--like-for-like",
        action="store_true",
        help="held-out like-for-like workloads against the fastest exclusive configuration",
    )
    parser.add_argument(
        "--workloads", type=int, default=18, help="with --like-for-like: how many (18)"
    )
    parser.add_argument(
        "--qubit",
        help="with --like-for-like: the qubit parameter set (e.g. qubit_gate_ns_e4)",
    )
    parser.add_argument(
        "--distance", type=int, help="with --qubit: the machine's least code distance"
    )
    parser.add_argument(
        "--storage-tiles",
        type=int,
        default=0,
        help="with --like-for-like: the policies' storage tiles a module (the baseline "
        "keeps the faster of with and without)",
    )
    args = parser.parse_args()
    hardware = None if args.qubit is None else (args.qubit, args.distance or 9)
    if args.workload is not None:
        import yaml

        args.workload.write_text(yaml.safe_dump(scaled(args.jobs)), encoding="utf-8")
        return
    record: dict[str, Any] = {"machine": machine()}
    print(describe(record["machine"]))
    if args.like_for_like:
        policies = [p for p in MACHINE_POLICIES if p != "exclusive"]
        results = {}
        for whole in (True, False):
            result = like_for_like(
                args.workloads,
                policies,
                whole=whole,
                hardware=hardware,
                storage=args.storage_tiles,
            )
            results["whole_error" if whole else "idle_error_only"] = result
            print(f"budgets count the {result['budget_counts']}:")
            print(like_table(result))
            print(
                f"{args.workloads} workloads in {result['seconds']:.0f} s; load average "
                f"{result['load_average_at_end'][0]:.2f} at the end"
            )
        write_json({"machine": record["machine"], **results}, RESULTS / "machine-like.json")
        return
    if args.scale or not args.study:
        figure = scale(args.policy, args.jobs)
        record["scale"] = figure
        s, c = figure["seconds"], figure["cpu_seconds"]
        print(
            f"{figure['jobs']:,} jobs ({figure['distinct_programs']} distinct programs) on "
            f"{figure['physical_qubits']:,} physical qubits under {figure['policy']}: "
            f"{s['total']:.1f} s in all, {c['total']:.1f} s of CPU (read and compile "
            f"{c['read_and_compile']:.1f} s, runtimes alone {c['runtimes_alone']:.2f} s, "
            f"{figure['policy']} {c['policy']:.1f} s, exclusive {c['exclusive']:.1f} s of "
            f"CPU); load average {figure['load_average_at_end'][0]:.2f} at the end"
        )
        print(
            f"makespan {figure['makespan_cycles']:,} cycles, speedup over exclusive "
            f"{figure['speedup_vs_exclusive']:.2f}x, utilization {figure['utilization']}"
        )
        work = ", ".join(f"{v:.2f} {k}" for k, v in figure["work_per_job"].items())
        print(f"a job: {work}")
    if args.study:
        rows = [row for name in STUDY for row in study_rows(name, args.plots)]
        record["study"] = rows
        print(table(rows))
    write_json(record, RESULTS / "machine.json")


if __name__ == "__main__":
    main()
