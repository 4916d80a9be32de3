"""Where a job's patches run: the block and code distance the kernel places it at.

A job's error budget covers its whole logical error: its own, its memory and gate error
over its run at its distance and in its block (:func:`~qmk.kernel.machine.jobs.own_error`,
the estimator's formula), and what waiting adds. Both depend on where it runs:

- the **block** (Litinski's fast, intermediate or compact, as ``qmk plan --layout``
  draws them): fewer tiles in a slower block, and longer ops
  (:func:`~qmk.kernel.machine.footprints.in_block`), so more own error;
- the **code distance**: the machine's own and its ``larger_distances`` (more tiles and
  longer logical cycles, about ten times less error a patch and cycle a step of two,
  :func:`~qmk.kernel.machine.footprints.at_distance`).

:func:`placements` lists a program's placements on a machine, cheapest first: fewest
tile-cycles (its tiles times its private cycles), ties to the faster block, then the
smaller distance. The budget policies start a job at the first whose own error leaves
room in its budget, that ends no later than waiting for a quicker placement's tiles
would (:meth:`~qmk.kernel.machine.policies.budget.BudgetCheck._soonest`), and whose
projected waits keep every budget
(:meth:`~qmk.kernel.machine.policies.budget.BudgetCheck.fit`); what its own error leaves
is its budget for waiting (:func:`~qmk.kernel.machine.jobs.added_budget`). A job without
a budget runs as it came: nothing to trade its tiles against.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="lattice-surgery", logical_qubits=4, block="fast", data_tiles=8,
...     routing_tiles=7, code_distance=9, steps=(Step(kind="idle", cycles=10),))
>>> machine = MachineSpec.simple(tiles=40, logical_error_rate=1e-4)
>>> [(p.label, p.footprint.tiles, p.timeline.private_cycles) for p in placements(fp, machine)]
[('compact/d=9', 9, 10), ('intermediate/d=9', 12, 10), ('fast/d=9', 15, 10)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmk.kernel.machine.footprints import SEQUENTIAL_TARGETS, at_distance, in_block
from qmk.kernel.machine.jobs import Timeline, own_error

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.kernel.machine.jobs import MachineJob
    from qmk.kernel.machine.spec import MachineSpec


def all_blocks() -> tuple[str, ...]:
    """Every block, fastest first (``qmk.ft.layout``'s, which lists them least space
    first; loaded only when asked)."""
    from qmk.ft.layout import BLOCKS

    return tuple(reversed(BLOCKS))


def blocks_for(fp: Footprint) -> tuple[str, ...]:
    """The blocks ``fp`` may run in, fastest first: its own alone where its steps cannot
    move (:func:`in_block`), so a kernel placing such jobs loads no layout."""
    return all_blocks() if fp.target in SEQUENTIAL_TARGETS else (fp.block,)


@dataclass(frozen=True, slots=True)
class Placement:
    """A program at one block and code distance.

    Attributes:
        block, distance: where its patches run.
        footprint, timeline: its footprint there, in the machine's cycles.
        rate: a patch's logical error a machine cycle there.
        own: its own logical error over its run there.
    """

    block: str
    distance: int
    footprint: Footprint
    timeline: Timeline
    rate: float
    own: float

    @property
    def cost(self) -> int:
        """Tile-cycles it holds: its tiles through its private cycles."""
        return self.footprint.tiles * self.timeline.private_cycles

    @property
    def label(self) -> str:
        return f"{self.block}/d={self.distance}"


def _distances(fp: Footprint, machine: MachineSpec) -> list[tuple[int, float]]:
    """``(distance, a patch's logical error a machine cycle)`` ``fp`` may run at: the
    machine's and its larger ones where ``fp`` is at the machine's, else its own."""
    d0 = fp.code_distance
    if d0 != machine.distance or d0 <= 0:
        return [(d0, machine.logical_error_rate)]
    # a machine cycle is d0 of a patch's d rounds
    return [(d0, machine.logical_error_rate)] + [
        (d, p * d0 / d) for d, p in machine.larger_distances if d > d0
    ]


def exact_cycles(timeline: Timeline, own: int, distance: int) -> float:
    """The machine cycles a program of ``timeline`` (its private cycles at its ``own``
    code distance) runs at ``distance``, unrounded: a logical cycle there is
    ``distance / own`` machine cycles. Its steps take whole machine cycles
    (:func:`~qmk.kernel.machine.footprints.at_distance` rounds each up), but its patches
    run only its rounds: the exclusive baseline runs the same program at that distance
    on a machine of that cycle, and its own error there is the same.

    >>> from qmk.execution.footprint import Footprint, Step
    >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
    ...     routing_tiles=2, code_distance=9, steps=(Step(kind="idle", cycles=10),) * 3)
    >>> exact_cycles(Timeline(fp), 9, 13), Timeline(at_distance(fp, 13)).private_cycles
    (43.333333333333336, 45)
    """
    if distance == own or own <= 0:
        return float(timeline.private_cycles)
    return timeline.private_cycles * distance / own


def placements(
    fp: Footprint, machine: MachineSpec, timeline: Timeline | None = None
) -> list[Placement]:
    """``fp``'s placements on ``machine``, cheapest first (module docstring);
    ``timeline``: ``fp``'s own, where the caller has it (kept for its own placement)."""
    t_error = machine.t_state_error
    blocks = blocks_for(fp)
    out: list[Placement] = []
    laid_out = [(block, in_block(fp, block)) for block in blocks]
    own_tl = {
        block: timeline if laid is fp and timeline is not None else Timeline(laid)
        for block, laid in laid_out
        if laid is not None
    }
    for distance, rate in _distances(fp, machine):
        for block, laid in laid_out:
            if laid is None:
                continue
            there = at_distance(laid, distance)
            tl = own_tl[block] if there is laid else Timeline(there)
            # its patches are its block's layout at its own distance: at a larger one
            # each counts more of a tile, not more patches; they fail through its
            # logical cycles there, ``d / d0`` machine cycles each, not through the
            # whole machine cycles its steps are rounded up to (:func:`exact_cycles`)
            cycles = exact_cycles(own_tl[block], laid.code_distance, distance)
            own = own_error(rate, laid.tiles, cycles, tl.t_total, t_error)
            out.append(Placement(block, distance, there, tl, rate, own))
    order = {block: i for i, block in enumerate(blocks)}
    return sorted(out, key=lambda p: (p.cost, order[p.block], p.distance))


def least_own(fp: Footprint, machine: MachineSpec) -> float:
    """The least own error ``fp`` can have on ``machine`` where the kernel chooses its
    placement: of its placements whose tiles a module holds (its own where none does).
    A lower bound on its whole error under a policy that places jobs by their budgets,
    as the machine's own rate over its private cycles is under one that does not.

    >>> from qmk.execution.footprint import Footprint, Step
    >>> from qmk.kernel.machine.spec import MachineSpec
    >>> fp = Footprint(target="lattice-surgery", logical_qubits=4, block="fast",
    ...     data_tiles=8, routing_tiles=7, code_distance=9,
    ...     steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=100),))
    >>> machine = MachineSpec.simple(tiles=90, logical_error_rate=1e-5,
    ...     larger_distances=((11, 1e-6),))
    >>> round(least_own(fp, machine), 5)
    0.0015
    """
    largest = max((m.tiles for m in machine.modules), default=0)
    options = placements(fp, machine)
    fits = [p.own for p in options if p.footprint.tiles <= largest]
    return min(fits) if fits else next(p.own for p in options if p.footprint is fp)


#: The programs a :class:`Placements` keeps at most (a kernel sees footprints without
#: end: past this it forgets them all and makes them again as jobs come).
KEPT = 4096


class Placements:
    """Each program's placements on a machine, made once a program (by its spec's
    footprint) while at most :data:`KEPT` are kept, the first job's timeline kept for
    its own placement (the core's, to go back to)."""

    __slots__ = ("_held", "machine")

    def __init__(self, machine: MachineSpec) -> None:
        self.machine = machine
        #: footprint id -> (the footprint, its placements, its own, the usable ones by
        #: error budget)
        self._held: dict[
            int,
            tuple[Footprint, list[Placement], Placement, dict[float | None, list[Placement]]],
        ] = {}

    def _entry(
        self, job: MachineJob
    ) -> tuple[Footprint, list[Placement], Placement, dict[float | None, list[Placement]]]:
        fp = job.spec.footprint
        held = self._held.get(id(fp))
        if held is None:
            own = job.tl if job.fp is fp else None
            found = placements(fp, self.machine, own)
            # (its own block at its own distance is always one: in_block and
            # at_distance give ``fp`` itself there)
            base = next(p for p in found if p.footprint is fp)
            if len(self._held) >= KEPT:
                self._held.clear()
            held = self._held[id(fp)] = (fp, found, base, {})
        return held

    def of(self, job: MachineJob) -> list[Placement]:
        """``job``'s program's placements, cheapest first."""
        return self._entry(job)[1]

    def own(self, job: MachineJob) -> Placement:
        """``job``'s program as it came (its footprint's block, its distance)."""
        return self._entry(job)[2]

    def usable(self, job: MachineJob) -> tuple[list[Placement], Placement]:
        """:func:`usable` of ``job``'s program's placements at its error budget (made
        once for its program and budget while its placements are kept: not to be
        changed), and its own placement (:meth:`own`)."""
        _, found, base, by_budget = self._entry(job)
        budget = job.spec.error_budget
        options = by_budget.get(budget)
        if options is None:
            options = by_budget[budget] = usable(found, base, budget)
        return options, base


def usable(options: list[Placement], home: Placement, budget: float | None) -> list[Placement]:
    """The placements a job of error ``budget`` may start at, in the order they are
    tried: of ``options`` (cheapest first), those whose own error is within its
    budget; where none is, the one of least own error (it passes its budget whatever
    the schedule: ``QK505`` refuses such a job where it arrives). Without a budget it
    runs as it came (``home``), or at a larger distance in its own block where that
    keeps the budgets of the jobs beside it.

    >>> from qmk.execution.footprint import Footprint, Step
    >>> from qmk.kernel.machine.spec import MachineSpec
    >>> fp = Footprint(target="lattice-surgery", logical_qubits=4, block="fast",
    ...     data_tiles=8, routing_tiles=7, code_distance=9,
    ...     steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=100),))
    >>> machine = MachineSpec.simple(tiles=90, logical_error_rate=1e-5,
    ...     larger_distances=((11, 1e-6),))
    >>> found = placements(fp, machine)
    >>> home = next(p for p in found if p.footprint is fp)
    >>> [(p.label, p.cost, round(p.own, 4)) for p in found][:3]
    [('fast/d=9', 1500, 0.0149), ('fast/d=11', 2829, 0.0015), ('intermediate/d=9', 6000, 0.0582)]
    >>> [p.label for p in usable(found, home, 0.01)]
    ['fast/d=11', 'intermediate/d=11', 'compact/d=11']
    >>> [p.label for p in usable(found, home, None)], usable(found, home, 1e-4)[0].label
    (['fast/d=9', 'fast/d=11'], 'fast/d=11')
    """
    if budget is None:
        return [home] + [p for p in options if p.block == home.block and p.distance > home.distance]
    within = [p for p in options if p.own <= budget]
    return within or [min(options, key=lambda p: p.own)]
