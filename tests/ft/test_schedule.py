"""The lattice-surgery schedule: ticks per PPM by block, the routing bus, and T rotations
waiting for their factory's states, checked on programs whose schedule is worked out by
hand here."""

from __future__ import annotations

import pytest

from qmk.ft.errors import FTError
from qmk.ft.layout import layout_block
from qmk.ft.lower import lower
from qmk.ft.model import Factory, FTModel
from qmk.ft.schedule import schedule
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify


def model(
    *, duration: int = 10, copies: int = 1, per_run: int = 1, per_rotation: int | None = None
) -> FTModel:
    return FTModel(
        family="surface_code",
        distance=7,
        qubit="qubit_gate_ns_e3",
        patch_qubits=98,
        cycle_time_ns=2800,
        logical_error_rate=0.0,
        factory=Factory(
            copies=copies,
            duration_cycles=duration,
            duration_ns=duration * 2800,
            states_per_run=per_run,
            physical_qubits=3920,
            output_error_rate=0.0,
            description="test",
        ),
        ts_per_rotation=per_rotation,
        estimate={},
    )


def program(body: str, qubits: str = "a b c d", events: str = "m n o"):
    text = (
        f".version 0.2\n.caps CAP_ALLOC\n.vqs {qubits}\n.events {events}\n"
        f"al: ALLOC_LQ {', '.join('vq:' + q for q in qubits.split())}, n={len(qubits.split())}\n"
        + body
        + "\n"
    )
    return lower(verify(assemble(text)))


def run(lowered, block="fast", **kw):
    return schedule(lowered, layout_block(block, len(lowered.qubits)), model(**kw))


@pytest.mark.parametrize(("k", "duration"), [(1, 10), (4, 10), (5, 3), (3, 1)])
def test_t_gates_fed_by_one_factory_wait_for_each_run(k, duration):
    lowered = program("\n".join(f"t{i}: APPLY_T vq:a" for i in range(k)))
    sched = run(lowered, duration=duration)
    # the i-th state is ready at duration * (i + 1); each rotation takes one tick
    assert sched.logical_cycles == k * duration + 1
    assert sched.factory_wait_cycles == duration + (k - 1) * (duration - 1)
    assert sched.routing_stalls == 0
    assert sched.magic_states_consumed == k == sched.ppm_count
    assert sched.runtime_ns == sched.logical_cycles * 2800


def test_more_factory_copies_deliver_states_together_and_the_bus_serialises_them():
    lowered = program("\n".join(f"t{i}: APPLY_T vq:{q}" for i, q in enumerate("abcd")))
    sched = run(lowered, duration=10, copies=4)
    assert [s.start for s in sched.slots] == [10, 11, 12, 13]
    assert sched.factory_wait_cycles == 10
    assert sched.routing_stalls == 1 + 2 + 3
    assert sched.logical_cycles == 14


def test_commuting_two_patch_measurements_share_the_routing_bus():
    lowered = program(
        "c1: APPLY_CNOT vq:a, vq:b\nc2: APPLY_CNOT vq:c, vq:d\n"
        "m1: MEASURE_Z vq:b, out:m\nm2: MEASURE_Z vq:d, out:n\nm3: MEASURE_Z vq:a, out:o"
    )
    sched = run(lowered)
    # Z_aZ_b and Z_cZ_d take a tick each, one after the other; Z_a needs no routing
    assert [(s.start, s.end) for s in sched.slots] == [(0, 1), (1, 2), (0, 0)]
    assert sched.routing_stalls == 1
    assert sched.logical_cycles == 2


@pytest.mark.parametrize(("block", "ticks"), [("fast", 1), ("intermediate", 5), ("compact", 9)])
def test_a_rotation_with_an_x_factor_takes_the_blocks_ticks(block, ticks):
    lowered = program("h: APPLY_H vq:a\nt: APPLY_T vq:a\nm: MEASURE_Z vq:b, out:m")
    sched = run(lowered, block, duration=1)
    assert sched.slots[0].end - sched.slots[0].start == ticks
    assert sched.logical_cycles == 1 + ticks


def test_an_op_waits_for_every_earlier_op_it_anticommutes_with():
    # R(X_a) then a measurement of Z_a: they anticommute, so the measurement waits
    lowered = program(
        "h: APPLY_H vq:a\nt: APPLY_T vq:a\nh2: APPLY_H vq:a\nm: MEASURE_Z vq:a, out:m"
    )
    sched = run(lowered, duration=4)
    assert [str(op) for op in lowered.ops] == ["R(+X___, +pi/8)", "M(+Z___) -> m"]
    assert sched.slots[1].start == sched.slots[0].end == 5


def test_a_controlled_clifford_starts_after_every_earlier_op_and_before_every_later_one():
    lowered = program(
        "t: APPLY_T vq:a\nm: MEASURE_Z vq:b, out:m\n"
        "s: APPLY_S vq:c when ev:m == 1\nx: MEASURE_Z vq:d, out:n"
    )
    assert [op.kind for op in lowered.ops] == ["rotation", "measure", "frame", "measure"]
    sched = run(lowered, duration=6)
    # the T waits 6 ticks for its state; Z_b and Z_d need no routing, yet the frame
    # update waits for the rotation's start and Z_d for the frame update
    assert [s.start for s in sched.slots] == [6, 0, 6, 6]
    assert sched.order == (1, 0, 2, 3)
    assert sched.ppm_count == 3


def test_an_arbitrary_rotation_takes_its_sequences_states_one_after_another():
    lowered = program("r: APPLY_RZ vq:a, theta=0.3")
    sched = run(lowered, duration=2, per_rotation=3)
    # states ready at 2, 4, 6; a T of the sequence takes a tick once its state is there
    assert (sched.slots[0].start, sched.slots[0].end) == (2, 7)
    assert sched.factory_wait_cycles == 2 + 1 + 1
    assert sched.magic_states_consumed == 3 == sched.ppm_count


def test_an_arbitrary_rotation_the_estimate_does_not_price_is_a_coded_error():
    lowered = program("r: APPLY_RZ vq:a, theta=0.3")
    with pytest.raises(FTError) as caught:
        run(lowered)
    assert caught.value.code == "QP102"
