"""The planner process (:mod:`qmk.kernel.admit.planner`): admission's plans and the
kernel's machine, built in a worker of a pool of one, answered as plain data.

Its pool here is the tests' :class:`~support.pools.GatedPool`, whose gate holds a plan
in the planner process until the test lets it through: so the planner is killed while
it plans, with no race on the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import msgspec
import pytest

from qmk.errors import UnavailableError
from qmk.execution import pricing
from qmk.execution.footprint import Footprint
from qmk.execution.priced import Priced
from qmk.execution.request import RunRequest, program_digest
from qmk.kernel.admit.planner import Planner
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.derive import config_machine
from qmk.kernel.machine.spec import MachineSpec
from qmk.kernel.pools.pool import WorkerPool
from qmk.kernel.service import Kernel
from qmk.qec.logical import logical_model
from support.kernel import BELL, WorkerGate, login, make_config, run_kernel
from support.pools import GatedPool

CONFIG = make_config()
PHYSICS = {
    "noise": True,
    "qubit": CONFIG.machine.qubit,
    "profile": CONFIG.machine.profile,
    "engine": None,
    "precision": None,
    "noise_model": None,
    "calibration": None,
    "max_bytes": 2**30,
}


def test_an_accepted_job_carries_its_plans_decoder_load_two_live_qubits_syndrome_bits(
    tmp_path: Path,
) -> None:
    # the Bell pair holds two logical qubits at its peak: its decoders' load is two
    # qubits' syndrome bits per second, priced by the planner and kept on the job for
    # the device's health (a start under a decoder capacity plans nothing in the kernel)
    one = logical_model(CONFIG.machine.profile, CONFIG.machine.qubit).decoder_bits_per_second
    priced = Priced(**pricing.price(json.dumps(BELL), **PHYSICS)["priced"])
    assert priced.decoder_bits_per_s == 2 * one > 0

    async def body(kernel: Kernel) -> float | None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        await kernel.q_wait(session_id=alice, job_id=job.job_id)
        held = kernel.supervisor.jobs.get(job.job_id) or kernel.supervisor.finished[job.job_id]
        return held.decoder_load

    assert run_kernel(tmp_path, body, config=CONFIG) == priced.decoder_bits_per_s


def test_a_plan_answered_by_the_planner_process_is_the_plan_made_here() -> None:
    text = json.dumps(BELL)
    here = Priced(**pricing.price(text, **PHYSICS)["priced"])
    pids: list[int] = []

    async def main() -> Priced:
        def start(loop: asyncio.AbstractEventLoop) -> WorkerPool:
            pool = WorkerPool(1, loop=loop, isolation=None)
            pids.extend(pool.pids)
            return pool

        planner = Planner(start)
        try:
            priced, placed = await planner.price(text, **PHYSICS)
            assert placed is None  # no footprint asked for
            return priced
        finally:
            planner.close()

    there = asyncio.run(main())
    assert there == here
    assert here.peak_physical_qubits > 0 and here.capacity >= 2
    assert pids and os.getpid() not in pids


def test_a_planner_killed_while_planning_costs_that_submit_an_unavailable_and_the_next_plan_is_made(
    tmp_path: Path,
) -> None:
    text = json.dumps(BELL)
    gate = WorkerGate(tmp_path)
    pools: list[WorkerPool] = []

    async def main() -> tuple[UnavailableError, Priced]:
        def start(loop: asyncio.AbstractEventLoop) -> WorkerPool:
            pools.append(GatedPool(1, loop=loop, gate=gate.path, isolation=None))
            return pools[-1]

        planner = Planner(start)
        try:
            held = asyncio.ensure_future(planner.price(text, **PHYSICS))
            while not pools or pools[0].busy() == 0:  # the plan is in the planner, held
                await asyncio.sleep(0.01)
            (pid,) = pools[0].pids
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(UnavailableError) as refused:
                await held
            gate.open()
            priced, _ = await planner.price(text, **PHYSICS)
            return refused.value, priced
        finally:
            planner.close()

    with gate:
        refusal, priced = asyncio.run(main())
    assert refusal.rpc_code == 1011
    assert refusal.details["reason"] == "planner-died"
    assert priced == Priced(**pricing.price(text, **PHYSICS)["priced"])


def test_a_plan_asked_with_its_place_comes_with_the_footprint_its_target_compiles() -> None:
    text = json.dumps(BELL)
    request = RunRequest.build(program_digest=program_digest(text), shots=10, seed=3)
    alone = Footprint.from_json(pricing.footprint(request.target, text, request)["footprint"])

    async def main() -> tuple[Priced, object, object]:
        planner = Planner(lambda loop: WorkerPool(1, loop=loop, isolation=None))
        try:
            priced, placed = await planner.price(text, **PHYSICS, place=(request.target, request))
            return priced, placed, await planner.footprint(request.target, text, request)
        finally:
            planner.close()

    priced, placed, asked = asyncio.run(main())
    assert priced == Priced(**pricing.price(text, **PHYSICS)["priced"])
    assert placed == asked == alone
    assert alone.logical_qubits == 2


def test_the_machine_the_planner_process_derives_is_the_machine_made_here() -> None:
    pids: list[int] = []

    async def main() -> MachineSpec:
        def start(loop: asyncio.AbstractEventLoop) -> WorkerPool:
            pool = WorkerPool(1, loop=loop, isolation=None)
            pids.extend(pool.pids)
            return pool

        planner = Planner(start)
        try:
            return await planner.machine(CONFIG)
        finally:
            planner.close()

    there = asyncio.run(main())
    assert there == config_machine(CONFIG) and there.table is CONFIG.machine
    assert pids and os.getpid() not in pids


def test_a_kernel_whose_machine_is_refused_does_not_open_and_frees_its_directory(
    tmp_path: Path,
) -> None:
    table = msgspec.structs.replace(CONFIG.machine, profile="logical:bacon_shor(d=5)")
    bad = msgspec.structs.replace(CONFIG, machine=table)

    async def main() -> MachineError:
        with pytest.raises(MachineError) as caught:
            await Kernel.open(bad, tmp_path / "data", workers=1)
        return caught.value

    error = asyncio.run(main())
    assert error.code == "QK503" and "patches" in error.message

    async def machine(kernel: Kernel) -> MachineSpec:
        return kernel.supervisor.machine.spec

    assert run_kernel(tmp_path, machine, workers=1) == config_machine(CONFIG)
