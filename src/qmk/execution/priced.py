"""What the planner answers admission, as plain values: a plan's figures and a target's
refusal of a program.

They cross from the kernel's planner process (:mod:`qmk.execution.pricing`, which loads
the planner, the router and the engines) to the kernel, which reads them without loading
any of that: so they live here, alone (issue 79).

>>> Priced(peak_physical_qubits=324, engine="statevector").error_code is None
True
>>> Refused("QM102", "no", {}).code
'QM102'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Priced:
    """A program's plan, as admission reads it (or the refusal of planning it)."""

    #: Peak physical qubits of the plan (0 with an error).
    peak_physical_qubits: int = 0
    #: The plan's code profiles, and those its calibration is for.
    profiles: tuple[str, ...] = ()
    calibrated_profiles: tuple[str, ...] = ()
    #: The engine the router chose, its precision, and the most qubits it holds in
    #: ``max_bytes`` of a worker.
    engine: str = ""
    precision: str | None = None
    capacity: int = 0
    #: A refusal's stable code and message (None: planned).
    error_code: str | None = None
    error_message: str = ""
    #: Syndrome bits per second the plan's logical qubits ask of the decoders at its
    #: peak (:func:`qmk.execution.plan.decoder_load`): the device's decoder load while
    #: the job runs, where ``[faults]`` gives the decoders a capacity.
    decoder_bits_per_s: float = 0.0
    #: The physics argument the refusal is about (``"engine"``: a name the registry does
    #: not know); None: the program's.
    error_key: str | None = None
    #: Each of the plan's profiles' logical error per cycle under the job's physics (its
    #: qubit, noise model when noise is on, and calibration): what the kernel reports of a
    #: job it starts on an undrifted machine, so the kernel process holds no QEC model
    #: (:func:`qmk.kernel.admit.adjusted.adjust`).
    logical_error_per_cycle: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refused:
    """A target's refusal of a program, as plain values (it crosses a process)."""

    code: str
    message: str
    details: dict[str, Any]


__all__ = ["Priced", "Refused"]
