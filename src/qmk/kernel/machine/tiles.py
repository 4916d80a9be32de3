"""The free tiles of a line of tiles: first fit of a contiguous run in O(log n).

A module's job tiles are a line (snaked over the floorplan's rows, so a run of the line
is a contiguous region); a job takes a run of them. :class:`FreeTiles` is a segment tree
that keeps, per node, the longest free run inside it and the free runs at its two ends,
so the leftmost run of ``k`` free tiles is found, taken and given back in ``O(log n)``.
Fragmentation is real: ten free tiles in two holes of five hold no job of six.

>>> line = FreeTiles(10)
>>> line.first_fit(4), line.take(0, 4), line.take(6, 2)
(0, None, None)
>>> line.free, line.largest, line.first_fit(3), line.first_fit(2)
(4, 2, None, 4)
>>> line.give(0, 4); line.first_fit(6)
0
"""

from __future__ import annotations


class FreeTiles:
    """The free tiles of a line of ``n`` tiles, all free at first (module docstring).

    Why three arrays: ``best[i]`` is the longest free run inside node ``i``, ``pre[i]`` and
    ``suf[i]`` the free runs touching its left and right ends; a pending assignment to a
    whole node is kept in ``lazy[i]`` (1 free, 0 taken) and pushed down when a query or an
    update goes below it.
    """

    __slots__ = ("best", "free", "lazy", "n", "pre", "size", "suf")

    def __init__(self, n: int) -> None:
        self.n = max(0, n)
        size = 1
        while size < max(1, self.n):
            size *= 2
        self.size = size
        self.best = [0] * (2 * size)
        self.pre = [0] * (2 * size)
        self.suf = [0] * (2 * size)
        self.lazy = [-1] * (2 * size)
        self.free = 0
        if self.n:
            self._assign(1, 0, size, 0, self.n, 1)
        self.free = self.n

    @property
    def largest(self) -> int:
        """The longest run of free tiles."""
        return self.best[1] if self.n else 0

    def first_fit(self, k: int) -> int | None:
        """The first tile of the leftmost run of ``k`` free tiles, or None."""
        if k <= 0:
            return 0
        if not self.n or self.best[1] < k:
            return None
        node, lo, hi = 1, 0, self.size
        while hi - lo > 1:
            self._push(node, hi - lo)
            mid = (lo + hi) // 2
            left, right = 2 * node, 2 * node + 1
            if self.best[left] >= k:
                node, hi = left, mid
            elif self.suf[left] + self.pre[right] >= k:
                return mid - self.suf[left]
            else:
                node, lo = right, mid
        return lo

    def take(self, start: int, k: int) -> None:
        """Mark tiles ``start .. start+k-1`` taken (they must be free)."""
        if k > 0:
            self._assign(1, 0, self.size, start, start + k, 0)
            self.free -= k

    def give(self, start: int, k: int) -> None:
        """Mark tiles ``start .. start+k-1`` free again (they must be taken)."""
        if k > 0:
            self._assign(1, 0, self.size, start, start + k, 1)
            self.free += k

    def _set(self, node: int, length: int, value: int) -> None:
        run = length if value else 0
        self.best[node] = self.pre[node] = self.suf[node] = run
        self.lazy[node] = value

    def _push(self, node: int, length: int) -> None:
        value = self.lazy[node]
        if value >= 0 and length > 1:
            half = length // 2
            self._set(2 * node, half, value)
            self._set(2 * node + 1, half, value)
            self.lazy[node] = -1

    def _assign(self, node: int, lo: int, hi: int, a: int, b: int, value: int) -> None:
        if b <= lo or hi <= a:
            return
        if a <= lo and hi <= b:
            self._set(node, hi - lo, value)
            return
        length = hi - lo
        self._push(node, length)
        mid = (lo + hi) // 2
        self._assign(2 * node, lo, mid, a, b, value)
        self._assign(2 * node + 1, mid, hi, a, b, value)
        left, right, half = 2 * node, 2 * node + 1, length // 2
        self.pre[node] = self.pre[left] + (self.pre[right] if self.pre[left] == half else 0)
        self.suf[node] = self.suf[right] + (self.suf[left] if self.suf[right] == half else 0)
        self.best[node] = max(self.best[left], self.best[right], self.suf[left] + self.pre[right])
