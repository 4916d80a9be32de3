"""OpenQASM lowering under a node cap (``max_nodes``): a program past it is refused before
it is built (issue 32, item 1).

A loop's size is known once its first pass is lowered, so a loop of four million passes
is refused after one pass; a loop of no gates counts its passes; a flat program of more
statements than the cap is refused before it is parsed. Memory is measured with
tracemalloc (what the lowering allocated), not time.
"""

from __future__ import annotations

import sys
import tracemalloc

import pytest

from qmk.errors import QuotaError
from qmk.frontends.qasm import STATEMENT_SLACK, from_qasm
from qmk.frontends.text import lower_text
from qmk.qvm.fold import unrolled_size

HEAD3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\n'
HEAD2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\n'


def refused(source: str, cap: int, kind: str = "qasm") -> tuple[QuotaError, int]:
    """The refusal of ``source`` under ``cap`` and the bytes its lowering allocated at peak."""
    lower_text(HEAD3, "qasm", "warm-up")  # the parser's own imports are not the program's
    tracemalloc.start()
    try:
        with pytest.raises(QuotaError) as caught:
            lower_text(source, kind, "big", max_nodes=cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return caught.value, peak


def test_a_loop_of_four_million_passes_is_refused_before_its_first_pass() -> None:
    error, peak = refused(HEAD3 + "for int i in [0:2**22-1] { h q[0]; cx q[0], q[1]; }", 100_000)
    assert error.code == "QS1006"
    assert error.details == {"limit": "max_graph_nodes", "value": 100_000, "needed": 2**22}
    assert "loops of 4194304 passes in all" in error.message
    assert "nothing was built" in error.message
    assert peak < 8 * 2**20  # unrolled, it would be gigabytes


def test_a_loop_is_refused_once_its_first_pass_tells_its_size() -> None:
    source = HEAD3 + "for int i in [0:59999] { h q[0]; cx q[0], q[1]; }"
    error, peak = refused(source, 100_000)
    assert "a for loop of 60000 passes of 2 nodes each" in error.message
    assert error.details["needed"] >= 120_000
    assert peak < 8 * 2**20


def test_without_a_cap_a_loop_whose_passes_are_alike_is_read_as_its_rows() -> None:
    source = HEAD3 + "for int i in [0:2**22-1] { h q[0]; cx q[0], q[1]; }"
    lower_text(HEAD3, "qasm", "warm-up")
    tracemalloc.start()
    try:
        graph = lower_text(source, "qasm", "big")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (loop,) = [node for node in graph.nodes if node.op == "REPEAT"]
    assert loop.args == {"count": 2**22}
    assert [n.op for n in loop.body] == ["APPLY_H", "APPLY_CNOT"]
    assert peak < 8 * 2**20


def test_a_loop_of_no_gates_is_bounded_by_its_passes() -> None:
    error, peak = refused(HEAD3 + "int x = 0;\nfor int i in [0:2**70] { x = x + 1; }", 1000)
    assert error.details["limit"] == "max_graph_nodes"
    assert "passes in all" in error.message
    assert peak < 8 * 2**20


def test_nested_loops_count_their_passes_together() -> None:
    source = HEAD3 + "for int i in [0:99] { for int j in [0:99] { } }"
    error, _ = refused(source, 5000)
    assert "passes in all" in error.message
    assert len(from_qasm(source, max_nodes=10_100).nodes) == 2  # 10,100 passes fit


def test_a_flat_program_past_the_cap_is_refused_before_it_is_parsed() -> None:
    source = HEAD2 + "h q[0];\n" * 3000
    error, peak = refused(source, 1000)
    assert error.details["needed"] == source.count(";") - STATEMENT_SLACK
    assert peak < 2**20


@pytest.mark.parametrize("kind", ["qvm-asm", "qir"])
def test_assembly_and_qir_text_past_the_cap_are_refused_before_they_are_read(kind: str) -> None:
    error, _ = refused("\n" * 3000, 1000, kind)
    assert error.details["limit"] == "max_graph_nodes"


def test_a_program_within_the_cap_lowers_as_without_one() -> None:
    source = HEAD3 + "bit[2] c;\nfor int i in [0:9] { h q[0]; cx q[0], q[1]; }\nc = measure q;"
    capped = from_qasm(source, max_nodes=10_000)
    assert capped.to_json() == from_qasm(source).to_json()
    with pytest.raises(QuotaError):  # the same program, one node past a tighter cap
        from_qasm(source, max_nodes=len(capped.nodes) - 1)


def profiled_calls(source: str, cap: int) -> int:
    """How many Python function calls lowering ``source`` under ``cap`` makes (a walk
    count, the same on every machine: no clock)."""
    from_qasm(source, max_nodes=cap)  # warm: first-use imports and caches are not counted
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        from_qasm(source, max_nodes=cap)
    finally:
        sys.setprofile(None)
    return calls


def test_many_folded_loops_under_a_cap_are_read_in_time_linear_in_their_text() -> None:
    # each folded loop used to re-walk the whole program to check the cap: doubling the
    # loops more than doubled the work (2.38x at these sizes); a running total doubles it
    loops = [HEAD3 + "for int i in [0:2] { t q[0]; }\n" * n for n in (250, 500)]
    small, large = (profiled_calls(source, 10**7) for source in loops)
    assert large / small < 2.05


def test_the_running_total_charges_nested_and_earlier_folded_loops() -> None:
    source = HEAD3 + (
        "for int i in [0:2] { t q[0]; }\n"  # 3 nodes unrolled
        "for int i in [0:9] { for int j in [0:9] { t q[0]; } h q[0]; }\n"  # 10 x 11
    )
    needed = 1 + 3 + 10 * 11  # the allocation, the first loop, the second (the free comes after)
    assert unrolled_size(from_qasm(source)) == needed + 1
    assert from_qasm(source, max_nodes=needed).to_json() == from_qasm(source).to_json()
    with pytest.raises(QuotaError) as caught:
        from_qasm(source, max_nodes=needed - 1)
    assert "a for loop of 10 passes of 11 nodes each" in caught.value.message
    assert caught.value.details["needed"] == needed
