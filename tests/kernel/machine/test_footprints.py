"""Footprints: a program's lattice-surgery steps agree with the lattice-surgery schedule
and with the estimator; a generated program's with its logical counts."""

from __future__ import annotations

import pytest

from qmk.estimate.counts import LogicalCounts, count_graph
from qmk.estimate.estimator import estimate
from qmk.frontends import read_program
from qmk.ft.layout import block_tiles, layout_for
from qmk.ft.lower import lower
from qmk.ft.model import ft_model
from qmk.ft.schedule import schedule
from qmk.kernel.machine import programs
from qmk.kernel.machine.footprints import counts_footprint, program_footprint
from qmk.kernel.machine.spec import MachineSpec
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify
from support.paths import ROOT

CORPUS = sorted((ROOT / "tests" / "ft" / "programs").iterdir())


@pytest.mark.parametrize("block", ["fast", "intermediate", "compact"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_a_programs_footprint_is_its_lattice_surgery_schedule_without_the_factory_waits(
    path, block
):
    graph = read_program(str(path))
    fp = program_footprint(graph, MachineSpec.simple(tiles=100).with_(block=block))
    model = ft_model(count_graph(graph), "qubit_gate_ns_e3")
    lowered = lower(verify(graph))
    layout = layout_for(model, block, lowered.qubits[: lowered.data_qubits])
    sched = schedule(lowered, layout, model)
    # the schedule runs every op on one bus: its cycles are the ops' ticks plus the
    # ticks they waited for the (private) factory, which the machine shares instead
    assert fp.duration_cycles == sched.logical_cycles - sched.factory_wait_cycles
    assert fp.t_states == sched.magic_states_consumed
    assert fp.t_states == model.estimate["physicalCounts"]["breakdown"]["numTstates"]
    assert fp.tiles == layout.tiles and fp.block == block
    assert fp.logical_qubits == lowered.data_qubits


def test_a_programs_fences_are_the_footprints_preemption_points():
    graph = assemble(
        """
.version 0.2
.caps CAP_ALLOC
.vqs a b
.events m
alloc: ALLOC_LQ vq:a, vq:b, n=2
t1:    APPLY_T vq:a
f1:    FENCE_EPOCH
t2:    APPLY_T vq:b
t3:    APPLY_T vq:a
f2:    FENCE_EPOCH
m:     MEASURE_Z vq:a, out:m
free:  FREE_LQ vq:a, vq:b
"""
    )
    fp = program_footprint(graph, MachineSpec.simple(tiles=100))
    kinds = [(s.kind, s.repeat) for s in fp.steps]
    assert kinds == [("rotation", 1), ("fence", 1), ("rotation", 2), ("fence", 1), ("measure", 1)]
    assert fp.fences == 2 and fp.steps[1].node == "f1"


def test_a_generated_programs_footprint_spends_the_estimators_t_states_on_its_block():
    for text in (programs.adder(8), programs.qft(5), programs.random_clifford_t(30, 300, seed=3)):
        counts = programs.counts_of(text)
        for block in ("fast", "compact"):
            fp = counts_footprint(counts, MachineSpec.simple(tiles=10).with_(block=block))
            result = estimate(counts, {"qubitParams": {"name": "qubit_gate_ns_e3"}})
            assert fp.t_states == result["physicalCounts"]["breakdown"]["numTstates"]
            assert fp.tiles == block_tiles(block, counts.num_qubits)
            assert fp.measurements == counts.measurement_count + counts.ccz_count
            work = counts.t_count + counts.ccz_count + counts.rotation_count
            assert fp.fences == min(8, work) - 1


def test_a_toffoli_in_counts_is_four_one_tick_rotations_and_a_free_measurement():
    fp = counts_footprint(LogicalCounts(num_qubits=3, ccz_count=1), MachineSpec.simple(tiles=9))
    assert [(s.kind, s.cycles, s.repeat, s.t_states) for s in fp.steps] == [
        ("rotation", 1, 4, 1),
        ("measure", 0, 1, 0),
    ]
