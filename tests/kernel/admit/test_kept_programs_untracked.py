"""What a kernel keeps of a big program it admitted is not walked by the cyclic garbage
collector (issue 47, ``big-valid-graph-rpc``).

The kernel keeps a verified program (its records' cache), its plan and its micro-ops (the
executor's and the router's memos). Each full collection walks every object the collector
tracks, with the interpreter held: a kept 99,990-node program was some 300,000 tracked
objects (a ``PlanStep`` per node in each of two plans, a ``MicroOp`` per node), a 60-200 ms
stall of the event loop each time. Kept as untracked values, the program adds a bounded
handful, whatever its size.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from qmk.kernel.service import Kernel
from support.kernel import alice_and_bob, chain_graph, login, run_kernel

#: Nodes of the big program: above the admission's offload threshold, so it is verified
#: and planned in the budget's threads as a tenant's big program is.
NODES = 40_000


def guarded_graph(nodes: int) -> dict[str, Any]:
    """``nodes`` nodes on two qubits: one measured, then X gates on the other, each
    guarded by that measurement (a guard, its term and their tuple per node)."""
    guard = {"event": "m0", "equals": 1}
    body: list[dict[str, Any]] = [
        {"id": "a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["q", "r"]},
        {"id": "m0", "op": "MEASURE_Z", "vqs": ["r"], "produces": ["m0"]},
    ]
    body += [
        {"id": f"x{i}", "op": "APPLY_X", "vqs": ["q"], "guard": guard} for i in range(nodes - 4)
    ]
    body += [
        {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
        {"id": "f", "op": "FREE_LQ", "vqs": ["q", "r"]},
    ]
    return {
        "version": "0.2",
        "program": {"nodes": body},
        "resources": {"vqs": ["q", "r"], "chs": [], "events": ["m0", "m"]},
        "caps": ["CAP_ALLOC"],
    }


def tracked() -> int:
    """The objects the cyclic collector tracks now, after a full collection."""
    gc.collect()
    return len(gc.get_objects())


@pytest.mark.parametrize("make", [chain_graph, guarded_graph], ids=["chain", "guarded"])
def test_a_big_admitted_program_adds_under_one_percent_of_its_nodes_in_tracked_objects(
    tmp_path: Path, make: Any
) -> None:
    async def body(kernel: Kernel) -> int:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        # a small program first: what the kernel makes once (imports, pools) is made
        small = await kernel.q_submit(session_id=alice, graph=chain_graph(10), shots=1, seed=1)
        await kernel.q_wait(session_id=alice, job_id=small.job_id, timeout_ms=60_000)
        before = tracked()
        big = await kernel.q_submit(session_id=alice, graph=make(NODES), shots=1, seed=1)
        done = await kernel.q_wait(session_id=alice, job_id=big.job_id, timeout_ms=120_000)
        assert done.state == "COMPLETED", done
        return tracked() - before

    added = run_kernel(tmp_path, body, workers=1, config=alice_and_bob(verify_nodes_per_s=1e9))
    assert added < NODES // 100, f"{added} tracked objects more for a {NODES}-node program"
