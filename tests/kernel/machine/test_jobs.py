"""A finished job's record as its run request carries it, and a footprint's timeline
(qmk.kernel.machine.jobs)."""

from __future__ import annotations

import random

import msgspec
import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.machine.jobs import WAIT_CAUSES, JobRecord, Timeline, _whole


def _record(waits: dict[str, float], waits_at: dict[int, float]) -> JobRecord:
    return JobRecord(
        id="j",
        tenant="t",
        program="",
        priority=0,
        arrival_cycle=5.0,
        start_cycle=100.0,
        end_cycle=130.5,
        tiles=4,
        module=0,
        logical_qubits=2,
        wait_cycles=waits,
        idle_logical_error=0.0,
        waits_at=waits_at,
    )


def test_a_records_waits_are_whole_cycles_in_its_own_order_whichever_way_it_waited():
    # the common record (waits in the queue only, every cause in order) takes a short
    # way to its whole cycles: its run's encoding must be the general rule's, bit for bit
    rng = random.Random(7)
    values = [0.0, -0.0, 3.0, 2.5, 1e-9, 7.0000000001, 95.0, 1e20]
    orders = [list(WAIT_CAUSES), list(reversed(WAIT_CAUSES)), list(WAIT_CAUSES[:2])]
    short = 0
    for _ in range(3000):
        order = rng.choice(orders)
        waits = {k: rng.choice(values) if rng.random() < 0.3 else 0.0 for k in order}
        waits_at = {} if rng.random() < 0.7 else {0: 1.0}
        run = _record(waits, waits_at).machine_run({})
        expected = {k: _whole(v) for k, v in waits.items()}
        assert msgspec.json.encode(run.wait_cycles) == msgspec.json.encode(expected), waits
        short += (
            not waits_at
            and order == list(WAIT_CAUSES)
            and not any(waits[k] for k in WAIT_CAUSES[1:])
        )
    assert short > 100  # the short way was taken, and agreed
    run = _record(dict.fromkeys(WAIT_CAUSES, 0.0) | {"queue": 95.0}, {}).machine_run({})
    assert msgspec.json.encode(run) == (
        b'{"arrival_cycle":5,"start_cycle":100,"end_cycle":131,"tiles":4,"module":0,'
        b'"wait_cycles":{"queue":95,"factory":0,"routing":0,"link":0,"decoder":0,'
        b'"preempted":0},"idle_logical_error":0.0,"error_budget":null,"preemptions":0,'
        b'"code_distance":0,"block":"","own_logical_error":0.0,"idle":{}}'
    )


@pytest.mark.parametrize("seed", range(4))
def test_run_from_gives_the_step_by_step_times_to_the_last_bit(seed):
    # from any step, at full rate or throttled, from a whole cycle or not, with steps of
    # whole and of fractional times, fences and steps of no time or no repetition
    rng = random.Random(seed)
    kinds = [
        lambda: Step(kind="gates", cycles=rng.choice([1, 2, 3, 4, 7]), repeat=rng.randint(0, 5)),
        lambda: Step(kind="idle", cycles=0),
        lambda: Step(kind="fence", cycles=0),
        lambda: Step(kind="measure", cycles=1, measurements=2),
    ]
    for _ in range(300):
        steps = tuple(rng.choice(kinds)() for _ in range(rng.randint(1, 6)))
        fp = Footprint(
            target="x",
            logical_qubits=1,
            block="fast",
            data_tiles=2,
            routing_tiles=2,
            code_distance=9,
            steps=steps,
        )
        tl = Timeline(fp)
        for index in range(len(steps) + 1):
            for start in (0.0, 40.0, 12345.0, 2.5, float(2**52), 7.0 + 1e-9):
                for f in (1.0, 0.75, 1 / 3):
                    got = tl.run_from(index, start, f)
                    assert got == tl.stepwise(index, start, f), (
                        steps,
                        index,
                        start,
                        f,
                    )
