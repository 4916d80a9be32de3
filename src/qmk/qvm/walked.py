"""The verifier's walk run when first read, for a program other checks found clean.

The columns' reader (:mod:`qmk.qvm.columns`) verifies a flat program column by column
and leaves the edges and REV segments, which only a walk in list order finds, to
:class:`Walked`: a run reads neither. Only that reader's path loads this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from qmk.qvm.errors import VerificationError
from qmk.qvm.graph import Graph, gc_paused
from qmk.qvm.limits import Limits
from qmk.qvm.walk import VerifiedProgram, _Findings, _walk

_T = TypeVar("_T")


class Walked:
    """The verifier's walk of a graph already found clean by other checks (a flat
    program's column checks, :mod:`qmk.qvm.columns`), run when first asked: the edges and
    REV segments that only a walk in list order finds. :meth:`field` gives either as a
    sequence that walks on its first read."""

    __slots__ = ("_graph", "_program")

    def __init__(self, graph: Graph) -> None:
        self._graph = graph
        self._program: VerifiedProgram | None = None

    def program(self) -> VerifiedProgram:
        """The walk's verified program (made once; two threads may each make it: equal).

        Raises:
            VerificationError: a finding the other checks missed (a fault of theirs).
        """
        program = self._program
        if program is None:
            graph = self._graph
            with gc_paused():
                report = _walk(graph, _UNBOUNDED, _Findings(graph))
            if report.program is None:
                raise VerificationError(report.findings)
            program = self._program = report.program
        return program

    def field(self, name: str) -> Sequence[Any]:
        """``preds`` or ``rev_segments`` of :meth:`program`, walked on first read."""
        return _Later(self, name)


#: The limits of a walk of a program whose size was checked already.
_UNBOUNDED = Limits(
    max_bytes=None,
    max_depth=None,
    max_nodes=None,
    max_qubits=None,
    max_channels=None,
    max_events=None,
    max_operands=None,
    max_name_length=None,
    max_unrolled_nodes=None,
)


class TupleView(Sequence[_T]):
    """A sequence made when first read that stands for a tuple of its items: equal to
    such a tuple, unhashable as a list is, and pickled as the tuple itself (so what
    crosses a process is plain data). A subclass says how its items are made
    (:meth:`_values`)."""

    __slots__ = ()

    def _values(self) -> Sequence[_T]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._values())

    def __getitem__(self, index: Any) -> Any:
        return self._values()[index]

    def __iter__(self) -> Iterator[_T]:
        return iter(self._values())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self._values()),))


class _Later(TupleView[Any]):
    """A field of :meth:`Walked.program`, read through (see :class:`Walked`)."""

    __slots__ = ("_name", "_walked")

    def __init__(self, walked: Walked, name: str) -> None:
        self._walked, self._name = walked, name

    def _values(self) -> Sequence[Any]:
        values: Sequence[Any] = getattr(self._walked.program(), self._name)
        return values

    def __repr__(self) -> str:
        return f"<{self._name}, walked when first read>"
