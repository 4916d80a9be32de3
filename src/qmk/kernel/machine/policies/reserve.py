"""When a region of a job's size comes free on the floorplan, if the running jobs end
when their private-machine cycles say: ``backfill``'s reservation for a blocked head,
and the budget policies' wait for a quicker placement's tiles."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.tiles import TileRange


def reservation(
    sched: Scheduler,
    head: MachineJob,
    runs: dict[int, list[tuple[int, int, float]]] | None = None,
) -> tuple[TileRange, int, float] | None:
    """The head's region: ``(area, first tile, when it is free)``, earliest first.
    ``runs``: each range's :func:`occupied` by index, kept by a caller that asks again
    while no job starts, ends or moves on and the time stands."""
    sched.work["reservations"] += 1
    best: tuple[TileRange, int, float] | None = None
    need = head.tiles
    for area in sched.allowed_ranges(head):
        size = area.spec.length
        if size < need:
            continue
        held = None if runs is None else runs.get(area.index)
        if held is None:
            held = occupied(sched, area)
            if runs is not None:
                runs[area.index] = held
        starts = {0, size - need}
        for at, tiles, _ in held:
            starts.update((at + tiles, at - need))
        for start, free_at in _free_at(
            held, sorted(s for s in starts if 0 <= s <= size - need), need, sched.now
        ):
            if best is None or free_at < best[2]:
                best = (area, start, free_at)
    return best


def occupied(sched: Scheduler, area: TileRange) -> list[tuple[int, int, float]]:
    """``area``'s held runs ``(first tile, tiles, end)``, ascending: a running job's end
    is when its private-machine cycles left run out (a stopped job's: never)."""
    return sorted(
        (
            at,
            job.tiles,
            sched.now + sched.remaining(job) if job.state == "running" else math.inf,
        )
        for at, job in area.occupants.items()
    )


def _free_at(
    held: list[tuple[int, int, float]], starts: list[int], need: int, now: float
) -> Iterator[tuple[int, float]]:
    """Each of ``starts`` (ascending) and when ``need`` tiles from it are free: the
    latest end of the ``held`` runs ``(first tile, tiles, end)`` (ascending, disjoint)
    that meet them, else ``now``. The runs that meet a window are a stretch of
    ``held`` that moves right as the window does: a sliding maximum, not a scan of
    every run for every start."""
    ends: deque[int] = deque()  # indices into held, their ends decreasing
    first = nxt = 0  # the stretch: held[first:nxt]
    for start in starts:
        while nxt < len(held) and held[nxt][0] < start + need:
            while ends and held[ends[-1]][2] <= held[nxt][2]:
                ends.pop()
            ends.append(nxt)
            nxt += 1
        while first < nxt and held[first][0] + held[first][1] <= start:
            first += 1
        while ends and ends[0] < first:
            ends.popleft()
        yield start, held[ends[0]][2] if ends else now
