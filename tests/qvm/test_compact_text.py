"""A graph's compact JSON text written in pieces, and :class:`GraphText` (issue 32,
item 5): the same text ``json.dumps`` writes in one call, so stored graphs, digests and
caches see no difference."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest

from qmk.qvm.graph import (
    COMPACT_PIECE,
    Graph,
    GraphText,
    Guard,
    GuardTerm,
    Node,
    compact_text,
    free_in_pieces,
    graph_compact_text,
    loads,
)
from qmk.qvm.sorted_text import canonical_graph_text, canonical_text


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def graph(nodes: int, **extra: Any) -> dict[str, Any]:
    body = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": 1}, "vqs": ["q"]}]
    body += [
        {"id": f"x{i}é", "op": "APPLY_RZ", "args": {"theta": i / 7}, "vqs": ["q"]}
        for i in range(nodes - 3)
    ]
    body += [
        {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
        {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
    ]
    return {
        "version": "0.2",
        **extra,
        "program": {"nodes": body},
        "resources": {"vqs": ["q"], "chs": [], "events": ["m"]},
        "caps": ["CAP_ALLOC"],
    }


@pytest.mark.parametrize(
    "nodes", [3, COMPACT_PIECE, COMPACT_PIECE + 1, 2 * COMPACT_PIECE, 5 * COMPACT_PIECE + 17]
)
def test_compact_text_is_json_dumps_text_at_every_size(nodes: int) -> None:
    value = graph(nodes, description='ü "quoted" \x00nodes\x00')
    assert compact_text(value) == dumps(value)
    assert json.loads(compact_text(value)) == value


def test_compact_text_keeps_any_key_order_and_leaves_other_values_to_json_dumps() -> None:
    value = graph(3 * COMPACT_PIECE)
    reordered = {"caps": value["caps"], "program": value["program"], "version": "0.2"}
    assert compact_text(reordered) == dumps(reordered)
    for other in ([1, 2], "text", {"program": "x"}, {"program": {"nodes": 3}}):
        assert compact_text(other) == dumps(other)


def test_compact_text_refuses_what_json_dumps_refuses() -> None:
    value = graph(2 * COMPACT_PIECE)
    value["program"]["nodes"][-5]["args"] = {"theta": math.nan}
    with pytest.raises(ValueError):
        compact_text(value)
    value["program"]["nodes"][-5]["args"] = {"theta": object()}
    with pytest.raises(TypeError):
        compact_text(value)


def test_graph_text_round_trips_and_reads_as_the_graph() -> None:
    value = graph(2 * COMPACT_PIECE + 3)
    text = GraphText.of(value)
    assert text.text == dumps(value)
    assert text.nodes == 2 * COMPACT_PIECE + 3
    assert dict(text) == value
    assert text["caps"] == ["CAP_ALLOC"]
    assert len(loads(text.text).nodes) == text.nodes


@pytest.mark.parametrize("nodes", [3, COMPACT_PIECE, COMPACT_PIECE + 1, 3 * COMPACT_PIECE + 5])
def test_a_graphs_text_written_a_piece_of_nodes_at_a_time_is_its_whole_jsons_text(
    nodes: int,
) -> None:
    value = graph(nodes, description="ü", metadata={"b": [1, 2], "a": None})
    parsed = loads(dumps(value))
    assert graph_compact_text(parsed) == compact_text(parsed.to_json())
    assert GraphText.of_graph(parsed) == GraphText.of(parsed.to_json())
    assert GraphText.of_graph(loads(dumps(graph(3)))).nodes == 3


def test_free_in_pieces_empties_the_list_from_its_end() -> None:
    items = list(range(3 * COMPACT_PIECE + 1))
    free_in_pieces(items)
    assert items == []


def sorted_dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("seed", range(4))
def test_canonical_text_is_json_dumps_sorted_text_for_every_number_and_string(seed: int) -> None:
    # the numbers msgspec writes otherwise (exponents, tiny fractions), non-ASCII and DEL
    # among plain ones: the text, whichever writer wrote it, is json.dumps's
    rng = np.random.default_rng(seed)
    numbers = [float(x) for x in 10.0 ** rng.uniform(-12, 20, 400) * rng.choice([-1, 1], 400)]
    numbers += [0.1, 1e-4, 9.9e-5, 1e16, 9999999999999998.0, 2.0**70, 3, -0.0, 10**30]
    strings = ["plain", "é", "\x7f", "tab\there", "q1e5", "0.00001"]
    for value in (
        graph(40),
        graph(40, description="é"),
        {"z": numbers, "a": {"y": 1, "b": [True, None]}},
        {"n": [{"theta": x} for x in numbers[:50]]},
        *({"s": s, "n": 1.5} for s in strings),
    ):
        assert canonical_text(value) == sorted_dumps(value)


def test_the_digest_text_of_a_random_clifford_program_is_json_dumps_sorted_text() -> None:
    from qmk._front import read
    from qmk.kernel.machine.programs import random_clifford

    data = read(random_clifford(50, 10, seed=3)).to_json()
    assert canonical_text(data) == sorted_dumps(data)


@pytest.mark.parametrize("seed", range(4))
def test_a_graphs_canonical_text_written_from_its_nodes_is_json_dumps_sorted_text(
    seed: int,
) -> None:
    # nodes written by msgspec as they are (a guarded one as its JSON): every field
    # empty or set, numbers msgspec writes otherwise, non-ASCII and DEL, nested JSON
    rng = random.Random(seed)
    one = Guard(terms=(GuardTerm(event="e", equals=1),))
    both = Guard(
        terms=(GuardTerm(event="e", equals=0), GuardTerm(event="f", equals=1)), conjunction=True
    )
    for _ in range(50):
        nodes = []
        for k in range(rng.randint(0, 30)):
            theta = rng.choice([0.5, 1e-7, 1e20, -0.0, 3.0, 2**60, 1e-05])
            args = rng.choice(
                [{}, {"theta": theta}, {"z": 1, "a": [1, {"b": "é"}]}, {"s": "x\x7fy"}]
            )
            metadata = rng.choice([None, {}, {"source": f"p:{k}"}, {"n": (1, 2), "a": {"c": 1}}])
            nodes.append(
                Node(
                    id=f"n{k}é" if rng.random() < 0.1 else f"n{k}",
                    op="APPLY_RZ",
                    args=args,
                    vqs=tuple(rng.sample(["a", "b", "c"], rng.randint(0, 2))),
                    produces=("e",) if rng.random() < 0.2 else (),
                    caps=("CAP_ALLOC",) if rng.random() < 0.1 else (),
                    guard=rng.choice([None, None, one, both]),
                    metadata=metadata,
                )
            )
        g = Graph(
            nodes=tuple(nodes),
            description=rng.choice([None, "d"]),
            metadata=rng.choice([None, {"k": 1}]),
        )
        assert canonical_graph_text(g) == sorted_dumps(g.to_json())


def test_a_random_clifford_programs_canonical_text_is_written_from_its_nodes() -> None:
    from qmk._front import read
    from qmk.kernel.machine.programs import random_clifford

    g = read(random_clifford(50, 10, seed=3))
    assert canonical_graph_text(g) == sorted_dumps(g.to_json())
