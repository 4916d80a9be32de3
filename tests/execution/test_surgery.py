"""The lattice-surgery target: its footprint is its schedule's (ticks, T states, routed
PPMs, the block's tiles), and it refuses what it cannot honour with QM102."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from qmk.execution import target as targets
from qmk.execution.runs import build_request
from qmk.execution.surgery import SurgeryTarget
from qmk.execution.target import TargetError

PROGRAMS = Path(__file__).parents[1] / "ft" / "programs"


def executable(name: str, **options):
    target = SurgeryTarget()
    program = target.read(str(PROGRAMS / name))
    request = build_request(program, shots=10, seed=1, noise=False, qubit="qubit_gate_ns_e3")
    request = msgspec.structs.replace(request, target="lattice-surgery", target_options=options)
    return target.compile(program, request)


@pytest.mark.parametrize(
    ("name", "block"),
    [("toffoli.qasm", "fast"), ("qft3_approx.qasm", "intermediate"), ("resets.qvm.asm", "compact")],
)
def test_the_footprint_is_the_schedules_on_a_machine_whose_factories_are_always_ready(
    name, block
) -> None:
    surgery = executable(name, block=block)
    fp, sched, layout = surgery.footprint, surgery.schedule, surgery.layout
    assert fp.target == "lattice-surgery" and fp.block == block
    # the shared machine's factories are the machine's: their waits are never the
    # footprint's, or the machine would count them twice
    assert fp.duration_cycles == sched.logical_cycles - sched.factory_wait_cycles
    assert not any(s.kind == "idle" for s in fp.steps)
    assert fp.t_states == sched.magic_states_consumed
    assert fp.tiles == layout.tiles
    assert fp.data_tiles == sum(len(p) for p in layout.patches)
    assert fp.code_distance == surgery.model.distance
    # a rotation is two measurements (P x Z and the ancilla's X), a PPM one
    rotations = sum(1 for op in surgery.lowered.ops if op.kind == "rotation")
    per = surgery.model.ts_per_rotation or 0
    synths = sum(1 for op in surgery.lowered.ops if op.kind == "synth")
    assert fp.measurements == sched.ppm_count + rotations + synths * per
    routed = sum(s.repeat * s.cycles for s in fp.steps if s.routed)
    assert routed == fp.duration_cycles  # every tick is an op on the bus


def test_the_programs_fences_are_its_footprints_preemption_points() -> None:
    from qmk.qvm.asm import assemble

    target = SurgeryTarget()
    program = target.read(
        assemble(
            """
.caps CAP_ALLOC
a: ALLOC_LQ vq:a, vq:b
t1: APPLY_T vq:a
f1: FENCE_EPOCH
t2: APPLY_T vq:b
m: MEASURE_Z vq:a, out:m
"""
        )
    )
    request = build_request(program, shots=10, seed=1, noise=False, qubit="qubit_gate_ns_e3")
    request = msgspec.structs.replace(request, target="lattice-surgery")
    fp = target.compile(program, request).footprint
    assert [(s.kind, s.node) for s in fp.steps] == [
        ("rotation", "t1"),
        ("fence", "f1"),
        ("rotation", "t2"),
        ("measure", "m"),
    ]
    assert fp.fences == 1


def test_the_target_reads_its_block_from_its_options_and_refuses_others() -> None:
    assert executable("qft2.qasm").layout.block == "fast"  # the default
    with pytest.raises(TargetError) as caught:
        executable("qft2.qasm", block="roomy")
    assert caught.value.code == "QM102" and "block" in caught.value.message
    with pytest.raises(TargetError) as caught:
        executable("qft2.qasm", blok="fast")
    assert caught.value.code == "QM102" and "blok" in caught.value.message


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"precision": "single"}, "precision"),
        ({"noise_model": "depolarizing(p=0.001)"}, "noise_model"),
        ({"part": (0, 2)}, "part"),
    ],
)
def test_settings_it_cannot_honour_are_refused_naming_them(change, option) -> None:
    target = targets.get("lattice-surgery")
    program = target.read(str(PROGRAMS / "qft2.qasm"))
    request = build_request(program, shots=10, seed=1)
    request = msgspec.structs.replace(request, target="lattice-surgery", **change)
    with pytest.raises(TargetError) as caught:
        target.compile(program, request)
    assert caught.value.code == "QM102" and option in caught.value.message


def test_a_final_state_or_a_resume_is_refused() -> None:
    target = targets.get("lattice-surgery")
    program = target.read(str(PROGRAMS / "qft2.qasm"))
    request = msgspec.structs.replace(
        build_request(program, shots=10, seed=1), target="lattice-surgery"
    )
    with pytest.raises(TargetError):
        target.compile(program, request, final_state=True)
    with pytest.raises(TargetError) as caught:
        target.compile(program, request).run(10, 1, resume="state.json")
    assert "resume" in caught.value.message


def test_its_result_json_has_the_target_layout_and_schedule() -> None:
    result = executable("qft2.qasm").run(50, 4)
    data = result.to_json()
    assert data["target"] == "lattice-surgery"
    assert data["layout"]["block"] == "fast"
    assert max(op["end"] for op in data["schedule"]) == data["telemetry"]["logical_cycles"]
    assert data["telemetry"]["ppm_count"] >= 1
