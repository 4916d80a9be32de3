"""Pools: runs of a module's job tiles that placements treat as one line.

By default each module is one pool; a policy may split modules (``partition``: one pool
per tenant per module). A pool keeps its free tiles (:class:`FreeTiles`) and which job
holds the run starting at each tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmk.kernel.machine.tiles import FreeTiles

if TYPE_CHECKING:
    from qmk.kernel.machine.jobs import Job


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    """A run of a module's job tiles that placements use as one line (a policy may split
    a module into pools, e.g. one per tenant)."""

    module: int
    offset: int
    length: int
    owner: str | None = None


class Pool:
    """A pool's free tiles and who holds which."""

    __slots__ = ("index", "module", "occupants", "spec", "tree")

    def __init__(self, index: int, spec: PoolSpec) -> None:
        self.index = index
        self.spec = spec
        self.module = spec.module
        self.tree = FreeTiles(spec.length)
        self.occupants: dict[int, Job] = {}  # first tile -> job

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
