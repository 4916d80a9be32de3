"""metadata.output: result keys laid out the way the source language writes them."""

from __future__ import annotations

import pytest

from qmk.execution.runs import run
from qmk.frontends.builder import ProgramBuilder
from qmk.qvm.errors import FormatError
from qmk.qvm.output import OutputLayout


def test_layout_places_events_constants_and_separators() -> None:
    layout = OutputLayout.from_json(
        {"groups": [["c", None], ["a", "b"]], "separator": "|"}, events=("a", "b", "c")
    )
    assert layout.key("011") == "10|01"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "must be an object"),
        ({"groups": [["zz"]]}, "declared event"),
        ({"groups": "a"}, "list of lists"),
        ({"groups": [], "extra": 1}, "unknown key 'extra'"),
        ({"groups": [], "separator": 3}, "one-line string"),
    ],
)
def test_malformed_layouts_are_format_errors_naming_the_problem(data, fragment) -> None:
    with pytest.raises(FormatError, match=fragment):
        OutputLayout.from_json(data, events=("a",))


def test_run_writes_counts_and_memory_in_the_layout() -> None:
    b = ProgramBuilder()
    q = b.allocate(3)
    b.gate("x", [q[0]])
    b.gate("h", [q[2]])
    m = [b.measure(x) for x in q]
    # c0 rightmost in its register, an unwritten bit, then a second register.
    graph = b.build(output=[[m[2]], [None, m[1], m[0]]])
    result = run(graph, shots=400, seed=11)
    assert set(result.counts) == {"0 001", "1 001"}
    assert sum(result.counts.values()) == 400
    assert set(result.memory) == set(result.counts)
    assert result.to_json()["counts"] == dict(result.counts)


def test_run_refuses_a_layout_naming_an_unknown_event_before_simulating() -> None:
    b = ProgramBuilder()
    q = b.allocate(1)
    b.measure(q[0])
    graph = b.build(output=[["nope"]])
    with pytest.raises(FormatError, match="declared event"):
        run(graph, shots=10, seed=1)
