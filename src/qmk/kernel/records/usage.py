"""What a job used, metered when it ends: THE table of usage quantities and their units.

:class:`Usage` is the record of one job's end (the ``usage`` table of the kernel's
database, ``q_usage``, ``GET /v1/usage``, the billing webhook's ``usage`` member); its
fields are the quantities a price table prices (``[billing.prices]`` is derived from
them, :mod:`qmk.kernel.config`). :func:`usage_of` reads them off the job:

- ``shots``: the shots the job delivered (a COMPLETED job's, 0 otherwise);
- ``logical_qubit_seconds``: the logical qubits the job reserved times the seconds it
  held them on its worker (start to end, whatever the end);
- ``physical_qubit_cycles``: the physical qubits it reserved times the logical (QEC)
  cycles its program takes per shot, times its shots (COMPLETED runs only);
- ``device_seconds``: the machine time its shots take on the modelled device (its
  target's time of one shot, the telemetry's ``logical_time_ns``: the program's logical
  time, or a neutral-atom job's schedule, times its shots);
- ``result_bytes``: the bytes of its stored result.

A job answered from the result cache ran nothing: its machine quantities are 0.

>>> Usage(shots=100, result_bytes=10).priced({"shots": 0.01, "result_bytes": 0.5})
[('shots', 100, 0.01, 1.0), ('result_bytes', 10, 0.5, 5.0)]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from qmk.kernel.records.jobs import COMPLETED, Job

#: The unit each quantity counts, by field.
UNITS: Mapping[str, str] = {
    "shots": "shot",
    "logical_qubit_seconds": "logical-qubit second",
    "physical_qubit_cycles": "physical-qubit cycle",
    "device_seconds": "device second",
    "result_bytes": "byte",
}


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """The quantities one job used (see the module docstring), or a sum of them."""

    shots: int = 0
    logical_qubit_seconds: float = 0.0
    physical_qubit_cycles: float = 0.0
    device_seconds: float = 0.0
    result_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        """The quantities by name."""
        return {name: getattr(self, name) for name in FIELDS}

    def priced(self, prices: Mapping[str, float]) -> list[tuple[str, Any, float, float]]:
        """``(item, quantity, unit price, amount)`` of each quantity ``prices`` prices
        above 0, in table order."""
        lines = []
        for name in FIELDS:
            price = float(prices.get(name, 0.0))
            if price > 0:
                quantity = getattr(self, name)
                lines.append((name, quantity, price, round(quantity * price, 10)))
        return lines


#: The quantities, in table order.
FIELDS: tuple[str, ...] = Usage.__struct_fields__
assert tuple(UNITS) == FIELDS, "one unit per quantity"


def usage_of(job: Job) -> Usage:
    """What ``job`` used, at its end (its state, times, telemetry and result)."""
    held_s = (
        0.0
        if job.started_at is None or job.finished_at is None
        else max(0.0, job.finished_at - job.started_at)
    )
    logical = sum(job.qubits.values())
    result = job.result
    size = 0 if result is None else result.nbytes
    if job.state != COMPLETED or result is None:
        return Usage(logical_qubit_seconds=logical * held_s, result_bytes=size)
    shots = job.shots
    if job.cached_from is not None:  # answered from the cache: no machine time
        return Usage(shots=shots, result_bytes=size)
    # every target reports the machine time of one shot as its telemetry's
    # logical_time_ns (a device job: its schedule's duration) and its QEC cycles
    telemetry = result.facts.telemetry
    per_shot_ns = float((telemetry and telemetry.logical_time_ns) or 0.0)
    cycles = float((telemetry and telemetry.logical_cycles) or 0.0)
    return Usage(
        shots=shots,
        logical_qubit_seconds=logical * held_s,
        physical_qubit_cycles=job.physical_qubits * cycles * shots,
        device_seconds=per_shot_ns * 1e-9 * shots,
        result_bytes=size,
    )


__all__ = ["FIELDS", "UNITS", "Usage", "usage_of"]
