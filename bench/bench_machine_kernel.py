"""The shared machine driven alone as a kernel drives it: its CPU and Python calls a job.

A kernel's side of the machine (``SharedMachine``: the check at a submit, the admission
that follows it, the machine task's turns, the release of each job whose schedule ended)
fed kernel jobs of a Bell pair's footprint (one footprint object for all, as admission's
settled answers give a program's jobs), arriving ``--rate`` jobs a second of machine
clock, the clock moved to each next event as the task's clock wait moves it,
``--reads`` the figures read every so many machine-seconds (``q_machine_status``: the
the speedup, computed on demand then), nothing else of the kernel around it. Docs:
``docs/machine.md`` (a kernel's figures in bounded memory).

    python bench/bench_machine_kernel.py [--jobs 20000] [--rate 600] [--policy fair-share]
        [--tenants 1] [--read-every-s 0] [--rounds 3]

Each round runs the jobs once, timed in CPU seconds; then one more counts Python calls
(a profile hook: slower, not timed). Not a test: it prints figures (and writes
``bench/results/machine-kernel.json``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from _common import RESULTS, describe, load_averages, machine, write_json
from qmk.defaults import MACHINE_POLICIES
from qmk.execution import target as targets
from qmk.execution.footprint import Footprint
from qmk.execution.request import MachineRun, Policy, RunRequest
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualMachineClock
from qmk.kernel.records.jobs import Job
from qmk.kernel.running.shared_machine import SharedMachine
from qmk.qvm.files import read_graph

ROOT = RESULTS.parent.parent


def bell_footprint() -> Footprint:
    """The footprint the logical target gives ``examples/bell.qvm.asm``."""
    graph = read_graph(str(ROOT / "examples" / "bell.qvm.asm"))
    request = RunRequest(program_digest="0" * 64, shots=100, seed=1)
    target = targets.get(request.target)
    return target.compile(target.read(graph.to_json()), request).footprint


def jobs(count: int, tenants: int) -> list[Job]:
    """``count`` kernel jobs of a Bell pair, sharing one footprint object (admission's
    settled answers give a program's jobs one)."""
    footprint = bell_footprint()
    out = []
    for i in range(count):
        tenant = f"t{i % tenants}"
        request = RunRequest(program_digest="ab" * 32, shots=100, seed=i, policy=Policy())
        job = Job(
            job_id=f"job-{i:08d}",
            tenant=tenant,
            graph="",
            request=request,
            caps=(),
            required_caps=(),
            physical_qubits=324,
            qubits={tenant: 2},
        )
        job.footprint = footprint
        out.append(job)
    return out


def drive(args: argparse.Namespace, todo: list[Job]) -> int:
    """One run of the jobs ``todo``; the jobs released (all of them)."""
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 100_000_000, "policy": args.policy},
            "tenants": {f"t{k}": {"key": "k" * 32} for k in range(args.tenants)},
        }
    )
    clock = ManualMachineClock()
    released: list[MachineRun] = []
    shared = SharedMachine(config, lambda job, run: released.append(run), clock=clock)
    per_s = 1e9 / shared.spec.cycle_time_ns
    gap = per_s / args.rate
    every = args.read_every_s * per_s if args.read_every_s else math.inf
    reads = every

    at = shared.turn()  # the task's first turn: the cycle its clock wait returns at
    for i, job in enumerate(todo):
        arrival = math.floor(i * gap)
        while at <= arrival:
            clock.advance(int(at) - clock.cycle())
            at = shared.turn()
        clock.advance(arrival - clock.cycle())
        shared.check(job)
        shared.admit(job)
        if shared.woken:  # the job ends before the task's wait returns
            at = shared.turn()
        if clock.cycle() >= reads:
            shared.status(job.tenant)
            reads += every
    while at != math.inf:
        clock.advance(int(at) - clock.cycle())
        at = shared.turn()
    return len(released)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=600.0, help="jobs a machine-second")
    parser.add_argument("--policy", default="fair-share", choices=MACHINE_POLICIES)
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--read-every-s", type=float, default=0.0, help="0: never read")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    record: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    print(describe(record["machine"]))
    cpu = []
    for _ in range(args.rounds):
        todo = jobs(args.jobs, args.tenants)  # made apart: a kernel's admission makes them
        start = time.process_time()
        assert drive(args, todo) == args.jobs
        cpu.append((time.process_time() - start) / args.jobs * 1e6)
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    todo = jobs(args.jobs, args.tenants)
    sys.setprofile(count)
    try:
        drive(args, todo)
    finally:
        sys.setprofile(None)
    record["cpu_us_per_job"] = cpu
    record["python_calls_per_job"] = calls / args.jobs
    record["load_average_at_end"] = load_averages()
    print(
        f"{args.jobs:,} jobs under {args.policy}, {args.rate:g} a machine-second: CPU "
        f"{min(cpu):.1f} / {sorted(cpu)[len(cpu) // 2]:.1f} / {max(cpu):.1f} us a job "
        f"(min / median / max of {args.rounds}), {calls / args.jobs:.1f} Python calls a "
        f"job (the driver's own included); load {record['load_average_at_end'][0]:.2f}"
    )
    write_json(record, RESULTS / "machine-kernel.json")


if __name__ == "__main__":
    main()
