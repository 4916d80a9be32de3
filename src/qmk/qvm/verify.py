"""The QVM verifier: every finding at once, or a verified program.

:func:`check` walks a graph once, in list order, and reports every finding (a
stable code from :mod:`qmk.qvm.codes`, a severity, the node and op, and a
sentence saying what to do). When no finding is an error it also returns the
:class:`VerifiedProgram`: the dependency DAG, the epochs, the REV segments, the
peak number of live qubits, op counts and the capabilities the program needs.
:func:`verify` is the same but raises :class:`~qmk.qvm.errors.VerificationError`.

>>> from qmk.qvm.graph import Graph, Node, Resources
>>> g = Graph(
...     nodes=(
...         Node(id="a", op="ALLOC_LQ", vqs=("q",)),
...         Node(id="h", op="APPLY_H", vqs=("q",)),
...         Node(id="m", op="MEASURE_Z", vqs=("q",), produces=("m",)),
...         Node(id="f", op="FREE_LQ", vqs=("q",)),
...         Node(id="x", op="APPLY_X", vqs=("q",)),
...     ),
...     resources=Resources(vqs=("q",), events=("m",)),
...     caps=("CAP_ALLOC",),
... )
>>> [(f.code, f.name, f.node_id) for f in check(g).findings]
[('QV202', 'use-after-free', 'x')]
>>> print(check(g).findings[0])  # doctest: +NORMALIZE_WHITESPACE
QV202 use-after-free at node #4 'x' (APPLY_X): qubit 'q' was freed at node #3 'f';
allocate it again first
>>> program = verify(Graph(nodes=g.nodes[:4], resources=g.resources, caps=g.caps))
>>> program.peak_live_qubits, program.counts.measurements, program.required_caps
(1, 1, ('CAP_ALLOC',))
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmk.qvm.codes import BY_NAME
from qmk.qvm.errors import VerificationError
from qmk.qvm.graph import Graph, is_folded
from qmk.qvm.limits import Limits
from qmk.qvm.walk import (
    MAX_FINDINGS_PER_CODE,
    Epoch,
    Finding,
    OpCounts,
    Report,
    RevSegment,
    VerifiedProgram,
    check_flat,
    is_clifford_node,
    op_counts,
)

if TYPE_CHECKING:
    from qmk.qvm.folded import Totals


def check(
    graph: Graph,
    *,
    limits: Limits | None = None,
    excused: Collection[str] = (),
    unroll: bool = True,
    turn: bool = True,
) -> Report:
    """Verify ``graph`` and report every finding at once.

    Args:
        graph: the graph, as :func:`qmk.qvm.graph.loads` or the assembler gives it.
        limits: size limits (defaults: :class:`~qmk.qvm.limits.Limits`).
        excused: codes whose errors another check decided (``qmk validate --prove``:
            those the solver proved no valuation shows): still reported, they do not
            withhold the program.
        unroll: for a program with REPEAT rows, whether to give the unrolled verified
            program too (bounded by ``limits.max_unrolled_nodes``: past it, a
            ``unrolled-too-large`` finding). False gives :class:`Totals` only, found
            folded: what ``qmk validate``, ``info`` and ``estimate`` read.
        turn: with ``unroll`` False, whether the report holds the one-turn view,
            verified (``Report.turn``, what :class:`FoldedProgram` plans and places).
            False gives findings and totals alone, so a clean program's calls are
            taken as one operation each, their blocks checked once (the call lane).

    Returns:
        A :class:`Report`: all findings, and the verified program when none is
        an error (of a code not ``excused``).
    """
    limits = limits or Limits()
    if is_folded(graph):
        from qmk.qvm.folded import check_folded  # (at the first folded program)

        return check_folded(graph, limits, frozenset(excused), unroll=unroll, turn=turn)
    return check_flat(graph, limits, frozenset(excused))


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldedProgram:
    """A verified program kept folded, for the consumers that read its totals only.

    A program whose unrolling is past ``Limits.max_unrolled_nodes`` is still admitted,
    counted, estimated and placed by what it does in all: its totals, and its one-turn
    view for what a turn holds (qubits, caps, channels). Nothing here runs it: a
    consumer that applies operations one at a time unrolls it (:func:`verify`), and
    refuses it there with ``unrolled-too-large`` (QV505).

    Attributes:
        graph: the one-turn view as a graph (every body once): what walkers of the
            nodes read (caps, channels, policies, qubits held).
        folded: the program as submitted, REPEAT rows folded.
        turn: the one-turn view, verified.
        totals: what the program does in all, by multiplication.
    """

    graph: Graph
    folded: Graph
    turn: VerifiedProgram
    totals: Totals

    @property
    def required_caps(self) -> tuple[str, ...]:
        return self.totals.required_caps

    @property
    def peak_live_qubits(self) -> int:
        return self.totals.peak_live_qubits

    @property
    def counts(self) -> OpCounts:
        """Op counts of the unrolled program."""
        return self.totals.counts

    @property
    def epochs(self) -> tuple[Epoch, ...]:
        """The one-turn view's epochs (the unrolled program has ``totals.epochs``)."""
        return self.turn.epochs

    @property
    def is_clifford(self) -> bool:
        return self.totals.is_clifford


def operations(program: VerifiedProgram | FoldedProgram) -> int:
    """How many operations one run of ``program`` applies, unrolled (nothing is
    unrolled to count them)."""
    if isinstance(program, FoldedProgram):
        return program.totals.nodes
    return len(program.graph.nodes)


def verify_folded(
    graph: Graph, *, limits: Limits | None = None, unroll: bool = True
) -> VerifiedProgram | FoldedProgram:
    """Verify ``graph`` for a consumer that reads totals: the unrolled verified program
    when it is flat or (``unroll``) unrolls within ``limits.max_unrolled_nodes``, else
    the :class:`FoldedProgram` (no ``unrolled-too-large`` finding). ``unroll=False``
    keeps every program with REPEAT rows folded: nothing is unrolled.

    >>> from qmk.qvm.graph import Graph, Node, Resources
    >>> body = (Node(id="t", op="APPLY_T", vqs=("q",)),)
    >>> g = Graph(version="0.3", nodes=(
    ...     Node(id="a", op="ALLOC_LQ", vqs=("q",)),
    ...     Node(id="r", op="REPEAT", args={"count": 10**9}, body=body),
    ...     Node(id="f", op="FREE_LQ", vqs=("q",))),
    ...     resources=Resources(vqs=("q",)), caps=("CAP_ALLOC",))
    >>> program = verify_folded(g)
    >>> operations(program), program.counts.t_gates, len(program.graph.nodes)
    (1000000002, 1000000000, 3)
    >>> small = Graph(version="0.3", nodes=(g.nodes[0], Node(id="r", op="REPEAT",
    ...     args={"count": 2}, body=body), g.nodes[2]), resources=g.resources, caps=g.caps)
    >>> type(verify_folded(small)).__name__, type(verify_folded(small, unroll=False)).__name__
    ('VerifiedProgram', 'FoldedProgram')

    Raises:
        VerificationError: with every finding, when any finding is an error.
    """
    limits = limits or Limits()
    report = check(graph, limits=limits, unroll=unroll)
    if report.program is not None:
        return report.program
    over = BY_NAME["unrolled-too-large"].code
    if (
        report.totals is None
        or report.turn is None
        or any(f.is_error and f.code != over for f in report.findings)
    ):
        raise VerificationError(report.findings)
    return FoldedProgram(
        graph=report.turn.graph, folded=graph, turn=report.turn, totals=report.totals
    )


def verify(graph: Graph, *, limits: Limits | None = None) -> VerifiedProgram:
    """Verify ``graph``, returning the verified program.

    Raises:
        VerificationError: with every finding, when any finding is an error.
    """
    report = check(graph, limits=limits)
    if report.program is None:
        raise VerificationError(report.findings)
    return report.program


__all__ = [
    "MAX_FINDINGS_PER_CODE",
    "Epoch",
    "Finding",
    "FoldedProgram",
    "OpCounts",
    "Report",
    "RevSegment",
    "VerifiedProgram",
    "check",
    "is_clifford_node",
    "op_counts",
    "operations",
    "verify",
    "verify_folded",
]
