"""``qmk machine``: the shared fault-tolerant machine in machine time (docs/machine.md).

``qmk machine show [--config F] [--png OUT] [--json]`` prints (and draws) the machine a
kernel config's ``[machine]`` declares: its modules' tiles by kind, factories, links and
decoder.

``qmk machine simulate WORKLOAD [--policy P ...] [--json] [--plot OUT.png]`` runs a
workload through the machine scheduler in schedule-only mode, under each policy, and
prints each one's metrics. With ``--json`` it prints, per policy, ``makespan_cycles``,
``utilization``, ``mean_slowdown``, ``p95_slowdown``, ``jain_fairness``,
``throughput_jobs_per_s``, ``speedup_vs_fastest_exclusive`` (over ``exclusive`` in the
fastest configuration of the machine that keeps every budget, ``fastest_exclusive``:
:mod:`~qmk.kernel.machine.baseline`), ``speedup_vs_exclusive`` (over ``exclusive`` in
the workload's own configuration), ``stp``, ``alone_over_makespan``,
``mean_idle_logical_error``, ``max_idle_logical_error``, ``over_budget``,
``tenant_shares`` and ``jobs``. A policy that refuses a job gives ``refused`` and the
others run.

``qmk machine status`` asks a running kernel for its shared machine now
(``q_machine_status``). It shows the policy and clock, jobs by state in machine time,
utilization, tenants' shares, Jain's index, throughput, slowdowns and the idle error
jobs were given. ``--speedup`` adds the speedup over ``exclusive``; each module's jobs
are shown in place. ``qmk machine policies`` lists the scheduling policies.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, TextIO

from qmk import defaults
from qmk.commands import AddCommand, duration_text, plural
from qmk.serve.options import int_in

if TYPE_CHECKING:
    from qmk.kernel.machine.baseline import Baseline
    from qmk.kernel.machine.simulate import PolicyRun, Refused
    from qmk.kernel.machine.spec import MachineSpec

#: How ``qmk machine status`` names a job of another tenant (its id is not shown).
OTHERS = "(another tenant's job)"
#: The machine of ``qmk machine show`` without ``--config``.
DEFAULT_PHYSICAL_QUBITS = 1_000_000


def _status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk machine status``: ``q_machine_status`` of the kernel, as text or JSON."""
    from qmk.commands.service import _client

    with _client(args) as client:
        reply = client.q_machine_status(speedup=args.speedup).to_json()
    if args.json:
        out.write(json.dumps(reply, ensure_ascii=False, indent=2) + "\n")
        return 0
    out.write(status_text(reply))
    return 0


def status_text(reply: dict[str, Any]) -> str:
    """``q_machine_status``'s reply for people.

    >>> print(status_text({"policy": "fair-share", "clock_cycle": 120, "now_cycle": 119,
    ...     "epoch_cycles": 10, "jobs": {"queued": 1, "running": 2, "stopped": 0, "done": 3},
    ...     "utilization": {"tiles": 0.5, "factories": 1.0, "links": 0.0},
    ...     "tenant_shares": {"a": 0.75, "b": 0.25}, "jain_fairness": 0.8,
    ...     "throughput_jobs_per_s": 2.5, "mean_slowdown": 1.5, "p95_slowdown": 2.0,
    ...     "mean_idle_logical_error": 2e-05, "max_idle_logical_error": 0.0003,
    ...     "over_budget": 0, "speedup_vs_exclusive": 1.5, "floorplan": [{"module": 0, "tiles": 20,
    ...     "jobs": [{"job": "job_x", "tenant": "a", "first_tile": 0, "tiles": 9,
    ...     "state": "running"}]}]}), end="")
    machine: fair-share, cycle 120 (decided up to 119), epochs of 10 cycles
    jobs: 1 queued, 2 running, 0 stopped, 3 done
    utilization: tiles 50.0%, factories 100.0%, links 0.0%
    tenants' shares: a 75.0%, b 25.0% (Jain's index 0.800)
    throughput 2.5 jobs/s; slowdown mean 1.50, p95 2.00; speedup over exclusive 1.50x
    idle logical error: mean 2.0e-05, max 3.0e-04; 0 jobs past their budget
    module 0 (20 tiles): tiles 0-8 a job_x running
    """
    from qmk.kernel.machine.metrics import error_text

    jobs = reply["jobs"]
    shares = ", ".join(f"{t} {v:.1%}" for t, v in reply["tenant_shares"].items()) or "none"
    speedup = reply["speedup_vs_exclusive"]
    lines = [
        f"machine: {reply['policy']}, cycle {reply['clock_cycle']} (decided up to "
        f"{reply['now_cycle']}), epochs of {reply['epoch_cycles']} cycles",
        "jobs: " + ", ".join(f"{jobs[k]} {k}" for k in ("queued", "running", "stopped", "done")),
        "utilization: " + ", ".join(f"{k} {v:.1%}" for k, v in reply["utilization"].items()),
        f"tenants' shares: {shares} (Jain's index {reply['jain_fairness']:.3f})",
        f"throughput {reply['throughput_jobs_per_s']:.3g} jobs/s; slowdown mean "
        f"{reply['mean_slowdown']:.2f}, p95 {reply['p95_slowdown']:.2f}; speedup over "
        "exclusive " + ("not asked (--speedup)" if speedup is None else f"{speedup:.2f}x"),
        f"idle logical error: mean {error_text(reply['mean_idle_logical_error'])}, max "
        f"{error_text(reply['max_idle_logical_error'])}; "
        f"{plural(reply['over_budget'], 'job')} past their budget",
    ]
    for module in reply["floorplan"]:
        placed = [
            f"tiles {j['first_tile']}-{j['first_tile'] + j['tiles'] - 1} {j['tenant']} "
            f"{j['job'] or OTHERS} {j['state']}"
            for j in module["jobs"]
        ]
        lines.append(
            f"module {module['module']} ({module['tiles']} tiles): "
            + ("; ".join(placed) or "empty")
        )
    return "\n".join(lines) + "\n"


def _machine(path: str | None, err: TextIO) -> MachineSpec:
    """The machine of the config at ``path``, as ``qmk serve`` reads it (its machine's
    warnings said on ``err``)."""
    from qmk.errors import warning_line
    from qmk.kernel.config import config_from_dict, load_config, machine_warnings
    from qmk.kernel.machine.derive import config_machine

    if path is None:
        return config_machine(
            config_from_dict({"machine": {"physical_qubits": DEFAULT_PHYSICAL_QUBITS}})
        )
    config = load_config(path)
    err.writelines(warning_line(path, notice) for notice in machine_warnings(config))
    return config_machine(config)


def show_text(machine: MachineSpec, png: str | None = None) -> str:
    """What ``qmk machine show`` prints (``png``: where ``--png`` drew it)."""
    from qmk.kernel.machine.draw import TEXT_WIDTH, module_text

    count = len(machine.modules)
    lines = [
        f"machine: {machine.physical_qubits:,} physical qubits in {count} "
        f"module{'s' if count > 1 else ''}, {machine.profile} on {machine.qubit}",
        f"logical cycle: {duration_text(machine.cycle_time_ns)} ({machine.distance} code "
        "cycles); a tile: "
        f"{machine.patch_qubits} physical qubits; logical error {machine.logical_error_rate:.3g} "
        "per patch and cycle",
        f"jobs' block: {machine.block}; epoch: {machine.epoch_cycles} logical cycles; "
        f"policy: {machine.policy}",
    ]
    for m in machine.modules:
        f = m.factory
        lines.append(
            f"module {m.index}: {m.tiles:,} job tiles, {m.bus_tiles} routing tiles "
            f"({m.routing_lanes} state{'s' * (m.routing_lanes != 1)}/cycle in "
            f"{plural(m.routing_segments, 'segment')}), {f.copies} "
            f"factory cop{'y' if f.copies == 1 else 'ies'} x {f.tiles_per_copy} tiles, "
            f"{m.storage_tiles} storage tiles"
        )
    f = machine.modules[0].factory
    from qmk.kernel.machine.factories import PROTOCOLS

    lines.append(
        f"factory: {f.protocol} ({f.label}): {f.states_per_run:.3g} T "
        f"state{'s' if f.states_per_run != 1 else ''} per run of {f.duration_cycles} cycles "
        f"on average, output error {f.output_error_rate:.3g}; {f.rate:.4g} states/cycle per "
        f"module, store {f.store}"
    )
    if f.protocol in PROTOCOLS:
        lines.append(f"factory figures: {PROTOCOLS[f.protocol]}")
    budget = machine.error_budget
    said = "none" if budget is None else f"{budget:g} idle logical error a job, unless it names one"
    lines.append(f"error budget: {said}")
    from qmk.kernel.machine.derive import factory_note

    note = factory_note(machine)
    if note is not None:
        lines.append(note)
    link = machine.link
    lines.append(
        "links: none (one module)"
        if link.bell_pairs_per_cycle <= 0
        else f"links: {link.bell_pairs_per_cycle:g} Bell pairs/cycle in all, fidelity "
        f"{link.fidelity:g}, latency {link.latency_cycles} cycles"
    )
    cap = machine.decoder_bits_per_cycle
    lines.append(
        f"decoder: {'no limit' if cap is None else f'{cap:.4g} syndrome bits/cycle'} "
        f"(a live data tile sends {machine.tile_bits_per_cycle:g} bits/cycle)"
    )
    first = machine.modules[0]
    if first.width + first.factory.tiles_per_copy < TEXT_WIDTH and first.tiles <= 4000:
        lines.append(module_text(first))
        lines.append("o job tile; . routing; F T factory; S storage")
    elif png is None:
        lines.append("(too wide to draw as text: --png OUT.png draws it)")
    if png is not None:
        lines.append(f"drawn in {png}")
    return "\n".join(lines) + "\n"


def _show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    machine = _machine(args.config, err)
    if args.png is not None:
        from qmk.kernel.machine.draw import draw_machine

        draw_machine(machine, args.png, f"{args.config or 'default machine'}: {machine.profile}")
    if args.json:
        out.write(json.dumps(machine.to_json(), indent=2) + "\n")
    else:
        out.write(show_text(machine, args.png))
    return 0


def _table(runs: dict[str, PolicyRun | Refused], base: Baseline | None = None) -> str:
    """The metrics table: ``speedup`` over the fastest exclusive configuration (``base``;
    ``-`` where none keeps every budget), ``same-config`` over ``exclusive`` in the
    workload's own configuration, ``err/budget`` the most any job's whole error is of its
    budget."""
    from qmk.kernel.machine.baseline import worst_over_budget
    from qmk.kernel.machine.metrics import error_text
    from qmk.kernel.machine.simulate import Refused

    rows = [
        (
            "policy",
            "makespan",
            "tiles",
            "factories",
            "links",
            "mean slow",
            "p95 slow",
            "Jain",
            "jobs/s",
            "speedup",
            "same-config",
            "mean idle",
            "max idle",
            "err/budget",
        )
    ]
    refused = []
    for name, run in runs.items():
        if isinstance(run, Refused):
            refused.append(f"{name}: refused: {run.error}")
            continue
        data = run.to_json(jobs=False)
        util = data["utilization"]
        rows.append(
            (
                name,
                f"{data['makespan_cycles']:,}",
                f"{util['tiles']:.3f}",
                f"{util['factories']:.3f}",
                f"{util['links']:.3f}",
                f"{data['mean_slowdown']:.2f}",
                f"{data['p95_slowdown']:.2f}",
                f"{data['jain_fairness']:.3f}",
                f"{data['throughput_jobs_per_s']:.4g}",
                _speedup(base, run),
                f"{data['speedup_vs_exclusive']:.2f}x",
                error_text(data["mean_idle_logical_error"]),
                error_text(data["max_idle_logical_error"]),
                f"{worst_over_budget(run.records):.2g}",
            )
        )
    if any(row[9].startswith("(") for row in rows[1:]):
        refused.append(
            "(speedup): a job's whole error passed its budget in this configuration: not "
            "like for like"
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ) + "".join(f"\n{line}" for line in refused)


def _fastest_speedup(base: Baseline | None, run: PolicyRun) -> float | None:
    """``run``'s speedup over the fastest exclusive configuration (seconds over seconds)."""
    if base is None:
        return None
    return base.speedup(run.makespan * run.machine.cycle_time_ns * 1e-9)


def _speedup(base: Baseline | None, run: PolicyRun) -> str:
    """The speedup cell: in parentheses where a job ended past its budget (its whole
    error), so it is not like for like."""
    from qmk.kernel.machine.baseline import worst_over_budget

    speedup = _fastest_speedup(base, run)
    if speedup is None:
        return "-"
    if worst_over_budget(run.records) > 1.0:
        return f"({speedup:.2f}x)"
    return f"{speedup:.2f}x"


def _baseline_line(base: Baseline, machine: MachineSpec) -> str:
    best = base.best
    own = f"{machine.block}/d={machine.distance}/{machine.modules[0].factory.protocol}"
    if best is None or best.makespan_s is None or best.makespan_cycles is None:
        return (
            f"speedup: no exclusive configuration of the machine keeps every job's whole "
            f"error within its budget ({len(base.tried)} tried); this one is {own}\n"
        )
    return (
        f"speedup over the fastest exclusive configuration that keeps every job's whole "
        f"error within its budget: {best.configuration.label}, "
        f"{best.makespan_cycles:,.0f} cycles of {best.cycle_time_ns} ns "
        f"({best.makespan_s:.4g} s; {len(base.tried)} configurations tried); this one is "
        f"{own}, same-config: over exclusive in it\n"
    )


def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.errors import warning_line
    from qmk.kernel.machine import workload as wl
    from qmk.kernel.machine.simulate import Refused, simulate

    work = wl.read(args.workload)
    err.writelines(warning_line(args.workload, notice) for notice in work.warnings)
    machine = work.machine
    if args.epoch_cycles is not None:
        machine = machine.with_(epoch_cycles=args.epoch_cycles)
    policies = args.policy or list(work.policies or (machine.policy,))
    runs = simulate(machine, work.jobs, policies, tenants=work.tenants)
    ran = {name: run for name, run in runs.items() if not isinstance(run, Refused)}
    base = None
    if args.baseline == "fastest":
        from qmk.kernel.machine.baseline import fastest_exclusive

        path = args.workload
        base = fastest_exclusive(
            lambda tune: wl.read(path, tune=tune), machine, epoch_cycles=machine.epoch_cycles
        )
    status = 0 if len(ran) == len(runs) else 1
    if args.plot is not None and ran:
        from qmk.kernel.machine.draw import draw_runs

        draw_runs(ran, args.plot, f"{args.workload}: {len(work.jobs)} jobs")
    if args.json:
        data: dict[str, Any] = {name: run.to_json() for name, run in runs.items()}
        for name, run in ran.items():
            data[name]["speedup_vs_fastest_exclusive"] = _fastest_speedup(base, run)
            data[name]["fastest_exclusive"] = None if base is None else base.to_json()
        out.write(json.dumps(data) + "\n")
        return status
    out.write(
        f"{args.workload}: {plural(len(work.jobs), 'job')} of "
        f"{plural(len(work.tenants), 'tenant')} "
        f"({plural(work.compiled, 'distinct program')}) on {machine.physical_qubits:,} "
        f"physical qubits, {machine.total_tiles:,} job tile{'s' * (machine.total_tiles != 1)} in "
        f"{plural(len(machine.modules), 'module')}; epoch "
        f"{plural(machine.epoch_cycles, 'cycle')}\n"
    )
    if base is not None:
        out.write(_baseline_line(base, machine))
    out.write(_table(runs, base) + "\n")
    if args.plot is not None and ran:
        out.write(f"drawn in {args.plot}\n")
    return status


def _policies(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk machine policies``: each scheduling policy in one line (``--json``: with
    what it declares)."""
    from qmk.kernel.machine.policies import POLICIES, policy_class

    classes = {name: policy_class(name) for name in POLICIES}
    if args.json:
        listed = [
            {
                "name": name,
                "summary": cls.summary(),
                "supply": cls.supply,
                "budgets": cls.budgets,
                "preempts": cls.preempts,
                "default": name == defaults.MACHINE_POLICY,
            }
            for name, cls in classes.items()
        ]
        out.write(json.dumps(listed, indent=2) + "\n")
        return 0
    width = max(len(name) for name in classes)
    for name, cls in classes.items():
        mark = " (default)" if name == defaults.MACHINE_POLICY else ""
        out.write(f"{name.ljust(width)}  {cls.summary()}{mark}\n")
    return 0


def register(add: AddCommand) -> None:
    """Add ``qmk machine show``, ``simulate``, ``policies`` and ``status``."""
    parser = add(
        "machine", "the shared machine in machine time: show it, simulate workloads", limits=False
    )
    sub = parser.add_subparsers(dest="machine_command", metavar="COMMAND", required=True)
    show = sub.add_parser("show", help="print (and draw) the machine a kernel config declares")
    show.add_argument(
        "--config",
        metavar="F",
        help=f"kernel.toml whose [machine] to show (default: {DEFAULT_PHYSICAL_QUBITS:,} "
        "physical qubits, the defaults)",
    )
    show.add_argument("--png", metavar="OUT", help="also draw the floorplan as a PNG")
    show.add_argument("--json", action="store_true", help="print the machine as JSON")
    show.set_defaults(run=_show)
    sim = sub.add_parser(
        "simulate", help="run a workload through the machine scheduler (schedule only)"
    )
    sim.add_argument("workload", metavar="WORKLOAD", help="the workload file (YAML or JSON)")
    sim.add_argument(
        "--policy",
        action="append",
        choices=defaults.MACHINE_POLICIES,
        help="a policy to run (repeat for several; default: the file's, else the machine's)",
    )
    sim.add_argument(
        "--epoch-cycles",
        type=int_in(1),  # an epoch of 0 cycles divides by zero, a negative one never ends
        metavar="N",
        help="epoch length in place of the machine's (logical cycles, 1 or more)",
    )
    sim.add_argument(
        "--baseline",
        choices=("fastest", "same"),
        default="fastest",
        help="speedups over the fastest exclusive configuration of the machine that keeps "
        "every budget (default; runs exclusive in each block, distance and factory "
        "protocol), or only over exclusive in the workload's own configuration (same)",
    )
    sim.add_argument("--json", action="store_true", help="print each policy's metrics as JSON")
    sim.add_argument(
        "--plot", metavar="OUT.png", help="draw utilization over time and slowdowns per policy"
    )
    sim.set_defaults(run=_simulate)
    pol = sub.add_parser("policies", help="list the scheduling policies, one line each")
    pol.add_argument("--json", action="store_true", help="print them as JSON")
    pol.set_defaults(run=_policies)
    from qmk.commands.service import _client_options

    status = sub.add_parser("status", help="print a running kernel's shared machine now")
    _client_options(status)
    status.add_argument(
        "--speedup",
        action="store_true",
        help="also compute the speedup over exclusive of the latest arrivals (a simulation)",
    )
    status.set_defaults(run=_status, syscall="q_machine_status")
