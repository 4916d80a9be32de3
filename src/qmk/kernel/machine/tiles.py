"""The free tiles of a line of tiles: first fit of a contiguous run in O(log m).

A module's job tiles are a line (snaked over the floorplan's rows, so a run of the line
is a contiguous region); a job takes a run of them. :class:`FreeTiles` keeps the line's
free *runs*, never its tiles: a treap of the runs ordered by their first tile, each node
knowing the longest run under it, so the leftmost run of ``k`` free tiles is found, taken
and given back in ``O(log m)`` for ``m`` free runs. ``m`` is at most the runs held (jobs
placed, reservations) plus one, so a line costs the same whether it has ten tiles or
10^12: a machine of 10^9 physical qubits costs nothing until jobs arrive.
Fragmentation is real: ten free tiles in two holes of five hold no job of six.

>>> line = FreeTiles(10)
>>> line.first_fit(4), line.take(0, 4), line.take(6, 2)
(0, None, None)
>>> line.free, line.largest, line.runs, line.first_fit(3), line.first_fit(2)
(4, 2, 2, None, 4)
>>> line.give(0, 4); line.first_fit(6)
0
>>> FreeTiles(10**12).runs
1
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmk.kernel.machine.jobs import MachineJob

#: The treap's priorities: they shape the tree (balanced in expectation), never a
#: placement, which is the leftmost fit whatever the shape.
_priority = random.Random(20261125).random


class _Run:
    """A free run ``start .. start+length-1``, a node of the treap: ``prio`` keeps it
    balanced (a parent's is larger), ``longest`` is the longest run under it."""

    __slots__ = ("left", "length", "longest", "prio", "right", "start")

    def __init__(self, start: int, length: int, prio: float) -> None:
        self.start = start
        self.length = length
        self.longest = length
        self.prio = prio
        self.left: _Run | None = None
        self.right: _Run | None = None


def _fix(node: _Run) -> _Run:
    longest = node.length
    left, right = node.left, node.right
    if left is not None and left.longest > longest:
        longest = left.longest
    if right is not None and right.longest > longest:
        longest = right.longest
    node.longest = longest
    return node


def _split(node: _Run | None, key: int) -> tuple[_Run | None, _Run | None]:
    """``node``'s runs that start before ``key``, and those that start at or after it."""
    if node is None:
        return None, None
    if node.start < key:
        node.right, after = _split(node.right, key)
        return _fix(node), after
    before, node.left = _split(node.left, key)
    return before, _fix(node)


def _merge(a: _Run | None, b: _Run | None) -> _Run | None:
    """One treap of ``a``'s runs and ``b``'s (every run of ``a`` before every run of ``b``)."""
    if a is None:
        return b
    if b is None:
        return a
    if a.prio > b.prio:
        a.right = _merge(a.right, b)
        return _fix(a)
    b.left = _merge(a, b.left)
    return _fix(b)


def _pop_last(node: _Run) -> tuple[_Run | None, _Run]:
    """``node``'s treap without its last run, and that run (detached)."""
    if node.right is None:
        rest, node.left = node.left, None
        return rest, node
    node.right, last = _pop_last(node.right)
    return _fix(node), last


def _pop_first(node: _Run) -> tuple[_Run | None, _Run]:
    """``node``'s treap without its first run, and that run (detached)."""
    if node.left is None:
        rest, node.right = node.right, None
        return rest, node
    node.left, first = _pop_first(node.left)
    return _fix(node), first


class FreeTiles:
    """The free tiles of a line of ``n`` tiles, all free at first (module docstring).

    Args:
        n: the tiles of the line (numbered ``0 .. n-1``).

    Attributes:
        n: the line's tiles.
        free: the free tiles.
        runs: the free runs (maximal: two runs never touch), the treap's nodes.
    """

    __slots__ = ("_root", "free", "n", "runs")

    def __init__(self, n: int) -> None:
        self.n = max(0, n)
        self.free = self.n
        self._root = _Run(0, self.n, _priority()) if self.n else None
        self.runs = 1 if self.n else 0

    @property
    def largest(self) -> int:
        """The longest run of free tiles."""
        return self._root.longest if self._root is not None else 0

    def first_fit(self, k: int) -> int | None:
        """The first tile of the leftmost run of ``k`` free tiles, or None."""
        if k <= 0:
            return 0
        node = self._root
        if node is None or node.longest < k:
            return None
        while True:
            left = node.left
            if left is not None and left.longest >= k:
                node = left
            elif node.length >= k:
                return node.start
            else:
                assert node.right is not None  # the longest run under node is there
                node = node.right

    def take(self, start: int, k: int) -> None:
        """Mark tiles ``start .. start+k-1`` taken.

        Raises:
            ValueError: one of them is not free.
        """
        if k <= 0:
            return
        root = self._root
        if root is not None and root.start == start and k <= root.length:
            # the root run's head (a line's first placement): shrink it in place
            self.free -= k
            if k < root.length:
                root.start += k
                root.length -= k
                _fix(root)
            else:
                self._root = _merge(root.left, root.right)
                self.runs -= 1
            return
        before, after = _split(self._root, start + 1)
        run = None
        if before is not None:
            before, run = _pop_last(before)
        end = start + k
        if run is None or end > run.start + run.length:
            self._root = _merge(_merge(before, run), after)
            raise ValueError(f"tiles {start}..{end - 1} are not all free")
        tail = run.start + run.length - end
        head = start - run.start
        middle = None
        if head:  # the run keeps its head; its node is reused
            run.length = head
            middle = _fix(run)
        if tail:
            middle = _merge(middle, _Run(end, tail, _priority()))
        self.runs += (head > 0) + (tail > 0) - 1
        self._root = _merge(_merge(before, middle), after)
        self.free -= k

    def give(self, start: int, k: int) -> None:
        """Mark tiles ``start .. start+k-1`` free again (merged with the free runs
        beside them).

        Raises:
            ValueError: one of them is free already, or past the line's end.
        """
        if k <= 0:
            return
        end = start + k
        root = self._root
        if root is not None and root.left is None and root.start == end and start >= 0:
            # just before the first free run (a line's last job gone): it grows back
            root.start = start
            root.length += k
            _fix(root)
            self.free += k
            return
        before, after = _split(self._root, start)
        last = _last(before)
        first = _first(after)
        if (
            start < 0
            or end > self.n
            or (last is not None and last.start + last.length > start)
            or (first is not None and first.start < end)
        ):
            self._root = _merge(before, after)
            raise ValueError(f"tiles {start}..{end - 1} are not all taken")
        run = _Run(start, k, _priority())
        self.runs += 1
        if last is not None and last.start + last.length == start:
            assert before is not None
            before, _ = _pop_last(before)
            run.start, run.length = last.start, run.length + last.length
            self.runs -= 1
        if first is not None and first.start == end:
            assert after is not None
            after, _ = _pop_first(after)
            run.length += first.length
            self.runs -= 1
        run.longest = run.length
        self._root = _merge(_merge(before, run), after)
        self.free += k


def _last(node: _Run | None) -> _Run | None:
    while node is not None and node.right is not None:
        node = node.right
    return node


def _first(node: _Run | None) -> _Run | None:
    while node is not None and node.left is not None:
        node = node.left
    return node


@dataclass(frozen=True, slots=True, kw_only=True)
class TileRangeSpec:
    """A stretch of a module's job tiles that placements use as one line.

    By default each module is one range; a policy may split a module into ranges (one
    per tenant under ``partition``).
    """

    module: int
    offset: int
    length: int
    owner: str | None = None


class TileRange:
    """A tile range's free tiles, and which job holds the run at each first tile."""

    __slots__ = ("index", "module", "occupants", "spec", "tree")

    def __init__(self, index: int, spec: TileRangeSpec) -> None:
        self.index = index
        self.spec = spec
        self.module = spec.module
        self.tree = FreeTiles(spec.length)
        self.occupants: dict[int, MachineJob] = {}  # first tile -> job

    def hold(self, start: int, length: int) -> list[tuple[int, int]]:
        """Keep the free tiles of ``start .. start+length-1`` from placements (a
        reservation for the head of a queue): the runs taken, ``(start, length)``, for
        ``tree.give`` to give back."""
        taken = sorted(
            (at, job.tiles)
            for at, job in self.occupants.items()
            if at < start + length and at + job.tiles > start
        )
        held = []
        cursor = start
        for at, size in [*taken, (start + length, 0)]:
            if at > cursor:
                self.tree.take(cursor, at - cursor)
                held.append((cursor, at - cursor))
            cursor = max(cursor, at + size)
        return held


class Floorplan:
    """Where jobs sit: the machine's job tiles as tile ranges, and the holds on free tiles.

    The scheduler places through it and accounts for what a placement changes (a
    tenant's tiles, the gauges, the decoder); policies read its ranges and hold a region
    for a blocked job while they place others (:meth:`hold`, :meth:`release_holds`).
    """

    __slots__ = ("_holds", "largest", "ranges")

    def __init__(self, specs: Sequence[TileRangeSpec]) -> None:
        self.ranges = [TileRange(i, s) for i, s in enumerate(specs)]
        #: the longest range's tiles
        self.largest = max((r.spec.length for r in self.ranges), default=0)
        self._holds: list[tuple[TileRange, int, int]] = []

    def find(self, need: int, ranges: Iterable[TileRange]) -> tuple[TileRange, int] | None:
        """Where ``need`` tiles would go now: of ``ranges``, the one with the most free
        tiles that can hold them (ties: lowest index), first fit in it; None: none can."""
        best: tuple[TileRange, int] | None = None
        for area in ranges:
            if area.tree.largest < need:
                continue
            if best is None or area.tree.free > best[0].tree.free:
                at = area.tree.first_fit(need)
                if at is not None:
                    best = (area, at)
        return best

    def take(self, job: MachineJob, area: TileRange, at: int) -> None:
        """``job`` holds the run of its tiles at ``at`` of ``area``."""
        area.tree.take(at, job.tiles)
        area.occupants[at] = job
        job.range, job.pos, job.module = area.index, at, area.module
        job.pos_in_module = area.spec.offset + at

    def give(self, job: MachineJob) -> None:
        """``job``'s tiles are free again."""
        area = self.ranges[job.range]
        area.tree.give(job.pos, job.tiles)
        del area.occupants[job.pos]
        job.range = -1

    def hold(self, area: TileRange, start: int, length: int) -> None:
        """Keep tiles ``start .. start+length-1`` of ``area`` from placements until
        :meth:`release_holds` (a reservation for the head of a queue)."""
        self._holds += [(area, at, size) for at, size in area.hold(start, length)]

    def release_holds(self) -> None:
        for area, start, length in self._holds:
            area.tree.give(start, length)
        self._holds.clear()
