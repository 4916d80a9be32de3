"""A program's text as its run's fault rewrite changes it: what a worker runs.

The kernel's fault policies say what they change in a job's program as a
:class:`~qmk.execution.request.Rewrite` in its run request (raised profiles, a channel's
delivered fidelity, idle cycles, added fences). The text with those changes is made where
the program is read to run: the worker, the audit's replay, a start the kernel plans
again on a degraded machine. A kernel that only admits and schedules never makes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from qmk.execution.request import Rewrite, canonical_profile

#: The op that stands for one idle logical cycle in a rewritten program (the identity).
IDLE_OP = "APPLY_RZ"


def rewritten(text: str, rewrite: Rewrite | None) -> str:
    """The QVM JSON ``text`` with ``rewrite``'s changes (the same text when there are
    none).

    >>> text = '{"program":{"nodes":[{"id":"m","op":"MEASURE_Z","vqs":["q"]}]}}'
    >>> rewritten(text, None) is text
    True
    >>> nodes = json.loads(rewritten(text, Rewrite(idle={"m": 1}, fences=("m",))))
    >>> [node["id"] for node in nodes["program"]["nodes"]]
    ['m', 'm__idle0_q', 'm__fence']
    """
    if not rewrite:
        return text
    graph = json.loads(text)
    nodes = graph["program"]["nodes"]
    ids = {node["id"] for node in nodes}
    out: list[dict[str, Any]] = []
    fences = set(rewrite.fences)
    for node in nodes:
        out.append(_changed(rewrite, node))
        for i in range(rewrite.idle.get(node["id"], 0)):
            for q in node.get("vqs", ()):
                out.append(_idle_node(node, q, i, ids))
        if node["id"] in fences:
            out.append({"id": _fresh(f"{node['id']}__fence", ids), "op": "FENCE_EPOCH"})
    graph["program"]["nodes"] = out
    return json.dumps(graph, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _changed(rewrite: Rewrite, node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its profile raised or its pair's fidelity set, if either applies."""
    op, args = node["op"], node.get("args") or {}
    if op == "ALLOC_LQ" and args.get("profile"):
        raised = rewrite.profiles.get(canonical_profile(args["profile"]))
        if raised is not None:
            return {**node, "args": {**args, "profile": raised}}
    elif op == "OPEN_CHAN" and node["id"] in rewrite.channels:
        opts = {**(args.get("opts") or {}), "fidelity": rewrite.channels[node["id"]]}
        return {**node, "args": {**args, "opts": opts}}
    return node


def _fresh(node_id: str, ids: set[str]) -> str:
    """``node_id``, made unique among ``ids`` (and added to them)."""
    while node_id in ids:
        node_id += "_"
    ids.add(node_id)
    return node_id


def _idle_node(after: Mapping[str, Any], qubit: str, index: int, ids: set[str]) -> dict[str, Any]:
    node_id = _fresh(f"{after['id']}__idle{index}_{qubit}", ids)
    node: dict[str, Any] = {"id": node_id, "op": IDLE_OP, "args": {"theta": 0.0}, "vqs": [qubit]}
    if after.get("guard") is not None:  # idle only when the measurement ran
        node["guard"] = after["guard"]
    return node


__all__ = ["IDLE_OP", "rewritten"]
