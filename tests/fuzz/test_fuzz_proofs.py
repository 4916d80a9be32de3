"""The fuzz corpus of guarded programs cross-checks the verifier, the kernel's firewall and
the SMT solver of ``qmk validate --prove`` (tests/support/proofs.py: programs whose
guards decide lifetimes and whose qubits belong to two tenants).

- Where the verifier accepts, the solver finds no valuation that breaks linearity or a
  capability (the verifier is sound), and where the kernel's firewall accepts, none that
  joins two tenants' qubits.
- Where the verifier's rule is exact (no ``QV208``: every guarded lifetime followed, and
  every node runs on some valuation), its errors are the solver's, node for node.

What they found, fixed before this test: the verifier accepted a qubit allocated under a
guard and used on every path (the run then failed with an internal error where the
guard did not hold), now ``QV208`` or the fault's own code; the kernel's firewall read
owners in list order, so a guarded ``ALLOC_LQ`` of another tenant's qubit followed by
one of the submitter's, under the opposite guard, let a CNOT join the two tenants'
qubits on the run where the first ran; it now refuses an op whose qubits may belong to
two tenants on any run.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given

from qmk.errors import FirewallError
from qmk.kernel.admit.channels import OPEN, Channel, ChannelTable, check_firewall
from qmk.qvm.graph import Graph
from qmk.qvm.verify import check
from support.fuzz import FUZZ
from support.proofs import ERRORS, guarded_programs, reachable, runs_somewhere

pytest.importorskip("z3")

from qmk.qvm.prove import prove

#: The verifier's codes the solver decides.
DECIDED = frozenset(ERRORS - {"QV504"})


def solver_errors(graph: Graph) -> set[tuple[str, int | None]]:
    return {(f.code, f.node_index) for f in prove(graph).findings if f.is_error}


@FUZZ
@given(guarded_programs())
def test_where_the_verifier_accepts_no_valuation_breaks_linearity_or_a_capability(graph):
    report = check(graph)
    if report.ok:
        assert solver_errors(graph) == set(), [str(f) for f in prove(graph).findings]


@FUZZ
@given(guarded_programs())
def test_where_the_verifiers_rule_is_exact_its_errors_are_the_solvers(graph):
    findings = check(graph).findings
    if any(f.code == "QV208" for f in findings) or not runs_somewhere(graph):
        return
    verifier = {(f.code, f.node_index) for f in findings if f.is_error and f.code in DECIDED}
    assert verifier == solver_errors(graph)
    assert verifier == {f for f in reachable(graph) if f[0] in DECIDED}


def kernel_admits(graph: Graph) -> bool:
    """Whether the kernel's firewall admits ``graph`` from ``self``, with a channel to
    ``bob`` open and bound under a name of its own (so bob's qubits may be allocated;
    the graph's ``c0``, which its OPEN_CHANs name, is not bound)."""
    link = Channel(
        channel_id="chan_1", proposer="self", peer="bob", state=OPEN, fidelity=1.0, created_at=0.0
    )
    resources = dataclasses.replace(graph.resources, chs=(*graph.resources.chs, "link"))
    linked = dataclasses.replace(graph, resources=resources)
    try:
        check_firewall(linked, "self", {"link": "chan_1"}, ChannelTable([link.to_row()]), ["bob"])
    except FirewallError:
        return False
    return True


@FUZZ
@given(guarded_programs(tenants=("self", "bob")))
def test_where_the_kernels_firewall_admits_no_valuation_joins_two_tenants_qubits(graph):
    if kernel_admits(graph):
        proof = prove(graph)
        assert "firewall" in proof.proved, [str(f) for f in proof.findings]


def test_opposite_guarded_allocations_of_two_tenants_joined_by_a_cnot_are_refused():
    """The firewall bug the corpus found: bob's qubit where m is 1, the submitter's where
    it is 0, then a CNOT with the submitter's: the kernel read the owner in list order
    (the submitter's) and admitted it; on the run where m is 1 it joins two tenants."""
    from qmk.qvm.graph import from_json

    guard = [{"event": "m", "equals": 1}, {"event": "m", "equals": 0}]
    graph = from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "a", "op": "ALLOC_LQ", "vqs": ["a"]},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
                    {
                        "id": "b1",
                        "op": "ALLOC_LQ",
                        "vqs": ["q"],
                        "metadata": {"tenant": "bob"},
                        "guard": guard[0],
                    },
                    {"id": "b0", "op": "ALLOC_LQ", "vqs": ["q"], "guard": guard[1]},
                    {"id": "cx", "op": "APPLY_CNOT", "vqs": ["a", "q"]},
                    {"id": "f", "op": "FREE_LQ", "vqs": ["a", "q"]},
                ]
            },
            "resources": {"vqs": ["a", "q"], "events": ["m"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    assert check(graph).ok  # its lifetimes are followed: a and q are live at the CNOT
    assert not kernel_admits(graph)
    proof = prove(graph)
    assert [(f.code, f.node_id) for f in proof.findings] == [("QV504", "cx")]
    assert proof.valuations == ({"m": 1},)
