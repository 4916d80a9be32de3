"""A program's text as its run's fault rewrite changes it (qmk.execution.rewritten)."""

from __future__ import annotations

import json

from qmk.execution.request import Rewrite
from qmk.execution.rewritten import rewritten


def test_a_rewrite_adds_idle_cycles_and_fences_and_raises_profiles() -> None:
    text = json.dumps(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {
                        "id": "a",
                        "op": "ALLOC_LQ",
                        "args": {"profile": "logical:surface_code(d=3)"},
                        "vqs": ["q"],
                    },
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["e"]},
                    {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
                ]
            },
            "resources": {"vqs": ["q"], "chs": [], "events": ["e"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    rewrite = Rewrite(
        profiles={"logical:surface_code(d=3)": "logical:surface_code(d=5)"},
        idle={"m": 2},
        fences=("a",),
    )
    nodes = json.loads(rewritten(text, rewrite))["program"]["nodes"]
    assert [n["op"] for n in nodes] == [
        "ALLOC_LQ",
        "FENCE_EPOCH",
        "MEASURE_Z",
        "APPLY_RZ",
        "APPLY_RZ",
        "FREE_LQ",
    ]
    assert nodes[0]["args"]["profile"] == "logical:surface_code(d=5)"
    assert rewritten(text, Rewrite()) == text
    assert rewritten(text, None) == text
