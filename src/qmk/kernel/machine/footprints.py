"""Footprints of programs on the machine, until the targets report their own.

:func:`program_footprint` is the lattice-surgery footprint of a program: the one its
``lattice-surgery`` target reports (:mod:`qmk.execution.surgery`) at the machine's code,
distance, qubits and block. The program is lowered to pi/8 rotations and Pauli product
measurements (:func:`qmk.ft.lower.lower`). Each op takes the ticks
:func:`qmk.ft.schedule.ticks` gives it in the block. A rotation takes one T state, an
arbitrary-angle rotation the estimator's ``numTsPerRotation`` of them (as
:mod:`qmk.ft.schedule` charges it). The program's ``FENCE_EPOCH`` nodes become
fences; its tiles are the block's. Steps that repeat are one step.

:func:`counts_footprint` is the footprint of a program known only by its logical counts
(``qmk estimate``'s, :class:`~qmk.estimate.counts.LogicalCounts`), for generated
workloads. Its T gates, its CCZ/CCiX (four pi/8 rotations and the AND's measurement
each, as :mod:`qmk.ft.lower` builds a Toffoli) and its rotations' sequences come in
``segments`` equal parts between fences, then its measurements. In a part come the T
gates, then the Toffolis, then the rotations: the order within a part changes no total,
and few steps keep the scheduler's events few. A rotation whose Pauli
is unknown takes the block's X-or-Y ticks (Litinski's bound; 1 in the fast block).

:func:`footprint_for` is the one function the scheduler's callers use for a program
file. :func:`placed_for` is a footprint as the machine takes it, from a kernel or from
``qmk machine simulate``: with a fence wherever it would run longer without one
(:func:`fenced_for`), and its Bell pairs made inside its module where the machine has
no link (:func:`local_pairs`).

>>> from qmk.estimate.counts import LogicalCounts
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = counts_footprint(LogicalCounts(num_qubits=4, t_count=8, ccz_count=2,
...                       measurement_count=4), MachineSpec.simple(tiles=100), segments=2)
>>> fp.tiles, fp.t_states, fp.duration_cycles, fp.fences, fp.measurements
(15, 16, 16, 1, 6)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qmk.execution.footprint import Footprint, Step, merged

if TYPE_CHECKING:
    from qmk.estimate.counts import LogicalCounts
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.qvm.graph import Graph


#: The most fences the machine adds to one job: a run longer than this many times
#: ``[machine] fence_cycles`` gets its fences spread wider (the scheduler's work, at
#: admission and on the machine, grows with a job's steps).
MOST_FENCES = 2000


def fenced_for(footprint: Footprint, machine: MachineSpec, fence_cycles: int) -> Footprint:
    """``footprint`` as the machine takes it: a fence wherever it would run more than
    ``fence_cycles`` cycles without one at its pace alone (its T states at the fastest
    module's factory rate, its Bell pairs at the link's), at most :data:`MOST_FENCES`
    (:meth:`~qmk.execution.footprint.Footprint.fenced`). The points where a policy may
    preempt it: no job, fences in its program or not, holds its tiles past one longer.

    >>> from qmk.kernel.machine.spec import MachineSpec
    >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
    ...                routing_tiles=2, code_distance=9,
    ...                steps=(Step(kind="gates", cycles=5, repeat=5),))
    >>> fenced_for(fp, MachineSpec.simple(tiles=10), 10).fences  # after 10 and 20 cycles
    2
    """
    rate = max((m.factory.rate for m in machine.modules), default=0.0) or math.inf
    return footprint.fenced(
        fence_cycles,
        t_per_cycle=rate,
        pairs_per_cycle=machine.link.bell_pairs_per_cycle or math.inf,
        most=MOST_FENCES,
    )


def local_pairs(footprint: Footprint, machine: MachineSpec) -> Footprint:
    """``footprint`` on ``machine``: where the machine has no link between modules, its
    Bell pairs (a channel's, a teleported gate's) are made inside its module by lattice
    surgery, drawing on no shared resource, so its steps draw none from the link.

    >>> from qmk.kernel.machine.spec import MachineSpec
    >>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=2,
    ...                routing_tiles=2, code_distance=9,
    ...                steps=(Step(kind="gates", cycles=5, bell_pairs=1, repeat=3),))
    >>> local_pairs(fp, MachineSpec.simple(tiles=10)).bell_pairs, fp.bell_pairs
    (0, 3)
    """
    if machine.link.bell_pairs_per_cycle > 0 or not footprint.bell_pairs:
        return footprint
    import msgspec

    steps = tuple(msgspec.structs.replace(s, bell_pairs=0) for s in footprint.steps)
    return msgspec.structs.replace(footprint, steps=steps)


def placed_for(footprint: Footprint, machine: MachineSpec, fence_cycles: int) -> Footprint:
    """``footprint`` as ``machine`` takes it, from a kernel or from ``qmk machine
    simulate`` (the one rule both apply): fenced (:func:`fenced_for`), its Bell pairs
    local where the machine has no link (:func:`local_pairs`)."""
    return local_pairs(fenced_for(footprint, machine, fence_cycles), machine)


def _block_tiles(block: str, n: int) -> tuple[int, int]:
    """(data tiles, routing tiles) of ``n`` qubits in ``block``, as the layout draws it."""
    from qmk.ft.layout import layout_block

    layout = layout_block(block, n)
    data = sum(len(p) for p in layout.patches)
    return data, layout.tiles - data


def _ts_per_rotation(counts: LogicalCounts, machine: MachineSpec) -> int:
    from qmk.ft.model import ft_model

    if not counts.rotation_count:
        return 0
    model = ft_model(counts, machine.qubit, machine.family, machine.distance)
    return int(model.ts_per_rotation or 0)


def counts_footprint(
    counts: LogicalCounts, machine: MachineSpec, *, segments: int = 8
) -> Footprint:
    """The footprint of a program known by its logical counts (module docstring)."""
    from qmk.ft.schedule import NON_Z_TICKS

    block = machine.block
    data, routing = _block_tiles(block, counts.num_qubits)
    per = _ts_per_rotation(counts, machine)
    ticks = NON_Z_TICKS[block]
    toffolis = counts.ccz_count + counts.ccix_count
    parts = max(1, min(segments, counts.t_count + toffolis + counts.rotation_count))

    def share(total: int, part: int) -> int:
        return total * (part + 1) // parts - total * part // parts

    steps: list[Step] = []
    for part in range(parts):
        if part:
            steps.append(Step(kind="fence", cycles=0))
        t, ccz, rot = (share(x, part) for x in (counts.t_count, toffolis, counts.rotation_count))
        if t:
            steps.append(Step(kind="rotation", cycles=ticks, t_states=1, repeat=t, routed=True))
        if ccz:  # four Z-type rotations each, and the AND's X measurement (0 ticks)
            steps.append(Step(kind="rotation", cycles=1, t_states=1, repeat=4 * ccz, routed=True))
            steps.append(Step(kind="measure", cycles=0, measurements=ccz))
        if rot and per:
            steps.append(
                Step(kind="rotation", cycles=ticks, t_states=1, repeat=rot * per, routed=True)
            )
    if counts.measurement_count:
        steps.append(Step(kind="measure", cycles=0, measurements=counts.measurement_count))
    return Footprint(
        target="lattice-surgery",
        logical_qubits=counts.num_qubits,
        block=block,  # type: ignore[arg-type]
        data_tiles=data,
        routing_tiles=routing,
        code_distance=machine.distance,
        steps=merged(steps),
    )


def program_footprint(graph: Graph, machine: MachineSpec) -> Footprint:
    """The lattice-surgery footprint of ``graph`` on ``machine``: the one the
    ``lattice-surgery`` target reports (:mod:`qmk.execution.surgery`) for a run at the
    machine's code, distance, qubits and block (module docstring).

    Raises:
        FTError: ``QP101``/``QP103`` what the lowering refuses (channels, guarded T);
        VerificationError: a program that does not verify.
    """
    from qmk.execution import target
    from qmk.execution.request import RunRequest, program_digest
    from qmk.qvm.verify import verify

    surgery = target.get("lattice-surgery")
    request = RunRequest(
        program_digest=program_digest(""),
        target="lattice-surgery",
        target_options={"block": machine.block},
        shots=1,
        seed=0,
        noise=False,
        qubit=machine.qubit,
        profile=machine.profile,
    )
    footprint: Footprint = surgery.compile(verify(graph), request).footprint
    return footprint


def at_distance(fp: Footprint, distance: int) -> Footprint:
    """``fp`` with its patches at code ``distance`` (at least its own), in tiles and
    logical cycles of its own distance ``d0``.

    A patch at ``d`` takes ``(d / d0)^2`` of a tile's qubits (``2 d^2`` physical qubits
    a patch), so each of its data and routing tiles counts ``(d / d0)^2`` tiles, rounded
    up. A logical cycle at ``d`` is ``d`` code rounds, so each step takes ``d / d0``
    times its cycles: a step of ``c`` cycles done ``r`` times becomes ``r_hi``
    repetitions of ``ceil(c d / d0)`` and the rest of ``floor(c d / d0)``, together
    ``ceil(c r d / d0)`` cycles, each repetition still drawing its T states, Bell pairs
    and measurements. The run's T states and order are kept.

    >>> from qmk.execution.footprint import Footprint, Step
    >>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=2,
    ...                routing_tiles=3, code_distance=9,
    ...                steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=9),))
    >>> big = at_distance(fp, 11)
    >>> big.data_tiles, big.routing_tiles, [(s.cycles, s.repeat) for s in big.steps]
    (3, 5, [(2, 2), (1, 7)])
    """
    import msgspec

    d0 = fp.code_distance
    if distance == d0:
        return fp
    if d0 <= 0 or distance < d0:
        raise ValueError(f"a footprint at distance {d0} cannot be placed at {distance}")
    area = (distance * distance, d0 * d0)
    steps: list[Step] = []
    for step in fp.steps:
        c, r = step.cycles, step.repeat
        if not c:
            steps.append(step)
            continue
        low = c * distance // d0
        total = -(-c * r * distance // d0)
        high = total - low * r  # repetitions one cycle longer
        if high:
            steps.append(msgspec.structs.replace(step, cycles=low + 1, repeat=high))
        if r - high:
            steps.append(msgspec.structs.replace(step, cycles=low, repeat=r - high))
    return msgspec.structs.replace(
        fp,
        code_distance=distance,
        data_tiles=-(-fp.data_tiles * area[0] // area[1]),
        routing_tiles=-(-fp.routing_tiles * area[0] // area[1]),
        steps=tuple(steps),
        physical_qubits=-(-fp.physical_qubits * area[0] // area[1]),
    )


#: The targets whose steps are one lattice-surgery op a repetition, done one after
#: another: the only footprints :func:`in_block` moves to another block.
SEQUENTIAL_TARGETS = frozenset({"lattice-surgery"})


def in_block(fp: Footprint, block: str) -> Footprint | None:
    """``fp`` (a lattice-surgery footprint) laid out in ``block`` instead of its own,
    at its distance; None where its steps cannot be moved (another target's).

    Its tiles are the block's layout of its logical qubits (:func:`_block_tiles`, as
    the target lays them out). A repetition of a step is one op, whose ticks
    :func:`qmk.ft.schedule.ticks` gives in each block: 1 for a Z-type rotation or
    PPM in every block, :data:`~qmk.ft.schedule.NON_Z_TICKS` for any other, 0 for a
    Pauli or single-patch measurement. Where ``fp``'s own block tells the two apart
    (compact, intermediate: 1 tick or more), the op takes its ticks in ``block``
    exactly. Where it cannot (the fast block, where every op takes 1 tick), the op
    takes ``block``'s X-or-Y ticks: Litinski's bound, as :func:`counts_footprint`
    charges a rotation of unknown Pauli, so a budget kept in the slower block is kept.
    Steps of another length (a program's own ``idle``) keep their cycles where the
    block does not change them, and are bounded the same way where it does.

    >>> from qmk.execution.footprint import Footprint, Step
    >>> fp = Footprint(target="lattice-surgery", logical_qubits=4, block="compact",
    ...     data_tiles=4, routing_tiles=5, code_distance=9,
    ...     steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=2),
    ...            Step(kind="rotation", cycles=9, t_states=1)))
    >>> fast = in_block(fp, "fast")
    >>> fast.tiles, [(s.cycles, s.repeat) for s in fast.steps]
    (15, [(1, 2), (1, 1)])
    >>> [(s.cycles, s.repeat) for s in in_block(fast, "compact").steps]
    [(9, 2), (9, 1)]
    """
    if fp.block == block:
        return fp
    if fp.target not in SEQUENTIAL_TARGETS:
        return None
    import msgspec

    from qmk.ft.schedule import NON_Z_TICKS

    own, there = NON_Z_TICKS[fp.block], NON_Z_TICKS[block]
    known = own > 1  # a 1-tick op is Z-type there, any other takes ``own``

    def cycles(c: int, kind: str) -> int:
        if c == 0 or kind == "idle":
            return c
        if known and c == 1:
            return 1
        if known and c == own:
            return there
        # not one op of known ticks: each of its ticks at most one op of ``there``
        return c * there if there > own else c

    steps = tuple(
        step
        if step.kind == "fence"
        else msgspec.structs.replace(step, cycles=cycles(step.cycles, step.kind))
        for step in fp.steps
    )
    data, routing = _block_tiles(block, fp.logical_qubits)
    return msgspec.structs.replace(
        fp,
        block=block,
        data_tiles=data,
        routing_tiles=routing,
        steps=steps,  # one to one: a wait's step index is the program's
        physical_qubits=0
        if not fp.physical_qubits
        else -(-fp.physical_qubits * (data + routing) // max(1, fp.tiles)),
    )


def footprint_for(graph: Graph, machine: MachineSpec) -> Footprint:
    """A program's footprint on ``machine``: its lattice-surgery target's
    (:func:`program_footprint`), the one source the kernel's jobs and ``qmk machine
    simulate`` share; :func:`counts_footprint` is only for programs known by their
    counts."""
    return program_footprint(graph, machine)
