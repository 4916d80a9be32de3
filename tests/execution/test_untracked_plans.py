"""A plan's calls and its micro-ops are not tracked by the cyclic garbage
collector (issue 47): a kernel keeps the plans of the programs it admits, and a
100,000-node plan tracked was 100,000-300,000 objects for every full collection to walk
with the interpreter held. They stay values: equal by their fields, hashable when their
fields are, picklable."""

from __future__ import annotations

import gc
import pickle

from qmk.execution.plan import build_plan, expand
from qmk.execution.trajectories import MicroOp, noiseless_ops
from qmk.qvm.graph import compact_text, from_json, loads
from qmk.qvm.verify import verify
from support.kernel import chain_graph

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


def test_a_plans_calls_and_micro_ops_are_not_tracked() -> None:
    plan = build_plan(
        PROGRAM, noise=False, qubit="qubit_gate_ns_e3", default_profile="logical:surface_code(d=9)"
    )
    calls = [call for node in plan.steps.nodes for call in expand(node)]
    ops = noiseless_ops(plan).ops
    assert calls, "the program has a composite op (its calls are checked too)"
    assert any(op.guard is not None for op in ops)
    assert not any(gc.is_tracked(item) for item in (*calls, *ops))


def test_calls_and_micro_ops_stay_values() -> None:
    node = PROGRAM.graph.nodes[4]
    assert expand(node) == expand(node)
    op = MicroOp("gate", ("q",), gate="rx", params=(0.5,))
    assert op == MicroOp("gate", ("q",), gate="rx", params=(0.5,))
    assert hash(op) == hash(pickle.loads(pickle.dumps(op)))
    assert op.kind == "gate" and op.event == -1


def test_a_big_program_read_verified_and_planned_leaves_few_objects_for_the_first_collection() -> (
    None
):
    # A tuple of numbers or strings is tracked until a collection meets it: kept one per
    # node (edges, timeline, micro-op bounds, handle tuples), the first young collection
    # after the program was made walked them all. Counted here with the collector off,
    # as the kernel's program threads run.
    nodes = 20_000
    text = compact_text(chain_graph(nodes))
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        program = verify(loads(text))
        plan = build_plan(
            program,
            noise=False,
            qubit="qubit_gate_ns_e3",
            default_profile="logical:surface_code(d=9)",
        )
        ops = noiseless_ops(plan)
        added = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert len(ops.ops) == len(plan.timing) == len(program.preds) == nodes
    assert program.preds[1] == (0,) and plan.timing[0] == (0.0, 1.0)
    assert added < nodes // 100, f"{added} tracked objects for a {nodes}-node program"
