"""The refusal of a job no placement of the machine can ever hold (``QK501
unplaceable``), with what to change for it: its tiles past every region it may use, its
T states with no factory where it may run, its Bell pairs with no link.

:meth:`~qmk.kernel.machine.core.Scheduler.check_placeable` decides the common case
(every area allowed, the footprint's totals known) itself and asks here otherwise;
the message names the job, the policy, what it needs and the ``[machine]`` key to raise
(for tiles or a factory, the least ``physical_qubits`` whose floorplan holds it:
:func:`~qmk.kernel.machine.hold.to_hold`, loaded when such a refusal is written).

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.core import Scheduler
>>> from qmk.kernel.machine.jobs import JobSpec
>>> from qmk.kernel.machine.policies import policy
>>> from qmk.kernel.machine.spec import MachineSpec
>>> wide = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=30,
...                  routing_tiles=5, code_distance=9, steps=(Step(kind="idle", cycles=1),))
>>> sched = Scheduler(MachineSpec.simple(tiles=20), policy("fair-share"))
>>> try:
...     refuse_unplaceable(sched, JobSpec(id="w", tenant="a", footprint=wide, arrival_cycle=0))
... except Exception as exc:
...     print(exc.code)
QK501
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from qmk.kernel.errors import MachineError

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import JobSpec


def refuse_unplaceable(sched: Scheduler, spec: JobSpec, names: Sequence[int] | None = None) -> None:
    """Refuse ``spec`` if no placement of ``sched``'s machine, under its policy, can ever
    hold it; ``names``: the ranges the policy allows it (None: all).

    Raises:
        MachineError: ``QK501 unplaceable`` naming it and what to change.
    """
    fp = spec.footprint
    machine = sched.machine
    ranges = sched.ranges if names is None else [sched.ranges[i] for i in names]
    largest = max((p.spec.length for p in ranges), default=0)
    why = None
    fix, needed = "", None
    if fp.tiles > largest:
        where = "a module's job tiles" if names is None else "its tenant's region"
        why = f"needs {fp.tiles} contiguous tiles; {where} hold at most {largest}"
        fix, needed = _raise_qubits(sched, spec, tenant_region=names is not None)
    elif fp.t_states and not any(sched.factory_rate(p.module) > 0 for p in ranges):
        why = f"needs {fp.t_states} T states and no module it may use has a factory"
        fix, needed = _raise_qubits(sched, spec, tenant_region=names is not None)
    elif fp.bell_pairs and machine.link.bell_pairs_per_cycle <= 0:
        why = f"needs {fp.bell_pairs} Bell pairs and the machine has no link"
        table = machine.table
        if table is not None:
            fix = (
                "; one module has no links: raise [machine] modules"
                if table.modules == 1
                else "; give [machine.links] bell_pairs_per_cycle above 0"
            )
    if why is not None:
        table = machine.table
        sizes = {} if table is None else {"total": table.physical_qubits}
        if needed is not None:
            sizes["needed"] = needed
        raise MachineError.of(
            "unplaceable",
            f"job {spec.id} (tenant {spec.tenant}): no placement can ever hold it under "
            f"{sched.policy.name}: it {why}{fix}",
            job=spec.id,
            tiles=fp.tiles,
            t_states=fp.t_states,
            **sizes,
        )


def _raise_qubits(
    sched: Scheduler, spec: JobSpec, *, tenant_region: bool
) -> tuple[str, int | None]:
    """What to raise in ``[machine]`` so that a module holds ``spec`` (its tiles, and a
    factory for its T states), for a refusal's message, and the least ``physical_qubits``
    that does (None: no number, or not known); ``("", None)`` for a machine built by
    hand."""
    table = sched.machine.table
    if table is None:
        return "", None
    fp = spec.footprint
    if tenant_region:
        return (
            f"; raise tenant {spec.tenant}'s share of the machine (machine_share in a "
            "kernel's [tenants] table, share in a workload), or [machine] "
            f"physical_qubits (now {table.physical_qubits:,})"
        ), None
    from qmk.kernel.machine.hold import to_hold  # a refusal of tiles or a factory

    return to_hold(sched.machine, fp.tiles, factory=fp.t_states > 0)


__all__ = ["refuse_unplaceable"]
