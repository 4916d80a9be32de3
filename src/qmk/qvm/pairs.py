"""A plan's ``(start, end)`` pairs held in two arrays, not a tuple per node: its
timeline and its micro-ops' bounds (the reason, and the verifier's edges beside them,
are :mod:`qmk.qvm.packed`'s). A planner or a worker loads this; the kernel does not.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload


class Pairs(Sequence[tuple[Any, Any]]):
    """A read-only sequence of ``(start, end)`` pairs of numbers kept in two arrays: a
    plan's :attr:`Plan.timing` and its micro-ops' bounds, one pair per node.

    A tuple of 100,000 pairs is 100,000 tuples the cyclic collector tracks until its
    first collection after they are made, the interpreter held while it walks them. Two
    arrays are not tracked, and hold the numbers unboxed. A pair read is a new tuple,
    equal to any sequence of the same pairs.


    >>> spans = Pairs.of([(0.0, 1.0), (1.0, 3.5)], "d")
    >>> spans[1], list(spans) == [(0.0, 1.0), (1.0, 3.5)], len(spans)
    ((1.0, 3.5), True, 2)
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self, starts: array[Any], ends: array[Any]) -> None:
        if len(starts) != len(ends):
            raise ValueError("a pair needs a start and an end")
        self._starts, self._ends = starts, ends

    @classmethod
    def of(cls, pairs: Iterable[tuple[Any, Any]], typecode: str) -> Pairs:
        """The pairs of ``pairs``, as ``typecode``'s numbers (``"d"`` floats, ``"q"``
        ints)."""
        starts, ends = array(typecode), array(typecode)
        for start, end in pairs:
            starts.append(start)
            ends.append(end)
        return cls(starts, ends)

    @overload
    def __getitem__(self, index: int) -> tuple[Any, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[Any, Any], ...]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return tuple(zip(self._starts[index], self._ends[index], strict=True))
        return (self._starts[index], self._ends[index])

    def __len__(self) -> int:
        return len(self._starts)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return zip(self._starts, self._ends, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Pairs):
            return self._starts == other._starts and self._ends == other._ends
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Pairs({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pairs, (self._starts, self._ends))


__all__ = ["Pairs"]
