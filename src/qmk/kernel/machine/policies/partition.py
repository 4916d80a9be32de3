"""``partition``: static regions per tenant.

Each module's job tiles are split once into one region per tenant, in proportion to
their quota weights (tenants in name order; the tiles a floor leaves go one each to the
first tenants). A tenant's jobs run only in its regions, first come first served there,
so tenants never contend for tiles (they still share the factories, links and decoder).
A job larger than its tenant's region can never run: it is refused (``QK501``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from qmk.kernel.machine.policies.base import SchedulingPolicy
from qmk.kernel.machine.tiles import TileRangeSpec

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import JobSpec
    from qmk.kernel.machine.spec import MachineSpec


def split(tiles: int, weights: Mapping[str, float]) -> list[tuple[str, int]]:
    """``tiles`` split among ``weights``' tenants in proportion (name order).

    >>> split(10, {"b": 1.0, "a": 1.0, "c": 2.0})
    [('a', 3), ('b', 2), ('c', 5)]
    """
    names = sorted(weights)
    total = sum(weights[n] for n in names) or 1.0
    sizes = [int(tiles * weights[n] / total) for n in names]
    for i in range(tiles - sum(sizes)):
        sizes[i % len(names)] += 1
    return list(zip(names, sizes, strict=True))


class Partition(SchedulingPolicy):
    """One region per tenant per module; FCFS inside each."""

    name = "partition"

    def __init__(self) -> None:
        self._of: dict[str, list[int]] = {}

    def ranges(
        self, machine: MachineSpec, weights: Mapping[str, float]
    ) -> list[TileRangeSpec] | None:
        if not weights:
            return None
        specs: list[TileRangeSpec] = []
        for module in machine.modules:
            offset = 0
            for tenant, size in split(module.tiles, weights):
                self._of.setdefault(tenant, []).append(len(specs))
                specs.append(
                    TileRangeSpec(module=module.index, offset=offset, length=size, owner=tenant)
                )
                offset += size
        return specs

    def allowed(self, sched: Scheduler, spec: JobSpec) -> Sequence[int] | None:
        if not self._of:
            return None
        return self._of.get(spec.tenant, [])

    def decide(self, sched: Scheduler) -> None:
        for tenant in sorted(sched.queue_of):
            while tenant in sched.queue_of:
                if not sched.place(next(iter(sched.queue_of[tenant]))):
                    break
