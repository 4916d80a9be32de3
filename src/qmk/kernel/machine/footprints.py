"""Footprints of programs on the machine, until the targets report their own.

:func:`program_footprint` is the lattice-surgery footprint of a program: it is lowered
to pi/8 rotations and Pauli product measurements (:func:`qmk.ft.lower.lower`), each op
takes the ticks :func:`qmk.ft.schedule.ticks` gives it in the machine's block, a
rotation one T state and an arbitrary-angle rotation the estimator's
``numTsPerRotation`` of them (as :mod:`qmk.ft.schedule` charges it), and the program's
``FENCE_EPOCH`` nodes become fences; its tiles are the block's
(:func:`qmk.ft.layout.layout_block`). Steps that repeat are one step.

:func:`counts_footprint` is the footprint of a program known only by its logical counts
(``qmk estimate``'s, :class:`~qmk.estimate.counts.LogicalCounts`), for generated
workloads: its T gates, its CCZ/CCiX (four pi/8 rotations and the AND's measurement
each, as :mod:`qmk.ft.lower` builds a Toffoli) and its rotations' sequences, in
``segments`` equal parts between fences, then its measurements (in a part, the T gates,
then the Toffolis, then the rotations: the order within a part changes no total, and
few steps keep the scheduler's events few). A rotation whose Pauli
is unknown takes the block's X-or-Y ticks (Litinski's bound; 1 in the fast block).

:func:`footprint_for` is the one function the scheduler's callers use: the switch to
the target's own footprint (``[one-machine]``) is made there.

>>> from qmk.estimate.counts import LogicalCounts
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = counts_footprint(LogicalCounts(num_qubits=4, t_count=8, ccz_count=2,
...                       measurement_count=4), MachineSpec.simple(tiles=100), segments=2)
>>> fp.tiles, fp.t_states, fp.duration_cycles, fp.fences, fp.measurements
(15, 16, 16, 1, 6)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.execution.footprint import Footprint, Step

if TYPE_CHECKING:
    from qmk.estimate.counts import LogicalCounts
    from qmk.kernel.machine.spec import MachineSpec
    from qmk.qvm.graph import Graph


def _block_tiles(block: str, n: int) -> tuple[int, int]:
    """(data tiles, routing tiles) of ``n`` qubits in ``block``, as the layout draws it."""
    from qmk.ft.layout import layout_block

    layout = layout_block(block, n)
    data = sum(len(p) for p in layout.patches)
    return data, layout.tiles - data


def _merge(steps: list[Step]) -> tuple[Step, ...]:
    """Consecutive equal steps as one step of their repeats summed."""
    out: list[Step] = []
    for step in steps:
        last = out[-1] if out else None
        if (
            last is not None
            and last.kind == step.kind
            and last.cycles == step.cycles
            and last.t_states == step.t_states
            and last.bell_pairs == step.bell_pairs
            and last.routed == step.routed
            and last.measurements == step.measurements
        ):
            out[-1] = Step(
                kind=last.kind,
                cycles=last.cycles,
                repeat=last.repeat + step.repeat,
                t_states=last.t_states,
                bell_pairs=last.bell_pairs,
                routed=last.routed,
                measurements=last.measurements,
                node=step.node or last.node,
            )
        else:
            out.append(step)
    return tuple(out)


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
        steps=_merge(steps),
    )


def program_footprint(graph: Graph, machine: MachineSpec) -> Footprint:
    """The lattice-surgery footprint of ``graph`` on ``machine`` (module docstring).

    Raises:
        FTError: ``QP101``/``QP103`` what the lowering refuses (channels, guarded T);
        VerificationError: a program that does not verify.
    """
    from qmk.estimate.counts import count_graph
    from qmk.ft.lower import lower
    from qmk.ft.schedule import NON_Z_TICKS, ticks
    from qmk.qvm.verify import verify

    lowered = lower(verify(graph))
    block = machine.block
    per = _ts_per_rotation(count_graph(graph), machine)
    where = {node.id: i for i, node in enumerate(graph.nodes)}
    fences = [i for i, node in enumerate(graph.nodes) if node.op == "FENCE_EPOCH"]
    steps: list[Step] = []
    ahead = 0
    for op in lowered.ops:
        at = where.get(op.node, 0)
        while ahead < len(fences) and fences[ahead] < at:
            if steps:
                steps.append(Step(kind="fence", cycles=0, node=graph.nodes[fences[ahead]].id))
            ahead += 1
        if op.kind in ("pauli", "frame"):
            continue
        if op.kind == "synth":
            cycles = NON_Z_TICKS[block]
            steps.append(
                Step(
                    kind="rotation",
                    cycles=cycles,
                    t_states=1,
                    repeat=per,
                    routed=True,
                    node=op.node,
                )
            )
            continue
        cycles = ticks(block, op)
        if op.kind == "rotation":
            steps.append(
                Step(kind="rotation", cycles=cycles, t_states=1, routed=cycles > 0, node=op.node)
            )
        else:
            steps.append(
                Step(
                    kind="ppm" if cycles else "measure",
                    cycles=cycles,
                    measurements=1,
                    routed=cycles > 0,
                    node=op.node,
                )
            )
    data, routing = _block_tiles(block, lowered.data_qubits)
    return Footprint(
        target="lattice-surgery",
        logical_qubits=lowered.data_qubits,
        block=block,  # type: ignore[arg-type]
        data_tiles=data,
        routing_tiles=routing,
        code_distance=machine.distance,
        steps=_merge(steps),
    )


def footprint_for(graph: Graph, machine: MachineSpec) -> Footprint:
    """A program's footprint on ``machine``: today its lattice-surgery footprint
    (:func:`program_footprint`); the target protocol's own when it reports one."""
    return program_footprint(graph, machine)
