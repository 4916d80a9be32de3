"""The machine scheduler's policies, one module each, behind one interface
(:class:`~qmk.kernel.machine.policies.base.SchedulingPolicy`).

:data:`POLICIES` names each policy's module and class (``qmk.defaults.MACHINE_POLICIES``,
in that order); a policy's module is imported only when it is made (:func:`policy`) or
described (:func:`policy_class`), so nothing imports every policy.

>>> from qmk.defaults import MACHINE_POLICIES
>>> list(POLICIES) == list(MACHINE_POLICIES)
True
>>> policy("backfill").name
'backfill'
"""

from __future__ import annotations

import importlib

from qmk.kernel.errors import MachineError
from qmk.kernel.machine.policies.base import SchedulingPolicy

#: Every policy by name, the baseline first: ``module:Class`` under this package.
POLICIES: dict[str, str] = {
    "exclusive": "exclusive:Exclusive",
    "partition": "partition:Partition",
    "fair-share": "fair_share:FairShare",
    "priority": "priority:Priority",
    "backfill": "backfill:Backfill",
    "fidelity": "fidelity:Fidelity",
    "tetris": "tetris:Tetris",
}


def policy_class(name: str) -> type[SchedulingPolicy]:
    """The class of the policy called ``name``.

    Raises:
        MachineError: ``QK502`` no such policy.
    """
    where = POLICIES.get(name)
    if where is None:
        raise MachineError.of(
            "bad-workload", f"no machine policy {name!r}; known: {', '.join(POLICIES)}"
        )
    module, cls = where.split(":")
    found: type[SchedulingPolicy] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return found


def policy(name: str) -> SchedulingPolicy:
    """A fresh policy called ``name``.

    Raises:
        MachineError: ``QK502`` no such policy.
    """
    return policy_class(name)()


__all__ = ["POLICIES", "SchedulingPolicy", "policy", "policy_class"]
