"""A batch circuit's instructions kept as columns read as the instructions they stand for.

A lowered plan's plain gates and error sites are columns, the rest objects; read in
order they are the circuit a step at a time: each step's sites before it, its own
instructions, its sites after it. Checked by hand on a program with a mid-circuit
measurement and feed-forward, noise on, and against the stim compiler reading the same
rows as objects.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import stim

from qmk.engines.batch import BatchCircuit, Instruction, Kind
from qmk.engines.instructions import OBJECT, PLAIN, SITE, Instructions
from qmk.engines.stim_batch import compile_batch
from qmk.execution import batch, executor
from qmk.execution.plan import build_plan
from qmk.qvm.asm import assemble

#: A qubit read out through an ancilla, the ancilla reset by feed-forward.
READOUT = """.caps CAP_ALLOC
.vqs q a
.events s m
alloc: ALLOC_LQ vq:q, vq:a
h: APPLY_H vq:q
c: APPLY_CNOT vq:q, vq:a
s: MEASURE_Z vq:a, out:s
r: APPLY_X vq:a when ev:s == 1
m: MEASURE_Z vq:q, out:m
free: FREE_LQ vq:q, vq:a
"""


def _lowered(*, noise: bool, **options: bool) -> batch.LoweredPlan:
    program = executor.load_program(assemble(READOUT))
    plan = build_plan(
        program, noise=noise, qubit="qubit_gate_ns_e3", default_profile="logical:surface_code(d=3)"
    )
    lowered = batch.lower(plan, **options)
    assert lowered is not None
    return lowered


def _shape(rows: Instructions) -> list[tuple[str, tuple[int, ...]]]:
    return [(row.kind.value, row.qubits) for row in rows]


def test_a_noiseless_plan_lowers_to_its_steps_in_order():
    rows = _lowered(noise=False).circuit.instructions
    assert isinstance(rows, Instructions)
    assert list(rows) == [
        Instruction(kind=Kind.RESET, qubits=(0, 1)),
        Instruction(kind=Kind.GATE, qubits=(0,), gate="h"),
        Instruction(kind=Kind.GATE, qubits=(0, 1), gate="cx"),
        Instruction(kind=Kind.MEASURE, qubits=(1,)),
        Instruction(kind=Kind.GATE, qubits=(1,), gate="x", controls=(0,)),
        Instruction(kind=Kind.MEASURE, qubits=(0,)),
    ]
    assert rows.kinds.tolist() == [OBJECT, PLAIN, PLAIN, OBJECT, OBJECT, OBJECT]


def test_each_steps_sites_stand_before_and_after_it():
    """By hand, from the plan's locations: the alloc's own errors on q and a, H's on q,
    a's idle wait before the CNOT and the CNOT's on both, a's measurement error before
    it, and q's before its own."""
    rows = _lowered(noise=True).circuit.instructions
    site = "error_site"
    assert _shape(rows) == [
        ("reset", (0, 1)),
        (site, (0,)),
        (site, (1,)),
        ("gate", (0,)),
        (site, (0,)),
        (site, (1,)),
        ("gate", (0, 1)),
        (site, (0,)),
        (site, (1,)),
        (site, (1,)),
        ("measure", (1,)),
        ("gate", (1,)),
        (site, (0,)),
        ("measure", (0,)),
    ]
    # the sites stand beside the six rows, each before the row it names
    assert not (rows.kinds == SITE).any()
    assert rows.site_at.tolist() == [1, 1, 2, 2, 3, 3, 3, 5]


def test_a_herald_takes_the_record_bit_after_those_before_it():
    """Heralded, the seven sites before a's measurement take bits 0-6, the measurement
    7 (which the feed-forward reads), q's measurement error 8 and q's measurement 9."""
    lowered = _lowered(noise=True, heralded=True)
    assert lowered.herald_columns == (0, 1, 2, 3, 4, 5, 6, 8)
    assert lowered.event_columns == (7, 9)
    controlled = [row for row in lowered.circuit.instructions if row.controls]
    assert [row.controls for row in controlled] == [(7,)]


def test_rows_read_by_index_slice_iteration_and_pickle():
    rows = _lowered(noise=True).circuit.instructions
    listed = list(rows)
    assert [rows[i] for i in range(len(rows))] == listed
    assert rows[-1] == listed[-1] and rows[2:5] == tuple(listed[2:5])
    assert rows == tuple(listed) and rows == Instructions.of(listed)
    assert hash(rows) == hash(tuple(listed))
    assert pickle.loads(pickle.dumps(rows)) == rows
    with pytest.raises(IndexError):
        rows[len(rows)]
    with pytest.raises(ValueError, match="different lengths"):
        Instructions(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(0))


def test_columns_and_objects_compile_to_the_same_stim_circuit_and_flips():
    """The compiler writes a plain gate from the columns as a fixed-width line, and
    from an object as text: stim reads one circuit, and every error site flips the
    same record bits."""
    lowered = _lowered(noise=True)
    columns = compile_batch(lowered.circuit)
    objects = compile_batch(
        BatchCircuit(num_qubits=2, instructions=tuple(lowered.circuit.instructions))
    )
    assert columns is not None and objects is not None
    assert str(columns.circuit) == str(objects.circuit)
    assert str(columns.circuit) == "R 0 1\nH 0\nCX 0 1\nM 1\nCX rec[-1] 1\nM 0"
    assert stim.Circuit(columns.flip_text) == stim.Circuit(objects.flip_text)
    sites = np.arange(columns.num_sites)
    assert columns.num_sites == 8
    assert columns.site_qubits.tolist() == objects.site_qubits.tolist()
    assert np.array_equal(columns.flips(sites), objects.flips(sites))
    assert columns.targets == objects.targets == 4


def test_a_gate_stim_cannot_express_is_not_compiled_from_the_columns():
    rows = Instructions(
        np.array([PLAIN]), np.array([0]), np.array([0, 1]), np.array([0]), gates=[("t", ())]
    )
    assert compile_batch(BatchCircuit(num_qubits=1, instructions=rows)) is None


def test_an_identity_writes_no_line_and_a_qubit_past_the_circuit_widens_it():
    rows = Instructions(
        np.array([PLAIN, PLAIN, SITE, PLAIN]),
        np.array([0, 1, 0, 2]),
        np.array([0, 1, 2, 3, 5]),
        np.array([0, 0, 0, 0, 12]),
        gates=[("i", ()), ("h", ()), ("cx", ())],
        probs=[(0.1, 0.0, 0.0)],
    )
    sampler = compile_batch(BatchCircuit(num_qubits=2, instructions=rows))
    assert sampler is not None
    assert str(sampler.circuit) == "H 0\nCX 0 12"
    assert sampler.circuit.num_qubits == 13
    assert sampler.site_offsets.tolist() == [len(sampler.flip_text.splitlines()[0]) + 1]
