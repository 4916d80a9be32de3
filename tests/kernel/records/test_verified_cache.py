"""The verified-program cache is bounded in nodes as well as in programs (issue 32,
item 5): a tenant submitting 99,990-node programs cannot make it pin 256 of them."""

from __future__ import annotations

import json

from qmk.kernel.records import programs
from qmk.kernel.records.programs import VERIFIED_CACHE_NODES, VerifiedCache
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
