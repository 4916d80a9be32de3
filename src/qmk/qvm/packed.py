"""Per-node sequences of numbers held in arrays, not tuples: what a kept program keeps one
of per node without giving the cyclic garbage collector an object per node to walk.

A tuple of numbers is tracked by the collector from its making until the first
collection that meets it, which then untracks it. A big kept program has several such
tuples per node (its dependency edges, its plan's timeline, its micro-ops' bounds). The
young collection that first meets them walks them all, the interpreter held on whichever
thread set it off. An array is never tracked, and holds the numbers unboxed. The
sequences read as the tuples they replace: an item read is a new tuple, and each is
equal to any sequence of the same items. (``docs/door.md`` has the measurements.)
:class:`Ragged` here is the verifier's (a verified program's edges); the plan's pairs
(its timeline, its micro-ops' bounds) are :class:`qmk.qvm.pairs.Pairs`, which only a
planner or a worker loads.

>>> Ragged.of([(), (0,), (0, 1)])[2]
(0, 1)
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload


class Ragged(Sequence[tuple[int, ...]]):
    """A read-only sequence of tuples of ints of any lengths, kept as one flat array and
    the offsets into it: a verified program's edges
    (:attr:`~qmk.qvm.verify.VerifiedProgram.preds`), one tuple per node.

    >>> edges = Ragged.of([(), (0,), (0, 1)])
    >>> list(edges), edges[-1], len(edges), edges == ((), (0,), (0, 1))
    ([(), (0,), (0, 1)], (0, 1), 3, True)
    """

    __slots__ = ("_flat", "_offsets")

    def __init__(self, flat: array[int], offsets: array[int]) -> None:
        if not offsets or offsets[0] != 0 or offsets[-1] != len(flat):
            raise ValueError("offsets run from 0 to the flat array's length")
        self._flat, self._offsets = flat, offsets

    @classmethod
    def of(cls, items: Iterable[Sequence[int]]) -> Ragged:
        """The tuples of ``items``."""
        flat, offsets = array("q"), array("q", [0])
        for item in items:
            flat.extend(item)
            offsets.append(len(flat))
        return cls(flat, offsets)

    @overload
    def __getitem__(self, index: int) -> tuple[int, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[int, ...], ...]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("Ragged index out of range")
        offsets = self._offsets
        return tuple(self._flat[offsets[index] : offsets[index + 1]])

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        flat, offsets = self._flat, self._offsets
        for i in range(len(offsets) - 1):
            yield tuple(flat[offsets[i] : offsets[i + 1]])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ragged):
            return self._flat == other._flat and self._offsets == other._offsets
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(
                a == tuple(b) for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Ragged({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ragged, (self._flat, self._offsets))

    @property
    def edges(self) -> int:
        """The ints held, all tuples together."""
        return len(self._flat)


__all__ = ["Ragged"]
