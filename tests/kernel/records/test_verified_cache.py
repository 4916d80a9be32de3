"""The verified-program cache is bounded in nodes as well as in programs (issue 32,
item 5): a tenant submitting 99,990-node programs cannot make it pin 256 of them."""

from __future__ import annotations

import json

import pytest

from qmk.kernel.records import programs
from qmk.kernel.records.programs import VERIFIED_CACHE_NODES, VerifiedCache
from qmk.qvm.errors import VerificationError
from qmk.qvm.limits import Limits
from qmk.qvm.verify import FoldedProgram, VerifiedProgram
from support.kernel import chain_graph


def test_the_least_recently_used_go_first_past_the_node_bound() -> None:
    cache = VerifiedCache(size=10, nodes=100)
    for name in "abc":
        cache.put(name, 40, name.upper())
    assert cache.get("a") is None  # 120 nodes: the oldest went
    assert (cache.get("b"), cache.get("c"), cache.nodes, len(cache)) == ("B", "C", 80, 2)
    cache.get("b")  # b used last: c goes next
    cache.put("d", 30, "D")
    assert (cache.get("c"), cache.get("b"), cache.nodes) == (None, "B", 70)


def test_the_program_bound_still_holds_and_a_text_kept_again_is_counted_once() -> None:
    cache = VerifiedCache(size=2, nodes=1000)
    cache.put("a", 1, "A")
    cache.put("a", 5, "A2")
    assert (len(cache), cache.nodes, cache.get("a")) == (1, 5, "A2")
    cache.put("b", 1, "B")
    cache.put("c", 1, "C")
    assert (cache.get("a"), len(cache), cache.nodes) == (None, 2, 2)


def test_a_program_over_the_node_bound_alone_is_verified_and_not_kept() -> None:
    cache = VerifiedCache(size=10, nodes=10)
    cache.put("small", 4, "S")
    cache.put("huge", 11, "H")
    assert (cache.get("huge"), cache.get("small"), cache.nodes) == (None, "S", 4)


def test_the_processes_cache_holds_at_most_its_nodes() -> None:
    text = json.dumps(chain_graph(60), separators=(",", ":"))
    program = programs.verified(text)
    assert len(program.graph.nodes) == 60
    assert programs.verified(text) is program  # kept
    assert programs._CACHE.nodes <= VERIFIED_CACHE_NODES
    assert programs._CACHE.limit == VERIFIED_CACHE_NODES


def folded_text(turns: int) -> str:
    """A QVM 0.3 program of ``turns`` turns of T on one qubit (``turns + 2`` nodes)."""
    return json.dumps(
        {
            "version": "0.3",
            "program": {
                "nodes": [
                    {"id": "a", "op": "ALLOC_LQ", "vqs": ["q"]},
                    {
                        "id": "r",
                        "op": "REPEAT",
                        "args": {"count": turns},
                        "body": [{"id": "t", "op": "APPLY_T", "vqs": ["q"]}],
                    },
                    {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
                ]
            },
            "resources": {"vqs": ["q"], "chs": [], "events": []},
            "caps": ["CAP_ALLOC"],
        },
        separators=(",", ":"),
    )


def test_admission_keeps_a_folded_program_folded_and_a_worker_gets_it_unrolled() -> None:
    text, limits = folded_text(50), Limits(max_unrolled_nodes=100)
    admitted = programs.verified(text, limits, folded=True)
    assert isinstance(admitted, FoldedProgram)
    assert (admitted.totals.nodes, len(admitted.graph.nodes)) == (52, 3)
    ran = programs.verified(text, limits)  # a worker's: never the folded one it kept
    assert isinstance(ran, VerifiedProgram) and len(ran.graph.nodes) == 52
    assert programs.verified(text, limits, folded=True) is ran  # admission takes it too


def test_a_worker_refuses_what_admission_kept_folded_past_the_unrolling_limit() -> None:
    text, limits = folded_text(10**9), Limits(max_unrolled_nodes=1000)
    assert programs.verified(text, limits, folded=True).totals.nodes == 10**9 + 2
    with pytest.raises(VerificationError) as caught:
        programs.verified(text, limits)
    assert caught.value.code == "QV505"
    # kept by its limits: the same text under other limits is verified again
    assert programs.verified_kept(text, limits) is not None
    assert programs.verified_kept(text, Limits(max_unrolled_nodes=999)) is None
