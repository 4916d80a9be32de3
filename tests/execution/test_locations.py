"""A plan's noise locations, kept as columns, read as the rows the QEC layer puts there.

Every qubit of a step gets its idle wait since its clock (the end of its last step, or
the fence's time at an alloc), then the step's own error on its own code: after a gate,
before a measurement, none for a free. The rates are the code's ``pauli_error`` for the
cycles. Checked by hand on a program whose qubit is freed and allocated again on
another code across a fence.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from qmk.execution import executor
from qmk.execution.locations import Locations, Noise
from qmk.execution.plan import build_plan
from qmk.qec import logical_model
from qmk.qvm.asm import assemble

QUBIT = "qubit_gate_ns_e3"
D5, D3 = "logical:surface_code(d=5)", "logical:surface_code(d=3)"

REALLOCATED = f""".caps CAP_ALLOC
a: ALLOC_LQ vq:q, vq:r, profile="{D5}"
h: APPLY_H vq:q
c: APPLY_CNOT vq:q, vq:r
f: FREE_LQ vq:q
fe: FENCE_EPOCH
b: ALLOC_LQ vq:q, profile="{D3}"
c2: APPLY_CNOT vq:r, vq:q
m: MEASURE_Z vq:q, out:e
"""


def _plan(text: str, *, noise: bool = True):
    program = executor.load_program(assemble(text))
    return build_plan(
        program, noise=noise, qubit=QUBIT, default_profile="logical:surface_code(d=9)"
    )


def _row(step: int, before: bool, qubit: str, profile: str, cause: str) -> Noise:
    px, py, pz = logical_model(profile, QUBIT).pauli_error(1.0).as_tuple()
    return Noise(step=step, before=before, qubit=qubit, px=px, py=py, pz=pz, cause=cause)


def test_each_qubit_waits_from_its_clock_and_errs_on_the_code_of_its_latest_alloc():
    plan = _plan(REALLOCATED)
    # every op here takes one logical cycle on both codes
    assert [(n.id, t) for n, t in zip(plan.steps.nodes, plan.timing, strict=True)] == [
        ("a", (0.0, 1.0)),
        ("h", (1.0, 2.0)),
        ("c", (2.0, 3.0)),
        ("f", (3.0, 3.0)),
        ("fe", (3.0, 3.0)),
        ("b", (3.0, 4.0)),
        ("c2", (4.0, 5.0)),
        ("m", (5.0, 6.0)),
    ]
    assert list(plan.noise) == [
        _row(0, False, "q", D5, "op"),
        _row(0, False, "r", D5, "op"),
        _row(1, False, "q", D5, "op"),
        _row(2, False, "q", D5, "op"),
        _row(2, True, "r", D5, "idle"),  # r sat out the H
        _row(2, False, "r", D5, "op"),
        # the free errs not; the new q starts at the fence, on the d=3 code
        _row(5, False, "q", D3, "op"),
        _row(6, True, "r", D5, "idle"),  # r sat out the alloc
        _row(6, False, "r", D5, "op"),
        _row(6, False, "q", D3, "op"),
        _row(7, True, "q", D3, "measure"),  # a measurement's error comes before it
    ]


TELEPORTED = f""".caps CAP_ALLOC CAP_TELEPORT
a: ALLOC_LQ vq:q, vq:r, vq:s, profile="{D5}"
h: APPLY_H vq:q
t: TELEPORT_CNOT vq:q, vq:r
t2: TELEPORT_CNOT vq:s, vq:q
m: MEASURE_Z vq:r, out:e
"""


def test_a_teleported_cnots_gadget_rows_follow_its_slots_target_then_control():
    rows = [(r.step, r.before, r.qubit, r.cause) for r in _plan(TELEPORTED).noise]
    assert rows == [
        (0, False, "q", "op"),
        (0, False, "r", "op"),
        (0, False, "s", "op"),
        (1, False, "q", "op"),
        (2, False, "q", "op"),
        (2, True, "r", "idle"),  # r sat out the H
        (2, False, "r", "op"),
        (2, False, "r", "teleport"),  # X on the target, then Z on the control
        (2, False, "q", "teleport"),
        (3, True, "s", "idle"),
        (3, False, "s", "op"),
        (3, False, "q", "op"),
        (3, False, "q", "teleport"),
        (3, False, "s", "teleport"),
        (4, True, "r", "measure"),
    ]


def test_a_plan_without_noise_has_no_location():
    plan = _plan(REALLOCATED, noise=False)
    assert len(plan.noise) == 0 and not plan.noise and plan.noise == ()


def test_locations_read_as_rows_by_index_slice_and_iteration():
    rows = list(_plan(REALLOCATED).noise)
    locations = Locations.of(rows, ["q", "r"])
    assert locations == rows and locations == tuple(rows)
    assert locations[0] == rows[0] and locations[-1] == rows[-1]
    assert locations[2:5] == tuple(rows[2:5])
    with pytest.raises(IndexError):
        locations[len(rows)]
    assert np.array_equal(locations.rates(), [[r.px, r.py, r.pz] for r in rows])
    order = np.arange(len(rows))[::-1]
    assert list(locations.take(order)) == rows[::-1]
    assert pickle.loads(pickle.dumps(locations)) == rows
    assert Locations.of(rows, ["r", "q"]) == locations  # the rows, whatever the names' order
    assert Locations.of(rows[1:], ["q", "r"]) != locations


def test_columns_are_read_only():
    locations = _plan(REALLOCATED).noise
    with pytest.raises(ValueError):
        locations.steps[0] = 1


def test_an_index_past_the_narrow_columns_is_refused_not_wrapped():
    # steps, qubits and channels are int32: a wider value must not wrap around unseen
    one = np.zeros(1, dtype=np.int64)
    columns = dict(steps=one, before=one, qubits=one, channels=one, causes=one, names=["q"])
    assert Locations(**columns, table=np.zeros((1, 3))).steps.dtype == np.int32
    for name in ("steps", "qubits", "channels"):
        with pytest.raises(ValueError, match="past int32"):
            Locations(**{**columns, name: np.array([2**31])}, table=np.zeros((1, 3)))


WAITED = f""".caps CAP_ALLOC CAP_TELEPORT
a: ALLOC_LQ vq:q, vq:r, vq:s, profile="{D5}"
h: APPLY_H vq:q
t: TELEPORT_CNOT vq:q, vq:r
fe: FENCE_EPOCH
c: APPLY_CNOT vq:s, vq:q
m: MEASURE_Z vq:r, out:e
m2: MEASURE_Z vq:q, out:e2
"""


@pytest.mark.parametrize(
    ("text", "idle"),
    [
        (REALLOCATED, None),
        (TELEPORTED, None),
        (WAITED, {"a": 3.0, "t": 2.0, "fe": 4.0, "m": 1.0}),
        (WAITED, {"fe": 4.0}),
    ],
)
def test_a_plans_rows_are_kept_as_the_lowering_reads_them_its_runs_sorted_stably(text, idle):
    # the plan lays its rows in the lowering's order (by step, those before it first);
    # read back they are in the plan's, and the same rows sorted by run give the same runs
    program = executor.load_program(assemble(text))
    plan = build_plan(
        program,
        noise=True,
        qubit=QUBIT,
        default_profile="logical:surface_code(d=9)",
        idle=idle,
    )
    rows = list(plan.noise)
    laid, sorted_ = plan.noise.runs(), Locations.of(rows, plan.noise.names).runs()
    assert list(laid.rows) == list(sorted_.rows)
    assert laid.keys.tolist() == sorted_.keys.tolist()
    assert laid.bounds.tolist() == sorted_.bounds.tolist()
    assert list(laid.rows) != rows  # (moved: a step's idle rows before its own)
    machine = [k for k, row in enumerate(rows) if row.cause == "machine"]  # last in the plan
    assert bool(machine) == bool(idle)
    assert machine == list(range(len(rows) - len(machine), len(rows)))
