"""The least machine that holds a job: what to raise in ``[machine]`` so that one module
holds its tiles (and a T factory for its T states), for the refusal of a job too big for
the machine.

It is the one rule behind both refusals of such a job: admission's, past a module's
physical qubits (:mod:`qmk.kernel.admit.quotas`), and the floorplan's, past its tiles
(:mod:`qmk.kernel.machine.refusal`). Each loads it when it writes one, so a kernel of
jobs that fit holds none of it. The floorplan is derived as
:mod:`qmk.kernel.machine.derive` derives one, from the machine's own ``[machine]`` table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qmk.kernel.machine.spec import LEAST_COPY, job_tiles, share_copies

if TYPE_CHECKING:
    from qmk.kernel.config import MachineConfig
    from qmk.kernel.machine.spec import MachineSpec


def qubits_to_hold(
    machine: MachineSpec, tiles: int, *, factory: bool, module_qubits: int = 0
) -> int | None:
    """The least ``[machine] physical_qubits`` whose floorplan holds a job.

    The floorplan is derived as ``machine``'s was (every other key of its table as it
    is). It must have a module of ``tiles`` job tiles or more, and T factories if
    ``factory``. The module must have ``module_qubits`` physical qubits or more (a
    job's peak physical qubits, which admission counts per module). None when no
    number of qubits gives one: a machine built by hand, ``factory_share`` 0 or
    ``factory.copies`` 0 and a factory needed, or every qubit given to factories.

    >>> from qmk.kernel.config import config_from_dict
    >>> from qmk.kernel.machine.derive import config_machine
    >>> small = config_machine(config_from_dict({"machine": {"physical_qubits": 5000}}))
    >>> small.modules[0].tiles, small.modules[0].factory.copies
    (24, 0)
    >>> qubits_to_hold(small, 59, factory=False), qubits_to_hold(small, 59, factory=True)
    (11016, 20696)
    >>> qubits_to_hold(small, 59, factory=False, module_qubits=12_000)
    12000
    >>> bigger = config_machine(config_from_dict({"machine": {"physical_qubits": 20696}}))
    >>> bigger.modules[0].tiles >= 59, bigger.modules[0].factory.copies
    (True, 1)
    """
    table = machine.table
    if table is None or not machine.modules:
        return None
    per_copy = machine.modules[0].factory.physical_qubits
    qubits = _least_module_qubits(
        table, tiles, factory, per_copy, machine.patch_qubits, floor=module_qubits
    )
    return None if qubits is None else qubits * table.modules


def to_hold(
    machine: MachineSpec, tiles: int, *, factory: bool, module_qubits: int = 0
) -> tuple[str, int | None]:
    """What to raise in ``[machine]`` so that one module holds a job of ``tiles`` job
    tiles (and a T factory if ``factory``, and ``module_qubits`` physical qubits).

    It returns the clause a refusal ends with, and the least ``physical_qubits`` that
    does (:func:`qubits_to_hold`; None: no number of qubits does); ``("", None)`` for
    a machine built by hand. It is the one rule behind both refusals of a job too big
    for the machine: admission's (its physical qubits) and the floorplan's (its tiles).

    >>> from qmk.kernel.config import config_from_dict
    >>> from qmk.kernel.machine.derive import config_machine
    >>> small = config_machine(config_from_dict({"machine": {"physical_qubits": 5000}}))
    >>> to_hold(small, 59, factory=True)[1]
    20696
    >>> to_hold(small, 59, factory=True)[0][:52]
    '; raise [machine] physical_qubits from 5,000 to 20,6'
    """
    table = machine.table
    if table is None:
        return "", None
    least = qubits_to_hold(machine, tiles, factory=factory, module_qubits=module_qubits)
    factories_off = table.factory.copies == 0 or (
        table.factory.copies is None and table.factory_share <= 0
    )
    if least is None and factory and factories_off:
        return (
            "; no number of physical_qubits gives a module a factory while [machine] "
            "factory_share or [machine.factory] copies is 0: raise it"
        ), None
    if least is None:
        return f"; raise [machine] physical_qubits (now {table.physical_qubits:,})", None
    what = f"{tiles} job tiles" + (" and a T factory" if factory else "")
    return (
        f"; raise [machine] physical_qubits from {table.physical_qubits:,} to "
        f"{least:,}, the least whose floorplan holds {what} in one module"
    ), least


def _module_tiles(
    table: MachineConfig, qubits: int, per_copy: int, patch_qubits: int
) -> tuple[int, int]:
    """``(factory copies, job tiles)`` of a module of ``qubits`` physical qubits, derived
    as :mod:`qmk.kernel.machine.derive` derives one (a module too small for its given
    copies: no tiles)."""
    copies = table.factory.copies
    if copies is None:
        copies = share_copies(table.factory_share, qubits, per_copy)
    left = qubits - copies * per_copy
    if left < 0:
        return copies, 0
    return copies, job_tiles(max(0, left // patch_qubits - table.storage_tiles))


#: The most counts of factory copies :func:`_least_module_qubits` looks through (from a
#: lower bound of the qubits, it finds the least within two or three).
_SEARCH_COPIES = 1000


def _least_module_qubits(
    table: MachineConfig,
    tiles: int,
    factory: bool,
    per_copy: int,
    patch_qubits: int,
    *,
    floor: int = 0,
) -> int | None:
    """The least qubits of a module (derived as :mod:`qmk.kernel.machine.derive` does),
    ``floor`` or more, with ``tiles`` job tiles or more, and a factory copy if
    ``factory``; None when none has.

    A module's job tiles grow with its qubits except where ``factory_share`` gives it one
    more copy (they drop by the copy's tiles there). So the qubits are searched copy count
    by copy count. Within one count the tiles only grow (a bisection), and the first
    count whose largest module holds the tiles has the least."""

    def holds(qubits: int) -> bool:
        copies, job_tiles = _module_tiles(table, qubits, per_copy, patch_qubits)
        return qubits >= floor and job_tiles >= tiles and (copies > 0 or not factory)

    def least(lo: int, hi: int) -> int:  # holds(hi); the least q in [lo, hi] that holds
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if holds(mid) else (mid + 1, hi)
        return lo

    given = table.factory.copies
    if given is not None or table.factory_share <= 0:  # one count of copies, for any size
        copies = given or 0
        if factory and copies == 0:
            return None
        lo = max(copies * per_copy, floor)
        hi = lo + (tiles + table.storage_tiles + 2 * math.isqrt(tiles) + 4) * patch_qubits
        return least(lo, hi) if holds(hi) else None
    share = table.factory_share
    # no fewer qubits hold the tiles: copies take at most share * q + per_copy of them
    bound = max(0, floor, math.floor((tiles * patch_qubits - per_copy) / (1 - share)))
    copies = max(0, math.floor(share * bound / per_copy) - 1)
    start = 0 if copies == 0 else math.ceil(copies * per_copy / share)
    while start > 0 and math.floor(share * (start - 1) / per_copy) >= copies:  # rounding
        start -= 1
    for _ in range(_SEARCH_COPIES):  # the first qubits of a count of copies: start
        copies = math.floor(share * start / per_copy)
        end = math.ceil((copies + 1) * per_copy / share)  # past the qubits of this count
        while math.floor(share * end / per_copy) <= copies:  # float rounding
            end += 1
        while end - 1 > start and math.floor(share * (end - 1) / per_copy) > copies:
            end -= 1
        if start < LEAST_COPY * per_copy:  # the one copy share_copies gives from there
            end = min(end, LEAST_COPY * per_copy)
        if holds(end - 1):
            return least(start, end - 1)
        start = end
    return None


__all__ = ["qubits_to_hold", "to_hold"]
