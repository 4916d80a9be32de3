"""A plan's steps, their calls and its micro-ops are not tracked by the cyclic garbage
collector (issue 47): a kernel keeps the plans of the programs it admits, and a
100,000-node plan tracked was 100,000-300,000 objects for every full collection to walk
with the interpreter held. They stay values: equal by their fields, hashable when their
fields are, picklable."""

from __future__ import annotations

import gc
import pickle

from qmk.execution.plan import build_plan, expand
from qmk.execution.trajectories import MicroOp, noiseless_ops
from qmk.qvm.graph import from_json
from qmk.qvm.verify import verify

#: A measured qubit, a gate guarded by it, and a composite op (MEASURE_ANGLE: its calls).
PROGRAM = verify(
    from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["q0", "q1"]},
                    {"id": "h", "op": "APPLY_H", "vqs": ["q0"]},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["m"]},
                    {
                        "id": "x",
                        "op": "APPLY_X",
                        "vqs": ["q1"],
                        "guard": {"event": "m", "equals": 1},
                    },
                    {
                        "id": "r",
                        "op": "MEASURE_ANGLE",
                        "args": {"angle": 0.5},
                        "vqs": ["q1"],
                        "produces": ["r"],
                    },
                    {"id": "f", "op": "FREE_LQ", "vqs": ["q0", "q1"]},
                ]
            },
            "resources": {"vqs": ["q0", "q1"], "chs": [], "events": ["m", "r"]},
            "caps": ["CAP_ALLOC"],
        }
    )
)


def test_a_plans_steps_calls_and_micro_ops_are_not_tracked() -> None:
    plan = build_plan(
        PROGRAM, noise=False, qubit="qubit_gate_ns_e3", default_profile="logical:surface_code(d=9)"
    )
    calls = [call for step in plan.steps for call in step.calls]
    ops = noiseless_ops(plan).ops
    assert calls, "the program has a composite op (its calls are checked too)"
    assert any(op.guard is not None for op in ops)
    assert not any(gc.is_tracked(item) for item in (*plan.steps, *calls, *ops))


def test_steps_and_micro_ops_stay_values() -> None:
    node = PROGRAM.graph.nodes[4]
    assert expand(node) == expand(node)
    op = MicroOp("gate", ("q",), gate="rx", params=(0.5,))
    assert op == MicroOp("gate", ("q",), gate="rx", params=(0.5,))
    assert hash(op) == hash(pickle.loads(pickle.dumps(op)))
    assert op.kind == "gate" and op.event == -1
