"""A QVM program of blocks through the kernel: its stored size counts each block once,
a chain of calls that binds past the node limit is refused at submit, and one within
its quotas runs with the samples of the same program written out, at a stated seed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from qmk.errors import QMKError
from qmk.kernel.config import config_from_dict
from support.kernel import run_kernel

KEY = "erin-key"
SEED = 20261129


def config(**kernel: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000, "cycles_per_s": 1e13},
            "kernel": {"worker_memory_mb": 1024, **kernel},
            "tenants": {"erin": {"key": KEY, "caps": ["CAP_ALLOC"]}},
        }
    )


async def submit(kernel: Any, graph: Any, shots: int) -> Any:
    reply = await kernel.q_negotiate_caps(tenant="erin", key=KEY, requested=["CAP_ALLOC"])
    sid = str(reply.session_id)
    accepted = await kernel.q_submit(
        session_id=sid, graph=graph, shots=shots, seed=SEED, target="logical"
    )
    return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)


BODY = [
    {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
    {"id": "t", "op": "APPLY_T", "vqs": ["a"]},
    {"id": "c", "op": "APPLY_CNOT", "vqs": ["a", "b"]},
    {"id": "r", "op": "APPLY_RY", "args": {"theta": 0.4}, "vqs": ["b"]},
]


def program(nodes: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "0.3",
        "program": {
            "nodes": [
                {"id": "a", "op": "ALLOC_LQ", "vqs": ["q0", "q1"]},
                *nodes,
                {"id": "m0", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["e0"]},
                {"id": "m1", "op": "MEASURE_Z", "vqs": ["q1"], "produces": ["e1"]},
                {"id": "f", "op": "FREE_LQ", "vqs": ["q0", "q1"]},
            ],
            "blocks": blocks,
        },
        "resources": {"vqs": ["q0", "q1"], "chs": [], "events": ["e0", "e1"]},
        "caps": ["CAP_ALLOC"],
    }


def calls() -> dict[str, Any]:
    """Three calls of one block, the second with its qubits swapped."""
    block = {"id": "g", "op": "BLOCK", "vqs": ["a", "b"], "body": BODY}
    rows = [
        {"id": f"k{i}", "op": "CALL", "args": {"block": "g"}, "vqs": vqs}
        for i, vqs in enumerate((["q0", "q1"], ["q1", "q0"], ["q0", "q1"]))
    ]
    return program(rows, [block])


def written_out() -> dict[str, Any]:
    """:func:`calls` with each call written out by hand."""
    rows = []
    for i, (a, b) in enumerate((("q0", "q1"), ("q1", "q0"), ("q0", "q1"))):
        for node in copy.deepcopy(BODY):
            node["id"] = f"{node['id']}{i}"
            node["vqs"] = [{"a": a, "b": b}[q] for q in node["vqs"]]
            rows.append(node)
    graph = program(rows, [])
    del graph["program"]["blocks"]
    graph["version"] = "0.2"
    return graph


def test_a_program_of_calls_runs_with_the_samples_of_the_program_written_out(tmp_path):
    async def body(kernel: Any) -> Any:
        return await submit(kernel, calls(), 200), await submit(kernel, written_out(), 200)

    blocks, flat = run_kernel(tmp_path, body, config=config())
    assert blocks.state == flat.state == "COMPLETED", (blocks.error, flat.error)
    assert blocks.result["counts"] == flat.result["counts"]
    assert len(blocks.result["counts"]) > 1


def test_max_graph_nodes_counts_each_block_once_and_its_rows(tmp_path):
    # 7 program rows + the block and its 4 rows = 12 stored rows: over a cap of 10
    async def body(kernel: Any) -> Any:
        with pytest.raises(QMKError) as caught:
            await submit(kernel, calls(), 3)
        return caught.value

    refused = run_kernel(tmp_path, body, config=config(max_graph_nodes=10))
    assert refused.code == "QS1006", refused
    assert "the graph stores 12 rows" in str(refused)


def test_a_chain_of_doubling_calls_is_refused_at_submit(tmp_path):
    chain = [{"id": "b0", "op": "BLOCK", "vqs": ["a"], "body": [BODY[1]]}]
    for k in range(1, 61):
        prior = {"op": "CALL", "args": {"block": f"b{k - 1}"}, "vqs": ["a"]}
        body = [{"id": "x", **prior}, {"id": "y", **prior}]
        chain.append({"id": f"b{k}", "op": "BLOCK", "vqs": ["a"], "body": body})
    bomb = program([{"id": "k", "op": "CALL", "args": {"block": "b60"}, "vqs": ["q0"]}], chain)

    async def body(kernel: Any) -> Any:
        with pytest.raises(QMKError) as caught:
            await submit(kernel, bomb, 1)
        return caught.value

    refused = run_kernel(tmp_path, body, config=config())
    assert "QV503" in str(refused) or refused.code == "QV503", refused
