"""The machine scheduler's policies, one module each, behind one interface
(:class:`~qmk.kernel.machine.policies.base.SchedulingPolicy`).

:data:`POLICIES` maps each name (``qmk.defaults.MACHINE_POLICIES``, in that order) to its
class; :func:`policy` makes one.

>>> from qmk.defaults import MACHINE_POLICIES
>>> list(POLICIES) == list(MACHINE_POLICIES)
True
>>> policy("backfill").name
'backfill'
"""

from __future__ import annotations

from qmk.kernel.errors import MachineError
from qmk.kernel.machine.policies.backfill import Backfill
from qmk.kernel.machine.policies.base import SchedulingPolicy
from qmk.kernel.machine.policies.exclusive import Exclusive
from qmk.kernel.machine.policies.fair_share import FairShare
from qmk.kernel.machine.policies.fidelity import Fidelity
from qmk.kernel.machine.policies.partition import Partition
from qmk.kernel.machine.policies.priority import Priority
from qmk.kernel.machine.policies.tetris import Tetris

#: Every policy by name, the baseline first.
POLICIES: dict[str, type[SchedulingPolicy]] = {
    cls.name: cls
    for cls in (Exclusive, Partition, FairShare, Priority, Backfill, Fidelity, Tetris)
}


def policy(name: str) -> SchedulingPolicy:
    """A fresh policy called ``name``.

    Raises:
        MachineError: ``QK502`` no such policy.
    """
    cls = POLICIES.get(name)
    if cls is None:
        raise MachineError.of(
            "bad-workload", f"no machine policy {name!r}; known: {', '.join(POLICIES)}"
        )
    return cls()


__all__ = ["POLICIES", "SchedulingPolicy", "policy"]
