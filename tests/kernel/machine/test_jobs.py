"""A finished job's record as its run request carries it (qmk.kernel.machine.jobs)."""

from __future__ import annotations

import random

import msgspec

from qmk.kernel.machine.jobs import WAIT_CAUSES, JobRecord, _whole


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
        b'"preempted":0},"idle_logical_error":0.0,"idle":{}}'
    )
